r"""Accuracy on demand: ``method='adaptive'`` of numgrad, numjac and numhess (Richardson extrapolation).

A central difference with step h has the truncation error series

    D(h) = f' + a_1 h^2 + a_2 h^4 + a_3 h^6 + ...

(the mixed and diagonal Hessian stencils too: docs/derivations.md, "Limits and
finite differences").  On the geometric sequence of steps

    h_k = h_0 q^(-k),   k = 0, ..., K - 1

the Richardson tableau

    T[k, 0] = D(h_k)
    T[k, m] = T[k, m-1] + (T[k, m-1] - T[k-1, m-1]) / (q^(2m) - 1),   1 <= m <= k

eliminates h^2, h^4, ..., h^(2m) from ``T[k, m]``, whose own truncation error
is O(h_k^(2m+2)).  Each entry's error is estimated as Ridders' method does,

    e[k, m] = max(|T[k, m] - T[k, m-1]|, |T[k, m] - T[k-1, m-1]|)

(how far it moved from the two estimates it was made of) plus the rounding
bound ``A_m eps |f(x)| / h_k^d`` (d the order of the derivative, A_m the
tableau's amplification of rounding errors); for every element the entry of
least estimated error is the result and that estimate its error bound.  The
tableau grows a row at a time and stops (per element) after row k >= 2 once
that row's least error exceeds ``STOP_FACTOR`` times the best so far
(Ridders' rule: smaller steps only add rounding from then on).  Large
steps lose to truncation, small ones to rounding, and a step that crosses a
singularity gives estimates that disagree: the tableau picks the step and the
order for each element separately.

The gradient of an ``@njit`` f is one compiled loop over the elements
(``_numba.numdiff.agrad_chunk``, parallel over them), each element building its
own tableau step by step and never evaluating the steps after its stop.  The
other sequences of quotients come from the finite-difference cores
(``numdiff._numjac``, ``hessian._numhess``, called once per step with explicit
absolute steps; an ``@njit`` f stays compiled and parallel) or, for a Python f,
from every step's points evaluated together (:func:`_python_quotients`), and go
through :func:`extrapolate`: the same arithmetic, so the same f gives the same
bits either way.  The tableau is element-wise arithmetic in a fixed order, so
the result is bitwise identical for every thread count.

Defaults (measured on numdifftools' example functions at x = 0.5: relative
errors from 0 to 4e-14; tan at 1.55, 0.02 from its pole: 2e-12):
``h_0 = 2^-5 max(1, |x_i|)``, ratio ``q = 2``, ``K = 8`` steps (down to
``h_0 / 128``): at most ``2 K = 16`` evaluations of f per element of x for a
gradient or Jacobian, ``K (2 n^2 + 1)`` for a Hessian.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _config
from ._steps import default_steps

__all__ = ["ADAPTIVE_BASE", "ADAPTIVE_RATIO", "ADAPTIVE_STEPS", "adaptive_steps", "extrapolate",
           "numgrad", "numjac", "numhess"]

#: First (largest) step relative to ``max(1, |x_i|)``.
ADAPTIVE_BASE = 2.0 ** -5
#: Ratio q of successive steps ``h_k = h_0 q^-k`` (a power of 2: the steps stay exact multiples).
ADAPTIVE_RATIO = 2.0
#: Number K of steps, hence of rows of the Richardson tableau.
ADAPTIVE_STEPS = 8


def adaptive_steps(x: np.ndarray, h: Any, name: str = "h") -> list[np.ndarray]:
    """The K validated step arrays ``h_0 q^-k`` (float64, x.size): h (scalar or x's shape) is h_0.

    Default ``h_0 = ADAPTIVE_BASE max(1, |x_i|)``.  ``ValueError`` (naming ``name``)
    if h is not finite and > 0, has another shape, or its smallest multiple
    vanishes (``x + h == x``) somewhere.
    """
    if x.size == 0:
        return [np.empty(0)] * ADAPTIVE_STEPS
    if h is None:
        h = ADAPTIVE_BASE * np.maximum(1.0, np.abs(x.astype(np.float64)))
        h = np.where(np.isfinite(h), h, ADAPTIVE_BASE)
    h0 = default_steps(x, h, "central", False, name)
    steps = [h0 * ADAPTIVE_RATIO ** -k for k in range(ADAPTIVE_STEPS)]
    default_steps(x, steps[-1].reshape(x.shape), "central", False, name)  # the smallest must not vanish
    return steps


#: Ridders' stopping rule: the tableau stops growing (for one element) once a whole new row's
#: least error exceeds STOP_FACTOR times the least error so far (after at least 3 rows): smaller
#: steps only add rounding from then on.  An @njit f's gradient then costs the evaluations of the
#: rows it used (about 5 of 8 on smooth functions); numdifftools' suite is as accurate as with
#: every row (measured: worst 2.05x numdifftools' error either way).
STOP_FACTOR = 2.0


def extrapolate(D: list[np.ndarray], steps: list[np.ndarray], rounding: np.ndarray,
                order: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The Richardson tableau of the quotients ``D[k] = D(h_k)``: the best entry and its error, element-wise.

    ``D[k]`` float64 arrays of one shape, ``steps[k]`` the steps broadcastable
    to it, ``rounding`` ``eps |f(x)|`` broadcastable to it, ``order`` d of the
    derivative (the rounding error of a quotient is ``eps |f| / h^d``).  The
    error series is even (central stencils): level m eliminates ``h^(2m)``.

    Row by row (k = 1, 2, ...), entry by entry (m = 1..k), each element keeps
    the entry of least error so far (the first among equal ones; a NaN error
    counts as infinite) and stops at the end of row k >= 2 when that row's
    least error exceeds ``STOP_FACTOR`` times its best; rows after the stop do
    not count (the compiled adaptive gradient does not even evaluate them, with
    the same arithmetic: :func:`fastgrad._numba.numdiff.agrad_chunk`).  An
    element with no finite error estimate gets the smallest step's quotient
    and error NaN.  Assumes K >= 2 and validated inputs.
    """
    q = ADAPTIVE_RATIO
    K = len(D)
    quotients = [np.asarray(d, dtype=np.float64) for d in D]
    shape = np.broadcast_shapes(*(d.shape for d in quotients))
    best = np.full(shape, np.nan)
    best_err = np.full(shape, np.inf)
    active = np.ones(shape, dtype=bool)
    prev = [np.broadcast_to(quotients[0], shape)]  # row k - 1 of the tableau: T[k-1, 0..k-1]
    for k in range(1, K):
        noise = rounding / steps[k] ** order
        row = [np.broadcast_to(quotients[k], shape)]
        amplify = 1.0
        row_least = np.full(shape, np.inf)
        for m in range(1, k + 1):
            fac = q ** (2 * m)
            amplify *= (fac + 1.0) / (fac - 1.0)
            t = row[m - 1] + (row[m - 1] - prev[m - 1]) / (fac - 1.0)
            e = np.maximum(np.abs(t - row[m - 1]), np.abs(t - prev[m - 1])) + amplify * noise
            e = np.where(np.isnan(e), np.inf, e)
            better = active & (e < best_err)
            best = np.where(better, t, best)
            best_err = np.where(better, e, best_err)
            row_least = np.minimum(row_least, e)
            row.append(t)
        if k >= 2:
            active = active & ~(row_least > STOP_FACTOR * best_err)
            if not active.any():
                break
        prev = row
    # an element with no finite estimate of its error: the smallest step's quotient, error NaN
    # (such an element never stops, so every row was formed)
    undecided = ~np.isfinite(best_err)
    if undecided.any():
        best = np.where(undecided, quotients[-1], best)
        best_err = np.where(undecided, np.nan, best_err)
    return best, best_err


def numgrad(f: Callable, x: np.ndarray, args: tuple, h: Any, full_output: bool,
            **options: Any) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``numgrad(..., method='adaptive')`` for a validated, owned x: the gradient (and error bound) of x's shape.

    The quotients come from ``numdiff._numgrad`` (``options``: its keywords,
    e.g. ``parallel``, ``workers``), f(x) evaluated once for all of them.
    """
    from . import numdiff

    steps = adaptive_steps(x, h)
    vectorized = options.get("vectorized", False)
    value, seconds = numdiff._timed(f, x, args, numdiff._is_njit(f) and x.ndim > 0 and not vectorized, vectorized)
    grad, err = _gradient(f, x, args, steps, value, seconds, options)
    grad = grad.reshape(x.shape).astype(x.dtype, copy=False)
    if full_output:
        return grad, err.reshape(x.shape).astype(x.dtype, copy=False)
    return grad


def _gradient(f: Callable, x: np.ndarray, args: tuple, steps: list[np.ndarray], value: Any,
              seconds: float | None, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(grad, err)`` of x.size from the quotients of ``numdiff._numgrad`` at ``steps``; value = f(x)."""
    from . import numdiff

    f0 = numdiff._real_value(value, "f(x)")
    rounding = float(np.finfo(x.dtype).eps) * abs(float(f0))
    if _compiled(f, x, options):
        # one compiled loop over the elements, each stopping at its own step (no evaluation of the rest)
        H = np.ascontiguousarray(np.stack(steps))
        out, err = np.empty(x.size), np.empty(x.size)
        evaluations = 2 * len(steps)
        threads = numdiff._kernel_threads(options.get("parallel", True), x.size, evaluations, seconds)
        if not numdiff._from_python("agrad", f, x, args, (H, out, err), evaluations * x.size, seconds, threads):
            _config.user_function_kernels().agrad_into(f, x, H, args, rounding, STOP_FACTOR, out, err, threads)
            return out, err
    check = numdiff._ScalarCheck(numdiff._real_value, "iuf")
    D = [Q[:, 0] for Q in _python_quotients(f, x, args, steps, 1, check, seconds, options)]
    return extrapolate(D, steps, rounding, 1)


def _compiled(f: Callable, x: np.ndarray, options: dict) -> bool:
    """Whether the cores run f in their compiled loop (an ``@njit`` f, not vectorized)."""
    from . import numdiff

    return numdiff._is_njit(f) and x.ndim > 0 and not options.get("vectorized", False)


def _python_quotients(f: Callable, x: np.ndarray, args: tuple, steps: list[np.ndarray], m: int,
                      check: Callable, seconds: float | None, options: dict) -> list[np.ndarray]:
    """The central quotients ``Q_k`` (x.size, m) of a Python (or vectorized) f at every step ``h_k`` at once.

    The points ``x_j +- h_k`` of all K steps of a block of elements go to f in
    one :func:`fastgrad._evaluate.evaluate` call (one stacked call for a
    vectorized f, one pool for ``workers``), instead of K passes; the
    quotients are the arithmetic of ``method='central'``, step by step.
    """
    from . import _evaluate, numdiff

    n = x.size
    stencils = [numdiff.stencil(x, s, "central") for s in steps]
    V = [v for vs, _ in stencils for v in vs]  # v0, v1 of step 0, then of step 1, ...
    run = dict(workers=options.get("workers"), vectorized=options.get("vectorized", False),
               chunk_size=options.get("chunk_size"), seconds=seconds)
    Q = [np.empty((n, m)) for _ in steps]
    block = _evaluate.block_columns(len(V), m, **run)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        B = j1 - j0
        F = _evaluate.evaluate(f, x, args, numdiff.dense_points(V, j0, j1), check, m, np.float64, **run)
        for k, (_, den) in enumerate(stencils):
            num, _ = numdiff.numerators([F[2 * k * B:(2 * k + 1) * B], F[(2 * k + 1) * B:(2 * k + 2) * B]],
                                        None, "central")
            Q[k][j0:j1] = num / den[j0:j1, None]
    return Q


def numjac(f: Callable, x: np.ndarray, args: tuple, h: Any, flatten: bool, order: str, sparsity: Any = None,
           **options: Any) -> np.ndarray:
    """``numjac(..., method='adaptive')`` for a validated, owned x: shape ``f(x).shape + x.shape`` (or flattened).

    The Jacobians come from ``numdiff._numjac`` (``options``: its keywords), a
    scalar f's gradients from ``numdiff._numgrad``; with a ``sparsity``
    structure, from :func:`_sparse_numjac`.
    """
    from . import numdiff

    steps = adaptive_steps(x, h)
    vectorized = options.get("vectorized", False)
    njit_f = numdiff._is_njit(f) and x.ndim > 0 and not vectorized
    value, seconds = numdiff._timed(f, x, args, njit_f, vectorized)
    if np.ndim(value) == 0:  # a scalar f: its gradient
        fshape: tuple = ()
        f0: Any = numdiff._real_value(value, "f(x)")
    else:
        probe = numdiff._array_value("iuf")(value)
        fshape = probe.shape
        f0 = np.ascontiguousarray(probe, dtype=np.float64).reshape(-1)
    if sparsity is not None:
        return _sparse_numjac(f, x, args, steps, fshape, f0, seconds, sparsity, order, options)
    if not fshape:
        J = _gradient(f, x, args, steps, value, seconds, options)[0].reshape(x.shape).astype(x.dtype, copy=False)
    else:
        from . import _evaluate

        checked = _evaluate.ArrayCheck("iuf", fshape)
        if _compiled(f, x, options):
            D = [numdiff._numjac(f, x, args, s, "central", f0.size, f0, check=checked, seconds=seconds,
                                 **options) for s in steps]
        else:  # (x.size, m) quotients, transposed to the Jacobian's (m, x.size)
            D = [Q.T for Q in _python_quotients(f, x, args, steps, f0.size, checked, seconds, options)]
        J, _ = extrapolate(D, steps, float(np.finfo(x.dtype).eps) * np.abs(f0)[:, None], 1)
        J = J.reshape(fshape + x.shape).astype(x.dtype, copy=False)
    if flatten:
        return numdiff._flatten_jacobian(J, fshape, x.shape, order)
    return J


def _sparse_numjac(f: Callable, x: np.ndarray, args: tuple, steps: list[np.ndarray], fshape: tuple, f0: Any,
                   seconds: float | None, sparsity: Any, order: str, options: dict) -> Any:
    """``numjac(..., method='adaptive', sparsity=S)``: the tableau over the stored entries of the K sparse Jacobians.

    The central quotients at every step come from ``sparsity.sparse_quotients``
    (one evaluation per group and point; float64 data, all with S's structure),
    and :func:`extrapolate` runs over their data arrays, entry by entry with that
    entry's column's steps and its row's rounding ``eps |f(x)|``: the arithmetic
    of the dense adaptive Jacobian at the same entries, so the same bits.
    """
    import scipy.sparse as sp

    from . import sparsity as _sparsity

    shape = (int(np.prod(fshape)), x.size)
    indptr, indices, D = _sparsity.sparse_quotients(
        f, x, args, steps, "central", fshape, f0, sparsity, order, np.float64, seconds=seconds,
        parallel=options.get("parallel", True), workers=options.get("workers"),
        vectorized=options.get("vectorized", False), chunk_size=options.get("chunk_size"))
    if indices.size == 0:
        return sp.csr_array((np.empty(0, dtype=x.dtype), indices, indptr), shape=shape)
    # entry e sits in S's row r_e and column q_e: f's element row_c[r_e], x's element col_c[q_e]
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    row_c = _sparsity._flat_positions(fshape, order)[rows]
    col_c = _sparsity._flat_positions(x.shape, order)[indices]
    rounding = float(np.finfo(x.dtype).eps) * np.abs(np.asarray(f0, dtype=np.float64)).reshape(-1)[row_c]
    data, _ = extrapolate(D, [s[col_c] for s in steps], rounding, 1)
    return sp.csr_array((data.astype(x.dtype), indices, indptr), shape=shape)


def numhess(x: np.ndarray, h: Any, core: Callable[[np.ndarray], tuple[np.ndarray, float]]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive Hessian: float64 ``(H, err)`` of shape (n, n); ``core(steps)`` is ``(H(steps), f(x))``.

    The steps of the pair ``(i, j)`` are ``h_i q^-k``, ``h_j q^-k``, scaled
    together: the mixed stencil's error series is even in that scale, and its
    rounding error ``eps |f| / (h_i h_j)``.
    """
    steps = adaptive_steps(x, h)
    D, f0 = [], 0.0
    for s in steps:
        H, f0 = core(s)
        D.append(H)
    scale = [np.sqrt(np.outer(s, s)) for s in steps]
    return extrapolate(D, scale, float(np.finfo(x.dtype).eps) * abs(f0), 2)
