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


# --- Kronecker / vec Jacobians (seeds 001, 003) and identities (seed 002) ----


def kron(A, B):
    """(A ⊗ B)[i mB + k, j nB + l] = a_ij b_kl, 1-D operands as rows (1-D result for two 1-D)."""
    A = np.asarray(A)
    B = np.asarray(B)
    one_d = A.ndim == 1 and B.ndim == 1
    A2 = A.reshape(1, -1) if A.ndim == 1 else A
    B2 = B.reshape(1, -1) if B.ndim == 1 else B
    mA, nA = A2.shape
    mB, nB = B2.shape
    out = np.zeros((mA * mB, nA * nB), dtype=np.result_type(A2, B2))
    for i in range(mA):
        for j in range(nA):
            for k in range(mB):
                for l in range(nB):
                    out[i * mB + k, j * nB + l] = A2[i, j] * B2[k, l]
    return out.reshape(-1) if one_d else out


def vec_index(a, b, shape, order):
    """Position of X[a, b] in vec(X): a + b m (order F) or a n + b (order C)."""
    m, n = shape
    return a + b * m if order == "F" else a * n + b


def jacobian_Wx(x, n, order="F"):
    """J[i, vec(a, b)] = δ_ia x_b for f = W x, W (n, m) (seed 001, 1.3.1)."""
    x = np.asarray(x, dtype=np.float64)
    m = x.size
    J = np.zeros((n, n * m))
    for i in range(n):
        for a in range(n):
            for b in range(m):
                J[i, vec_index(a, b, (n, m), order)] = x[b] if a == i else 0.0
    return J


def jacobian_AXB(A, B, order="F"):
    """J[vec(i, c), vec(a, b)] = a_ia b_bc for Y = A X B, X (m, n), Y (p, q)."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    p, m = A.shape
    n, q = B.shape
    J = np.zeros((p * q, m * n))
    for i in range(p):
        for c in range(q):
            for a in range(m):
                for b in range(n):
                    J[vec_index(i, c, (p, q), order), vec_index(a, b, (m, n), order)] = A[i, a] * B[b, c]
    return J


def matmul_jacobian(mats, wrt):
    """J[i, j, a, b] = ∂P_ij/∂(M_wrt)_ab by the product rule, summed term by term."""
    mats = [np.asarray(M, dtype=np.float64) for M in mats]
    r, s = mats[wrt].shape
    L = np.eye(mats[0].shape[0] if wrt else r)
    for M in mats[:wrt]:
        L = L @ M
    R = np.eye(s)
    for M in mats[wrt + 1:]:
        R = R @ M
    p, q = L.shape[0], R.shape[1]
    J = np.zeros((p, q, r, s))
    for i in range(p):
        for j in range(q):
            for a in range(r):
                for b in range(s):
                    # P_ij = sum_{c,d} L_ic M_cd R_dj, so ∂P_ij/∂M_ab = L_ia R_bj
                    J[i, j, a, b] = L[i, a] * R[b, j]
    return J


def numjac(f, X, h=None):
    """Central-difference Jacobian of an array-valued f: shape f(X).shape + X.shape (float64)."""
    X = np.array(X, dtype=np.float64)
    f0 = np.asarray(f(X), dtype=np.float64)
    J = np.zeros(f0.shape + X.shape)
    for idx in np.ndindex(X.shape):
        step = (np.finfo(np.float64).eps ** (1 / 3)) * max(1.0, abs(X[idx])) if h is None else h
        Xp = X.copy()
        Xm = X.copy()
        Xp[idx] += step
        Xm[idx] -= step
        J[(...,) + idx] = (np.asarray(f(Xp)) - np.asarray(f(Xm))) / (Xp[idx] - Xm[idx])
    return J


def numgrad(f, X, h=None):
    """Central-difference gradient of a scalar f, shaped like X."""
    return numjac(lambda Z: np.asarray(f(Z)).reshape(()), X, h)


def adjugate(X):
    """adj(X)[j, i] = (-1)^(i+j) det(X without row i and column j) (cofactors, exact definition)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    adj = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(X, i, axis=0), j, axis=1)
            adj[j, i] = (-1) ** (i + j) * (np.linalg.det(minor) if n > 1 else 1.0)
    return adj


# --- numerical differentiation (seed 004) ------------------------------------


def mse_numgrad(A, y, w, hh, method="central", reduction="mean"):
    """Seed 004's loop done right: perturb one weight of a copy, re-evaluate the whole loss.

    ``hh`` (w's shape) are the representable steps; O(N D^2 K), the cost fastgrad avoids.
    """
    w = np.asarray(w, dtype=np.float64)
    hh = np.asarray(hh, dtype=np.float64)
    offsets = {"forward": (0.0, 1.0), "backward": (-1.0, 0.0), "central": (-1.0, 1.0),
               "five-point": (-2.0, -1.0, 1.0, 2.0)}[method]
    g = np.zeros(w.shape)
    for idx in np.ndindex(*w.shape):
        L = []
        for o in offsets:
            wp = w.copy()
            wp[idx] += o * hh[idx]
            L.append(mse_loss_grad(A, y, wp, reduction)[0])
        if method in ("forward", "backward"):
            g[idx] = (L[1] - L[0]) / hh[idx]
        elif method == "central":
            g[idx] = (L[1] - L[0]) / (2.0 * hh[idx])
        else:
            g[idx] = ((L[0] - L[3]) + 8.0 * (L[2] - L[1])) / (12.0 * hh[idx])
    return g


# --- neural-network gradients (seeds 001, 002) -------------------------------


def nn_central_grad(f, x, h=1e-6):
    """Central differences ``(f(x + h e_j) - f(x - h e_j)) / (2h)`` over every element of x (float64 copy)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        xp = x.copy()
        xm = x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2.0 * h)
    return g


def dense_backward(X, W, dZ):
    """dX_ij = sum_k dz_ik w_jk; dW_jk = sum_i x_ij dz_ik; db_k = sum_i dz_ik (seed 001, 2b)."""
    X, W, dZ = (np.asarray(a, dtype=np.float64) for a in (X, W, dZ))
    N, D = X.shape
    C = W.shape[1]
    dX = np.zeros((N, D))
    dW = np.zeros((D, C))
    db = np.zeros(C)
    for i in range(N):
        for k in range(C):
            db[k] += dZ[i, k]
            for j in range(D):
                dX[i, j] += dZ[i, k] * W[j, k]
                dW[j, k] += X[i, j] * dZ[i, k]
    return dX, dW, db


def nn_act(z, name):
    """One activation value with math only (sigmoid written overflow-safe)."""
    import math

    if name == "sigmoid":
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    if name == "tanh":
        return math.tanh(z)
    if name == "relu":
        return z if z > 0 else 0.0
    return z


def mlp2_loss(X, Y, W1, b1, W2, b2, activation, loss):
    """``L(sigma(X W1 + b1) W2 + b2, Y)`` with loops: mse mean over N C; cross-entropy mean over N.

    Y: integer labels (N,) or (N, C) targets; log-sum-exp with the row max subtracted.
    """
    import math

    X, W1, b1, W2, b2 = (np.asarray(a, dtype=np.float64) for a in (X, W1, b1, W2, b2))
    N, D = X.shape
    H, C = W2.shape
    Y = np.asarray(Y)
    total = 0.0
    for i in range(N):
        a = [nn_act(sum(X[i, j] * W1[j, h] for j in range(D)) + b1[h], activation) for h in range(H)]
        z = [sum(a[h] * W2[h, k] for h in range(H)) + b2[k] for k in range(C)]
        if loss == "mse":
            total += sum((z[k] - float(Y[i, k])) ** 2 for k in range(C))
            continue
        m = max(z)
        lse = m + math.log(sum(math.exp(zk - m) for zk in z))
        if Y.ndim == 1:
            total += lse - z[int(Y[i])]
        else:
            total += sum(float(Y[i, k]) * (lse - z[k]) for k in range(C))
    return total / (N * C) if loss == "mse" else total / N
