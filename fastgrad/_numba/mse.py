r"""Numba kernels for the linear-model MSE loss and gradient (docs/derivations.md, "MSE gradient of a linear model").

With A (N, D), targets Y (N, K), weights W (D, K) and residuals
``r_ik = y_ik - sum_l a_il w_lk``::

    loss     = scale * sum_i sum_k r_ik**2
    g_jk     = -2 * scale * sum_i a_ij r_ik            (matrix form: dW = -(2/N) A^T (Y - A W))

with ``scale = 1/(N K)`` for the mean and 1 for the sum.

One fused pass over A, read in place whatever its layout.  The rows are split
into a fixed number of blocks that depends only on N (``row_blocks``), so the
result is bitwise identical for every thread count; the block partials are
combined in block order.  Extra memory is O(D K blocks), never O(N); A is read
once from memory.  Within a block, by A's layout (one Numba specialization each):

* C-contiguous, or rows contiguous at any row stride (``A[::3]``, ``A[:, :k]``,
  ``A[::-1]``): row by row (four rows at a time), each row's residual formed
  and at once accumulated into the gradient partial (``_block_rows``);
* Fortran-contiguous (``df.to_numpy()``, ``A.T`` of a C array) or columns
  contiguous at any column stride: tiles of T consecutive rows, T x D elements
  about TILE_BYTES so that a tile stays in L2; per tile the residuals are formed
  column by column (down contiguous columns), then the gradient is accumulated
  column by column over the same tile, now in cache (``_block_tiles``); tiles in
  row order, T a function of (D, K, dtype) only;
* any other strides: whichever of the two walks A's smaller stride.

Preconditions (the caller's duty, done by ``fastgrad._validate.mse_inputs``):
A is float32/float64 of shape (N, D), any strides; Y is C-contiguous
float32/float64 of shape (N, K); WT is C-contiguous float64 of shape (K, D)
(the weights transposed); ``out`` is a writeable (D, K) array.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llir
from numba import config as numba_config
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

from .. import _config
from .._config import NUMBA_FLAGS
from ._targets import jit_targets, launch

__all__ = [
    # the backend protocol (see docs/architecture.md)
    "loss_grad",
    "loss_grad_vec",
    # the low-level API: @njit kernels usable in a user's own @njit code
    "row_blocks",
    "mse_block",
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
# Column tiles (A with contiguous columns): T rows at a time, the tile read from
# memory for the residuals and again, from cache, for the gradient.  T x D
# elements of A (plus the T x K residuals) about TILE_BYTES, so that the tile
# stays in L2 (512 KiB per core here) between the two passes; but each column run
# at least COLUMN_RUN_BYTES (whole pages for the hardware prefetcher: at D = 512
# float64, 32-row tiles ran at 2.5x the floor, 512-row ones at 1.2x, serial) and
# the tile at most TILE_MAX_BYTES (then it stays in L3).  A multiple of TILE_ALIGN
# rows.  Measured with 2 threads, medians interleaved against the read-once floor
# of the same bytes: 1.1-1.2x at (10^6, 16) and (2*10^5, 512) float64, 1.24-1.32x
# at (10^6, 64) float32, which converts every element to float64 twice (once per
# pass) and is compute-bound.  Tried and dropped: software prefetch of the next
# tile in bursts (1.3-2x slower than the hardware prefetcher alone), a float64
# copy of a float32 tile (the extra stores cost more than the conversions), the
# gradient pass of a tile fused with the residual pass of the next (no gain).
TILE_BYTES = 256 * 1024
COLUMN_RUN_BYTES = 4096
TILE_MAX_BYTES = 4 * 1024 * 1024
TILE_ALIGN = 8
# A group's rows are indexed as u, u + _1, ... with u = np.uint64(i): an unsigned
# index carries no negative-index wraparound code (a compare and a select per
# row and per y_ik), which measured 3-7% of the time at D = 64.
_1 = np.uint64(1)
_2 = np.uint64(2)
_3 = np.uint64(3)


#: Rows per block of the fixed partition of N rows: ``fastgrad._config.row_blocks`` compiled.
row_blocks = njit(**NUMBA_FLAGS)(_config.row_blocks)


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


if numba_config.DISABLE_JIT:  # pragma: no cover - exercised in a subprocess by the tests
    # NUMBA_DISABLE_JIT=1 runs the kernels as Python: the intrinsics have no Python form
    def _prefetch(A, i, t):
        """No-op: a prefetch hint has no effect on any result."""

    def _itemsize(A):
        return A.itemsize


# Options of the implementations chosen by ``@overload`` (by A's layout) below.
_OVERLOAD_OPTIONS = {k: v for k, v in NUMBA_FLAGS.items() if k in ("fastmath", "error_model", "nogil")}


def _prefetch_rows(A, i, rows, stop):
    """Hint the CPU to load rows ``i .. i + rows - 1`` of A, if they are before ``stop``.

    (This Python form runs only under ``NUMBA_DISABLE_JIT=1``: a hint, a no-op.)
    """


@overload(_prefetch_rows, jit_options=_OVERLOAD_OPTIONS)
def _prefetch_rows_impl(A, i, rows, stop):
    if A.layout == "C":

        def contiguous(A, i, rows, stop):
            if i + rows <= stop:  # this block's rows only
                line = CACHE_LINE // _itemsize(A)  # elements per cache line, a constant
                for t in range(0, rows * A.shape[1], line):
                    _prefetch(A, i, t)

        return contiguous

    def strided(A, i, rows, stop):  # each row on its own (rows at any stride)
        if i + rows <= stop:
            step = max(1, CACHE_LINE // max(abs(A.strides[1]), 1))  # elements per line
            for r in range(rows):
                for t in range(0, A.shape[1], step):
                    _prefetch(A, i + r, t)

    return strided


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
def _block_rows(A, Y, WT, start, stop, G):
    r"""One row block, row by row (A's rows contiguous): the rows go in groups of
    four, the last few one at a time.  See :func:`mse_block`."""
    n = (stop - start) // GROUP * GROUP
    if Y.shape[1] == 1:
        sq = _groups_k1(A, Y, WT[0], start, start + n, G[0])
    else:
        sq = _groups(A, Y, WT, start, start + n, G)
    return sq + _rows(A, Y, WT, start + n, stop, G)


@njit(**NUMBA_FLAGS)
def _tile_rows(D, K, itemsize):
    """Rows per column tile, from TILE_BYTES, COLUMN_RUN_BYTES and TILE_MAX_BYTES.

    A function of (D, K, dtype) only, so the tiles, like the blocks, never depend
    on the thread count.
    """
    row = max(D * itemsize + 8 * K, 1)  # bytes of A and of the residuals per row
    t = max(TILE_BYTES // row, COLUMN_RUN_BYTES // itemsize)
    t = min(t, TILE_MAX_BYTES // row)
    return max(TILE_ALIGN, t // TILE_ALIGN * TILE_ALIGN)


@njit(**NUMBA_FLAGS)
def _tile(A, Y, WT, i0, i1, G, R):
    r"""One tile of rows ``i0 <= i < i1``: ``G[k, j] += sum_i a_ij r_ik``; returns ``sum_ik r_ik**2``.

    First the residuals ``R[k, :] = y_ik - sum_j a_ij w_jk``, four columns of A
    at a time down the tile (A read from memory); then the gradient, four
    columns at a time over the same tile (A in cache), last columns first.
    """
    n = i1 - i0
    D = A.shape[1]
    K = Y.shape[1]
    for k in range(K):
        r = R[k]
        for t in range(n):
            r[t] = Y[i0 + t, k]
    j = 0
    while j + 4 <= D:
        c0 = A[i0:i1, j]
        c1 = A[i0:i1, j + 1]
        c2 = A[i0:i1, j + 2]
        c3 = A[i0:i1, j + 3]
        for k in range(K):
            r = R[k]
            w0 = WT[k, j]
            w1 = WT[k, j + 1]
            w2 = WT[k, j + 2]
            w3 = WT[k, j + 3]
            for t in range(n):
                r[t] -= (c0[t] * w0 + c1[t] * w1) + (c2[t] * w2 + c3[t] * w3)
        j += 4
    while j < D:
        c0 = A[i0:i1, j]
        for k in range(K):
            r = R[k]
            w0 = WT[k, j]
            for t in range(n):
                r[t] -= c0[t] * w0
        j += 1
    sq = 0.0
    for k in range(K):
        r = R[k]
        for t in range(n):
            sq += r[t] * r[t]
    # the gradient from the last column to the first: the columns read last by
    # the residual pass are the likeliest still in L2 (a tile of 512 rows at
    # D = 512 is 2 MiB: 1.31-1.33x -> 1.24-1.27x the floor at 2 threads)
    j = D
    while j > D // 4 * 4:
        j -= 1
        c0 = A[i0:i1, j]
        for k in range(K):
            r = R[k]
            s0 = 0.0
            for t in range(n):
                s0 += c0[t] * r[t]
            G[k, j] += s0
    while j >= 4:
        j -= 4
        c0 = A[i0:i1, j]
        c1 = A[i0:i1, j + 1]
        c2 = A[i0:i1, j + 2]
        c3 = A[i0:i1, j + 3]
        for k in range(K):
            r = R[k]
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for t in range(n):
                s0 += c0[t] * r[t]
                s1 += c1[t] * r[t]
                s2 += c2[t] * r[t]
                s3 += c3[t] * r[t]
            G[k, j] += s0
            G[k, j + 1] += s1
            G[k, j + 2] += s2
            G[k, j + 3] += s3
    return sq


@njit(**NUMBA_FLAGS)
def _block_tiles(A, Y, WT, start, stop, G):
    r"""One row block in column tiles (A's columns contiguous): tiles of T rows in
    row order, T from :func:`_tile_rows`.  See :func:`mse_block`."""
    D = A.shape[1]
    K = Y.shape[1]
    T = _tile_rows(D, K, _itemsize(A))
    R = np.empty((K, T))
    sq = 0.0
    for i0 in range(start, stop, T):
        sq += _tile(A, Y, WT, i0, min(i0 + T, stop), G, R)
    return sq


def _block(A, Y, WT, start, stop, G):
    """The block function for A's layout (this Python form runs only under ``NUMBA_DISABLE_JIT=1``)."""
    if abs(A.strides[1]) <= abs(A.strides[0]):
        return _block_rows(A, Y, WT, start, stop, G)
    return _block_tiles(A, Y, WT, start, stop, G)


@overload(_block, jit_options=_OVERLOAD_OPTIONS)
def _block_impl(A, Y, WT, start, stop, G):
    if A.layout == "C":
        return lambda A, Y, WT, start, stop, G: _block_rows(A, Y, WT, start, stop, G)
    if A.layout == "F":
        return lambda A, Y, WT, start, stop, G: _block_tiles(A, Y, WT, start, stop, G)

    def any_strides(A, Y, WT, start, stop, G):  # walk A along its smaller stride
        if abs(A.strides[1]) <= abs(A.strides[0]):
            return _block_rows(A, Y, WT, start, stop, G)
        return _block_tiles(A, Y, WT, start, stop, G)

    return any_strides


@njit(**NUMBA_FLAGS)
def mse_block(A, Y, WT, start, stop, G):
    r"""Accumulate one row block: ``G[k, j] += sum_i a_ij r_ik``; return ``sum_ik r_ik**2``.

    ``r_ik = y_ik - sum_j a_ij w_jk`` for ``start <= i < stop``.  G is (K, D)
    float64, the block's partial of the (un-scaled, sign-flipped) gradient.
    Sums over j run in float64 whatever A's dtype.  A may have any strides:
    contiguous rows go row by row (four at a time), contiguous columns in
    column tiles (see the module docstring); the order of the sums depends
    only on the shapes, the layout and the dtype.
    """
    return _block(A, Y, WT, start, stop, G)


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


def _mse_loss_grad(A, Y, WT, scale, out):
    r"""Fused MSE loss and gradient; writes ``out`` (D, K), returns the loss.

    ``g_jk = -2 scale sum_i a_ij (y_ik - sum_l a_il w_lk)``: every row block's
    partial ``G[b]`` and ``SQ[b]`` (``prange``: serial or parallel by target),
    then the partials combined in block order.  Compiled twice below:
    ``mse_loss_grad`` (serial, callable from a user's ``@njit`` code with
    validated inputs, see the module docstring) and ``mse_loss_grad_parallel``.
    """
    N = A.shape[0]
    rows = row_blocks(N)
    nb = _n_blocks(N)
    G = np.zeros((nb, Y.shape[1], A.shape[1]))
    SQ = np.zeros(nb)
    for b in prange(nb):
        start = b * rows
        SQ[b] = mse_block(A, Y, WT, start, min(start + rows, N), G[b])
    return mse_combine(G, SQ, scale, out)


mse_loss_grad, mse_loss_grad_parallel = jit_targets(_mse_loss_grad)


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


# ---------------------------------------------------------------------------
# The backend protocol


def loss_grad(A, Y, WT, scale, out, n_threads):
    """Protocol: fused loss and gradient into ``out`` (D, K) on ``n_threads`` threads; returns the loss."""
    return launch(mse_loss_grad, mse_loss_grad_parallel, n_threads, A, Y, WT, scale, out)


def loss_grad_vec(A, y, w):
    """Protocol: ``(loss, g)`` for one output, y (N,), w (D,) float64, mean reduction, serial."""
    return mse_loss_grad_vec(A, y, w)
