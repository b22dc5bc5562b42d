r"""The numpy backend of the neural-network family, and the statement of its protocol.

Every backend module of the ``nn`` family (``fastgrad._numba.nn``,
``fastgrad._cython.nn``, this one) exports these functions with these
positional arguments: the inputs, the outputs (written in place; the passes
marked *in place* overwrite their first input), ``n_threads`` last.  Codes:
``act`` from ``fastgrad._config.ACTIVATION_CODES``, ``kind`` from
``fastgrad._config.LOSS_CODES``.  Row reductions use the fixed partition
``fastgrad._config.row_blocks(N)`` inside the backend (bitwise identical for
every ``n_threads``); ``n_threads == 1`` runs without a thread pool.

Streaming passes (C-contiguous arrays of one dtype, float32 or float64;
``labels`` intp in [0, C)):

* ``dw_db(X, dZ, dW, db, n_threads)``: ``dW = X^T dZ`` (D, C), ``db = sum_i dZ_i`` (C,);
* ``bias_grad(dZ, db, n_threads)``: ``db = sum_i dZ_i``;
* ``bias_activation(Z, b, act, n_threads)``: ``Z <- sigma(Z + b)`` in place;
* ``loss_labels(Z, b, labels, scale, db, n_threads) -> loss``: softmax
  cross-entropy, ``loss = scale sum_i (lse(z_i + b) - (z + b)_{i, y_i})``; Z
  (the logits without b) becomes ``dL/dZ`` in place, ``db = sum_i dL/dz_i``;
* ``loss_targets(Z, b, Y, kind, scale, db, n_threads) -> loss``: MSE
  (``scale sum (z + b - y)**2``) or cross-entropy with dense targets; as above;
* ``activation_backward(dA, A, act, db, n_threads)``: ``dA <- dA o sigma'(A)``
  in place (sigma' from the value A), ``db = sum_i dA_i`` of the result.

Whole operations (what ``fastgrad.nn`` calls; every dimension > 0; X, W, dZ of
any layout, the rest C-contiguous; ``n_threads`` is the most threads any pass
may use — each pass takes one thread below its own threshold):

* ``dense_forward(X, W, b, out, n_threads)``: ``out = X W + b``;
* ``dense_backward(X, W, dZ, dX, dW, db, n_threads)``: ``dZ W^T``, ``X^T dZ``, ``sum_i dZ_i``;
* ``mlp2(X, Y, W1, b1, W2, b2, act, kind, dW1, db1, dW2, db2, n_threads) -> loss``:
  the 2-layer network's loss (torch's means) and gradients; Y intp labels (N,)
  or targets (N, C).

Here every function computes in float64 with :mod:`fastgrad.reference` (the
test oracle) and writes the result into the outputs' dtype; ``n_threads`` is
accepted and ignored (numpy/BLAS choose their own threads).  The whole
operations are the reference functions themselves.  The loss passes compute
torch's mean (1/(N C) for MSE, 1/N for cross-entropy) and multiply by ``scale``
over that mean when ``scale`` is another number.
"""

from __future__ import annotations

import numpy as np

from .. import _config, reference

__all__ = [
    "dw_db",
    "bias_grad",
    "bias_activation",
    "loss_labels",
    "loss_targets",
    "activation_backward",
    "dense_forward",
    "dense_backward",
    "mlp2",
]

_ACTIVATION_NAMES = {code: name for name, code in _config.ACTIVATION_CODES.items()}
_LOSS_NAMES = {code: name for name, code in _config.LOSS_CODES.items()}


# ---------------------------------------------------------------------------
# Streaming passes


def dw_db(X, dZ, dW, db, n_threads):
    """Protocol: ``dW = X^T dZ``, ``db = sum_i dZ_i`` into dW (D, C), db (C,)."""
    dW[...], db[...] = reference.dense_param_grads(X, dZ)


def bias_grad(dZ, db, n_threads):
    """Protocol: ``db = sum_i dZ_i`` into db (C,)."""
    db[...] = dZ.astype(np.float64).sum(axis=0)


def bias_activation(Z, b, act, n_threads):
    """Protocol: ``Z <- sigma(Z + b)`` in place."""
    Z[...] = reference.nn_activation(Z.astype(np.float64) + b, _ACTIVATION_NAMES[act])


def _loss(Z, b, Y, loss, labels, scale, db):
    """Z (logits without b) -> dL/dZ in place, db = sum_i dz_i; returns the loss."""
    N, C = Z.shape
    val, dZ = reference.nn_loss(Z.astype(np.float64) + b, Y, loss, labels)
    mean = 1.0 / (N * C) if loss == "mse" else 1.0 / N
    if scale != mean:
        val, dZ = val * (scale / mean), dZ * (scale / mean)
    Z[...] = dZ
    db[...] = dZ.sum(axis=0)
    return float(val)


def loss_labels(Z, b, labels, scale, db, n_threads):
    """Protocol: softmax cross-entropy with integer labels; Z becomes dL/dZ; returns the loss."""
    return _loss(Z, b, labels, "softmax_cross_entropy", True, scale, db)


def loss_targets(Z, b, Y, kind, scale, db, n_threads):
    """Protocol: MSE or cross-entropy with dense targets (``kind``); Z becomes dL/dZ; returns the loss."""
    return _loss(Z, b, Y, _LOSS_NAMES[kind], False, scale, db)


def activation_backward(dA, A, act, db, n_threads):
    """Protocol: ``dA <- dA o sigma'(A)`` in place, db = sum_i of the result."""
    dZ = dA.astype(np.float64) * reference.nn_activation_derivative_from_value(A, _ACTIVATION_NAMES[act])
    dA[...] = dZ
    db[...] = dZ.sum(axis=0)


# ---------------------------------------------------------------------------
# Whole operations: the reference functions


def dense_forward(X, W, b, out, n_threads):
    """Protocol: ``out = X W + b``."""
    out[...] = reference.dense_forward(X, W, b)


def dense_backward(X, W, dZ, dX, dW, db, n_threads):
    """Protocol: ``(dX, dW, db) = (dZ W^T, X^T dZ, sum_i dZ_i)``."""
    dX[...], dW[...], db[...] = reference.dense_backward(X, W, dZ)


def mlp2(X, Y, W1, b1, W2, b2, act, kind, dW1, db1, dW2, db2, n_threads):
    """Protocol: the 2-layer network's loss (returned) and gradients into dW1, db1, dW2, db2."""
    val, grads = reference.mlp2_loss_grad(X, Y, W1, b1, W2, b2, _ACTIVATION_NAMES[act], _LOSS_NAMES[kind],
                                          Y.ndim == 1)
    for out, g in zip((dW1, db1, dW2, db2), grads, strict=True):
        out[...] = g
    return val
