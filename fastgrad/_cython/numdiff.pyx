# cython: language_level=3
r"""Cython kernels of the MSE's numerical gradient, ``mse_numgrad`` (docs/derivations.md, "Limits and finite differences").

With ``r = y - A w`` (N, K) the loss at ``w + o h e_jk`` is really evaluated,
reusing the residual::

    L(w + o h e_jk) = scale * ( sum_{k' != k} sum_i r_ik'^2  +  sum_i (r_ik - o h a_ij)^2 )

an O(N) sum per perturbation, O(N D K) for the whole gradient.  Offsets o per
method: forward (0, 1), backward (-1, 0), central (-1, 1), five-point
(-2, -1, 1, 2); complex: ``Im sum_i (r_ik - i h a_ij)^2 = -2 h sum_i r_ik a_ij``.
The columns of A are split into fixed bands of COL_CHUNK (independent of the
thread count), each band's sums formed by one thread in row order: bitwise
identical for every thread count.  Same algorithm as fastgrad/_numba/numdiff.py.
"""

from cython.parallel cimport prange

import numpy as np

cdef enum:
    FORWARD = 0
    BACKWARD = 1
    CENTRAL = 2
    FIVE_POINT = 3
    COMPLEX = 4
    COL_CHUNK = 64


cdef int stencil(int method, double* offs) noexcept nogil:
    """Write the offsets o_m of ``method`` into offs[0:4]; return their number M."""
    if method == FORWARD:
        offs[0] = 0.0
        offs[1] = 1.0
        return 2
    if method == BACKWARD:
        offs[0] = -1.0
        offs[1] = 0.0
        return 2
    if method == CENTRAL:
        offs[0] = -1.0
        offs[1] = 1.0
        return 2
    if method == FIVE_POINT:
        offs[0] = -2.0
        offs[1] = -1.0
        offs[2] = 1.0
        offs[3] = 2.0
        return 4
    offs[0] = 1.0
    return 1


cdef void mse_residual(const nd_floating_a[:, ::1] A, const nd_floating_y[:, ::1] Y,
                       const double[:, ::1] WT, double[:, ::1] R, int n_threads) noexcept nogil:
    """``R[i, k] = y_ik - sum_l a_il w_lk`` (float64), rows spread over the threads."""
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1], i, k, l
    cdef double s
    for i in prange(N, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
        for k in range(K):
            s = 0.0
            for l in range(D):
                s = s + A[i, l] * WT[k, l]
            R[i, k] = Y[i, k] - s


cdef void _band_sq(const nd_floating_a* a, Py_ssize_t lda, Py_ssize_t N, const double* R,
                   Py_ssize_t K, const double* hh, double o, Py_ssize_t n,
                   double* t) noexcept nogil:
    r"""``t[j] += sum_i (r_i - o (hh_j a_ij))^2`` in row order; a = &A[0, j0], R = &R[0, k].

    Rows go in blocks of 4 so that each sum is loaded and stored once per block;
    the sums live in a local array of COL_CHUNK (n <= COL_CHUNK), so the loop
    over j vectorises without alias checks against A.
    """
    cdef Py_ssize_t i = 0, j
    cdef const nd_floating_a* a0
    cdef double r0, r1, r2, r3, h_j, u, s
    cdef double acc[COL_CHUNK]  # local copy of t: the compiler sees it cannot alias A
    for j in range(n):
        acc[j] = t[j]
    while i + 4 <= N:
        a0 = a + i * lda
        r0 = R[i * K]
        r1 = R[(i + 1) * K]
        r2 = R[(i + 2) * K]
        r3 = R[(i + 3) * K]
        for j in range(n):
            h_j = hh[j]
            u = r0 - o * (h_j * a0[j])
            s = acc[j] + u * u
            u = r1 - o * (h_j * a0[lda + j])
            s = s + u * u
            u = r2 - o * (h_j * a0[2 * lda + j])
            s = s + u * u
            u = r3 - o * (h_j * a0[3 * lda + j])
            acc[j] = s + u * u
        i = i + 4
    while i < N:
        a0 = a + i * lda
        r0 = R[i * K]
        for j in range(n):
            u = r0 - o * (hh[j] * a0[j])
            acc[j] = acc[j] + u * u
        i = i + 1
    for j in range(n):
        t[j] = acc[j]


cdef void _band_sq2(const nd_floating_a* a, Py_ssize_t lda, Py_ssize_t N, const double* R,
                    Py_ssize_t K, const double* hh, double o0, double o1, Py_ssize_t n,
                    double* t0, double* t1) noexcept nogil:
    """:func:`_band_sq` for two offsets in one pass over the band."""
    cdef Py_ssize_t i = 0, j
    cdef const nd_floating_a* a0
    cdef double r0, r1, r2, r3, h_j, d, u0, u1, s0, s1
    cdef double acc0[COL_CHUNK]
    cdef double acc1[COL_CHUNK]
    for j in range(n):
        acc0[j] = t0[j]
        acc1[j] = t1[j]
    while i + 4 <= N:
        a0 = a + i * lda
        r0 = R[i * K]
        r1 = R[(i + 1) * K]
        r2 = R[(i + 2) * K]
        r3 = R[(i + 3) * K]
        for j in range(n):
            h_j = hh[j]
            d = h_j * a0[j]
            u0 = r0 - o0 * d
            u1 = r0 - o1 * d
            s0 = acc0[j] + u0 * u0
            s1 = acc1[j] + u1 * u1
            d = h_j * a0[lda + j]
            u0 = r1 - o0 * d
            u1 = r1 - o1 * d
            s0 = s0 + u0 * u0
            s1 = s1 + u1 * u1
            d = h_j * a0[2 * lda + j]
            u0 = r2 - o0 * d
            u1 = r2 - o1 * d
            s0 = s0 + u0 * u0
            s1 = s1 + u1 * u1
            d = h_j * a0[3 * lda + j]
            u0 = r3 - o0 * d
            u1 = r3 - o1 * d
            acc0[j] = s0 + u0 * u0
            acc1[j] = s1 + u1 * u1
        i = i + 4
    while i < N:
        a0 = a + i * lda
        r0 = R[i * K]
        for j in range(n):
            d = hh[j] * a0[j]
            u0 = r0 - o0 * d
            u1 = r0 - o1 * d
            acc0[j] = acc0[j] + u0 * u0
            acc1[j] = acc1[j] + u1 * u1
        i = i + 1
    for j in range(n):
        t0[j] = acc0[j]
        t1[j] = acc1[j]


cdef void _band_im(const nd_floating_a* a, Py_ssize_t lda, Py_ssize_t N, const double* R,
                   Py_ssize_t K, const double* hh, Py_ssize_t n, double* t) noexcept nogil:
    """Complex step: ``t[j] += sum_i -2 r_i (hh_j a_ij)`` in row order."""
    cdef Py_ssize_t i, j
    cdef const nd_floating_a* a0
    cdef double r2
    cdef double acc[COL_CHUNK]
    for j in range(n):
        acc[j] = t[j]
    for i in range(N):
        a0 = a + i * lda
        r2 = -2.0 * R[i * K]
        for j in range(n):
            acc[j] = acc[j] + r2 * (hh[j] * a0[j])
    for j in range(n):
        t[j] = acc[j]


cdef void column_band(const nd_floating_a[:, ::1] A, const double[:, ::1] R,
                      const double[:, ::1] HH, const double* offs, int M, bint is_complex,
                      Py_ssize_t j0, Py_ssize_t j1, double[:, :, ::1] T) noexcept nogil:
    r"""``T[m, k, j] += sum_i (r_ik - o_m hh_kj a_ij)^2`` for j0 <= j < j1 (complex: ``-2 r hh a``).

    Per output k, passes over the rows of A's column band (one pass for two
    offsets), each sum in row order i = 0..N-1, on raw pointers into A, R, HH, T.
    """
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = R.shape[1], n, k, c0
    cdef int m
    if N == 0:
        return
    c0 = j0
    while c0 < j1:  # sub-bands of at most COL_CHUNK columns (the helpers' local accumulators)
        n = min(j1 - c0, <Py_ssize_t>COL_CHUNK)
        for k in range(K):
            if is_complex:
                _band_im(&A[0, c0], D, N, &R[0, k], K, &HH[k, c0], n, &T[0, k, c0])
            elif M == 2:
                _band_sq2(&A[0, c0], D, N, &R[0, k], K, &HH[k, c0], offs[0], offs[1], n,
                          &T[0, k, c0], &T[1, k, c0])
            else:
                for m in range(M):
                    _band_sq(&A[0, c0], D, N, &R[0, k], K, &HH[k, c0], offs[m], n, &T[m, k, c0])
        c0 = c0 + n


cdef inline double _colsq(const double[:, ::1] R, Py_ssize_t k) noexcept nogil:
    """``S_k = sum_i r_ik^2`` in row order."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(R.shape[0]):
        s = s + R[i, k] * R[i, k]
    return s


cdef void mse_numgrad_combine(const double[:, ::1] R, const double[:, :, ::1] T,
                              const double[:, ::1] HH, int method, double scale,
                              double[:, ::1] out) noexcept nogil:
    """Perturbed losses ``L_m = scale (sum_{k' != k} S_k' + T[m, k, j])`` and their quotients."""
    cdef Py_ssize_t K = R.shape[1], D = HH.shape[1], k, q, j
    cdef double rest, L0, h, g, Lm2, Lm1, Lp1, Lp2
    for k in range(K):
        rest = 0.0
        for q in range(K):
            if q != k:
                rest = rest + _colsq(R, q)
        L0 = scale * (rest + _colsq(R, k))
        for j in range(D):
            h = HH[k, j]
            if method == FORWARD:
                g = (scale * (rest + T[1, k, j]) - L0) / h
            elif method == BACKWARD:
                g = (L0 - scale * (rest + T[0, k, j])) / h
            elif method == CENTRAL:
                g = (scale * (rest + T[1, k, j]) - scale * (rest + T[0, k, j])) / (2.0 * h)
            elif method == FIVE_POINT:
                Lm2 = scale * (rest + T[0, k, j])
                Lm1 = scale * (rest + T[1, k, j])
                Lp1 = scale * (rest + T[2, k, j])
                Lp2 = scale * (rest + T[3, k, j])
                g = ((Lm2 - Lp2) + 8.0 * (Lp1 - Lm1)) / (12.0 * h)
            else:
                g = scale * T[0, k, j] / h
            out[j, k] = g


def mse_numgrad_into(const nd_floating_a[:, ::1] A, const nd_floating_y[:, ::1] Y,
                     const double[:, ::1] WT, const double[:, ::1] HH, int method, double scale,
                     double[:, ::1] out, int n_threads):
    """Protocol: the numerical MSE gradient into ``out`` (D, K) float64 on ``n_threads`` threads.

    ``HH`` (K, D) are the representable steps; ``method`` 0..4 = forward,
    backward, central, five-point, complex (``fastgrad._config.METHOD_CODES``).
    """
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1], b, n_bands
    cdef double offs[4]
    cdef int M = stencil(method, offs)
    R_arr = np.empty((N, K))
    T_arr = np.zeros((M, K, D))
    cdef double[:, ::1] R = R_arr
    cdef double[:, :, ::1] T = T_arr
    n_bands = (D + COL_CHUNK - 1) // COL_CHUNK
    with nogil:
        mse_residual(A, Y, WT, R, n_threads)
        for b in prange(n_bands, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            column_band(A, R, HH, offs, M, method == COMPLEX, b * COL_CHUNK,
                        min((b + 1) * COL_CHUNK, D), T)
        mse_numgrad_combine(R, T, HH, method, scale, out)


#: The method codes of the enum above, for the test that they equal fastgrad._config.METHOD_CODES.
METHOD_CODES = {"forward": FORWARD, "backward": BACKWARD, "central": CENTRAL,
                "five-point": FIVE_POINT, "complex": COMPLEX}
