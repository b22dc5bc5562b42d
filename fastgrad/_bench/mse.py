"""Benchmark cases and correctness checks of the MSE kernels and fit_linear."""

from __future__ import annotations

import numpy as np

import fastgrad

from . import Case, Check, Contender, register, register_check
from .floors import read_once_floor

SHAPES = [
    # (N, D, dtype, quick, targets)
    (100, 3, "float64", True, {"numpy": 1.0}),
    (10**4, 16, "float64", True, {"numpy": 1.0}),
    (10**6, 16, "float64", True, {"numpy": 2.0, "floor": 1.25}),
    (10**6, 64, "float64", False, {"numpy": 2.0, "floor": 1.25}),
    (2 * 10**5, 512, "float64", False, {"numpy": 2.0, "floor": 1.25}),
    (4 * 10**6, 32, "float64", False, {"numpy": 2.0, "floor": 1.25}),
    (10**6, 64, "float32", False, {"floor": 1.25}),
]


def _setup(N, D, dtype):
    def setup():
        rng = np.random.default_rng(N + D)
        A = rng.standard_normal((N, D)).astype(dtype)
        w = rng.standard_normal(D).astype(dtype)
        y = (A @ w + rng.standard_normal(N).astype(dtype)).astype(dtype)
        return {"A": A, "y": y, "w": w, "flat": A.reshape(-1)}

    return setup


def _check(data, results):
    ref = results["numpy"]
    tol = 1e-4 if data["A"].dtype == np.float32 else 1e-9
    for name, got in results.items():
        if name.startswith("fastgrad"):
            np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max(), err_msg=name)


def _numpy_grad(d):
    A, y, w = d["A"], d["y"], d["w"]
    N = A.shape[0]
    return lambda: (2.0 / N) * (A.T @ (A @ w - y))


def _fastgrad(backend):
    def make(d):
        A, y, w = d["A"], d["y"], d["w"]
        return lambda: fastgrad.mse_grad(A, y, w, backend=backend)

    return make


for N, D, dtype, quick, targets in SHAPES:
    contenders = [
        Contender("fastgrad-numba", "fastgrad", _fastgrad("numba")),
        Contender("fastgrad-cython", "fastgrad", _fastgrad("cython")),
        Contender("numpy", "baseline", _numpy_grad, blas=True),
    ]
    if "floor" in targets:
        contenders.append(Contender("floor", "floor", lambda d: (lambda: read_once_floor(d["flat"]))))
    register(Case("mse_grad", f"({N}, {D}) {dtype}", _setup(N, D, dtype), contenders, targets,
                  quick=quick, check=_check))


def _setup_fortran(N, D):
    """A in Fortran order, as ``DataFrame.to_numpy()`` gives; ``frame`` the DataFrame itself (pandas installed)."""
    def setup():
        data = _setup(N, D, "float64")()
        A = np.asfortranarray(data["A"])
        data.update(A=A, flat=A.ravel(order="K"))
        try:
            import pandas as pd
        except ImportError:
            data["frame"] = None
        else:
            data["frame"] = pd.DataFrame(A, copy=False)
        return data

    return setup


def _fastgrad_frame(backend):
    def make(d):
        frame, y, w = d["frame"], d["y"], d["w"]
        if frame is None:
            return None
        return lambda: fastgrad.mse_grad(frame, y, w, backend=backend)

    return make


# Fortran order and pandas: read in place, in tiles of rows (no copy of A)
register(Case("mse_grad", "(1000000, 64) float64 Fortran order / pandas", _setup_fortran(10**6, 64), [
    Contender("fastgrad-numba", "fastgrad", _fastgrad("numba")),
    Contender("fastgrad-cython", "fastgrad", _fastgrad("cython")),
    Contender("fastgrad-cython-DataFrame", "fastgrad", _fastgrad_frame("cython")),
    Contender("numpy", "baseline", _numpy_grad, blas=True),
    Contender("floor", "floor", lambda d: (lambda: read_once_floor(d["flat"]))),
], {"numpy": 2.0, "floor": 1.25}, quick=False, check=_check))


# The model users fit: sample weights, an intercept and the ridge term, fused in
# the same pass (the floor reads A and the weights once).
def _setup_model(N, D):
    def setup():
        data = _setup(N, D, "float64")()
        rng = np.random.default_rng(N + D + 1)
        data.update(s=rng.random(N) + 0.5, b=0.25, alpha=0.1)
        return data

    return setup


def _numpy_model_grad(d):
    A, y, w, s, b, alpha = d["A"], d["y"], d["w"], d["s"], d["b"], d["alpha"]
    total = s.sum()

    def run():
        q = s * (A @ w + b - y)
        return np.concatenate([(2.0 / total) * (A.T @ q) + (2.0 * alpha) * w, [(2.0 / total) * q.sum()]])

    return run


def _fastgrad_model(backend):
    def make(d):
        A, y, w, s, b, alpha = d["A"], d["y"], d["w"], d["s"], d["b"], d["alpha"]

        def run():
            gw, gb = fastgrad.mse_grad(A, y, w, sample_weight=s, intercept=b, alpha=alpha, backend=backend)
            return np.concatenate([gw, [gb]])

        return run

    return make


register(Case("mse_grad", "(1000000, 64) float64 sample_weight + intercept + alpha", _setup_model(10**6, 64), [
    Contender("fastgrad-numba", "fastgrad", _fastgrad_model("numba")),
    Contender("fastgrad-cython", "fastgrad", _fastgrad_model("cython")),
    Contender("numpy", "baseline", _numpy_model_grad, blas=True),
    Contender("floor", "floor", lambda d: (lambda: read_once_floor(d["flat"]) + read_once_floor(d["s"]))),
], {"numpy": 2.0, "floor": 1.15}, quick=False, check=_check))


# ---------------------------------------------------------------------------
# Correctness checks (``fastgrad check``, tests/test_registry.py)


def _mse_data(rng, N, D, K, dtype):
    A = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, K) if K else D).astype(dtype)
    y = rng.standard_normal((N, K) if K else N).astype(dtype)
    return A, y, w


def _numpy_loss_grad(A, y, w, reduction="mean"):
    """``R = y - A w``; loss ``s sum R**2``, gradient ``-2 s Aᵀ R`` (s = 1/(N K) or 1), float64."""
    A, y, w = (np.asarray(a, dtype=np.float64) for a in (A, y, w))
    R = y - A @ w
    s = 1.0 / R.size if reduction == "mean" else 1.0
    return s * float(np.sum(R * R)), -2.0 * s * (A.T @ R)


def _loss_and_grad_check(N, D, K, dtype, reduction):
    def run(backend, rng):
        A, y, w = _mse_data(rng, N, D, K, dtype)
        loss, g = fastgrad.mse_loss_and_grad(A, y, w, reduction=reduction, backend=backend)
        rloss, rg = fastgrad.mse_loss_and_grad(A, y, w, reduction=reduction, backend="numpy")
        return [(loss, rloss), (g, rg)]

    return run


register_check(Check("mse_loss_and_grad (100, 3) f64", ("mse_loss_and_grad",),
                     _loss_and_grad_check(100, 3, 0, np.float64, "mean")))
register_check(Check("mse_loss_and_grad (5000, 40, K=3) f64 sum", ("mse_loss_and_grad",),
                     _loss_and_grad_check(5000, 40, 3, np.float64, "sum")))
register_check(Check("mse_loss_and_grad (3000, 130) f32", ("mse_loss_and_grad",),
                     _loss_and_grad_check(3000, 130, 0, np.float32, "mean")))


def _model_check(N, D, K, reduction):
    """sample_weight, intercept and alpha against the numpy backend."""
    def run(backend, rng):
        A, y, w = _mse_data(rng, N, D, K, np.float64)
        kw = dict(sample_weight=rng.random(N), intercept=rng.standard_normal(max(K, 1)), alpha=0.3,
                  reduction=reduction)
        loss, (gw, gb) = fastgrad.mse_loss_and_grad(A, y, w, backend=backend, **kw)
        rloss, (rgw, rgb) = fastgrad.mse_loss_and_grad(A, y, w, backend="numpy", **kw)
        return [(loss, rloss), (gw, rgw), (gb, rgb)]

    return run


register_check(Check("mse_loss_and_grad sample_weight + intercept + alpha (2000, 10, K=2)",
                     ("mse_loss_and_grad",), _model_check(2000, 10, 2, "mean")))
register_check(Check("mse_loss_and_grad sample_weight + intercept + alpha (700, 9) sum",
                     ("mse_loss_and_grad",), _model_check(700, 9, 0, "sum")))


def _loss_grad_objective_check(N, D, K, reduction):
    def run(backend, rng):
        A, y, w = _mse_data(rng, N, D, K, np.float64)
        rloss, rg = _numpy_loss_grad(A, y, w, reduction)
        obj = fastgrad.MSEObjective(A, y, reduction=reduction, backend=backend)
        oloss, og = obj.loss_and_grad(w)
        return [
            (fastgrad.mse_loss(A, y, w, reduction=reduction, backend=backend), rloss),
            (fastgrad.mse_grad(A, y, w, reduction=reduction, backend=backend), rg),
            (obj(w), rloss), (obj.loss(w), rloss), (obj.grad(w), rg), (oloss, rloss), (og, rg),
        ]

    return run


register_check(Check("mse_loss, mse_grad, MSEObjective (300, 6) f64", ("mse_loss", "mse_grad", "MSEObjective"),
                     _loss_grad_objective_check(300, 6, 0, "mean")))
register_check(Check("mse_loss, mse_grad, MSEObjective (200, 5, K=2) sum",
                     ("mse_loss", "mse_grad", "MSEObjective"), _loss_grad_objective_check(200, 5, 2, "sum")))


def _numpy_gradient_descent(A, y, w0, lr, epochs):
    """The plain numpy loop ``w <- w - lr g(w)``; losses before the first and after every update."""
    w = np.array(w0, dtype=np.float64)
    losses = [_numpy_loss_grad(A, y, w)[0]]
    for _ in range(epochs):
        w = w - lr * _numpy_loss_grad(A, y, w)[1]
        losses.append(_numpy_loss_grad(A, y, w)[0])
    return w, np.array(losses)


def _fit_linear_check(N, D, K, grad, h):
    def run(backend, rng):
        A, y, w0 = _mse_data(rng, N, D, K, np.float64)
        res = fastgrad.fit_linear(A, y, lr=0.05, epochs=40, grad=grad, h=h, w0=w0, backend=backend)
        w, losses = _numpy_gradient_descent(A, y, w0, 0.05, 40)
        return [(res.w, w), (res.losses, losses)]

    return run


# central differences of a quadratic are exact up to rounding: the same trajectory as the analytic one
register_check(Check("fit_linear (60, 4) analytic, 40 epochs", ("fit_linear",),
                     _fit_linear_check(60, 4, 0, "analytic", None)))
register_check(Check("fit_linear (60, 4, K=2) central h=1e-3, 40 epochs", ("fit_linear",),
                     _fit_linear_check(60, 4, 2, "central", 1e-3)))


# the second order and the sparse kernels register their cases and checks under this family
from . import mse_second_order  # noqa: E402,F401
