r"""Linear-model mean squared error: loss and gradient (docs/derivations.md, "MSE gradient of a linear model").

With A of shape (N, D), weights w of shape (D,) or (D, K) and targets y of
shape (N,) or (N, K), the residual is ``r = y - A w`` and

* ``mse_loss``  = (1/(N K)) sum_ik r_ik^2     (``reduction='sum'``: sum_ik r_ik^2)
* ``mse_grad``  : g_jk = -(2/(N K)) sum_i a_ij (y_ik - sum_l a_il w_lk)
  (matrix form: dW = -(2/N) A^T (Y - A W)), an array shaped like w.

All three functions share one fused kernel: a single pass over A, read in place
whatever its layout (C order row by row; Fortran order, as ``DataFrame.to_numpy()``
gives, in tiles of rows column by column; see ``fastgrad/_numba/mse.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _config, _validate
from ._steps import METHOD_CODES, check_method, default_steps

__all__ = ["mse_loss", "mse_grad", "mse_loss_and_grad", "MSEObjective", "mse_numgrad"]


def _dispatch(v: _validate.MSEInputs, backend: str | None) -> tuple[float, np.ndarray]:
    """Run the fused kernel of the selected backend; return (loss, grad (D, K) float64)."""
    N, D = v.A.shape
    K = v.Y.shape[1]
    out = np.empty((D, K))
    loss = _config.kernels("mse", backend).loss_grad(
        v.A, v.Y, v.WT, v.scale, out, _config.threads_for(N * D * K))
    return loss, out


def _finish(grad: np.ndarray, v: _validate.MSEInputs, out: np.ndarray | None) -> np.ndarray:
    """The (D, K) kernel result shaped like w, in the result dtype (into ``out`` if given)."""
    grad = grad.reshape(v.w_shape)
    if out is None:
        return grad if grad.dtype == v.dtype else grad.astype(v.dtype)
    out[...] = grad
    return out


def mse_loss_and_grad(
    A: Any,
    y: Any,
    w: Any,
    *,
    reduction: str = "mean",
    out: np.ndarray | None = None,
    check_finite: bool = False,
    backend: str | None = None,
) -> tuple[float, np.ndarray]:
    r"""Loss and gradient of the linear-model MSE from one fused pass over A.

    Parameters
    ----------
    A : array_like of shape (N, D)
        Inputs, read in place whatever their order or strides: C or Fortran
        order (``DataFrame.to_numpy()``, ``A.T``), row or column slices,
        negative strides, read-only arrays, ``np.memmap``; a pandas DataFrame
        works as it is.  Never written; copied only when the dtype must be
        converted (not float32/float64, or non-native byte order) or A is not
        aligned.
    y : array_like of shape (N,) or (N, K)
        Targets, 1-D when w is 1-D, 2-D when w is 2-D.
    w : array_like of shape (D,) or (D, K)
        Weights.
    reduction : {'mean', 'sum'}
        ``'mean'`` divides by N*K, ``'sum'`` does not.
    out : ndarray, optional
        Array shaped like w, of the result dtype, to write the gradient into.
    check_finite : bool
        Raise ``ValueError`` if any input holds NaN or Inf (otherwise they
        propagate into the result).
    backend : {'numba', 'cython', 'numpy'}, optional
        Overrides the current backend (see ``fastgrad.use_backend``).

    Returns
    -------
    loss : float
        ``(1/(N K)) sum_ik r_ik^2`` with ``r = y - A w`` (or the sum).
    grad : ndarray shaped like w
        ``g_jk = -(2/(N K)) sum_i a_ij r_ik``; float32 only when A, y and w all are.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 2.], [3., 4.]]); y = np.array([1., 2.]); w = np.zeros(2)
    >>> loss, g = fastgrad.mse_loss_and_grad(A, y, w)
    >>> loss, g.tolist()
    (2.5, [-7.0, -10.0])
    """
    return _loss_and_grad(A, y, w, reduction, out, check_finite, backend)


def _loss_and_grad(A, y, w, reduction, out, check_finite, backend) -> tuple[float, np.ndarray]:
    """Validate once, run the fused kernel, shape the gradient (shared by the three functions)."""
    if (
        out is None and _validate.is_plain_vector_problem(A, y, w, reduction, check_finite)
        and A.size < _config.PARALLEL_MIN_WORK
    ):
        # tiny, valid, no conversion needed: one kernel call does everything
        return _config.kernels("mse", backend).loss_grad_vec(A, y, w)
    v = _validate.mse_inputs(A, y, w, reduction, check_finite)
    if out is not None:
        _validate.check_out(out, v.w_shape, v.dtype)
    loss, grad = _dispatch(v, backend)
    return float(loss), _finish(grad, v, out)



def mse_grad(
    A: Any,
    y: Any,
    w: Any,
    *,
    reduction: str = "mean",
    out: np.ndarray | None = None,
    check_finite: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    r"""Gradient of the linear-model MSE wrt w: ``g_jk = -(2/(N K)) sum_i a_ij (y_ik - sum_l a_il w_lk)``.

    The matrix form ``dW = -(2/N) A^T (Y - A W)``, computed in one fused pass over A
    (each row's residual is accumulated into the gradient at once, or, for a
    Fortran-order A, each tile of rows' residuals while the tile is in cache;
    extra memory O(D K), never O(N); A of any layout is read in place).
    Parameters as :func:`mse_loss_and_grad`.

    Returns
    -------
    ndarray shaped like w (``out`` if given).

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 2.], [3., 4.]]); y = np.array([1., 2.])
    >>> fastgrad.mse_grad(A, y, np.zeros(2)).tolist()
    [-7.0, -10.0]
    """
    return _loss_and_grad(A, y, w, reduction, out, check_finite, backend)[1]


def mse_loss(
    A: Any,
    y: Any,
    w: Any,
    *,
    reduction: str = "mean",
    check_finite: bool = False,
    backend: str | None = None,
) -> float:
    r"""Linear-model MSE: ``(1/(N K)) sum_ik (y_ik - sum_j a_ij w_jk)^2`` (or the sum).

    Parameters as :func:`mse_loss_and_grad`.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> fastgrad.mse_loss([[1., 2.], [3., 4.]], [1., 2.], [0., 0.])
    2.5
    """
    return _loss_and_grad(A, y, w, reduction, None, check_finite, backend)[0]


class MSEObjective:
    """The MSE of a fixed linear least-squares problem as a function of w.

    Methods take w first, so that
    ``scipy.optimize.minimize(obj.loss_and_grad, w0, jac=True)`` works as-is;
    w may arrive flattened (scipy ravels it) and is reshaped to (D,) or (D, K).

    Parameters
    ----------
    A : array_like of shape (N, D)
    y : array_like of shape (N,) or (N, K)
    reduction : {'mean', 'sum'}
    backend : str, optional

    Examples
    --------
    >>> import numpy as np, scipy.optimize, fastgrad
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(50, 3)); y = A @ [1., -2., 3.]
    >>> obj = fastgrad.MSEObjective(A, y)
    >>> res = scipy.optimize.minimize(obj.loss_and_grad, np.zeros(3), jac=True)
    >>> np.round(res.x, 6).tolist()
    [1.0, -2.0, 3.0]
    """

    def __init__(self, A: Any, y: Any, *, reduction: str = "mean", backend: str | None = None):
        A = _validate.as_real(A, "A")
        y = _validate.as_real(y, "y")
        _validate.check_ndim(A, "A", (2,), "2-D (N, D)")
        _validate.check_ndim(y, "y", (1, 2), "1-D (N,) or 2-D (N, K)")
        if y.shape[0] != A.shape[0]:
            raise ValueError(f"A has {A.shape[0]} rows but y has {y.shape[0]} (A {A.shape}, y {y.shape})")
        _validate.check_choice(reduction, "reduction", ("mean", "sum"))
        if backend is not None:
            _config.resolve_backend(backend)
        self.A = _validate.as_contiguous(A)
        self.y = _validate.as_contiguous(y)
        self.reduction = reduction
        self.backend = backend
        D = A.shape[1]
        self.w_shape: tuple[int, ...] = (D,) if y.ndim == 1 else (D, y.shape[1])

    def _w(self, w: Any) -> np.ndarray:
        w = _validate.as_real(w, "w")
        if w.size != int(np.prod(self.w_shape)):
            raise ValueError(f"w has {w.size} elements but the problem has weights of shape {self.w_shape}")
        return w.reshape(self.w_shape)

    def _ret(self, grad: np.ndarray, w_in: Any) -> np.ndarray:
        return grad.reshape(np.shape(w_in)) if np.ndim(w_in) == 1 else grad

    def loss(self, w: Any) -> float:
        """The loss at w."""
        return mse_loss(self.A, self.y, self._w(w), reduction=self.reduction, backend=self.backend)

    def grad(self, w: Any) -> np.ndarray:
        """The gradient at w, in the shape w was given in."""
        g = mse_grad(self.A, self.y, self._w(w), reduction=self.reduction, backend=self.backend)
        return self._ret(g, w)

    def loss_and_grad(self, w: Any) -> tuple[float, np.ndarray]:
        """``(loss, grad)`` at w from one pass, grad in the shape w was given in."""
        loss, g = mse_loss_and_grad(self.A, self.y, self._w(w), reduction=self.reduction, backend=self.backend)
        return loss, self._ret(g, w)

    __call__ = loss

    def __repr__(self) -> str:
        return f"MSEObjective(A: {self.A.shape}, y: {self.y.shape}, reduction={self.reduction!r})"


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

    The central difference ``(L(w + h e_jk) - L(w - h e_jk)) / 2h`` for
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
    method = check_method(method)
    v = _validate.mse_inputs(A, y, w, reduction, check_finite)
    if out is not None:
        _validate.check_out(out, v.w_shape, v.dtype)
    WT = v.WT  # (K, D) float64
    K, D = WT.shape
    w64 = WT.reshape(D) if len(v.w_shape) == 1 else WT.T  # w's shape, float64 view
    steps = default_steps(w64, h, method, False)
    H = steps.reshape(v.w_shape)
    H = H.reshape(1, D) if len(v.w_shape) == 1 else np.ascontiguousarray(H.T)
    if method == "complex":
        HH = H
    else:
        HH = (WT + H) - WT if method != "backward" else WT - (WT - H)
    HH = np.ascontiguousarray(HH)
    code = METHOD_CODES[method]
    N = v.A.shape[0]
    G = np.empty((D, K))
    # the numdiff kernels read C-contiguous rows: a copy of A in any other layout
    _config.kernels("numdiff", backend).mse_numgrad_into(
        _validate.as_contiguous(v.A), v.Y, WT, HH, code, v.scale, G, _config.threads_for(N * D * K))
    G = G.reshape(v.w_shape)
    if out is None:
        return G.astype(v.dtype, copy=False)
    out[...] = G
    return out


def _self_checks():
    """Cases for ``fastgrad check``: (name, fn(backend, rng) -> [(result, reference), ...])."""

    def case(N, D, K, dtype, reduction):
        def fn(backend, rng):
            A = rng.standard_normal((N, D)).astype(dtype)
            w = rng.standard_normal((D, K) if K else D).astype(dtype)
            y = rng.standard_normal((N, K) if K else N).astype(dtype)
            loss, g = mse_loss_and_grad(A, y, w, reduction=reduction, backend=backend)
            rloss, rg = mse_loss_and_grad(A, y, w, reduction=reduction, backend="numpy")
            return [(loss, rloss), (g, rg)]

        return fn

    return [
        ("mse_loss_and_grad (100, 3) f64", case(100, 3, 0, np.float64, "mean")),
        ("mse_loss_and_grad (5000, 40, K=3) f64 sum", case(5000, 40, 3, np.float64, "sum")),
        ("mse_loss_and_grad (3000, 130) f32", case(3000, 130, 0, np.float32, "mean")),
    ]
