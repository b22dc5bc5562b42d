r"""Sparse Jacobians: one evaluation of f per group of structurally orthogonal columns.

When the Jacobian J (m, n) of f is sparse with a known structure S (nonzero
where J may be nonzero), columns j and k that share no row of S can be
perturbed together: in ``f(x + h_j e_j + h_k e_k) - f(x)`` every row belongs to
one of them.  A greedy pass (:func:`group_columns`, Curtis, Powell and Reid
1974) splits the columns into such groups; the Jacobian then costs one
evaluation of f per group and stencil point (central differences: 2 per
group) instead of per column, and the differences are scattered straight
into the CSR data of the result along S's pattern (no dense m x n array).

* :func:`group_columns` -- the groups, as scipy's ``group_columns``.
* :func:`detect_sparsity` -- a structure from dense Jacobians at random points.
* :func:`sparse_numjac` -- the driver behind ``numjac(f, x, sparsity=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _config, _evaluate, _validate

__all__ = ["group_columns", "detect_sparsity"]


def _pattern_csc(S: Any, name: str) -> tuple[int, int, Any]:
    """``(m, n, csc)``: the structure of S as a scipy CSC array (stored entries of a sparse S, S != 0 else)."""
    import scipy.sparse as sp

    if sp.issparse(S):
        if S.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional, got shape {S.shape}")
        if S.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold booleans or real numbers, got dtype {S.dtype}")
        csc = sp.csc_array(S)
    else:
        arr = np.atleast_2d(np.asarray(S))
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional, got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold booleans or real numbers, got dtype {arr.dtype}")
        csc = sp.csc_array(arr != 0)
    m, n = csc.shape
    return m, n, csc


def _greedy(csc: Any, perm: np.ndarray) -> np.ndarray:
    """Groups of the columns of ``csc`` visited in the order ``perm`` (the backend's greedy pass)."""
    m, n = csc.shape
    groups = np.empty(n, dtype=np.int64)
    union = np.empty(m, dtype=np.int64)
    _config.kernels("sparsity").group_sparse(m, n, csc.indices.astype(np.int64), csc.indptr.astype(np.int64),
                                             perm.astype(np.int64), union, groups)
    return groups.astype(np.intp, copy=False)


def group_columns(S: Any, order: Any = 0) -> np.ndarray:
    r"""Groups of structurally orthogonal columns of a sparsity structure, for sparse finite differences.

    Two columns are in the same group when every row has a zero in at least
    one of them, so a single evaluation ``f(x + sum_{j in g} h_j e_j)`` gives
    every column of group g.  A greedy pass (Curtis, Powell and Reid, 1974):
    the columns are visited in a given order; the first column not yet grouped
    opens a group, and every later ungrouped column whose rows miss the
    group's rows joins it.  The same enumeration and results as
    ``scipy.optimize._numdiff.group_columns``.

    Parameters
    ----------
    S : array_like or scipy.sparse, shape (m, n)
        The structure: nonzero (for a sparse S: stored) entries may be nonzero
        in the Jacobian.
    order : int, None or array_like of shape (n,)
        The order in which columns are visited: a permutation of
        ``range(n)``, or a random permutation drawn by
        ``numpy.random.RandomState(order)`` for an int or None (the default 0
        gives repeatable groups, as scipy).

    Returns
    -------
    groups : ndarray of int, shape (n,)
        ``groups[j]`` in ``0 .. n_groups - 1``.

    Raises
    ------
    ValueError
        S not two-dimensional or not boolean/real; ``order`` not a
        permutation of ``range(n)``, or a seed outside ``[0, 2**32)``.
    TypeError
        ``order`` a scalar that is not an integer.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> S = np.eye(6) + np.eye(6, k=1) + np.eye(6, k=-1)    # tridiagonal
    >>> fastgrad.group_columns(S, order=np.arange(6)).tolist()
    [0, 1, 2, 0, 1, 2]
    """
    m, n, csc = _pattern_csc(S, "S")
    if order is None or np.isscalar(order):
        if order is not None and _validate.check_positive_int(order, "order", minimum=0) >= 2**32:
            raise ValueError(f"order must be a permutation of range({n}), None or a seed below 2**32, "
                             f"got {order!r}")
        perm = np.random.RandomState(order).permutation(n)
    else:
        perm = np.asarray(order)
        if perm.shape != (n,) or perm.dtype.kind not in "iu" or \
                not np.array_equal(np.sort(perm), np.arange(n)):
            raise ValueError(f"order must be a permutation of range({n}) (one entry per column of S), "
                             f"got shape {perm.shape}")
    return _greedy(csc, perm.astype(np.intp))


# The default groups of the last few structures, as (m, n, indptr, indices, groups), newest last: a
# Jacobian is usually asked for many times with one structure (an optimiser's jac=), and grouping
# costs about as much as a cheap f's evaluations.  A hit is decided by comparing the whole pattern.
_GROUPS_CACHE_SIZE = 4
_groups_cache: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []


def _default_groups(m: int, n: int, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """numjac's groups when none are given: the greedy pass in natural order or in scipy's, the fewer groups.

    Natural order is optimal for banded structures (a band of width w gives w
    groups; no grouping has fewer groups than the fullest row has entries, and
    then the random order is not tried); scipy's random order is kept when it
    does better.  The groups of the last ``_GROUPS_CACHE_SIZE`` patterns are
    remembered (the pattern compared entry by entry; a copy is returned).
    """
    global _groups_cache
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    for cm, cn, cptr, cidx, cgroups in reversed(_groups_cache):
        if cm == m and cn == n and cidx.size == indices.size and np.array_equal(cptr, indptr) \
                and np.array_equal(cidx, indices):
            return cgroups.copy()
    groups = _group_pattern(m, n, indptr, indices)
    entry = (m, n, indptr.copy(), indices.copy(), groups.copy())
    # a new list bound in one step: a list being read by another thread is never changed
    _groups_cache = (_groups_cache + [entry])[-_GROUPS_CACHE_SIZE:]
    return groups


def _group_pattern(m: int, n: int, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """:func:`_default_groups` computed (n >= 1)."""
    import scipy.sparse as sp

    csc = sp.csr_array((np.ones(indices.size, dtype=bool), indices, indptr), shape=(m, n)).tocsc()
    natural = _greedy(csc, np.arange(n))
    if natural.max() + 1 <= np.diff(indptr).max(initial=1):  # as few as the fullest row allows
        return natural
    shuffled = _greedy(csc, np.random.RandomState(0).permutation(n))
    return shuffled if shuffled.max() < natural.max() else natural


def _flat_positions(shape: tuple, order: str) -> np.ndarray:
    """C-order flat index (int64) of each position of the ``order`` ravel of an array of ``shape``."""
    size = int(np.prod(shape))
    if order == "C" or len(shape) <= 1:
        return np.arange(size, dtype=np.int64)
    return np.arange(size, dtype=np.int64).reshape(shape).ravel(order="F")


def _check_orthogonal(m: int, indptr: np.ndarray, indices: np.ndarray, groups: np.ndarray, G: int) -> None:
    """``ValueError`` naming sparsity unless no row holds two columns of one group."""
    clash = np.zeros(3, dtype=np.int64)
    seen = np.empty(G, dtype=np.int64)
    if _config.kernels("sparsity").first_clash(m, indptr, indices, groups, G, seen, clash):
        i, j, k = (int(v) for v in clash)
        raise ValueError(
            f"sparsity groups are not structurally orthogonal: columns {j} and {k} are both in group "
            f"{int(groups[j])} and both nonzero in row {i}")


def sparse_numjac(f: Callable, x: np.ndarray, args: tuple, steps: np.ndarray, method: str, fshape: tuple,
                  f0: Any, sparsity: Any, order: str, *, parallel: Any = True, workers: Any = None,
                  seconds: float | None = None, vectorized: bool = False, chunk_size: int | None = None) -> Any:
    r"""The sparse Jacobian ``numjac(f, x, sparsity=...)``: a ``csr_array`` (f.size, x.size) in ``order``.

    ``x`` an owned C-contiguous array, ``steps`` its validated steps, ``f0``
    the C-ravelled f(x) as float64 (a float for a scalar f; None for the
    complex step).  Group g's point at stencil position k sets every column j
    of the group to ``V_k[j]`` (:func:`fastgrad.numdiff.stencil`); the
    numerator row of the group (:func:`fastgrad.numdiff.numerators`) is read
    at each entry's row and divided by the entry's column's denominator: the
    arithmetic of the dense quotient, entry by entry.  Groups are evaluated in
    blocks whose results stay within a memory budget (``_evaluate.block_columns``).
    """
    import scipy.sparse as sp

    indptr, indices, (data,) = sparse_quotients(f, x, args, [steps], method, fshape, f0, sparsity, order, x.dtype,
                                                parallel=parallel, workers=workers, seconds=seconds,
                                                vectorized=vectorized, chunk_size=chunk_size)
    return sp.csr_array((data, indices, indptr), shape=(int(np.prod(fshape)), x.size))


def sparse_quotients(f: Callable, x: np.ndarray, args: tuple, step_list: list[np.ndarray], method: str,
                     fshape: tuple, f0: Any, sparsity: Any, order: str, dtype: Any, *, parallel: Any = True,
                     workers: Any = None, seconds: float | None = None, vectorized: bool = False,
                     chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``(indptr, indices, [data])``: the CSR structure of :func:`sparse_numjac` and its data at each step array.

    The structure and groups are validated, and the groups ordered, once for
    all of ``step_list`` (``method='adaptive'`` passes its 8 steps); the data
    are of ``dtype`` (float64 keeps the quotients of a float32 x unrounded).
    """
    from .numdiff import (
        _complex_copy,
        _complex_value,
        _is_njit,
        _kernel_threads,
        _real_value,
        _ScalarCheck,
        numerators,
        stencil,
    )

    m, n = int(np.prod(fshape)), x.size
    if isinstance(sparsity, tuple) and len(sparsity) == 2:
        S, groups = sparsity
        try:
            indptr, indices = _validate.sparsity_structure(S, (m, n))
        except ValueError as exc:  # a structure written as a tuple of rows reads as (S, groups)
            raise ValueError(f"{exc}; a 2-tuple sparsity is read as (structure, groups), as scipy's: "
                             "pass a structure as an array or a scipy.sparse matrix") from None
        groups = _validate.sparsity_groups(groups, n)
    else:
        indptr, indices = _validate.sparsity_structure(sparsity, (m, n))
        groups = _default_groups(m, n, indptr, indices)
    groups = groups.astype(np.int64, copy=False)
    G = int(groups.max()) + 1 if n else 0
    if n:
        _check_orthogonal(m, indptr, indices, groups, G)
    datas = [np.empty(indices.size, dtype=dtype) for _ in step_list]
    if indices.size == 0:
        return indptr, indices, datas
    col_c = _flat_positions(x.shape, order)  # S's column q is element col_c[q] of x.reshape(-1)
    row_c = _flat_positions(fshape, order)
    xp = _complex_copy(x) if method == "complex" else x
    if fshape:
        check = _evaluate.ArrayCheck("iufc" if method == "complex" else "iuf", fshape)
    else:
        check = _ScalarCheck(_complex_value, "iufc") if method == "complex" else _ScalarCheck(_real_value, "iuf")
    fdtype = np.complex128 if method == "complex" else np.float64
    sparse_kernels = _config.kernels("sparsity")
    gptr = np.empty(G + 1, dtype=np.int64)
    by_group = np.empty(n, dtype=np.int64)
    sparse_kernels.group_order(groups, G, gptr, by_group)  # S's columns, group by group
    changed = col_c[by_group]
    njit_f = _is_njit(f) and x.ndim > 0 and bool(fshape) and not vectorized
    kernels = _config.user_function_kernels() if njit_f else None
    run = dict(workers=workers, vectorized=vectorized, chunk_size=chunk_size, seconds=seconds)
    for steps, data in zip(step_list, datas, strict=True):
        V, den = stencil(xp, steps, method)
        K = len(V)
        if njit_f:  # the groups in a compiled loop, in parallel when the work pays for the threads
            V_stack = np.ascontiguousarray(np.stack(V))
        # a compiled f's blocks are shared among threads: as large as a stacked call's
        block = _evaluate.block_columns(K, m, vectorized=True) if njit_f else _evaluate.block_columns(K, m, **run)
        for g0 in range(0, G, block):
            g1 = min(G, g0 + block)
            a, b = gptr[g0], gptr[g1]
            B = g1 - g0
            if njit_f:
                F = np.empty((K * B, m), fdtype)
                threads = _kernel_threads(parallel, B, K, seconds)
                kernels.sjac_into(f, xp, V_stack, np.ascontiguousarray(gptr[g0:g1 + 1]), changed, args, F, threads)
            else:
                ptr = np.concatenate([gptr[g0:g1] - a + k * (b - a) for k in range(K)] + [[K * (b - a)]])
                idx = np.tile(changed[a:b], K)
                vals = np.concatenate([v[changed[a:b]] for v in V])
                F = _evaluate.evaluate(f, xp, args, _evaluate.Points(ptr, idx, vals), check, m, fdtype, **run)
            num, _ = numerators([F[k * B:(k + 1) * B] for k in range(K)], f0, method)
            sparse_kernels.scatter_groups(m, indptr, indices, groups, g0, g1, row_c, col_c,
                                          np.ascontiguousarray(num), den, data)
    return indptr, indices, datas


def detect_sparsity(f: Callable, x: Any, *, args: Sequence = (), trials: int = 3, order: str = "F") -> Any:
    r"""The sparsity structure of f's Jacobian, from dense Jacobians at random points near x.

    ``S = (J(x_1) != 0) | ... | (J(x_t) != 0)`` with ``J = numjac(f, x_k,
    flatten=True)`` (central differences) at ``trials`` points
    ``x_k = x + d_k``, each ``d_k`` uniform in ``+-0.01 max(1, |x|)`` and the
    same on every call (the result is repeatable).  NaN entries count as
    nonzero.

    The structure is a guess from finitely many points: an entry that is
    nonzero at any trial point is found (also one that vanishes at x itself,
    such as ``d(x^2)/dx`` at 0), but an entry that happens to be zero at every
    trial point is missed, and then ``numjac(f, x, sparsity=S)`` would return
    a wrong Jacobian; raise ``trials`` when in doubt.  Each trial costs one
    dense Jacobian (2 x.size evaluations of f).

    Parameters
    ----------
    f : callable ``f(x, *args) -> array``
        As :func:`fastgrad.numjac`.
    x : array_like, any shape
    args : tuple
    trials : int
        Number of random points, >= 1.
    order : {'F', 'C'}
        How f(x) and x are flattened (as ``numjac(..., flatten=True)``).

    Returns
    -------
    scipy.sparse.csr_array of bool, shape (f(x).size, x.size)

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> f = lambda x: np.diff(x ** 2)              # row i depends on x_i, x_i+1
    >>> S = fastgrad.detect_sparsity(f, np.zeros(5))
    >>> S.shape, S.nnz
    ((4, 5), 8)
    >>> J = fastgrad.numjac(f, np.ones(5), sparsity=S)
    >>> np.allclose(J.toarray(), np.eye(4, 5, k=1) * 2 - np.eye(4, 5) * 2)
    True
    """
    import scipy.sparse as sp

    from .numdiff import _own_copy, numjac

    trials = _validate.check_positive_int(trials, "trials")
    _validate.check_choice(order, "order", ("C", "F"))
    x = _own_copy(x)
    rng = np.random.default_rng(20_240_601)
    scale = 0.01 * np.maximum(1.0, np.abs(x.astype(np.float64)))
    pattern = None
    for _ in range(trials):
        xt = (x + scale * rng.uniform(-1.0, 1.0, size=x.shape)).astype(x.dtype)
        J = np.atleast_2d(numjac(f, xt, args=args, flatten=True, order=order))
        nz = (J != 0) | np.isnan(J)
        pattern = nz if pattern is None else pattern | nz
    return sp.csr_array(pattern)
