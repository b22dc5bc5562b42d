# Low-level Cython API of the dense MSE Hessian-vector product: ``cimport fastgrad._cython.mse_hessp``.
# Preconditions (the caller's duty): validated inputs, see fastgrad/_numba/mse_hessp.py for the
# formula and shapes.  A of any strides given in elements (aligned data); VT (K, D) and G (K, D)
# C-contiguous float64; s NULL (no sample weights) or N float64.  The block functions add
# ``a_ij s_i sum_l a_il v_lk`` of rows start <= i < stop into G.

ctypedef fused floating_a:
    float
    double

cdef void block_rows(const floating_a* A, Py_ssize_t lda, const double* VT, const double* s,
                     Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                     double* G) noexcept nogil

cdef void block_tiles(const floating_a* A, Py_ssize_t ldc, const double* VT, const double* s,
                      Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G) noexcept nogil

cdef void block_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, const double* VT,
                        const double* s, Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                        double* G) noexcept nogil

cdef void hessp_partials(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, Py_ssize_t N, Py_ssize_t D,
                         const double* VT, Py_ssize_t K, const double* s, Py_ssize_t rows,
                         double* G, Py_ssize_t nb, int n_threads) noexcept nogil
