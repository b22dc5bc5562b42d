r"""Numerical differentiation (seed 004), done right and fast.

* :func:`numgrad` -- the gradient of a scalar ``f(x, *args)`` by finite
  differences (forward, backward, central, five-point) or the complex step,
  any shape of x.  An ``@njit`` f runs in a compiled, parallel loop, each thread
  on its own private copy of x; a Python f runs serially or on a thread pool.
* :func:`numjac` -- the Jacobian of an array-valued f, shape ``f(x).shape + x.shape``.
* :func:`mse_numgrad` -- the numerical gradient of the linear-model MSE with
  every perturbed loss really evaluated, each in O(N K) by reusing the residual.
* :func:`approx_fprime`, :func:`check_grad` -- drop-ins for scipy.optimize's.
* :func:`gradcheck` -- compare an analytic gradient with :func:`numgrad`.

Seed 004's derivative is ``dw_j = lim (loss(w_j + h) - loss(w_j - h)) / 2h``; its
code writes ``/ 2*h``, which divides by 2 and *multiplies* by h, so its
"gradient" is h^2 times the true one.  :func:`gradcheck` catches exactly that.
"""

from __future__ import annotations

import concurrent.futures
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _config, _validate, reference

__all__ = [
    "numgrad",
    "numjac",
    "mse_numgrad",
    "approx_fprime",
    "check_grad",
    "gradcheck",
    "GradcheckResult",
    "GradientMismatchError",
    "METHODS",
]

METHODS = ("forward", "backward", "central", "five-point", "complex")
_CODES = {"forward": 0, "backward": 1, "central": 2, "five-point": 3, "complex": 4}
_EXPONENT = {"forward": 1 / 2, "backward": 1 / 2, "central": 1 / 3, "five-point": 1 / 5}
_COMPLEX_STEP = 1e-20
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
        Index into x of the entry that exceeds its tolerance by the largest factor.
    analytic, numeric : ndarray of x's shape
    """

    ok: bool
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple
    analytic: np.ndarray
    numeric: np.ndarray


# ---------------------------------------------------------------------------
# Shared helpers


def _check_method(method: Any) -> str:
    return _validate.check_choice(method, "method", METHODS)


def _default_step(dtype: np.dtype, method: str) -> float:
    """c of the default step ``c * max(1, |x_i|)``: eps^(1/2), eps^(1/3), eps^(1/5) or 1e-20."""
    if method == "complex":
        return _COMPLEX_STEP
    return float(np.finfo(dtype).eps) ** _EXPONENT[method]


def _steps(x: np.ndarray, h: Any, method: str, full: bool, name: str = "h") -> np.ndarray:
    """Validated nominal steps: a C-contiguous float64 array of x.size."""
    if h is None:
        steps = _default_step(x.dtype, method) * np.maximum(1.0, np.abs(x.astype(np.float64)))
    else:
        _validate.check_step(h, name)
        harr = np.asarray(h, dtype=np.float64)
        try:
            steps = np.broadcast_to(harr, x.shape)
        except ValueError:
            raise ValueError(
                f"{name} has shape {harr.shape} but x has shape {x.shape}; give a scalar or an "
                f"array of x's shape"
            ) from None
    steps = np.array(steps, dtype=np.float64, order="C").reshape(-1)
    if method != "complex":
        xf = x.reshape(-1)
        sign = -1.0 if method == "backward" else 1.0
        for s in (steps, 0.5 * steps) if full else (steps,):
            moved = (xf + sign * s).astype(x.dtype)
            vanish = (moved == xf) & np.isfinite(xf)
            if vanish.any():
                j = int(np.argmax(vanish))
                idx = np.unravel_index(j, x.shape)
                raise ValueError(
                    f"{name} = {s[j]:g} vanishes at x[{', '.join(map(str, idx))}] = {xf[j]!r} in "
                    f"{x.dtype}: (x + h) - x == 0; use a larger step"
                )
    return steps


def _is_njit(f: Any) -> bool:
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    return isinstance(f, Dispatcher)


def _as_args(args: Any) -> tuple:
    return args if isinstance(args, tuple) else (args,)


def _own_copy(x: Any) -> np.ndarray:
    """x validated (real float32/float64) as a fresh C-contiguous array fastgrad owns."""
    return np.array(_validate.as_real(x, "x"), order="C", copy=True)


def _scalar(value: Any, where: str) -> Any:
    if np.ndim(value) != 0:
        raise ValueError(
            f"f must return a scalar, but {where} returned an array of shape {np.shape(value)}; "
            f"use numjac for array-valued functions"
        )
    return value


def _scalar_f(f: Callable) -> Callable:
    def call(xc, *args):
        return _scalar(f(xc, *args), "f(x + h e_j)")

    return call


def _complex_copy(x: np.ndarray) -> np.ndarray:
    return x.astype(np.complex64 if x.dtype == np.float32 else np.complex128)


def _complex_probe(f: Callable, xz: np.ndarray, args: tuple) -> Any:
    """Evaluate f at complex x; a clear TypeError if f rejects or drops complex input."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            value = f(xz.copy(), *args)
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
    if np.iscomplexobj(value):
        return value
    raise TypeError(
        f"method='complex' needs f to return complex values for complex x, but f returned "
        f"{type(value).__name__} {np.asarray(value).dtype}: the imaginary part was discarded, the "
        f"complex-step derivative would be 0"
    )


def _n_chunks(n: int, threads: int) -> int:
    return max(1, min(n, 4 * threads))


def _run_parallel(parallel_call: Callable, serial_call: Callable) -> None:
    """Run a parallel Numba kernel over a user's f; on failure re-run serially.

    An exception raised by f inside a parallel region comes back from Numba as an
    opaque SystemError; the serial re-run raises f's own exception.
    """
    _config.numba_threads()
    try:
        with _config.parallel_guard():
            parallel_call()
    except Exception as exc:
        serial_call()
        raise exc


def _pool_chunks(chunk: Callable, n: int, workers: int) -> None:
    """Run ``chunk(lo, hi)`` over fixed chunks of range(n) on a thread pool."""
    nc = _n_chunks(n, workers)
    bounds = [(c * n // nc, (c + 1) * n // nc) for c in range(nc)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(chunk, lo, hi) for lo, hi in bounds]
        try:
            for fut in futures:
                fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


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
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Numerical gradient of a scalar function: ``g_j ~ d f(x, *args) / d x_j`` for every element of x.

    Seed 004's ``dw_j = lim (loss(w_j + h) - loss(w_j - h)) / 2h``, with the
    stencils

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
        A Python callable or a Numba ``@njit`` dispatcher.  It receives a private
        copy of x (x's shape and dtype, C-contiguous) and must not keep it.
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
        (``fastgrad.set_num_threads``), each thread on its own copy of x.
        Results are bitwise identical for every thread count.
    workers : int, optional
        For a Python f: evaluate on a pool of this many threads (each on its
        own copy of x).  Default: serial.  Ignored for an ``@njit`` f.
    full_output : bool
        Also return an element-wise error estimate.

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
        that ``x + h == x``; f returns a non-scalar.
    TypeError
        ``method='complex'`` and f rejects complex x or returns a real value.

    Notes
    -----
    An exception raised by f propagates (x is left unchanged: f only ever sees
    copies).  A NaN returned by f makes only the affected entries NaN.

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
    method = _check_method(method)
    x = _own_copy(x)
    args = _as_args(args)
    if workers is not None:
        workers = _validate.check_positive_int(workers, "workers")
    full = bool(full_output)
    steps = _steps(x, h, method, full)
    grad, err = _numgrad(f, x, args, steps, method, parallel, workers, full)
    grad = grad.reshape(x.shape).astype(x.dtype, copy=False)
    if full:
        return grad, err.reshape(x.shape).astype(x.dtype, copy=False)
    return grad


def _numgrad(f, x, args, steps, method, parallel, workers, full):
    """Validated core of :func:`numgrad`: float64 (grad, err) of x.size."""
    from ._numba import numdiff as nb

    n = x.size
    out = np.empty(n)
    err = np.empty(n if full else 0)
    eps = float(np.finfo(x.dtype).eps)
    if n == 0:
        return out, err
    njit_f = _is_njit(f) and x.ndim > 0
    if method == "complex":
        xz = _complex_copy(x)
        _complex_probe(f, xz, args)
        if njit_f:
            def serial():
                nb.cgrad_chunk(f, xz, steps, args, 0, n, full, eps, out, err)
            if parallel and n > 1:
                nc = _n_chunks(n, _config.get_num_threads())
                _run_parallel(lambda: nb.cgrad_parallel(f, xz, steps, args, nc, full, eps, out, err), serial)
            else:
                serial()
            return out, err
        py = nb.cgrad_chunk.py_func

        def chunk(lo, hi):
            py(f, xz, steps, args, lo, hi, full, eps, out, err)
    else:
        code = _CODES[method]
        f0 = float(np.float64(_scalar(f(x.copy(), *args), "f(x)")))
        if njit_f:
            def serial():
                nb.grad_chunk(f, x, steps, code, f0, args, 0, n, full, eps, out, err)
            if parallel and n > 1:
                nc = _n_chunks(n, _config.get_num_threads())
                _run_parallel(
                    lambda: nb.grad_parallel(f, x, steps, code, f0, args, nc, full, eps, out, err), serial
                )
            else:
                serial()
            return out, err
        py = nb.grad_chunk.py_func
        call = _scalar_f(f)

        def chunk(lo, hi):
            py(call, x, steps, code, np.float64(f0), args, lo, hi, full, eps, out, err)
    if workers is None or workers == 1 or n == 1:
        chunk(0, n)
    else:
        _pool_chunks(chunk, n, workers)
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
    order: str = "C",
    parallel: bool = True,
    workers: int | None = None,
) -> np.ndarray:
    r"""Numerical Jacobian of an array-valued function: ``J[a..., b...] ~ d f(x)[a...] / d x[b...]``.

    The rank-3/rank-4 derivative tensors of seeds 001 and 003 (e.g.
    ``d(W x)/dW`` has shape ``(n,) + (n, m)``), by the stencils of
    :func:`numgrad` applied to every output at once.

    Parameters
    ----------
    f : callable ``f(x, *args) -> array``
        Python callable or ``@njit`` dispatcher; receives a private copy of x.
        A scalar result gives the gradient (shape ``x.shape``).
    x : array_like, any shape
    args, h, method, parallel, workers
        As :func:`numgrad`.
    flatten : bool
        Return the matrix of shape ``(f(x).size, x.size)`` instead.
    order : {'C', 'F'}
        How both f(x) and x are flattened with ``flatten=True``: 'C' numpy's
        row-major ravel (default), 'F' the textbook column-stacking vec.

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
    >>> np.allclose(fastgrad.numjac(lambda W: W @ v, W, flatten=True, order='F'),
    ...             np.kron(v, np.eye(2)))   # x^T (x) I_n, seed 001
    True
    """
    from ._numba import numdiff as nb

    method = _check_method(method)
    _validate.check_choice(order, "order", ("C", "F"))
    x = _own_copy(x)
    args = _as_args(args)
    if workers is not None:
        workers = _validate.check_positive_int(workers, "workers")
    steps = _steps(x, h, method, False)
    n = x.size
    njit_f = _is_njit(f) and x.ndim > 0
    if method == "complex":
        xz = _complex_copy(x)
        probe = np.asarray(_complex_probe(f, xz, args))
    else:
        probe = np.asarray(f(x.copy(), *args))
    fshape = probe.shape
    if probe.ndim == 0:
        grad, _ = _numgrad(f, x, args, steps, method, parallel, workers, False)
        J = grad.reshape(x.shape)
    else:
        m = probe.size
        J = np.empty((m, n))
        if n > 0:
            def checked(xc, *a):
                value = np.asarray(f(xc, *a))
                if value.shape != fshape:
                    raise ValueError(f"f returned shape {value.shape} at x + h e_j but {fshape} at x")
                return value

            if method == "complex":
                run = (lambda lo, hi: nb.cjac_chunk(f, xz, steps, args, lo, hi, J),
                       lambda nc: nb.cjac_parallel(f, xz, steps, args, nc, J),
                       lambda lo, hi: nb.cjac_chunk.py_func(checked, xz, steps, args, lo, hi, J))
            else:
                code = _CODES[method]
                f0 = np.ascontiguousarray(probe, dtype=np.float64).reshape(-1)
                run = (lambda lo, hi: nb.jac_chunk(f, x, steps, code, f0, args, lo, hi, J),
                       lambda nc: nb.jac_parallel(f, x, steps, code, f0, args, nc, J),
                       lambda lo, hi: nb.jac_chunk.py_func(checked, x, steps, code, f0, args, lo, hi, J))
            if njit_f:
                if parallel and n > 1:
                    nc = _n_chunks(n, _config.get_num_threads())
                    _run_parallel(lambda: run[1](nc), lambda: run[0](0, n))
                else:
                    run[0](0, n)
            elif workers is None or workers == 1 or n == 1:
                run[2](0, n)
            else:
                _pool_chunks(run[2], n, workers)
        J = J.reshape(fshape + x.shape)
    J = J.astype(x.dtype, copy=False)
    if flatten:
        return _flatten_jacobian(J, fshape, x.shape, order)
    return J


# ---------------------------------------------------------------------------
# mse_numgrad


def mse_numgrad(
    A: Any,
    y: Any,
    w: Any,
    *,
    h: Any = None,
    method: str = "central",
    reduction: str = "mean",
    out: np.ndarray | None = None,
    check_finite: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    r"""Numerical gradient of the linear-model MSE, every perturbed loss really evaluated.

    Seed 004's central difference ``(L(w + h e_jk) - L(w - h e_jk)) / 2h`` for
    every weight, with ``L(w) = (1/(N K)) sum_ik r_ik^2``, ``r = y - A w``.  The
    loss at ``w + o h e_jk`` is formed from the residual instead of from scratch::

        L(w + o h e_jk) = scale * ( sum_{k' != k} sum_i r_ik'^2 + sum_i (r_ik - o h a_ij)^2 )

    so each perturbed loss costs O(N) (O(N K) with the other outputs' sums) and
    the gradient O(N D K), not O(N D^2 K); parallel over the weights (column
    bands of A, bitwise identical for every thread count).

    Parameters
    ----------
    A : array_like of shape (N, D)
    y : array_like of shape (N,) or (N, K)
    w : array_like of shape (D,) or (D, K)
        Validated as :func:`fastgrad.mse_grad` does (one shared validation layer).
    h : float or array_like of w's shape, optional
        Absolute step(s), finite and > 0; default ``c * max(1, |w_jk|)`` with c
        as in :func:`numgrad` for the result dtype.  The step used is the
        representable ``(w + h) - w`` (float64).
    method : {'central', 'forward', 'backward', 'five-point', 'complex'}
        Offsets evaluated: central (-h, +h), forward (0, +h), backward (-h, 0),
        five-point (-2h, -h, +h, +2h), complex ``Im L(w + i h e_jk) / h``.
        The MSE is quadratic, so central, five-point and complex are exact up to
        rounding.
    reduction : {'mean', 'sum'}
    out : ndarray, optional
        Array shaped like w, of the result dtype, to write into.
    check_finite : bool
        Raise ``ValueError`` on NaN/Inf in the inputs.
    backend : {'numba', 'cython', 'numpy'}, optional

    Returns
    -------
    ndarray shaped like w (``out`` if given); float32 only when A, y, w all are.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 2.], [3., 4.]]); y = np.array([1., 2.])
    >>> np.round(fastgrad.mse_numgrad(A, y, np.zeros(2)), 6).tolist()
    [-7.0, -10.0]
    """
    method = _check_method(method)
    v = _validate.mse_inputs(A, y, w, reduction, check_finite)
    if out is not None:
        _validate.check_out(out, v.w_shape, v.dtype)
    name = _config.resolve_backend(backend)
    WT = v.WT  # (K, D) float64
    K, D = WT.shape
    w64 = WT.reshape(D) if len(v.w_shape) == 1 else WT.T  # w's shape, float64 view
    steps = _steps(w64, h, method, False)
    H = steps.reshape(v.w_shape)
    H = H.reshape(1, D) if len(v.w_shape) == 1 else np.ascontiguousarray(H.T)
    if method == "complex":
        HH = H
    else:
        HH = (WT + H) - WT if method != "backward" else WT - (WT - H)
    HH = np.ascontiguousarray(HH)
    code = _CODES[method]
    N = v.A.shape[0]
    if name == "numba":
        from ._numba import numdiff as nb

        G = np.empty((D, K))
        if N * D * K < _config.PARALLEL_MIN_WORK:
            nb.mse_numgrad(v.A, v.Y, WT, HH, code, v.scale, G)
        else:
            _config.numba_threads()
            with _config.parallel_guard():
                nb.mse_numgrad_parallel(v.A, v.Y, WT, HH, code, v.scale, G)
    elif name == "cython":
        from ._cython import numdiff as cy

        n_threads = 1 if N * D * K < _config.PARALLEL_MIN_WORK else _config.get_num_threads()
        G = cy.mse_numgrad(v.A, v.Y, WT, HH, code, v.scale, n_threads)
    else:
        G = reference.mse_numgrad(v.A, v.Y, WT, HH, method, v.scale)
    G = G.reshape(v.w_shape)
    if out is None:
        return G.astype(v.dtype, copy=False)
    out[...] = G
    return out


# ---------------------------------------------------------------------------
# scipy.optimize drop-ins


def _fprime_steps(x0: np.ndarray, epsilon: Any) -> np.ndarray:
    """scipy's absolute steps: epsilon, or ``sqrt(eps) sign(x) max(1, |x|)`` where x + epsilon == x."""
    sign_x0 = (x0 >= 0).astype(float) * 2 - 1
    h = epsilon
    dx = (x0 + h) - x0
    h = np.where(dx == 0, np.finfo(np.float64).eps ** 0.5 * sign_x0 * np.maximum(1.0, np.abs(x0)), h)
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
    epsilon : float or array_like of shape (n,)
        Absolute step(s); default ``sqrt(np.finfo(float).eps)``.  As in scipy,
        a step that vanishes at xk (``xk + epsilon == xk``) is replaced by
        ``sqrt(eps) * sign(xk) * max(1, |xk|)``.
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
    from ._numba import numdiff as nb

    xk = np.asarray(xk, float)
    f0_raw = f(xk.copy(), *args)
    x0 = np.array(np.atleast_1d(xk), dtype=np.float64, order="C")
    if x0.ndim > 1:
        raise ValueError("`x0` must have at most 1 dimension.")
    f0 = np.atleast_1d(f0_raw)
    if f0.ndim > 1:
        raise ValueError("`f0` passed has more than 1 dimension.")
    h = _fprime_steps(x0, epsilon)
    n, m = x0.size, f0.size
    njit_f = _is_njit(f)
    if njit_f and np.ndim(f0_raw) == 0:
        out = np.empty(n)
        f00 = float(np.float64(f0_raw))
        nc = _n_chunks(n, _config.get_num_threads())
        _run_parallel(lambda: nb.grad_parallel(f, x0, h, 0, f00, args, nc, False, 0.0, out, np.empty(0)),
                      lambda: nb.grad_chunk(f, x0, h, 0, f00, args, 0, n, False, 0.0, out, np.empty(0)))
        return out
    J = np.empty((m, n))
    f0_64 = f0.astype(np.float64)
    if njit_f:
        nc = _n_chunks(n, _config.get_num_threads())
        _run_parallel(lambda: nb.jac_parallel(f, x0, h, 0, f0_64, args, nc, J),
                      lambda: nb.jac_chunk(f, x0, h, 0, f0_64, args, 0, n, J))
    else:
        def wrapped(x, *a):
            value = np.atleast_1d(f(x, *a))
            if value.ndim > 1:
                raise RuntimeError("`fun` return value has more than 1 dimension.")
            return value

        nb.jac_chunk.py_func(wrapped, x0, h, 0, f0_64, args, 0, n, J)
    return J.ravel() if m == 1 else J


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


def gradcheck(
    f: Callable,
    grad: Callable,
    x: Any,
    *,
    args: Sequence = (),
    rtol: float = 1e-5,
    atol: float = 1e-8,
    h: Any = None,
    method: str = "central",
    raise_exception: bool = True,
) -> GradcheckResult:
    r"""Check an analytic gradient against :func:`numgrad`, entry by entry.

    Entry j passes when ``|analytic_j - numeric_j| <= atol + rtol |numeric_j|``
    (numpy's ``allclose`` rule, NaN fails).  Use float64 x: with float32 x the
    numerical gradient itself is only good to ~1e-3 (loosen rtol).

    Parameters
    ----------
    f : callable ``f(x, *args) -> scalar`` (Python or ``@njit``)
    grad : callable ``grad(x, *args) -> array of x's shape``
    x : array_like, any shape
    args, h, method
        As :func:`numgrad`.
    rtol, atol : float
    raise_exception : bool
        Raise :class:`GradientMismatchError` on failure (default) instead of
        returning a result with ``ok=False``.

    Returns
    -------
    GradcheckResult(ok, max_abs_err, max_rel_err, worst_index, analytic, numeric)

    Raises
    ------
    GradientMismatchError (an AssertionError)
        listing the worst entries: index, analytic, numeric, abs and rel error.
    ValueError
        grad returns an array of a shape other than x's.

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
    """
    x = _own_copy(x)
    numeric = numgrad(f, x, args=args, h=h, method=method)
    analytic = np.asarray(grad(x.copy(), *_as_args(args)))
    if analytic.shape != x.shape:
        raise ValueError(f"grad returned an array of shape {analytic.shape} but x has shape {x.shape}")
    a = analytic.astype(np.float64)
    n = numeric.astype(np.float64)
    diff = np.abs(a - n)
    tol = atol + rtol * np.abs(n)
    bad = ~(diff <= tol)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(bad, np.where(tol > 0, diff / tol, np.inf), diff / np.where(tol > 0, tol, 1.0))
        excess = np.where(np.isnan(excess), np.inf, excess)
        rel = np.where(diff == 0, 0.0, diff / np.abs(n))
    ok = not bool(bad.any())
    if x.size == 0:
        return GradcheckResult(True, 0.0, 0.0, (), analytic, numeric)
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
            f"(|analytic - numeric| > atol + rtol |numeric|, rtol={rtol:g}, atol={atol:g}, "
            f"method={method!r}); worst at index {worst}:\n" + "\n".join(lines)
        )
    return result


# ---------------------------------------------------------------------------
# fastgrad check


def _self_checks():
    """Cases for ``fastgrad check``: (name, fn(backend, rng) -> [(result, reference), ...])."""
    from . import mse

    def mse_case(N, D, K, dtype, method):
        def fn(backend, rng):
            A = rng.standard_normal((N, D)).astype(dtype)
            w = rng.standard_normal((D, K) if K else D).astype(dtype)
            y = rng.standard_normal((N, K) if K else N).astype(dtype)
            g = mse_numgrad(A, y, w, method=method, backend=backend)
            return [(g, mse_numgrad(A, y, w, method=method, backend="numpy")),
                    (g, mse.mse_grad(A, y, w, backend="numpy"))]

        return fn

    def numgrad_case(fn_njit, method):
        def fn(backend, rng):
            x = rng.uniform(0.5, 1.5, size=(3, 4))
            f = fn_njit if backend == "numba" else fn_njit.py_func
            return [(numgrad(f, x, method=method), np.cos(x) * x + np.sin(x))]

        return fn

    from numba import njit

    @njit(**_config.NUMBA_FLAGS)
    def xsinx(x):
        return np.sum(x * np.sin(x))

    return [
        ("mse_numgrad (200, 7) central f64", mse_case(200, 7, 0, np.float64, "central")),
        ("mse_numgrad (3000, 70, K=3) five-point f64", mse_case(3000, 70, 3, np.float64, "five-point")),
        ("mse_numgrad (500, 9) complex f32", mse_case(500, 9, 0, np.float32, "complex")),
        ("numgrad x sin x (3, 4) five-point", numgrad_case(xsinx, "five-point")),
    ]
