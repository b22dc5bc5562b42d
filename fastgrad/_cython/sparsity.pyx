# cython: language_level=3
r"""Cython kernels of sparse Jacobians: column groups, their check, and the scatter into CSR data.

Two columns of a sparsity structure S (m, n) are structurally orthogonal when no
row has a nonzero in both; a group of such columns is perturbed at once, and
row i of the group's difference ``f(x + sum_{j in g} h_j e_j) - f(x)`` belongs
to the one column j of the group with ``S_ij != 0`` (Curtis, Powell and Reid,
1974).  Same algorithms and results as fastgrad/_numba/sparsity.py:

* ``group_sparse``: the greedy pass.  The first ungrouped column (in the order
  ``perm``) opens group g; every later ungrouped column whose rows miss the
  union U_g of the group's rows joins it (U_g grows by its rows) -- scipy's
  ``group_sparse`` enumeration on ``S[:, perm]``.
* ``group_order``: a counting sort of the columns by group.
* ``first_clash``: the first row of the CSR pattern holding two columns of one group.
* ``scatter_groups``: ``data_k = num[g(j) - g0, row_c[i]] / den[col_c[j]]`` for
  every CSR entry (i, j) of the groups g0 <= g(j) < g1.

Every kernel is serial and writes into the arrays it is given.

Preconditions (the caller's duty, done by ``fastgrad.sparsity``): ``indptr``,
``indices``, ``perm``, ``groups``, ``row_c``, ``col_c`` C-contiguous int64, a
valid pattern with every index in range; ``perm`` a permutation of
``range(n)``; ``groups`` in ``[0, G)``; ``num`` (g1 - g0, f.size) and ``den``
C-contiguous float64; ``data`` float32 or float64; int64 work and output
arrays of the documented sizes.
"""

cdef void group_sparse_c(Py_ssize_t m, Py_ssize_t n, const long long* indices, const long long* indptr,
                         const long long* perm, long long* union, long long* groups) noexcept nogil:
    """Greedy groups of the CSC pattern visited in the order perm; ``union[r] == g`` marks r in U_g."""
    cdef Py_ssize_t i, j, k, r, ci, cj
    cdef long long g = 0
    cdef bint all_grouped, intersect
    for j in range(n):
        groups[j] = -1
    for r in range(m):
        union[r] = -1
    for i in range(n):
        ci = perm[i]
        if groups[ci] >= 0:
            continue
        groups[ci] = g
        all_grouped = True
        for k in range(indptr[ci], indptr[ci + 1]):
            union[indices[k]] = g
        for j in range(n):
            cj = perm[j]
            if groups[cj] >= 0:
                continue
            all_grouped = False
            intersect = False
            for k in range(indptr[cj], indptr[cj + 1]):
                if union[indices[k]] == g:
                    intersect = True
                    break
            if not intersect:
                for k in range(indptr[cj], indptr[cj + 1]):
                    union[indices[k]] = g
                groups[cj] = g
        if all_grouped:
            break
        g = g + 1


cdef void group_order_c(const long long* groups, Py_ssize_t n, Py_ssize_t G, long long* gptr,
                        long long* by_group) noexcept nogil:
    """Counting sort: ``by_group[gptr[g]:gptr[g+1]]`` the columns of group g in increasing order."""
    cdef Py_ssize_t j, g
    for g in range(G + 1):
        gptr[g] = 0
    for j in range(n):
        gptr[groups[j] + 1] += 1
    for g in range(G):
        gptr[g + 1] += gptr[g]
    for j in range(n):
        g = groups[j]
        by_group[gptr[g]] = j
        gptr[g] += 1
    for g in range(G, 0, -1):
        gptr[g] = gptr[g - 1]
    gptr[0] = 0


cdef bint first_clash_c(Py_ssize_t m, const long long* indptr, const long long* indices,
                        const long long* groups, Py_ssize_t G, long long* seen, long long* clash) noexcept nogil:
    """The first row holding two columns of one group into ``clash``; ``seen[g] == i`` once row i met g."""
    cdef Py_ssize_t i, k, q, g
    cdef long long j
    for g in range(G):
        seen[g] = -1
    for i in range(m):
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            g = groups[j]
            if seen[g] == i:
                clash[0] = i
                for q in range(indptr[i], k):  # the row's earlier column of group g
                    if groups[indices[q]] == g:
                        clash[1] = indices[q]
                        break
                clash[2] = j
                return True
            seen[g] = i
    return False


def group_sparse(Py_ssize_t m, Py_ssize_t n, const long long[::1] indices, const long long[::1] indptr,
                 const long long[::1] perm, long long[::1] union, long long[::1] groups):
    r"""Protocol: greedy column groups of the CSC pattern into ``groups`` (n,); ``union`` (m,) work space."""
    with nogil:
        group_sparse_c(m, n, &indices[0] if indices.shape[0] else NULL, &indptr[0],
                       &perm[0] if n else NULL, &union[0] if m else NULL, &groups[0] if n else NULL)


def group_order(const long long[::1] groups, Py_ssize_t G, long long[::1] gptr, long long[::1] by_group):
    r"""Protocol: ``by_group[gptr[g]:gptr[g+1]]`` are the columns of group g, in increasing order."""
    cdef Py_ssize_t n = groups.shape[0]
    with nogil:
        group_order_c(&groups[0] if n else NULL, n, G, &gptr[0], &by_group[0] if n else NULL)


def first_clash(Py_ssize_t m, const long long[::1] indptr, const long long[::1] indices,
                const long long[::1] groups, Py_ssize_t G, long long[::1] seen, long long[::1] clash):
    r"""Protocol: the first row holding two columns of one group, ``clash = (row, column, column)``; False if none."""
    cdef bint found
    with nogil:
        found = first_clash_c(m, &indptr[0], &indices[0] if indices.shape[0] else NULL,
                              &groups[0] if groups.shape[0] else NULL, G, &seen[0] if G else NULL, &clash[0])
    return bool(found)


def scatter_groups(Py_ssize_t m, const long long[::1] indptr, const long long[::1] indices,
                   const long long[::1] groups, long long g0, long long g1, const long long[::1] row_c,
                   const long long[::1] col_c, const double[:, ::1] num, const double[::1] den,
                   sp_data_t[::1] data):
    r"""Protocol: ``data_k = num[g(j) - g0, row_c[i]] / den[col_c[j]]`` for every CSR entry (i, j), g0 <= g(j) < g1.

    ``num`` (g1 - g0, f.size) are the groups' difference numerators (f raveled
    in C order), ``den`` the denominators of x's elements (C order); ``row_c``
    and ``col_c`` map the structure's row and column numbers to those C
    positions.  Entry by entry the dense quotient's arithmetic (the quotient in
    double, then stored in data's dtype).
    """
    cdef Py_ssize_t i, k, r
    cdef long long j, g
    with nogil:
        for i in range(m):
            r = row_c[i]
            for k in range(indptr[i], indptr[i + 1]):
                j = indices[k]
                g = groups[j]
                if g0 <= g < g1:
                    data[k] = <sp_data_t>(num[g - g0, r] / den[col_c[j]])
