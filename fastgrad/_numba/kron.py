r"""Numba kernels for Kronecker products and the vec-Jacobians built from them.

The math is in docs/derivations.md, "Kronecker and vec Jacobians".

Kronecker product of A (mA, nA) and B (mB, nB), an (mA mB, nA nB) matrix::

    (A ⊗ B)[i mB + k, j nB + l] = a_ij b_kl

Every output element is written exactly once, output row by output row; the
parallel kernels spread the output rows over Numba's threads (no reduction, so
the result is bitwise identical for every thread count).

``xᵀ ⊗ I_n`` / ``I_n ⊗ xᵀ`` (∂(W x)/∂vec(W)) have their own kernels,
which never build the identity.  ``kron_csr_*`` build the CSR arrays of the
Kronecker product of two CSR factors directly (only the structural nonzeros).

The backend protocol (``fastgrad._config.kernels('kron', 'numba')``, the same
names and arguments in every backend; plain Python functions, not callable
from ``@njit`` code):

* ``kron(A, B, out, n_threads)``: ``out[...] = A ⊗ B``;
* ``jacobian_wx(x, order_c, out, n_threads)``: ``xᵀ ⊗ I_n`` / ``I_n ⊗ xᵀ``;
* ``kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, n_threads)``:
  writes the row pointer, the column indices and the values of ``P ⊗ Q``.

``n_threads == 1`` runs the serial target (no thread pool touched).

The low-level API, ``@njit`` dispatchers callable from a user's own ``@njit``
code.  Each ``prange`` kernel is one body compiled for two targets
(:func:`fastgrad._numba._targets.jit_targets`): the serial one under the plain
name, the parallel one (output rows over Numba's threads) under
``<name>_parallel``:

* ``kron_rows(A, B, out, r0, r1)``: output rows ``r0 <= r < r1`` of ``A ⊗ B``;
* ``kron_fill(A, B, out)`` / ``kron_fill_parallel``: ``out[...] = A ⊗ B``;
* ``jacobian_wx_fill(x, order_c, out)`` / ``jacobian_wx_fill_parallel``;
* ``kron_csr_indptr(Pp, Qp, indptr)``: the row pointer of ``P ⊗ Q``;
* ``kron_csr_fill(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data)`` /
  ``kron_csr_fill_parallel``: the column indices and values (``indptr`` filled).

Preconditions (the caller's duty, done by ``fastgrad.kron``): A, B, x are
C-contiguous arrays of one dtype (float32 or float64, the output's dtype);
``out`` is a writeable array of the output shape and dtype (any strides).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import NUMBA_FLAGS
from ._targets import jit_targets, launch

__all__ = [
    # the backend protocol (see docs/architecture.md)
    "kron",
    "jacobian_wx",
    "kron_csr",
    # the low-level API: @njit kernels usable in a user's own @njit code
    "kron_rows",
    "kron_fill",
    "kron_fill_parallel",
    "jacobian_wx_fill",
    "jacobian_wx_fill_parallel",
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


def _kron_fill(A, B, out):
    """``out[...] = A ⊗ B`` (A, B 2-D; out (mA mB, nA nB)), output row by output row.

    Compiled twice below: ``kron_fill`` (serial, callable from ``@njit`` code) and
    ``kron_fill_parallel`` (rows over Numba's threads, bitwise identical).
    """
    for r in prange(out.shape[0]):
        kron_rows(A, B, out, r, r + 1)


kron_fill, kron_fill_parallel = jit_targets(_kron_fill)


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


def _jacobian_wx_fill(x, order_c, out):
    r"""∂(W x)/∂vec(W) into ``out`` (n, n m): ``xᵀ ⊗ I_n`` (order F) or ``I_n ⊗ xᵀ`` (C).

    ``J[i, vec(a, b)] = δ_ia x_b``, since ``f = W x`` has ∂f_i/∂W_mn = δ_im x_n.
    Compiled twice below: ``jacobian_wx_fill`` (serial, callable from ``@njit``
    code) and ``jacobian_wx_fill_parallel`` (rows over Numba's threads).
    """
    n = out.shape[0]
    for i in prange(n):
        _wx_row(x, i, n, order_c, out[i])


jacobian_wx_fill, jacobian_wx_fill_parallel = jit_targets(_jacobian_wx_fill)


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
    p0 = Pp[i]
    if Qp[k + 1] - Qp[k] == 1:  # Q's row k holds one entry (an identity's, as in xᵀ ⊗ I): no inner loop
        q = Qp[k]
        l = Qi[q]
        w = Qd[q]
        # unsigned positions: no negative-index wraparound code, so the loop vectorises
        t0 = np.uint64(t)
        u0 = np.uint64(p0)
        for e in range(np.uint64(Pp[i + 1] - p0)):
            indices[t0 + e] = Pi[u0 + e] * nQ + l
            data[t0 + e] = Pd[u0 + e] * w
        return
    for p in range(p0, Pp[i + 1]):
        c0 = Pi[p] * nQ
        v = Pd[p]
        for q in range(Qp[k], Qp[k + 1]):
            indices[t] = c0 + Qi[q]
            data[t] = v * Qd[q]
            t += 1


def _kron_csr_fill(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data):
    r"""CSR column indices and values of ``P ⊗ Q`` (factors in CSR, sorted indices).

    Entry of row ``i mQ + k``: column ``j nQ + l``, value ``p_ij q_kl`` for the
    stored (j, l); the columns come out sorted within each row.  ``indptr`` must
    already hold the row pointer (:func:`kron_csr_indptr`).  Compiled twice
    below: ``kron_csr_fill`` (serial) and ``kron_csr_fill_parallel``.
    """
    for r in prange(indptr.shape[0] - 1):
        _csr_row(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, r)


kron_csr_fill, kron_csr_fill_parallel = jit_targets(_kron_csr_fill)


# ---------------------------------------------------------------------------
# The backend protocol


def kron(A, B, out, n_threads):
    """Protocol: ``out[...] = A ⊗ B`` (A, B C-contiguous 2-D; out 2-D, any strides) on ``n_threads``."""
    launch(kron_fill, kron_fill_parallel, n_threads, A, B, out)


def jacobian_wx(x, order_c, out, n_threads):
    """Protocol: ``xᵀ ⊗ I_n`` (``order_c`` False) or ``I_n ⊗ xᵀ`` into ``out`` (n, n m)."""
    launch(jacobian_wx_fill, jacobian_wx_fill_parallel, n_threads, x, order_c, out)


def kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, n_threads):
    """Protocol: the CSR arrays of ``P ⊗ Q`` (row pointer, then column indices and values)."""
    kron_csr_indptr(Pp, Qp, indptr)
    launch(kron_csr_fill, kron_csr_fill_parallel, n_threads,
           Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data)
