# Low-level Cython API of the numerical-differentiation kernels:
# ``cimport fastgrad._cython.numdiff``.  Preconditions (the caller's duty):
# validated C-contiguous inputs; formulas and shapes in fastgrad/_numba/numdiff.py.

ctypedef fused nd_floating_a:
    float
    double

ctypedef fused nd_floating_y:
    float
    double

cdef int stencil(int method, double* offs) noexcept nogil

cdef void mse_residual(const nd_floating_a[:, ::1] A, const nd_floating_y[:, ::1] Y,
                       const double[:, ::1] WT, double[:, ::1] R, int n_threads) noexcept nogil

cdef void column_band(const nd_floating_a[:, ::1] A, const double[:, ::1] R,
                      const double[:, ::1] HH, const double* offs, int M, bint is_complex,
                      Py_ssize_t j0, Py_ssize_t j1, double[:, :, ::1] T) noexcept nogil

cdef void mse_numgrad_combine(const double[:, ::1] R, const double[:, :, ::1] T,
                              const double[:, ::1] HH, int method, double scale,
                              double[:, ::1] out) noexcept nogil
