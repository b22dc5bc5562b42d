"""Naive loop twins of every kernel: the slowest, plainest statement of the math.

Each function is a direct transcription of the summation formula with Python
loops (float64 accumulation), used only on small inputs in the tests.  Families
append their twins below, one section each.
"""

from __future__ import annotations

import numpy as np

# --- MSE (docs/derivations.md, "MSE gradient of a linear model") ---------


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


# --- Kronecker / vec Jacobians and matrix-differential identities ----------
# (docs/derivations.md, "Kronecker and vec Jacobians" and "Matrix differentials")


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
    """J[i, vec(a, b)] = ∂(W x)_i/∂W_ab = δ_ia x_b for f = W x, W (n, m)."""
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


# --- numerical differentiation (docs/derivations.md, "Limits and finite differences") ---


def mse_numgrad(A, y, w, hh, method="central", reduction="mean"):
    """The textbook finite-difference loop: perturb one weight of a copy, re-evaluate the whole loss.

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


# --- neural-network gradients (docs/derivations.md, "Backpropagation through dense layers") ---


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
    """dX_ij = sum_k dz_ik w_jk; dW_jk = sum_i x_ij dz_ik; db_k = sum_i dz_ik."""
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


# --- twins of the rest of the public API --------------------------------------


def mse_loss(A, y, w, reduction="mean"):
    """The loss half of :func:`mse_loss_grad`."""
    return mse_loss_grad(A, y, w, reduction)[0]


def mse_grad(A, y, w, reduction="mean"):
    """The gradient half of :func:`mse_loss_grad`."""
    return mse_loss_grad(A, y, w, reduction)[1]


def fit_linear(A, y, lr, epochs, w0=None):
    """Plain gradient descent ``w <- w - lr g(w)`` with the loop gradient; (w, losses of length epochs + 1)."""
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.zeros(A.shape[1:2] + y.shape[1:]) if w0 is None else np.array(w0, dtype=np.float64)
    losses = [mse_loss_grad(A, y, w)[0]]
    for _ in range(epochs):
        g = mse_loss_grad(A, y, w)[1]
        for idx in np.ndindex(*w.shape):
            w[idx] -= lr * g[idx]
        losses.append(mse_loss_grad(A, y, w)[0])
    return w, np.array(losses)


def approx_fprime(x, f, epsilon, *args):
    """Forward differences ``(f(x + h_j e_j) - f(x)) / dx_j``, scipy's result shape.

    ``dx_j = (x_j + h_j) - x_j`` is the step actually taken (representable), as scipy divides by.
    """
    x = np.array(x, dtype=np.float64)
    h = np.broadcast_to(np.asarray(epsilon, dtype=np.float64), x.shape)
    f0 = np.atleast_1d(np.asarray(f(x.copy(), *args), dtype=np.float64))
    J = np.zeros((f0.size, x.size))
    for j in range(x.size):
        xp = x.copy()
        xp[j] += h[j]
        dx = xp[j] - x[j]
        fp = np.atleast_1d(np.asarray(f(xp, *args), dtype=np.float64))
        for i in range(f0.size):
            J[i, j] = (fp[i] - f0[i]) / dx
    return J[0] if f0.size == 1 else J


def check_grad(f, grad, x, *args, epsilon=1.4901161193847656e-08):
    """``sqrt(sum_j (grad_j - forward difference_j)^2)`` with :func:`approx_fprime` (epsilon: sqrt(eps))."""
    g = np.asarray(grad(np.array(x, dtype=np.float64), *args), dtype=np.float64)
    num = approx_fprime(x, f, epsilon, *args)
    s = 0.0
    for j in range(g.size):
        s += (g[j] - num[j]) ** 2
    return s**0.5


def vec(X, order="F"):
    """``vec(X)[a + b m] = X[a, b]`` (order F, X (m, n)) or ``[a n + b]`` (order C)."""
    X = np.asarray(X)
    m, n = X.shape
    v = np.zeros(m * n, dtype=X.dtype)
    for a in range(m):
        for b in range(n):
            v[vec_index(a, b, (m, n), order)] = X[a, b]
    return v


def unvec(v, shape, order="F"):
    """The inverse of :func:`vec`: ``X[a, b] = v[vec_index(a, b)]``."""
    v = np.asarray(v)
    m, n = shape
    X = np.zeros((m, n), dtype=v.dtype)
    for a in range(m):
        for b in range(n):
            X[a, b] = v[vec_index(a, b, (m, n), order)]
    return X


def kron_matvec(A, B, x):
    """``y[i mB + k] = sum_{j, l} a_ij b_kl x[j nB + l]``: (A ⊗ B) x, the product KronOperator computes."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    (mA, nA), (mB, nB) = A.shape, B.shape
    y = np.zeros(mA * mB)
    for i in range(mA):
        for k in range(mB):
            for j in range(nA):
                for l in range(nB):
                    y[i * mB + k] += A[i, j] * B[k, l] * x[j * nB + l]
    return y


def inverse(X):
    """``X⁻¹ = adj(X) / det(X)`` (cofactors)."""
    X = np.asarray(X, dtype=np.float64)
    return adjugate(X) / np.linalg.det(X)


def grad_det(X):
    """∂ det X / ∂X_ab = cofactor C_ab = adj(X)[b, a] (docs/derivations.md, "Matrix differentials")."""
    return adjugate(X).T


def grad_logdet(X):
    """∂ log|det X| / ∂X_ab = C_ab / det X = (X⁻¹)[b, a]."""
    return inverse(X).T


def grad_trace_AXB(A, B):
    """tr(A X B) = sum_{i, a, b} A_ia X_ab B_bi, so ∂/∂X_ab = sum_i A_ia B_bi."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    p, m = A.shape
    n = B.shape[0]
    G = np.zeros((m, n))
    for a in range(m):
        for b in range(n):
            for i in range(p):
                G[a, b] += A[i, a] * B[b, i]
    return G


def grad_sq_norm_affine(W, x, b):
    """‖W x + b‖² = sum_i r_i², r_i = sum_j W_ij x_j + b_i, so ∂/∂W_ij = 2 r_i x_j."""
    W = np.asarray(W, dtype=np.float64)
    n, m = W.shape
    G = np.zeros((n, m))
    for i in range(n):
        r = b[i]
        for j in range(m):
            r += W[i, j] * x[j]
        for j in range(m):
            G[i, j] = 2.0 * r * x[j]
    return G


def dinv(X, dX):
    """d(X⁻¹)_ij = -sum_{a, b} (X⁻¹)_ia dX_ab (X⁻¹)_bj, i.e. d(X⁻¹) = -X⁻¹ dX X⁻¹."""
    Xi = inverse(X)
    n = Xi.shape[0]
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            for a in range(n):
                for b in range(n):
                    D[i, j] -= Xi[i, a] * dX[a, b] * Xi[b, j]
    return D


def jacobian_inv(X, order="F"):
    """J[vec(i, j), vec(a, b)] = ∂(X⁻¹)_ij / ∂X_ab = -(X⁻¹)_ia (X⁻¹)_bj."""
    Xi = inverse(X)
    n = Xi.shape[0]
    J = np.zeros((n * n, n * n))
    for i in range(n):
        for j in range(n):
            for a in range(n):
                for b in range(n):
                    J[vec_index(i, j, (n, n), order), vec_index(a, b, (n, n), order)] = -Xi[i, a] * Xi[b, j]
    return J


def dense_forward(X, W, b):
    """Z_ik = sum_j x_ij w_jk + b_k."""
    X, W, b = (np.asarray(a, dtype=np.float64) for a in (X, W, b))
    N, D = X.shape
    C = W.shape[1]
    Z = np.zeros((N, C))
    for i in range(N):
        for k in range(C):
            z = b[k]
            for j in range(D):
                z += X[i, j] * W[j, k]
            Z[i, k] = z
    return Z


#: Public name (``fastgrad.__all__``) -> the name of its twin in this module.
#: Gradients of whole models are checked through a loss twin and central differences.
TWINS = {
    "mse_loss": "mse_loss",
    "mse_grad": "mse_grad",
    "mse_loss_and_grad": "mse_loss_grad",
    "MSEObjective": "mse_loss_grad",
    "numgrad": "numgrad",
    "numjac": "numjac",
    "mse_numgrad": "mse_numgrad",
    "approx_fprime": "approx_fprime",
    "check_grad": "check_grad",
    "gradcheck": "numgrad",
    "kron": "kron",
    "vec": "vec",
    "unvec": "unvec",
    "jacobian_Wx": "jacobian_Wx",
    "jacobian_AXB": "jacobian_AXB",
    "KronOperator": "kron_matvec",
    "matmul_jacobian": "matmul_jacobian",
    "grad_logdet": "grad_logdet",
    "grad_det": "grad_det",
    "grad_trace_AXB": "grad_trace_AXB",
    "grad_sq_norm_affine": "grad_sq_norm_affine",
    "dinv": "dinv",
    "jacobian_inv": "jacobian_inv",
    "dense_forward": "dense_forward",
    "dense_backward": "dense_backward",
    "mlp2_loss_and_grad": "mlp2_loss",
    "fit_linear": "fit_linear",
}


# --- second derivatives: numhess, numhess_diag, numhvp, hesscheck, taylor_test ---


def hess_steps(X):
    """Default steps of the second-derivative twins: eps^(1/4) max(1, |x|), representable ((x + h) - x)."""
    X = np.asarray(X, dtype=np.float64)
    h = np.finfo(np.float64).eps ** 0.25 * np.maximum(1.0, np.abs(X))
    return (X + h) - X


def numhess(f, X, h=None):
    """H[a, b] for every a and b (both halves), with plain loops over the flattened X:

    a != b: (f(x + h_a e_a + h_b e_b) - f(x + h_a e_a - h_b e_b) - f(x - h_a e_a + h_b e_b)
             + f(x - h_a e_a - h_b e_b)) / (4 h_a h_b)
    a == b: (f(x + 2 h_a e_a) - 2 f(x) + f(x - 2 h_a e_a)) / (4 h_a^2)
    """
    X = np.array(X, dtype=np.float64)
    x = X.reshape(-1)
    n = x.size
    steps = hess_steps(x) if h is None else np.broadcast_to(np.asarray(h, dtype=np.float64), X.shape).reshape(-1)

    def at(moves):
        z = x.copy()
        for idx, dz in moves:
            z[idx] += dz
        return float(f(z.reshape(X.shape)))

    f0 = at([])
    H = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            ha, hb = steps[a], steps[b]
            if a == b:
                H[a, a] = (at([(a, 2 * ha)]) - 2.0 * f0 + at([(a, -2 * ha)])) / (4.0 * ha * ha)
            else:
                H[a, b] = (at([(a, ha), (b, hb)]) - at([(a, ha), (b, -hb)]) - at([(a, -ha), (b, hb)])
                           + at([(a, -ha), (b, -hb)])) / (4.0 * ha * hb)
    return H.reshape(X.shape * 2)


def numhess_diag(f, X, h=None):
    """d[a] = (f(x + h_a e_a) - 2 f(x) + f(x - h_a e_a)) / h_a^2 over the elements of X."""
    X = np.array(X, dtype=np.float64)
    steps = hess_steps(X) if h is None else np.broadcast_to(np.asarray(h, dtype=np.float64), X.shape)
    f0 = float(f(X))
    d = np.zeros(X.shape)
    for idx in np.ndindex(*X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += steps[idx]
        Xm[idx] -= steps[idx]
        d[idx] = (float(f(Xp)) - 2.0 * f0 + float(f(Xm))) / (steps[idx] * steps[idx])
    return d


def numhvp(f, X, v, grad=None, t=None):
    """H v ~ (g(x + t v) - g(x - t v)) / (2 t), g = grad or the central-difference gradient of f."""
    X = np.array(X, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if t is None:
        c = np.finfo(np.float64).eps ** (1 / 3 if grad is not None else 1 / 4)
        t = c * max(1.0, float(np.max(np.abs(X)))) / float(np.max(np.abs(v)))
    g = (lambda Z: np.asarray(grad(Z), dtype=np.float64)) if grad is not None else (lambda Z: numgrad(f, Z))
    return (g(X + t * v) - g(X - t * v)) / (2.0 * t)


def hesscheck(f, hess, X, rtol=1e-4, atol=1e-6):
    """(ok, worst index) of |hess - numhess| <= atol + rtol |numhess|, entry by entry, by plain loops."""
    X = np.array(X, dtype=np.float64)
    num = numhess(f, X)
    ana = np.asarray(hess(X), dtype=np.float64).reshape(num.shape)
    ok, worst, worst_excess = True, None, -1.0
    for idx in np.ndindex(*num.shape):
        diff = abs(ana[idx] - num[idx])
        tol = atol + rtol * abs(num[idx])
        ok = ok and diff <= tol
        excess = diff / tol if tol > 0 else (np.inf if diff > 0 else 0.0)
        if excess > worst_excess:
            worst, worst_excess = idx, excess
    return ok, worst


def taylor_test(f, grad, X, v, steps, noise=0.0):
    """(order, errors): r(t) = |f(x + t v) - f(x) - t g . v| at each t, and the least-squares slope of
    log r against log t over the steps where r > noise."""
    X = np.array(X, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    f0 = float(f(X))
    gv = float(np.sum(np.asarray(grad(X), dtype=np.float64) * v))
    errors = np.array([abs(float(f(X + t * v)) - f0 - t * gv) for t in steps])
    keep = errors > noise
    lt, le = np.log(np.asarray(steps)[keep]), np.log(errors[keep])
    order = float(np.sum((lt - lt.mean()) * (le - le.mean())) / np.sum((lt - lt.mean()) ** 2))
    return order, errors


TWINS.update({
    "numhess": "numhess",
    "numhess_diag": "numhess_diag",
    "numhvp": "numhvp",
    "hesscheck": "hesscheck",
    "taylor_test": "taylor_test",
    "TaylorResult": "taylor_test",
})


# --- MSE second order: mse_hessp, mse_hessian ---


def mse_hessp(A, v, sample_weight=None, alpha=0.0, reduction="mean"):
    """``(H v)_jk = 2 scale sum_i a_ij s_i sum_l a_il v_lk + 2 alpha v_jk``, loop by loop."""
    A = np.asarray(A.toarray() if hasattr(A, "toarray") else A, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    V = v.reshape(v.shape[0], -1)
    N, D = A.shape
    K = V.shape[1]
    s = np.ones(N) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    scale = 1.0 / (K * s.sum()) if reduction == "mean" else 1.0
    out = np.zeros((D, K))
    for k in range(K):
        for i in range(N):
            t = 0.0
            for l in range(D):
                t += A[i, l] * V[l, k]
            for j in range(D):
                out[j, k] += 2.0 * scale * A[i, j] * s[i] * t
        for j in range(D):
            out[j, k] += 2.0 * alpha * V[j, k]
    return out.reshape(v.shape)


def mse_hessian(A, sample_weight=None, alpha=0.0, reduction="mean"):
    """``H_jl = 2 scale sum_i s_i a_ij a_il + 2 alpha [j == l]`` (one output), loop by loop."""
    A = np.asarray(A.toarray() if hasattr(A, "toarray") else A, dtype=np.float64)
    D = A.shape[1]
    return np.stack([mse_hessp(A, np.eye(D)[:, j], sample_weight, alpha, reduction) for j in range(D)], axis=1)


TWINS.update({"mse_hessp": "mse_hessp", "mse_hessian": "mse_hessian"})


# --- sparse Jacobians: group_columns, detect_sparsity ---


def group_columns(S, perm):
    """Greedy groups: visiting columns in the order ``perm``, the first ungrouped column opens group g,
    and each later ungrouped column j with ``S[:, j] & union == 0`` joins it (union |= S[:, j])."""
    S = np.asarray(S.toarray() if hasattr(S, "toarray") else S) != 0
    n = S.shape[1]
    groups = [-1] * n
    g = 0
    for i in perm:
        if groups[i] >= 0:
            continue
        union = S[:, i].copy()
        groups[i] = g
        for j in perm:
            if groups[j] < 0 and not np.any(union & S[:, j]):
                union |= S[:, j]
                groups[j] = g
        g += 1
    return np.array(groups)


def detect_sparsity(f, points):
    """``S_ij = any_t J(x_t)_ij != 0`` over the given points (the flattened central-difference Jacobians)."""
    S = None
    for x in points:
        J = numjac(f, x)
        J = J.reshape(int(np.prod(J.shape[:J.ndim - np.ndim(x)])), -1)
        S = (J != 0) if S is None else S | (J != 0)
    return S


TWINS.update({
    "group_columns": "group_columns",
    "detect_sparsity": "detect_sparsity",
})
