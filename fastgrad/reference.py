"""The plain-numpy backend: the reference every kernel is tested against.

Each function here takes inputs already validated by ``fastgrad._validate``
and computes in float64 with ordinary numpy expressions (BLAS where the math
is a matrix product).  They are also what ``backend='numpy'`` runs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mse_loss_grad"]


def mse_loss_grad(A: np.ndarray, Y: np.ndarray, WT: np.ndarray, scale: float) -> tuple[float, np.ndarray]:
    r"""Loss and gradient of the linear-model MSE with numpy.

    ``R = Y - A W``, ``loss = scale * sum(R**2)``, ``G = -2 scale A^T R``
    (seed 000: dW = -(2/N) A^T (Y - A W)); returns ``(loss, G)`` with G (D, K)
    float64.
    """
    A64 = A.astype(np.float64, copy=False)
    R = Y.astype(np.float64, copy=False) - A64 @ WT.T
    loss = scale * float(np.sum(R * R))
    G = (-2.0 * scale) * (A64.T @ R)
    return loss, G
