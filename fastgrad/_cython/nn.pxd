# Low-level Cython API of the neural-network kernels: ``cimport fastgrad._cython.nn``.
# Preconditions (the caller's duty): validated C-contiguous inputs of one dtype,
# labels in [0, C), 0 <= start <= stop <= N; see fastgrad/_numba/nn.py for the
# formulas and shapes.  Activation codes: 0 identity, 1 sigmoid, 2 tanh, 3 relu;
# loss kinds: 0 mse, 1 xent (fastgrad._config.ACTIVATION_CODES / LOSS_CODES; the
# module's ACTIVATION_CODES / LOSS_CODES dicts, tested equal).

from cython cimport floating

cdef double sigmoid(double z) noexcept nogil
cdef double activate(double z, int act) noexcept nogil
cdef double activation_derivative(double a, int act) noexcept nogil

cdef void dw_db_block(const floating* X, const floating* dZ, Py_ssize_t D, Py_ssize_t C,
                      Py_ssize_t ldg, Py_ssize_t start, Py_ssize_t stop, double* G,
                      double* B) noexcept nogil
cdef void bias_block(const floating* dZ, Py_ssize_t C, Py_ssize_t start, Py_ssize_t stop,
                     double* B) noexcept nogil
cdef void bias_activation_row(floating* z, const floating* b, Py_ssize_t C, int act) noexcept nogil
cdef double xent_labels_block(floating* Z, const floating* b, const Py_ssize_t* labels,
                              Py_ssize_t C, double scale, Py_ssize_t start, Py_ssize_t stop,
                              double* B) noexcept nogil
cdef double targets_block(floating* Z, const floating* b, const floating* Y, Py_ssize_t C,
                          int kind, double scale, Py_ssize_t start, Py_ssize_t stop,
                          double* B) noexcept nogil
cdef void act_backward_block(floating* dA, const floating* A, Py_ssize_t H, int act,
                             Py_ssize_t start, Py_ssize_t stop, double* B) noexcept nogil
