# Low-level Cython API of the MSE kernels: ``cimport fastgrad._cython.mse``.
# Preconditions (the caller's duty): validated inputs, see fastgrad/_numba/mse.py
# for the formulas and shapes.  Strides are given in elements (aligned data).
# s (N,) sample weights, b (K,) intercept and GB/gb (the intercept's gradient
# partials) may be NULL: unit weights, no intercept, not accumulated.
# ``mse_partials`` takes a C-contiguous A (unit weights, no intercept);
# ``partials_strided`` and ``mse_block`` take A of any strides; the chunk
# functions: ``chunk_rows_c`` C order, ``chunk_rows`` contiguous rows (row i at
# ``A + i * lda``), ``chunk_strided`` anything; ``block_rows`` any strides,
# ``block_tiles`` contiguous columns (column j at ``A + j * ldc``).

# The MSE kernels' constants, said once (mse_hessp.pyx cimports the tile rule's).
cdef enum:
    # rows processed together: w_k and g_k are read once per group of GROUP rows
    GROUP = 4
    # for one output the prefetch of a group goes in two halves of HALF rows
    HALF = 2
    # software prefetch: rows about PREFETCH_BYTES ahead of the current group are
    # requested from memory (the hardware prefetcher alone runs too short)
    PREFETCH_BYTES = 8192
    CACHE_LINE = 64
    # column tiles of T rows: T x D elements of A (and T x K residuals) about
    # TILE_BYTES, so that the tile is still in L2 for the gradient pass, but each
    # column run at least COLUMN_RUN_BYTES and the tile at most TILE_MAX_BYTES;
    # T a multiple of TILE_ALIGN (the same T as fastgrad/_numba/mse.py, whose
    # comments give the measurements; mse_hessp.pyx's tiles too)
    TILE_BYTES = 262144
    COLUMN_RUN_BYTES = 4096
    TILE_MAX_BYTES = 4194304
    TILE_ALIGN = 8
    # rows per chunk of a row block (chunk_rows_for: about CHUNK_ELEMENTS elements
    # of A x outputs, at least CHUNK_ROWS and at most CHUNK_MAX_ROWS rows, a
    # multiple of GROUP), summed from zero and added into the block's partial with
    # compensation (as fastgrad/_numba/mse.py, whose comments give the measurements)
    CHUNK_ROWS = 256
    CHUNK_ELEMENTS = 16384
    CHUNK_MAX_ROWS = 1024
    # the loss within a chunk: plain sums over runs of LOSS_RUN rows (the row
    # walk) or LOSS_RUN_TILE rows (tiles), each run added with compensation
    LOSS_RUN = 16
    LOSS_RUN_TILE = 64


ctypedef fused floating_a:
    float
    double

ctypedef fused floating_y:
    float
    double

cdef double chunk_rows_c(const floating_a* A, const floating_y* Y, const double* WT,
                         const double* s, const double* b, Py_ssize_t D, Py_ssize_t K,
                         Py_ssize_t start, Py_ssize_t stop, Py_ssize_t limit, double* G,
                         double* gb) noexcept nogil

cdef double chunk_rows(const floating_a* A, Py_ssize_t lda, const floating_y* Y, const double* WT,
                       const double* s, const double* b, Py_ssize_t D, Py_ssize_t K,
                       Py_ssize_t start, Py_ssize_t stop, Py_ssize_t limit, double* G,
                       double* gb) noexcept nogil

cdef double chunk_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                          const floating_y* Y, const double* WT, const double* s, const double* b,
                          Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                          double* G, double* gb) noexcept nogil

cdef double block_rows(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                       const floating_y* Y, const double* WT, const double* s, const double* b,
                       Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                       double* G, double* GB) noexcept nogil

cdef double block_tiles(const floating_a* A, Py_ssize_t ldc, const floating_y* Y, const double* WT,
                        const double* s, const double* b, Py_ssize_t D, Py_ssize_t K,
                        Py_ssize_t start, Py_ssize_t stop, double* G, double* GB) noexcept nogil

cdef double mse_block(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc,
                      const floating_y* Y, const double* WT, const double* s, const double* b,
                      Py_ssize_t D, Py_ssize_t K, Py_ssize_t start, Py_ssize_t stop,
                      double* G, double* GB) noexcept nogil

cdef void partials_strided(const floating_a* A, Py_ssize_t sr, Py_ssize_t sc, Py_ssize_t N, Py_ssize_t D,
                           const floating_y* Y, Py_ssize_t K, const double* WT,
                           const double* s, const double* b, Py_ssize_t rows,
                           double* G, double* SQ, double* GB, Py_ssize_t nb, int n_threads) noexcept nogil

cdef void mse_partials(const floating_a[:, ::1] A, const floating_y[:, ::1] Y,
                       const double[:, ::1] WT, Py_ssize_t rows,
                       double[:, :, ::1] G, double[::1] SQ, int n_threads) noexcept nogil

cdef double mse_combine(const double[:, :, ::1] G, const double[::1] SQ, double scale,
                        double[:, ::1] out) noexcept nogil

cdef void combine_intercept(const double[:, ::1] GB, double scale, double[::1] gb) noexcept nogil
