# cython: language_level=3
r"""Cython kernels of the MSE's numerical gradient, ``mse_numgrad`` (docs/derivations.md, "Limits and finite differences").

With ``r = y - A w`` (N, K) the loss at ``w + o h e_jk`` is really evaluated,
reusing the residual::

    L(w + o h e_jk) = scale * ( sum_{k' != k} sum_i r_ik'^2  +  sum_i (r_ik - o h a_ij)^2 )

an O(N) sum per perturbation, O(N D K) for the whole gradient.  Each row's
perturbed squared residuals are formed and the method's weighted difference of
them summed row by row: the difference of the perturbed losses is accumulated
directly (their common part cancels exactly), never taken of two large rounded
sums, so the error does not grow with N.  Offsets o per
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
    # rows per partial sum of the differences (the chunk sums added in row order)
    ROW_CHUNK = 256


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


cdef void _band_diff(const nd_floating_a* a, Py_ssize_t lda, Py_ssize_t N, const double* R,
                     Py_ssize_t K, const double* hh, const double* offs, int M, Py_ssize_t n,
                     double* t) noexcept nogil:
    r"""``t[j] += sum_i sum_m c_m (r_i - o_m (hh_j a_ij))^2``; a = &A[0, j0], R = &R[0, k].

    c_m the method's weights (two offsets: -1, +1; five-point: 1, -8, 8, -1).
    Each row's perturbed squared residuals are formed and their weighted
    difference summed at once, in chunks of ROW_CHUNK rows whose sums are added
    in row order: the difference of the perturbed losses is accumulated
    directly, never taken of two large rounded sums.  The sums live in local
    arrays of COL_CHUNK (n <= COL_CHUNK), so the loop over j vectorises.
    """
    cdef Py_ssize_t i0 = 0, i, i1, j
    cdef int m
    cdef const nd_floating_a* a0
    cdef double r0, r1, r2, r3, h_j, d, u0, u1, u, acc, s
    cdef double o0 = offs[0], o1 = offs[1]
    cdef double part[COL_CHUNK]
    cdef double c[4]
    c[0] = 1.0
    c[1] = -8.0
    c[2] = 8.0
    c[3] = -1.0
    while i0 < N:
        i1 = min(i0 + <Py_ssize_t>ROW_CHUNK, N)
        for j in range(n):
            part[j] = 0.0
        i = i0
        if M == 2:
            # rows in blocks of 4, each part[j] loaded and stored once a block: the same
            # additions in the same (row) order as one row at a time
            while i + 4 <= i1:
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
                    s = part[j] + (u1 * u1 - u0 * u0)
                    d = h_j * a0[lda + j]
                    u0 = r1 - o0 * d
                    u1 = r1 - o1 * d
                    s = s + (u1 * u1 - u0 * u0)
                    d = h_j * a0[2 * lda + j]
                    u0 = r2 - o0 * d
                    u1 = r2 - o1 * d
                    s = s + (u1 * u1 - u0 * u0)
                    d = h_j * a0[3 * lda + j]
                    u0 = r3 - o0 * d
                    u1 = r3 - o1 * d
                    part[j] = s + (u1 * u1 - u0 * u0)
                i = i + 4
        for i in range(i, i1):
            a0 = a + i * lda
            r0 = R[i * K]
            if M == 2:
                for j in range(n):
                    d = hh[j] * a0[j]
                    u0 = r0 - o0 * d
                    u1 = r0 - o1 * d
                    part[j] = part[j] + (u1 * u1 - u0 * u0)
            else:
                for j in range(n):
                    d = hh[j] * a0[j]
                    acc = 0.0
                    for m in range(M):
                        u = r0 - offs[m] * d
                        acc = acc + c[m] * (u * u)
                    part[j] = part[j] + acc
        for j in range(n):
            t[j] = t[j] + part[j]
        i0 = i1


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
    r"""``T[0, k, j] += sum_i sum_m c_m (r_ik - o_m hh_kj a_ij)^2`` for j0 <= j < j1 (complex: ``-2 r hh a``).

    T holds the numerator of the method's difference quotient (weights c_m, see
    ``_band_diff``), accumulated row by row.  Per output k, one pass over the
    rows of A's column band, on raw pointers into A, R, HH, T.
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
            else:
                _band_diff(&A[0, c0], D, N, &R[0, k], K, &HH[k, c0], offs, M, n, &T[0, k, c0])
        c0 = c0 + n


cdef void mse_numgrad_combine(const double[:, ::1] R, const double[:, :, ::1] T,
                              const double[:, ::1] HH, int method, double scale,
                              double[:, ::1] out) noexcept nogil:
    """The difference quotients ``out[j, k] = scale T[0, k, j] / (q h_kj)``.

    q the method's denominator: forward/backward 1, central 2, five-point 12,
    complex 1 (``scale Im T / h``).  The perturbed losses' common part cancels
    exactly and is not re-added; R is not read.
    """
    cdef Py_ssize_t K = T.shape[1], D = HH.shape[1], k, j
    cdef double q = 1.0
    if method == CENTRAL:
        q = 2.0
    elif method == FIVE_POINT:
        q = 12.0
    for k in range(K):
        for j in range(D):
            out[j, k] = scale * T[0, k, j] / (q * HH[k, j])


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
    T_arr = np.zeros((1, K, D))
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
