"""The numpy backend of the sparse-Jacobian family: the greedy grouping in Python, the rest in numpy.

The same kernel names, arguments and results as ``fastgrad._numba.sparsity``
(see its docstring for the formulas and preconditions); work arrays a
vectorised kernel does not need are accepted and left alone.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_sparse", "group_order", "first_clash", "scatter_groups"]


def group_sparse(m, n, indices, indptr, perm, union, groups):
    """Protocol: greedy column groups of the CSC pattern, columns visited in the order ``perm``, into ``groups``.

    The first ungrouped column opens group g; each later ungrouped column whose
    rows miss the union U_g of the group's rows joins it (``union[r] == g``
    marks row r in U_g).
    """
    rows = [indices[indptr[j]:indptr[j + 1]].tolist() for j in range(n)]
    mark = [-1] * m  # mark[r] == g: row r in U_g (Python lists: one element at a time is their strength)
    group = [-1] * n
    ungrouped = [int(c) for c in perm]  # in visiting order
    g = 0
    while ungrouped:
        left = []
        for cj in ungrouped:  # the first one always joins (opens) group g
            if any(mark[r] == g for r in rows[cj]):
                left.append(cj)
            else:
                for r in rows[cj]:
                    mark[r] = g
                group[cj] = g
        ungrouped = left
        g += 1
    groups[:] = group
    union[:] = mark


def group_order(groups, G, gptr, by_group):
    """Protocol: ``by_group[gptr[g]:gptr[g+1]]`` are the columns of group g, in increasing order."""
    gptr[0] = 0
    np.cumsum(np.bincount(groups, minlength=G), out=gptr[1:])
    by_group[:] = np.argsort(groups, kind="stable")


def first_clash(m, indptr, indices, groups, G, seen, clash):
    """Protocol: the first row (CSR) holding two columns of one group: ``clash = (row, column, column)``; False if none.

    Entry k of row i has the key ``i G + g(j_k)``; the first entry whose key an
    earlier entry already holds is the clash, that earlier entry its partner.
    """
    row = np.repeat(np.arange(m, dtype=np.int64), np.diff(indptr))
    key = row * G + groups[indices]
    by_key = np.argsort(key, kind="stable")  # equal keys in entry order
    repeat = np.flatnonzero(key[by_key][1:] == key[by_key][:-1]) + 1
    if repeat.size == 0:
        return False
    p = repeat[np.argmin(by_key[repeat])]  # the earliest entry that repeats a key: its key's second entry
    k = by_key[p]
    clash[0] = row[k]
    clash[1] = indices[by_key[p - 1]]
    clash[2] = indices[k]
    return True


def scatter_groups(m, indptr, indices, groups, g0, g1, row_c, col_c, num, den, data):
    """Protocol: ``data_k = num[g(j) - g0, row_c[i]] / den[col_c[j]]`` for each CSR entry (i, j), g0 <= g(j) < g1."""
    row = np.repeat(np.arange(m, dtype=np.int64), np.diff(indptr))
    g = groups[indices]
    k = np.flatnonzero((g >= g0) & (g < g1))
    data[k] = num[g[k] - g0, row_c[row[k]]] / den[col_c[indices[k]]]
