r"""Numba kernels for the linear-model MSE loss and gradient (docs/derivations.md, "MSE gradient of a linear model").

With A (N, D), targets Y (N, K), weights W (D, K), sample weights s (N,) and
an intercept b (K,), the residuals ``r_ik = (y_ik - b_k) - sum_l a_il w_lk`` and::

    loss     = scale * sum_i sum_k s_i r_ik**2
    g_jk     = -2 * scale * sum_i a_ij s_i r_ik        (matrix form: dW = -(2/N) A^T S (Y - A W - b))
    gb_k     = -2 * scale * sum_i s_i r_ik

with ``scale = 1/(K sum_i s_i)`` for the mean and 1 for the sum; s None means
unit weights (``scale = 1/(N K)``), b None no intercept.  A None argument is
a type of its own to Numba: its branches are compiled away, so the plain model
runs the same machine code as a kernel written without them.

One fused pass over A, read in place whatever its layout.  The rows are split
into a fixed number of blocks that depends only on N (``row_blocks``), so the
result is bitwise identical for every thread count; the block partials are
combined in block order.  Extra memory is O(D K blocks), never O(N); A is read
once from memory.  Within a block, by A's layout (one Numba specialization each):

* C-contiguous, or rows contiguous at any row stride (``A[::3]``, ``A[:, :k]``,
  ``A[::-1]``): row by row (four rows at a time), each row's residual formed
  and at once accumulated into the gradient partial (``block_rows``);
* Fortran-contiguous (``df.to_numpy()``, ``A.T`` of a C array) or columns
  contiguous at any column stride: tiles of T consecutive rows, T x D elements
  about TILE_BYTES so that a tile stays in L2; per tile the residuals are formed
  column by column (down contiguous columns), then the gradient is accumulated
  column by column over the same tile, now in cache (``block_tiles``); tiles in
  row order, T a function of (D, K, dtype) only;
* any other strides: whichever of the two walks A's smaller stride.

Accuracy: a block's rows are summed in chunks (256 to 1024 rows by D and K, see
``chunk_rows_for``, or one tile), each chunk from zero; the chunk partials are
added into the block partial, and the block partials into the result, with
compensated summation (Knuth's TwoSum).  The rounding error of a sum over N rows
is that of one chunk (a quarter of its rows in additions) plus a few units,
whatever N, where a plain running sum grows with N (numpy's BLAS product
``A.T @ r`` as well) and numpy's pairwise sum with log N.

The steps, in order (the same names in ``fastgrad/_cython/mse.pyx``):

1. ``row_blocks``      rows per block of the fixed partition;
2. ``mse_partials``    every block's partial, blocks over threads;
3. ``mse_block``       one block, by A's layout: ``block_rows`` or ``block_tiles``;
4. ``block_rows``      chunks of rows: ``chunk_rows`` (``rows_k1``/``rows_k``: four
   rows at a time, ``rows_one``: the rest), each added with ``add_compensated``;
5. ``block_tiles``     tiles of ``tile_rows`` rows: ``chunk_tile``, each added with
   ``add_compensated``;
6. ``mse_combine``     the block partials in block order (``combine_intercept``
   for the intercept's);
7. ``loss_grad``       the backend protocol over the above.

The kernels the protocol runs (``model_loss_grad`` and its parallel target)
write steps 2-3 inline and call the private ``_block_rows``/``_chunk_rows``,
which take a flag saying whether K == 1 is known when compiling: each level of
calls is optimised again with everything it calls, so a cold first call costs
less with fewer levels and without the K > 1 kernel when it cannot run
(``mse_grad`` of a vector, a fresh cache: about 9 s before, 5.7 s after).  The
public functions above keep their signatures for a user's ``@njit`` code.

Preconditions (the caller's duty, done by ``fastgrad._validate.mse_inputs``):
A is float32/float64 of shape (N, D), any strides; Y is C-contiguous
float32/float64 of shape (N, K); WT is C-contiguous float64 of shape (K, D)
(the weights transposed); s is None or C-contiguous float64 (N,) with finite
weights >= 0; b is None or C-contiguous float64 (K,); ``out`` is a writeable
(D, K) float64 array, ``gb`` None or a writeable (K,) float64 array.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llir
from numba import config as numba_config
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

from .. import _config
from .._config import NUMBA_EXACT_FLAGS, NUMBA_FLAGS
from ._targets import jit_targets, launch, launch_one_target

__all__ = [
    # the backend protocol (see docs/architecture.md)
    "loss_grad",
    "loss_grad_vec",
    # the low-level API: @njit kernels usable in a user's own @njit code
    "row_blocks",
    "mse_partials",
    "mse_partials_parallel",
    "mse_block",
    "block_rows",
    "block_tiles",
    "chunk_rows_for",
    "tile_rows",
    "mse_combine",
    "combine_intercept",
    "mse_model_loss_grad",
    "mse_model_loss_grad_parallel",
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
# Rows per chunk of a row block (``chunk_rows_for``): each chunk is summed from
# zero and added into the block's partial with compensation (see "Accuracy"
# above).  About CHUNK_ELEMENTS elements of A x outputs per chunk, at least
# CHUNK_ROWS and at most CHUNK_MAX_ROWS rows, a multiple of GROUP.  Each chunk
# costs a fixed set-up (its partial zeroed, the row walk entered and left, the
# compensated add): at (10^6, 16), 2 threads, builds side by side in one process,
# 256-row chunks at every D ran 4-8% slower than this rule with Numba (2-3% with
# Cython), and one chunk per block (plain sums over whole blocks) 1-4% faster.
# The cap keeps a chunk's plain sums short.
CHUNK_ROWS = 256
CHUNK_ELEMENTS = 16384
CHUNK_MAX_ROWS = 1024
# Within a chunk the loss is summed with compensation too: plain sums over runs
# of LOSS_RUN rows (four groups in the row walk), LOSS_RUN_TILE rows in a tile (a
# vectorised sum), each run added with two_sum_add.  A power of 2, a multiple of
# GROUP.  (Compensating every group cost 10-20% at D = 16 in cache.)
LOSS_RUN = 16
LOSS_RUN_TILE = 64
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


@njit(**NUMBA_EXACT_FLAGS)
def two_sum_add(total, comp, x):
    r"""One compensated step (Knuth's TwoSum): ``(total + x, comp + the exact rounding error of that sum)``.

    Compiled without fast-math (re-association would cancel the error term to
    0); branch-free, so a loop of them vectorises.
    """
    t = total + x
    z = t - total
    comp += (total - (t - z)) + (x - z)
    return t, comp


@njit(**NUMBA_EXACT_FLAGS)
def finish_sum(total, comp):
    r"""A compensated sum's final value: ``total + comp``, or ``total`` alone when it is not finite.

    Once the running total overflows to Inf (or holds Inf or NaN) the error term
    is NaN (``Inf - Inf``) and would turn an Inf result into NaN.
    """
    s = total + comp
    return s if s == s else total  # NaN only from a non-finite total (a NaN total: both are NaN)


@njit(**NUMBA_EXACT_FLAGS)
def add_compensated(s, c, x):
    r"""``s += x`` elementwise, the rounding errors kept in ``c`` (:func:`two_sum_add`); 1-D arrays of one length.

    (1-D so that a call per chunk reshapes nothing: the callers flatten their
    (K, D) partials once per block.  A reshape here, a call into Numba's C
    helper per chunk, cost 0-5% at (10^6, 16).)
    """
    for t in range(s.size):
        s[t], c[t] = two_sum_add(s[t], c[t], x[t])


@njit(**NUMBA_EXACT_FLAGS)
def finish_compensated(s, c):
    r"""``s += c``: the compensated sums' final values (:func:`finish_sum`: s alone where it is not finite); 1-D."""
    for t in range(s.size):
        s[t] = finish_sum(s[t], c[t])


@njit(**NUMBA_FLAGS)
def rows_k1(A, Y, w, s, b, start, stop, limit, g, gb):
    r"""One output (K = 1), rows four at a time: ``g_j += a_ij q_i``, ``gb += q_i``; returns ``sum_i q_i r_i``.

    ``r_i = (y_i - b) - sum_j a_ij w_j`` and ``q_i = s_i r_i`` for ``start <= i < stop``,
    ``stop - start`` a multiple of GROUP (s None: ``q_i = r_i``; b None: no
    intercept; gb None: not accumulated; a None argument compiles its branch away).
    The prefetch of the group ``ahead`` rows on is issued in two halves, one
    before the dot products and one before the gradient update, for rows before
    ``limit`` (the end of the row block, past the chunk's end).
    """
    D = A.shape[1]
    ahead = GROUP + PREFETCH_BYTES // max(D * _itemsize(A), 1)  # prefetch distance in rows
    sq = 0.0
    sqc = 0.0  # the loss: plain sums x over LOSS_RUN rows, added with compensation (two_sum_add)
    x = 0.0
    for i in range(start, stop, GROUP):
        _prefetch_rows(A, i + ahead, HALF, limit)
        u = np.uint64(i)
        a0 = A[u]
        a1 = A[u + _1]
        a2 = A[u + _2]
        a3 = A[u + _3]
        d0 = 0.0
        d1 = 0.0
        d2 = 0.0
        d3 = 0.0
        for j in range(D):
            d0 += a0[j] * w[j]
            d1 += a1[j] * w[j]
            d2 += a2[j] * w[j]
            d3 += a3[j] * w[j]
        y0 = Y[u, 0]
        y1 = Y[u + _1, 0]
        y2 = Y[u + _2, 0]
        y3 = Y[u + _3, 0]
        if b is not None:
            y0 -= b[0]
            y1 -= b[0]
            y2 -= b[0]
            y3 -= b[0]
        r0 = y0 - d0
        r1 = y1 - d1
        r2 = y2 - d2
        r3 = y3 - d3
        q0 = r0
        q1 = r1
        q2 = r2
        q3 = r3
        if s is not None:
            q0 = s[u] * r0
            q1 = s[u + _1] * r1
            q2 = s[u + _2] * r2
            q3 = s[u + _3] * r3
        x += (q0 * r0 + q1 * r1) + (q2 * r2 + q3 * r3)
        if (i - start) & (LOSS_RUN - 1) == LOSS_RUN - GROUP:  # every LOSS_RUN rows
            sq, sqc = two_sum_add(sq, sqc, x)
            x = 0.0
        if gb is not None:
            gb[0] += (q0 + q1) + (q2 + q3)
        _prefetch_rows(A, i + ahead + HALF, HALF, limit)
        for j in range(D):
            g[j] += (a0[j] * q0 + a1[j] * q1) + (a2[j] * q2 + a3[j] * q3)
    sq, sqc = two_sum_add(sq, sqc, x)
    return finish_sum(sq, sqc)


@njit(**NUMBA_FLAGS)
def rows_k(A, Y, WT, s, b, start, stop, limit, G, gb):
    r"""K outputs, rows four at a time: ``G[k, j] += a_ij q_ik``, ``gb_k += q_ik``; returns ``sum_ik q_ik r_ik``.

    ``r_ik = (y_ik - b_k) - sum_j a_ij w_jk``, ``q_ik = s_i r_ik`` for
    ``start <= i < stop``, ``stop - start`` a multiple of GROUP.  Each w_k and
    g_k is read once per group.  None arguments and ``limit`` as in :func:`rows_k1`.
    """
    D = A.shape[1]
    K = Y.shape[1]
    ahead = GROUP + PREFETCH_BYTES // max(D * _itemsize(A), 1)  # prefetch distance in rows
    sq = 0.0
    sqc = 0.0  # the loss as in rows_k1
    x = 0.0
    for i in range(start, stop, GROUP):
        _prefetch_rows(A, i + ahead, GROUP, limit)
        u = np.uint64(i)
        a0 = A[u]
        a1 = A[u + _1]
        a2 = A[u + _2]
        a3 = A[u + _3]
        for k in range(K):
            w_k = WT[k]
            g_k = G[k]
            d0 = 0.0
            d1 = 0.0
            d2 = 0.0
            d3 = 0.0
            for j in range(D):
                d0 += a0[j] * w_k[j]
                d1 += a1[j] * w_k[j]
                d2 += a2[j] * w_k[j]
                d3 += a3[j] * w_k[j]
            y0 = Y[u, k]
            y1 = Y[u + _1, k]
            y2 = Y[u + _2, k]
            y3 = Y[u + _3, k]
            if b is not None:
                y0 -= b[k]
                y1 -= b[k]
                y2 -= b[k]
                y3 -= b[k]
            r0 = y0 - d0
            r1 = y1 - d1
            r2 = y2 - d2
            r3 = y3 - d3
            q0 = r0
            q1 = r1
            q2 = r2
            q3 = r3
            if s is not None:
                q0 = s[u] * r0
                q1 = s[u + _1] * r1
                q2 = s[u + _2] * r2
                q3 = s[u + _3] * r3
            x += (q0 * r0 + q1 * r1) + (q2 * r2 + q3 * r3)
            if gb is not None:
                gb[k] += (q0 + q1) + (q2 + q3)
            for j in range(D):
                g_k[j] += (a0[j] * q0 + a1[j] * q1) + (a2[j] * q2 + a3[j] * q3)
        if (i - start) & (LOSS_RUN - 1) == LOSS_RUN - GROUP:  # every LOSS_RUN rows
            sq, sqc = two_sum_add(sq, sqc, x)
            x = 0.0
    sq, sqc = two_sum_add(sq, sqc, x)
    return finish_sum(sq, sqc)


@njit(**NUMBA_FLAGS)
def rows_one(A, Y, WT, s, b, start, stop, G, gb):
    r"""Rows one at a time: ``G[k, j] += a_ij q_ik``, ``gb_k += q_ik``; returns ``sum_ik q_ik r_ik``."""
    D = A.shape[1]
    K = Y.shape[1]
    sq = 0.0
    for i in range(start, stop):
        a_i = A[i]
        for k in range(K):
            w_k = WT[k]
            g_k = G[k]
            d = 0.0
            for j in range(D):
                d += a_i[j] * w_k[j]
            y_ik = Y[i, k]
            if b is not None:
                y_ik -= b[k]
            r_ik = y_ik - d
            q_ik = r_ik
            if s is not None:
                q_ik = s[i] * r_ik
            sq += q_ik * r_ik
            if gb is not None:
                gb[k] += q_ik
            for j in range(D):
                g_k[j] += a_i[j] * q_ik
    return sq


@njit(**NUMBA_FLAGS)
def _chunk_rows(A, Y, WT, s, b, start, stop, limit, G, gb, one_output):
    """:func:`chunk_rows`; ``one_output`` None when the caller knows K == 1 at compile time (then the
    K > 1 group kernel is not compiled at all), else False (K read at run time)."""
    n = (stop - start) // GROUP * GROUP
    if one_output is None:
        sq = rows_k1(A, Y, WT[0], s, b, start, start + n, limit, G[0], gb)
    elif Y.shape[1] == 1:
        sq = rows_k1(A, Y, WT[0], s, b, start, start + n, limit, G[0], gb)
    else:
        sq = rows_k(A, Y, WT, s, b, start, start + n, limit, G, gb)
    return sq + rows_one(A, Y, WT, s, b, start + n, stop, G, gb)


@njit(**NUMBA_FLAGS)
def chunk_rows(A, Y, WT, s, b, start, stop, limit, G, gb):
    r"""One chunk of rows ``start <= i < stop`` (A's rows contiguous): ``G += A^T S R``,
    ``gb += sum_i s_i r_i`` over the chunk; returns ``sum_ik s_i r_ik**2``.

    The rows go in groups of four (:func:`rows_k1`, :func:`rows_k`), the last
    few one at a time (:func:`rows_one`); rows are prefetched up to ``limit``.
    """
    return _chunk_rows(A, Y, WT, s, b, start, stop, limit, G, gb, False)


@njit(**NUMBA_FLAGS)
def _block_rows(A, Y, WT, s, b, start, stop, G, GB, one_output):
    """:func:`block_rows`; ``one_output`` as :func:`_chunk_rows`."""
    K, D = G.shape
    rows = chunk_rows_for(D, K)
    if stop - start <= rows:  # one chunk: straight into the block's partial
        return _chunk_rows(A, Y, WT, s, b, start, stop, stop, G, GB, one_output)
    g = G.reshape(K * D)  # the (K, D) partials as vectors, for add_compensated
    p = np.empty(K * D)
    P = p.reshape((K, D))
    gc = np.zeros(K * D)
    PB = np.empty(K)
    BC = np.zeros(K)
    sq = 0.0
    sqc = 0.0
    for c0 in range(start, stop, rows):
        c1 = min(c0 + rows, stop)
        p[:] = 0.0
        if GB is None:
            x = _chunk_rows(A, Y, WT, s, b, c0, c1, stop, P, None, one_output)
        else:
            PB[:] = 0.0
            x = _chunk_rows(A, Y, WT, s, b, c0, c1, stop, P, PB, one_output)
            add_compensated(GB, BC, PB)
        add_compensated(g, gc, p)
        sq, sqc = two_sum_add(sq, sqc, x)
    finish_compensated(g, gc)
    if GB is not None:
        finish_compensated(GB, BC)
    return finish_sum(sq, sqc)


@njit(**NUMBA_FLAGS)
def block_rows(A, Y, WT, s, b, start, stop, G, GB):
    r"""One row block, row by row (A's rows contiguous).  See :func:`mse_block`.

    Chunks of :func:`chunk_rows_for` rows (:func:`chunk_rows`), each summed from zero into a
    chunk partial, added into the block's partial with compensation.
    """
    return _block_rows(A, Y, WT, s, b, start, stop, G, GB, False)


@njit(**NUMBA_FLAGS)
def chunk_rows_for(D, K):
    """Rows per chunk of a row block, from CHUNK_ELEMENTS, CHUNK_ROWS and CHUNK_MAX_ROWS.

    A function of (D, K) only, so the chunks, like the blocks, never depend on
    the thread count.
    """
    rows = CHUNK_ELEMENTS // max(D * K, 1)
    rows = min(max(rows, CHUNK_ROWS), CHUNK_MAX_ROWS)
    return rows // GROUP * GROUP


@njit(**NUMBA_FLAGS)
def tile_rows(D, K, itemsize):
    """Rows per column tile, from TILE_BYTES, COLUMN_RUN_BYTES and TILE_MAX_BYTES.

    A function of (D, K, dtype) only, so the tiles, like the blocks, never depend
    on the thread count.
    """
    row = max(D * itemsize + 8 * K, 1)  # bytes of A and of the residuals per row
    t = max(TILE_BYTES // row, COLUMN_RUN_BYTES // itemsize)
    t = min(t, TILE_MAX_BYTES // row)
    return max(TILE_ALIGN, t // TILE_ALIGN * TILE_ALIGN)


@njit(**NUMBA_FLAGS)
def chunk_tile(A, Y, WT, s, b, i0, i1, P, PB, R):
    r"""One tile of rows ``i0 <= i < i1`` (A's columns contiguous): ``P[k, j] = sum_i a_ij q_ik``,
    ``PB[k] = sum_i q_ik``; returns ``sum_ik q_ik r_ik`` (``q_ik = s_i r_ik``).

    First the residuals ``R[k, :] = (y_ik - b_k) - sum_j a_ij w_jk``, eight
    columns of A per pass down the tile (A read from memory; four per pass ran
    4-6% slower at D = 64 and 512, 13% at float32), weighted in place; then
    the gradient, four columns at a time over the same tile (A in cache), last
    columns first.  P and PB are written, not added to.
    """
    n = i1 - i0
    D = A.shape[1]
    K = Y.shape[1]
    for k in range(K):
        r = R[k]
        for t in range(n):
            r[t] = Y[i0 + t, k]
        if b is not None:
            b_k = b[k]
            for t in range(n):
                r[t] -= b_k
    j = 0
    while j + 8 <= D:  # eight columns per pass over the residuals, as two groups of four (docstring)
        c0 = A[i0:i1, j]
        c1 = A[i0:i1, j + 1]
        c2 = A[i0:i1, j + 2]
        c3 = A[i0:i1, j + 3]
        c4 = A[i0:i1, j + 4]
        c5 = A[i0:i1, j + 5]
        c6 = A[i0:i1, j + 6]
        c7 = A[i0:i1, j + 7]
        for k in range(K):
            r = R[k]
            w0 = WT[k, j]
            w1 = WT[k, j + 1]
            w2 = WT[k, j + 2]
            w3 = WT[k, j + 3]
            w4 = WT[k, j + 4]
            w5 = WT[k, j + 5]
            w6 = WT[k, j + 6]
            w7 = WT[k, j + 7]
            for t in range(n):
                x = r[t] - ((c0[t] * w0 + c1[t] * w1) + (c2[t] * w2 + c3[t] * w3))
                r[t] = x - ((c4[t] * w4 + c5[t] * w5) + (c6[t] * w6 + c7[t] * w7))
        j += 8
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
    sqc = 0.0  # the loss in runs of LOSS_RUN_TILE rows, the runs added with compensation
    for k in range(K):
        r = R[k]
        for t0 in range(0, n, LOSS_RUN_TILE):
            t1 = min(t0 + LOSS_RUN_TILE, n)
            x = 0.0
            if s is None:
                for t in range(t0, t1):
                    x += r[t] * r[t]
            else:
                for t in range(t0, t1):
                    q = s[i0 + t] * r[t]
                    x += q * r[t]
                    r[t] = q  # from here on R holds the weighted residuals
            sq, sqc = two_sum_add(sq, sqc, x)
        if PB is not None:
            sb = 0.0
            for t in range(n):
                sb += r[t]
            PB[k] = sb
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
            P[k, j] = s0
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
            P[k, j] = s0
            P[k, j + 1] = s1
            P[k, j + 2] = s2
            P[k, j + 3] = s3
    return finish_sum(sq, sqc)


@njit(**NUMBA_FLAGS)
def block_tiles(A, Y, WT, s, b, start, stop, G, GB):
    r"""One row block in column tiles (A's columns contiguous).  See :func:`mse_block`.

    Tiles of T rows in row order, T from :func:`tile_rows`; each tile's partial
    (:func:`chunk_tile`) added into the block's partial with compensation.
    """
    K, D = G.shape
    T = tile_rows(D, K, _itemsize(A))
    R = np.empty((K, T))
    g = G.reshape(K * D)  # the (K, D) partials as vectors, for add_compensated
    p = np.empty(K * D)
    P = p.reshape((K, D))
    gc = np.zeros(K * D)
    PB = np.empty(K)
    BC = np.zeros(K)
    sq = 0.0
    sqc = 0.0
    for i0 in range(start, stop, T):
        i1 = min(i0 + T, stop)
        if GB is None:
            x = chunk_tile(A, Y, WT, s, b, i0, i1, P, None, R)
        else:
            x = chunk_tile(A, Y, WT, s, b, i0, i1, P, PB, R)
            add_compensated(GB, BC, PB)
        add_compensated(g, gc, p)
        sq, sqc = two_sum_add(sq, sqc, x)
    finish_compensated(g, gc)
    if GB is not None:
        finish_compensated(GB, BC)
    return finish_sum(sq, sqc)


def _block(A, Y, WT, s, b, start, stop, G, GB, one_output):
    """The block function for A's layout (this Python form runs only under ``NUMBA_DISABLE_JIT=1``)."""
    if abs(A.strides[1]) <= abs(A.strides[0]):
        return _block_rows(A, Y, WT, s, b, start, stop, G, GB, one_output)
    return block_tiles(A, Y, WT, s, b, start, stop, G, GB)


@overload(_block, jit_options=_OVERLOAD_OPTIONS)
def _block_impl(A, Y, WT, s, b, start, stop, G, GB, one_output):
    if A.layout == "C":
        return lambda A, Y, WT, s, b, start, stop, G, GB, one_output: _block_rows(
            A, Y, WT, s, b, start, stop, G, GB, one_output)
    if A.layout == "F":
        return lambda A, Y, WT, s, b, start, stop, G, GB, one_output: block_tiles(
            A, Y, WT, s, b, start, stop, G, GB)

    def any_strides(A, Y, WT, s, b, start, stop, G, GB, one_output):  # walk A along its smaller stride
        if abs(A.strides[1]) <= abs(A.strides[0]):
            return _block_rows(A, Y, WT, s, b, start, stop, G, GB, one_output)
        return block_tiles(A, Y, WT, s, b, start, stop, G, GB)

    return any_strides


@njit(**NUMBA_FLAGS)
def mse_block(A, Y, WT, s, b, start, stop, G, GB):
    r"""Accumulate one row block: ``G[k, j] += sum_i a_ij s_i r_ik``, ``GB[k] += sum_i s_i r_ik``;
    return ``sum_ik s_i r_ik**2``.

    ``r_ik = (y_ik - b_k) - sum_j a_ij w_jk`` for ``start <= i < stop``.  G is
    (K, D) float64, the block's partial of the (un-scaled, sign-flipped)
    gradient; GB (K,) float64 the intercept's, or None.  s (N,) float64 sample
    weights or None (unit weights), b (K,) float64 intercept or None (a None
    argument compiles its branch away).  Sums over j run in float64 whatever
    A's dtype.  A may have any strides: contiguous rows go row by row (four at
    a time) in chunks of :func:`chunk_rows_for` rows, contiguous columns in column tiles
    (see the module docstring); each chunk's partial is added into G with
    compensation.  The order of the sums depends only on the shapes, the layout
    and the dtype.
    """
    return _block(A, Y, WT, s, b, start, stop, G, GB, False)


@njit(**NUMBA_EXACT_FLAGS)
def mse_combine(G, SQ, scale, out):
    r"""Combine block partials in block order: ``out[j, k] = -2 scale sum_b G[b, k, j]``.

    Returns ``loss = scale * sum_b SQ[b]``.  ``out`` is (D, K).  The sums over
    the blocks are compensated (:func:`two_sum_add`).
    """
    nb, K, D = G.shape
    sq = 0.0
    c = 0.0
    for blk in range(nb):
        sq, c = two_sum_add(sq, c, SQ[blk])
    # block by block, every (k, j) at once: the steps of two_sum_add written out
    # over contiguous rows (no fast-math here, so they stay as written), which
    # vectorise across j; each (k, j) sees the same operations in the same order
    # as a loop over the blocks for one (k, j) at a time.  (Not add_compensated per
    # block: that call is not inlined, 2x this loop's time at (K, D) = (1, 16); and
    # it cannot be inlined at Numba's level, which would compile it with its
    # fast-math callers' flags.)
    S = np.zeros((K, D))
    C = np.zeros((K, D))
    for blk in range(nb):
        for k in range(K):
            s_k = S[k]
            c_k = C[k]
            g = G[blk, k]
            for j in range(D):
                s = s_k[j]
                x = g[j]
                t = s + x
                z = t - s
                c_k[j] += (s - (t - z)) + (x - z)
                s_k[j] = t
    for k in range(K):
        for j in range(D):
            out[j, k] = -2.0 * scale * finish_sum(S[k, j], C[k, j])
    return scale * finish_sum(sq, c)


@njit(**NUMBA_EXACT_FLAGS)
def combine_intercept(GB, scale, gb):
    r"""Combine the intercept's block partials in block order: ``gb[k] = -2 scale sum_b GB[b, k]`` (compensated)."""
    nb, K = GB.shape
    for k in range(K):
        acc = 0.0
        e = 0.0
        for blk in range(nb):
            acc, e = two_sum_add(acc, e, GB[blk, k])
        gb[k] = -2.0 * scale * finish_sum(acc, e)


def _mse_partials(A, Y, WT, s, b, G, SQ, GB):
    r"""Every row block's partials ``G[blk]``, ``SQ[blk]`` and (GB not None) ``GB[blk]``
    (:func:`mse_block`; ``prange``: serial or parallel by target)."""
    N = A.shape[0]
    rows = row_blocks(N)
    for blk in prange(G.shape[0]):
        start = blk * rows
        if GB is None:
            SQ[blk] = mse_block(A, Y, WT, s, b, start, min(start + rows, N), G[blk], None)
        else:
            SQ[blk] = mse_block(A, Y, WT, s, b, start, min(start + rows, N), G[blk], GB[blk])


mse_partials, mse_partials_parallel = jit_targets(_mse_partials)


def _model_loss_grad(A, Y, WT, s, b, scale, out, gb, one_output):
    r"""Fused loss and gradients of the weighted linear model with an intercept.

    ``r_ik = (y_ik - b_k) - sum_l a_il w_lk``: writes ``out[j, k] = -2 scale
    sum_i a_ij s_i r_ik`` (D, K) and, gb not None, ``gb[k] = -2 scale sum_i
    s_i r_ik`` (K,); returns ``scale sum_ik s_i r_ik**2``.  s (N,) float64 or
    None (unit weights), b (K,) float64 or None (no intercept).  Every row
    block's partial (the loop of :func:`mse_partials`, blocks over threads in
    the parallel target), then the partials combined in block order
    (:func:`mse_combine`, :func:`combine_intercept`).  Validated inputs (see
    the module docstring); callable from a user's ``@njit`` code.

    The block loop is written here rather than called (``mse_partials``,
    ``mse_block``): every level of calls is optimised again with all it calls,
    and the two levels saved cost about 2 s of a cold first call.  ``one_output``
    None when K == 1 is known at compile time (the vector entry: the K > 1
    kernels are not compiled, about 2 s more), else False.
    """
    N = A.shape[0]
    rows = row_blocks(N)
    nb = (N + rows - 1) // rows
    K = Y.shape[1]
    G = np.zeros((nb, K, A.shape[1]))
    SQ = np.zeros(nb)
    if gb is None:
        for blk in prange(nb):
            start = blk * rows
            SQ[blk] = _block(A, Y, WT, s, b, start, min(start + rows, N), G[blk], None, one_output)
    else:
        GB = np.zeros((nb, K))
        for blk in prange(nb):
            start = blk * rows
            SQ[blk] = _block(A, Y, WT, s, b, start, min(start + rows, N), G[blk], GB[blk], one_output)
        combine_intercept(GB, scale, gb)
    return mse_combine(G, SQ, scale, out)


model_loss_grad, model_loss_grad_parallel = jit_targets(_model_loss_grad)


@njit(**NUMBA_FLAGS)
def mse_model_loss_grad(A, Y, WT, s, b, scale, out, gb):
    r"""Fused loss and gradients of the weighted linear model with an intercept (serial); see
    :func:`_model_loss_grad`.  Callable from a user's ``@njit`` code with validated inputs."""
    return model_loss_grad(A, Y, WT, s, b, scale, out, gb, False)


@njit(**NUMBA_FLAGS)
def mse_model_loss_grad_parallel(A, Y, WT, s, b, scale, out, gb):
    r"""The parallel target of :func:`mse_model_loss_grad` (blocks over threads, same sums)."""
    return model_loss_grad_parallel(A, Y, WT, s, b, scale, out, gb, False)


@njit(**NUMBA_FLAGS)
def mse_loss_grad(A, Y, WT, scale, out):
    r"""Fused MSE loss and gradient; writes ``out`` (D, K), returns the loss (serial).

    ``g_jk = -2 scale sum_i a_ij (y_ik - sum_l a_il w_lk)``: :func:`mse_model_loss_grad`
    with unit weights and no intercept; callable from a user's ``@njit`` code
    with validated inputs (see the module docstring).
    """
    return mse_model_loss_grad(A, Y, WT, None, None, scale, out, None)


@njit(**NUMBA_FLAGS)
def mse_loss_grad_parallel(A, Y, WT, scale, out):
    r"""The parallel target of :func:`mse_loss_grad` (blocks over threads)."""
    return mse_model_loss_grad_parallel(A, Y, WT, None, None, scale, out, None)


@njit(**NUMBA_FLAGS)
def mse_loss_grad_vec(A, y, w):
    r"""Serial MSE loss and gradient for one output: y (N,), w (D,) float64, mean reduction.

    ``g_j = -(2/N) sum_i a_ij (y_i - sum_l a_il w_l)``; returns ``(loss, g)`` with g a
    new (D,) float64 array.  The same kernel (and partition) as :func:`mse_loss_grad`,
    entered with 1-D vectors so that a tiny call costs one compiled call.
    """
    N, D = A.shape
    out = np.empty((D, 1))
    loss = model_loss_grad(A, y.reshape((N, 1)), w.reshape((1, D)), None, None, 1.0 / N, out, None, None)
    return loss, out.reshape(D)


# ---------------------------------------------------------------------------
# The backend protocol


def loss_grad(A, Y, WT, s, b, scale, out, gb, n_threads):
    """Protocol: fused loss and gradients into ``out`` (D, K) and ``gb`` (K,) or None on ``n_threads``
    threads; returns the loss (see :func:`mse_model_loss_grad`)."""
    one_output = None if Y.shape[1] == 1 else False  # K == 1: compile (and cache) only its row kernel
    if not (A.flags.c_contiguous or A.flags.f_contiguous):
        # An A of any other strides (Numba's layout 'A': strides known only at run
        # time) runs the parallel target at every thread count.  Its reductions over
        # strided rows or columns, compiled with fast-math, were vectorized in one
        # target and not in the other in some orders of compiling and loading from
        # the cache (a CI run with a cold cache): one unit in the last place apart
        # at one and two threads.  One machine code for every thread count keeps the
        # bits the same; the cost is the parallel launch on small inputs of these
        # layouts.  (Copying each tile into a Fortran scratch tile did not make the
        # two targets agree in every order, and cost a quarter of the time.)
        return launch_one_target(model_loss_grad, model_loss_grad_parallel, n_threads,
                                 A, Y, WT, s, b, scale, out, gb, one_output)
    return launch(model_loss_grad, model_loss_grad_parallel, n_threads, A, Y, WT, s, b, scale, out, gb, one_output)


def loss_grad_vec(A, y, w):
    """Protocol: ``(loss, g)`` for one output, y (N,), w (D,) float64, mean reduction, serial."""
    return mse_loss_grad_vec(A, y, w)
