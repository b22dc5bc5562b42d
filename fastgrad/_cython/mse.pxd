# Low-level Cython API of the MSE kernels: ``cimport fastgrad._cython.mse``.
# Preconditions (the caller's duty): validated C-contiguous inputs, see
# fastgrad/_numba/mse.py for the formulas and shapes.

ctypedef fused floating_a:
    float
    double

ctypedef fused floating_y:
    float
    double

cdef double mse_block(const floating_a* A, const floating_y* Y, const double* WT,
                      Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G) noexcept nogil

cdef void mse_partials(const floating_a[:, ::1] A, const floating_y[:, ::1] Y,
                       const double[:, ::1] WT, Py_ssize_t rows,
                       double[:, :, ::1] G, double[::1] SQ, int n_threads) noexcept nogil

cdef double mse_combine(const double[:, :, ::1] G, const double[::1] SQ, double scale,
                        double[:, ::1] out) noexcept nogil
