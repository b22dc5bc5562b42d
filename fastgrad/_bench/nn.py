"""Benchmark cases and correctness checks of the neural-network gradients: dense_forward,
dense_backward, mlp2_loss_and_grad."""

from __future__ import annotations

import numpy as np

import fastgrad
from fastgrad import reference

from . import Case, Check, Contender, register, register_check

# ---------------------------------------------------------------------------
# dense_backward vs the numpy expressions it replaces: (dZ @ W.T, X.T @ dZ, dZ.sum(0))

DENSE_SHAPES = [
    # (N, D, C, quick, targets)
    (1000, 32, 4, True, {"numpy": 1.0}),
    (200_000, 128, 4, False, {"numpy": 1.0}),
    (200_000, 128, 256, False, {"numpy": 1.0}),  # GEMM-heavy: BLAS does the products
]


def _dense_setup(N, D, C):
    def setup():
        rng = np.random.default_rng(N + D + C)
        d = {"X": rng.standard_normal((N, D)), "W": rng.standard_normal((D, C)),
             "dZ": rng.standard_normal((N, C))}
        assert d["X"].std() > 0.5 and d["dZ"].std() > 0.5  # not measuring zeros
        return d

    return setup


def _dense_numpy(d):
    X, W, dZ = d["X"], d["W"], d["dZ"]
    return lambda: (dZ @ W.T, X.T @ dZ, dZ.sum(0))


def _dense_fastgrad(backend):
    def make(d):
        X, W, dZ = d["X"], d["W"], d["dZ"]
        return lambda: fastgrad.dense_backward(X, W, dZ, backend=backend)

    return make


def _check_tuple(data, results):
    ref = results["numpy"]
    for name, got in results.items():
        if name.startswith("fastgrad"):
            val_g, grads_g = (got[0], got[1]) if np.isscalar(got[0]) else (None, got)
            val_r, grads_r = (ref[0], ref[1]) if np.isscalar(ref[0]) else (None, ref)
            if val_g is not None:
                np.testing.assert_allclose(val_g, val_r, rtol=1e-10, err_msg=name)
            for g, r in zip(grads_g, grads_r, strict=True):
                np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-9 * np.abs(r).max(), err_msg=name)


for N, D, C, quick, targets in DENSE_SHAPES:
    register(Case(
        "dense_backward", f"(N={N}, D={D}, C={C}) float64", _dense_setup(N, D, C),
        [Contender("fastgrad-numba", "fastgrad", _dense_fastgrad("numba"), blas=True),
         Contender("fastgrad-cython", "fastgrad", _dense_fastgrad("cython"), blas=True),
         Contender("numpy", "baseline", _dense_numpy, blas=True)],
        targets, quick=quick, check=_check_tuple,
    ))


# ---------------------------------------------------------------------------
# mlp2_loss_and_grad (relu, softmax cross-entropy with labels) vs plain numpy

MLP_SHAPES = [
    # (N, D, H, C, quick, targets)
    (1000, 32, 64, 10, True, {"numpy": 1.0}),
    (10_000, 64, 128, 10, False, {"numpy": 1.0}),
]


def _mlp_setup(N, D, H, C):
    def setup():
        rng = np.random.default_rng(N + D + H + C)
        d = {"X": rng.standard_normal((N, D)), "y": rng.integers(0, C, N),
             "W1": rng.standard_normal((D, H)) / np.sqrt(D), "b1": 0.1 * rng.standard_normal(H),
             "W2": rng.standard_normal((H, C)) / np.sqrt(H), "b2": 0.1 * rng.standard_normal(C)}
        assert len(np.unique(d["y"])) == C
        return d

    return setup


def numpy_mlp2(X, y, W1, b1, W2, b2):
    """The plain numpy implementation of the same math (relu, mean softmax cross-entropy)."""
    N = X.shape[0]
    Z1 = X @ W1 + b1
    A1 = np.maximum(Z1, 0.0)
    Z2 = A1 @ W2 + b2
    Z2 = Z2 - Z2.max(axis=1, keepdims=True)
    E = np.exp(Z2)
    S = E.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(S[:, 0]) - Z2[np.arange(N), y]))
    dZ2 = E / S
    dZ2[np.arange(N), y] -= 1.0
    dZ2 /= N
    dW2 = A1.T @ dZ2
    db2 = dZ2.sum(axis=0)
    dZ1 = (dZ2 @ W2.T) * (Z1 > 0)
    dW1 = X.T @ dZ1
    db1 = dZ1.sum(axis=0)
    return loss, (dW1, db1, dW2, db2)


def _mlp_numpy(d):
    return lambda: numpy_mlp2(d["X"], d["y"], d["W1"], d["b1"], d["W2"], d["b2"])


def _mlp_fastgrad(backend):
    def make(d):
        args = (d["X"], d["y"], d["W1"], d["b1"], d["W2"], d["b2"])
        return lambda: fastgrad.mlp2_loss_and_grad(*args, backend=backend)

    return make


for N, D, H, C, quick, targets in MLP_SHAPES:
    register(Case(
        "mlp2_loss_and_grad", f"(N={N}, D={D}, H={H}, C={C}) relu xent float64", _mlp_setup(N, D, H, C),
        [Contender("fastgrad-numba", "fastgrad", _mlp_fastgrad("numba"), blas=True),
         Contender("fastgrad-cython", "fastgrad", _mlp_fastgrad("cython"), blas=True),
         Contender("numpy", "baseline", _mlp_numpy, blas=True)],
        targets, quick=quick, check=_check_tuple,
    ))


# ---------------------------------------------------------------------------
# Correctness checks (``fastgrad check``, tests/test_registry.py)


def _dense_check(N, D, C, dtype):
    def run(backend, rng):
        X = rng.standard_normal((N, D)).astype(dtype)
        W = rng.standard_normal((D, C)).astype(dtype)
        b = rng.standard_normal(C).astype(dtype)
        dZ = rng.standard_normal((N, C)).astype(dtype)
        dX, dW, db = fastgrad.dense_backward(X, W, dZ, backend=backend)
        _, rdW, rdb = reference.dense_backward(X, W, dZ)
        if dtype == np.float32:
            # float32 BLAS products round differently from the float64 oracle; the
            # fused dW/db pass (C <= FUSED_MAX_C) accumulates in float64: compare those.
            return [(dW, rdW.astype(np.float32)), (db, rdb.astype(np.float32))]
        Z = fastgrad.dense_forward(X, W, b, backend=backend)
        return [(Z, reference.dense_forward(X, W, b)), (dX, dZ @ W.T), (dW, rdW), (db, rdb)]

    return run


register_check(Check("dense_forward/backward (300, 7, C=3) f64", ("dense_forward", "dense_backward"),
                     _dense_check(300, 7, 3, np.float64)))
register_check(Check("dense_forward/backward (2000, 64, C=40) f64", ("dense_forward", "dense_backward"),
                     _dense_check(2000, 64, 40, np.float64)))
register_check(Check("dense_backward dW, db (3000, 50, C=4) f32", ("dense_backward",),
                     _dense_check(3000, 50, 4, np.float32)))


def _mlp_check(N, D, H, C, act, loss, labels):
    def run(backend, rng):
        X = rng.standard_normal((N, D))
        W1 = rng.standard_normal((D, H)) / np.sqrt(D)
        b1 = rng.standard_normal(H)
        W2 = rng.standard_normal((H, C)) / np.sqrt(H)
        b2 = rng.standard_normal(C)
        if labels:
            Y = rng.integers(0, C, N)
        elif loss == "mse":
            Y = rng.standard_normal((N, C))
        else:
            Y = np.eye(C)[rng.integers(0, C, N)]
        val, grads = fastgrad.mlp2_loss_and_grad(X, Y, W1, b1, W2, b2, activation=act, loss=loss,
                                                 backend=backend)
        rval, rgrads = reference.mlp2_loss_grad(X, Y, W1, b1, W2, b2, act, loss, labels)
        return [(val, rval), *zip(grads, rgrads, strict=True)]

    return run


for _label, _args in (
    ("relu xent labels (500, 8, 16, 5)", (500, 8, 16, 5, "relu", "softmax_cross_entropy", True)),
    ("sigmoid xent one-hot (300, 6, 9, 4)", (300, 6, 9, 4, "sigmoid", "softmax_cross_entropy", False)),
    ("tanh mse (2000, 20, 70, 3)", (2000, 20, 70, 3, "tanh", "mse", False)),
    ("identity mse (50, 4, 3, 2)", (50, 4, 3, 2, "identity", "mse", False)),
):
    register_check(Check(f"mlp2 {_label}", ("mlp2_loss_and_grad",), _mlp_check(*_args)))
