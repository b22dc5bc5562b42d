"""Naive loop twins of every kernel: the slowest, plainest statement of the math.

Each function is a direct transcription of the summation formula with Python
loops (float64 accumulation), used only on small inputs in the tests.  Families
append their twins below, one section each.
"""

from __future__ import annotations

import numpy as np

# --- MSE (seed 000) -------------------------------------------------------


def mse_loss_grad(A, y, w, reduction="mean"):
    """loss = s sum_ik r_ik^2, g_jk = -2 s sum_i a_ij r_ik, r_ik = y_ik - sum_l a_il w_lk."""
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    one_d = w.ndim == 1
    W = w.reshape(-1, 1) if one_d else w
    Y = y.reshape(-1, 1) if one_d else y
    N, D = A.shape
    K = W.shape[1]
    s = 1.0 / (N * K) if reduction == "mean" else 1.0
    loss = 0.0
    g = np.zeros((D, K))
    for i in range(N):
        for k in range(K):
            r_ik = Y[i, k]
            for l in range(D):
                r_ik -= A[i, l] * W[l, k]
            loss += r_ik * r_ik
            for j in range(D):
                g[j, k] += -2.0 * A[i, j] * r_ik
    return s * loss, (s * g).reshape(w.shape)
