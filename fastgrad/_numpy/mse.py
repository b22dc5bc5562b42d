"""The numpy backend of the MSE family: the kernel protocol over :mod:`fastgrad.reference`."""

from __future__ import annotations

import numpy as np

from .. import reference

__all__ = ["loss_grad", "loss_grad_vec"]


def loss_grad(A, Y, WT, s, b, scale, out, gb, n_threads):
    """Protocol: loss and gradients into ``out`` (D, K) and ``gb`` (K,) with numpy/BLAS; returns the loss.

    ``r = y - A w - b``: ``out = -2 scale A^T S r``, ``gb = -2 scale sum_i s_i r_i``,
    loss ``scale sum_ik s_i r_ik**2`` (s None: unit weights; b None: no intercept).
    """
    loss, G, GB = reference.mse_model_loss_grad(A, Y, WT, s, b, scale)
    out[...] = G
    if gb is not None:
        gb[...] = GB
    return loss


def loss_grad_vec(A, y, w):
    """Protocol: ``(loss, g)`` for one output, y (N,), w (D,) float64, mean reduction."""
    N, D = A.shape
    out = np.empty((D, 1))
    loss = loss_grad(A, y.reshape((N, 1)), w.reshape((1, D)), None, None, 1.0 / N, out, None, 1)
    return loss, out.reshape(D)
