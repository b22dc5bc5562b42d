"""The plain-numpy backend: the reference every kernel is tested against.

Each function here takes inputs already validated by ``fastgrad._validate``
and computes in float64 with ordinary numpy expressions (BLAS where the math
is a matrix product).  They are also what ``backend='numpy'`` runs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mse_loss_grad", "mse_model_loss_grad", "mse_hessp", "mse_loss_grad_sparse"]


def mse_loss_grad(A: np.ndarray, Y: np.ndarray, WT: np.ndarray, scale: float) -> tuple[float, np.ndarray]:
    r"""Loss and gradient of the linear-model MSE with numpy.

    ``R = Y - A W``, ``loss = scale * sum(R**2)``, ``G = -2 scale A^T R``
    (for the mean over N samples, dW = -(2/N) A^T (Y - A W); docs/derivations.md,
    "MSE gradient of a linear model"); returns ``(loss, G)`` with G (D, K) float64.
    """
    loss, G, _ = mse_model_loss_grad(A, Y, WT, None, None, scale)
    return loss, G


def mse_model_loss_grad(A: np.ndarray, Y: np.ndarray, WT: np.ndarray, s: np.ndarray | None,
                        b: np.ndarray | None, scale: float) -> tuple[float, np.ndarray, np.ndarray]:
    r"""Loss and gradients of the weighted linear model with an intercept, with numpy.

    ``R = Y - A W - b`` (b (K,) broadcast over the rows; left out when None),
    ``S = diag(s)`` (the identity when s is None):
    ``loss = scale * sum_ik s_i r_ik**2``, ``G = -2 scale A^T S R`` (D, K),
    ``gb = -2 scale sum_i s_i r_i`` (K,) (the intercept's gradient, also at b = 0 when b is None).
    """
    A64 = A.astype(np.float64, copy=False)
    R = Y.astype(np.float64, copy=False) - A64 @ WT.T
    if b is not None:
        R -= b
    Q = R if s is None else s[:, None] * R  # the weighted residuals S R
    loss = scale * float(np.sum(Q * R))
    G = (-2.0 * scale) * (A64.T @ Q)
    gb = (-2.0 * scale) * np.sum(Q, axis=0)
    return loss, G, gb


# ---------------------------------------------------------------------------
# Kronecker / vec Jacobians (docs/derivations.md, "Kronecker and vec Jacobians")


def kron(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    r"""``A ⊗ B`` of two 2-D arrays: ``[i mB + k, j nB + l] = a_ij b_kl`` (``np.kron``)."""
    return np.kron(A, B)


def jacobian_wx(x: np.ndarray, n: int, order_c: bool) -> np.ndarray:
    r"""∂(W x)/∂vec(W) for W (n, m): ``xᵀ ⊗ I_n`` (order F) or ``I_n ⊗ xᵀ`` (order C).

    ``J[i, a + b n]`` (F) or ``J[i, a m + b]`` (C) ``= δ_ia x_b``: x placed on the identity's
    support, exact zeros elsewhere even where x holds NaN or Inf (``np.kron`` would make NaN of
    ``0 * NaN``).
    """
    m = x.shape[0]
    J = np.zeros((n, n * m), dtype=x.dtype)
    i = np.arange(n)
    if order_c:
        J.reshape(n, n, m)[i, i, :] = x
    else:
        J.reshape(n, m, n)[i, :, i] = x
    return J


def kron_csr(P, Q):
    r"""CSR of ``P ⊗ Q`` for scipy.sparse factors (``scipy.sparse.kron``), sorted indices."""
    import scipy.sparse as sp

    out = sp.csr_array(sp.kron(P, Q, format="csr"))
    out.sort_indices()
    return out


# ---------------------------------------------------------------------------
# Neural-network gradients (docs/derivations.md, "Backpropagation through dense layers"):
# numpy, float64, BLAS products.

_NN_ACTS = ("identity", "sigmoid", "tanh", "relu")


def nn_activation(Z: np.ndarray, name: str) -> np.ndarray:
    """``sigma(Z)`` elementwise: identity, sigmoid (scipy's overflow-safe expit), tanh, relu."""
    from scipy.special import expit

    Z = np.asarray(Z, dtype=np.float64)
    if name == "sigmoid":
        return expit(Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "relu":
        return np.maximum(Z, 0.0)
    return Z.copy()


def nn_activation_derivative(Z: np.ndarray, name: str) -> np.ndarray:
    """``sigma'(Z)`` elementwise, from Z: 1, ``s(1-s)``, ``1 - tanh**2``, ``[Z > 0]``."""
    from scipy.special import expit

    Z = np.asarray(Z, dtype=np.float64)
    if name == "sigmoid":
        s = expit(Z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(Z) ** 2
    if name == "relu":
        return (Z > 0).astype(np.float64)
    return np.ones_like(Z)


def nn_activation_derivative_from_value(A: np.ndarray, name: str) -> np.ndarray:
    """``sigma'(Z)`` from the activation's value ``A = sigma(Z)``: 1, ``A(1-A)``, ``1 - A**2``, ``[A > 0]``.

    Bitwise equal to :func:`nn_activation_derivative` of Z when ``A = nn_activation(Z)``.
    """
    A = np.asarray(A, dtype=np.float64)
    if name == "sigmoid":
        return A * (1.0 - A)
    if name == "tanh":
        return 1.0 - A ** 2
    if name == "relu":
        return (A > 0).astype(np.float64)
    return np.ones_like(A)


def dense_param_grads(X: np.ndarray, dZ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dW, db) = (X^T dZ, sum_i dZ_i)`` (db: the column sums of dZ), float64."""
    X64, dZ64 = X.astype(np.float64), dZ.astype(np.float64)
    return X64.T @ dZ64, dZ64.sum(axis=0)


def dense_forward(X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``Z = X W + b`` (b broadcast over the rows), float64."""
    return X.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)


def dense_backward(X: np.ndarray, W: np.ndarray, dZ: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dX, dW, db) = (dZ W^T, X^T dZ, sum_i dZ_i)`` (db: the column sums of dZ), float64."""
    X64, W64, dZ64 = (a.astype(np.float64) for a in (X, W, dZ))
    return dZ64 @ W64.T, X64.T @ dZ64, dZ64.sum(axis=0)


def nn_loss(Z: np.ndarray, Y: np.ndarray, loss: str, labels: bool) -> tuple[float, np.ndarray]:
    """Loss and dL/dZ of the network output Z (N, C), torch's default normalisation.

    mse: ``mean over N C of (Z - Y)**2``, ``dZ = 2 (Z - Y)/(N C)``.
    softmax_cross_entropy: ``-(1/N) sum_ik y_ik log softmax(Z)_ik`` (labels: one-hot
    of Y), ``dZ = (softmax(Z) sum_k y_ik - Y)/N``.
    """
    from scipy.special import log_softmax

    Z = np.asarray(Z, dtype=np.float64)
    N, C = Z.shape
    if loss == "mse":
        R = Z - Y
        return float(np.mean(R * R)), 2.0 * R / (N * C)
    T = np.zeros((N, C)) if labels else np.asarray(Y, dtype=np.float64)
    if labels:
        T[np.arange(N), Y] = 1.0
    logp = log_softmax(Z, axis=1)
    if labels:
        # the label's log-probability itself: a -inf logit of another class has
        # probability 0 and must not enter as 0 * (-inf) = NaN
        loss_val = float(0.0 - np.sum(logp[np.arange(N), Y]) / N)
    else:
        # classes with zero target weight do not enter the sum (0 * log 0 is 0 here)
        loss_val = float(-np.sum(T * np.where(T != 0, logp, 0.0)) / N)
    P = np.exp(logp)
    dZ = (P * T.sum(axis=1, keepdims=True) - T) / N
    # a row whose softmax is NaN (a +inf or NaN logit) is NaN in every entry, as the compiled
    # kernels give it (their 1 / sum_k e_ik is NaN for the whole row); its loss term is NaN too,
    # also where the +inf logit is another class than the target's (log_softmax gives -inf there)
    nan_rows = np.isnan(P).any(axis=1)
    dZ[nan_rows] = np.nan
    if nan_rows.any():
        loss_val = float("nan")
    return loss_val, dZ


def mlp2_loss_grad(X, Y, W1, b1, W2, b2, activation: str, loss: str, labels: bool):
    r"""Loss and gradients of ``L(sigma(X W1 + b1) W2 + b2, Y)`` with numpy (float64).

    Backprop in batch form (docs/derivations.md, "Backpropagation through dense
    layers"): ``dZ2 = dL/dZ2``, ``dW2 = A1^T dZ2``, ``db2 = sum_i dZ2_i``,
    ``dZ1 = (dZ2 W2^T) o sigma'(Z1)``, ``dW1 = X^T dZ1``, ``db1 = sum_i dZ1_i``.
    """
    X, W1, b1, W2, b2 = (np.asarray(a, dtype=np.float64) for a in (X, W1, b1, W2, b2))
    Z1 = X @ W1 + b1
    A1 = nn_activation(Z1, activation)
    Z2 = A1 @ W2 + b2
    loss_val, dZ2 = nn_loss(Z2, Y, loss, labels)
    dZ1 = (dZ2 @ W2.T) * nn_activation_derivative(Z1, activation)
    return loss_val, (X.T @ dZ1, dZ1.sum(axis=0), A1.T @ dZ2, dZ2.sum(axis=0))


# --- numerical differentiation (docs/derivations.md, "Limits and finite differences") ---

_MSE_NUMGRAD_OFFSETS = {"forward": (0.0, 1.0), "backward": (-1.0, 0.0), "central": (-1.0, 1.0),
                        "five-point": (-2.0, -1.0, 1.0, 2.0)}
#: the weights of the perturbed losses in each method's numerator, and its denominator q
_MSE_NUMGRAD_COEFFICIENTS = {"forward": ((-1.0, 1.0), 1.0), "backward": ((-1.0, 1.0), 1.0),
                             "central": ((-1.0, 1.0), 2.0), "five-point": ((1.0, -8.0, 8.0, -1.0), 12.0)}


def mse_numgrad(A: np.ndarray, Y: np.ndarray, WT: np.ndarray, HH: np.ndarray, method: str,
                scale: float) -> np.ndarray:
    r"""Numerical gradient of the linear-model MSE with numpy, residual reused.

    ``R = Y - A W``; the loss at ``w + o h e_jk`` is
    ``scale (sum_{k' != k} S_k' + sum_i (r_ik - o hh_kj a_ij)^2)`` with
    ``S_k = sum_i r_ik^2``.  The method's numerator ``sum_m c_m L(w + o_m h e_jk)``
    (forward ``L_+ - L_0``, backward ``L_0 - L_-``, central ``L_+ - L_-``,
    five-point ``L_-2 - 8 L_-1 + 8 L_+1 - L_+2``) is formed row by row, each
    row's weighted difference of its perturbed squared residuals summed over
    the rows (the common part cancels exactly), then divided by ``q h`` (q = 1,
    1, 2, 12); complex: ``scale Im sum_i (r_ik - i hh a_ij)^2 / hh``.  ``HH``
    (K, D) are the representable steps; G (D, K) float64.
    """
    A64 = A.astype(np.float64, copy=False)
    R = Y.astype(np.float64, copy=False) - A64 @ WT.T  # (N, K)
    H = HH.T  # (D, K)
    if method == "complex":
        return scale * np.sum(-2.0 * R[:, None, :] * (A64[:, :, None] * H[None]), axis=0) / H
    coefs, q = _MSE_NUMGRAD_COEFFICIENTS[method]
    rows = sum(c * (R[:, None, :] - o * (A64[:, :, None] * H[None])) ** 2
               for c, o in zip(coefs, _MSE_NUMGRAD_OFFSETS[method], strict=True))  # (N, D, K)
    return scale * np.sum(rows, axis=0) / (q * H)


# --- MSE second order and sparse A (docs/derivations.md, "MSE gradient of a linear model") ---


def mse_hessp(A, VT: np.ndarray, s: np.ndarray | None, scale: float, alpha: float) -> np.ndarray:
    r"""``H v = 2 scale A^T S (A v) + 2 alpha v`` with numpy (A dense or scipy.sparse); (D, K) float64."""
    V = VT.T
    T = A @ V if hasattr(A, "tocsr") else A.astype(np.float64, copy=False) @ V
    T = np.asarray(T, dtype=np.float64)
    if s is not None:
        T = s[:, None] * T
    return (2.0 * scale) * np.asarray(A.T @ T, dtype=np.float64) + (2.0 * alpha) * V


def mse_loss_grad_sparse(A, Y: np.ndarray, W: np.ndarray, s: np.ndarray | None, b: np.ndarray | None,
                         scale: float) -> tuple[float, np.ndarray, np.ndarray]:
    r"""Loss and gradients of the weighted MSE with a scipy.sparse A, with scipy's products.

    ``R = Y - A W - b``, ``loss = scale sum_ik s_i r_ik^2``, ``G = -2 scale A^T S R``,
    ``gb = -2 scale sum_i s_i r_i``; returns ``(loss, G (D, K), gb (K,))`` float64.
    """
    R = Y.astype(np.float64, copy=False) - np.asarray(A @ W, dtype=np.float64)
    if b is not None:
        R = R - b
    SR = R if s is None else s[:, None] * R
    loss = scale * float(np.sum(SR * R))
    G = (-2.0 * scale) * np.asarray(A.T @ SR, dtype=np.float64)
    return loss, G, (-2.0 * scale) * SR.sum(axis=0)
