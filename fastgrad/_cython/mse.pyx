# cython: language_level=3
r"""Cython kernels for the linear-model MSE loss and gradient (docs/derivations.md, "MSE gradient of a linear model").

With A (N, D), Y (N, K), W (D, K), sample weights s (N,), an intercept b (K,)
and ``r_ik = (y_ik - b_k) - sum_l a_il w_lk``::

    loss = scale * sum_ik s_i r_ik**2
    g_jk = -2 * scale * sum_i a_ij s_i r_ik    (matrix form: dW = -(2/N) A^T S (Y - A W - b))
    gb_k = -2 * scale * sum_i s_i r_ik

s NULL means unit weights, b NULL no intercept; each is tested once per group
of rows, outside the loops over the columns of A.

One fused pass over A, read in place whatever its strides; rows split into a
fixed partition of blocks (given by the caller, a function of N only), each
block's partial written to its own slot, the slots combined in block order:
bitwise identical for every thread count.  Within a block, by A's strides:
contiguous rows (C order, or rows at any stride) go row by row, four at a time,
in chunks of ``chunk_rows_for`` rows (``block_rows``); contiguous columns (Fortran
order, ``df.to_numpy()``, ``A.T`` of a C array) go in tiles of T rows,
residuals then gradient column by column, the tile staying in L2 between the
two passes (``block_tiles``); any other strides one row at a time
(``chunk_strided``).  Each chunk (or tile) is summed from zero and added into
the block's partial with compensated summation (Knuth's TwoSum), as are the block
partials into the result (see "Accuracy" in fastgrad/_numba/mse.py).

The steps, in order (the same names in fastgrad/_numba/mse.py):

1. ``row_blocks``      rows per block of the fixed partition (``fastgrad._config``);
2. ``mse_partials``    every block's partial, blocks over threads
   (``partials_strided`` for A of any strides);
3. ``mse_block``       one block, by A's strides: ``block_rows`` or ``block_tiles``;
4. ``block_rows``      chunks of rows: ``chunk_rows_c`` / ``chunk_rows`` (sections
   rows_k1 / rows_k: four rows at a time, rows_one: the rest) or
   ``chunk_strided``, each added with ``add_compensated``;
5. ``block_tiles``     tiles of ``tile_rows`` rows (a tile is the ``chunk_tile`` of
   the Numba module), each added with ``add_compensated``;
6. ``mse_combine``     the block partials in block order (``combine_intercept``
   for the intercept's);
7. ``loss_grad``       the backend protocol over the above.
"""

from cython.parallel cimport prange
from libc.stdlib cimport calloc, free, malloc

cimport numpy as cnp

import numpy as np

cnp.import_array()

from fastgrad._config import row_blocks

# The kernels' constants (GROUP, HALF, PREFETCH_BYTES, CACHE_LINE, the tile rule's
# TILE_BYTES, COLUMN_RUN_BYTES, TILE_MAX_BYTES, TILE_ALIGN, the chunk rule's
# CHUNK_ROWS, CHUNK_ELEMENTS, CHUNK_MAX_ROWS, LOSS_RUN, LOSS_RUN_TILE) are declared
# once in mse.pxd, with their reasons; mse_hessp.pyx cimports the tile rule's.  Their values, for the test that they equal the Numba
# kernels' (fastgrad/_numba/mse.py):
CONSTANTS = {"GROUP": GROUP, "HALF": HALF, "PREFETCH_BYTES": PREFETCH_BYTES, "CACHE_LINE": CACHE_LINE,
             "TILE_BYTES": TILE_BYTES, "COLUMN_RUN_BYTES": COLUMN_RUN_BYTES, "TILE_MAX_BYTES": TILE_MAX_BYTES,
             "TILE_ALIGN": TILE_ALIGN, "CHUNK_ROWS": CHUNK_ROWS, "CHUNK_ELEMENTS": CHUNK_ELEMENTS,
             "CHUNK_MAX_ROWS": CHUNK_MAX_ROWS, "LOSS_RUN": LOSS_RUN, "LOSS_RUN_TILE": LOSS_RUN_TILE}


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


cdef extern from *:
    """
    /* Compensated summation needs its error terms computed as written: the
       translation unit is compiled with -fassociative-math, which would
       simplify (s - (t - z)) + (x - z) to 0.  These functions are compiled
       without re-association (and are not inlined into code that has it). */
    #if defined(__clang__)
    #define FASTGRAD_EXACT_BODY _Pragma("clang fp reassociate(off)")
    #define FASTGRAD_EXACT
    #elif defined(__GNUC__)
    #define FASTGRAD_EXACT_BODY
    #define FASTGRAD_EXACT __attribute__((noinline, optimize("no-associative-math")))
    #else
    #define FASTGRAD_EXACT_BODY
    #define FASTGRAD_EXACT
    #endif
    /* FASTGRAD_KEEP(v): the value of v becomes opaque to the optimiser (an empty
       asm statement that may have changed it, kept in a register), so that no
       re-association can reach across it. */
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #define FASTGRAD_KEEP(v) __asm__("" : "+x"(v))
    #elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
    #define FASTGRAD_KEEP(v) __asm__("" : "+w"(v))
    #elif defined(__GNUC__) || defined(__clang__)
    #define FASTGRAD_KEEP(v) __asm__("" : "+m"(v))
    #else
    #define FASTGRAD_KEEP(v) ((void)0)
    #endif
    /* Knuth's TwoSum, inline (cheap enough for every group of rows): total + x,
       its exact rounding error added to comp; every step kept as written. */
    static inline void fastgrad_two_sum_add(double* total, double* comp, double x) {
        double s = *total;
        double t = s + x;
        FASTGRAD_KEEP(t);
        double z = t - s;
        FASTGRAD_KEEP(z);
        double tz = t - z;
        FASTGRAD_KEEP(tz);
        double xz = x - z;
        FASTGRAD_KEEP(xz);
        double stz = s - tz;
        FASTGRAD_KEEP(stz);
        *comp += stz + xz;
        *total = t;
    }
    /* A compensated sum's final value: total + comp; the total alone when it is not finite
       (once the running total overflows to Inf, or holds Inf or NaN, the error term is
       NaN, e.g. Inf - Inf, and would turn an Inf result into NaN).  Written as a test of
       the sum for NaN: the same values as testing the total, and it costs the hot C-order
       kernels nothing measurable (an isfinite test there cost them 5-8% at (10^4, 16)). */
    static inline double fastgrad_finish_sum(double total, double comp) {
        double s = total + comp;
        return s == s ? s : total;  /* NaN only from a non-finite total (or a NaN one: then both are NaN) */
    }
    /* S += X elementwise (n elements), the rounding errors added to C. */
    static FASTGRAD_EXACT void fastgrad_add_compensated(double* S, double* C, const double* X, Py_ssize_t n) {
        FASTGRAD_EXACT_BODY
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            double s = S[i];
            double x = X[i];
            double t = s + x;
            double z = t - s;
            C[i] += (s - (t - z)) + (x - z);
            S[i] = t;
        }
    }
    """
    void two_sum_add "fastgrad_two_sum_add"(double* total, double* comp, double x) noexcept nogil
    double finish_sum "fastgrad_finish_sum"(double total, double comp) noexcept nogil
    void add_compensated "fastgrad_add_compensated"(double* S, double* C, const double* X,
                                                     Py_ssize_t n) noexcept nogil


cdef inline void finish_compensated(double* S, const double* C, Py_ssize_t n) noexcept nogil:
    """``S += C``: the compensated sums' final values (``finish_sum``: S alone where it is not finite)."""
    cdef Py_ssize_t t
    for t in range(n):
        S[t] = finish_sum(S[t], C[t])


cdef double chunk_rows_c(const floating_a* A, const floating_y* Y, const double* WT,
                         const double* s, const double* b, Py_ssize_t D, Py_ssize_t K,
                         Py_ssize_t start, Py_ssize_t stop, Py_ssize_t limit, double* G,
                         double* gb) noexcept nogil:
    """One chunk of a C-order A: ``G[k, j] += sum_i a_ij q_ik``, ``gb[k] += sum_i q_ik``
    over rows start <= i < stop; return ``sum_ik q_ik r_ik``.

    ``r_ik = (y_ik - b_k) - sum_j a_ij w_jk``, ``q_ik = s_i r_ik`` (s NULL: unit
    weights; b NULL: no intercept; gb NULL: not accumulated; each test is once
    per group of rows, outside the loops over j).  Sums over j run in float64
    whatever A's type.  Rows in groups of four (rows_k1 / rows_k), the last few
    one at a time (rows_one), as ``rows_k1``/``rows_k``/``rows_one`` in
    fastgrad/_numba/mse.py; rows are prefetched up to ``limit`` (the end of the
    row block, past the chunk's end).
    """
    cdef Py_ssize_t i = start, j, k
    cdef Py_ssize_t ahead = GROUP + PREFETCH_BYTES // max(D * <Py_ssize_t>sizeof(floating_a), 1)
    cdef double sq = 0.0, sqc = 0.0, x = 0.0, d, d0, d1, d2, d3, y0, y1, y2, y3, r_ik, r0, r1, r2, r3
    cdef double q_ik, q0, q1, q2, q3
    cdef const floating_a* a0
    cdef const floating_a* a1
    cdef const floating_a* a2
    cdef const floating_a* a3
    cdef const floating_a* p
    cdef const double* w_k
    cdef double* g_k
    if K == 1:
        # rows_k1 -- one output: w and g are plain vectors, y_i = Y[i]
        w_k = WT
        g_k = G
        while i + GROUP <= stop:
            # the prefetch of the group `ahead` rows on goes in two halves: before
            # the dot products and before the gradient update
            if i + ahead + GROUP <= limit:
                p = A + (i + ahead) * D
                prefetch_rows(<const char*>p, <const char*>(p + HALF * D))
            a0 = A + i * D
            a1 = a0 + D
            a2 = a1 + D
            a3 = a2 + D
            d0 = 0.0
            d1 = 0.0
            d2 = 0.0
            d3 = 0.0
            for j in range(D):
                d0 = d0 + a0[j] * w_k[j]
                d1 = d1 + a1[j] * w_k[j]
                d2 = d2 + a2[j] * w_k[j]
                d3 = d3 + a3[j] * w_k[j]
            y0 = Y[i]
            y1 = Y[i + 1]
            y2 = Y[i + 2]
            y3 = Y[i + 3]
            if b != NULL:
                y0 = y0 - b[0]
                y1 = y1 - b[0]
                y2 = y2 - b[0]
                y3 = y3 - b[0]
            r0 = y0 - d0
            r1 = y1 - d1
            r2 = y2 - d2
            r3 = y3 - d3
            q0 = r0
            q1 = r1
            q2 = r2
            q3 = r3
            if s != NULL:
                q0 = s[i] * r0
                q1 = s[i + 1] * r1
                q2 = s[i + 2] * r2
                q3 = s[i + 3] * r3
            x = x + ((q0 * r0 + q1 * r1) + (q2 * r2 + q3 * r3))
            if ((i - start) & (LOSS_RUN - 1)) == LOSS_RUN - GROUP:  # every LOSS_RUN rows
                two_sum_add(&sq, &sqc, x)
                x = 0.0
            if gb != NULL:
                gb[0] = gb[0] + ((q0 + q1) + (q2 + q3))
            if i + ahead + GROUP <= limit:
                p = A + (i + ahead + HALF) * D
                prefetch_rows(<const char*>p, <const char*>(p + HALF * D))
            for j in range(D):
                g_k[j] = g_k[j] + ((a0[j] * q0 + a1[j] * q1) + (a2[j] * q2 + a3[j] * q3))
            i = i + GROUP
    else:
        # rows_k -- GROUP rows at a time: w_k and g_k are read once per group
        while i + GROUP <= stop:
            if i + ahead + GROUP <= limit:
                p = A + (i + ahead) * D
                prefetch_rows(<const char*>p, <const char*>(p + GROUP * D))
            a0 = A + i * D
            a1 = a0 + D
            a2 = a1 + D
            a3 = a2 + D
            for k in range(K):
                w_k = WT + k * D
                g_k = G + k * D
                d0 = 0.0
                d1 = 0.0
                d2 = 0.0
                d3 = 0.0
                for j in range(D):
                    d0 = d0 + a0[j] * w_k[j]
                    d1 = d1 + a1[j] * w_k[j]
                    d2 = d2 + a2[j] * w_k[j]
                    d3 = d3 + a3[j] * w_k[j]
                y0 = Y[i * K + k]
                y1 = Y[(i + 1) * K + k]
                y2 = Y[(i + 2) * K + k]
                y3 = Y[(i + 3) * K + k]
                if b != NULL:
                    y0 = y0 - b[k]
                    y1 = y1 - b[k]
                    y2 = y2 - b[k]
                    y3 = y3 - b[k]
                r0 = y0 - d0
                r1 = y1 - d1
                r2 = y2 - d2
                r3 = y3 - d3
                q0 = r0
                q1 = r1
                q2 = r2
                q3 = r3
                if s != NULL:
                    q0 = s[i] * r0
                    q1 = s[i + 1] * r1
                    q2 = s[i + 2] * r2
                    q3 = s[i + 3] * r3
                x = x + ((q0 * r0 + q1 * r1) + (q2 * r2 + q3 * r3))
                if gb != NULL:
                    gb[k] = gb[k] + ((q0 + q1) + (q2 + q3))
                for j in range(D):
                    g_k[j] = g_k[j] + ((a0[j] * q0 + a1[j] * q1) + (a2[j] * q2 + a3[j] * q3))
            if ((i - start) & (LOSS_RUN - 1)) == LOSS_RUN - GROUP:  # every LOSS_RUN rows
                two_sum_add(&sq, &sqc, x)
                x = 0.0
            i = i + GROUP
    two_sum_add(&sq, &sqc, x)
    # rows_one -- the last stop - i < GROUP rows one at a time
    while i < stop:
        a0 = A + i * D
        for k in range(K):
            w_k = WT + k * D
            g_k = G + k * D
            d = 0.0
            for j in range(D):
                d = d + a0[j] * w_k[j]
            y0 = Y[i * K + k]
            if b != NULL:
                y0 = y0 - b[k]
            r_ik = y0 - d
            q_ik = r_ik
            if s != NULL:
                q_ik = s[i] * r_ik
            sq = sq + q_ik * r_ik
            if gb != NULL:
                gb[k] = gb[k] + q_ik
            for j in range(D):
                g_k[j] = g_k[j] + a0[j] * q_ik
        i = i + 1
    return finish_sum(sq, sqc)


cdef double chunk_rows(const floating_a* A, Py_ssize_t lda, const floating_y* Y, const double* WT,
                       const double* s, const double* b, Py_ssize_t D, Py_ssize_t K,
                       Py_ssize_t start, Py_ssize_t stop, Py_ssize_t limit, double* G,
                       double* gb) noexcept nogil:
    """``chunk_rows_c`` for rows that are contiguous, row i at ``A + i * lda`` (lda may be negative).

    The same sums as ``chunk_rows_c`` (rows in groups of four, w_k and g_k read
    once per group, the last few rows one at a time, software prefetch
    ``ahead`` rows on); a copy, so that the C-order kernel is compiled exactly
    as it was (with the row stride a variable, GCC made it 7-27% slower at
    D = 16..64).
    """
    cdef Py_ssize_t i = start, j, k
    cdef Py_ssize_t ahead = GROUP + PREFETCH_BYTES // max(D * <Py_ssize_t>sizeof(floating_a), 1)
    cdef double sq = 0.0, sqc = 0.0, x = 0.0, d, d0, d1, d2, d3, y0, y1, y2, y3, r_ik, r0, r1, r2, r3
    cdef double q_ik, q0, q1, q2, q3
    cdef const floating_a* a0
    cdef const floating_a* a1
    cdef const floating_a* a2
    cdef const floating_a* a3
    cdef const double* w_k
    cdef double* g_k
    if K == 1:
        # rows_k1 -- one output: w and g are plain vectors, y_i = Y[i]
        w_k = WT
        g_k = G
        while i + GROUP <= stop:
            # the prefetch of the group `ahead` rows on goes in two halves: before
            # the dot products and before the gradient update
            if i + ahead + GROUP <= limit:
                prefetch_row_run(A, lda, D, i + ahead, HALF)
            a0 = A + i * lda
            a1 = a0 + lda
            a2 = a1 + lda
            a3 = a2 + lda
            d0 = 0.0
            d1 = 0.0
            d2 = 0.0
            d3 = 0.0
            for j in range(D):
                d0 = d0 + a0[j] * w_k[j]
                d1 = d1 + a1[j] * w_k[j]
                d2 = d2 + a2[j] * w_k[j]
                d3 = d3 + a3[j] * w_k[j]
            y0 = Y[i]
            y1 = Y[i + 1]
            y2 = Y[i + 2]
            y3 = Y[i + 3]
            if b != NULL:
                y0 = y0 - b[0]
                y1 = y1 - b[0]
                y2 = y2 - b[0]
                y3 = y3 - b[0]
            r0 = y0 - d0
            r1 = y1 - d1
            r2 = y2 - d2
            r3 = y3 - d3
            q0 = r0
            q1 = r1
            q2 = r2
            q3 = r3
            if s != NULL:
                q0 = s[i] * r0
                q1 = s[i + 1] * r1
                q2 = s[i + 2] * r2
                q3 = s[i + 3] * r3
            x = x + ((q0 * r0 + q1 * r1) + (q2 * r2 + q3 * r3))
            if ((i - start) & (LOSS_RUN - 1)) == LOSS_RUN - GROUP:  # every LOSS_RUN rows
                two_sum_add(&sq, &sqc, x)
                x = 0.0
            if gb != NULL:
                gb[0] = gb[0] + ((q0 + q1) + (q2 + q3))
            if i + ahead + GROUP <= limit:
                prefetch_row_run(A, lda, D, i + ahead + HALF, HALF)
            for j in range(D):
                g_k[j] = g_k[j] + ((a0[j] * q0 + a1[j] * q1) + (a2[j] * q2 + a3[j] * q3))
            i = i + GROUP
    else:
        # rows_k -- GROUP rows at a time: w_k and g_k are read once per group
        while i + GROUP <= stop:
            if i + ahead + GROUP <= limit:
                prefetch_row_run(A, lda, D, i + ahead, GROUP)
            a0 = A + i * lda
            a1 = a0 + lda
            a2 = a1 + lda
            a3 = a2 + lda
            for k in range(K):
                w_k = WT + k * D
                g_k = G + k * D
                d0 = 0.0
                d1 = 0.0
                d2 = 0.0
                d3 = 0.0
                for j in range(D):
                    d0 = d0 + a0[j] * w_k[j]
                    d1 = d1 + a1[j] * w_k[j]
                    d2 = d2 + a2[j] * w_k[j]
                    d3 = d3 + a3[j] * w_k[j]
                y0 = Y[i * K + k]
                y1 = Y[(i + 1) * K + k]
                y2 = Y[(i + 2) * K + k]
                y3 = Y[(i + 3) * K + k]
                if b != NULL:
                    y0 = y0 - b[k]
                    y1 = y1 - b[k]
                    y2 = y2 - b[k]
                    y3 = y3 - b[k]
                r0 = y0 - d0
                r1 = y1 - d1
                r2 = y2 - d2
                r3 = y3 - d3
                q0 = r0
                q1 = r1
                q2 = r2
                q3 = r3
                if s != NULL:
                    q0 = s[i] * r0
                    q1 = s[i + 1] * r1
                    q2 = s[i + 2] * r2
                    q3 = s[i + 3] * r3
                x = x + ((q0 * r0 + q1 * r1) + (q2 * r2 + q3 * r3))
                if gb != NULL:
                    gb[k] = gb[k] + ((q0 + q1) + (q2 + q3))
                for j in range(D):
                    g_k[j] = g_k[j] + ((a0[j] * q0 + a1[j] * q1) + (a2[j] * q2 + a3[j] * q3))
            if ((i - start) & (LOSS_RUN - 1)) == LOSS_RUN - GROUP:  # every LOSS_RUN rows
                two_sum_add(&sq, &sqc, x)
                x = 0.0
            i = i + GROUP
    two_sum_add(&sq, &sqc, x)
    # rows_one -- the last stop - i < GROUP rows one at a time
    while i < stop:
        a0 = A + i * lda
        for k in range(K):
            w_k = WT + k * D
            g_k = G + k * D
            d = 0.0
            for j in range(D):
                d = d + a0[j] * w_k[j]
            y0 = Y[i * K + k]
            if b != NULL:
                y0 = y0 - b[k]
            r_ik = y0 - d
            q_ik = r_ik
            if s != NULL:
                q_ik = s[i] * r_ik
            sq = sq + q_ik * r_ik
            if gb != NULL:
                gb[k] = gb[k] + q_ik
            for j in range(D):
                g_k[j] = g_k[j] + a0[j] * q_ik
        i = i + 1
    return finish_sum(sq, sqc)


cpdef Py_ssize_t chunk_rows_for(Py_ssize_t D, Py_ssize_t K) noexcept nogil:
    """Rows per chunk of a row block, from CHUNK_ELEMENTS, CHUNK_ROWS and CHUNK_MAX_ROWS.

    A function of (D, K) only: the chunks, like the blocks, never depend on the
    thread count.
    """
    cdef Py_ssize_t rows = CHUNK_ELEMENTS // max(D * K, 1)
    rows = min(max(rows, <Py_ssize_t>CHUNK_ROWS), <Py_ssize_t>CHUNK_MAX_ROWS)
    return rows // GROUP * GROUP


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
                        const double* s, const double* b, Py_ssize_t D, Py_ssize_t K,
                        Py_ssize_t start, Py_ssize_t stop, double* G, double* GB) noexcept nogil:
    """One row block of an A whose columns are contiguous, column j at ``A + j * ldc``.

    Tiles of T rows in row order (``tile_rows``); per tile (``chunk_tile`` in
    fastgrad/_numba/mse.py): the residuals ``R[k, :] = (y_ik - b_k) - sum_j a_ij
    w_jk`` formed eight columns per pass down the tile (A read from memory),
    weighted in place (``q_ik = s_i r_ik``), then the gradient over the same
    tile (A in cache), last columns first, into the tile partial P; each tile
    partial added into G (and GB) with compensation (``add_compensated``).
    """
    cdef Py_ssize_t T = tile_rows(D, K, <Py_ssize_t>sizeof(floating_a))
    cdef Py_ssize_t i0, n, t, t0, t1, j, k
    cdef double sq = 0.0, sqc = 0.0, x, q, sb, b_k, w0, w1, w2, w3, w4, w5, w6, w7
    cdef double s0, s1, s2, s3, s4, s5, s6, s7
    cdef const floating_a* c0
    cdef const floating_a* c1
    cdef const floating_a* c2
    cdef const floating_a* c3
    cdef const floating_a* c4
    cdef const floating_a* c5
    cdef const floating_a* c6
    cdef const floating_a* c7
    cdef double* r
    cdef double* R = <double*>malloc((T * K + 4 * K * D + 2) * sizeof(double))
    cdef double* P
    cdef double* GC
    cdef double* PB
    cdef double* BC
    if R == NULL:  # no memory for the residuals of a tile: the same sums, one row at a time
        return block_rows(A, 1, ldc, Y, WT, s, b, D, K, start, stop, G, GB)
    P = R + T * K  # the tile's partial (K, D), then its compensation, the intercept's two
    GC = P + K * D
    PB = GC + K * D
    BC = PB + K
    for t in range(K * D):
        GC[t] = 0.0
    for k in range(K):
        BC[k] = 0.0
    i0 = start
    while i0 < stop:
        n = min(T, stop - i0)
        for k in range(K):
            r = R + k * T
            for t in range(n):
                r[t] = Y[(i0 + t) * K + k]
            if b != NULL:
                b_k = b[k]
                for t in range(n):
                    r[t] = r[t] - b_k
        j = 0
        while j + 8 <= D:
            # eight columns in one pass over the residuals, subtracted as two groups of four
            # (one pass instead of two over r: 4-6% faster at D = 64 and 512, 13-21% at
            # float32; the compiler may re-associate the longer sum, so the last bits differ
            # from two passes of four); the loop of four below runs at most once
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
                w0 = WT[k * D + j]
                w1 = WT[k * D + j + 1]
                w2 = WT[k * D + j + 2]
                w3 = WT[k * D + j + 3]
                w4 = WT[k * D + j + 4]
                w5 = WT[k * D + j + 5]
                w6 = WT[k * D + j + 6]
                w7 = WT[k * D + j + 7]
                for t in range(n):
                    x = r[t] - ((c0[t] * w0 + c1[t] * w1) + (c2[t] * w2 + c3[t] * w3))
                    r[t] = x - ((c4[t] * w4 + c5[t] * w5) + (c6[t] * w6 + c7[t] * w7))
            j = j + 8
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
            # the loss in runs of LOSS_RUN_TILE rows, the runs added with compensation
            t0 = 0
            while t0 < n:
                t1 = min(t0 + LOSS_RUN_TILE, n)
                x = 0.0
                if s == NULL:
                    for t in range(t0, t1):
                        x = x + r[t] * r[t]
                else:
                    for t in range(t0, t1):
                        q = s[i0 + t] * r[t]
                        x = x + q * r[t]
                        r[t] = q  # from here on R holds the weighted residuals
                two_sum_add(&sq, &sqc, x)
                t0 = t1
            if GB != NULL:
                sb = 0.0
                for t in range(n):
                    sb = sb + r[t]
                PB[k] = sb
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
                P[k * D + j] = s0
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
                P[k * D + j] = s0
                P[k * D + j + 1] = s1
                P[k * D + j + 2] = s2
                P[k * D + j + 3] = s3
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
                P[k * D + j] = s0
                P[k * D + j + 1] = s1
                P[k * D + j + 2] = s2
                P[k * D + j + 3] = s3
                P[k * D + j + 4] = s4
                P[k * D + j + 5] = s5
                P[k * D + j + 6] = s6
                P[k * D + j + 7] = s7
        add_compensated(G, GC, P, K * D)
        if GB != NULL:
            add_compensated(GB, BC, PB, K)
        i0 = i0 + n
    finish_compensated(G, GC, K * D)
    if GB != NULL:
        finish_compensated(GB, BC, K)
    free(R)
    return finish_sum(sq, sqc)


cdef double chunk_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                          const floating_y* Y, const double* WT, const double* s, const double* b,
                          Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                          double* G, double* gb) noexcept nogil:
    """``chunk_rows_c`` for any strides (in elements): ``a_ij = A[i * sr + j * sc]``, one row at a time."""
    cdef Py_ssize_t i, j, k
    cdef double sq = 0.0, sqc = 0.0, d, y_ik, r_ik, q_ik
    cdef const floating_a* a
    cdef const double* w_k
    cdef double* g_k
    for i in range(start, stop):
        a = A + i * sr
        for k in range(K):
            w_k = WT + k * D
            g_k = G + k * D
            d = 0.0
            for j in range(D):
                d = d + a[j * sc] * w_k[j]
            y_ik = Y[i * K + k]
            if b != NULL:
                y_ik = y_ik - b[k]
            r_ik = y_ik - d
            q_ik = r_ik
            if s != NULL:
                q_ik = s[i] * r_ik
            two_sum_add(&sq, &sqc, q_ik * r_ik)
            if gb != NULL:
                gb[k] = gb[k] + q_ik
            for j in range(D):
                g_k[j] = g_k[j] + a[j * sc] * q_ik
    return finish_sum(sq, sqc)


cdef inline double chunk_any(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                             const floating_y* Y, const double* WT, const double* s, const double* b,
                             Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                             Py_ssize_t limit, double* G, double* gb) noexcept nogil:
    """One chunk of rows by A's strides: ``chunk_rows_c``, ``chunk_rows`` or ``chunk_strided``
    (rows prefetched up to ``limit``)."""
    # The plain model (no weights, no intercept) calls the row kernels with literal
    # NULLs: GCC compiles a copy of each with the per-group tests on s, b and gb
    # folded away ((10^4, 16) float64, one thread: 1.15-1.31x -> 1.03-1.10x the
    # time of the kernel before weights and intercept existed, in one process).
    if sc == 1 and sr == D:  # C order: the kernel compiled with the row stride D
        if s == NULL and b == NULL and gb == NULL:
            return chunk_rows_c(A, Y, WT, NULL, NULL, D, K, start, stop, limit, G, NULL)
        return chunk_rows_c(A, Y, WT, s, b, D, K, start, stop, limit, G, gb)
    if sc == 1:
        if s == NULL and b == NULL and gb == NULL:
            return chunk_rows(A, sr, Y, WT, NULL, NULL, D, K, start, stop, limit, G, NULL)
        return chunk_rows(A, sr, Y, WT, s, b, D, K, start, stop, limit, G, gb)
    return chunk_strided(A, sr, sc, Y, WT, s, b, D, K, start, stop, G, gb)


cdef double block_rows(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                       const floating_y* Y, const double* WT, const double* s, const double* b,
                       Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                       double* G, double* GB) noexcept nogil:
    """One row block, row by row, in chunks of ``chunk_rows_for`` rows; return ``sum_ik s_i r_ik**2``.

    ``G[k, j] += sum_i a_ij s_i r_ik``, ``GB[k] += sum_i s_i r_ik`` (GB NULL: not
    accumulated).  Each chunk is summed from zero by ``chunk_rows_c`` (C order),
    ``chunk_rows`` (contiguous rows, any row stride) or ``chunk_strided`` (any
    strides) and added into G with compensation (``add_compensated``); a block
    of one chunk goes straight into G.
    """
    cdef Py_ssize_t c0, c1, t
    cdef double sq = 0.0, sqc = 0.0, x
    cdef double* P
    cdef double* GC
    cdef double* PB = NULL
    cdef double* BC
    cdef Py_ssize_t rows = chunk_rows_for(D, K)
    if stop - start <= rows:
        return chunk_any(A, sr, sc, Y, WT, s, b, D, K, start, stop, stop, G, GB)
    P = <double*>malloc((2 * K * D + 2 * K + 1) * sizeof(double))
    if P == NULL:  # no memory for the chunk partials: the same sums in one running sum
        return chunk_any(A, sr, sc, Y, WT, s, b, D, K, start, stop, stop, G, GB)
    GC = P + K * D
    BC = GC + K * D + K
    for t in range(K * D):
        GC[t] = 0.0
    for t in range(K):
        BC[t] = 0.0
    if GB != NULL:
        PB = GC + K * D
    c0 = start
    while c0 < stop:
        c1 = min(c0 + rows, stop)
        for t in range(K * D):
            P[t] = 0.0
        if PB != NULL:
            for t in range(K):
                PB[t] = 0.0
        x = chunk_any(A, sr, sc, Y, WT, s, b, D, K, c0, c1, stop, P, PB)
        add_compensated(G, GC, P, K * D)
        if PB != NULL:
            add_compensated(GB, BC, PB, K)
        two_sum_add(&sq, &sqc, x)
        c0 = c1
    finish_compensated(G, GC, K * D)
    if GB != NULL:
        finish_compensated(GB, BC, K)
    free(P)
    return finish_sum(sq, sqc)


cdef double mse_block(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                      const floating_y* Y, const double* WT, const double* s, const double* b,
                      Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G, double* GB) noexcept nogil:
    """Accumulate one row block: ``G[k, j] += sum_i a_ij s_i r_ik``, ``GB[k] += sum_i s_i r_ik``;
    return ``sum_ik s_i r_ik**2``.

    ``r_ik = (y_ik - b_k) - sum_j a_ij w_jk`` for start <= i < stop, A of
    strides (sr, sc) in elements.  s, b, GB may be NULL (unit weights, no
    intercept, not accumulated).  Contiguous columns (sr == 1, sc != 1):
    ``block_tiles``; anything else: ``block_rows``.
    """
    if sr == 1 and sc != 1:
        return block_tiles(A, sc, Y, WT, s, b, D, K, start, stop, G, GB)
    return block_rows(A, sr, sc, Y, WT, s, b, D, K, start, stop, G, GB)


cdef void partials_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, Py_ssize_t N, Py_ssize_t D,
                           const floating_y* Y, Py_ssize_t K, const double* WT,
                           const double* s, const double* b, Py_ssize_t rows,
                           double* G, double* SQ, double* GB, Py_ssize_t nb, int n_threads) noexcept nogil:
    """Every block's partials ``G[blk]`` (K, D), ``SQ[blk]`` and (GB not NULL) ``GB[blk]`` (K,),
    blocks spread over threads; A of any strides ``(sr, sc)`` in elements (``mse_block``).

    G is (nb, K, D) C-contiguous zeros, SQ (nb,), GB (nb, K) zeros or NULL.
    """
    cdef Py_ssize_t blk, start, stop
    for blk in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
        start = blk * rows
        stop = start + rows
        if stop > N:
            stop = N
        SQ[blk] = mse_block(A, sr, sc, Y, WT, s, b, D, K, start, stop, G + blk * K * D,
                            NULL if GB == NULL else GB + blk * K)


cdef void mse_partials(const floating_a[:, ::1] A, const floating_y[:, ::1] Y,
                       const double[:, ::1] WT, Py_ssize_t rows,
                       double[:, :, ::1] G, double[::1] SQ, int n_threads) noexcept nogil:
    """Fill the block partials ``G[b]`` (K, D) and ``SQ[b]`` of a C-order A, unit weights, no
    intercept, blocks spread over threads (``partials_strided``)."""
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1]
    if N == 0:
        return
    partials_strided(&A[0, 0], D, 1, N, D, &Y[0, 0], K, &WT[0, 0], NULL, NULL, rows,
                     &G[0, 0, 0], &SQ[0], NULL, G.shape[0], n_threads)


cdef double mse_combine(const double[:, :, ::1] G, const double[::1] SQ, double scale,
                        double[:, ::1] out) noexcept nogil:
    """``out[j, k] = -2 scale sum_b G[b, k, j]`` in block order; return ``scale sum_b SQ[b]``.

    The sums over the blocks are compensated (``two_sum_add``).
    """
    return combine_blocks(&G[0, 0, 0], &SQ[0], G.shape[0], G.shape[1], G.shape[2], scale, &out[0, 0])


cdef double combine_blocks(const double* G, const double* SQ, Py_ssize_t nb, Py_ssize_t K, Py_ssize_t D,
                           double scale, double* out) noexcept nogil:
    """:func:`mse_combine` on pointers: G (nb, K, D), SQ (nb,), out (D, K), all C-contiguous."""
    cdef Py_ssize_t blk, j, k
    cdef double sq = 0.0, c = 0.0, acc, e
    cdef double* S
    cdef double* C
    for blk in range(nb):
        two_sum_add(&sq, &c, SQ[blk])
    S = <double*>calloc(2 * K * D + 1, sizeof(double))
    if S != NULL:
        # block by block, every (k, j) at once (add_compensated vectorises across
        # them); each (k, j) sees the same operations in the same order as below
        C = S + K * D
        for blk in range(nb):
            add_compensated(S, C, G + blk * K * D, K * D)
        for k in range(K):
            for j in range(D):
                out[j * K + k] = -2.0 * scale * finish_sum(S[k * D + j], C[k * D + j])
        free(S)
    else:  # no memory for the two (K, D) sums: one (k, j) at a time
        for k in range(K):
            for j in range(D):
                acc = 0.0
                e = 0.0
                for blk in range(nb):
                    two_sum_add(&acc, &e, G[(blk * K + k) * D + j])
                out[j * K + k] = -2.0 * scale * finish_sum(acc, e)
    return scale * finish_sum(sq, c)


cdef void combine_intercept(const double[:, ::1] GB, double scale, double[::1] gb) noexcept nogil:
    """``gb[k] = -2 scale sum_b GB[b, k]`` in block order (compensated)."""
    cdef Py_ssize_t nb = GB.shape[0], K = GB.shape[1], blk, k
    cdef double acc, e
    for k in range(K):
        acc = 0.0
        e = 0.0
        for blk in range(nb):
            two_sum_add(&acc, &e, GB[blk, k])
        gb[k] = -2.0 * scale * finish_sum(acc, e)


def loss_grad(const floating_a[:, :] A, const floating_y[:, ::1] Y, const double[:, ::1] WT,
              s, b, double scale, double[:, ::1] out, gb, int n_threads):
    """Protocol: fused loss and gradients into ``out`` (D, K) float64 and ``gb`` (K,) or None.

    ``r_ik = (y_ik - b_k) - sum_j a_ij w_jk``: ``out[j, k] = -2 scale sum_i
    a_ij s_i r_ik``, ``gb[k] = -2 scale sum_i s_i r_ik``; returns ``scale
    sum_ik s_i r_ik**2``.  s: (N,) float64 or None (unit weights); b: (K,)
    float64 or None (no intercept).  A of any strides (C or Fortran order,
    sliced, negative strides; aligned), read in place; the block function
    follows its strides (see ``mse_block``).  The rows are split by
    ``fastgrad._config.row_blocks(N)``, ``n_threads`` threads.
    """
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = (N + rows - 1) // rows
    cdef Py_ssize_t itemsize = <Py_ssize_t>sizeof(floating_a)
    cdef Py_ssize_t sr = A.strides[0] // itemsize, sc = A.strides[1] // itemsize
    cdef const double[::1] s_v
    cdef const double[::1] b_v
    cdef const double* sp = NULL
    cdef const double* bp = NULL
    cdef double* gbp = NULL
    cdef double[:, ::1] GB
    cdef double[::1] gb_v
    G_arr = np.zeros((nb, K, D))
    SQ_arr = np.zeros(nb)
    GB_arr = np.zeros((nb, K)) if gb is not None else None
    cdef double[:, :, ::1] G = G_arr
    cdef double[::1] SQ = SQ_arr
    cdef double loss
    if A.strides[0] % itemsize or A.strides[1] % itemsize:
        raise ValueError("A's strides are not whole elements (an unaligned array): pass np.array(A)")
    if s is not None and N > 0:
        s_v = s
        sp = &s_v[0]
    if b is not None and K > 0:
        b_v = b
        bp = &b_v[0]
    if gb is not None:
        GB = GB_arr
        gb_v = gb
        if K > 0 and nb > 0:
            gbp = &GB[0, 0]
    with nogil:
        if N > 0:
            partials_strided(&A[0, 0], sr, sc, N, D, &Y[0, 0], K, &WT[0, 0], sp, bp, rows,
                             &G[0, 0, 0], &SQ[0], gbp, nb, n_threads)
        loss = mse_combine(G, SQ, scale, out)
        if gbp != NULL:
            combine_intercept(GB, scale, gb_v)
    return loss


def loss_grad_vec(cnp.ndarray A not None, cnp.ndarray y not None, cnp.ndarray w not None):
    """Protocol: ``(loss, g)`` for one output, y (N,), w (D,) float64, mean reduction, serial.

    For tiny calls: the same blocks and sums as :func:`loss_grad`, without its
    dispatch over fused types and its numpy scratch arrays (about 5 of 7 us at
    (100, 3)).  The inputs are as the wrapper checked them
    (``_validate.is_plain_vector_problem``): C-contiguous float64 ndarrays of
    matching shapes, which the kernel reads through their data pointers, with
    no typed memoryviews (acquiring three cost about 2 us of a 5 us call).
    """
    cdef cnp.npy_intp N = cnp.PyArray_DIM(A, 0), D = cnp.PyArray_DIM(A, 1)
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = (N + rows - 1) // rows
    cdef double loss
    cdef double* G
    cdef const double* a = <const double*>cnp.PyArray_DATA(A)
    cdef const double* yp = <const double*>cnp.PyArray_DATA(y)
    cdef const double* wp = <const double*>cnp.PyArray_DATA(w)
    if N == 0 or D == 0:
        out = np.empty((D, 1))
        loss = loss_grad(A, y.reshape((N, 1)), w.reshape((1, D)), None, None,
                         1.0 / N if N else np.nan, out, None, 1)
        return loss, out.reshape(D)
    g = cnp.PyArray_EMPTY(1, &D, cnp.NPY_FLOAT64, 0)
    cdef double* gp = <double*>cnp.PyArray_DATA(g)
    G = <double*>calloc(nb * D + nb, sizeof(double))  # the block partials G (nb, 1, D), then SQ (nb,)
    if G == NULL:
        raise MemoryError()
    with nogil:
        partials_strided(a, D, 1, N, D, yp, 1, wp, NULL, NULL, rows, G, G + nb * D, NULL, nb, 1)
        loss = combine_blocks(G, G + nb * D, nb, 1, D, 1.0 / N, gp)
    free(G)
    return loss, g


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
