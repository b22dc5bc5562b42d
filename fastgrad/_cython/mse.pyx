# cython: language_level=3
r"""Cython kernels for the linear-model MSE loss and gradient (docs/derivations.md, "MSE gradient of a linear model").

With A (N, D), Y (N, K), W (D, K) and ``r_ik = y_ik - sum_l a_il w_lk``::

    loss = scale * sum_ik r_ik**2
    g_jk = -2 * scale * sum_i a_ij r_ik        (matrix form: dW = -(2/N) A^T (Y - A W))

One fused pass over A, read in place whatever its strides; rows split into a
fixed partition of blocks (given by the caller, a function of N only), each
block's partial written to its own slot, the slots combined in block order:
bitwise identical for every thread count.  Within a block, by A's strides
(``loss_grad`` reads them): contiguous rows (C order, or rows at any stride) go
row by row, four at a time (``block_rows``); contiguous columns (Fortran order,
``df.to_numpy()``, ``A.T`` of a C array) go in tiles of T rows, residuals then
gradient column by column, the tile staying in L2 between the two passes
(``block_tiles``); any other strides one row at a time (``block_strided``).
Same algorithms as fastgrad/_numba/mse.py.
"""

from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

import numpy as np

from fastgrad._config import row_blocks

cdef enum:
    # rows processed together: w_k and g_k are read once per group of GROUP rows
    GROUP = 4
    # for one output the prefetch of a group goes in two halves of HALF rows
    HALF = 2
    # software prefetch: rows about PREFETCH_BYTES ahead of the current group are
    # requested from memory (the hardware prefetcher alone runs too short)
    PREFETCH_BYTES = 8192
    CACHE_LINE = 64
    # column tiles of T rows: T x D elements of A (and T x K residuals) about
    # TILE_BYTES, so that the tile is still in L2 for the gradient pass, but each
    # column run at least COLUMN_RUN_BYTES and the tile at most TILE_MAX_BYTES;
    # T a multiple of TILE_ALIGN (the same T as fastgrad/_numba/mse.py, whose
    # comments give the measurements)
    TILE_BYTES = 262144
    COLUMN_RUN_BYTES = 4096
    TILE_MAX_BYTES = 4194304
    TILE_ALIGN = 8


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define FASTGRAD_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    #else
    #define FASTGRAD_PREFETCH(p) ((void)0)
    #endif
    """
    void prefetch "FASTGRAD_PREFETCH"(const void* p) noexcept nogil


cdef inline void prefetch_rows(const char* first, const char* last) noexcept nogil:
    """Hint the CPU to load the bytes ``first .. last - 1`` (no effect on results)."""
    while first < last:
        prefetch(first)
        first = first + CACHE_LINE


cdef inline void prefetch_row_run(const floating_a* A, Py_ssize_t lda, Py_ssize_t D,
                                  Py_ssize_t i, Py_ssize_t rows) noexcept nogil:
    """Hint the CPU to load rows ``i .. i + rows - 1`` (row stride ``lda`` elements, D used)."""
    cdef const floating_a* p
    cdef Py_ssize_t q
    if lda == D:  # contiguous rows: one run
        p = A + i * D
        prefetch_rows(<const char*>p, <const char*>(p + rows * D))
    else:
        for q in range(rows):
            p = A + (i + q) * lda
            prefetch_rows(<const char*>p, <const char*>(p + D))


cdef double mse_block(const floating_a* A, const floating_y* Y, const double* WT,
                      Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G) noexcept nogil:
    """``G[k, j] += sum_i a_ij r_ik`` over rows start <= i < stop; return ``sum_ik r_ik**2``.

    ``r_ik = y_ik - sum_j a_ij w_jk``; sums over j run in float64 whatever A's type.
    """
    cdef Py_ssize_t i = start, j, k
    cdef Py_ssize_t ahead = GROUP + PREFETCH_BYTES // max(D * <Py_ssize_t>sizeof(floating_a), 1)
    cdef double sq = 0.0, s, s0, s1, s2, s3, r_ik, r0, r1, r2, r3
    cdef const floating_a* a0
    cdef const floating_a* a1
    cdef const floating_a* a2
    cdef const floating_a* a3
    cdef const floating_a* p
    cdef const double* w_k
    cdef double* g_k
    if K == 1:
        # one output: w and g are plain vectors, y_i = Y[i]
        w_k = WT
        g_k = G
        while i + GROUP <= stop:
            # the prefetch of the group `ahead` rows on goes in two halves: before
            # the dot products and before the gradient update
            if i + ahead + GROUP <= stop:
                p = A + (i + ahead) * D
                prefetch_rows(<const char*>p, <const char*>(p + HALF * D))
            a0 = A + i * D
            a1 = a0 + D
            a2 = a1 + D
            a3 = a2 + D
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for j in range(D):
                s0 = s0 + a0[j] * w_k[j]
                s1 = s1 + a1[j] * w_k[j]
                s2 = s2 + a2[j] * w_k[j]
                s3 = s3 + a3[j] * w_k[j]
            r0 = Y[i] - s0
            r1 = Y[i + 1] - s1
            r2 = Y[i + 2] - s2
            r3 = Y[i + 3] - s3
            sq = sq + ((r0 * r0 + r1 * r1) + (r2 * r2 + r3 * r3))
            if i + ahead + GROUP <= stop:
                p = A + (i + ahead + HALF) * D
                prefetch_rows(<const char*>p, <const char*>(p + HALF * D))
            for j in range(D):
                g_k[j] = g_k[j] + ((a0[j] * r0 + a1[j] * r1) + (a2[j] * r2 + a3[j] * r3))
            i = i + GROUP
    else:
        # GROUP rows at a time: w_k and g_k are read once per group
        while i + GROUP <= stop:
            if i + ahead + GROUP <= stop:
                p = A + (i + ahead) * D
                prefetch_rows(<const char*>p, <const char*>(p + GROUP * D))
            a0 = A + i * D
            a1 = a0 + D
            a2 = a1 + D
            a3 = a2 + D
            for k in range(K):
                w_k = WT + k * D
                g_k = G + k * D
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                for j in range(D):
                    s0 = s0 + a0[j] * w_k[j]
                    s1 = s1 + a1[j] * w_k[j]
                    s2 = s2 + a2[j] * w_k[j]
                    s3 = s3 + a3[j] * w_k[j]
                r0 = Y[i * K + k] - s0
                r1 = Y[(i + 1) * K + k] - s1
                r2 = Y[(i + 2) * K + k] - s2
                r3 = Y[(i + 3) * K + k] - s3
                sq = sq + ((r0 * r0 + r1 * r1) + (r2 * r2 + r3 * r3))
                for j in range(D):
                    g_k[j] = g_k[j] + ((a0[j] * r0 + a1[j] * r1) + (a2[j] * r2 + a3[j] * r3))
            i = i + GROUP
    # the last stop - i < GROUP rows one at a time
    while i < stop:
        a0 = A + i * D
        for k in range(K):
            w_k = WT + k * D
            g_k = G + k * D
            s = 0.0
            for j in range(D):
                s = s + a0[j] * w_k[j]
            r_ik = Y[i * K + k] - s
            sq = sq + r_ik * r_ik
            for j in range(D):
                g_k[j] = g_k[j] + a0[j] * r_ik
        i = i + 1
    return sq


cdef double block_rows(const floating_a* A, Py_ssize_t lda, const floating_y* Y, const double* WT,
                       Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                       double* G) noexcept nogil:
    """``mse_block`` for rows that are contiguous, row i at ``A + i * lda`` (lda may be negative).

    The same sums as ``mse_block`` (rows in groups of four, w_k and g_k read once
    per group, the last few rows one at a time, software prefetch ``ahead`` rows
    on); a copy, so that the C-order kernel is compiled exactly as it was (with
    the row stride a variable, GCC made it 7-27% slower at D = 16..64).
    """
    cdef Py_ssize_t i = start, j, k
    cdef Py_ssize_t ahead = GROUP + PREFETCH_BYTES // max(D * <Py_ssize_t>sizeof(floating_a), 1)
    cdef double sq = 0.0, s, s0, s1, s2, s3, r_ik, r0, r1, r2, r3
    cdef const floating_a* a0
    cdef const floating_a* a1
    cdef const floating_a* a2
    cdef const floating_a* a3
    cdef const double* w_k
    cdef double* g_k
    if K == 1:
        # one output: w and g are plain vectors, y_i = Y[i]
        w_k = WT
        g_k = G
        while i + GROUP <= stop:
            # the prefetch of the group `ahead` rows on goes in two halves: before
            # the dot products and before the gradient update
            if i + ahead + GROUP <= stop:
                prefetch_row_run(A, lda, D, i + ahead, HALF)
            a0 = A + i * lda
            a1 = a0 + lda
            a2 = a1 + lda
            a3 = a2 + lda
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for j in range(D):
                s0 = s0 + a0[j] * w_k[j]
                s1 = s1 + a1[j] * w_k[j]
                s2 = s2 + a2[j] * w_k[j]
                s3 = s3 + a3[j] * w_k[j]
            r0 = Y[i] - s0
            r1 = Y[i + 1] - s1
            r2 = Y[i + 2] - s2
            r3 = Y[i + 3] - s3
            sq = sq + ((r0 * r0 + r1 * r1) + (r2 * r2 + r3 * r3))
            if i + ahead + GROUP <= stop:
                prefetch_row_run(A, lda, D, i + ahead + HALF, HALF)
            for j in range(D):
                g_k[j] = g_k[j] + ((a0[j] * r0 + a1[j] * r1) + (a2[j] * r2 + a3[j] * r3))
            i = i + GROUP
    else:
        # GROUP rows at a time: w_k and g_k are read once per group
        while i + GROUP <= stop:
            if i + ahead + GROUP <= stop:
                prefetch_row_run(A, lda, D, i + ahead, GROUP)
            a0 = A + i * lda
            a1 = a0 + lda
            a2 = a1 + lda
            a3 = a2 + lda
            for k in range(K):
                w_k = WT + k * D
                g_k = G + k * D
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                for j in range(D):
                    s0 = s0 + a0[j] * w_k[j]
                    s1 = s1 + a1[j] * w_k[j]
                    s2 = s2 + a2[j] * w_k[j]
                    s3 = s3 + a3[j] * w_k[j]
                r0 = Y[i * K + k] - s0
                r1 = Y[(i + 1) * K + k] - s1
                r2 = Y[(i + 2) * K + k] - s2
                r3 = Y[(i + 3) * K + k] - s3
                sq = sq + ((r0 * r0 + r1 * r1) + (r2 * r2 + r3 * r3))
                for j in range(D):
                    g_k[j] = g_k[j] + ((a0[j] * r0 + a1[j] * r1) + (a2[j] * r2 + a3[j] * r3))
            i = i + GROUP
    # the last stop - i < GROUP rows one at a time
    while i < stop:
        a0 = A + i * lda
        for k in range(K):
            w_k = WT + k * D
            g_k = G + k * D
            s = 0.0
            for j in range(D):
                s = s + a0[j] * w_k[j]
            r_ik = Y[i * K + k] - s
            sq = sq + r_ik * r_ik
            for j in range(D):
                g_k[j] = g_k[j] + a0[j] * r_ik
        i = i + 1
    return sq


cdef inline Py_ssize_t tile_rows(Py_ssize_t D, Py_ssize_t K, Py_ssize_t itemsize) noexcept nogil:
    """Rows per column tile, from TILE_BYTES, COLUMN_RUN_BYTES and TILE_MAX_BYTES.

    A function of (D, K, dtype) only: the tiles, like the blocks, never depend
    on the thread count.
    """
    cdef Py_ssize_t row = max(D * itemsize + 8 * K, 1)  # bytes of A and of the residuals per row
    cdef Py_ssize_t t = max(TILE_BYTES // row, COLUMN_RUN_BYTES // itemsize)
    t = min(t, TILE_MAX_BYTES // row)
    return max(<Py_ssize_t>TILE_ALIGN, t // TILE_ALIGN * TILE_ALIGN)


cdef double block_tiles(const floating_a* A, Py_ssize_t ldc, const floating_y* Y, const double* WT,
                        Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                        double* G) noexcept nogil:
    """``mse_block`` for columns that are contiguous, column j at ``A + j * ldc``.

    Tiles of T rows in row order.  Per tile: the residuals ``R[k, :]`` formed
    four columns at a time down the tile (A read from memory), then the
    gradient over the same tile (A in cache), last columns first.
    """
    cdef Py_ssize_t T = tile_rows(D, K, <Py_ssize_t>sizeof(floating_a))
    cdef Py_ssize_t i0, n, t, j, k
    cdef double sq = 0.0, w0, w1, w2, w3, s0, s1, s2, s3, s4, s5, s6, s7
    cdef const floating_a* c0
    cdef const floating_a* c1
    cdef const floating_a* c2
    cdef const floating_a* c3
    cdef const floating_a* c4
    cdef const floating_a* c5
    cdef const floating_a* c6
    cdef const floating_a* c7
    cdef double* r
    cdef double* R = <double*>malloc((T * K + 1) * sizeof(double))
    if R == NULL:  # no memory for the residuals of a tile: the same sums, one row at a time
        return block_strided(A, 1, ldc, Y, WT, D, K, start, stop, G)
    i0 = start
    while i0 < stop:
        n = min(T, stop - i0)
        for k in range(K):
            r = R + k * T
            for t in range(n):
                r[t] = Y[(i0 + t) * K + k]
        j = 0
        while j + 4 <= D:
            c0 = A + j * ldc + i0
            c1 = c0 + ldc
            c2 = c1 + ldc
            c3 = c2 + ldc
            for k in range(K):
                r = R + k * T
                w0 = WT[k * D + j]
                w1 = WT[k * D + j + 1]
                w2 = WT[k * D + j + 2]
                w3 = WT[k * D + j + 3]
                for t in range(n):
                    r[t] = r[t] - ((c0[t] * w0 + c1[t] * w1) + (c2[t] * w2 + c3[t] * w3))
            j = j + 4
        while j < D:
            c0 = A + j * ldc + i0
            for k in range(K):
                r = R + k * T
                w0 = WT[k * D + j]
                for t in range(n):
                    r[t] = r[t] - c0[t] * w0
            j = j + 1
        for k in range(K):
            r = R + k * T
            for t in range(n):
                sq = sq + r[t] * r[t]
        # the gradient, from the last column to the first (the columns read last
        # by the residual pass are the likeliest still in L2): the last D % 4
        # one at a time, then four if D // 4 is odd, then eight at a time (GCC
        # vectorises each sum into one chain of FMAs, whose latency four chains
        # left exposed)
        j = D
        while j > D // 4 * 4:
            j = j - 1
            c0 = A + j * ldc + i0
            for k in range(K):
                r = R + k * T
                s0 = 0.0
                for t in range(n):
                    s0 = s0 + c0[t] * r[t]
                G[k * D + j] += s0
        if (j // 4) % 2 == 1:
            j = j - 4
            c0 = A + j * ldc + i0
            c1 = c0 + ldc
            c2 = c1 + ldc
            c3 = c2 + ldc
            for k in range(K):
                r = R + k * T
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                for t in range(n):
                    s0 = s0 + c0[t] * r[t]
                    s1 = s1 + c1[t] * r[t]
                    s2 = s2 + c2[t] * r[t]
                    s3 = s3 + c3[t] * r[t]
                G[k * D + j] += s0
                G[k * D + j + 1] += s1
                G[k * D + j + 2] += s2
                G[k * D + j + 3] += s3
        while j >= 8:
            j = j - 8
            c0 = A + j * ldc + i0
            c1 = c0 + ldc
            c2 = c1 + ldc
            c3 = c2 + ldc
            c4 = c3 + ldc
            c5 = c4 + ldc
            c6 = c5 + ldc
            c7 = c6 + ldc
            for k in range(K):
                r = R + k * T
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                s4 = 0.0
                s5 = 0.0
                s6 = 0.0
                s7 = 0.0
                for t in range(n):
                    s0 = s0 + c0[t] * r[t]
                    s1 = s1 + c1[t] * r[t]
                    s2 = s2 + c2[t] * r[t]
                    s3 = s3 + c3[t] * r[t]
                    s4 = s4 + c4[t] * r[t]
                    s5 = s5 + c5[t] * r[t]
                    s6 = s6 + c6[t] * r[t]
                    s7 = s7 + c7[t] * r[t]
                G[k * D + j] += s0
                G[k * D + j + 1] += s1
                G[k * D + j + 2] += s2
                G[k * D + j + 3] += s3
                G[k * D + j + 4] += s4
                G[k * D + j + 5] += s5
                G[k * D + j + 6] += s6
                G[k * D + j + 7] += s7
        i0 = i0 + n
    free(R)
    return sq


cdef double block_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                          const floating_y* Y, const double* WT,
                          Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                          double* G) noexcept nogil:
    """``mse_block`` for any strides (in elements): ``a_ij = A[i * sr + j * sc]``, one row at a time."""
    cdef Py_ssize_t i, j, k
    cdef double sq = 0.0, s, r_ik
    cdef const floating_a* a
    cdef const double* w_k
    cdef double* g_k
    for i in range(start, stop):
        a = A + i * sr
        for k in range(K):
            w_k = WT + k * D
            g_k = G + k * D
            s = 0.0
            for j in range(D):
                s = s + a[j * sc] * w_k[j]
            r_ik = Y[i * K + k] - s
            sq = sq + r_ik * r_ik
            for j in range(D):
                g_k[j] = g_k[j] + a[j * sc] * r_ik
    return sq


cdef void partials_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, Py_ssize_t N, Py_ssize_t D,
                           const floating_y* Y, Py_ssize_t K, const double* WT, Py_ssize_t rows,
                           double* G, double* SQ, Py_ssize_t nb, int n_threads) noexcept nogil:
    """``mse_partials`` for A of any strides ``(sr, sc)`` in elements, the block function by layout.

    C order (sc == 1, sr == D): ``mse_block``; other contiguous rows (sc == 1):
    ``block_rows``; contiguous columns (sr == 1): ``block_tiles``; else
    ``block_strided``.  G is (nb, K, D) C-contiguous, SQ (nb,).
    """
    cdef Py_ssize_t b, start, stop
    for b in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
        start = b * rows
        stop = start + rows
        if stop > N:
            stop = N
        if sc == 1 and sr == D:  # C order: today's kernel, as compiled for mse_partials
            SQ[b] = mse_block(A, Y, WT, D, K, start, stop, G + b * K * D)
        elif sc == 1:
            SQ[b] = block_rows(A, sr, Y, WT, D, K, start, stop, G + b * K * D)
        elif sr == 1:
            SQ[b] = block_tiles(A, sc, Y, WT, D, K, start, stop, G + b * K * D)
        else:
            SQ[b] = block_strided(A, sr, sc, Y, WT, D, K, start, stop, G + b * K * D)


cdef void mse_partials(const floating_a[:, ::1] A, const floating_y[:, ::1] Y,
                       const double[:, ::1] WT, Py_ssize_t rows,
                       double[:, :, ::1] G, double[::1] SQ, int n_threads) noexcept nogil:
    """Fill the block partials ``G[b]`` (K, D) and ``SQ[b]``, blocks spread over threads."""
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1]
    cdef Py_ssize_t nb = G.shape[0], b, start, stop
    if N == 0:
        return
    for b in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
        start = b * rows
        stop = start + rows
        if stop > N:
            stop = N
        SQ[b] = mse_block(&A[0, 0], &Y[0, 0], &WT[0, 0], D, K, start, stop, &G[b, 0, 0])


cdef double mse_combine(const double[:, :, ::1] G, const double[::1] SQ, double scale,
                        double[:, ::1] out) noexcept nogil:
    """``out[j, k] = -2 scale sum_b G[b, k, j]`` in block order; return ``scale sum_b SQ[b]``."""
    cdef Py_ssize_t nb = G.shape[0], K = G.shape[1], D = G.shape[2], b, j, k
    cdef double sq = 0.0, acc
    for b in range(nb):
        sq = sq + SQ[b]
    for k in range(K):
        for j in range(D):
            acc = 0.0
            for b in range(nb):
                acc = acc + G[b, k, j]
            out[j, k] = -2.0 * scale * acc
    return scale * sq


def loss_grad(const floating_a[:, :] A, const floating_y[:, ::1] Y, const double[:, ::1] WT,
              double scale, double[:, ::1] out, int n_threads):
    """Protocol: fused loss and gradient into ``out`` (D, K) float64 on ``n_threads`` threads.

    Returns the loss.  A of any strides (C or Fortran order, sliced, negative
    strides; aligned), read in place; the block function follows its strides
    (see ``partials_strided``).  The rows are split by
    ``fastgrad._config.row_blocks(N)``.
    """
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = (N + rows - 1) // rows
    cdef Py_ssize_t itemsize = <Py_ssize_t>sizeof(floating_a)
    cdef Py_ssize_t sr = A.strides[0] // itemsize, sc = A.strides[1] // itemsize
    G_arr = np.zeros((nb, K, D))
    SQ_arr = np.zeros(nb)
    cdef double[:, :, ::1] G = G_arr
    cdef double[::1] SQ = SQ_arr
    cdef double loss
    if A.strides[0] % itemsize or A.strides[1] % itemsize:
        raise ValueError("A's strides are not whole elements (an unaligned array): pass np.array(A)")
    with nogil:
        if N > 0:
            partials_strided(&A[0, 0], sr, sc, N, D, &Y[0, 0], K, &WT[0, 0], rows,
                             &G[0, 0, 0], &SQ[0], nb, n_threads)
        loss = mse_combine(G, SQ, scale, out)
    return loss


def loss_grad_vec(A, y, w):
    """Protocol: ``(loss, g)`` for one output, y (N,), w (D,) float64, mean reduction, serial."""
    N, D = A.shape
    out = np.empty((D, 1))
    loss = loss_grad(A, y.reshape((N, 1)), w.reshape((1, D)), 1.0 / N, out, 1)
    return loss, out.reshape(D)


def has_openmp():
    """True when this extension was compiled with OpenMP."""
    return bool(_HAS_OPENMP)


cdef extern from *:
    """
    #ifdef _OPENMP
    #define FASTGRAD_HAS_OPENMP 1
    #else
    #define FASTGRAD_HAS_OPENMP 0
    #endif
    """
    int _HAS_OPENMP "FASTGRAD_HAS_OPENMP"
