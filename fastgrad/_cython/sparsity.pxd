# Low-level Cython API of the sparse-Jacobian kernels: ``cimport fastgrad._cython.sparsity``.
# Preconditions (the caller's duty): indptr/indices of a valid CSC (group_sparse) or CSR pattern,
# every index in range; perm a permutation of range(n); groups in [0, G); work and output
# arrays of the documented sizes.  Formulas in fastgrad/_numba/sparsity.py.

ctypedef fused sp_data_t:
    float
    double

cdef void group_sparse_c(Py_ssize_t m, Py_ssize_t n, const long long* indices, const long long* indptr,
                         const long long* perm, long long* union, long long* groups) noexcept nogil

cdef void group_order_c(const long long* groups, Py_ssize_t n, Py_ssize_t G, long long* gptr,
                        long long* by_group) noexcept nogil

cdef bint first_clash_c(Py_ssize_t m, const long long* indptr, const long long* indices,
                        const long long* groups, Py_ssize_t G, long long* seen, long long* clash) noexcept nogil
