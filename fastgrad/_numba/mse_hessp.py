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

Compiled without fast-math (``NUMBA_EXACT_FLAGS``): every sum runs in the
order written, so the bits cannot depend on how the compiler vectorises a loop
in one context or another (serial or parallel target, freshly compiled or
loaded from the cache); the per-row dot products gain their speed from the four
rows' independent chains instead, and the updates of G vectorise as they are.

Preconditions (the caller's duty, done by ``fastgrad._validate.mse_hessp_inputs``):
A is float32/float64 of shape (N, D), any strides in whole elements; VT is
C-contiguous float64 (K, D) (the direction transposed); ``s`` is None or
C-contiguous float64 (N,); ``out`` is a writeable (D, K) float64 array.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import NUMBA_EXACT_FLAGS
from ._targets import jit_targets, launch
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


@njit(**NUMBA_EXACT_FLAGS)
def _weight(s, i):
    """``s_i``, or 1 when there are no sample weights (the None branch is compiled away)."""
    if s is None:
        return 1.0
    return s[i]


@njit(**NUMBA_EXACT_FLAGS)
def _dot4(a, v, D):
    r"""``sum_l a_l v_l`` in four interleaved partial sums (l mod 4), ``(p0 + p1) + (p2 + p3)``.

    The order is fixed by the code (no fast-math needed), and the four partial
    sums are independent lanes the compiler can keep in one vector register.
    """
    p0 = 0.0
    p1 = 0.0
    p2 = 0.0
    p3 = 0.0
    D4 = D // 4 * 4
    for l in range(0, D4, 4):
        p0 += a[l] * v[l]
        p1 += a[l + 1] * v[l + 1]
        p2 += a[l + 2] * v[l + 2]
        p3 += a[l + 3] * v[l + 3]
    for l in range(D4, D):
        p0 += a[l] * v[l]
    return (p0 + p1) + (p2 + p3)


@njit(**NUMBA_EXACT_FLAGS)
def _block_rows(A, VT, s, start, stop, G):
    r"""Rows contiguous: ``G[k, j] += a_ij t_ik``, ``t_ik = s_i sum_l a_il v_lk``, four rows at a time."""
    D = A.shape[1]
    K = VT.shape[0]
    D4 = D // 4 * 4
    i = start
    while i + GROUP <= stop:
        a0 = A[i]
        a1 = A[i + 1]
        a2 = A[i + 2]
        a3 = A[i + 3]
        for k in range(K):
            v_k = VT[k]
            g_k = G[k]
            # _dot4 of each of the four rows, written out in one loop over l (16
            # independent partial sums; the same sums in the same order): called per
            # row, _dot4 was not inlined and cost 2.6x the time at D = 16
            p00 = 0.0
            p01 = 0.0
            p02 = 0.0
            p03 = 0.0
            p10 = 0.0
            p11 = 0.0
            p12 = 0.0
            p13 = 0.0
            p20 = 0.0
            p21 = 0.0
            p22 = 0.0
            p23 = 0.0
            p30 = 0.0
            p31 = 0.0
            p32 = 0.0
            p33 = 0.0
            for l in range(0, D4, 4):
                v0 = v_k[l]
                v1 = v_k[l + 1]
                v2 = v_k[l + 2]
                v3 = v_k[l + 3]
                p00 += a0[l] * v0
                p01 += a0[l + 1] * v1
                p02 += a0[l + 2] * v2
                p03 += a0[l + 3] * v3
                p10 += a1[l] * v0
                p11 += a1[l + 1] * v1
                p12 += a1[l + 2] * v2
                p13 += a1[l + 3] * v3
                p20 += a2[l] * v0
                p21 += a2[l + 1] * v1
                p22 += a2[l + 2] * v2
                p23 += a2[l + 3] * v3
                p30 += a3[l] * v0
                p31 += a3[l + 1] * v1
                p32 += a3[l + 2] * v2
                p33 += a3[l + 3] * v3
            for l in range(D4, D):
                v0 = v_k[l]
                p00 += a0[l] * v0
                p10 += a1[l] * v0
                p20 += a2[l] * v0
                p30 += a3[l] * v0
            t0 = ((p00 + p01) + (p02 + p03)) * _weight(s, i)
            t1 = ((p10 + p11) + (p12 + p13)) * _weight(s, i + 1)
            t2 = ((p20 + p21) + (p22 + p23)) * _weight(s, i + 2)
            t3 = ((p30 + p31) + (p32 + p33)) * _weight(s, i + 3)
            for j in range(D):
                g_k[j] += (a0[j] * t0 + a1[j] * t1) + (a2[j] * t2 + a3[j] * t3)
        i += GROUP
    while i < stop:
        a_i = A[i]
        for k in range(K):
            v_k = VT[k]
            g_k = G[k]
            t = _dot4(a_i, v_k, D) * _weight(s, i)
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
    launch(mse_hessp, mse_hessp_parallel, n_threads, A, VT, s, scale, alpha, out)
