r"""Gradient-descent training of a linear least-squares model.

``fit_linear`` runs plain gradient descent ``w <- w - lr * g`` on the MSE
``L(w) = (1/(N K)) sum_ik (y_ik - sum_j a_ij w_jk)^2`` with either the analytic
gradient (``fastgrad.mse_loss_and_grad``: one fused pass over A per epoch) or
central differences (``fastgrad.mse_numgrad``), recording the loss after every
update.  The gradient is derived in docs/derivations.md, "MSE gradient of a
linear model".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _validate
from .mse import mse_loss, mse_loss_and_grad

__all__ = ["FitResult", "fit_linear"]

_GRADS = ("analytic", "central")


class FitResult(NamedTuple):
    """Result of :func:`fit_linear`.

    Attributes
    ----------
    w : ndarray of shape (D,) or (D, K)
        The weights after the last update.
    losses : ndarray of shape (n + 1,), float64
        ``losses[0]`` is the loss at w0, ``losses[k]`` the loss after k updates;
        n = epochs unless the callback stopped the run early.
    """

    w: np.ndarray
    losses: np.ndarray


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError(
            "progress=True needs tqdm, the optional extra 'progress': pip install fastgrad[progress]"
        ) from exc
    return tqdm


def _stops(answer: Any) -> bool:
    """A callback's answer stops the run when it is true (None and false values go on)."""
    return answer is not None and bool(answer)


def fit_linear(
    A: Any,
    y: Any,
    *,
    lr: float = 0.01,
    epochs: int = 1000,
    grad: str = "analytic",
    h: Any = None,
    w0: Any = None,
    callback: Callable[[int, np.ndarray, float], bool | None] | None = None,
    progress: bool = False,
    check_finite: bool = False,
    backend: str | None = None,
) -> FitResult:
    r"""Fit ``y ~ A w`` by gradient descent on the mean squared error.

    Each epoch makes one update ``w <- w - lr * g(w)`` with
    ``g_jk = -(2/(N K)) sum_i a_ij (y_ik - sum_l a_il w_lk)``.

    An earlier draft of fastgrad's derivation notes wrote the central difference as
    ``(L(w+h) - L(w-h)) / 2*h``, which Python reads as
    ``((L(w+h) - L(w-h)) / 2) * h = h**2 * g``: its loop is gradient descent with
    learning rate ``h**2`` (0.01 for h = 0.1).  Here the difference is divided by
    2h and the step is ``lr`` — ``fit_linear(A, y, lr=0.01, grad='central',
    h=0.1, w0=W)`` reproduces that draft's loss trace (docs/derivations.md,
    "Slips in the original notes").

    Parameters
    ----------
    A : array_like of shape (N, D)
    y : array_like of shape (N,) or (N, K)
    lr : float
        Learning rate, finite and > 0.
    epochs : int
        Number of updates, >= 0.
    grad : {'analytic', 'central'}
        ``'analytic'``: ``fastgrad.mse_loss_and_grad`` (loss and gradient from
        one pass over A).  ``'central'``: ``fastgrad.mse_numgrad(A, y, w, h=h)``,
        central differences ``(L(w + h e_j) - L(w - h e_j)) / (2h)``.
    h : float, optional
        Step of the central differences (``mse_numgrad``'s default if None);
        only with ``grad='central'``.
    w0 : array_like of shape (D,) or (D, K), optional
        Starting weights (shape (D,) when y is 1-D, (D, K) when y is 2-D);
        zeros if None.  Never written.
    callback : callable, optional
        ``callback(epoch, w, loss)`` after every update: epoch = k (1-based),
        w a copy of the weights after k updates, loss = ``losses[k]``.
        Returning a true value (``True``, ``np.True_``, 1) stops the run: the
        result then holds those weights and ``losses`` has length k + 1
        instead of epochs + 1.  ``None`` and false values go on.
    progress : bool
        Show a tqdm progress bar (on stderr) with the current loss; needs the
        optional extra ``progress`` (``pip install fastgrad[progress]``).
    check_finite : bool
        Raise ``ValueError`` if A, y or w0 hold NaN or Inf.
    backend : {'numba', 'cython', 'numpy'}, optional
        Backend of the loss and gradient kernels.

    Returns
    -------
    FitResult
        ``(w, losses)``; ``losses`` float64 of length epochs + 1 (``losses[0]``
        at w0, ``losses[k]`` after k updates).  w is float32 only when A, y and
        w0 all are.  NaN/Inf (a diverging run) propagate into the losses, and a
        ``RuntimeWarning`` naming ``lr`` says the run diverged.

    Raises
    ------
    ValueError
        lr not finite or <= 0; epochs < 0; unknown grad; h given with
        grad='analytic' or not finite and > 0; shape mismatches between A, y, w0.
    ImportError
        progress=True without tqdm.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 0.], [0., 2.], [1., 1.]]); y = A @ np.array([3., -1.])
    >>> res = fastgrad.fit_linear(A, y, lr=0.1, epochs=500)
    >>> np.round(res.w, 6).tolist(), len(res.losses)
    ([3.0, -1.0], 501)
    """
    lr = _validate.check_learning_rate(lr)
    epochs = _validate.check_positive_int(epochs, "epochs", minimum=0)
    _validate.check_choice(grad, "grad", _GRADS)
    if h is not None:
        if grad != "central":
            raise ValueError("h is the step of the central differences; it needs grad='central'")
        _validate.check_step(h)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    A_ = _validate.as_real(A, "A")
    y_ = _validate.as_real(y, "y")
    _validate.check_ndim(A_, "A", (2,), "2-D (N, D)")
    _validate.check_ndim(y_, "y", (1, 2), "1-D (N,) or 2-D (N, K)")
    D = A_.shape[1]
    w_shape = (D,) if y_.ndim == 1 else (D, y_.shape[1])
    if w0 is None:
        w = np.zeros(w_shape, dtype=_validate.result_dtype(A_, y_))
    else:
        w0_ = _validate.as_real(w0, "w0")
        if w0_.shape != w_shape:
            raise ValueError(f"w0 has shape {w0_.shape} but A {A_.shape} and y {y_.shape} need weights "
                             f"of shape {w_shape}")
        w = np.array(w0_, dtype=_validate.result_dtype(A_, y_, w0_))  # a private copy
    _validate.mse_inputs(A_, y_, w, "mean", check_finite)  # every shape rule, before any work
    progress = _validate.check_flag(progress, "progress")
    A_, y_ = _validate.as_contiguous(A_), _validate.as_contiguous(y_)

    if grad == "central":
        from .mse import mse_numgrad

        def step(w: np.ndarray) -> tuple[float, np.ndarray]:
            return (mse_loss(A_, y_, w, backend=backend),
                    np.asarray(mse_numgrad(A_, y_, w, h=h, backend=backend), dtype=w.dtype))
    else:

        def step(w: np.ndarray) -> tuple[float, np.ndarray]:
            return mse_loss_and_grad(A_, y_, w, backend=backend)

    losses = np.empty(epochs + 1)
    bar = _tqdm()(total=epochs, desc="fit_linear", unit="epoch") if progress else None
    try:
        loss, g = step(w)
        losses[0] = loss
        n = epochs
        for k in range(1, epochs + 1):
            w -= lr * g
            if grad == "central" and k == epochs:
                loss = mse_loss(A_, y_, w, backend=backend)  # no gradient needed after the last update
            else:
                loss, g = step(w)
            losses[k] = loss
            if bar is not None:
                bar.update(1)
                if k % 50 == 0 or k == epochs:
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if callback is not None and _stops(callback(k, w.copy(), loss)):
                n = k
                break
    finally:
        if bar is not None:
            bar.close()
    if not np.isfinite(losses[n]) and np.isfinite(losses[0]):
        warnings.warn(
            f"fit_linear diverged: the loss became {losses[n]} after {n} epochs (it was {losses[0]:.4g} at w0); "
            f"lr={lr:g} is too large for this problem, try a smaller lr",
            RuntimeWarning, stacklevel=2,
        )
    return FitResult(w, losses[: n + 1].copy() if n < epochs else losses)
