r"""Gradient checks and the scipy.optimize drop-ins.

* :func:`approx_fprime`, :func:`check_grad` -- drop-ins for scipy.optimize's
  (same steps, arithmetic and results).  Like scipy's ``approx_fprime``, which
  calls ``approx_derivative``, :func:`approx_fprime` only forms scipy's steps and
  calls the finite-difference core of ``fastgrad.numdiff`` (compiled parallel
  loop for an ``@njit`` f).
* :func:`gradcheck` -- compare an analytic gradient with :func:`fastgrad.numgrad`,
  entry by entry (or first along one direction, ``mode='fast'``), with
  tolerances that follow x's dtype, and point at the worst entries.

The central difference is ``dw_j = lim (loss(w_j + h) - loss(w_j - h)) / 2h``; written
in code as ``/ 2*h`` it divides by 2 and *multiplies* by h, giving h^2 times the true
gradient (docs/derivations.md, "Slips in the original notes").  :func:`gradcheck`
catches exactly that.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _validate
from ._steps import check_method, default_step, default_steps
from .numdiff import _as_args, _is_njit, _numgrad, _numjac, _own_copy, _real_value, _timed, numgrad

__all__ = [
    "approx_fprime",
    "check_grad",
    "gradcheck",
    "GradcheckResult",
    "GradientMismatchError",
]

_EPSILON = float(np.sqrt(np.finfo(float).eps))  # scipy.optimize's default step


class GradientMismatchError(AssertionError):
    """An analytic gradient disagrees with the numerical one (raised by :func:`gradcheck`)."""


class GradcheckResult(NamedTuple):
    """Outcome of :func:`gradcheck`.

    ok : bool
        Every entry satisfies ``|analytic - numeric| <= atol + rtol |numeric|``.
    max_abs_err, max_rel_err : float
        The largest ``|analytic - numeric|`` and ``|analytic - numeric| / |numeric|``.
    worst_index : tuple of int
        Index into x of the entry that exceeds its tolerance by the largest factor
        (``()`` when ``mode='fast'`` passed on its direction).
    analytic, numeric : ndarray of x's shape
        (0-d arrays, the two directional derivatives, when ``mode='fast'``
        passed on its direction.)
    """

    ok: bool
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple
    analytic: np.ndarray
    numeric: np.ndarray


# ---------------------------------------------------------------------------
# scipy.optimize drop-ins


def _fprime_steps(x0: np.ndarray, epsilon: Any, f0_dtype: np.dtype) -> np.ndarray:
    """scipy's absolute steps: epsilon, or ``sqrt(eps) sign(x) max(1, |x|)`` where x + epsilon == x
    (everywhere for ``epsilon=None``), eps that of f's result when it is a narrower float than x's
    float64 (float32, float16), as scipy's ``_eps_for_method``."""
    sign_x0 = (x0 >= 0).astype(float) * 2 - 1
    narrow = f0_dtype.kind == "f" and f0_dtype.itemsize < 8
    relative = np.finfo(f0_dtype if narrow else np.float64).eps ** 0.5 * sign_x0 * np.maximum(1.0, np.abs(x0))
    if epsilon is None:
        return np.ascontiguousarray(relative, dtype=np.float64)
    h = epsilon
    dx = (x0 + h) - x0
    h = np.where(dx == 0, relative, h)
    return np.array(np.broadcast_to(h, x0.shape), dtype=np.float64, order="C")


def approx_fprime(xk: Any, f: Callable, epsilon: Any = _EPSILON, *args: Any) -> np.ndarray:
    r"""Forward-difference gradient/Jacobian, a drop-in for ``scipy.optimize.approx_fprime``.

    ``f'[i] = (f(xk + epsilon[i] e_i) - f(xk)) / epsilon[i]`` with the same steps,
    arithmetic and result shape as scipy (1.9+): shape (n,) for a scalar f,
    (m, n) for an f returning a 1-D array of m values.  An ``@njit`` f runs in
    fastgrad's compiled parallel loop.

    Parameters
    ----------
    xk : array_like of shape (n,)
    f : callable ``f(xk, *args)`` -> scalar or 1-D array
    epsilon : float, array_like of shape (n,) or None
        Absolute step(s); default ``sqrt(np.finfo(float).eps)``.  As in scipy,
        a step that vanishes at xk (``xk + epsilon == xk``) is replaced by
        ``sqrt(eps) * sign(xk) * max(1, |xk|)``, eps that of float64, or of f's
        result when it is float32 or float16; None takes that step everywhere.
    *args
        Extra arguments of f.

    Returns
    -------
    ndarray of shape (n,) or (m, n), float64.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> def func(x, c0, c1):
    ...     return c0 * x[0]**2 + c1 * x[1]**2
    >>> eps = np.sqrt(np.finfo(float).eps)
    >>> fastgrad.approx_fprime(np.ones(2), func, [eps, np.sqrt(200) * eps], 1, 200)
    array([  2.        , 400.00004208])
    """
    xk = np.asarray(xk, float)
    f0_raw, seconds = _timed(f, xk, args, _is_njit(f))
    x0 = np.array(np.atleast_1d(xk), dtype=np.float64, order="C")
    if x0.ndim > 1:
        raise ValueError("`x0` must have at most 1 dimension.")
    f0 = _fprime_value(f0_raw)
    if f0.ndim > 1:
        raise ValueError("`f0` passed has more than 1 dimension.")
    h = _fprime_steps(x0, epsilon, f0.dtype)
    if _is_njit(f) and np.ndim(f0_raw) == 0:  # a compiled scalar f: the gradient loop
        grad, _ = _numgrad(f, x0, args, h, "forward", f0=f0_raw, seconds=seconds)
        return grad

    def check(value):
        value = _fprime_value(value)
        if value.ndim > 1:
            raise RuntimeError("`fun` return value has more than 1 dimension.")
        return value

    J = _numjac(f, x0, args, h, "forward", f0.size, f0.astype(np.float64), check=check, seconds=seconds)
    return J.ravel() if f0.size == 1 else J


def _fprime_value(value: Any) -> np.ndarray:
    """``atleast_1d`` of a result of f: ``TypeError`` naming f unless it is real numbers (scipy raises too)."""
    arr = np.atleast_1d(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"f must return real numbers, got {type(value).__name__} of dtype {arr.dtype}"
                        + (" (complex: differentiate its real and imaginary parts separately)"
                           if arr.dtype.kind == "c" else ""))
    return arr


def _random_state(seed: Any, rng: Any):
    if seed is not None and rng is not None:
        raise TypeError("check_grad() got both `seed` and `rng`; give one of them")
    if rng is not None:
        return np.random.default_rng(rng)
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, int | np.integer):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState | np.random.Generator):
        return seed
    raise ValueError(f"'{seed}' cannot be used to seed a numpy.random.RandomState instance")


def check_grad(
    func: Callable,
    grad: Callable,
    x0: Any,
    *args: Any,
    epsilon: Any = _EPSILON,
    direction: str = "all",
    seed: Any = None,
    rng: Any = None,
) -> float:
    r"""2-norm of ``grad(x0) - approx_fprime(x0, func)``, a drop-in for ``scipy.optimize.check_grad``.

    Parameters
    ----------
    func, grad : callable ``(x0, *args)``
    x0 : array_like of shape (n,)
    *args
        Extra arguments of func and grad.
    epsilon : float
        Forward-difference step, default ``sqrt(np.finfo(float).eps)``.
    direction : {'all', 'random'}
        'all' compares every partial derivative; 'random' compares the
        directional derivative along one standard-normal vector v (scalar func
        only): ``|grad(x0) . v - d/dt func(x0 + t v)|``.
    seed : None, int, RandomState or Generator
        As scipy's legacy ``seed``: None uses ``np.random``'s global state, an int
        a new ``RandomState(seed)``.  Only used with ``direction='random'``.
    rng : optional
        scipy's newer keyword, passed to ``np.random.default_rng``.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> func = lambda x: x[0]**2 - 0.5 * x[1]**3
    >>> grad = lambda x: [2 * x[0], -1.5 * x[1]**2]
    >>> bool(fastgrad.check_grad(func, grad, [1.5, -1.5]) < 1e-6)
    True
    """
    step = epsilon
    x0 = np.asarray(x0)

    def g(w, func, x0, v, *args):
        return func(x0 + w * v, *args)

    if direction == "random":
        _grad = np.asanyarray(grad(x0, *args))
        if _grad.ndim > 1:
            raise ValueError("'random' can only be used with scalar valued func")
        v = _random_state(seed, rng).standard_normal(size=(x0.shape))
        _args = (func, x0, v) + args
        _func = g
        vars_ = np.zeros((1,))
        analytical_grad = np.dot(_grad, v)
    elif direction == "all":
        _args = args
        _func = func
        vars_ = x0
        analytical_grad = grad(x0, *args)
    else:
        raise ValueError(f"{direction} is not a valid string for ``direction`` argument")
    return np.sqrt(np.sum(np.abs((analytical_grad - approx_fprime(vars_, _func, step, *_args)) ** 2)))


# ---------------------------------------------------------------------------
# gradcheck

_SHOW_WORST = 5
#: Default (rtol, atol) of :func:`gradcheck` for float64 x.
GRADCHECK_TOLERANCES_FLOAT64 = (1e-5, 1e-8)
#: float32 x: rtol, and the safety factor of atol over the rounding error of one difference quotient.
GRADCHECK_RTOL_FLOAT32 = 1e-3
GRADCHECK_ATOL_FACTOR_FLOAT32 = 20.0
#: The fixed pseudo-random stream of the direction of ``mode='fast'`` (the same direction for every call).
_DIRECTION_STREAM = 20240229


def _tolerance(value: Any, name: str) -> float:
    """A tolerance of gradcheck: a real number, finite and >= 0, else an error naming it."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    tol = float(value)
    if not (np.isfinite(tol) and tol >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return tol


def _float32_atol(method: str) -> float:
    r"""atol per unit of ``max(1, |f(x)|)`` for float32 x: 20 times the rounding error ``eps |f| / h`` of one quotient.

    The default step ``h = c max(1, |x|)`` (c = eps^(1/3) for central
    differences, eps^(1/2) forward/backward, eps^(1/5) five-point) gives a
    rounding error of about ``eps / c |f|``: float32 central, 2.4e-5 |f|
    (measured on logistic-regression losses: 1e-5 to 2.2e-5 |f|).  The complex
    step and the adaptive method are held to the central difference's.
    """
    stencil = method if method in ("forward", "backward", "central", "five-point") else "central"
    eps = float(np.finfo(np.float32).eps)
    return GRADCHECK_ATOL_FACTOR_FLOAT32 * eps / default_step(np.dtype(np.float32), stencil)


def _default_tolerances(dtype: np.dtype, method: str, rtol: Any, atol: Any) -> tuple[float, float, bool]:
    """``(rtol, atol, scaled)``: the user's (validated) or x's dtype's; scaled: atol is per ``max(1, |f(x)|)``."""
    rtol = _tolerance(rtol, "rtol") if rtol is not None else None
    atol = _tolerance(atol, "atol") if atol is not None else None
    if dtype == np.float32:
        d_rtol, d_atol, scaled = GRADCHECK_RTOL_FLOAT32, _float32_atol(method), atol is None
    else:
        (d_rtol, d_atol), scaled = GRADCHECK_TOLERANCES_FLOAT64, False
    return (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol), scaled


def _checked_analytic(grad: Callable, x: np.ndarray, args: tuple) -> np.ndarray:
    analytic = _validate.as_array(grad(x.copy(), *args), "grad(x)")
    if analytic.dtype.kind not in "iuf":  # (a complex gradient's imaginary part would be dropped)
        raise TypeError(f"grad must return an array of real numbers, got dtype {analytic.dtype}")
    if analytic.shape != x.shape:
        raise ValueError(f"grad returned an array of shape {analytic.shape} but x has shape {x.shape}")
    return analytic


def _direction(x: np.ndarray, h: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two points ``x +- t v`` of the fast check, as stored in x's dtype.

    v is a fixed pseudo-random standard-normal vector; t makes the largest
    displacement of an entry ``h`` (default ``eps^(1/3) max(1, max|x_i|)``).
    """
    v = np.random.default_rng(_DIRECTION_STREAM).standard_normal(x.size).reshape(x.shape)
    if h is None:
        finite = np.abs(x[np.isfinite(x)])
        length = default_step(x.dtype, "central") * max(1.0, float(finite.max()) if finite.size else 1.0)
    else:
        length = float(np.max(np.asarray(h, dtype=np.float64)))
    t = length / float(np.max(np.abs(v)))
    xf = x.astype(np.float64)
    return (xf + t * v).astype(x.dtype), (xf - t * v).astype(x.dtype)


def gradcheck(
    f: Callable,
    grad: Callable,
    x: Any,
    *,
    args: Sequence = (),
    rtol: float | None = None,
    atol: float | None = None,
    h: Any = None,
    method: str = "central",
    raise_exception: bool = True,
    mode: str = "full",
) -> GradcheckResult:
    r"""Check an analytic gradient against :func:`numgrad`, entry by entry or along one direction.

    Entry j passes when ``|analytic_j - numeric_j| <= atol + rtol |numeric_j|``
    (numpy's ``allclose`` rule, NaN fails).

    The default tolerances follow x's dtype.  float64: rtol 1e-5, atol 1e-8.
    float32: a difference quotient of f has a rounding error of about
    ``eps |f| / h`` (with the default central step ``h ~ eps^(1/3)``, about
    ``2.4e-5 |f|``): rtol 1e-3 and atol 20 times that rounding error,
    ``atol = 20 eps^(2/3) max(1, |f(x)|) ~ 4.8e-4 max(1, |f(x)|)`` for central
    differences (``20 eps^(1/2)`` forward/backward, ``20 eps^(4/5)``
    five-point).  A tolerance you give is used as it is.

    ``mode='fast'`` checks one direction first: for a fixed pseudo-random
    unit direction u (the same for every call), the central difference of f
    along u, ``(f(x + t u) - f(x - t u)) / 2t`` (2 evaluations of f), against
    ``grad(x) . u`` (one evaluation of grad), with the same rule.  A correct
    gradient passes in 2 evaluations of f (3 for float32 x with the default
    atol, which needs |f(x)|) whatever the size of x.  Only if the direction
    fails does it run the full check, to name the worst entries.  A direction
    sees the sum of all errors along it: it misses what the full check would
    catch only if errors cancel exactly along u.

    Parameters
    ----------
    f : callable ``f(x, *args) -> scalar`` (Python or ``@njit``)
    grad : callable ``grad(x, *args) -> array of x's shape``
    x : array_like, any shape
    args, h, method
        As :func:`numgrad`.  In the direction of ``mode='fast'``, ``h`` is the
        largest displacement of an entry and the difference is always central.
    rtol, atol : float, optional
        Finite and >= 0; default by x's dtype (above).
    raise_exception : bool
        Raise :class:`GradientMismatchError` on failure (default) instead of
        returning a result with ``ok=False``.
    mode : {'full', 'fast'}
        'full' (default): every entry, ``2 x.size + 1`` evaluations of f for
        central differences.  'fast': one direction first (above).

    Returns
    -------
    GradcheckResult(ok, max_abs_err, max_rel_err, worst_index, analytic, numeric)
        When ``mode='fast'`` passes on the direction: the errors of the
        directional derivative, ``worst_index == ()``, and ``analytic``,
        ``numeric`` the two directional derivatives (0-d arrays).  Otherwise
        the entry-by-entry comparison, ``analytic`` and ``numeric`` of x's
        shape.

    Raises
    ------
    GradientMismatchError (an AssertionError)
        listing the worst entries (index, analytic, numeric, abs and rel
        error), the dtype of x and the tolerances used.
    ValueError
        grad returns an array of a shape other than x's; rtol or atol is NaN,
        infinite or negative (``TypeError`` if not a real number); unknown
        mode; h as :func:`numgrad`.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> x = np.array([0.5, -1.0, 2.0])
    >>> fastgrad.gradcheck(lambda x: np.sum(np.sin(x)), np.cos, x).ok
    True
    >>> wrong = lambda x: np.cos(x) + [0.0, 1e-3, 0.0]   # entry 1 is off
    >>> r = fastgrad.gradcheck(lambda x: np.sum(np.sin(x)), wrong, x, raise_exception=False)
    >>> r.ok, r.worst_index
    (False, (1,))
    >>> big = np.linspace(-1.0, 1.0, 10_000)
    >>> fastgrad.gradcheck(lambda x: np.sum(np.sin(x)), np.cos, big, mode='fast').ok   # 2 evaluations of f
    True
    """
    x = _own_copy(x)
    method = check_method(method, adaptive=True)
    _validate.check_choice(mode, "mode", ("full", "fast"))
    rtol, atol, scaled = _default_tolerances(x.dtype, method, rtol, atol)
    raise_exception = _validate.check_flag(raise_exception, "raise_exception")
    if h is not None and mode == "fast":
        default_steps(x, h, "central", False)  # h's shape, and x + h != x (as numgrad checks them)
    elif h is not None:
        _validate.check_step(h, "h")
    args = _as_args(args)
    if x.size == 0:
        analytic = _checked_analytic(grad, x, args)
        return GradcheckResult(True, 0.0, 0.0, (), analytic, np.zeros(x.shape, x.dtype))
    fx = float(_real_value(f(x.copy(), *args), "f(x)")) if scaled else None
    if scaled:
        atol_used = atol * max(1.0, abs(fx)) if np.isfinite(fx) else atol
        atol_note = f"atol={atol:g} max(1, |f(x)|) = {atol_used:g}"
    else:
        atol_used, atol_note = atol, f"atol={atol:g}"
    analytic = None
    if mode == "fast":
        analytic = _checked_analytic(grad, x, args)
        xp, xm = _direction(x, h)
        d = xp.astype(np.float64) - xm.astype(np.float64)  # the displacement actually taken, 2 t u
        length = float(np.linalg.norm(d))
        if length == 0.0:
            raise ValueError(f"the fast check's step (h = {h!r}) vanishes against x: x + t u == x - t u "
                             "for its direction u; use a larger step")
        f_p = float(_real_value(f(xp, *args), "f(x + t u)"))
        f_m = float(_real_value(f(xm, *args), "f(x - t u)"))
        numeric = (f_p - f_m) / length
        exact = float(np.dot(analytic.astype(np.float64).reshape(-1), d.reshape(-1))) / length
        diff = abs(exact - numeric)
        if diff <= atol_used + rtol * abs(numeric):
            rel = 0.0 if diff == 0 else diff / abs(numeric)
            return GradcheckResult(True, diff, rel, (), np.asarray(exact), np.asarray(numeric))
    numeric = numgrad(f, x, args=args, h=h, method=method)
    if analytic is None:
        analytic = _checked_analytic(grad, x, args)
    a = analytic.astype(np.float64)
    n = numeric.astype(np.float64)
    diff = np.abs(a - n)
    tol = atol_used + rtol * np.abs(n)
    bad = ~(diff <= tol)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(bad, np.where(tol > 0, diff / tol, np.inf), diff / np.where(tol > 0, tol, 1.0))
        excess = np.where(np.isnan(excess), np.inf, excess)
        rel = np.where(diff == 0, 0.0, diff / np.abs(n))
    ok = not bool(bad.any())
    worst_flat = int(np.argmax(excess))
    worst = tuple(int(i) for i in np.unravel_index(worst_flat, x.shape))
    result = GradcheckResult(ok, float(np.max(diff)), float(np.max(rel)), worst, analytic, numeric)
    if not ok and raise_exception:
        order = np.argsort(-excess.reshape(-1), kind="stable")[: min(_SHOW_WORST, int(bad.sum()))]
        lines = [f"{'index':>14}  {'analytic':>14}  {'numeric':>14}  {'abs err':>10}  {'rel err':>10}"]
        for j in order:
            idx = tuple(int(i) for i in np.unravel_index(int(j), x.shape))
            lines.append(f"{idx!s:>14}  {a.flat[j]:>14.7g}  {n.flat[j]:>14.7g}  "
                         f"{diff.flat[j]:>10.3g}  {rel.flat[j]:>10.3g}")
        raise GradientMismatchError(
            f"gradient check failed: {int(bad.sum())} of {x.size} entries differ "
            f"(|analytic - numeric| > atol + rtol |numeric|, {x.dtype} x, rtol={rtol:g}, {atol_note}, "
            f"method={method!r}); worst at index {worst}:\n" + "\n".join(lines)
        )
    return result
