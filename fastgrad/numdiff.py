r"""Numerical differentiation: the finite-difference core (docs/derivations.md, "Limits and finite differences").

* :func:`numgrad` -- the gradient of a scalar ``f(x, *args)`` by finite
  differences (forward, backward, central, five-point) or the complex step,
  any shape of x.  An ``@njit`` f runs in a compiled, parallel loop, each thread
  on its own private copy of x; a Python f runs serially or on a thread pool.
* :func:`numjac` -- the Jacobian of an array-valued f, shape ``f(x).shape + x.shape``.

Both are thin wrappers: they validate and pick the steps (``fastgrad._steps``),
then call the cores :func:`_numgrad` / :func:`_numjac`, which take explicit
absolute steps and run the kernels of ``_config.user_function_kernels()``.  The
scipy drop-ins and the gradient checks (``fastgrad.gradient_checks``) call the same
cores, as scipy's ``approx_fprime`` calls ``approx_derivative``.

Robust in the user's process: every evaluation of f gets the right
point (a Python f a fresh copy, an ``@njit`` f a private copy restored after
each call), what f returns is checked (a real number; under the complex step,
real at the real point), f's exceptions propagate at every thread count, a
Ctrl-C stops a ``workers=`` pool within one evaluation, and an ``@njit`` f runs
on the thread pool only when its evaluations, timed on f(x), are worth it
(``_config.USER_PARALLEL_MIN_NS``).

Moved, still importable from here for compatibility: :func:`mse_numgrad`
(``fastgrad.mse``); :func:`approx_fprime`, :func:`check_grad`,
:func:`gradcheck`, :class:`GradcheckResult`, :class:`GradientMismatchError`
(``fastgrad.gradient_checks``).

The central difference is ``dw_j = lim (loss(w_j + h) - loss(w_j - h)) / 2h``; written
in code as ``/ 2*h`` it divides by 2 and *multiplies* by h, giving h^2 times the true
gradient (docs/derivations.md, "Slips in the original notes").  ``fastgrad.gradcheck``
and ``fastgrad.taylor_test`` catch exactly that.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _adaptive, _config, _evaluate, _validate
from ._steps import METHOD_CODES, METHODS, check_method, default_steps
from .mse import mse_numgrad  # noqa: F401  (re-exported for compatibility)

__all__ = [
    "numgrad",
    "numjac",
    "METHODS",
]

# Names that moved to fastgrad.gradient_checks, still importable from here (see __getattr__).
_MOVED_TO_GRADCHECK = frozenset(
    {"approx_fprime", "check_grad", "gradcheck", "GradcheckResult", "GradientMismatchError"}
)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_GRADCHECK:
        return getattr(importlib.import_module(f"{__package__}.gradient_checks"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# Shared helpers


def _is_njit(f: Any) -> bool:
    """f is a Numba dispatcher compiled in nopython mode (``@njit``, ``@jit``).

    An object-mode dispatcher (``jit(forceobj=True)``) runs Python code: it is
    called like any Python callable.  Under ``NUMBA_DISABLE_JIT=1`` decorated
    functions are plain functions, so nothing is a dispatcher.  Imports nothing
    new: no dispatcher can exist before Numba is imported.
    """
    if "numba" not in sys.modules:
        return False
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    if not isinstance(f, CPUDispatcher):
        return False
    options = getattr(f, "targetoptions", {})
    return not options.get("forceobj", False) and options.get("nopython", True) is not False


def _as_args(args: Any) -> tuple:
    return args if isinstance(args, tuple) else (args,)


def _own_copy(x: Any) -> np.ndarray:
    """x validated (real float32/float64) as a fresh C-contiguous array fastgrad owns."""
    return np.array(_validate.as_real(x, "x"), order="C", copy=True)


def _real_value(value: Any, where: str = "f(x + h e_j)") -> float:
    """One result of a scalar f as a float: ``TypeError`` naming f unless it is a real number.

    None, strings, booleans, complex numbers and objects are refused (scipy
    raises ``TypeError`` too); an array result asks for numjac.
    """
    if isinstance(value, float):  # float and np.float64: the common case, nothing to check
        return value
    if value is not None and not isinstance(value, str | bytes) and np.ndim(value) != 0:
        raise ValueError(
            f"f must return a scalar, but {where} returned an array of shape {np.shape(value)}; "
            f"use numjac for array-valued functions"
        )
    return _validate.f_scalar(value, "f")


def _complex_value(value: Any, where: str = "f(x + i h e_j)") -> Any:
    """One result of a scalar f under the complex step: a (complex) number, else ``TypeError``/``ValueError``."""
    if isinstance(value, complex | np.complexfloating):
        return value
    if value is None or isinstance(value, str | bytes | bool | np.bool_):
        raise TypeError(f"f must return a number, got {type(value).__name__} {value!r}")
    arr = np.asarray(value)
    if arr.ndim != 0:
        raise ValueError(
            f"f must return a scalar, but {where} returned an array of shape {arr.shape}; "
            f"use numjac for array-valued functions"
        )
    if arr.dtype.kind not in "iufc":
        raise TypeError(f"f must return a number, got {type(value).__name__} of dtype {arr.dtype}")
    return value


def _array_value(kinds: str) -> Callable:
    """A check of one result of an array-valued f: numbers of dtype kind in ``kinds``, else ``TypeError``."""

    def check(value: Any) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind not in kinds:
            what = "real numbers" if "c" not in kinds else "numbers"
            raise TypeError(f"f must return {what}, got {type(value).__name__} of dtype {arr.dtype}")
        return arr

    return check


class _ScalarCheck:
    """One result of a scalar f, checked by ``fn`` (``_real_value`` or ``_complex_value``); picklable."""

    shape: tuple = ()

    def __init__(self, fn: Callable, kinds: str) -> None:
        self.fn = fn
        self.kinds = kinds

    def __call__(self, value: Any) -> Any:
        return self.fn(value)


def _complex_copy(x: np.ndarray) -> np.ndarray:
    return x.astype(np.complex64 if x.dtype == np.float32 else np.complex128)


def _timed(f: Callable, x: np.ndarray, args: tuple, njit_f: bool,
           vectorized: bool = False, need_value: bool = True) -> tuple[Any, float | None]:
    """``(f(copy of x, *args), seconds per evaluation)``; a vectorized f is called on the stack ``x[None]``.

    For an ``@njit`` f the compiled cost of one evaluation (it decides the
    threads of the compiled loop), for a Python f the wall time of this call
    (it decides whether a ``workers=`` pool pays).  An ``@njit`` f timed before
    on arguments of the same types and shapes (its result type, checked then,
    is the same) is not evaluated again without ``need_value`` (the value is
    None): ``timed_call`` keeps what it measured.
    """
    if njit_f and not vectorized:
        return _config.user_function_kernels().timed_call(f, x, args, need_value)
    value, seconds = _evaluate.timed_python(f, x, args, vectorized)
    if vectorized:
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != 1:
            raise ValueError(
                f"f (vectorized=True) must return an array whose first axis runs over the stacked points, "
                f"but for a stack of 1 point of shape {x.shape} it returned shape {arr.shape}")
        value = arr[0]
    return value, seconds


def _complex_probe(f: Callable, xz: np.ndarray, args: tuple, njit_f: bool,
                   scalar: bool, vectorized: bool = False) -> tuple[Any, float | None]:
    """Evaluate f at the real point as a complex array: ``(value, seconds)`` as :func:`_timed`.

    A clear ``TypeError`` if f rejects complex x or drops the imaginary part
    (a real result), and ``ValueError`` if f is complex-valued at the real
    point: the complex step ``Im f(x + i h e_j) / h`` assumes f is real on real x.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            value, seconds = _timed(f, xz, args, njit_f, vectorized)
    except (TypeError, np.exceptions.ComplexWarning) as exc:
        raise TypeError(
            f"method='complex' needs f to accept complex x (f(x + i h e_j) must be the analytic "
            f"continuation of f), but f raised {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        from numba.core.errors import TypingError

        if isinstance(exc, TypingError):
            raise TypeError(
                "method='complex' needs f to accept complex x, but the @njit f does not compile "
                f"for a complex array: {str(exc).splitlines()[0]}"
            ) from exc
        raise
    value = _complex_value(value, "f(x)") if scalar else _array_value("iufc")(value)
    if not np.iscomplexobj(value):
        raise TypeError(
            f"method='complex' needs f to return complex values for complex x, but f returned "
            f"{type(value).__name__} {np.asarray(value).dtype}: the imaginary part was discarded, the "
            f"complex-step derivative would be 0"
        )
    imag = np.abs(np.asarray(np.imag(value), dtype=np.float64))
    with np.errstate(invalid="ignore"):
        nonzero = imag > 0  # NaN (f undefined there) is not evidence either way
    if nonzero.any():
        raise ValueError(
            "method='complex' needs an f that is real on real x: the complex step takes "
            "Im f(x + i h e_j) / h with a tiny h, so any Im f(x) swamps the derivative, but f is "
            f"complex-valued at the real point x (|Im f(x)| = {imag.flat[int(np.argmax(nonzero))]:.3g}); "
            "differentiate its real and imaginary parts separately, use a real method, or, if f is "
            "real, compute it with exact complex operations (Numba's complex power z**n of a negative "
            "real has a rounding-error imaginary part: write z*z*z)"
        )
    return value, seconds


_EVALUATIONS = {"forward": 1, "backward": 1, "central": 2, "five-point": 4, "complex": 1}


def _kernel_threads(parallel: Any, n: int, evaluations: int, seconds: float | None) -> int:
    """Threads of a compiled loop over n elements, each costing ``evaluations`` evaluations of ``seconds``.

    One thread without ``parallel``, for one element, or when the whole work
    is below ``_config.USER_PARALLEL_MIN_NS`` (waking the thread pool would cost
    more than it saves); else every thread.
    """
    if not parallel or n <= 1:
        return 1
    work_ns = n * evaluations * (1e9 * seconds if seconds is not None else np.inf)
    return _config.threads_for(int(min(work_ns, 2**62)), _config.USER_PARALLEL_MIN_NS)


_python_spent: dict[str, float] = {}  # kind -> estimated seconds of @njit-f calls run from Python so far


def _from_python(kind: str, f: Callable, x: np.ndarray, args: tuple, arrays: tuple, evaluations: int,
                 seconds: float | None, threads: int) -> bool:
    """Run this call over an ``@njit`` f through f's dispatcher from Python (serially), not compiled?

    Yes while the compiled route would first compile its driver (it is in no
    cache yet: about 1.5 s, once per machine, more for the parallel one), the
    call would cost less than ``_config.USER_PYTHON_CALL_S`` from Python, and
    such calls have cost less than ``_config.USER_PYTHON_TOTAL_S`` in this
    process (then compiling pays).  Both routes do the same arithmetic: the
    same bits.  ``threads`` is the compiled route's thread count.
    """
    if seconds is None:
        return False
    cost = _config.USER_PYTHON_OVERHEAD_S + evaluations * (seconds + _config.USER_PYTHON_EVAL_S)
    if cost > _config.USER_PYTHON_CALL_S or _python_spent.get(kind, 0.0) + cost > _config.USER_PYTHON_TOTAL_S:
        return False
    if _config.user_function_kernels().driver_ready(kind, f, x, args, *arrays, parallel=threads > 1):
        return False
    _python_spent[kind] = _python_spent.get(kind, 0.0) + cost
    return True


def stencil(x: np.ndarray, steps: np.ndarray, method: str) -> tuple[list[np.ndarray], np.ndarray]:
    r"""The perturbed values of every element at the method's points (in x's dtype) and the denominators.

    With ``v0 = x_j + h_j`` (``x_j - h_j`` backward) stored in x's dtype and
    ``hh = v0 - x_j`` the representable step, the points are ``v0`` (forward,
    backward, complex: ``x_j + i h_j``), ``v0, x_j - hh`` (central) and
    ``v0, x_j - hh, x_j + 2 hh, x_j - 2 hh`` (five-point); the denominators
    ``hh``, ``x_j - v0``, ``v0 - v1``, ``12 hh`` and ``Im v0``: the arithmetic of
    the compiled kernels, element by element.
    """
    xf = x.reshape(-1)
    if method == "complex":
        v0 = (xf + 1j * steps).astype(x.dtype)
        return [v0], v0.imag.astype(np.float64)
    x64 = xf.astype(np.float64)
    v0 = (x64 - steps if method == "backward" else x64 + steps).astype(x.dtype)
    a = v0.astype(np.float64)
    hh = a - x64
    if method == "forward":
        return [v0], hh
    if method == "backward":
        return [v0], x64 - a
    v1 = (x64 - hh).astype(x.dtype)
    if method == "central":
        return [v0, v1], a - v1.astype(np.float64)
    v2 = (x64 + 2.0 * hh).astype(x.dtype)
    v3 = (x64 - 2.0 * hh).astype(x.dtype)
    return [v0, v1, v2, v3], 12.0 * hh


def numerators(F: list[np.ndarray], f0: Any, method: str, bound: bool = False) -> tuple[np.ndarray, Any]:
    r"""The numerators of the difference quotients from the results ``F[k]`` at the stencil's points.

    forward ``F_0 - f_0``, backward ``f_0 - F_0``, central ``F_0 - F_1``,
    five-point ``(F_3 - F_2) + 8 (F_0 - F_1)``, complex ``Im F_0``; with
    ``bound`` also the sums of absolute values of the same terms (the rounding
    bound of ``full_output``), else None.
    """
    if method == "complex":
        # NaN where f returned NaN: NaN + 0j has a finite imaginary part
        num = np.where(np.isnan(F[0].real), np.nan, F[0].imag.astype(np.float64))
        return num, (np.abs(num) if bound else None)
    if method == "forward":
        return F[0] - f0, ((np.abs(F[0]) + np.abs(f0)) if bound else None)
    if method == "backward":
        return f0 - F[0], ((np.abs(f0) + np.abs(F[0])) if bound else None)
    if method == "central":
        return F[0] - F[1], ((np.abs(F[0]) + np.abs(F[1])) if bound else None)
    num = (F[3] - F[2]) + 8.0 * (F[0] - F[1])
    return num, (((np.abs(F[3]) + np.abs(F[2])) + 8.0 * (np.abs(F[0]) + np.abs(F[1]))) if bound else None)


def dense_points(V: list[np.ndarray], j0: int, j1: int) -> _evaluate.Points:
    """The points of columns ``j0 <= j < j1``: point ``k (j1 - j0) + (j - j0)`` sets element j to ``V[k][j]``."""
    B = j1 - j0
    P = len(V) * B
    idx = np.tile(np.arange(j0, j1), len(V))
    vals = np.concatenate([v[j0:j1] for v in V])
    return _evaluate.Points(np.arange(P + 1), idx, vals)


def _python_quotients(f: Callable, x: np.ndarray, args: tuple, steps: np.ndarray, method: str, f0: Any,
                      m: int, check: Callable, run: dict, bound: bool = False) -> tuple[np.ndarray, Any]:
    """``(Q, A)``: the quotients ``Q[j] ~ d ravel(f) / dx_j`` (x.size, m) of a Python f, whole rows at a time.

    f is evaluated by :func:`fastgrad._evaluate.evaluate` (``run``: its keyword
    arguments) at blocks of columns small enough that the block's results
    stay within a memory budget (``_evaluate.block_columns``); ``A`` are the
    rounding bounds over the denominators when ``bound`` (else None).  The
    quotients are divided straight into Q (no temporary the size of a block).
    """
    n = x.size
    V, den = stencil(x, steps, method)
    dtype = np.complex128 if method == "complex" else np.float64
    Q = np.empty((n, m))
    A = np.empty((n, m)) if bound else None
    block = _evaluate.block_columns(len(V), m, **run)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        B = j1 - j0
        F = _evaluate.evaluate(f, x, args, dense_points(V, j0, j1), check, m, dtype, **run)
        num, absum = numerators([F[k * B:(k + 1) * B] for k in range(len(V))], f0, method, bound)
        np.divide(num, den[j0:j1, None], out=Q[j0:j1])
        if bound:
            np.divide(absum, den[j0:j1, None], out=A[j0:j1])
    return Q, A


def _richardson(d_h: np.ndarray, d: np.ndarray, a_h: np.ndarray, method: str, eps: float) -> np.ndarray:
    """``|D(h) - D(h/2)| 2^p / (2^p - 1) + eps a_h`` (p the method's order), as the compiled kernels."""
    p = float(_config.METHOD_ORDER[METHOD_CODES[method]])
    rich = 2.0**p / (2.0**p - 1.0)
    return np.abs(d_h - d) * rich + eps * a_h


# ---------------------------------------------------------------------------
# numgrad


def numgrad(
    f: Callable,
    x: Any,
    *,
    args: Sequence = (),
    h: Any = None,
    method: str = "central",
    parallel: bool = True,
    workers: Any = None,
    full_output: bool = False,
    check_finite: bool = False,
    vectorized: bool = False,
    chunk_size: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Numerical gradient of a scalar function: ``g_j ~ d f(x, *args) / d x_j`` for every element of x.

    The derivative ``dw_j = lim (loss(w_j + h) - loss(w_j - h)) / 2h`` by the
    stencils (docs/derivations.md, "Limits and finite differences")

    ====================  =====================================================  =====
    method                 quotient                                              order
    ====================  =====================================================  =====
    ``'forward'``          ``(f(x + h e_j) - f(x)) / h``                          1
    ``'backward'``         ``(f(x) - f(x - h e_j)) / h``                          1
    ``'central'``          ``(f(x + h e_j) - f(x - h e_j)) / 2h``                 2
    ``'five-point'``       ``(f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h``    4
    ``'complex'``          ``Im f(x + i h e_j) / h``  (f must accept complex x)   2
    ``'adaptive'``         Richardson extrapolation of ``'central'`` at 8 steps   up to 16
    ====================  =====================================================  =====

    ``'adaptive'`` is accuracy on demand: the central difference at the steps
    ``h_k = h 2^-k``, k = 0..7 (default ``h = max(1, |x_j|) / 32``), combined
    by the Richardson tableau, which cancels the ``h^2, h^4, ...`` terms of its
    error; for every element the tableau entry whose estimated error is least
    is kept, the tableau growing one step at a time until a whole new row
    is worse than twice the best so far (smaller steps only add rounding).
    Typically 1e-13 relative error in float64 where ``'central'`` gives
    1e-10, at up to 8 times its cost: 16 evaluations of f per element (an
    ``@njit`` f's gradient evaluates only the steps its tableau used, about 5
    of the 8 on smooth functions; other f are evaluated at every step).

    Parameters
    ----------
    f : callable ``f(x, *args) -> scalar``
        A Python callable or a Numba ``@njit`` dispatcher (an object-mode
        ``jit(forceobj=True)`` one is called as Python).  Every evaluation gets
        the right point, x's shape and dtype, C-contiguous: a Python f a fresh
        copy each time, an ``@njit`` f a private copy restored after every call,
        so f may even write into its argument.  It must return a real number
        (a NumPy or Python scalar).
    x : array_like, any shape
        The point; float32 and float64 are kept, other real types become
        float64.  Never written.
    args : tuple
        Extra positional arguments of f.
    h : float or array_like of x's shape, optional
        Absolute step(s), finite and > 0.  Default ``c * max(1, |x_i|)`` with
        c = eps^(1/2) (forward/backward), eps^(1/3) (central), eps^(1/5)
        (five-point), 1e-20 (complex), eps the machine epsilon of x's dtype.
        The step actually used is the representable one, ``(x_i + h_i) - x_i``.
    method : {'central', 'forward', 'backward', 'five-point', 'complex', 'adaptive'}
        With ``'adaptive'``, h is the largest of the 8 steps.
    parallel : bool
        For an ``@njit`` f: run the compiled loop over the elements in parallel
        (``fastgrad.set_num_threads``), each thread on its own copy of x, when
        the work pays for the threads (all evaluations together, timed on
        f(x), at least ``fastgrad._config.USER_PARALLEL_MIN_NS``); else
        serially.  Results are bitwise identical for every thread count.
    workers : int, Executor or map-like callable, optional
        For a Python f, how to spread the evaluations (default: serially, in
        the calling thread): an int n runs them on a pool of n threads, which
        helps only when f releases the GIL (large numpy operations, compiled
        code), and only when the evaluations together take longer than
        starting the pool (``fastgrad._config.USER_WORKERS_MIN_S``, timed on
        f(x)) -- a small problem runs serially; a ``concurrent.futures``
        Executor (threads or processes; for processes f must be picklable) or
        any map-like callable ``workers(func, iterable)`` (scipy's convention,
        e.g. ``multiprocessing.Pool.map``) gets contiguous chunks of points,
        several evaluations per task.  The result is the same bits as
        serially.  Ignored for an ``@njit`` f (its own compiled loop).  Ctrl-C
        or an exception in f stops the thread workers before their next
        evaluation and cancels the queued chunks.
    full_output : bool
        Also return an element-wise error estimate.
    check_finite : bool
        Raise ``ValueError`` if x contains NaN or Inf (default: they propagate
        into the affected entries, as numpy would).
    vectorized : bool
        f takes a stack of points, an array of shape ``(B,) + x.shape``, and
        returns their values, shape ``(B,)``: f(x) is then called as
        ``f(x[None])``, and the perturbed points are evaluated a whole stack
        per call (by far the fastest way to evaluate a numpy f whose cost is
        per call rather than per element).  The points are the same as one at
        a time, so the result is too (as far as f gives each row of a stack
        the value it gives that point alone).
    chunk_size : int, optional
        With ``vectorized=True``: at most this many points per call of f.
        Default: as many as fit in 64 MiB of stacked points
        (``fastgrad._evaluate.STACK_BYTES``).

    Returns
    -------
    grad : ndarray of x's shape (float32 for float32 x, else float64)
    err : ndarray of x's shape, only with ``full_output=True``
        ``|D(h) - D(h/2)| 2^p / (2^p - 1)`` (Richardson, p the method's order)
        plus the rounding bound ``eps sum_k |c_k f_k| / h``; costs a second
        stencil at h/2.  With ``'adaptive'`` (no extra cost): how far the
        chosen tableau entry moved from the two estimates it was made of, plus
        its rounding bound -- an estimate of the error that holds for most
        elements, not a guarantee (NaN where no step gave a finite estimate).

    Raises
    ------
    ValueError
        unknown method; h not finite or <= 0, of the wrong shape, or so small
        that ``x + h == x``; f returns a non-scalar; ``method='complex'`` and f
        is complex-valued at the real point x; NaN/Inf in x with
        ``check_finite=True``.
    TypeError
        f returns something other than a real number (None, a string, a bool,
        a complex number, an object); ``method='complex'`` and f rejects
        complex x or returns a real value.

    Notes
    -----
    An exception raised by f propagates, from a Python or an ``@njit`` f, at
    every thread count (x is left unchanged: f only ever sees copies).  A NaN
    returned by f makes only the affected entries NaN.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> g = fastgrad.numgrad(lambda X: np.sum(X ** 3), x)
    >>> np.allclose(g, 3 * x ** 2)
    True
    >>> g, err = fastgrad.numgrad(np.sin, 0.5, method='five-point', full_output=True)
    >>> bool(abs(g - np.cos(0.5)) < 1e-10), bool(err < 1e-8)
    (True, True)
    """
    method = check_method(method, adaptive=True)
    x = _own_copy(x)
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(x=x)
    args = _as_args(args)
    workers = _validate.check_workers(workers)
    vectorized = _validate.check_flag(vectorized, "vectorized")
    parallel = _validate.check_flag(parallel, "parallel")
    if chunk_size is not None:
        chunk_size = _validate.check_positive_int(chunk_size, "chunk_size")
    full = _validate.check_flag(full_output, "full_output")
    if method == "adaptive":
        return _adaptive.numgrad(f, x, args, h, full, parallel=parallel, workers=workers,
                                 vectorized=vectorized, chunk_size=chunk_size)
    steps = default_steps(x, h, method, full)
    grad, err = _numgrad(f, x, args, steps, method, parallel, workers, full,
                         vectorized=vectorized, chunk_size=chunk_size)
    grad = grad.reshape(x.shape).astype(x.dtype, copy=False)
    if full:
        return grad, err.reshape(x.shape).astype(x.dtype, copy=False)
    return grad


def _numgrad(
    f: Callable,
    x: np.ndarray,
    args: tuple,
    steps: np.ndarray,
    method: str,
    parallel: Any = True,
    workers: int | None = None,
    full: bool = False,
    f0: Any = None,
    seconds: float | None = None,
    vectorized: bool = False,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The core of :func:`numgrad` (and of ``approx_fprime`` for a scalar f): float64 (grad, err) of x.size.

    ``x`` an owned C-contiguous float32/float64 array, ``steps`` its validated
    absolute float64 steps (x.size), ``method`` a checked name, ``workers`` None,
    an int >= 1, an Executor or a map-like callable; ``err`` is empty unless
    ``full``.  ``f0`` is the known scalar ``f(x, *args)`` and ``seconds`` the
    cost of one evaluation (``_timed``); None evaluates f(x) (validated, and
    timed).  A Python (or ``vectorized``) f is evaluated by
    :func:`fastgrad._evaluate.evaluate` and differenced a whole block of
    elements at a time (:func:`_python_quotients`).
    """
    n = x.size
    out = np.empty(n)
    err = np.empty(n if full else 0)
    eps = float(np.finfo(x.dtype).eps)
    if n == 0:
        return out, err
    njit_f = _is_njit(f) and x.ndim > 0 and not vectorized
    k = _config.user_function_kernels() if njit_f else None  # (Numba's, for a compiled f only)
    evaluations = _EVALUATIONS[method] * (2 if full else 1)
    if method == "complex":
        xp = _complex_copy(x)
        _, seconds = _complex_probe(f, xp, args, njit_f, scalar=True, vectorized=vectorized)
        if njit_f:
            k.cgrad_into(f, xp, steps, args, full, eps, out, err,
                         _kernel_threads(parallel, n, evaluations, seconds))
            return out, err
        check = _ScalarCheck(_complex_value, "iufc")
    else:
        if f0 is None or (njit_f and seconds is None):
            needed = f0 is None and method in ("forward", "backward")  # the other stencils do not use f(x)
            value, seconds = _timed(f, x, args, njit_f, vectorized, need_value=needed or not njit_f)
            if value is not None:
                value = _real_value(value, "f(x)")
                f0 = value if f0 is None else f0
        f0 = float(np.float64(f0)) if f0 is not None else float("nan")  # nan: not used by the stencil
        threads = _kernel_threads(parallel, n, evaluations, seconds) if njit_f else 1
        if njit_f and not _from_python("grad", f, x, args, (steps, out, err), n * evaluations, seconds, threads):
            k.grad_into(f, x, steps, METHOD_CODES[method], f0, args, full, eps, out, err, threads)
            return out, err
        xp = x
        check = _ScalarCheck(_real_value, "iuf")
    run = dict(workers=workers, vectorized=vectorized, chunk_size=chunk_size, seconds=seconds)
    Q, A = _python_quotients(f, xp, args, steps, method, f0, 1, check, run, bound=full)
    out = Q[:, 0]
    if full:
        Q2, _ = _python_quotients(f, xp, args, 0.5 * steps, method, f0, 1, check, run)
        err = _richardson(out, Q2[:, 0], A[:, 0], method, eps)
    return out, err


# ---------------------------------------------------------------------------
# numjac


def _flatten_jacobian(J: np.ndarray, fshape: tuple, xshape: tuple, order: str) -> np.ndarray:
    m, n = int(np.prod(fshape)), int(np.prod(xshape))
    if order == "C":
        return J.reshape(m, n)
    nf = len(fshape)
    axes = tuple(reversed(range(nf))) + tuple(nf + a for a in reversed(range(len(xshape))))
    return np.ascontiguousarray(J.transpose(axes)).reshape(m, n)


def numjac(
    f: Callable,
    x: Any,
    *,
    args: Sequence = (),
    h: Any = None,
    method: str = "central",
    flatten: bool = False,
    order: str = "F",
    parallel: bool = True,
    workers: Any = None,
    check_finite: bool = False,
    sparsity: Any = None,
    vectorized: bool = False,
    chunk_size: int | None = None,
) -> Any:
    r"""Numerical Jacobian of an array-valued function: ``J[a..., b...] ~ d f(x)[a...] / d x[b...]``.

    The rank-3/rank-4 derivative tensors of matrix functions (e.g.
    ``d(W x)/dW`` has shape ``(n,) + (n, m)``), by the stencils of
    :func:`numgrad` applied to every output at once.

    Parameters
    ----------
    f : callable ``f(x, *args) -> array``
        Python callable or ``@njit`` dispatcher; every evaluation gets the right
        point (as :func:`numgrad`).  Its result must be an array of real numbers
        (complex under ``method='complex'``) of the same shape at every point.
        A scalar result gives the gradient (shape ``x.shape``).
    x : array_like, any shape
    args, h, method, parallel, workers, check_finite, chunk_size
        As :func:`numgrad` (``'adaptive'`` included: 16 evaluations of f per
        element of x, each output extrapolated separately).
    flatten : bool
        Return the matrix of shape ``(f(x).size, x.size)`` instead.
    order : {'F', 'C'}
        How both f(x) and x are flattened with ``flatten=True`` or
        ``sparsity=``: 'F' (default) the textbook column-stacking vec, as
        every fastgrad function that flattens (so ``numjac(lambda X: A @ X @ B,
        X, flatten=True)`` equals ``jacobian_AXB(A, B)``); 'C' numpy's
        row-major ravel.
    sparsity : array_like, scipy.sparse or (structure, groups), optional
        The structure of the Jacobian, shape ``(f(x).size, x.size)`` flattened
        in ``order``: its nonzero entries (stored nonzero entries of a sparse
        structure) are the ones that may be nonzero; every other entry is
        taken to be 0 without being computed.  Columns that share no row
        (structurally orthogonal) are perturbed together: f is evaluated once
        per group of columns and stencil point (central differences: twice
        per group) instead of per column, and the differences are written
        straight into the result's CSR data.  ``groups`` (one integer per
        column, e.g. from :func:`group_columns`) fixes the groups; by default
        they come from :func:`group_columns` in natural order or in scipy's
        default order, whichever gives fewer.  Returns a
        ``scipy.sparse.csr_array``, as scipy's ``approx_derivative``.  With
        ``method='adaptive'`` the sparse central Jacobian at each of the 8
        steps (16 evaluations per group) is extrapolated entry by entry: the
        dense adaptive Jacobian's values at the structure's entries.
    vectorized : bool
        f takes a stack of points, shape ``(B,) + x.shape``, and returns
        ``(B,) + f(x).shape``; see :func:`numgrad`.

    Returns
    -------
    ndarray of shape ``f(x).shape + x.shape`` (or ``(f(x).size, x.size)``),
    float32 for float32 x, else float64; with ``sparsity``, a
    ``scipy.sparse.csr_array`` of shape ``(f(x).size, x.size)``.

    Raises
    ------
    ValueError
        As :func:`numgrad`; a ``sparsity`` structure of the wrong shape or
        not boolean/real, ``groups`` of the wrong length, negative or not
        integers, or groups whose columns share a row (not structurally
        orthogonal); a vectorized f returning the wrong shape.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> W = np.arange(6.0).reshape(2, 3); v = np.array([1.0, 2.0, 3.0])
    >>> J = fastgrad.numjac(lambda W: W @ v, W)   # d(W v)/dW, shape (2, 2, 3)
    >>> J.shape, np.allclose(J[1, 1], v), np.allclose(J[0, 1], 0)
    ((2, 2, 3), True, True)
    >>> np.allclose(fastgrad.numjac(lambda W: W @ v, W, flatten=True),
    ...             np.kron(v, np.eye(2)))   # d(W v)/dvec(W) = v^T (x) I_n
    True

    A banded Jacobian from 2 groups of columns (4 evaluations of f instead of 2000):

    >>> f = lambda x: x ** 2 - np.roll(x, 1) * (np.arange(x.size) > 0)
    >>> S = np.eye(1000) + np.eye(1000, k=-1)
    >>> J = fastgrad.numjac(f, np.ones(1000), sparsity=S)
    >>> type(J).__name__, J.shape, J.nnz, np.allclose(J.diagonal(), 2.0)
    ('csr_array', (1000, 1000), 1999, True)
    """
    method = check_method(method, adaptive=True)
    _validate.check_choice(order, "order", ("C", "F"))
    flatten = _validate.check_flag(flatten, "flatten")
    x = _own_copy(x)
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(x=x)
    args = _as_args(args)
    workers = _validate.check_workers(workers)
    vectorized = _validate.check_flag(vectorized, "vectorized")
    parallel = _validate.check_flag(parallel, "parallel")
    if chunk_size is not None:
        chunk_size = _validate.check_positive_int(chunk_size, "chunk_size")
    if method == "adaptive":
        return _adaptive.numjac(f, x, args, h, flatten, order, sparsity, parallel=parallel, workers=workers,
                                vectorized=vectorized, chunk_size=chunk_size)
    steps = default_steps(x, h, method, False)
    njit_f = _is_njit(f) and x.ndim > 0 and not vectorized
    if method == "complex":
        value, seconds = _complex_probe(f, _complex_copy(x), args, njit_f, scalar=False, vectorized=vectorized)
    else:
        value, seconds = _timed(f, x, args, njit_f, vectorized)
    run = dict(vectorized=vectorized, chunk_size=chunk_size)
    if np.ndim(value) == 0:  # a scalar f: its gradient
        fshape: tuple = ()
        f0 = None if method == "complex" else _real_value(value, "f(x)")
    else:
        kinds = "iufc" if method == "complex" else "iuf"
        probe = _array_value(kinds)(value)
        fshape = probe.shape
        f0 = None if method == "complex" else np.ascontiguousarray(probe, dtype=np.float64).reshape(-1)
    if sparsity is not None:
        from . import sparsity as _sparsity

        return _sparsity.sparse_numjac(f, x, args, steps, method, fshape, f0, sparsity, order,
                                       parallel=parallel, workers=workers, seconds=seconds, **run)
    if not fshape:
        grad, _ = _numgrad(f, x, args, steps, method, parallel, workers, False, f0, seconds, **run)
        J = grad.reshape(x.shape)
    else:
        checked = _evaluate.ArrayCheck(kinds, fshape)
        J = _numjac(f, x, args, steps, method, probe.size, f0, parallel, workers, checked, seconds, **run)
        J = J.reshape(fshape + x.shape)
    J = J.astype(x.dtype, copy=False)
    if flatten:
        return _flatten_jacobian(J, fshape, x.shape, order)
    return J


def _numjac(
    f: Callable,
    x: np.ndarray,
    args: tuple,
    steps: np.ndarray,
    method: str,
    m: int,
    f0: np.ndarray | None,
    parallel: Any = True,
    workers: int | None = None,
    check: Callable | None = None,
    seconds: float | None = None,
    vectorized: bool = False,
    chunk_size: int | None = None,
) -> np.ndarray:
    """The core of :func:`numjac` (and of ``approx_fprime``): the float64 Jacobian (m, x.size) of a vector f.

    ``x``, ``steps``, ``method``, ``workers`` as :func:`_numgrad`; f returns m
    values; ``f0`` is ``ravel f(x)`` as float64 (forward/backward, unused by
    the complex step).  ``check`` validates each result of a Python f (shape,
    dtype; default: real numbers, m of them); ``seconds`` is the cost of one
    evaluation (None: parallel whenever allowed).  The result may be a
    transposed view (a Python f's quotients are formed column by column as
    rows of an (x.size, m) array, as scipy does).
    """
    n = x.size
    if n == 0:
        return np.empty((m, n))
    njit_f = _is_njit(f) and x.ndim > 0 and not vectorized
    k = _config.user_function_kernels() if njit_f else None  # (Numba's, for a compiled f only)
    J = np.empty((m, n)) if njit_f else None
    threads = _kernel_threads(parallel, n, _EVALUATIONS[method], seconds) if njit_f else 1
    if njit_f and method != "complex" and f0 is not None and _from_python(
            "jac", f, x, args, (steps, f0, J), n * _EVALUATIONS[method], seconds, threads):
        njit_f = False
    if njit_f:
        if method == "complex":
            k.cjac_into(f, _complex_copy(x), steps, args, J, threads)
        else:
            k.jac_into(f, x, steps, METHOD_CODES[method], f0, args, J, threads)
        return J
    xp = _complex_copy(x) if method == "complex" else x
    if check is None:
        check = _evaluate.ArrayCheck("iufc" if method == "complex" else "iuf", (m,))
    run = dict(workers=workers, vectorized=vectorized, chunk_size=chunk_size, seconds=seconds)
    Q, _ = _python_quotients(f, xp, args, steps, method, f0, m, check, run)
    return Q.T
