r"""Second derivatives by finite differences.

* :func:`numhess` -- the Hessian of a scalar ``f(x, *args)``, shape
  ``x.shape + x.shape``, symmetric by construction: each pair ``i < j`` is
  computed once by the mixed 4-point stencil and written to both entries.
* :func:`numhess_diag` -- only its diagonal, ``2n + 1`` evaluations of f.
* :func:`numhvp` -- a Hessian-vector product ``H v`` from two gradients.
* :func:`hesscheck` -- compare an analytic Hessian with :func:`numhess`.

An ``@njit`` f runs in a compiled loop over the pairs (in parallel, each
thread on its own copy of x: ``fastgrad._numba.hessian``); a Python f in a
Python loop that does the same arithmetic (bit for bit) and nothing but call f
per point: the perturbed values are formed once, vectorised.  The stencils, their step ``eps^(1/4)`` and their
truncation error are derived in docs/derivations.md, "Second derivatives".
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _adaptive, _config, _validate
from ._steps import default_steps
from .gradient_checks import GradcheckResult, GradientMismatchError
from .numdiff import _is_njit, numgrad

__all__ = ["numhess", "numhess_diag", "numhvp", "hesscheck"]

#: Default rtol, atol of :func:`hesscheck` per dtype of x (atol then scaled by max(1, |f(x)|)).  A Hessian
#: by differences of f is good to about sqrt(eps) |f| (float64: ~1e-8 |f|), far less than a gradient.
HESSCHECK_TOLERANCES = {np.dtype(np.float64): (1e-4, 1e-6), np.dtype(np.float32): (1e-2, 1e-2)}
_SHOW_WORST = 5
_RICH = 4.0 / 3.0  # Richardson factor 2^p / (2^p - 1) of a second-order quotient (as the kernels)


# ---------------------------------------------------------------------------
# Shared helpers


def _as_args(args: Any) -> tuple:
    return args if isinstance(args, tuple) else (args,)


def _own_copy(x: Any, name: str = "x") -> np.ndarray:
    """x validated (real float32/float64) as a fresh C-contiguous array fastgrad owns."""
    return np.array(_validate.as_real(x, name), order="C", copy=True)


def _steps(x: np.ndarray, h: Any, full: bool) -> np.ndarray:
    """Representable steps ``(x_i + h_i) - x_i`` (float64, x.size); default ``eps^(1/4) max(1, |x_i|)``."""
    if h is None:
        c = float(np.finfo(x.dtype).eps) ** 0.25
        h = c * np.maximum(1.0, np.abs(x.astype(np.float64)))
        h = np.where(np.isfinite(h), h, c)  # NaN/Inf entries of x: any step (their derivatives are NaN)
    steps = default_steps(x, h, "central", full)  # validated: finite, > 0, x's shape, x + h != x
    xf = x.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):  # (Inf entries of x)
        taken = (xf + steps).astype(x.dtype).astype(np.float64) - xf.astype(np.float64)
    # NaN/Inf entries of x: keep the nominal step (their derivatives are NaN anyway)
    return np.where(np.isfinite(taken) & (taken > 0), taken, steps)


def _probe(f: Callable, x: np.ndarray, args: tuple) -> tuple[float, bool, float | None]:
    """``(f(x) as a float, whether the compiled loop can run f, seconds per compiled evaluation)``.

    The compiled loop needs an ``@njit`` f returning a scalar for an x of at
    least one dimension; anything else runs as Python (each result checked).
    """
    njit_f = _is_njit(f) and x.ndim > 0
    if njit_f:
        value, seconds = _config.user_function_kernels().timed_call(f, x, args)
    else:
        value, seconds = f(x.copy(), *args), None
    f0 = _validate.f_scalar(value, "f")
    compiled = njit_f and np.ndim(value) == 0
    return f0, compiled, seconds if compiled else None


def _python_f(f: Callable, x: np.ndarray, args: tuple) -> Callable:
    """``at(i, v_i, j, v_j)``: f at x with x_i = v_i (and x_j = v_j if j >= 0), on a fresh copy, as a float."""
    xf = x.reshape(-1)

    def at(i, v_i, j=-1, v_j=0.0):
        z = xf.copy()
        z[i] = v_i
        if j >= 0:
            z[j] = v_j
        value = f(z.reshape(x.shape), *args)
        if isinstance(value, float):  # float and np.float64: the common case, nothing to check
            return float(value)
        return _validate.f_scalar(value, "f")

    return at


def _stored(x: np.ndarray, moves: np.ndarray) -> list:
    """``x_i + moves_i`` as stored in x's dtype, read back as Python floats (the kernels' ``p_i``, ``m_i``)."""
    return (x.reshape(-1).astype(np.float64) + moves).astype(x.dtype).astype(np.float64).tolist()


def _hess_python(f: Callable, x: np.ndarray, h: np.ndarray, f0: float, args: tuple, full: bool, eps: float,
                 out: np.ndarray, err: np.ndarray) -> None:
    """The Hessian of a Python f: the arithmetic of ``_numba.hessian.hess_tasks`` (bit for bit), in Python floats.

    The perturbed points depend on one element only, so they are formed once,
    vectorised; the loop over the pairs does nothing but call f and combine.
    """
    at = _python_f(f, x, args)
    n = x.size
    xs = x.reshape(-1).astype(np.float64).tolist()
    reps = []
    for r in range(2 if full else 1):
        s = h if r == 0 else 0.5 * h
        reps.append((_stored(x, s), _stored(x, -s), _stored(x, 2.0 * s), _stored(x, -(2.0 * s))))
    for i in range(n):
        x_i = xs[i]
        for j in range(i, n):
            d_h = b_h = e = 0.0
            for r, (p1, m1, p2, m2) in enumerate(reps):
                if i == j:
                    p, m = p2[i], m2[i]
                    f_p, f_m = at(i, p), at(i, m)
                    a, b = p - x_i, x_i - m
                    if a == b:
                        d = ((f_p - f0) + (f_m - f0)) / (a * a)
                    else:
                        d = 2.0 * ((f_p - f0) / a + (f_m - f0) / b) / (a + b)
                    bound = (abs(f_p) + 2.0 * abs(f0) + abs(f_m)) / (a * b)
                else:
                    p_i, m_i, p_j, m_j = p1[i], m1[i], p1[j], m1[j]
                    f_pp, f_mp = at(i, p_i, j, p_j), at(i, m_i, j, p_j)
                    f_pm, f_mm = at(i, p_i, j, m_j), at(i, m_i, j, m_j)
                    den = (p_i - m_i) * (p_j - m_j)
                    d = ((f_pp - f_pm) - (f_mp - f_mm)) / den
                    bound = (abs(f_pp) + abs(f_mp) + abs(f_pm) + abs(f_mm)) / den
                if r == 0:
                    d_h, b_h = d, bound
                else:
                    e = abs(d_h - d) * _RICH + eps * b_h
            out[i, j] = out[j, i] = d_h
            if full:
                err[i, j] = err[j, i] = e


def _diag_python(f: Callable, x: np.ndarray, h: np.ndarray, f0: float, args: tuple, full: bool, eps: float,
                 out: np.ndarray, err: np.ndarray) -> None:
    """The Hessian's diagonal for a Python f: the arithmetic of ``_numba.hessian.diag_chunk``, in Python floats."""
    at = _python_f(f, x, args)
    xs = x.reshape(-1).astype(np.float64).tolist()
    reps = [(_stored(x, s), _stored(x, -s)) for s in ((h, 0.5 * h) if full else (h,))]
    for i in range(x.size):
        x_i = xs[i]
        d_h = b_h = 0.0
        for r, (p1, m1) in enumerate(reps):
            p, m = p1[i], m1[i]
            f_p, f_m = at(i, p), at(i, m)
            a, b = p - x_i, x_i - m
            if a == b:
                d = ((f_p - f0) + (f_m - f0)) / (a * a)
            else:
                d = 2.0 * ((f_p - f0) / a + (f_m - f0) / b) / (a + b)
            if r == 0:
                d_h, b_h = d, (abs(f_p) + 2.0 * abs(f0) + abs(f_m)) / (a * b)
            else:
                err[i] = abs(d_h - d) * _RICH + eps * b_h
        out[i] = d_h


def _threads(parallel: Any, tasks: int, evaluations: int, seconds: float | None) -> int:
    """Threads of a compiled loop: 1 without ``parallel``, for one task, or when the work is below
    ``_config.USER_PARALLEL_MIN_NS`` (waking the thread pool would cost more than it saves)."""
    if not parallel or tasks <= 1:
        return 1
    work_ns = evaluations * (1e9 * seconds if seconds is not None else np.inf)
    return _config.threads_for(int(min(work_ns, 2**62)), _config.USER_PARALLEL_MIN_NS)


def _kernels() -> Any:
    return _config.user_function_kernels("hessian")


# ---------------------------------------------------------------------------
# numhess, numhess_diag


def numhess(
    f: Callable,
    x: Any,
    *,
    args: Sequence = (),
    h: Any = None,
    method: str = "central",
    parallel: bool = True,
    full_output: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Numerical Hessian of a scalar function: ``H[a..., b...] ~ d^2 f(x, *args) / dx[a...] dx[b...]``.

    Each pair ``i < j`` of (flattened) elements is computed once, by the mixed
    central stencil, and written to both ``H[i, j]`` and ``H[j, i]``; the
    diagonal by the matching stencil of spacing ``2 h``::

        H_ij = (f(x + h_i e_i + h_j e_j) - f(x + h_i e_i - h_j e_j)
                - f(x - h_i e_i + h_j e_j) + f(x - h_i e_i - h_j e_j)) / (4 h_i h_j)
        H_ii = (f(x + 2 h_i e_i) - 2 f(x) + f(x - 2 h_i e_i)) / (4 h_i^2)

    (the central difference of the central difference), truncation error
    O(h^2), ``2 n^2 + 1`` evaluations of f for n = x.size.

    ``method='adaptive'`` is accuracy on demand: the stencils at the steps
    ``h 2^-k``, k = 0..7 (default ``h = max(1, |x_i|) / 32``), combined by the
    Richardson tableau, which cancels the ``h^2, h^4, ...`` terms of their
    error; for every entry the tableau entry of least estimated error is
    kept.  It costs 8 times ``'central'`` (``8 (2 n^2 + 1)`` evaluations) and
    typically reaches 1e-11 in float64 where ``'central'`` gives 1e-8.

    Parameters
    ----------
    f : callable ``f(x, *args) -> scalar``
        A Python callable or a Numba ``@njit`` dispatcher.  Every evaluation
        gets the right point with x's shape and dtype (a Python f a fresh copy,
        an ``@njit`` f a private copy restored after every call).  It must
        return a real number.
    x : array_like, any shape
        The point; float32 and float64 are kept, other real types become
        float64.  Never written.
    args : tuple
        Extra positional arguments of f.
    h : float or array_like of x's shape, optional
        Absolute step(s), finite and > 0.  Default ``eps^(1/4) max(1, |x_i|)``,
        eps the machine epsilon of x's dtype (it balances the O(h^2) truncation
        against the rounding error ``eps |f| / h^2``).  The step used is the
        representable one, ``(x_i + h_i) - x_i``.  With ``'adaptive'``, the
        largest of the 8 steps.
    method : {'central', 'adaptive'}
    parallel : bool
        For an ``@njit`` f: run the compiled loop over the pairs in parallel
        (``fastgrad.set_num_threads``), each thread on its own copy of x, when
        the work pays for the threads; else serially.  The result is bitwise
        identical for every thread count.
    full_output : bool
        Also return an element-wise error estimate (the stencils again at
        ``h/2``: twice the evaluations).

    Returns
    -------
    H : ndarray of shape ``x.shape + x.shape``, symmetric (``H == H.T`` exactly
        for 1-D x); float32 for float32 x, else float64.
    err : ndarray of the same shape, only with ``full_output=True``
        ``|D(h) - D(h/2)| 4/3`` (Richardson) plus the rounding bound
        ``eps sum_k |c_k f_k|``.  With ``'adaptive'`` (no extra cost): how far
        the chosen tableau entry moved from the two estimates it was made of,
        plus its rounding bound -- an estimate that holds for most entries, not
        a guarantee.

    Raises
    ------
    ValueError
        unknown method; h not finite or <= 0, of the wrong shape, or so small
        that ``x + h == x``; f returns an array of more than one element.
    TypeError
        f returns something other than a real number (None, a string, a bool,
        a complex number).

    Notes
    -----
    An exception raised by f propagates, from a Python or an ``@njit`` f, at
    every thread count.  Accuracy: about ``sqrt(eps) |f|`` absolute (float64:
    ~1e-8 |f|) -- a Hessian by differences of f is much less accurate than a
    gradient; differences of an analytic gradient (:func:`numhvp` with
    ``grad=``) do better.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> H = fastgrad.numhess(lambda x: x @ A @ x, np.array([0.5, -1.0]))
    >>> np.round(H, 6)
    array([[4., 2.],
           [2., 6.]])
    >>> H, err = fastgrad.numhess(lambda x: np.sin(x[0]) * x[1], [1.0, 2.0], full_output=True)
    >>> bool(abs(H[0, 1] - np.cos(1.0)) < 1e-7), bool((err < 1e-6).all())
    (True, True)
    >>> H = fastgrad.numhess(lambda x: np.sin(x[0]) * x[1], [1.0, 2.0], method='adaptive')
    >>> bool(abs(H[0, 1] - np.cos(1.0)) < 1e-11)
    True
    """
    _validate.check_choice(method, "method", ("central", "adaptive"))
    x = _own_copy(x)
    full = _validate.check_flag(full_output, "full_output")
    parallel = _validate.check_flag(parallel, "parallel")
    args = _as_args(args)
    if method == "adaptive":
        probed: list = []  # f(x) evaluated once, at the first step (after the steps are validated)

        def at_steps(s):
            if not probed and x.size:
                probed.append(_probe(f, x, args))
            # (the steps come flat, x.size; _numhess takes them in x's shape)
            H_s, _, f0 = _numhess(f, x, args, s.reshape(x.shape), parallel, False, probed[0] if probed else None)
            return H_s, f0

        H, err = _adaptive.numhess(x, h, at_steps)
    else:
        H, err, _ = _numhess(f, x, args, h, parallel, full)
    H = H.reshape(x.shape + x.shape).astype(x.dtype, copy=False)
    if full:
        return H, err.reshape(x.shape + x.shape).astype(x.dtype, copy=False)
    return H


def _numhess(f: Callable, x: np.ndarray, args: tuple, h: Any, parallel: Any,
             full: bool, probe: tuple | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The core of :func:`numhess`: float64 ``(H (n, n), err (n, n) or empty, f(x))`` for an owned x.

    ``probe`` is :func:`_probe`'s result when known (None: f(x) evaluated here).
    """
    n = x.size
    H = np.empty((n, n))
    err = np.zeros((n, n) if full else (0, 0))
    if n == 0:
        return H, err, float("nan")
    steps = _steps(x, h, full)
    f0, compiled, seconds = _probe(f, x, args) if probe is None else probe
    eps = float(np.finfo(x.dtype).eps)
    if compiled:
        k = _kernels()
        evaluations = (2 * n * n + 1) * (2 if full else 1)
        k.hess_into(f, x, steps, f0, args, full, eps, H, err,
                    _threads(parallel, k.task_count(n), evaluations, seconds))
    else:
        _hess_python(f, x, steps, f0, args, full, eps, H, err)
    return H, err, f0


def numhess_diag(
    f: Callable,
    x: Any,
    *,
    args: Sequence = (),
    h: Any = None,
    parallel: bool = True,
    full_output: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""The diagonal of the Hessian, ``d^2 f / dx_i^2`` for every element, in ``2n + 1`` evaluations of f.

    ``(f(x + h e_i) - 2 f(x) + f(x - h e_i)) / h^2``, truncation error
    ``h^2 f''''/12``.  Parameters and results as :func:`numhess` (default step
    ``eps^(1/4) max(1, |x_i|)``), but of x's shape.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> x = np.array([[0.5, 1.0], [1.5, 2.0]])
    >>> d = fastgrad.numhess_diag(lambda x: np.sum(np.sin(x)), x)
    >>> d.shape, bool(np.allclose(d, -np.sin(x), atol=1e-7))
    ((2, 2), True)
    """
    x = _own_copy(x)
    args = _as_args(args)
    full = _validate.check_flag(full_output, "full_output")
    parallel = _validate.check_flag(parallel, "parallel")
    n = x.size
    out = np.empty(n)
    err = np.zeros(n if full else 0)
    if n:
        steps = _steps(x, h, full)
        f0, compiled, seconds = _probe(f, x, args)
        eps = float(np.finfo(x.dtype).eps)
        if compiled:
            k = _kernels()
            evaluations = 2 * n * (2 if full else 1)
            k.diag_into(f, x, steps, f0, args, full, eps, out, err,
                        _threads(parallel, n, evaluations, seconds))
        else:
            _diag_python(f, x, steps, f0, args, full, eps, out, err)
    out = out.reshape(x.shape).astype(x.dtype, copy=False)
    if full:
        return out, err.reshape(x.shape).astype(x.dtype, copy=False)
    return out


# ---------------------------------------------------------------------------
# numhvp


def _checked_grad(grad: Callable, shape: tuple) -> Callable:
    def call(x, args):
        g = _validate.as_array(grad(x.copy(), *args), "grad(x)")
        if g.dtype.kind not in "iuf" or g.dtype.kind == "b":
            raise TypeError(f"grad must return an array of real numbers, got {type(g).__name__} of dtype {g.dtype}")
        if g.shape != shape:
            raise ValueError(f"grad returned an array of shape {g.shape} but x has shape {shape}")
        return g.astype(np.float64)

    return call


_TINY_DIRECTION = 2.0 ** -900  # below this max|v_i|, h / max|v_i| could overflow


def numhvp(
    f: Callable,
    x: Any,
    v: Any,
    *,
    grad: Callable | None = None,
    args: Sequence = (),
    h: Any = None,
) -> np.ndarray:
    r"""Hessian-vector product ``H(x) v`` by central differences of the gradient along v.

    ``(g(x + t v) - g(x - t v)) / (2 t)`` with g = ``grad`` when given (2
    evaluations of grad), else ``fastgrad.numgrad`` of f (4n + 2 evaluations of f).
    Never forms H.

    Parameters
    ----------
    f : callable ``f(x, *args) -> scalar``
        Used only when ``grad`` is None.
    x : array_like, any shape
    v : array_like of x's shape
        The direction.  ``v = 0`` gives zeros without evaluating anything.
    grad : callable ``grad(x, *args) -> array of x's shape``, optional
        The analytic gradient (an exact gradient makes the product accurate to
        ~eps^(2/3); differences of numgrad to ~eps^(5/12), about 3e-7 in float64:
        numgrad's own error, ~eps^(2/3), divided by the step ~eps^(1/4)).
    args : tuple
    h : float, optional
        The length of the displacement's largest component: the points are
        ``x +- t v`` with ``t = h / max|v_i|``.  Default
        ``c max(1, max|x_i|)`` with c = eps^(1/3) (``grad`` given) or eps^(1/4)
        (numgrad).

    Returns
    -------
    ndarray of x's shape; float32 when x and v are float32, else float64.

    Raises
    ------
    ValueError
        v's shape differs from x's; h not finite and > 0 or not a scalar, or
        so small that ``x +- t v == x``; grad returns an array of another shape.
    TypeError
        f or grad returns something other than real numbers.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> f = lambda x: 0.5 * x @ A @ x
    >>> x, v = np.array([1.0, -2.0]), np.array([1.0, 1.0])
    >>> np.round(fastgrad.numhvp(f, x, v), 6)                   # A v
    array([3., 4.])
    >>> np.round(fastgrad.numhvp(f, x, v, grad=lambda x: A @ x), 8)
    array([3., 4.])
    """
    x = _own_copy(x)
    varr = _validate.as_real(v, "v")
    if varr.shape != x.shape:
        raise ValueError(f"v has shape {varr.shape} but x has shape {x.shape}; v must have x's shape")
    args = _as_args(args)
    dtype = _validate.result_dtype(x, varr)
    vf = varr.astype(np.float64).reshape(x.shape)
    if x.size == 0 or not np.any(vf):
        return np.zeros(x.shape, dtype=dtype)
    vmax = float(np.max(np.abs(vf)))
    # H v is linear in v: a v so small that h / max|v_i| would overflow is scaled up by a
    # power of two (exactly) and the product scaled back
    vexp = 0
    if np.isfinite(vmax) and vmax < _TINY_DIRECTION:
        vexp = int(np.frexp(vmax)[1])
        vf = np.ldexp(vf, -vexp)
        vmax = float(np.max(np.abs(vf)))
    if h is None:
        c = float(np.finfo(x.dtype).eps) ** (1 / 3 if grad is not None else 1 / 4)
        xmax = float(np.max(np.abs(x))) if np.isfinite(x).all() else 1.0
        length = c * max(1.0, xmax)
    else:
        _validate.check_step(h, "h")
        if np.ndim(h) != 0:
            raise ValueError(f"h must be a scalar for numhvp (the step along v), got shape {np.shape(h)}")
        length = float(h)
    t = length / vmax if np.isfinite(vmax) else length
    xf = x.astype(np.float64)
    xp = (xf + t * vf).astype(x.dtype)
    xm = (xf - t * vf).astype(x.dtype)
    if np.array_equal(xp, x) and np.array_equal(xm, x):
        raise ValueError(f"h = {length:g} vanishes: x + t v == x in {x.dtype}; use a larger step")
    if grad is not None:
        g = _checked_grad(grad, x.shape)
        gp, gm = g(xp, args), g(xm, args)
    else:
        gp = numgrad(f, xp, args=args).astype(np.float64)
        gm = numgrad(f, xm, args=args).astype(np.float64)
    hv = (gp - gm) / (2.0 * t)
    return (np.ldexp(hv, vexp) if vexp else hv).astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# hesscheck


def _tolerance(value: Any, name: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    tol = float(value)
    if not (np.isfinite(tol) and tol >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return tol


def hesscheck(
    f: Callable,
    hess: Callable,
    x: Any,
    *,
    args: Sequence = (),
    rtol: float | None = None,
    atol: float | None = None,
    h: Any = None,
    raise_exception: bool = True,
) -> GradcheckResult:
    r"""Check an analytic Hessian against :func:`numhess`, entry by entry.

    Entry ``(i, j)`` passes when ``|analytic - numeric| <= atol + rtol |numeric|``
    (numpy's ``allclose`` rule, NaN fails).  A Hessian by differences of f is
    good only to about ``sqrt(eps) |f| / max(1, |x|)^2`` (~1e-8 |f| in
    float64), far less than a gradient, and that error grows with |f|: so the
    default tolerances are looser than :func:`gradcheck`'s and the default
    atol is relative to f's magnitude: float64 rtol 1e-4, atol
    ``1e-6 max(1, |f(x)|)``; float32 rtol 1e-2, atol ``1e-2 max(1, |f(x)|)``.
    An atol you give is used as it is.

    Parameters
    ----------
    f : callable ``f(x, *args) -> scalar`` (Python or ``@njit``)
    hess : callable ``hess(x, *args)``
        Returns the Hessian, of shape ``x.shape + x.shape`` or ``(x.size, x.size)``.
    x : array_like, any shape
    args, h
        As :func:`numhess`.
    rtol, atol : float, optional
        Finite and >= 0; default by x's dtype and |f(x)| (above).
    raise_exception : bool
        Raise :class:`GradientMismatchError` on failure (default) instead of
        returning a result with ``ok=False``.

    Returns
    -------
    GradcheckResult(ok, max_abs_err, max_rel_err, worst_index, analytic, numeric)
        ``analytic`` and ``numeric`` of shape ``x.shape + x.shape``;
        ``worst_index`` the index into them of the worst entry: ``(i, j)`` for
        1-D x, the two indices into x joined for other shapes.

    Raises
    ------
    GradientMismatchError (an AssertionError)
        listing the worst entries, the dtype and the tolerances used.
    ValueError
        hess returns an array of another shape; rtol or atol NaN, infinite or
        negative (``TypeError`` if not a real number); h as :func:`numhess`.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> f = lambda x: x[0] ** 2 * x[1]
    >>> hess = lambda x: np.array([[2 * x[1], 2 * x[0]], [2 * x[0], 0.0]])
    >>> fastgrad.hesscheck(f, hess, [1.0, 2.0]).ok
    True
    >>> wrong = lambda x: np.array([[2 * x[1], x[0]], [x[0], 0.0]])   # d2f/dx0dx1 halved
    >>> r = fastgrad.hesscheck(f, wrong, [1.0, 2.0], raise_exception=False)
    >>> r.ok, r.worst_index
    (False, (0, 1))
    """
    x = _own_copy(x)
    raise_exception = _validate.check_flag(raise_exception, "raise_exception")
    d_rtol, d_atol = HESSCHECK_TOLERANCES[x.dtype]
    rtol = d_rtol if rtol is None else _tolerance(rtol, "rtol")
    atol_given = atol is not None
    atol = _tolerance(atol, "atol") if atol_given else d_atol
    args = _as_args(args)
    hshape = x.shape + x.shape
    H, _, f0 = _numhess(f, x, args, h, True, False)
    numeric = H.reshape(hshape).astype(x.dtype, copy=False)
    if not atol_given and np.isfinite(f0):  # the differences' rounding error grows with |f|
        atol_note = f"atol={atol:g} max(1, |f(x)|) = {atol * max(1.0, abs(f0)):g}"
        atol *= max(1.0, abs(f0))
    else:
        atol_note = f"atol={atol:g}"
    analytic = _validate.as_array(hess(x.copy(), *args), "hess(x)")
    if analytic.dtype.kind not in "iuf" or analytic.dtype.kind == "b":
        raise TypeError(f"hess must return an array of real numbers, got dtype {analytic.dtype}")
    if analytic.shape == (x.size, x.size) and analytic.shape != hshape:
        analytic = analytic.reshape(hshape)
    if analytic.shape != hshape:
        raise ValueError(f"hess returned an array of shape {analytic.shape} but the Hessian of x with shape "
                         f"{x.shape} has shape {hshape} (or ({x.size}, {x.size}))")
    if x.size == 0:
        return GradcheckResult(True, 0.0, 0.0, (), analytic, numeric)
    a = analytic.astype(np.float64)
    num = numeric.astype(np.float64)
    diff = np.abs(a - num)
    tol = atol + rtol * np.abs(num)
    bad = ~(diff <= tol)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(tol > 0, diff / tol, np.where(diff > 0, np.inf, 0.0))
        excess = np.where(np.isnan(excess), np.inf, excess)
        rel = np.where(diff == 0, 0.0, diff / np.abs(num))
    ok = not bool(bad.any())
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), hshape))
    result = GradcheckResult(ok, float(np.max(diff)), float(np.max(rel)), worst, analytic, numeric)
    if not ok and raise_exception:
        order = np.argsort(-excess.reshape(-1), kind="stable")[: min(_SHOW_WORST, int(bad.sum()))]
        lines = [f"{'index':>16}  {'analytic':>14}  {'numeric':>14}  {'abs err':>10}  {'rel err':>10}"]
        for k in order:
            idx = tuple(int(i) for i in np.unravel_index(int(k), hshape))
            lines.append(f"{idx!s:>16}  {a.flat[k]:>14.7g}  {num.flat[k]:>14.7g}  "
                         f"{diff.flat[k]:>10.3g}  {rel.flat[k]:>10.3g}")
        raise GradientMismatchError(
            f"Hessian check failed: {int(bad.sum())} of {a.size} entries differ "
            f"(|analytic - numeric| > atol + rtol |numeric|, {x.dtype} x, rtol={rtol:g}, {atol_note}); "
            f"worst at index {worst}:\n" + "\n".join(lines)
        )
    return result
