# cython: language_level=3
r"""Cython kernels for Kronecker products and the vec-Jacobians built from them.

The math is in docs/derivations.md, "Kronecker and vec Jacobians".

Kronecker product of A (mA, nA) and B (mB, nB), an (mA mB, nA nB) matrix::

    (A ⊗ B)[i mB + k, j nB + l] = a_ij b_kl

Every output element is written exactly once, output row by output row; output
rows are spread over OpenMP threads (no reduction: bitwise identical for every
thread count).  ``xᵀ ⊗ I_n`` / ``I_n ⊗ xᵀ`` (∂(W x)/∂vec(W)) have their own kernel that
never builds the identity; ``kron_csr_indptr`` / ``kron_csr_fill`` build the CSR
arrays of the product of two CSR factors directly.  Same algorithms as
fastgrad/_numba/kron.py.

The backend protocol (``fastgrad._config.kernels('kron', 'cython')``, the same
names and arguments in every backend): ``kron(A, B, out, n_threads)``,
``jacobian_wx(x, order_c, out, n_threads)`` and
``kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, n_threads)``;
``n_threads <= 1`` never enters an OpenMP region.  The low-level ``nogil``
kernels are declared in kron.pxd.
"""

from cython.parallel cimport prange

import numpy as np


cdef void kron_rows(const floating[:, ::1] A, const floating[:, ::1] B, floating* out,
                    Py_ssize_t ors, Py_ssize_t ocs, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Write output rows r0 <= r < r1: ``out[i mB + k, j nB + l] = a_ij b_kl``."""
    cdef Py_ssize_t nA = A.shape[1], mB = B.shape[0], nB = B.shape[1]
    cdef Py_ssize_t r, i, k, j, l
    cdef floating a_ij
    cdef floating* o
    cdef const floating* b_k
    for r in range(r0, r1):
        i = r // mB
        k = r - i * mB
        b_k = &B[k, 0] if nB > 0 else NULL
        if ocs == 1:
            o = out + r * ors
            for j in range(nA):
                a_ij = A[i, j]
                for l in range(nB):
                    o[l] = a_ij * b_k[l]
                o = o + nB
        else:
            o = out + r * ors
            for j in range(nA):
                a_ij = A[i, j]
                for l in range(nB):
                    o[(j * nB + l) * ocs] = a_ij * b_k[l]


cdef void kron_into(const floating[:, ::1] A, const floating[:, ::1] B, floating* out,
                    Py_ssize_t ors, Py_ssize_t ocs, int n_threads) noexcept nogil:
    """``out = A ⊗ B``, output rows spread over ``n_threads`` threads (static schedule)."""
    cdef Py_ssize_t M = A.shape[0] * B.shape[0], r
    if n_threads <= 1:
        kron_rows(A, B, out, ors, ocs, 0, M)
        return
    for r in prange(M, schedule='dynamic', chunksize=32, num_threads=n_threads):
        kron_rows(A, B, out, ors, ocs, r, r + 1)


cdef void wx_row(const floating[::1] x, Py_ssize_t i, Py_ssize_t n, bint order_c,
                 floating* row, Py_ssize_t ocs) noexcept nogil:
    """Row i of ``xᵀ ⊗ I_n`` (F: ``[i, b n + a] = x_b δ_ia``) or ``I_n ⊗ xᵀ`` (C: ``[i, a m + b]``)."""
    cdef Py_ssize_t m = x.shape[0], a, b
    if order_c:
        for a in range(n):
            if a == i:
                for b in range(m):
                    row[(a * m + b) * ocs] = x[b]
            else:
                for b in range(m):
                    row[(a * m + b) * ocs] = 0
    else:
        for b in range(m):
            for a in range(n):
                row[(b * n + a) * ocs] = x[b] if a == i else 0


def _strides(out):
    """(row stride, column stride) of a 2-D ``out`` in elements."""
    isz = out.itemsize
    return out.strides[0] // isz, out.strides[1] // isz


def _aligned(out):
    """Whether ``out``'s strides are whole elements (the kernels address it by element strides)."""
    isz = out.itemsize
    return out.strides[0] % isz == 0 and out.strides[1] % isz == 0


def kron(A, B, out, int n_threads):
    """Protocol: write ``A ⊗ B`` into ``out`` (2-D, writeable, the operands' dtype, any strides)."""
    if _aligned(out):
        _kron(A, B, out, n_threads)
    else:  # pragma: no cover - unaligned views: fill an aligned buffer, then copy
        tmp = np.empty(out.shape, out.dtype)
        _kron(A, B, tmp, n_threads)
        out[...] = tmp


def jacobian_wx(x, bint order_c, out, int n_threads):
    """Protocol: ``xᵀ ⊗ I_n`` (order_c False) or ``I_n ⊗ xᵀ`` into ``out`` (n, n m), any strides."""
    if _aligned(out):
        _jacobian_wx(x, order_c, out, n_threads)
    else:  # pragma: no cover - unaligned views
        tmp = np.empty(out.shape, out.dtype)
        _jacobian_wx(x, order_c, tmp, n_threads)
        out[...] = tmp


def _kron(const floating[:, ::1] A, const floating[:, ::1] B, out, int n_threads):
    """``A ⊗ B`` into ``out`` (2-D, writeable, the operands' dtype, strides whole elements)."""
    cdef floating[:, :] o = out
    cdef Py_ssize_t ors, ocs
    ors, ocs = _strides(out)
    if o.shape[0] == 0 or o.shape[1] == 0:
        return out
    with nogil:
        kron_into(A, B, &o[0, 0], ors, ocs, n_threads)
    return out


def _jacobian_wx(const floating[::1] x, bint order_c, out, int n_threads):
    """``xᵀ ⊗ I_n`` (order_c False) or ``I_n ⊗ xᵀ`` into ``out`` (n, n m, strides whole elements)."""
    cdef floating[:, :] o = out
    cdef Py_ssize_t n = o.shape[0], i, ors, ocs
    ors, ocs = _strides(out)
    if o.shape[0] == 0 or o.shape[1] == 0:
        return out
    cdef floating* base = &o[0, 0]
    with nogil:
        if n_threads <= 1:
            for i in range(n):
                wx_row(x, i, n, order_c, base + i * ors, ocs)
        else:
            for i in prange(n, schedule='static', num_threads=n_threads):
                wx_row(x, i, n, order_c, base + i * ors, ocs)
    return out


cdef void _csr_row(const index_t[::1] Pp, const index_t[::1] Pi, const floating[::1] Pd,
                   const index_t[::1] Qp, const index_t[::1] Qi, const floating[::1] Qd,
                   Py_ssize_t nQ, const index_t[::1] indptr, index_t[::1] indices,
                   floating[::1] data, Py_ssize_t r) noexcept nogil:
    cdef Py_ssize_t mQ = Qp.shape[0] - 1
    cdef Py_ssize_t i = r // mQ, k = r - (r // mQ) * mQ, t = indptr[r], p, q, c0, p0 = Pp[i]
    cdef floating v
    cdef index_t l
    if Qp[k + 1] - Qp[k] == 1:  # Q's row k holds one entry (an identity's, as in xᵀ ⊗ I): no inner loop
        q = Qp[k]
        l = Qi[q]
        v = Qd[q]
        for p in range(p0, Pp[i + 1]):
            indices[t + p - p0] = <index_t>(Pi[p] * nQ + l)
            data[t + p - p0] = Pd[p] * v
        return
    for p in range(p0, Pp[i + 1]):
        c0 = Pi[p] * nQ
        v = Pd[p]
        for q in range(Qp[k], Qp[k + 1]):
            indices[t] = <index_t>(c0 + Qi[q])
            data[t] = v * Qd[q]
            t = t + 1


def kron_csr_indptr(const index_t[::1] Pp, const index_t[::1] Qp, index_t[::1] indptr):
    r"""Row pointer of ``P ⊗ Q`` from the factors' row pointers: row ``i mQ + k`` holds nnz(P_i) nnz(Q_k)."""
    cdef Py_ssize_t mP = Pp.shape[0] - 1, mQ = Qp.shape[0] - 1, i, k, r = 0, cp
    with nogil:
        indptr[0] = 0
        for i in range(mP):
            cp = Pp[i + 1] - Pp[i]
            for k in range(mQ):
                indptr[r + 1] = <index_t>(indptr[r] + cp * (Qp[k + 1] - Qp[k]))
                r = r + 1


def kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, Py_ssize_t nQ, indptr, indices, data, int n_threads):
    """Protocol: the CSR arrays of ``P ⊗ Q`` (row pointer, then column indices and values)."""
    kron_csr_indptr(Pp, Qp, indptr)
    kron_csr_fill(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, n_threads)


def kron_csr_fill(const index_t[::1] Pp, const index_t[::1] Pi, const floating[::1] Pd,
                  const index_t[::1] Qp, const index_t[::1] Qi, const floating[::1] Qd,
                  Py_ssize_t nQ, const index_t[::1] indptr, index_t[::1] indices,
                  floating[::1] data, int n_threads):
    r"""CSR column indices and values of ``P ⊗ Q`` (factors in CSR, sorted indices).

    Row ``i mQ + k``: columns ``j nQ + l``, values ``p_ij q_kl`` over the stored
    (j, l), sorted within the row.  ``indptr`` must already hold the row pointer
    (:func:`kron_csr_indptr`).
    """
    cdef Py_ssize_t M = indptr.shape[0] - 1, r
    with nogil:
        if n_threads <= 1:
            for r in range(M):
                _csr_row(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, r)
        else:
            for r in prange(M, schedule='static', num_threads=n_threads):
                _csr_row(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, r)
