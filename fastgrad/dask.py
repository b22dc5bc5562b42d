r"""Gradients on data that outgrows one machine: dask arrays and ``dask.distributed``.

Least-squares gradients are sums over rows, so they split along the rows of A:

    g_jk = -(2/(N K)) sum_c sum_{i in chunk c} a_ij (y_ik - sum_l a_il w_lk)

(the matrix form dW = -(2/(N K)) A^T (Y - A W) of docs/derivations.md, "MSE
gradient of a linear model", one term per row chunk).  Each row chunk
of a dask array runs fastgrad's fused in-memory kernel with ``reduction='sum'``
(one pass over that chunk only), the per-chunk partials ``[loss_c, g_c]`` are
summed in a tree (8 at a time) and the sum is scaled by 1/(N K) for the mean.
No chunk is ever concatenated with another, so the peak memory is a few chunks,
whatever the size of A.

* :func:`mse_loss`, :func:`mse_grad`, :func:`mse_loss_and_grad` -- the in-memory
  functions of :mod:`fastgrad.mse` on a dask array ``A``;
* :func:`numgrad` -- numerical differentiation of an expensive scalar function,
  the weights spread over a ``dask.distributed`` client.

Computations run on dask's current scheduler: the active ``distributed.Client``
if there is one, else what ``dask.config.set(scheduler=...)`` selects (the
threaded scheduler by default).  Every task calls a module-level function, so
the graph pickles for process-based workers.  Each chunk's kernel runs on
fastgrad's thread count of the process it lands in (``FASTGRAD_NUM_THREADS`` on
workers); with several dask threads per process, ``fastgrad.set_num_threads(1)``
avoids oversubscribing the cores.  Results are deterministic: the chunk
partials are combined in a fixed order.

This module needs ``pip install fastgrad[dask]``; ``import fastgrad`` never
imports it (import ``fastgrad.dask`` explicitly).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "fastgrad.dask needs dask with its array and distributed extras: pip install fastgrad[dask]"
    ) from exc

from . import _config, _validate
from . import mse as _mse
from ._steps import default_steps as _numdiff_steps

__all__ = ["mse_loss", "mse_grad", "mse_loss_and_grad", "numgrad"]

# Partials are summed in a tree, this many at a time.
_SPLIT_EVERY = 8


# ---------------------------------------------------------------------------
# MSE on dask arrays
#
# Task functions are module-level (they pickle by reference for process-based
# workers); every argument they get is a plain value, never a context: the
# backend name is resolved in the calling process.


def _chunk_partial(A: np.ndarray, y: np.ndarray, w: np.ndarray, backend: str,
                   check_finite: bool, s: np.ndarray | None = None, b: np.ndarray | None = None) -> np.ndarray:
    """``[sum_ik s_i r_ik^2, -2 sum_i a_ij s_i r_ik (raveled), -2 sum_i s_i r_ik (b given)]`` of one
    row chunk, float64, with ``r = y - A w - b``.

    ``w`` is float64, so the in-memory kernel returns its float64 partial
    (float32 chunks are still read as float32 and accumulated in float64);
    ``s`` the chunk's sample weights or None, ``b`` the (K,) float64 intercept or None.
    """
    part = np.zeros(1 + w.size + (0 if b is None else b.size))
    if A.shape[0] == 0:  # an empty chunk (e.g. after slicing) adds nothing
        return part
    loss, g, gb = _mse._sum_partial(A, y, w, s, b, check_finite, backend)
    part[0] = loss
    part[1:1 + w.size] = g.reshape(-1)
    if gb is not None:
        part[1 + w.size:] = gb
    return part


def _sum_partials(*parts: np.ndarray) -> np.ndarray:
    """Sum partials in the order given (a fixed order: deterministic)."""
    acc = np.array(parts[0], dtype=np.float64)
    for p in parts[1:]:
        acc += p
    return acc


def _finish_partial(total: np.ndarray, scale: float, w_shape: tuple[int, ...], dtype: np.dtype,
                    what: str, w: np.ndarray | None = None, alpha: float = 0.0,
                    b_shape: tuple[int, ...] | None = None) -> Any:
    """Scale the summed partial, add the ridge term ``alpha sum w^2`` (gradient ``2 alpha w``)
    and shape it like the in-memory functions' results."""
    nw = int(np.prod(w_shape))
    loss = float(scale * total[0])
    grad = (scale * total[1:1 + nw]).reshape(w_shape)
    if alpha:
        loss += alpha * float(np.sum(w * w))
        grad = grad + (2.0 * alpha) * w
    grad = grad.astype(dtype, copy=False)
    if b_shape is not None:
        gb = scale * total[1 + nw:]
        grad = (grad, float(np.sum(gb)) if b_shape == () else gb.astype(dtype, copy=False))
    if what == "loss":
        return loss
    if what == "grad":
        return grad
    return loss, grad


def _tree_sum(parts: list) -> Any:
    """Sum delayed partials in a tree, ``_SPLIT_EVERY`` at a time."""
    add = dask.delayed(_sum_partials, pure=True)
    while len(parts) > 1:
        parts = [add(*parts[i:i + _SPLIT_EVERY]) for i in range(0, len(parts), _SPLIT_EVERY)]
    return parts[0]


def _dtype_probe(arr: Any, name: str) -> np.ndarray:
    """An empty array of ``arr``'s dtype through ``as_real`` (its dtype checks, nothing computed)."""
    return _validate.as_real(np.empty(0, dtype=arr.dtype), name)


def _check_known_chunks(arr: da.Array, name: str) -> None:
    if any(math.isnan(c) for dim in arr.chunks for c in dim):
        raise ValueError(
            f"{name} has unknown (nan) chunk sizes, e.g. after boolean indexing; "
            f"call {name}.compute_chunk_sizes() first"
        )


def _run(A: Any, y: Any, w: Any, reduction: str, out: np.ndarray | None, check_finite: bool,
         backend: str | None, compute: bool, what: str, sample_weight: Any = None, intercept: Any = None,
         alpha: Any = 0.0) -> Any:
    """Validate, build the chunked graph, compute it (or not); ``what`` in loss/grad/both."""
    if not isinstance(compute, bool):
        raise TypeError(f"compute must be True or False, got {compute!r}")
    if not compute and out is not None:
        raise ValueError("out= needs compute=True (with compute=False the result is a dask.delayed object)")
    if dask.is_dask_collection(w):
        w = w.compute()  # w is small: (D,) or (D, K)
    if dask.is_dask_collection(intercept):
        intercept = intercept.compute()
    if dask.is_dask_collection(sample_weight):
        sample_weight = sample_weight.compute()  # N numbers (A holds N D): checked here, then split

    if not isinstance(A, da.Array):
        # In memory already: the in-memory function (y computed if it is a dask array).
        if dask.is_dask_collection(y):
            y = y.compute()
        kw = {"reduction": reduction, "check_finite": check_finite, "backend": backend,
              "sample_weight": sample_weight, "intercept": intercept, "alpha": alpha}
        if what != "loss":
            kw["out"] = out
        fn = {"loss": _mse.mse_loss, "grad": _mse.mse_grad, "both": _mse.mse_loss_and_grad}[what]
        result = fn(A, y, w, **kw)
        return result if compute else dask.delayed(result, traverse=False)

    _validate.check_choice(reduction, "reduction", ("mean", "sum"))
    name = _config.resolve_backend(backend)  # resolved here: workers do not share our context
    a_probe = _dtype_probe(A, "A")
    w = _validate.as_real(w, "w")
    if isinstance(y, da.Array):
        y_probe = _dtype_probe(y, "y")
        _check_known_chunks(y, "y")
    else:
        y = _validate.as_real(y, "y")
        y_probe = y
    _check_known_chunks(A, "A")
    N, D, K = _validate.mse_shapes(A, y, w, reduction)
    alpha = _validate.check_alpha(alpha)
    s = None if sample_weight is None else _validate.as_real(sample_weight, "sample_weight")
    b = None if intercept is None else _validate.as_real(intercept, "intercept")
    if s is not None:
        _validate.check_sample_weight_shape(s, N, A.shape)
    if b is not None:
        _validate.check_intercept_shape(b, K, w.shape)
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(w=w, sample_weight=s, intercept=b)
    total_weight = None if s is None else _validate.check_sample_weight_values(s, reduction)
    if s is not None and reduction == "mean":
        s, total_weight = _validate.mean_weights(s, total_weight)
    dtype = _validate.result_dtype(a_probe, y_probe, w, *(x for x in (s, _validate.typed_or_none(intercept, b))
                                                          if x is not None))
    w_shape = w.shape
    if out is not None:
        _validate.check_out(out, w_shape, dtype)
    if A.numblocks[1] > 1:
        raise ValueError(
            f"A is chunked along its columns ({A.numblocks[1]} column chunks {A.chunks[1]}); each chunk "
            "must hold whole rows: use A.rechunk({1: -1}) (or chunks=(rows, -1) when creating A)"
        )

    # y follows A's row chunks: made a dask array from numpy, or rechunked (cheap:
    # y has K columns to A's D) when its row chunks differ from A's.
    y_chunks = (A.chunks[0],) if y.ndim == 1 else (A.chunks[0], (y.shape[1],))
    if not isinstance(y, da.Array):
        y = da.from_array(y, chunks=y_chunks)
    elif y.chunks != y_chunks:
        y = y.rechunk(y_chunks)

    w64 = np.array(w, dtype=np.float64)  # float64 partials (see _chunk_partial)
    b64 = None if b is None else np.ascontiguousarray(np.broadcast_to(np.asarray(b, dtype=np.float64), (K,)))
    partial = dask.delayed(_chunk_partial, pure=True)
    a_blocks = A.to_delayed().reshape(-1)
    y_blocks = y.to_delayed().reshape(-1)
    if s is None:
        s_blocks = [None] * len(a_blocks)
    else:  # the sample weights follow A's row chunks
        s_blocks = da.from_array(np.asarray(s, dtype=np.float64), chunks=(A.chunks[0],)).to_delayed().reshape(-1)
    parts = [partial(a, yb, w64, name, bool(check_finite), sb, b64)
             for a, yb, sb in zip(a_blocks, y_blocks, s_blocks, strict=True)]
    if reduction == "mean":
        scale = 1.0 / (N * K) if s is None else 1.0 / (K * total_weight)
    else:
        scale = 1.0
    result = dask.delayed(_finish_partial, pure=True)(_tree_sum(parts), scale, w_shape, dtype, what, w64,
                                                      alpha, None if b is None else b.shape)
    if not compute:
        return result
    result = result.compute()
    if out is None or what == "loss":
        return result
    grad = result if what == "grad" else result[1]
    if b is None:
        out[...] = grad
        return out if what == "grad" else (result[0], out)
    out[...] = grad[0]
    return (out, grad[1]) if what == "grad" else (result[0], (out, grad[1]))


def mse_loss_and_grad(
    A: Any,
    y: Any,
    w: Any,
    *,
    reduction: str = "mean",
    sample_weight: Any = None,
    intercept: Any = None,
    alpha: float = 0.0,
    out: np.ndarray | None = None,
    check_finite: bool = False,
    backend: str | None = None,
    compute: bool = True,
) -> Any:
    r"""Loss and gradient of the linear-model MSE on a dask array A chunked along rows.

    ``r = y - A w``; ``loss = (1/(N K)) sum_ik r_ik^2``;
    ``g_jk = -(2/(N K)) sum_i a_ij r_ik``, i.e. dW = -(2/(N K)) A^T (Y - A W).
    Each row chunk of A runs the fused in-memory kernel of
    :func:`fastgrad.mse_loss_and_grad` with ``reduction='sum'``; the chunk
    partials (float64) are summed in a tree and scaled by 1/(N K) for the mean.
    Chunks are never concatenated: memory is a few chunks, not O(N).

    Parameters
    ----------
    A : dask.array.Array of shape (N, D)
        Chunked along rows only (one chunk along the columns; otherwise a
        ``ValueError`` says to call ``A.rechunk({1: -1})``).  Chunk sizes must be
        known (else ``ValueError``: call ``A.compute_chunk_sizes()``).  If A is
        not a dask array, this is :func:`fastgrad.mse_loss_and_grad` (a dask y
        or w is computed first).
    y : dask.array.Array or array_like of shape (N,) or (N, K)
        Targets, 1-D when w is 1-D.  A numpy y is split like A's rows; a dask y
        whose row chunks differ from A's is rechunked to A's row chunks
        automatically (cheap: y has K columns where A has D).
    w : array_like of shape (D,) or (D, K)
        Weights (a dask w is computed first: it is small).
    reduction : {'mean', 'sum'}
    sample_weight : array_like of shape (N,), optional
        Non-negative row weights, as :func:`fastgrad.mse_loss_and_grad`; split
        like A's rows (a dask array is computed first: N numbers, checked in
        the calling process).
    intercept : float or array_like of shape (K,), optional
        The model's intercept b (``r = y - A w - b``); when given the gradient is
        ``(grad_w, grad_b)`` as :func:`fastgrad.mse_loss_and_grad` returns it.
    alpha : float
        Ridge coefficient: ``alpha sum w^2`` added once to the loss, ``2 alpha w``
        to the gradient.
    out : ndarray, optional
        Array shaped like w, of the result dtype, to write the gradient of w into
        (only with ``compute=True``).
    check_finite : bool
        Raise ``ValueError`` on NaN/Inf; w is checked at once, each chunk of A and
        y when its task runs (the error surfaces from the computation).
    backend : {'numba', 'cython', 'numpy'}, optional
        The per-chunk kernel; resolved in the calling process (a
        ``fastgrad.use_backend`` context applies) and passed to the workers.
    compute : bool
        True (default): compute on dask's current scheduler (the active
        ``distributed.Client``, else the ``dask.config`` scheduler) and return
        numpy results.  False: return a ``dask.delayed.Delayed`` that computes
        to exactly that result, to combine with other dask work.

    Returns
    -------
    loss : float
    grad : ndarray shaped like w, or ``(grad_w, grad_b)`` when ``intercept`` is given
        float32 only when every array input is float32 (the sums are float64).

    Raises
    ------
    ValueError, TypeError
        As :func:`fastgrad.mse_loss_and_grad` (shapes, reduction, dtypes), plus
        column chunks and unknown chunk sizes, all before anything is computed.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastgrad.dask as fgd
    >>> A = da.from_array(np.array([[1., 2.], [3., 4.], [5., 6.]]), chunks=(2, 2))
    >>> y = np.array([1., 2., 3.])
    >>> loss, g = fgd.mse_loss_and_grad(A, y, np.zeros(2))
    >>> round(loss, 6), np.round(g, 6).tolist()
    (4.666667, [-14.666667, -18.666667])
    """
    return _run(A, y, w, reduction, out, check_finite, backend, compute, "both", sample_weight, intercept,
                alpha)


def mse_grad(
    A: Any,
    y: Any,
    w: Any,
    *,
    reduction: str = "mean",
    sample_weight: Any = None,
    intercept: Any = None,
    alpha: float = 0.0,
    out: np.ndarray | None = None,
    check_finite: bool = False,
    backend: str | None = None,
    compute: bool = True,
) -> Any:
    r"""Gradient of the linear-model MSE on a dask array A: ``g_jk = -(2/(N K)) sum_i a_ij r_ik``.

    The chunked form of :func:`fastgrad.mse_grad`
    (dW = -(2/(N K)) A^T (Y - A W)); parameters, chunking rules and ``compute=`` as
    :func:`mse_loss_and_grad`.

    Returns
    -------
    ndarray shaped like w (``out`` if given), or a ``Delayed`` with ``compute=False``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastgrad.dask as fgd
    >>> A = da.from_array(np.array([[1., 2.], [3., 4.], [5., 6.]]), chunks=(1, 2))
    >>> fgd.mse_grad(A, np.array([1., 2., 3.]), np.zeros(2), reduction="sum").tolist()
    [-44.0, -56.0]
    """
    return _run(A, y, w, reduction, out, check_finite, backend, compute, "grad", sample_weight, intercept,
                alpha)


def mse_loss(
    A: Any,
    y: Any,
    w: Any,
    *,
    reduction: str = "mean",
    sample_weight: Any = None,
    intercept: Any = None,
    alpha: float = 0.0,
    check_finite: bool = False,
    backend: str | None = None,
    compute: bool = True,
) -> Any:
    r"""Linear-model MSE on a dask array A: ``(1/(N K)) sum_ik (y_ik - sum_j a_ij w_jk)^2``.

    The chunked form of :func:`fastgrad.mse_loss`; parameters, chunking rules
    and ``compute=`` as :func:`mse_loss_and_grad`.

    Returns
    -------
    float, or a ``Delayed`` with ``compute=False``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastgrad.dask as fgd
    >>> A = da.from_array(np.array([[1., 2.], [3., 4.]]), chunks=(1, 2))
    >>> fgd.mse_loss(A, np.array([1., 2.]), np.zeros(2))
    2.5
    """
    return _run(A, y, w, reduction, None, check_finite, backend, compute, "loss", sample_weight, intercept,
                alpha)


# ---------------------------------------------------------------------------
# Numerical differentiation spread over a dask.distributed client

_METHODS = ("central", "forward", "backward", "five-point")


def _scalar(value: Any) -> float:
    return _validate.f_scalar(value, "f")


def _f_at(f: Any, x: np.ndarray, args: tuple) -> float:
    """``f(x, *args)`` as a float (the unperturbed value for forward/backward)."""
    return _scalar(f(x.copy(), *args))


def _f_at_value(f: Any, xc: np.ndarray, flat: np.ndarray, i: int, value: float, args: tuple) -> tuple[float, float]:
    """Store ``value`` into element i of the private copy (rounded to x's dtype); ``(stored, f)``."""
    flat[i] = value
    # f gets a fresh copy of the point: an f that changes its argument in place
    # cannot corrupt the other evaluations of the chunk
    return float(flat[i]), _scalar(f(xc.copy(), *args))


def _numgrad_chunk(f: Any, x: np.ndarray, args: tuple, start: int, stop: int, h: np.ndarray,
                   method: str, f0: float | None) -> np.ndarray:
    r"""Difference quotients for the flat indices ``start <= i < stop`` of x, on a private copy of x.

    The steps used are the representable ones: the perturbed entry is stored in
    x's dtype and the denominator is formed from the stored values:
    central ``(f(v_+) - f(v_-)) / (v_+ - v_-)`` with ``v_+ = fl(x_i + h_i)``,
    ``v_- = fl(x_i - (v_+ - x_i))``; forward ``(f(v_+) - f0) / (v_+ - x_i)``; backward
    ``(f0 - f(v_-)) / (x_i - v_-)``, ``v_- = fl(x_i - h_i)``; five-point, with
    ``hh = fl(x_i + h_i) - x_i``,
    ``((f(x - 2hh) - f(x + 2hh)) + 8 (f(x + hh) - f(x - hh))) / (12 hh)``.
    """
    xc = np.array(x, order="C", copy=True)
    flat = xc.reshape(-1)
    out = np.empty(stop - start)
    for t, i in enumerate(range(start, stop)):
        x_i = float(flat[i])
        h_i = float(h[t])
        if method == "central":
            v_p, f_p = _f_at_value(f, xc, flat, i, x_i + h_i, args)
            v_m, f_m = _f_at_value(f, xc, flat, i, x_i - (v_p - x_i), args)
            out[t] = (f_p - f_m) / (v_p - v_m)
        elif method == "forward":
            v_p, f_p = _f_at_value(f, xc, flat, i, x_i + h_i, args)
            out[t] = (f_p - f0) / (v_p - x_i)
        elif method == "backward":
            v_m, f_m = _f_at_value(f, xc, flat, i, x_i - h_i, args)
            out[t] = (f0 - f_m) / (x_i - v_m)
        else:  # five-point
            v_p, f_p1 = _f_at_value(f, xc, flat, i, x_i + h_i, args)
            hh = v_p - x_i
            f_m1 = _f_at_value(f, xc, flat, i, x_i - hh, args)[1]
            f_p2 = _f_at_value(f, xc, flat, i, x_i + 2.0 * hh, args)[1]
            f_m2 = _f_at_value(f, xc, flat, i, x_i - 2.0 * hh, args)[1]
            out[t] = ((f_m2 - f_p2) + 8.0 * (f_p1 - f_m1)) / (12.0 * hh)
        flat[i] = x_i  # exact: x_i came from x's dtype
    return out


def _scheduler_threads(client: Any) -> int:
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    try:
        from distributed import default_client

        return max(1, sum(default_client().nthreads().values()))
    except (ImportError, ValueError):
        return os.cpu_count() or 1


def numgrad(
    f: Any,
    x: Any,
    *,
    args: tuple = (),
    h: Any = None,
    method: str = "central",
    client: Any = None,
    n_chunks: int | None = None,
) -> np.ndarray:
    r"""Numerical gradient of an expensive scalar ``f(x, *args)``, the elements of x spread over dask.

    The flat indices of x are split into ``n_chunks`` contiguous ranges; each
    task takes the finite differences of its range on its own copy of x and the
    pieces are assembled into x's shape.  ``g_i = (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i)``
    for ``'central'``, ``(f(x + h_i e_i) - f(x)) / h_i`` for ``'forward'``, ``(f(x) - f(x - h_i e_i)) / h_i``
    for ``'backward'``, the 4th-order stencil at x±h, x±2h for ``'five-point'``;
    ``f(x)`` is evaluated once, in its own task.  The steps used are the
    representable ones: the perturbed entry is stored in x's dtype and the
    denominator is formed from the stored values (as ``fastgrad.numgrad`` does),
    so float32 x gets exact secants.

    Parameters
    ----------
    f : callable
        ``f(x, *args) -> float``; must pickle when a process-based cluster runs it
        (``distributed`` uses cloudpickle, so lambdas and closures work).  It gets
        a private copy of x and may not keep it.
    x : array_like, any shape
        The point; never written.
    args : tuple
        Extra arguments of f, shipped once with the graph.
    h : float or array_like, optional
        Absolute step(s), broadcast to x's shape, finite and > 0, and large
        enough that ``x + h`` differs from x in x's dtype (else ``ValueError``).
        Default (the rule of ``fastgrad.numgrad``; docs/derivations.md, "Limits
        and finite differences"): ``c * max(1, |x_i|)`` with c = eps^(1/3) for central, eps^(1/2) for
        forward/backward, eps^(1/5) for five-point, eps of x's dtype.
    method : {'central', 'forward', 'backward', 'five-point'}
    client : distributed.Client, optional
        Where to run; default: dask's current scheduler (the active client if
        any, else the threaded scheduler).
    n_chunks : int, optional
        Number of tasks; default 4 per thread of the cluster (at most x.size).

    Returns
    -------
    ndarray of x's shape
        float32 only when x is float32.

    Examples
    --------
    >>> import numpy as np, fastgrad.dask as fgd
    >>> def f(x):
    ...     return float(np.sum(x ** 3))
    >>> g = fgd.numgrad(f, np.array([1.0, 2.0, 3.0]), n_chunks=2)
    >>> np.allclose(g, [3.0, 12.0, 27.0], rtol=1e-8)
    True
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    _validate.check_choice(method, "method", _METHODS)
    if dask.is_dask_collection(x):
        x = x.compute()
    x = _validate.as_real(x, "x")
    if not isinstance(args, tuple):
        args = (args,)
    steps = _numdiff_steps(x, h, method, False)  # fastgrad.numgrad's step rule and checks
    if n_chunks is None:
        n_chunks = 4 * _scheduler_threads(client)
    else:
        n_chunks = _validate.check_positive_int(n_chunks, "n_chunks")
    dtype = _validate.result_dtype(x)
    n = x.size
    if n == 0:
        return np.zeros(x.shape, dtype=dtype)
    n_chunks = min(n_chunks, n)

    x_d = dask.delayed(np.array(x, order="C"), traverse=False)  # shipped once, shared by the tasks
    args_d = dask.delayed(args, traverse=False)
    f0 = None
    if method in ("forward", "backward"):
        f0 = dask.delayed(_f_at, pure=False)(f, x_d, args_d)
    chunk = dask.delayed(_numgrad_chunk, pure=False)  # f may be impure: never merge its tasks
    bounds = np.linspace(0, n, n_chunks + 1).round().astype(np.int64)
    tasks = [
        chunk(f, x_d, args_d, int(a), int(b), steps[a:b], method, f0)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        if b > a
    ]
    if client is not None:
        parts = client.gather(client.compute(tasks))
    else:
        parts = dask.compute(*tasks)
    return np.concatenate(parts).reshape(x.shape).astype(dtype, copy=False)
