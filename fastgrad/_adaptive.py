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
least estimated error is the result and that estimate its error bound.  Large
steps lose to truncation, small ones to rounding, and a step that crosses a
singularity gives estimates that disagree: the tableau picks the step and the
order for each element separately.

The sequence of quotients comes from the finite-difference cores
(``numdiff._numgrad``, ``numdiff._numjac``, ``hessian._numhess``), called once per
step with explicit absolute steps: an ``@njit`` f stays compiled and parallel
over the elements, a Python f runs as it does for ``method='central'``.  The
tableau is element-wise arithmetic in a fixed order, so the result is bitwise
identical for every thread count.

Defaults (measured on numdifftools' example functions at x = 0.5: relative
errors from 0 to 4e-14; tan at 1.55, 0.02 from its pole: 2e-12):
``h_0 = 2^-5 max(1, |x_i|)``, ratio ``q = 2``, ``K = 8`` steps (down to
``h_0 / 128``): ``2 K = 16`` evaluations of f per element of x for a gradient
or Jacobian, ``K (2 n^2 + 1)`` for a Hessian.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

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


def extrapolate(D: list[np.ndarray], steps: list[np.ndarray], rounding: np.ndarray,
                order: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The Richardson tableau of the quotients ``D[k] = D(h_k)``: the best entry and its error, element-wise.

    ``D[k]`` float64 arrays of one shape, ``steps[k]`` the steps broadcastable
    to it, ``rounding`` ``eps |f(x)|`` broadcastable to it, ``order`` d of the
    derivative (the rounding error of a quotient is ``eps |f| / h^d``).  The
    error series is even (central stencils): level m eliminates ``h^(2m)``.
    Assumes K >= 2 and validated inputs.
    """
    q = ADAPTIVE_RATIO
    K = len(D)
    level = np.stack([np.asarray(d, dtype=np.float64) for d in D])  # T[k, 0], k = 0..K-1
    shape = level.shape[1:]
    noise = np.stack([np.broadcast_to(rounding / s ** order, shape) for s in steps])
    # every entry T[k, m] (1 <= m <= k) and its error, column by column of the tableau
    values, errors = {}, {}
    amplify = 1.0
    for m in range(1, K):
        fac = q ** (2 * m)
        amplify *= (fac + 1.0) / (fac - 1.0)
        t = level[1:] + (level[1:] - level[:-1]) / (fac - 1.0)  # rows k = m..K-1
        e = np.maximum(np.abs(t - level[1:]), np.abs(t - level[:-1])) + amplify * noise[m:]
        for i, k in enumerate(range(m, K)):
            values[k, m], errors[k, m] = t[i], e[i]
        level = t
    # the entry of least error, the first in the order (k, m) among equal ones; NaN never wins
    order_km = [(k, m) for k in range(1, K) for m in range(1, k + 1)]
    E = np.stack([errors[km] for km in order_km])
    E = np.where(np.isnan(E), np.inf, E)
    pick = np.argmin(E, axis=0)[None]
    best = np.take_along_axis(np.stack([values[km] for km in order_km]), pick, 0)[0]
    best_err = np.take_along_axis(E, pick, 0)[0]
    # an element with no finite estimate of its error: the smallest step's quotient, error NaN
    undecided = ~np.isfinite(best_err)
    if undecided.any():
        best = np.where(undecided, D[-1], best)
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
    if _compiled(f, x, options):
        D = [numdiff._numgrad(f, x, args, s, "central", f0=f0, seconds=seconds, **options)[0] for s in steps]
    else:
        check = numdiff._ScalarCheck(numdiff._real_value, "iuf")
        D = [Q[:, 0] for Q in _python_quotients(f, x, args, steps, 1, check, seconds, options)]
    return extrapolate(D, steps, float(np.finfo(x.dtype).eps) * abs(float(f0)), 1)


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
    scalar f's gradients from ``numdiff._numgrad``.  Dense only: ``ValueError``
    with a ``sparsity`` structure.
    """
    from . import numdiff

    if sparsity is not None:
        raise ValueError("sparsity= is not available with method='adaptive' (it extrapolates the dense "
                         "Jacobian); use method='central' with sparsity=, or method='adaptive' without")
    steps = adaptive_steps(x, h)
    vectorized = options.get("vectorized", False)
    njit_f = numdiff._is_njit(f) and x.ndim > 0 and not vectorized
    value, seconds = numdiff._timed(f, x, args, njit_f, vectorized)
    if np.ndim(value) == 0:  # a scalar f: its gradient
        J = _gradient(f, x, args, steps, value, seconds, options)[0].reshape(x.shape).astype(x.dtype, copy=False)
        fshape: tuple = ()
    else:
        from . import _evaluate

        probe = numdiff._array_value("iuf")(value)
        fshape = probe.shape
        checked = _evaluate.ArrayCheck("iuf", fshape)
        f0 = np.ascontiguousarray(probe, dtype=np.float64).reshape(-1)
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
