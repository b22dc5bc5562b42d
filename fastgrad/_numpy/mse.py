"""The numpy backend of the MSE family: the kernel protocol over :mod:`fastgrad.reference`."""

from __future__ import annotations

import numpy as np

from .. import reference

__all__ = ["loss_grad", "loss_grad_vec"]


def loss_grad(A, Y, WT, scale, out, n_threads):
    """Protocol: loss and gradient into ``out`` (D, K) with numpy/BLAS; returns the loss."""
    loss, G = reference.mse_loss_grad(A, Y, WT, scale)
    out[...] = G
    return loss


def loss_grad_vec(A, y, w):
    """Protocol: ``(loss, g)`` for one output, y (N,), w (D,) float64, mean reduction."""
    N, D = A.shape
    out = np.empty((D, 1))
    loss = loss_grad(A, y.reshape((N, 1)), w.reshape((1, D)), 1.0 / N, out, 1)
    return loss, out.reshape(D)
