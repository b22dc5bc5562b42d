r"""The Taylor test: is a gradient right, with no step size to tune?

If ``g`` is the gradient of f at x, the first-order Taylor remainder along any
direction v is quadratic in the step:

    r(t) = |f(x + t v) - f(x) - t g . v| = t^2 |v^T H v| / 2 + O(t^3),

while any other g leaves a linear term ``t |(grad f - g) . v|``.  So over a
geometric sequence of steps, ``log r`` against ``log t`` has slope 2 for a right
gradient and slope 1 for a wrong one, whatever its scale.  See
docs/derivations.md, "Second derivatives".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _validate

__all__ = ["taylor_test", "TaylorResult"]

#: steps t_k = T0 2^-k, k = 0 .. N_STEPS - 1, with T0 = 2^-4 max(1, max|x_i|) / max|v_i|
N_STEPS = 12
FIRST_STEP = 2.0**-4
#: a remainder counts only above this many times its rounding level eps (|f(x + t v)| + |f(x)| + |t g . v|)
NOISE_FACTOR = 100.0
#: the order a right gradient must show
MIN_ORDER = 1.8


class TaylorResult(NamedTuple):
    """Outcome of :func:`taylor_test`.

    ok : bool
        The observed order is at least 1.8, or the remainder stayed at rounding
        level at every step (f linear along v and g right).
    order : float
        Least-squares slope of log(error) against log(step) over the steps whose
        error is above rounding level; NaN if fewer than two are.
    steps : ndarray (12,)
        The steps t, largest first (halving).
    errors : ndarray (12,)
        The remainders ``|f(x + t v) - f(x) - t g . v|`` at those steps.
    """

    ok: bool
    order: float
    steps: np.ndarray
    errors: np.ndarray


def _direction(v: Any, shape: tuple) -> np.ndarray:
    if v is None:  # a fixed pseudo-random direction: deterministic, and not special for f
        return np.random.default_rng(20240601).standard_normal(shape)
    arr = _validate.as_real(v, "v")
    if arr.shape != shape:
        raise ValueError(f"v has shape {arr.shape} but x has shape {shape}; v must have x's shape")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or (arr.size and not np.any(arr)):
        raise ValueError("v must be finite and not zero")
    return arr


def taylor_test(
    f: Callable,
    grad: Callable,
    x: Any,
    *,
    v: Any = None,
    args: Sequence = (),
) -> TaylorResult:
    r"""Check a gradient by the order of the Taylor remainder: 2 if ``grad`` is right, 1 if not.

    Evaluates the remainder ``r(t) = |f(x + t v) - f(x) - t grad(x) . v|``
    over 12 steps ``t = t_0 2^-k`` (``t_0 = 2^-4 max(1, max|x_i|) / max|v_i|``)
    and fits the slope of ``log r`` against ``log t`` over the steps whose
    remainder is above rounding level.  ``r(t) = O(t^2)`` exactly when the
    gradient is right along v; a wrong gradient -- wrong sign, wrong scale, a
    step slipped into it -- leaves ``r(t) ~ t |(grad f - g) . v|``, order 1.
    No step size to tune and no tolerance: 13 evaluations of f, one of grad.

    Parameters
    ----------
    f : callable ``f(x, *args) -> scalar`` (Python or ``@njit``)
    grad : callable ``grad(x, *args) -> array of x's shape``
    x : array_like, any shape
        float32 and float64 kept (f sees x's dtype), other real types float64.
    v : array_like of x's shape, optional
        The direction; default a fixed pseudo-random normal direction (the same
        every call), which a wrong gradient is unlikely to be right along.  A v
        so small that ``t_0`` would overflow (max|v_i| below about 1e-308) is
        first scaled up by a power of two; the steps then refer to the scaled v.
    args : tuple
        Extra positional arguments of f and grad.

    Returns
    -------
    TaylorResult(ok, order, steps, errors)

    Raises
    ------
    ValueError
        v of another shape than x, zero or not finite; grad returns an array of
        another shape; f returns an array of more than one element.
    TypeError
        f returns something other than a real number, grad something other
        than real numbers.

    Notes
    -----
    The test sees the gradient along v only: an error orthogonal to v, or one
    much smaller than ``t_min |v^T H v|`` (the curvature at the smallest step),
    shows order 2.  Use :func:`gradcheck` to locate a wrong entry.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> f = lambda x: np.sum(np.sin(x) * x)
    >>> g = lambda x: np.cos(x) * x + np.sin(x)
    >>> x = np.array([0.3, 1.2, -0.7])
    >>> r = fastgrad.taylor_test(f, g, x)
    >>> r.ok, round(r.order)
    (True, 2)
    >>> r = fastgrad.taylor_test(f, lambda x: 0.01 * g(x), x)   # the /2*h slip: h^2 times g
    >>> r.ok, round(r.order)
    (False, 1)
    """
    x = np.array(_validate.as_real(x, "x"), order="C", copy=True)
    args = args if isinstance(args, tuple) else (args,)
    vf = _direction(v, x.shape)
    value = f(x.copy(), *args)
    f0 = _validate.f_scalar(value, "f")
    g = _validate.as_array(grad(x.copy(), *args), "grad(x)")
    if g.dtype.kind not in "iuf" or g.dtype.kind == "b":
        raise TypeError(f"grad must return an array of real numbers, got dtype {g.dtype}")
    if g.shape != x.shape:
        raise ValueError(f"grad returned an array of shape {g.shape} but x has shape {x.shape}")
    g = g.astype(np.float64)
    eps = float(np.finfo(x.dtype).eps)
    rdtype = np.asarray(value).dtype
    if rdtype.kind == "f":
        eps = max(eps, float(np.finfo(rdtype).eps))
    xf = x.astype(np.float64)
    finite = np.isfinite(xf)
    xmax = float(np.max(np.abs(xf[finite]))) if finite.any() else 1.0
    vmax = float(np.max(np.abs(vf))) if vf.size else 1.0  # (an empty x: nothing moves, the test is vacuous)
    if not np.isfinite(FIRST_STEP * max(1.0, xmax) / vmax):
        # a v so small (or x so large) that t_0 overflows: the test depends on t v only, so v is
        # scaled by a power of two (exactly) and the steps refer to the scaled v
        vf = np.ldexp(vf, -int(np.frexp(vmax)[1]))
        vmax = float(np.max(np.abs(vf)))
    t0 = FIRST_STEP * max(1.0, xmax) / vmax
    steps = t0 * 2.0 ** -np.arange(N_STEPS)
    errors = np.empty(N_STEPS)
    noise = np.empty(N_STEPS)
    for k, t in enumerate(steps):
        xp = (xf + t * vf).astype(x.dtype)
        d = xp.astype(np.float64) - xf  # the displacement actually taken (x + t v rounded to x's dtype)
        fp = _validate.f_scalar(f(xp, *args), "f")
        gd = g * d
        lin = float(np.sum(gd))
        errors[k] = abs(fp - f0 - lin)
        noise[k] = eps * (abs(fp) + abs(f0) + float(np.sum(np.abs(gd))))
    with np.errstate(invalid="ignore"):
        above = np.isfinite(errors) & (errors > NOISE_FACTOR * noise)
    if above.sum() >= 2:
        order = float(np.polyfit(np.log(steps[above]), np.log(errors[above]), 1)[0])
        ok = order >= MIN_ORDER
    else:
        order = float("nan")
        ok = not above.any() and bool(np.isfinite(errors).all())  # at rounding level at every step
    return TaylorResult(bool(ok), order, steps, errors)
