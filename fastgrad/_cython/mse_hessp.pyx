# cython: language_level=3
r"""Cython kernel of the MSE Hessian-vector product for a dense A (same algorithm as fastgrad/_numba/mse_hessp.py).

Per output k, with sample weights ``s_i`` (1 when absent)::

    (H v)_jk = 2 scale sum_i a_ij s_i sum_l a_il v_lk + 2 alpha v_jk

One fused pass over A, read in place whatever its strides: each row's
``t_ik = s_i sum_l a_il v_lk`` at once accumulated into the block partial
``G[k, j] += a_ij t_ik``; rows split by ``fastgrad._config.row_blocks(N)``,
the block partials combined in block order (bitwise identical for every thread
count).  Contiguous rows go four at a time; contiguous columns (Fortran
order) in tiles of rows, ``t`` down the tile's columns then the partial over
the same tile in cache; other strides one row at a time.

Preconditions (the caller's duty, done by ``fastgrad._validate.mse_hessp_inputs``):
A float32/float64 (N, D) of any strides in whole elements; VT (K, D) C-contiguous
float64; ``s`` None or C-contiguous float64 (N,); ``out`` (D, K) float64.
"""

from cython.parallel cimport prange
from libc.stdlib cimport calloc, free, malloc

cimport numpy as cnp

from fastgrad._config import row_blocks

cnp.import_array()

# the column-tile rule of the MSE kernels (constants declared once, in mse.pxd)
from fastgrad._cython.mse cimport COLUMN_RUN_BYTES, TILE_ALIGN, TILE_BYTES, TILE_MAX_BYTES

cdef void rows_k1(const floating_a* A, Py_ssize_t lda, const double* v, const double* s,
                  Py_ssize_t D, Py_ssize_t start, Py_ssize_t stop, double* g) noexcept nogil:
    """One output (K = 1) of ``block_rows``: ``g[j] += a_ij t_i``, ``t_i = s_i sum_l a_il v_l``, four
    rows at a time; the same sums in the same order, without the loop over outputs.

    Written out rather than shared with ``block_rows`` through inline helpers: (10^4, 16), one
    thread, the shared form ran 65-73 us against 51-64 us for this one (the same bits)."""
    cdef Py_ssize_t i = start, j, l
    cdef double t0, t1, t2, t3, t
    cdef const floating_a* a0
    cdef const floating_a* a1
    cdef const floating_a* a2
    cdef const floating_a* a3
    while i + 4 <= stop:
        a0 = A + i * lda
        a1 = a0 + lda
        a2 = a1 + lda
        a3 = a2 + lda
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        for l in range(D):
            t0 = t0 + a0[l] * v[l]
            t1 = t1 + a1[l] * v[l]
            t2 = t2 + a2[l] * v[l]
            t3 = t3 + a3[l] * v[l]
        if s != NULL:
            t0 = t0 * s[i]
            t1 = t1 * s[i + 1]
            t2 = t2 * s[i + 2]
            t3 = t3 * s[i + 3]
        for j in range(D):
            g[j] = g[j] + ((a0[j] * t0 + a1[j] * t1) + (a2[j] * t2 + a3[j] * t3))
        i = i + 4
    while i < stop:
        a0 = A + i * lda
        t = 0.0
        for l in range(D):
            t = t + a0[l] * v[l]
        if s != NULL:
            t = t * s[i]
        for j in range(D):
            g[j] = g[j] + a0[j] * t
        i = i + 1


cdef void block_rows(const floating_a* A, Py_ssize_t lda, const double* VT, const double* s,
                     Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                     double* G) noexcept nogil:
    """Contiguous rows (row i at ``A + i * lda``): ``G[k, j] += a_ij t_ik``, four rows at a time."""
    cdef Py_ssize_t i = start, j, k, l
    cdef double t0, t1, t2, t3, t
    cdef const floating_a* a0
    cdef const floating_a* a1
    cdef const floating_a* a2
    cdef const floating_a* a3
    cdef const double* v_k
    cdef double* g_k
    if K == 1:
        rows_k1(A, lda, VT, s, D, start, stop, G)
        return
    while i + 4 <= stop:
        a0 = A + i * lda
        a1 = a0 + lda
        a2 = a1 + lda
        a3 = a2 + lda
        for k in range(K):
            v_k = VT + k * D
            g_k = G + k * D
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            for l in range(D):
                t0 = t0 + a0[l] * v_k[l]
                t1 = t1 + a1[l] * v_k[l]
                t2 = t2 + a2[l] * v_k[l]
                t3 = t3 + a3[l] * v_k[l]
            if s != NULL:
                t0 = t0 * s[i]
                t1 = t1 * s[i + 1]
                t2 = t2 * s[i + 2]
                t3 = t3 * s[i + 3]
            for j in range(D):
                g_k[j] = g_k[j] + ((a0[j] * t0 + a1[j] * t1) + (a2[j] * t2 + a3[j] * t3))
        i = i + 4
    while i < stop:
        a0 = A + i * lda
        for k in range(K):
            v_k = VT + k * D
            g_k = G + k * D
            t = 0.0
            for l in range(D):
                t = t + a0[l] * v_k[l]
            if s != NULL:
                t = t * s[i]
            for j in range(D):
                g_k[j] = g_k[j] + a0[j] * t
        i = i + 1


cdef Py_ssize_t tile_rows(Py_ssize_t D, Py_ssize_t K, Py_ssize_t itemsize) noexcept nogil:
    """Rows per column tile, a function of (D, K, dtype) only."""
    cdef Py_ssize_t row = max(D * itemsize + 8 * K, 1)
    cdef Py_ssize_t T = max(TILE_BYTES // row, COLUMN_RUN_BYTES // itemsize)
    T = min(T, TILE_MAX_BYTES // row)
    return max(<Py_ssize_t>TILE_ALIGN, T // TILE_ALIGN * TILE_ALIGN)


cdef void block_tiles(const floating_a* A, Py_ssize_t ldc, const double* VT, const double* s,
                      Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G) noexcept nogil:
    """Contiguous columns (column j at ``A + j * ldc``): tiles of T rows; ``t`` down the tile's
    columns (A from memory), then ``G`` over the same tile (A in cache), four columns at a time."""
    cdef Py_ssize_t T = tile_rows(D, K, <Py_ssize_t>sizeof(floating_a))
    cdef Py_ssize_t i0 = start, n, q, j, k, D4 = D // 4 * 4
    cdef double* tt = <double*>malloc(K * T * sizeof(double))
    cdef double* t_k
    cdef const floating_a* c0
    cdef const floating_a* c1
    cdef const floating_a* c2
    cdef const floating_a* c3
    cdef double v0, v1, v2, v3, s0, s1, s2, s3
    if tt == NULL:  # no memory for a tile: one row at a time (the same terms, in another order)
        block_strided(A, 1, ldc, VT, s, D, K, start, stop, G)
        return
    while i0 < stop:
        n = min(T, stop - i0)
        for k in range(K):
            for q in range(n):
                tt[k * T + q] = 0.0
        for j in range(0, D4, 4):
            c0 = A + j * ldc + i0
            c1 = c0 + ldc
            c2 = c1 + ldc
            c3 = c2 + ldc
            for k in range(K):
                t_k = tt + k * T
                v0 = VT[k * D + j]
                v1 = VT[k * D + j + 1]
                v2 = VT[k * D + j + 2]
                v3 = VT[k * D + j + 3]
                for q in range(n):
                    t_k[q] = t_k[q] + ((c0[q] * v0 + c1[q] * v1) + (c2[q] * v2 + c3[q] * v3))
        for j in range(D4, D):
            c0 = A + j * ldc + i0
            for k in range(K):
                t_k = tt + k * T
                v0 = VT[k * D + j]
                for q in range(n):
                    t_k[q] = t_k[q] + c0[q] * v0
        if s != NULL:
            for k in range(K):
                for q in range(n):
                    tt[k * T + q] = tt[k * T + q] * s[i0 + q]
        for j in range(0, D4, 4):
            c0 = A + j * ldc + i0
            c1 = c0 + ldc
            c2 = c1 + ldc
            c3 = c2 + ldc
            for k in range(K):
                t_k = tt + k * T
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                for q in range(n):
                    s0 = s0 + c0[q] * t_k[q]
                    s1 = s1 + c1[q] * t_k[q]
                    s2 = s2 + c2[q] * t_k[q]
                    s3 = s3 + c3[q] * t_k[q]
                G[k * D + j] += s0
                G[k * D + j + 1] += s1
                G[k * D + j + 2] += s2
                G[k * D + j + 3] += s3
        for j in range(D4, D):
            c0 = A + j * ldc + i0
            for k in range(K):
                t_k = tt + k * T
                s0 = 0.0
                for q in range(n):
                    s0 = s0 + c0[q] * t_k[q]
                G[k * D + j] += s0
        i0 = i0 + n
    free(tt)


cdef void block_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, const double* VT,
                        const double* s, Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                        double* G) noexcept nogil:
    """Any strides (in elements, ``a_ij = A[i * sr + j * sc]``): one row at a time."""
    cdef Py_ssize_t i, j, k, l
    cdef double t
    cdef const floating_a* a
    for i in range(start, stop):
        a = A + i * sr
        for k in range(K):
            t = 0.0
            for l in range(D):
                t = t + a[l * sc] * VT[k * D + l]
            if s != NULL:
                t = t * s[i]
            for j in range(D):
                G[k * D + j] = G[k * D + j] + a[j * sc] * t


cdef void hessp_partials(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, Py_ssize_t N, Py_ssize_t D,
                         const double* VT, Py_ssize_t K, const double* s, Py_ssize_t rows,
                         double* G, Py_ssize_t nb, int n_threads) noexcept nogil:
    """Every row block's partial ``G[b]`` (K, D), blocks spread over threads."""
    cdef Py_ssize_t b, start, stop
    for b in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
        start = b * rows
        stop = start + rows
        if stop > N:
            stop = N
        if sc == 1:
            block_rows(A, sr, VT, s, D, K, start, stop, G + b * K * D)
        elif sr == 1:
            block_tiles(A, sc, VT, s, D, K, start, stop, G + b * K * D)
        else:
            block_strided(A, sr, sc, VT, s, D, K, start, stop, G + b * K * D)


def hessp(cnp.ndarray A not None, cnp.ndarray VT not None, s, double scale, double alpha,
          cnp.ndarray out not None, int n_threads):
    """Protocol: ``H v = 2 scale A^T S (A v) + 2 alpha v`` into ``out`` (D, K) on ``n_threads`` threads.

    The arrays as the wrapper checked them (see the module docstring), read
    through their data pointers and strides: no dispatch over fused types and
    no typed memoryviews, which were about 2 of the 3 us a call cost at N = 8.
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(A, 0), D = cnp.PyArray_DIM(A, 1), K = cnp.PyArray_DIM(VT, 0)
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = (N + rows - 1) // rows
    cdef int typenum = cnp.PyArray_TYPE(A)
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(A)
    cdef Py_ssize_t sr = cnp.PyArray_STRIDE(A, 0) // itemsize, sc = cnp.PyArray_STRIDE(A, 1) // itemsize
    cdef const void* a = cnp.PyArray_DATA(A)  # element [0, 0], whatever the strides' signs
    cdef const double* vt = <const double*>cnp.PyArray_DATA(VT)
    cdef const double* sp = NULL
    cdef double* o = <double*>cnp.PyArray_DATA(out)
    cdef Py_ssize_t o0 = cnp.PyArray_STRIDE(out, 0) // 8, o1 = cnp.PyArray_STRIDE(out, 1) // 8
    cdef Py_ssize_t b, j, k
    cdef double acc
    cdef double* G
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"A must be float32 or float64, not {A.dtype}")
    if s is not None:
        sp = <const double*>cnp.PyArray_DATA(<cnp.ndarray>s)
    G = <double*>calloc(max(nb * K * D, 1), sizeof(double))  # the block partials (nb, K, D)
    if G == NULL:
        raise MemoryError()
    with nogil:
        if N > 0 and D > 0 and K > 0:
            if typenum == cnp.NPY_FLOAT32:
                hessp_partials(<const float*>a, sr, sc, N, D, vt, K, sp, rows, G, nb, n_threads)
            else:
                hessp_partials(<const double*>a, sr, sc, N, D, vt, K, sp, rows, G, nb, n_threads)
        for k in range(K):
            for j in range(D):
                acc = 0.0
                for b in range(nb):
                    acc = acc + G[(b * K + k) * D + j]
                o[j * o0 + k * o1] = 2.0 * scale * acc + 2.0 * alpha * vt[k * D + j]
    free(G)
