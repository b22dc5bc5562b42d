r"""Numba kernels for the linear-model MSE loss and gradient (seeds 000 and 004).

With A (N, D), targets Y (N, K), weights W (D, K) and residuals
``r_ik = y_ik - sum_l a_il w_lk``::

    loss     = scale * sum_i sum_k r_ik**2
    g_jk     = -2 * scale * sum_i a_ij r_ik            (seed 000: dW = -(2/N) A^T (Y - A W))

with ``scale = 1/(N K)`` for the mean and 1 for the sum.

One fused pass over the rows of A: each row's residual is formed and at once
accumulated into the gradient partial of its row block.  The rows are split into
a fixed number of blocks that depends only on N (``row_blocks``), so the result
is bitwise identical for every thread count; the block partials are combined in
block order.  Extra memory is O(D K blocks), never O(N); A is read once.

Preconditions (the caller's duty, done by ``fastgrad._validate.mse_inputs``):
A is C-contiguous float32/float64 of shape (N, D); Y is C-contiguous
float32/float64 of shape (N, K); WT is C-contiguous float64 of shape (K, D)
(the weights transposed); ``out`` is a writeable (D, K) array.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic

from .._config import MAX_ROW_BLOCKS, MIN_ROWS_PER_BLOCK, NUMBA_FLAGS, NUMBA_PARALLEL_FLAGS

__all__ = [
    "row_blocks",
    "mse_block",
    "mse_partials",
    "mse_partials_parallel",
    "mse_combine",
    "mse_loss_grad",
    "mse_loss_grad_parallel",
    "mse_loss_grad_vec",
]

# Rows are processed in groups of GROUP: each g_kj and w_jk is loaded once per
# group instead of once per row, and each group's dot products form
# independent reduction chains.
GROUP = 4
# Software prefetch distance: the rows about PREFETCH_BYTES ahead of the group
# being computed are requested from memory (streaming A from DRAM otherwise
# stalls on the dot products; the hardware prefetcher alone runs too short).
# The hint is non-temporal (A is read once): at D = 512 that ran 3-7% closer to
# the floor than a high-locality hint, and the same at D = 16..64.
PREFETCH_BYTES = 8192
CACHE_LINE = 64
# For one output the prefetch of a group is issued in two halves of HALF rows,
# before the dot products and before the gradient update: streaming A from DRAM
# (2 threads, interleaved against the read-once floor) that ran at 1.02-1.07x
# the floor at D = 16..512 float64, against 1.04-1.16x with one burst per group.
HALF = GROUP // 2
# A group's rows are indexed as u, u + _1, ... with u = np.uint64(i): an unsigned
# index carries no negative-index wraparound code (a compare and a select per
# row and per y_ik), which measured 3-7% of the time at D = 64.
_1 = np.uint64(1)
_2 = np.uint64(2)
_3 = np.uint64(3)


@njit(**NUMBA_FLAGS)
def row_blocks(N):
    """Rows per block of the fixed partition of N rows (depends on N only)."""
    rows = (N + MAX_ROW_BLOCKS - 1) // MAX_ROW_BLOCKS
    return max(rows, MIN_ROWS_PER_BLOCK)


@intrinsic
def _prefetch(typingctx, A, i, t):
    """Ask the CPU to start loading the cache line holding element ``t`` of the
    memory that starts at ``A[i, 0]`` (t may pass the end of row i: the rows are
    contiguous).  A hint: no effect on any result, never faults."""
    sig = types.void(A, i, t)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]],
                                       wraparound=False)
        i8p = builder.bitcast(ptr, llir.IntType(8).as_pointer())
        i32 = llir.IntType(32)
        fnty = llir.FunctionType(llir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [i8p, i32(0), i32(0), i32(1)])  # read, non-temporal (NTA), data
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _itemsize(typingctx, A):
    """Bytes per element of array A, as a compile-time constant (``A.itemsize``
    is a run-time field of the array struct: ``CACHE_LINE // A.itemsize`` cost a
    division per group of rows in the prefetch loop's trip count)."""
    sig = types.intp(A)

    def codegen(context, builder, signature, args):
        size = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        return context.get_constant(types.intp, size)

    return sig, codegen


@njit(**NUMBA_FLAGS)
def _prefetch_rows(A, i, rows, stop):
    """Hint the CPU to load rows ``i .. i + rows - 1`` of A, if they are before ``stop``."""
    if i + rows <= stop:  # this block's rows only
        line = CACHE_LINE // _itemsize(A)  # elements per cache line, a constant
        for t in range(0, rows * A.shape[1], line):
            _prefetch(A, i, t)


@njit(**NUMBA_FLAGS)
def _groups_k1(A, Y, w, start, stop, g):
    r"""One output (K = 1), rows four at a time: ``g_j += a_ij r_i``; returns ``sum_i r_i**2``.

    ``r_i = y_i - sum_j a_ij w_j`` for ``start <= i < stop``, ``stop - start`` a
    multiple of GROUP.  The prefetch of the group ``ahead`` rows on is issued in
    two halves, one before the dot products and one before the gradient update.
    """
    D = A.shape[1]
    ahead = GROUP + PREFETCH_BYTES // max(D * _itemsize(A), 1)  # prefetch distance in rows
    sq = 0.0
    for i in range(start, stop, GROUP):
        _prefetch_rows(A, i + ahead, HALF, stop)
        u = np.uint64(i)
        a0 = A[u]
        a1 = A[u + _1]
        a2 = A[u + _2]
        a3 = A[u + _3]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for j in range(D):
            s0 += a0[j] * w[j]
            s1 += a1[j] * w[j]
            s2 += a2[j] * w[j]
            s3 += a3[j] * w[j]
        r0 = Y[u, 0] - s0
        r1 = Y[u + _1, 0] - s1
        r2 = Y[u + _2, 0] - s2
        r3 = Y[u + _3, 0] - s3
        sq += (r0 * r0 + r1 * r1) + (r2 * r2 + r3 * r3)
        _prefetch_rows(A, i + ahead + HALF, HALF, stop)
        for j in range(D):
            g[j] += (a0[j] * r0 + a1[j] * r1) + (a2[j] * r2 + a3[j] * r3)
    return sq


@njit(**NUMBA_FLAGS)
def _groups(A, Y, WT, start, stop, G):
    r"""K outputs, rows four at a time: ``G[k, j] += a_ij r_ik``; returns ``sum_ik r_ik**2``.

    ``r_ik = y_ik - sum_j a_ij w_jk`` for ``start <= i < stop``, ``stop - start`` a
    multiple of GROUP.  Each w_k and g_k is read once per group.
    """
    D = A.shape[1]
    K = Y.shape[1]
    ahead = GROUP + PREFETCH_BYTES // max(D * _itemsize(A), 1)  # prefetch distance in rows
    sq = 0.0
    for i in range(start, stop, GROUP):
        _prefetch_rows(A, i + ahead, GROUP, stop)
        u = np.uint64(i)
        a0 = A[u]
        a1 = A[u + _1]
        a2 = A[u + _2]
        a3 = A[u + _3]
        for k in range(K):
            w_k = WT[k]
            g_k = G[k]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for j in range(D):
                s0 += a0[j] * w_k[j]
                s1 += a1[j] * w_k[j]
                s2 += a2[j] * w_k[j]
                s3 += a3[j] * w_k[j]
            r0 = Y[u, k] - s0
            r1 = Y[u + _1, k] - s1
            r2 = Y[u + _2, k] - s2
            r3 = Y[u + _3, k] - s3
            sq += (r0 * r0 + r1 * r1) + (r2 * r2 + r3 * r3)
            for j in range(D):
                g_k[j] += (a0[j] * r0 + a1[j] * r1) + (a2[j] * r2 + a3[j] * r3)
    return sq


@njit(**NUMBA_FLAGS)
def _rows(A, Y, WT, start, stop, G):
    r"""Rows one at a time: ``G[k, j] += a_ij r_ik``; returns ``sum_ik r_ik**2``."""
    D = A.shape[1]
    K = Y.shape[1]
    sq = 0.0
    for i in range(start, stop):
        a_i = A[i]
        for k in range(K):
            w_k = WT[k]
            g_k = G[k]
            s = 0.0
            for j in range(D):
                s += a_i[j] * w_k[j]
            r_ik = Y[i, k] - s
            sq += r_ik * r_ik
            for j in range(D):
                g_k[j] += a_i[j] * r_ik
    return sq


@njit(**NUMBA_FLAGS)
def mse_block(A, Y, WT, start, stop, G):
    r"""Accumulate one row block: ``G[k, j] += sum_i a_ij r_ik``; return ``sum_ik r_ik**2``.

    ``r_ik = y_ik - sum_j a_ij w_jk`` for ``start <= i < stop``.  G is (K, D)
    float64, the block's partial of the (un-scaled, sign-flipped) gradient.
    Sums over j run in float64 whatever A's dtype.  The rows go in groups of
    four, the last few one at a time.
    """
    n = (stop - start) // GROUP * GROUP
    if Y.shape[1] == 1:
        sq = _groups_k1(A, Y, WT[0], start, start + n, G[0])
    else:
        sq = _groups(A, Y, WT, start, start + n, G)
    return sq + _rows(A, Y, WT, start + n, stop, G)


@njit(**NUMBA_FLAGS)
def mse_partials(A, Y, WT, G, SQ):
    """Serial: fill block partials ``G[b]`` (K, D) and ``SQ[b]`` for every row block b."""
    N = A.shape[0]
    rows = row_blocks(N)
    for b in range(G.shape[0]):
        start = b * rows
        SQ[b] = mse_block(A, Y, WT, start, min(start + rows, N), G[b])


@njit(**NUMBA_PARALLEL_FLAGS)
def mse_partials_parallel(A, Y, WT, G, SQ):
    """Parallel over row blocks: same partials as :func:`mse_partials`, bit for bit."""
    N = A.shape[0]
    rows = row_blocks(N)
    for b in prange(G.shape[0]):
        start = b * rows
        SQ[b] = mse_block(A, Y, WT, start, min(start + rows, N), G[b])


@njit(**NUMBA_FLAGS)
def mse_combine(G, SQ, scale, out):
    r"""Combine block partials in block order: ``out[j, k] = -2 scale sum_b G[b, k, j]``.

    Returns ``loss = scale * sum_b SQ[b]``.  ``out`` is (D, K).
    """
    nb, K, D = G.shape
    sq = 0.0
    for b in range(nb):
        sq += SQ[b]
    for k in range(K):
        for j in range(D):
            acc = 0.0
            for b in range(nb):
                acc += G[b, k, j]
            out[j, k] = -2.0 * scale * acc
    return scale * sq


@njit(**NUMBA_FLAGS)
def _n_blocks(N):
    rows = row_blocks(N)
    return (N + rows - 1) // rows


@njit(**NUMBA_FLAGS)
def mse_loss_grad(A, Y, WT, scale, out):
    r"""Serial fused MSE loss and gradient; writes ``out`` (D, K), returns the loss.

    ``g_jk = -2 scale sum_i a_ij (y_ik - sum_l a_il w_lk)``.
    Callable from a user's ``@njit`` code (validated inputs, see module docstring).
    """
    nb = _n_blocks(A.shape[0])
    G = np.zeros((nb, Y.shape[1], A.shape[1]))
    SQ = np.zeros(nb)
    mse_partials(A, Y, WT, G, SQ)
    return mse_combine(G, SQ, scale, out)


@njit(**NUMBA_FLAGS)
def mse_loss_grad_parallel(A, Y, WT, scale, out):
    """As :func:`mse_loss_grad`, the row blocks spread over Numba's threads."""
    nb = _n_blocks(A.shape[0])
    G = np.zeros((nb, Y.shape[1], A.shape[1]))
    SQ = np.zeros(nb)
    mse_partials_parallel(A, Y, WT, G, SQ)
    return mse_combine(G, SQ, scale, out)


@njit(**NUMBA_FLAGS)
def mse_loss_grad_vec(A, y, w):
    r"""Serial MSE loss and gradient for one output: y (N,), w (D,) float64, mean reduction.

    ``g_j = -(2/N) sum_i a_ij (y_i - sum_l a_il w_l)``; returns ``(loss, g)`` with g a
    new (D,) float64 array.  The same kernel (and partition) as :func:`mse_loss_grad`,
    entered with 1-D vectors so that a tiny call costs one compiled call.
    """
    N, D = A.shape
    out = np.empty((D, 1))
    loss = mse_loss_grad(A, y.reshape((N, 1)), w.reshape((1, D)), 1.0 / N, out)
    return loss, out.reshape(D)
