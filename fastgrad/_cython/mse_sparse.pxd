# Low-level Cython API of the MSE kernels for a scipy.sparse A: ``cimport fastgrad._cython.mse_sparse``.
# Preconditions (the caller's duty): validated index arrays (indptr nondecreasing from 0, every
# index in range), see fastgrad/_numba/mse_sparse.py for the formulas and shapes.  W, V (D, K)
# and Y (N, K) C-contiguous; s, b NULL when absent; G (D, K), gb (K,) the block's partials.
# The CSR blocks take D, and with check (K = 1 only) compare every column index with D as they
# read it: one outside [0, D) sets *bad to 1 and ends the block.  Without check the indices must
# have been checked (fastgrad._validate.check_sparse_indices).

ctypedef fused index_t:
    int
    long long

ctypedef fused data_t:
    float
    double

ctypedef fused floating_y:
    float
    double

cdef double csr_block(const index_t* indptr, const index_t* indices, const data_t* data,
                      const floating_y* Y, const double* W, Py_ssize_t D, const double* s, const double* b,
                      Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G, double* gb, double* r, bint check, int* bad) noexcept nogil

cdef void csr_hessp_block(const index_t* indptr, const index_t* indices, const data_t* data,
                          const double* V, Py_ssize_t D, const double* s, Py_ssize_t K, Py_ssize_t start,
                          Py_ssize_t stop, double* G, double* t, bint check, int* bad) noexcept nogil

cdef void csc_product(const index_t* indptr, const index_t* indices, const data_t* data,
                      const double* V, Py_ssize_t D, Py_ssize_t K, double sign, double* R) noexcept nogil

cdef void csc_columns(const index_t* indptr, const index_t* indices, const data_t* data,
                      const double* T, Py_ssize_t D, Py_ssize_t K, double factor, const double* V,
                      double addend, double* out, int n_threads) noexcept nogil
