# cython: language_level=3
r"""Cython kernels of the linear-model MSE with a scipy.sparse A (same algorithms as fastgrad/_numba/mse_sparse.py).

With W (D, K), Y (N, K), sample weights ``s_i`` (1 when absent), intercept
``b_k`` (0 when absent) and ``r_ik = y_ik - b_k - sum_p data_p w[indices_p, k]``
over the entries p of row i::

    loss = scale sum_ik s_i r_ik^2,   g_jk = -2 scale sum_i s_i a_ij r_ik,   gb_k = -2 scale sum_i s_i r_ik
    (H v)_jk = 2 scale sum_i a_ij s_i sum_l a_il v_lk + 2 alpha v_jk

CSR: one fused pass over the rows, split by
``fastgrad._config.sparse_row_blocks(N, D, K)`` (a function of the shape only),
each block into its own partial, the partials combined in block order.  CSC:
``A w`` (or ``S A v``) column by column into an (N, K) array (serial), then one
dot product per column, the columns over threads.  Bitwise identical for every
thread count.

Preconditions (the caller's duty, done by ``fastgrad._validate.sparse_inputs``):
indptr/indices C-contiguous int32 or int64 of one dtype, indptr nondecreasing
from 0, every index in range (a CSR A's column indices excepted where
``fastgrad._config.sparse_checks_in_pass``: the row loops then check each one
as they read it, and the protocol raises ``fastgrad._validate.sparse_index_error``); data float32/float64; Y (N, K) C-contiguous
float32/float64; W, V (D, K) C-contiguous float64; s, b, gb None or float64.
"""

from cython.parallel cimport prange

import numpy as np

from fastgrad._config import row_blocks, sparse_checks_in_pass, sparse_row_blocks
from fastgrad._validate import sparse_index_error

# The K = 1 row loops come in two variants of one body, chosen at compile time by the type of
# their last argument: trusted_columns (the indices were checked by validation) or
# checked_columns (each index compared with D as it is read; fastgrad._config.sparse_checks_in_pass).
ctypedef unsigned char trusted_columns
ctypedef signed char checked_columns
ctypedef fused column_check:
    trusted_columns
    checked_columns


cdef inline double row_dot(const index_t* indices, const data_t* data, const double* w, Py_ssize_t p0,
                           Py_ssize_t p1, size_t last, size_t* largest, column_check variant) noexcept nogil:
    """``sum_p data_p w[indices_p]`` over one row's entries p0 <= p < p1.  checked_columns: also
    ``largest = max(largest, indices_p)`` (read as unsigned), the read of w clamped to ``last``."""
    cdef Py_ssize_t p
    cdef size_t j
    cdef double d = 0.0
    if column_check is trusted_columns:
        for p in range(p0, p1):
            d = d + data[p] * w[indices[p]]
    else:
        for p in range(p0, p1):
            j = <size_t>indices[p]
            largest[0] = j if j > largest[0] else largest[0]
            d = d + data[p] * w[j if j < last else last]
    return d


cdef inline void row_scatter(const index_t* indices, const data_t* data, double q, Py_ssize_t p0, Py_ssize_t p1,
                             double* g) noexcept nogil:
    """``g[indices_p] += data_p q`` over one row's entries p0 <= p < p1."""
    cdef Py_ssize_t p
    for p in range(p0, p1):
        g[indices[p]] = g[indices[p]] + data[p] * q


cdef double csr_rows_k1(const index_t* indptr, const index_t* indices, const data_t* data,
                        const floating_y* Y, const double* w, Py_ssize_t D, const double* s, double b0,
                        Py_ssize_t start, Py_ssize_t stop, double* g, double* gb, int* bad,
                        column_check variant) noexcept nogil:
    """One output (K = 1), rows two at a time: ``r_i = y_i - b0 - sum_p data_p w[indices_p]``,
    ``g[j] += s_i a_ij r_i``, ``gb += s_i r_i``; returns ``sum s_i r_i^2``.  The two rows' dot
    products are independent chains in flight together, and each loop runs over a row's entries
    once (at ~10 entries a row the loops' mispredicted exits cost more than the entries).
    checked_columns: a row pair with a column index outside [0, D) sets ``bad[0]`` and ends the
    block before its scatter (see ``row_dot``)."""
    cdef Py_ssize_t i = start, p0, p1, p2
    cdef size_t m0 = 0, m1 = 0, last = <size_t>(D - 1)
    cdef double sq = 0.0, acc_b = 0.0, d0, d1, r0, r1, q0, q1
    while i + 2 <= stop:
        p0 = indptr[i]
        p1 = indptr[i + 1]
        p2 = indptr[i + 2]
        d0 = row_dot(indices, data, w, p0, p1, last, &m0, variant)
        d1 = row_dot(indices, data, w, p1, p2, last, &m1, variant)
        if m0 > last or m1 > last:
            bad[0] = 1
            return sq
        r0 = Y[i] - b0 - d0
        r1 = Y[i + 1] - b0 - d1
        q0 = r0 if s == NULL else s[i] * r0
        q1 = r1 if s == NULL else s[i + 1] * r1
        sq = sq + (q0 * r0 + q1 * r1)
        acc_b = acc_b + (q0 + q1)
        row_scatter(indices, data, q0, p0, p1, g)
        row_scatter(indices, data, q1, p1, p2, g)
        i = i + 2
    if i < stop:
        p0 = indptr[i]
        p1 = indptr[i + 1]
        d0 = row_dot(indices, data, w, p0, p1, last, &m0, variant)
        if m0 > last:
            bad[0] = 1
            return sq
        r0 = Y[i] - b0 - d0
        q0 = r0 if s == NULL else s[i] * r0
        sq = sq + q0 * r0
        acc_b = acc_b + q0
        row_scatter(indices, data, q0, p0, p1, g)
    gb[0] = gb[0] + acc_b
    return sq


cdef double csr_block(const index_t* indptr, const index_t* indices, const data_t* data,
                      const floating_y* Y, const double* W, Py_ssize_t D, const double* s, const double* b,
                      Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G, double* gb, double* r, bint check, int* bad) noexcept nogil:
    """Rows start <= i < stop: ``G[j, k] += s_i a_ij r_ik``, ``gb[k] += s_i r_ik``; returns ``sum s_i r_ik^2``.
    ``check`` (K = 1 only): the column indices are checked in the pass, see ``csr_rows_k1``."""
    cdef Py_ssize_t i, k, p, p0, p1
    cdef double sq = 0.0, a, s_i, sr
    cdef const double* w_j
    cdef double* g_j
    if K == 1:
        if check:
            return csr_rows_k1(indptr, indices, data, Y, W, D, s, 0.0 if b == NULL else b[0], start, stop, G, gb,
                               bad, <checked_columns>0)
        return csr_rows_k1(indptr, indices, data, Y, W, D, s, 0.0 if b == NULL else b[0], start, stop, G, gb,
                           bad, <trusted_columns>0)
    for i in range(start, stop):
        p0 = indptr[i]
        p1 = indptr[i + 1]
        s_i = 1.0 if s == NULL else s[i]
        for k in range(K):
            r[k] = Y[i * K + k] - (0.0 if b == NULL else b[k])
        for p in range(p0, p1):
            a = data[p]
            w_j = W + indices[p] * K
            for k in range(K):
                r[k] = r[k] - a * w_j[k]
        for k in range(K):
            sr = s_i * r[k]
            sq = sq + sr * r[k]
            gb[k] = gb[k] + sr
            r[k] = sr
        for p in range(p0, p1):
            a = data[p]
            g_j = G + indices[p] * K
            for k in range(K):
                g_j[k] = g_j[k] + a * r[k]
    return sq


cdef void csr_hessp_rows_k1(const index_t* indptr, const index_t* indices, const data_t* data,
                            const double* v, Py_ssize_t D, const double* s, Py_ssize_t start, Py_ssize_t stop,
                            double* g, int* bad, column_check variant) noexcept nogil:
    """One output (K = 1), rows two at a time: ``t_i = s_i sum_p data_p v[indices_p]``,
    ``g[j] += a_ij t_i`` (as ``csr_rows_k1``, the column indices checked the same way)."""
    cdef Py_ssize_t i = start, p0, p1, p2
    cdef size_t m0 = 0, m1 = 0, last = <size_t>(D - 1)
    cdef double d0, d1, t0, t1
    while i + 2 <= stop:
        p0 = indptr[i]
        p1 = indptr[i + 1]
        p2 = indptr[i + 2]
        d0 = row_dot(indices, data, v, p0, p1, last, &m0, variant)
        d1 = row_dot(indices, data, v, p1, p2, last, &m1, variant)
        if m0 > last or m1 > last:
            bad[0] = 1
            return
        t0 = d0 if s == NULL else d0 * s[i]
        t1 = d1 if s == NULL else d1 * s[i + 1]
        row_scatter(indices, data, t0, p0, p1, g)
        row_scatter(indices, data, t1, p1, p2, g)
        i = i + 2
    if i < stop:
        p0 = indptr[i]
        p1 = indptr[i + 1]
        d0 = row_dot(indices, data, v, p0, p1, last, &m0, variant)
        if m0 > last:
            bad[0] = 1
            return
        t0 = d0 if s == NULL else d0 * s[i]
        row_scatter(indices, data, t0, p0, p1, g)


cdef void csr_hessp_block(const index_t* indptr, const index_t* indices, const data_t* data,
                          const double* V, Py_ssize_t D, const double* s, Py_ssize_t K, Py_ssize_t start,
                          Py_ssize_t stop, double* G, double* t, bint check, int* bad) noexcept nogil:
    """Rows start <= i < stop: ``G[j, k] += a_ij s_i sum_l a_il v_lk``; ``check`` as in ``csr_block``."""
    cdef Py_ssize_t i, k, p, p0, p1
    cdef double a, s_i
    cdef const double* v_l
    cdef double* g_j
    if K == 1:
        if check:
            csr_hessp_rows_k1(indptr, indices, data, V, D, s, start, stop, G, bad, <checked_columns>0)
        else:
            csr_hessp_rows_k1(indptr, indices, data, V, D, s, start, stop, G, bad, <trusted_columns>0)
        return
    for i in range(start, stop):
        p0 = indptr[i]
        p1 = indptr[i + 1]
        s_i = 1.0 if s == NULL else s[i]
        for k in range(K):
            t[k] = 0.0
        for p in range(p0, p1):
            a = data[p]
            v_l = V + indices[p] * K
            for k in range(K):
                t[k] = t[k] + a * v_l[k]
        for k in range(K):
            t[k] = t[k] * s_i
        for p in range(p0, p1):
            a = data[p]
            g_j = G + indices[p] * K
            for k in range(K):
                g_j[k] = g_j[k] + a * t[k]


cdef void csc_product(const index_t* indptr, const index_t* indices, const data_t* data,
                      const double* V, Py_ssize_t D, Py_ssize_t K, double sign, double* R) noexcept nogil:
    """``R[i, k] += sign sum_j a_ij v_jk``, column by column in column order."""
    cdef Py_ssize_t j, k, p
    cdef double a
    cdef double* r_i
    for j in range(D):
        for p in range(indptr[j], indptr[j + 1]):
            a = sign * data[p]
            r_i = R + indices[p] * K
            for k in range(K):
                r_i[k] = r_i[k] + a * V[j * K + k]


cdef void csc_columns(const index_t* indptr, const index_t* indices, const data_t* data,
                      const double* T, Py_ssize_t D, Py_ssize_t K, double factor, const double* V,
                      double addend, double* out, int n_threads) noexcept nogil:
    """``out[j, k] = factor sum_p data_p T[indices_p, k] + addend v_jk``, the columns over threads."""
    cdef Py_ssize_t j, k, p
    cdef double acc
    for j in prange(D, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
        for k in range(K):
            acc = 0.0
            for p in range(indptr[j], indptr[j + 1]):
                acc = acc + data[p] * T[indices[p] * K + k]
            out[j * K + k] = factor * acc + addend * V[j * K + k]


cdef const double* _opt(object x):
    """Pointer to an optional float64 vector's data (NULL for None); the caller keeps x alive."""
    cdef const double[::1] view
    if x is None:
        return NULL
    view = x
    return &view[0] if view.shape[0] > 0 else NULL


def _csr_loss_grad(const index_t[::1] indptr, const index_t[::1] indices, const data_t[::1] data,
                   const floating_y[:, ::1] Y, const double[:, ::1] W, s, b, double scale,
                   double[:, ::1] out, gb, int n_threads):
    cdef Py_ssize_t N = Y.shape[0], K = Y.shape[1], D = W.shape[0]
    cdef Py_ssize_t rows = sparse_row_blocks(N, D, K)
    cdef Py_ssize_t nb = (N + rows - 1) // rows, q, j, k, start, stop
    cdef const double* sp = _opt(s)
    cdef const double* bp = _opt(b)
    cdef double acc, sq = 0.0
    G_arr = np.zeros((nb, D, K))
    GB_arr = np.zeros((nb, K))
    SQ_arr = np.zeros(nb)
    R_arr = np.empty((nb, max(K, 1)))
    BAD_arr = np.zeros(nb, dtype=np.intc)
    cdef double[:, :, ::1] G = G_arr
    cdef double[:, ::1] GB = GB_arr
    cdef double[::1] SQ = SQ_arr
    cdef double[:, ::1] R = R_arr
    cdef int[::1] BAD = BAD_arr
    cdef int bad = 0
    cdef bint check = sparse_checks_in_pass(indptr[N], N, K) and D > 0
    cdef double* gbp = NULL
    cdef double[::1] gbv
    if gb is not None:
        gbv = gb
        gbp = &gbv[0] if gbv.shape[0] > 0 else NULL
    with nogil:
        # D = 0 (or rows with no entries) still has residuals r_ik = y_ik - b_k: the row pass runs
        # whenever there are rows; W and G are then never read or written (no entries)
        if N > 0 and K > 0:
            for q in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
                start = q * rows
                stop = start + rows
                if stop > N:
                    stop = N
                SQ[q] = csr_block(&indptr[0], &indices[0] if indices.shape[0] else NULL,
                                  &data[0] if data.shape[0] else NULL, &Y[0, 0],
                                  &W[0, 0] if D > 0 else NULL, D, sp, bp,
                                  K, start, stop, &G[q, 0, 0] if D > 0 else NULL, &GB[q, 0], &R[q, 0],
                                  check, &BAD[q])
        for q in range(nb):
            bad = bad | BAD[q]
    if bad:  # out and gb untouched
        raise sparse_index_error("A", "csr", D)
    with nogil:
        for j in range(D):
            for k in range(K):
                acc = 0.0
                for q in range(nb):
                    acc = acc + G[q, j, k]
                out[j, k] = -2.0 * scale * acc
        if gbp != NULL:
            for k in range(K):
                acc = 0.0
                for q in range(nb):
                    acc = acc + GB[q, k]
                gbp[k] = -2.0 * scale * acc
        for q in range(nb):
            sq = sq + SQ[q]
    return scale * sq


def _csc_loss_grad(const index_t[::1] indptr, const index_t[::1] indices, const data_t[::1] data,
                   const floating_y[:, ::1] Y, const double[:, ::1] W, s, b, double scale,
                   double[:, ::1] out, gb, int n_threads):
    cdef Py_ssize_t N = Y.shape[0], K = Y.shape[1], D = W.shape[0]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = (N + rows - 1) // rows, q, i, k, start, stop
    cdef const double* sp = _opt(s)
    cdef const double* bp = _opt(b)
    cdef double acc, sq = 0.0, sr, s_i
    R_arr = np.empty((N, K))
    GB_arr = np.zeros((nb, K))
    SQ_arr = np.zeros(nb)
    cdef double[:, ::1] R = R_arr
    cdef double[:, ::1] GB = GB_arr
    cdef double[::1] SQ = SQ_arr
    cdef double* gbp = NULL
    cdef double[::1] gbv
    if gb is not None:
        gbv = gb
        gbp = &gbv[0] if gbv.shape[0] > 0 else NULL
    if N == 0 or K == 0:
        out[...] = 0.0
        if gb is not None:
            gb[...] = 0.0
        return 0.0
    with nogil:
        for i in range(N):
            for k in range(K):
                R[i, k] = Y[i, k] - (0.0 if bp == NULL else bp[k])
        if D > 0:
            csc_product(&indptr[0], &indices[0] if indices.shape[0] else NULL,
                        &data[0] if data.shape[0] else NULL, &W[0, 0], D, K, -1.0, &R[0, 0])
        for q in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            start = q * rows
            stop = start + rows
            if stop > N:
                stop = N
            acc = 0.0
            for i in range(start, stop):
                s_i = 1.0 if sp == NULL else sp[i]
                for k in range(K):
                    sr = s_i * R[i, k]
                    acc = acc + sr * R[i, k]
                    GB[q, k] = GB[q, k] + sr
                    R[i, k] = sr
            SQ[q] = acc
        if D > 0:
            csc_columns(&indptr[0], &indices[0] if indices.shape[0] else NULL,
                        &data[0] if data.shape[0] else NULL, &R[0, 0], D, K, -2.0 * scale,
                        &W[0, 0], 0.0, &out[0, 0], n_threads)
        if gbp != NULL:
            for k in range(K):
                acc = 0.0
                for q in range(nb):
                    acc = acc + GB[q, k]
                gbp[k] = -2.0 * scale * acc
        for q in range(nb):
            sq = sq + SQ[q]
    return scale * sq


def _csr_hessp(const index_t[::1] indptr, const index_t[::1] indices, const data_t[::1] data,
               Py_ssize_t N, const double[:, ::1] V, s, double scale, double alpha,
               double[:, ::1] out, int n_threads):
    cdef Py_ssize_t D = V.shape[0], K = V.shape[1]
    cdef Py_ssize_t rows = sparse_row_blocks(N, D, K)
    cdef Py_ssize_t nb = (N + rows - 1) // rows, q, j, k, start, stop
    cdef const double* sp = _opt(s)
    cdef double acc
    G_arr = np.zeros((nb, D, K))
    T_arr = np.empty((nb, max(K, 1)))
    BAD_arr = np.zeros(nb, dtype=np.intc)
    cdef double[:, :, ::1] G = G_arr
    cdef double[:, ::1] T = T_arr
    cdef int[::1] BAD = BAD_arr
    cdef int bad = 0
    cdef bint check = sparse_checks_in_pass(indptr[N], N, K) and D > 0
    with nogil:
        if N > 0 and D > 0 and K > 0:
            for q in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
                start = q * rows
                stop = start + rows
                if stop > N:
                    stop = N
                csr_hessp_block(&indptr[0], &indices[0] if indices.shape[0] else NULL,
                                &data[0] if data.shape[0] else NULL, &V[0, 0], D, sp, K, start, stop,
                                &G[q, 0, 0], &T[q, 0], check, &BAD[q])
        for q in range(nb):
            bad = bad | BAD[q]
    if bad:  # out untouched
        raise sparse_index_error("A", "csr", D)
    with nogil:
        for j in range(D):
            for k in range(K):
                acc = 0.0
                for q in range(nb):
                    acc = acc + G[q, j, k]
                out[j, k] = 2.0 * scale * acc + 2.0 * alpha * V[j, k]


def _csc_hessp(const index_t[::1] indptr, const index_t[::1] indices, const data_t[::1] data,
               Py_ssize_t N, const double[:, ::1] V, s, double scale, double alpha,
               double[:, ::1] out, int n_threads):
    cdef Py_ssize_t D = V.shape[0], K = V.shape[1], i, k
    cdef const double* sp = _opt(s)
    if D == 0 or K == 0:
        return
    T_arr = np.zeros((max(N, 1), K))
    cdef double[:, ::1] T = T_arr
    with nogil:
        csc_product(&indptr[0], &indices[0] if indices.shape[0] else NULL,
                    &data[0] if data.shape[0] else NULL, &V[0, 0], D, K, 1.0, &T[0, 0])
        if sp != NULL:
            for i in range(N):
                for k in range(K):
                    T[i, k] = T[i, k] * sp[i]
        csc_columns(&indptr[0], &indices[0] if indices.shape[0] else NULL,
                    &data[0] if data.shape[0] else NULL, &T[0, 0], D, K, 2.0 * scale,
                    &V[0, 0], 2.0 * alpha, &out[0, 0], n_threads)


# ---------------------------------------------------------------------------
# The backend protocol


def csr_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads):
    """Protocol: loss and gradients with a CSR A into ``out`` (D, K) and ``gb`` (K,) or None; returns the loss."""
    return _csr_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads)


def csc_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads):
    """Protocol: loss and gradients with a CSC A into ``out`` (D, K) and ``gb`` (K,) or None; returns the loss."""
    return _csc_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads)


def csr_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads):
    """Protocol: ``H v`` with a CSR A of N rows into ``out`` (D, K)."""
    _csr_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads)


def csc_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads):
    """Protocol: ``H v`` with a CSC A of N rows into ``out`` (D, K)."""
    _csc_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads)
