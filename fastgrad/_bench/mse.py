"""Benchmark cases of the MSE kernels (SPEC section 8, first bullet)."""

from __future__ import annotations

import numpy as np

import fastgrad

from . import Case, Contender, register
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
