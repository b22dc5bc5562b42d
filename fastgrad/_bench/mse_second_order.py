"""Benchmark cases and checks of the MSE's second order (mse_hessp, mse_hessian) and of a scipy.sparse A.

Registered under the ``mse`` family (imported by ``fastgrad/_bench/mse.py``).
"""

from __future__ import annotations

import numpy as np

import fastgrad
from fastgrad import _validate

from . import Case, Check, Contender, register, register_check
from .floors import read_once_floor

# ---------------------------------------------------------------------------
# mse_hessp against numpy's two passes A^T (A v)

HESSP_SHAPES = [
    # (N, D, quick)
    (10**4, 16, True),
    (10**6, 64, False),
]


def _hessp_setup(N, D):
    def setup():
        rng = np.random.default_rng(N + D + 1)
        A = rng.standard_normal((N, D))
        return {"A": A, "v": rng.standard_normal(D), "flat": A.reshape(-1)}

    return setup


def _hessp_fastgrad(backend):
    return lambda d: (lambda: fastgrad.mse_hessp(d["A"], d["v"], backend=backend))


def _hessp_numpy(d):
    A, v = d["A"], d["v"]
    N = A.shape[0]
    return lambda: (2.0 / N) * (A.T @ (A @ v))


def _close_to_numpy(data, results):
    ref = results["numpy"]
    for name, got in results.items():
        if name.startswith("fastgrad"):
            np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max(), err_msg=name)


for N, D, quick in HESSP_SHAPES:
    register(Case("mse_hessp", f"({N}, {D}) float64", _hessp_setup(N, D), [
        Contender("fastgrad-numba", "fastgrad", _hessp_fastgrad("numba")),
        Contender("fastgrad-cython", "fastgrad", _hessp_fastgrad("cython")),
        Contender("numpy", "baseline", _hessp_numpy, blas=True),
        Contender("floor", "floor", lambda d: (lambda: read_once_floor(d["flat"]))),
    ], {"numpy": 2.0}, quick=quick, check=_close_to_numpy, family="mse"))


# ---------------------------------------------------------------------------
# MSE gradient of a CSR A against the scipy.sparse expression and the read-once floor

SPARSE_SHAPES = [
    # (N, D, density, quick)
    (10**4, 100, 0.05, True),
    (2 * 10**5, 1000, 0.01, False),
    (2 * 10**5, 1000, 0.10, False),
]


def _sparse_setup(N, D, density):
    def setup():
        import scipy.sparse

        rng = np.random.default_rng(N + D)
        A = scipy.sparse.random_array((N, D), density=density, format="csr", rng=rng)
        w = rng.standard_normal(D)
        y = A @ w + rng.standard_normal(N)
        return {"A": A, "y": y, "w": w, "sp": _validate.sparse_inputs(A)}

    return setup


def _sparse_fastgrad(backend):
    # the public function, as a user calls it: the column indices are checked, by a pass in
    # validation (short rows) or in the kernel's own pass (long rows: sparse_checks_in_pass)
    return lambda d: (lambda: fastgrad.mse_grad(d["A"], d["y"], d["w"], backend=backend))


def _sparse_scipy(d):
    A, y, w = d["A"], d["y"], d["w"]
    N = A.shape[0]
    return lambda: (2.0 / N) * (A.T @ (A @ w - y))


def _sparse_floor(d):
    sp = d["sp"]
    return lambda: (read_once_floor(sp.data), read_once_floor(sp.indices))


for N, D, density, quick in SPARSE_SHAPES:
    register(Case("mse_grad_csr", f"({N}, {D}) density {density:g}", _sparse_setup(N, D, density), [
        Contender("fastgrad-numba", "fastgrad", _sparse_fastgrad("numba")),
        Contender("fastgrad-cython", "fastgrad", _sparse_fastgrad("cython")),
        Contender("numpy", "baseline", _sparse_scipy),
        Contender("floor", "floor", _sparse_floor),
    ], {"numpy": 3.0, "floor": 1.3}, quick=quick, check=_close_to_numpy, family="mse",
        functions=("mse_grad",)))


# ---------------------------------------------------------------------------
# Correctness checks


def _hessp_check(N, D, K, weighted, alpha, reduction, layout):
    def run(backend, rng):
        A = rng.standard_normal((N, D))
        if layout == "F":
            A = np.asfortranarray(A)
        elif layout == "csr":
            import scipy.sparse

            A = scipy.sparse.csr_array(A * (rng.random((N, D)) < 0.3))
        v = rng.standard_normal((D, K) if K else D)
        s = rng.random(N) if weighted else None
        Ad = A.toarray() if layout == "csr" else A
        S = np.ones(N) if s is None else s
        scale = (1.0 / (max(K, 1) * S.sum())) if reduction == "mean" else 1.0
        V = v.reshape(D, -1)
        ref = (2.0 * scale * (Ad.T @ (S[:, None] * (Ad @ V))) + 2.0 * alpha * V).reshape(v.shape)
        got = fastgrad.mse_hessp(A, v, sample_weight=s, alpha=alpha, reduction=reduction, backend=backend)
        H = fastgrad.mse_hessian(A, sample_weight=s, alpha=alpha, reduction="sum")
        Href = 2.0 * (Ad.T @ (S[:, None] * Ad)) + 2.0 * alpha * np.eye(D)
        return [(got, ref), (H, Href)]

    return run


register_check(Check("mse_hessp, mse_hessian (300, 6) f64", ("mse_hessp", "mse_hessian"),
                     _hessp_check(300, 6, 0, False, 0.0, "mean", "C"), family="mse"))
register_check(Check("mse_hessp, mse_hessian (500, 7, K=3) weighted ridge, Fortran order",
                     ("mse_hessp", "mse_hessian"), _hessp_check(500, 7, 3, True, 0.3, "mean", "F"), family="mse"))
register_check(Check("mse_hessp, mse_hessian (400, 9, K=2) CSR sum", ("mse_hessp", "mse_hessian"),
                     _hessp_check(400, 9, 2, True, 0.1, "sum", "csr"), family="mse"))
