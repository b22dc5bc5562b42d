r"""Numba kernels of sparse Jacobians: column groups, their check, and the scatter into CSR data.

Two columns of a sparsity structure S (m, n) are structurally orthogonal when no
row has a nonzero in both; a group of such columns is perturbed at once, and
row i of the group's difference ``f(x + sum_{j in g} h_j e_j) - f(x)`` belongs
to the one column j of the group with ``S_ij != 0`` (Curtis, Powell and Reid,
1974).

The backend protocol of the ``sparsity`` family (the same names and arguments
in ``fastgrad._cython.sparsity`` and ``fastgrad._numpy.sparsity``): every
result and every work array is passed in by the caller, so no kernel allocates.

Preconditions (the caller's duty, done by ``fastgrad.sparsity``): ``indptr``,
``indices`` int64 arrays of a valid CSC (``group_sparse``) or CSR pattern,
every index in range; ``perm`` a permutation of ``range(n)``; ``groups`` n
integers in ``[0, G)``; int64 work and output arrays of the documented sizes.
"""

from __future__ import annotations

from numba import njit

from .._config import NUMBA_EXACT_FLAGS, NUMBA_FLAGS

__all__ = ["group_sparse", "group_order", "first_clash", "scatter_groups"]


@njit(**NUMBA_FLAGS)
def group_sparse(m, n, indices, indptr, perm, union, groups):
    r"""Greedy column groups of the CSC pattern (indptr, indices), columns visited in the order ``perm``.

    The first ungrouped column (in the order ``perm``) opens group g; every
    later ungrouped column whose rows miss the union U_g of the group's rows
    joins it (its rows added to U_g); repeat until every column has a group.
    ``groups[perm[i]]`` is the group of the i-th visited column: the
    enumeration of scipy's ``group_sparse`` on ``S[:, perm]``, so its groups.
    ``union`` (m,) is work space: ``union[r] == g`` marks row r in U_g.
    """
    for j in range(n):
        groups[j] = -1
    for r in range(m):
        union[r] = -1
    g = 0
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
        g += 1


@njit(**NUMBA_FLAGS)
def group_order(groups, G, gptr, by_group):
    """Counting sort: ``by_group[gptr[g]:gptr[g+1]]`` are the columns of group g, in increasing order.

    ``gptr`` (G + 1,) first counts the columns of each group, then serves as
    the fill pointer of each group, and is shifted back to the group starts.
    """
    for g in range(G + 1):
        gptr[g] = 0
    for j in range(groups.size):
        gptr[groups[j] + 1] += 1
    for g in range(G):
        gptr[g + 1] += gptr[g]
    for j in range(groups.size):
        g = groups[j]
        by_group[gptr[g]] = j
        gptr[g] += 1
    for g in range(G, 0, -1):
        gptr[g] = gptr[g - 1]
    gptr[0] = 0


@njit(**NUMBA_FLAGS)
def first_clash(m, indptr, indices, groups, G, seen, clash):
    """The first row (CSR) holding two columns of one group: ``clash = (row, column, column)``; False if none.

    ``seen`` (G,) is work space: ``seen[g] == i`` once row i has met group g.
    """
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


@njit(**NUMBA_EXACT_FLAGS)
def scatter_groups(m, indptr, indices, groups, g0, g1, row_c, col_c, num, den, data):
    r"""``data_k = num[g(j) - g0, row_c[i]] / den[col_c[j]]`` for every CSR entry (i, j) with g0 <= g(j) < g1.

    ``num`` (g1 - g0, f.size) are the groups' difference numerators (f raveled
    in C order), ``den`` the denominators of x's elements (C order); ``row_c``
    and ``col_c`` map the structure's row and column numbers (its ``order``)
    to those C positions.  Entry by entry the dense quotient's arithmetic.
    """
    for i in range(m):
        r = row_c[i]
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            g = groups[j]
            if g0 <= g < g1:
                data[k] = num[g - g0, r] / den[col_c[j]]
