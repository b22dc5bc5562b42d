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

import concurrent.futures
import importlib
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _config, _validate
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
    functions are plain functions, so nothing is a dispatcher.
    """
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


def _py(kernel: Any) -> Callable:
    """The Python function of a compiled kernel (the kernel itself under ``NUMBA_DISABLE_JIT=1``)."""
    return getattr(kernel, "py_func", kernel)


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


class _Stopped(Exception):
    """A worker was told to stop: Ctrl-C, or f raised in another worker."""


def _python_f(f: Callable, check: Callable, stop: threading.Event | None) -> Callable:
    """f as the kernels' Python path calls it: a fresh copy of the point each time, the result checked.

    A fresh copy per evaluation means an f that writes into its argument (or
    keeps it) cannot change the other points.  With ``stop`` (a thread pool),
    a set event ends the worker before its next evaluation.
    """
    if stop is None:
        def call(xc, *args):
            return check(f(xc.copy(), *args))
    else:
        def call(xc, *args):
            if stop.is_set():
                raise _Stopped
            return check(f(xc.copy(), *args))
    return call


def _complex_copy(x: np.ndarray) -> np.ndarray:
    return x.astype(np.complex64 if x.dtype == np.float32 else np.complex128)


def _timed(f: Callable, x: np.ndarray, args: tuple, njit_f: bool) -> tuple[Any, float | None]:
    """``(f(copy of x, *args), seconds per compiled evaluation)``; seconds None for a Python f."""
    if njit_f:
        return _config.user_function_kernels().timed_call(f, x, args)
    return f(x.copy(), *args), None


def _complex_probe(f: Callable, xz: np.ndarray, args: tuple, njit_f: bool,
                   scalar: bool) -> tuple[Any, float | None]:
    """Evaluate f at the real point as a complex array: ``(value, seconds)`` as :func:`_timed`.

    A clear ``TypeError`` if f rejects complex x or drops the imaginary part
    (a real result), and ``ValueError`` if f is complex-valued at the real
    point: the complex step ``Im f(x + i h e_j) / h`` assumes f is real on real x.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            value, seconds = _timed(f, xz, args, njit_f)
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


def _run_python(chunk: Callable, n: int, workers: int | None, stop: threading.Event | None) -> None:
    """Run ``chunk(lo, hi)`` (a Python f's loop) over range(n): serially, or on ``workers`` threads.

    On a pool, the first exception (f's own, or Ctrl-C in the calling thread)
    sets ``stop``: every worker ends before its next evaluation and queued
    chunks are cancelled, so a Ctrl-C takes effect after at most one evaluation
    of f per worker, and the call returns without waiting for them.
    """
    if workers is None or workers == 1 or n == 1 or stop is None:
        chunk(0, n)
        return
    nc = _config.user_function_kernels().chunk_count(n, workers)
    bounds = [(c * n // nc, (c + 1) * n // nc) for c in range(nc)]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, nc))
    futures: list = []
    try:
        futures = [pool.submit(chunk, lo, hi) for lo, hi in bounds]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for fut in futures:  # the first chunk (in order) that failed
            if fut.done() and not fut.cancelled() and fut.exception() is not None:
                raise fut.exception()
    except BaseException:
        stop.set()
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


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
    workers: int | None = None,
    full_output: bool = False,
    check_finite: bool = False,
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
    ====================  =====================================================  =====

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
    method : {'central', 'forward', 'backward', 'five-point', 'complex'}
    parallel : bool
        For an ``@njit`` f: run the compiled loop over the elements in parallel
        (``fastgrad.set_num_threads``), each thread on its own copy of x, when
        the work pays for the threads (all evaluations together, timed on
        f(x), at least ``fastgrad._config.USER_PARALLEL_MIN_NS``); else
        serially.  Results are bitwise identical for every thread count.
    workers : int, optional
        For a Python f: evaluate on a pool of this many threads.  Default:
        serial.  Ignored for an ``@njit`` f.  Ctrl-C (or an exception in f)
        stops every worker before its next evaluation.
    full_output : bool
        Also return an element-wise error estimate.
    check_finite : bool
        Raise ``ValueError`` if x contains NaN or Inf (default: they propagate
        into the affected entries, as numpy would).

    Returns
    -------
    grad : ndarray of x's shape (float32 for float32 x, else float64)
    err : ndarray of x's shape, only with ``full_output=True``
        ``|D(h) - D(h/2)| 2^p / (2^p - 1)`` (Richardson, p the method's order)
        plus the rounding bound ``eps sum_k |c_k f_k| / h``; costs a second
        stencil at h/2.

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
    method = check_method(method)
    x = _own_copy(x)
    if check_finite:
        _validate.check_finite(x=x)
    args = _as_args(args)
    if workers is not None:
        workers = _validate.check_positive_int(workers, "workers")
    full = bool(full_output)
    steps = default_steps(x, h, method, full)
    grad, err = _numgrad(f, x, args, steps, method, parallel, workers, full)
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
) -> tuple[np.ndarray, np.ndarray]:
    """The core of :func:`numgrad` (and of ``approx_fprime`` for a scalar f): float64 (grad, err) of x.size.

    ``x`` an owned C-contiguous float32/float64 array, ``steps`` its validated
    absolute float64 steps (x.size), ``method`` a checked name, ``workers`` None
    or >= 1; ``err`` is empty unless ``full``.  ``f0`` is the known scalar
    ``f(x, *args)`` and ``seconds`` the compiled cost of one evaluation of an
    ``@njit`` f (``_timed``); None evaluates f(x) (validated, and timed).
    """
    k = _config.user_function_kernels()
    n = x.size
    out = np.empty(n)
    err = np.empty(n if full else 0)
    eps = float(np.finfo(x.dtype).eps)
    if n == 0:
        return out, err
    njit_f = _is_njit(f) and x.ndim > 0
    evaluations = _EVALUATIONS[method] * (2 if full else 1)
    stop = threading.Event() if workers is not None and workers > 1 and not njit_f else None
    if method == "complex":
        xz = _complex_copy(x)
        _, seconds = _complex_probe(f, xz, args, njit_f, scalar=True)
        if njit_f:
            k.cgrad_into(f, xz, steps, args, full, eps, out, err,
                         _kernel_threads(parallel, n, evaluations, seconds))
            return out, err
        py = _py(k.cgrad_chunk)
        call = _python_f(f, _complex_value, stop)

        def chunk(lo, hi):
            py(call, xz, steps, args, lo, hi, full, eps, out, err)
    else:
        code = METHOD_CODES[method]
        if f0 is None or (njit_f and seconds is None):
            value, seconds = _timed(f, x, args, njit_f)
            value = _real_value(value, "f(x)")
            f0 = value if f0 is None else f0
        f0 = float(np.float64(f0))
        if njit_f:
            k.grad_into(f, x, steps, code, f0, args, full, eps, out, err,
                        _kernel_threads(parallel, n, evaluations, seconds))
            return out, err
        py = _py(k.grad_chunk)
        call = _python_f(f, _real_value, stop)

        def chunk(lo, hi):
            py(call, x, steps, code, np.float64(f0), args, lo, hi, full, eps, out, err)
    _run_python(chunk, n, workers, stop)
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
    workers: int | None = None,
    check_finite: bool = False,
) -> np.ndarray:
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
    args, h, method, parallel, workers, check_finite
        As :func:`numgrad`.
    flatten : bool
        Return the matrix of shape ``(f(x).size, x.size)`` instead.
    order : {'F', 'C'}
        How both f(x) and x are flattened with ``flatten=True``: 'F' (default)
        the textbook column-stacking vec, as every fastgrad function that
        flattens (so ``numjac(lambda X: A @ X @ B, X, flatten=True)`` equals
        ``jacobian_AXB(A, B)``); 'C' numpy's row-major ravel.

    Returns
    -------
    ndarray of shape ``f(x).shape + x.shape`` (or ``(f(x).size, x.size)``),
    float32 for float32 x, else float64.

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
    """
    method = check_method(method)
    _validate.check_choice(order, "order", ("C", "F"))
    x = _own_copy(x)
    if check_finite:
        _validate.check_finite(x=x)
    args = _as_args(args)
    if workers is not None:
        workers = _validate.check_positive_int(workers, "workers")
    steps = default_steps(x, h, method, False)
    njit_f = _is_njit(f) and x.ndim > 0
    if method == "complex":
        value, seconds = _complex_probe(f, _complex_copy(x), args, njit_f, scalar=False)
    else:
        value, seconds = _timed(f, x, args, njit_f)
    if np.ndim(value) == 0:  # a scalar f: its gradient
        f0 = None if method == "complex" else _real_value(value, "f(x)")
        grad, _ = _numgrad(f, x, args, steps, method, parallel, workers, False, f0, seconds)
        J = grad.reshape(x.shape)
        fshape: tuple = ()
    else:
        kinds = "iufc" if method == "complex" else "iuf"
        probe = _array_value(kinds)(value)
        fshape = probe.shape

        def checked(value):
            value = np.asarray(value)
            if value.dtype.kind not in kinds:
                _array_value(kinds)(value)
            if value.shape != fshape:
                raise ValueError(f"f returned shape {value.shape} at x + h e_j but {fshape} at x")
            return value

        f0 = None if method == "complex" else np.ascontiguousarray(probe, dtype=np.float64).reshape(-1)
        J = _numjac(f, x, args, steps, method, probe.size, f0, parallel, workers, checked, seconds)
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
) -> np.ndarray:
    """The core of :func:`numjac` (and of ``approx_fprime``): the float64 Jacobian (m, x.size) of a vector f.

    ``x``, ``steps``, ``method``, ``workers`` as :func:`_numgrad`; f returns m
    values; ``f0`` is ``ravel f(x)`` as float64 (forward/backward, unused by
    the complex step).  ``check`` validates each result of a Python f (shape,
    dtype; default none); ``seconds`` is the compiled cost of one evaluation of
    an ``@njit`` f (None: parallel whenever allowed).
    """
    k = _config.user_function_kernels()
    n = x.size
    J = np.empty((m, n))
    if n == 0:
        return J
    njit_f = _is_njit(f) and x.ndim > 0
    evaluations = _EVALUATIONS[method]
    stop = threading.Event() if workers is not None and workers > 1 and not njit_f else None
    call = _python_f(f, (lambda value: value) if check is None else check, stop)
    if method == "complex":
        xz = _complex_copy(x)
        if njit_f:
            k.cjac_into(f, xz, steps, args, J, _kernel_threads(parallel, n, evaluations, seconds))
            return J
        py = _py(k.cjac_chunk)

        def chunk(lo, hi):
            py(call, xz, steps, args, lo, hi, J)
    else:
        code = METHOD_CODES[method]
        if njit_f:
            k.jac_into(f, x, steps, code, f0, args, J, _kernel_threads(parallel, n, evaluations, seconds))
            return J
        py = _py(k.jac_chunk)

        def chunk(lo, hi):
            py(call, x, steps, code, f0, args, lo, hi, J)
    _run_python(chunk, n, workers, stop)
    return J
