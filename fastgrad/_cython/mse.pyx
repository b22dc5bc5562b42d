# cython: language_level=3
r"""Cython kernels for the linear-model MSE loss and gradient (seeds 000 and 004).

With A (N, D), Y (N, K), W (D, K) and ``r_ik = y_ik - sum_l a_il w_lk``::

    loss = scale * sum_ik r_ik**2
    g_jk = -2 * scale * sum_i a_ij r_ik        (seed 000: dW = -(2/N) A^T (Y - A W))

One fused pass over the rows; rows split into a fixed partition of blocks (given
by the caller, a function of N only), each block's partial written to its own
slot, the slots combined in block order: bitwise identical for every thread
count.  Same algorithm as fastgrad/_numba/mse.py.
"""

from cython.parallel cimport prange

import numpy as np

cdef enum:
    # rows processed together: w_k and g_k are read once per group of GROUP rows
    GROUP = 4
    # for one output the prefetch of a group goes in two halves of HALF rows
    HALF = 2
    # software prefetch: rows about PREFETCH_BYTES ahead of the current group are
    # requested from memory (the hardware prefetcher alone runs too short)
    PREFETCH_BYTES = 8192
    CACHE_LINE = 64


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


cdef void mse_partials(const floating_a[:, ::1] A, const floating_y[:, ::1] Y,
                       const double[:, ::1] WT, Py_ssize_t rows,
                       double[:, :, ::1] G, double[::1] SQ, int n_threads) noexcept nogil:
    """Fill the block partials ``G[b]`` (K, D) and ``SQ[b]``, blocks spread over threads."""
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1]
    cdef Py_ssize_t nb = G.shape[0], b, start, stop
    if N == 0:
        return
    for b in prange(nb, schedule='static', num_threads=n_threads):
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


def loss_grad(const floating_a[:, ::1] A, const floating_y[:, ::1] Y, const double[:, ::1] WT,
              double scale, Py_ssize_t rows, int n_threads):
    """Python entry: ``(loss, grad)`` with grad a new float64 (D, K) array.

    ``rows`` is the number of rows per block of the fixed partition.
    """
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1]
    cdef Py_ssize_t nb = (N + rows - 1) // rows
    G_arr = np.zeros((nb, K, D))
    SQ_arr = np.zeros(nb)
    out_arr = np.empty((D, K))
    cdef double[:, :, ::1] G = G_arr
    cdef double[::1] SQ = SQ_arr
    cdef double[:, ::1] out = out_arr
    cdef double loss
    with nogil:
        mse_partials(A, Y, WT, rows, G, SQ, n_threads)
        loss = mse_combine(G, SQ, scale, out)
    return loss, out_arr


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
