# Low-level Cython API of the Kronecker / vec-Jacobian kernels: ``cimport fastgrad._cython.kron``.
# Preconditions (the caller's duty): A, B, x C-contiguous of the output's dtype; ``out``
# points at element [0, 0] of a writeable array with row stride ``ors`` and column
# stride ``ocs`` (in elements).  Formulas in fastgrad/_numba/kron.py.

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int
    long long

cdef void kron_rows(const floating[:, ::1] A, const floating[:, ::1] B, floating* out,
                    Py_ssize_t ors, Py_ssize_t ocs, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil

cdef void kron_into(const floating[:, ::1] A, const floating[:, ::1] B, floating* out,
                    Py_ssize_t ors, Py_ssize_t ocs, int n_threads) noexcept nogil

cdef void wx_row(const floating[::1] x, Py_ssize_t i, Py_ssize_t n, bint order_c,
                 floating* row, Py_ssize_t ocs) noexcept nogil
