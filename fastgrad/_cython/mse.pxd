# Low-level Cython API of the MSE kernels: ``cimport fastgrad._cython.mse``.
# Preconditions (the caller's duty): validated inputs, see fastgrad/_numba/mse.py
# for the formulas and shapes.  ``mse_block``/``mse_partials`` take a C-contiguous
# A; ``partials_strided`` and the block functions take A of any strides, given
# in elements (aligned data): ``block_rows`` contiguous rows (row i at
# ``A + i * lda``), ``block_tiles`` contiguous columns (column j at
# ``A + j * ldc``), ``block_strided`` anything.

ctypedef fused floating_a:
    float
    double

ctypedef fused floating_y:
    float
    double

cdef double mse_block(const floating_a* A, const floating_y* Y, const double* WT,
                      Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G) noexcept nogil

cdef double block_rows(const floating_a* A, Py_ssize_t lda, const floating_y* Y, const double* WT,
                       Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                       double* G) noexcept nogil

cdef double block_tiles(const floating_a* A, Py_ssize_t ldc, const floating_y* Y, const double* WT,
                        Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                        double* G) noexcept nogil

cdef double block_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                          const floating_y* Y, const double* WT,
                          Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                          double* G) noexcept nogil

cdef void mse_partials(const floating_a[:, ::1] A, const floating_y[:, ::1] Y,
                       const double[:, ::1] WT, Py_ssize_t rows,
                       double[:, :, ::1] G, double[::1] SQ, int n_threads) noexcept nogil

cdef void partials_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, Py_ssize_t N, Py_ssize_t D,
                           const floating_y* Y, Py_ssize_t K, const double* WT, Py_ssize_t rows,
                           double* G, double* SQ, Py_ssize_t nb, int n_threads) noexcept nogil

cdef double mse_combine(const double[:, :, ::1] G, const double[::1] SQ, double scale,
                        double[:, ::1] out) noexcept nogil
