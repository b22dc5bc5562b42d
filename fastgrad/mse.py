r"""Linear-model mean squared error: loss and gradient (docs/derivations.md, "MSE gradient of a linear model").

With A of shape (N, D), weights w of shape (D,) or (D, K) and targets y of
shape (N,) or (N, K), the residual is ``r = y - A w`` and

* ``mse_loss``  = (1/(N K)) sum_ik r_ik^2     (``reduction='sum'``: sum_ik r_ik^2)
* ``mse_grad``  : g_jk = -(2/(N K)) sum_i a_ij (y_ik - sum_l a_il w_lk)
  (matrix form: dW = -(2/N) A^T (Y - A W)), an array shaped like w.

The model users fit adds sample weights s, an intercept b and a ridge term:
``r = y - A w - b``, loss ``sum_ik s_i r_ik^2 / (K sum_i s_i) + alpha sum w^2``,
``grad_w = -2 c A^T S r + 2 alpha w``, ``grad_b = -2 c sum_i s_i r_i`` (c the
reduction's factor), all from the same single pass.

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


def _dispatch(v: _validate.MSEInputs, backend: str | None) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Run the fused kernel of the selected backend; return (loss, grad (D, K), grad_b (K,) or None), float64.

    The ridge term is added here, after the pass: ``alpha sum w**2`` to the
    loss and ``2 alpha w`` to the gradient (O(D K)).
    """
    N, D = v.A.shape
    K = v.Y.shape[1]
    out = np.empty((D, K))
    gb = None if v.b is None else np.empty(K)
    if isinstance(v.A, _validate.SparseA):  # scipy.sparse CSR/CSC: the sparse kernels, W (D, K)
        sp, W = v.A, v.W
        k = _config.kernels("mse_sparse", backend)
        run = k.csr_loss_grad if sp.fmt == "csr" else k.csc_loss_grad
        loss = run(sp.indptr, sp.indices, sp.data, v.Y, W, v.s, v.b, v.scale, out, gb,
                   _config.sparse_threads(sp.data.shape[0], N, K))
    else:
        W = v.WT.T
        loss = _config.kernels("mse", backend).loss_grad(
            v.A, v.Y, v.WT, v.s, v.b, v.scale, out, gb, _config.threads_for(N * D * K))
    if v.alpha:
        loss += v.alpha * float(np.sum(W * W))
        out += (2.0 * v.alpha) * W
    return loss, out, gb


def _sum_partial(A: Any, y: Any, w: Any, s: np.ndarray | None, b: np.ndarray | None, check_finite: bool,
                 backend: str | None) -> tuple[float, np.ndarray, np.ndarray | None]:
    """``(sum_ik s_i r_ik^2, -2 A^T S r (D, K), -2 sum_i s_i r_i (K,) or None)`` of a part of the rows.

    For sums over row chunks (``fastgrad.dask``): the weights s (float64, of
    these rows) were checked on the whole data by the caller, so a chunk whose
    weights are all 0 is no error here; b is the (K,) float64 intercept or None.
    """
    v = _validate.mse_inputs(A, y, w, "sum", check_finite, intercept=b)
    if s is not None:
        _validate.check_sample_weight_shape(s, v.A.shape[0], v.A.shape)
        v = v._replace(s=np.ascontiguousarray(s, dtype=np.float64))
    return _dispatch(v, backend)


def _finish_b(gb: np.ndarray, v: _validate.MSEInputs) -> float | np.ndarray:
    """The intercept's gradient shaped like the intercept: a float for a scalar b, else (K,)."""
    if v.b_shape == ():
        return float(np.sum(gb))  # one b shared by the K outputs: the sum of their gradients
    return gb if gb.dtype == v.dtype else gb.astype(v.dtype)


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
    sample_weight: Any = None,
    intercept: Any = None,
    alpha: float = 0.0,
    out: np.ndarray | None = None,
    check_finite: bool = False,
    backend: str | None = None,
) -> tuple[float, Any]:
    r"""Loss and gradient of the linear-model MSE from one fused pass over A.

    The model ``y ≈ A w + b``: with residuals ``r = y - A w - b``, sample
    weights s (all 1 by default) and ridge coefficient alpha,

    * ``'mean'``: ``loss = sum_ik s_i r_ik^2 / (K sum_i s_i) + alpha sum w^2``
      (``(1/(N K)) sum_ik r_ik^2`` without weights);
    * ``'sum'``:  ``loss = sum_ik s_i r_ik^2 + alpha sum w^2``;
    * ``grad_w[j, k] = -2 c sum_i a_ij s_i r_ik + 2 alpha w_jk`` and
      ``grad_b[k] = -2 c sum_i s_i r_ik``, with c the reduction's factor
      (``1/(K sum_i s_i)`` or 1).

    Parameters
    ----------
    A : array_like of shape (N, D)
        Inputs, read in place whatever their order or strides: C or Fortran
        order (``DataFrame.to_numpy()``, ``A.T``), row or column slices,
        negative strides, read-only arrays, ``np.memmap``; a pandas DataFrame
        works as it is.  Never written; copied only when the dtype must be
        converted (not float32/float64, or non-native byte order) or A is not
        aligned.  A ``scipy.sparse`` CSR or CSC matrix or array is read as it
        is (its stored entries once per pass, never densified; CSC forms
        ``A w`` column by column, an extra (N, K) array).
    y : array_like of shape (N,) or (N, K)
        Targets, 1-D when w is 1-D, 2-D when w is 2-D.
    w : array_like of shape (D,) or (D, K)
        Weights.
    reduction : {'mean', 'sum'}
        ``'mean'`` divides by ``K sum_i s_i`` (N*K without weights), ``'sum'`` does not.
    sample_weight : array_like of shape (N,), optional
        Non-negative weight of each row (finite, not all 0).  Integer weights
        give the loss and gradient of the data with each row repeated that many
        times.
    intercept : float or array_like of shape (K,), optional
        The intercept b added to every row's prediction, formed inside the pass
        (A is never copied or extended by a column of ones).  A scalar is one
        intercept shared by all K outputs.  When given, the gradient of b is
        returned as well.
    alpha : float
        Ridge coefficient, finite and >= 0: adds ``alpha sum w^2`` to the loss
        (either reduction) and ``2 alpha w`` to the gradient; never applied to
        the intercept.
    out : ndarray, optional
        Array shaped like w, of the result dtype, to write the gradient of w into.
    check_finite : bool
        Raise ``ValueError`` if any input holds NaN or Inf (otherwise they
        propagate into the result).
    backend : {'numba', 'cython', 'numpy'}, optional
        Overrides the current backend (see ``fastgrad.use_backend``).

    Returns
    -------
    loss : float
    grad : ndarray shaped like w, or ``(grad_w, grad_b)`` when ``intercept`` is given
        grad_w shaped like w; grad_b a float for a scalar intercept, else an
        array of shape (K,).  Arrays are float32 only when every array input is
        (a Python float intercept takes the arrays' dtype).

    Raises
    ------
    ValueError
        For shapes that do not match (the message names the argument and both
        shapes), negative, NaN or infinite sample weights, weights that are all
        0, a negative or non-finite alpha.
    TypeError
        For non-real inputs.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 2.], [3., 4.]]); y = np.array([1., 2.]); w = np.zeros(2)
    >>> loss, g = fastgrad.mse_loss_and_grad(A, y, w)
    >>> loss, g.tolist()
    (2.5, [-7.0, -10.0])

    A weighted ridge fit with an intercept (the second row counts twice):

    >>> loss, (gw, gb) = fastgrad.mse_loss_and_grad(
    ...     A, y, w, sample_weight=[1., 2.], intercept=0.5, alpha=0.1)
    >>> round(loss, 6), np.round(gw, 6).tolist(), round(gb, 6)
    (1.583333, [-6.333333, -8.666667], -2.333333)
    """
    return _loss_and_grad(A, y, w, reduction, out, check_finite, backend, sample_weight, intercept, alpha)


def _loss_and_grad(A, y, w, reduction, out, check_finite, backend, sample_weight=None, intercept=None,
                   alpha=0.0) -> tuple[float, Any]:
    """Validate once, run the fused kernel, shape the gradient (shared by the three functions)."""
    if (
        out is None and sample_weight is None and intercept is None and type(alpha) is float and alpha == 0.0
        and _validate.is_plain_vector_problem(A, y, w, reduction, check_finite)
        and A.size < _config.PARALLEL_MIN_WORK
    ):
        # tiny, valid, no conversion needed: one kernel call does everything
        return _config.kernels("mse", backend).loss_grad_vec(A, y, w)
    inputs = _validate.mse_sparse_inputs if _validate.is_sparse(A) else _validate.mse_inputs
    v = inputs(A, y, w, reduction, check_finite, sample_weight=sample_weight, intercept=intercept, alpha=alpha)
    if out is not None:
        _validate.check_out(out, v.w_shape, v.dtype)
    loss, grad, gb = _dispatch(v, backend)
    g = _finish(grad, v, out)
    if gb is None:
        return float(loss), g
    return float(loss), (g, _finish_b(gb, v))


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
) -> Any:
    r"""Gradient of the linear-model MSE wrt w: ``g_jk = -(2/(N K)) sum_i a_ij (y_ik - sum_l a_il w_lk)``.

    The matrix form ``dW = -(2/N) A^T (Y - A W)``, computed in one fused pass over A
    (each row's residual is accumulated into the gradient at once, or, for a
    Fortran-order A, each tile of rows' residuals while the tile is in cache;
    extra memory O(D K), never O(N); A of any layout is read in place).  With
    ``sample_weight``, ``intercept`` and ``alpha`` the gradient of the model
    ``y ≈ A w + b`` described in :func:`mse_loss_and_grad`
    (``-2 c A^T S (Y - A W - b) + 2 alpha W``).  Parameters as
    :func:`mse_loss_and_grad`.

    Returns
    -------
    ndarray shaped like w (``out`` if given), or ``(grad_w, grad_b)`` when
    ``intercept`` is given (grad_b: a float for a scalar intercept, else (K,)).

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 2.], [3., 4.]]); y = np.array([1., 2.])
    >>> fastgrad.mse_grad(A, y, np.zeros(2)).tolist()
    [-7.0, -10.0]
    >>> gw, gb = fastgrad.mse_grad(A, y, np.zeros(2), intercept=1.0)
    >>> gw.tolist(), gb
    ([-3.0, -4.0], -1.0)
    """
    return _loss_and_grad(A, y, w, reduction, out, check_finite, backend, sample_weight, intercept, alpha)[1]


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
) -> float:
    r"""Linear-model MSE: ``(1/(N K)) sum_ik (y_ik - sum_j a_ij w_jk)^2`` (or the sum).

    With ``sample_weight``, ``intercept`` and ``alpha``: the loss of the model
    ``y ≈ A w + b``, ``sum_ik s_i r_ik^2 / (K sum_i s_i) + alpha sum w^2``
    (see :func:`mse_loss_and_grad`).  Parameters as :func:`mse_loss_and_grad`.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> fastgrad.mse_loss([[1., 2.], [3., 4.]], [1., 2.], [0., 0.])
    2.5
    >>> fastgrad.mse_loss([[1., 2.], [3., 4.]], [1., 2.], [0., 0.], sample_weight=[3., 1.])
    1.75
    """
    return _loss_and_grad(A, y, w, reduction, None, check_finite, backend, sample_weight, intercept, alpha)[0]


class MSEObjective:
    """The MSE of a fixed linear least-squares problem as a function of its coefficients.

    Methods take the coefficients first, so that
    ``scipy.optimize.minimize(obj.loss_and_grad, coef0, jac=True)`` works as-is;
    they may arrive flattened (scipy ravels them).  Without an intercept the
    coefficients are w, reshaped to (D,) or (D, K).  With ``fit_intercept=True``
    they are packed flat, w first, as scikit-learn's ``LinearModelLoss`` does:
    ``coef = [w.ravel(), b]`` with b one intercept per output (K of them, 1
    for a 1-D y), and ``grad`` returns the gradient packed the same way.

    Parameters
    ----------
    A : array_like of shape (N, D), or a scipy.sparse CSR/CSC matrix or array
    y : array_like of shape (N,) or (N, K)
    reduction : {'mean', 'sum'}
    sample_weight : array_like of shape (N,), optional
        Non-negative row weights (see :func:`mse_loss_and_grad`).
    alpha : float
        Ridge coefficient ``alpha sum w^2``, never applied to the intercept.
    fit_intercept : bool
        Fit ``y ≈ A w + b``: the coefficients carry b after w.
    backend : str, optional

    Attributes
    ----------
    w_shape : tuple
        The shape of w: (D,) or (D, K).
    n_coef : int
        The length of the flat coefficient vector: ``D K`` (+ K with an intercept).

    Examples
    --------
    >>> import numpy as np, scipy.optimize, fastgrad
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(50, 3)); y = A @ [1., -2., 3.]
    >>> obj = fastgrad.MSEObjective(A, y)
    >>> res = scipy.optimize.minimize(obj.loss_and_grad, np.zeros(3), jac=True)
    >>> np.round(res.x, 6).tolist()
    [1.0, -2.0, 3.0]

    ``hessp`` and ``hess`` serve Newton-type methods (the Hessian is constant):

    >>> res = scipy.optimize.minimize(obj.loss_and_grad, np.zeros(3), jac=True, hessp=obj.hessp,
    ...                               method="trust-ncg", options={"gtol": 1e-10})
    >>> np.round(res.x, 6).tolist()
    [1.0, -2.0, 3.0]

    With an intercept the coefficients are ``[w, b]``:

    >>> obj = fastgrad.MSEObjective(A, y + 5.0, fit_intercept=True)
    >>> res = scipy.optimize.minimize(obj.loss_and_grad, np.zeros(obj.n_coef), jac=True, hessp=obj.hessp,
    ...                               method="trust-ncg", options={"gtol": 1e-10})
    >>> np.round(res.x, 6).tolist()
    [1.0, -2.0, 3.0, 5.0]
    """

    def __init__(self, A: Any, y: Any, *, reduction: str = "mean", sample_weight: Any = None,
                 alpha: float = 0.0, fit_intercept: bool = False, backend: str | None = None):
        _validate.check_choice(reduction, "reduction", ("mean", "sum"))
        if not isinstance(fit_intercept, bool | np.bool_):
            raise TypeError(f"fit_intercept must be True or False, got {fit_intercept!r}")
        if backend is not None:
            _config.resolve_backend(backend)
        y = _validate.as_real(y, "y")
        _validate.check_ndim(y, "y", (1, 2), "1-D (N,) or 2-D (N, K)")
        sparse = _validate.is_sparse(A)
        A_real = A if sparse else _validate.as_real(A, "A")
        D = A_real.shape[1] if A_real.ndim == 2 else 0
        K = 1 if y.ndim == 1 else y.shape[1]
        w_shape: tuple[int, ...] = (D,) if y.ndim == 1 else (D, K)
        # every check of the functions, once: shapes, weights, alpha
        inputs = _validate.mse_sparse_inputs if sparse else _validate.mse_inputs
        v = inputs(A_real, y, np.zeros(w_shape), reduction, sample_weight=sample_weight,
                   intercept=np.zeros(K) if fit_intercept else None, alpha=alpha)
        self.A = A_real  # read in place by the kernels, whatever its layout
        self.y = y
        self.reduction = reduction
        self.sample_weight = v.s
        self.alpha = v.alpha
        self.fit_intercept = bool(fit_intercept)
        self.backend = backend
        self.w_shape = w_shape
        self.n_coef = D * K + (K if fit_intercept else 0)
        self._v = v
        self._u: np.ndarray | None = None

    def _split(self, coef: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``(w shaped w_shape, b (K,) or None)`` from the coefficients (flat or shaped like w)."""
        coef = _validate.as_real(coef, "coef")
        if coef.size != self.n_coef:
            what = ("coefficients [w, b] of length" if self.fit_intercept
                    else "weights of shape")
            want = self.n_coef if self.fit_intercept else self.w_shape
            raise ValueError(f"coef has {coef.size} elements but the problem has {what} {want}")
        if not self.fit_intercept:
            return coef.reshape(self.w_shape), None
        flat = coef.reshape(-1)
        nw = self.n_coef - self._v.Y.shape[1]
        return flat[:nw].reshape(self.w_shape), flat[nw:]

    def _run(self, coef: Any) -> tuple[float, np.ndarray]:
        """Loss and the gradient in the shape the coefficients came in, from one pass."""
        w, b = self._split(coef)
        D = w.shape[0]
        b64 = None if b is None else np.array(b, dtype=np.float64)
        sparse = isinstance(self._v.A, _validate.SparseA)
        dtype = _validate.result_dtype(self._v.A.data if sparse else self._v.A, self._v.Y, w)
        if sparse:  # the sparse kernels take W (D, K)
            K = self._v.Y.shape[1]
            v = self._v._replace(W=np.array(w.reshape(D, K), dtype=np.float64, order="C"), b=b64, dtype=dtype)
        else:
            WT = w.reshape(1, D).astype(np.float64) if w.ndim == 1 else np.array(w.T, dtype=np.float64, order="C")
            v = self._v._replace(WT=WT, b=b64, dtype=dtype)
        loss, grad, gb = _dispatch(v, self.backend)
        grad = grad.reshape(self.w_shape).astype(v.dtype, copy=False)
        if b is None:
            return float(loss), (grad.reshape(np.shape(coef)) if np.ndim(coef) == 1 else grad)
        return float(loss), np.concatenate([grad.reshape(-1), gb.astype(v.dtype, copy=False)])

    def loss(self, coef: Any) -> float:
        """The loss at the coefficients."""
        return self._run(coef)[0]

    def grad(self, coef: Any) -> np.ndarray:
        """The gradient at the coefficients, in the shape they were given in (packed with an intercept)."""
        return self._run(coef)[1]

    def loss_and_grad(self, coef: Any) -> tuple[float, np.ndarray]:
        """``(loss, grad)`` at the coefficients from one pass, grad as in :meth:`grad`."""
        return self._run(coef)

    def _column_sums(self) -> np.ndarray:
        """``u = A^T S 1`` (D,) float64, the Hessian's w-b coupling; formed once (one BLAS product)."""
        if self._u is None:
            weights = np.ones(self.A.shape[0]) if self._v.s is None else self._v.s
            if _validate.is_sparse(self.A):
                self._u = np.asarray(self.A.T @ weights, dtype=np.float64).reshape(-1)
            else:
                self._u = np.asarray(self.A, dtype=np.float64).T @ weights
        return self._u

    def hessp(self, coef: Any, p: Any) -> np.ndarray:
        """The Hessian (constant: the loss is quadratic) times p, p packed like the coefficients.

        Per output k, ``H_ww = 2 c A^T S A + 2 alpha I`` (:func:`fastgrad.mse_hessp`,
        one pass over A), and with an intercept ``H_wb = 2 c A^T S 1``,
        ``H_bb = 2 c sum_i s_i``, c the reduction's factor.  ``A^T S 1`` is formed
        once, by one BLAS product, and kept.  ``coef`` is not used (H does not
        depend on it) but taken, as ``scipy.optimize.minimize(hessp=...)`` passes it.
        """
        from .mse_second_order import mse_hessp

        self._split(coef)  # the same checks as the other methods
        P, pb = self._split(p)
        Hp = mse_hessp(self.A, P, sample_weight=self._v.s, alpha=self.alpha, reduction=self.reduction,
                       backend=self.backend).reshape(P.shape[0], self._v.Y.shape[1])
        if pb is None:
            return Hp.reshape(np.shape(p)) if np.ndim(p) == 1 else Hp.reshape(self.w_shape)
        c2 = 2.0 * self._v.scale
        u = self._column_sums()
        P2 = np.asarray(P, dtype=np.float64).reshape(P.shape[0], self._v.Y.shape[1])
        Hp = Hp + c2 * np.outer(u, pb)
        hb = c2 * (u @ P2) + c2 * self._total_weight() * np.asarray(pb, dtype=np.float64)
        return np.concatenate([Hp.reshape(-1), hb])

    def hess(self, coef: Any) -> np.ndarray:
        """The (n_coef, n_coef) Hessian of the packed coefficients (constant: the loss is quadratic).

        ``kron(H_k, I_K)`` over w (w raveled in C order, outputs uncoupled), with
        ``H_k = 2 c A^T S A + 2 alpha I`` (:func:`fastgrad.mse_hessian`), and with
        an intercept the rows and columns of b: ``2 c kron(A^T S 1, I_K)`` and
        ``2 c sum_i s_i I_K``.
        """
        from .mse_second_order import mse_hessian

        self._split(coef)
        K = self._v.Y.shape[1]
        D = self.w_shape[0]
        c = self._v.scale
        H1 = mse_hessian(self.A, sample_weight=self._v.s, reduction="sum").astype(np.float64, copy=False)
        Hk = c * H1 + (2.0 * self.alpha) * np.eye(D)  # mse_hessian's 'sum' is 2 A^T S A
        Hw = Hk if K == 1 else np.kron(Hk, np.eye(K))
        if not self.fit_intercept:
            return Hw
        n = self.n_coef
        H = np.empty((n, n))
        H[:D * K, :D * K] = Hw
        E = np.kron((2.0 * c) * self._column_sums()[:, None], np.eye(K))
        H[:D * K, D * K:] = E
        H[D * K:, :D * K] = E.T
        H[D * K:, D * K:] = (2.0 * c * self._total_weight()) * np.eye(K)
        return H

    def _total_weight(self) -> float:
        return float(self._v.A.shape[0]) if self._v.s is None else float(np.sum(self._v.s))

    __call__ = loss

    def __repr__(self) -> str:
        extra = "".join([
            ", sample_weight=..." if self.sample_weight is not None else "",
            f", alpha={self.alpha!r}" if self.alpha else "",
            ", fit_intercept=True" if self.fit_intercept else "",
        ])
        return f"MSEObjective(A: {self.A.shape}, y: {self.y.shape}, reduction={self.reduction!r}{extra})"


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

    so each perturbed loss costs O(N) (O(N K) with the other outputs' sums); each
    row's two perturbed squared residuals are formed and their difference summed
    row by row (the losses' common part cancels exactly), so the error does not
    grow with N.  The whole gradient costs O(N D K), not O(N D^2 K); parallel over the weights (column
    bands of A, bitwise identical for every thread count).

    Parameters
    ----------
    A : array_like of shape (N, D)
    y : array_like of shape (N,) or (N, K)
    w : array_like of shape (D,) or (D, K)
        Validated as :func:`fastgrad.mse_grad` does (one shared validation layer).
    h : float or array_like of w's shape, optional
        Absolute step(s), finite and > 0; default ``c * max(1, |w_jk|)`` with c
        as in :func:`numgrad` for float64, whatever the inputs' dtype: the
        weights are perturbed and the losses formed in float64.  The step used
        is the representable ``(w + h) - w`` (float64).
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
    steps = default_steps(w64, h, method, False, xname="w")
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
