r"""Numba kernels for Kronecker products and the vec-Jacobians built from them (seeds 001, 003).

Kronecker product of A (mA, nA) and B (mB, nB), an (mA mB, nA nB) matrix::

    (A ⊗ B)[i mB + k, j nB + l] = a_ij b_kl

Every output element is written exactly once, output row by output row; the
parallel kernels spread the output rows over Numba's threads (no reduction, so
the result is bitwise identical for every thread count).

``xᵀ ⊗ I_n`` / ``I_n ⊗ xᵀ`` (seed 001: ∂(W x)/∂vec(W)) have their own kernels,
which never build the identity.  ``kron_csr_*`` build the CSR arrays of the
Kronecker product of two CSR factors directly (only the structural nonzeros).

Preconditions (the caller's duty, done by ``fastgrad.kron``): A, B, x are
C-contiguous arrays of one dtype (float32 or float64, the output's dtype);
``out`` is a writeable array of the output shape and dtype (any strides).
"""

from __future__ import annotations

from numba import njit, prange

from .._config import NUMBA_FLAGS, NUMBA_PARALLEL_FLAGS

__all__ = [
    "kron_rows",
    "kron",
    "kron_parallel",
    "jacobian_wx",
    "jacobian_wx_parallel",
    "kron_csr_indptr",
    "kron_csr_fill",
    "kron_csr_fill_parallel",
]


@njit(**NUMBA_FLAGS)
def kron_rows(A, B, out, r0, r1):
    r"""Write output rows ``r0 <= r < r1`` of ``A ⊗ B``: ``out[i mB + k, j nB + l] = a_ij b_kl``."""
    nA = A.shape[1]
    mB, nB = B.shape
    for r in range(r0, r1):
        i = r // mB
        k = r - i * mB
        for j in range(nA):
            a_ij = A[i, j]
            c0 = j * nB
            for l in range(nB):
                out[r, c0 + l] = a_ij * B[k, l]


@njit(**NUMBA_FLAGS)
def kron(A, B, out):
    """Serial ``out[...] = A ⊗ B`` (A, B 2-D; out (mA mB, nA nB)). Callable from ``@njit`` code."""
    kron_rows(A, B, out, 0, out.shape[0])


@njit(**NUMBA_PARALLEL_FLAGS)
def kron_parallel(A, B, out):
    """As :func:`kron`, output rows spread over Numba's threads (bitwise identical)."""
    for r in prange(out.shape[0]):
        kron_rows(A, B, out, r, r + 1)


@njit(**NUMBA_FLAGS)
def _wx_row(x, i, n, order_c, row):
    """Row i of ``xᵀ ⊗ I_n`` (F) or ``I_n ⊗ xᵀ`` (C): every element written once."""
    m = x.shape[0]
    if order_c:
        # (I_n ⊗ xᵀ)[i, a m + b] = δ_ia x_b
        for a in range(n):
            if a == i:
                for b in range(m):
                    row[a * m + b] = x[b]
            else:
                for b in range(m):
                    row[a * m + b] = 0.0
    else:
        # (xᵀ ⊗ I_n)[i, b n + a] = x_b δ_ia
        for b in range(m):
            for a in range(n):
                row[b * n + a] = 0.0
            row[b * n + i] = x[b]


@njit(**NUMBA_FLAGS)
def jacobian_wx(x, order_c, out):
    r"""Serial ∂(W x)/∂vec(W) into ``out`` (n, n m): ``xᵀ ⊗ I_n`` (order F) or ``I_n ⊗ xᵀ`` (C).

    ``J[i, vec(a, b)] = δ_ia x_b`` (seed 001, 1.3.1: ∂f_i/∂W_mn = δ_im x_n).
    """
    n = out.shape[0]
    for i in range(n):
        _wx_row(x, i, n, order_c, out[i])


@njit(**NUMBA_PARALLEL_FLAGS)
def jacobian_wx_parallel(x, order_c, out):
    """As :func:`jacobian_wx`, rows spread over Numba's threads."""
    n = out.shape[0]
    for i in prange(n):
        _wx_row(x, i, n, order_c, out[i])


@njit(**NUMBA_FLAGS)
def kron_csr_indptr(Pp, Qp, indptr):
    r"""Row pointer of ``P ⊗ Q`` from the factors' row pointers: row ``i mQ + k`` holds nnz(P_i) nnz(Q_k)."""
    mP = Pp.shape[0] - 1
    mQ = Qp.shape[0] - 1
    indptr[0] = 0
    r = 0
    for i in range(mP):
        cp = Pp[i + 1] - Pp[i]
        for k in range(mQ):
            indptr[r + 1] = indptr[r] + cp * (Qp[k + 1] - Qp[k])
            r += 1


@njit(**NUMBA_FLAGS)
def _csr_row(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, r):
    mQ = Qp.shape[0] - 1
    i = r // mQ
    k = r - i * mQ
    t = indptr[r]
    for p in range(Pp[i], Pp[i + 1]):
        c0 = Pi[p] * nQ
        v = Pd[p]
        for q in range(Qp[k], Qp[k + 1]):
            indices[t] = c0 + Qi[q]
            data[t] = v * Qd[q]
            t += 1


@njit(**NUMBA_FLAGS)
def kron_csr_fill(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data):
    r"""Serial CSR column indices and values of ``P ⊗ Q`` (factors in CSR, sorted indices).

    Entry of row ``i mQ + k``: column ``j nQ + l``, value ``p_ij q_kl`` for the
    stored (j, l); the columns come out sorted within each row.
    """
    for r in range(indptr.shape[0] - 1):
        _csr_row(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, r)


@njit(**NUMBA_PARALLEL_FLAGS)
def kron_csr_fill_parallel(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data):
    """As :func:`kron_csr_fill`, output rows spread over Numba's threads."""
    for r in prange(indptr.shape[0] - 1):
        _csr_row(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, r)
