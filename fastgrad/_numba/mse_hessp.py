r"""Numba kernel of the MSE Hessian-vector product for a dense A.

Derivation: docs/derivations.md, "MSE gradient of a linear model".

The MSE of a linear model is quadratic in the weights, so its Hessian does not
depend on w or y.  Per output k, with sample weights ``s_i`` (1 when absent)::

    (H v)_jk = 2 scale sum_i a_ij s_i sum_l a_il v_lk  +  2 alpha v_jk

(matrix form: ``H v = 2 scale A^T S (A v) + 2 alpha v``), ``scale = 1/(N K)``
for the mean (``1/(K sum_i s_i)`` with weights) and 1 for the sum.

One fused pass over A, read in place whatever its layout: each row's
``t_ik = s_i sum_l a_il v_lk`` is formed and at once accumulated into the
block partial ``G[k, j] += a_ij t_ik``.  The rows are split into the fixed
partition ``row_blocks(N)`` (a function of N only) and the block partials are
combined in block order, so the result is bitwise identical for every thread
count.  Within a block, by A's layout: contiguous rows (C order, rows at any
stride) row by row, four rows at a time; contiguous columns (Fortran order) in
tiles of T rows, first ``t`` down the columns of the tile, then the partial over
the same tile, now in cache (T by the tile rule of ``fastgrad._numba.mse``).

The row path is compiled with fastgrad's fast-math flags (re-association and
FMA contraction, never no-NaN/no-Inf), like the MSE gradient's: its reductions
over a row vectorise, which the written-out sums of an exact build did not
(scalar code, 1.7-2x the time at D = 16).  The tiles and the combination of the
block partials stay exact.  The bits are the same at every thread count: the
partition and the order of the combination do not depend on it, and an A of
other strides (Numba's layout 'A') runs one compiled target at every count, as
the MSE gradient does.

Preconditions (the caller's duty, done by ``fastgrad._validate.mse_hessp_inputs``):
A is float32/float64 of shape (N, D), any strides in whole elements; VT is
C-contiguous float64 (K, D) (the direction transposed); ``s`` is None or
C-contiguous float64 (N,); ``out`` is a writeable (D, K) float64 array.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import NUMBA_EXACT_FLAGS, NUMBA_FLAGS
from ._targets import jit_targets, launch, launch_one_target
from .mse import COLUMN_RUN_BYTES, TILE_ALIGN, TILE_BYTES, TILE_MAX_BYTES, row_blocks

__all__ = [
    # the backend protocol (see docs/architecture.md)
    "hessp",
    # the low-level API: @njit kernels usable in a user's own @njit code
    "hessp_block",
    "hessp_combine",
    "mse_hessp",
    "mse_hessp_parallel",
]

GROUP = 4  # rows per group on the row path: each v_k and g_k read once per group
_1 = np.uint64(1)
_2 = np.uint64(2)
_3 = np.uint64(3)


@njit(**NUMBA_FLAGS)
def _rows_k1(A, v, s, start, stop, g):
    r"""One output (K = 1) of :func:`_block_rows`: ``g_j += a_ij t_i``, ``t_i = s_i sum_l a_il v_l``.

    The same sums in the same order as the K-output loop of :func:`_block_rows`,
    with v and g held outside the row loop instead of taken as views of VT and G
    for every group (serial kernel at (10^4, 16): 71 -> 60 us).
    """
    D = A.shape[1]
    i = start
    while i + GROUP <= stop:
        u = np.uint64(i)
        a0 = A[u]
        a1 = A[u + _1]
        a2 = A[u + _2]
        a3 = A[u + _3]
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        for l in range(D):
            t0 += a0[l] * v[l]
            t1 += a1[l] * v[l]
            t2 += a2[l] * v[l]
            t3 += a3[l] * v[l]
        if s is not None:
            t0 *= s[u]
            t1 *= s[u + _1]
            t2 *= s[u + _2]
            t3 *= s[u + _3]
        for j in range(D):
            g[j] += (a0[j] * t0 + a1[j] * t1) + (a2[j] * t2 + a3[j] * t3)
        i += GROUP
    while i < stop:
        a_i = A[i]
        t = 0.0
        for l in range(D):
            t += a_i[l] * v[l]
        if s is not None:
            t *= s[i]
        for j in range(D):
            g[j] += a_i[j] * t
        i += 1


@njit(**NUMBA_FLAGS)
def _block_rows(A, VT, s, start, stop, G):
    r"""Rows contiguous: ``G[k, j] += a_ij t_ik``, ``t_ik = s_i sum_l a_il v_lk``, four rows at a time.

    The four rows' dot products are independent chains, and one update of
    ``g_k`` takes all four rows' terms; the reductions over l vectorise under
    re-association (the kernel is compiled with the fast-math flags of
    ``fastgrad._config``, never the no-NaN/no-Inf ones).  The rows are indexed
    through ``u = np.uint64(i)``: no negative-index wraparound code per row.
    """
    D = A.shape[1]
    K = VT.shape[0]
    if K == 1:
        return _rows_k1(A, VT[0], s, start, stop, G[0])
    i = start
    while i + GROUP <= stop:
        u = np.uint64(i)
        a0 = A[u]
        a1 = A[u + _1]
        a2 = A[u + _2]
        a3 = A[u + _3]
        for k in range(K):
            v_k = VT[k]
            g_k = G[k]
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            for l in range(D):
                t0 += a0[l] * v_k[l]
                t1 += a1[l] * v_k[l]
                t2 += a2[l] * v_k[l]
                t3 += a3[l] * v_k[l]
            if s is not None:
                t0 *= s[u]
                t1 *= s[u + _1]
                t2 *= s[u + _2]
                t3 *= s[u + _3]
            for j in range(D):
                g_k[j] += (a0[j] * t0 + a1[j] * t1) + (a2[j] * t2 + a3[j] * t3)
        i += GROUP
    while i < stop:
        a_i = A[i]
        for k in range(K):
            v_k = VT[k]
            g_k = G[k]
            t = 0.0
            for l in range(D):
                t += a_i[l] * v_k[l]
            if s is not None:
                t *= s[i]
            for j in range(D):
                g_k[j] += a_i[j] * t
        i += 1


@njit(**NUMBA_EXACT_FLAGS)
def _tile_rows(D, K, itemsize):
    """Rows per column tile: T x D elements of A (and T x K of t) about TILE_BYTES, each column run
    at least COLUMN_RUN_BYTES, the tile at most TILE_MAX_BYTES (the MSE kernels' rule); depends on
    (D, K, dtype) only, never on the thread count."""
    row = max(D * itemsize + 8 * K, 1)
    T = max(TILE_BYTES // row, COLUMN_RUN_BYTES // itemsize)
    T = min(T, TILE_MAX_BYTES // row)
    return max(TILE_ALIGN, T // TILE_ALIGN * TILE_ALIGN)


@njit(**NUMBA_EXACT_FLAGS)
def _block_tiles(A, VT, s, start, stop, G):
    r"""Columns contiguous: tiles of T rows; ``t`` down the tile's columns (A from memory), then
    ``G`` over the same tile (A in cache), four columns at a time in both passes."""
    D = A.shape[1]
    K = VT.shape[0]
    T = _tile_rows(D, K, A.itemsize)
    tt = np.empty((K, T))
    D4 = D // 4 * 4
    for i0 in range(start, stop, T):
        i1 = min(i0 + T, stop)
        n = i1 - i0
        tt[:, :n] = 0.0
        for l in range(0, D4, 4):
            c0 = A[i0:i1, l]
            c1 = A[i0:i1, l + 1]
            c2 = A[i0:i1, l + 2]
            c3 = A[i0:i1, l + 3]
            for k in range(K):
                t_k = tt[k]
                v0 = VT[k, l]
                v1 = VT[k, l + 1]
                v2 = VT[k, l + 2]
                v3 = VT[k, l + 3]
                for q in range(n):
                    t_k[q] += (c0[q] * v0 + c1[q] * v1) + (c2[q] * v2 + c3[q] * v3)
        for l in range(D4, D):
            c0 = A[i0:i1, l]
            for k in range(K):
                t_k = tt[k]
                v0 = VT[k, l]
                for q in range(n):
                    t_k[q] += c0[q] * v0
        if s is not None:
            for k in range(K):
                for q in range(n):
                    tt[k, q] *= s[i0 + q]
        for j in range(0, D4, 4):
            c0 = A[i0:i1, j]
            c1 = A[i0:i1, j + 1]
            c2 = A[i0:i1, j + 2]
            c3 = A[i0:i1, j + 3]
            for k in range(K):
                t_k = tt[k]
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                for q in range(n):
                    s0 += c0[q] * t_k[q]
                    s1 += c1[q] * t_k[q]
                    s2 += c2[q] * t_k[q]
                    s3 += c3[q] * t_k[q]
                G[k, j] += s0
                G[k, j + 1] += s1
                G[k, j + 2] += s2
                G[k, j + 3] += s3
        for j in range(D4, D):
            c0 = A[i0:i1, j]
            for k in range(K):
                t_k = tt[k]
                s0 = 0.0
                for q in range(n):
                    s0 += c0[q] * t_k[q]
                G[k, j] += s0


@njit(**NUMBA_EXACT_FLAGS)
def hessp_block(A, VT, s, start, stop, G):
    r"""Accumulate one row block: ``G[k, j] += sum_i a_ij s_i sum_l a_il v_lk`` (G (K, D) float64).

    A of any strides: contiguous rows row by row, contiguous columns in tiles
    (the order of the sums depends only on the shapes, the layout and the dtype).
    """
    if abs(A.strides[1]) <= abs(A.strides[0]):
        _block_rows(A, VT, s, start, stop, G)
    else:
        _block_tiles(A, VT, s, start, stop, G)


@njit(**NUMBA_EXACT_FLAGS)
def hessp_combine(G, VT, scale, alpha, out):
    r"""``out[j, k] = 2 scale sum_b G[b, k, j] + 2 alpha v_jk``, the blocks summed in block order."""
    nb, K, D = G.shape
    for k in range(K):
        for j in range(D):
            acc = 0.0
            for b in range(nb):
                acc += G[b, k, j]
            out[j, k] = 2.0 * scale * acc + 2.0 * alpha * VT[k, j]


def _mse_hessp(A, VT, s, scale, alpha, out):
    r"""``out = 2 scale A^T S A v + 2 alpha v`` (D, K): block partials (``prange``), combined in order.

    Compiled twice below: ``mse_hessp`` (serial, callable from a user's ``@njit``
    code with validated inputs, see the module docstring) and ``mse_hessp_parallel``.
    """
    N, D = A.shape
    K = VT.shape[0]
    rows = row_blocks(N)
    nb = (N + rows - 1) // rows
    G = np.zeros((nb, K, D))
    for b in prange(nb):
        start = b * rows
        hessp_block(A, VT, s, start, min(start + rows, N), G[b])
    hessp_combine(G, VT, scale, alpha, out)


mse_hessp, mse_hessp_parallel = jit_targets(_mse_hessp, NUMBA_EXACT_FLAGS)


# ---------------------------------------------------------------------------
# The backend protocol


def hessp(A, VT, s, scale, alpha, out, n_threads):
    """Protocol: ``H v`` into ``out`` (D, K) on ``n_threads`` threads."""
    if not (A.flags.c_contiguous or A.flags.f_contiguous):
        # strides known only at run time (Numba's layout 'A'): one machine code for
        # every thread count, as fastgrad._numba.mse.loss_grad does and for its reason
        launch_one_target(mse_hessp, mse_hessp_parallel, n_threads, A, VT, s, scale, alpha, out)
    else:
        launch(mse_hessp, mse_hessp_parallel, n_threads, A, VT, s, scale, alpha, out)
