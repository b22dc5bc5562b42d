"""Benchmark cases of numerical differentiation (SPEC section 8, second and third bullets)."""

from __future__ import annotations

import numpy as np
from numba import njit

import fastgrad

from .. import _config
from . import Case, Contender, register

__all__ = ["mse_loss_njit"]


@njit(**_config.NUMBA_FLAGS)
def mse_loss_njit(w, A, y):
    """The loss both contenders differentiate: ``(1/N) sum_i (y_i - sum_j a_ij w_j)^2``."""
    N, D = A.shape
    s = 0.0
    for i in range(N):
        r = y[i]
        for j in range(D):
            r -= A[i, j] * w[j]
        s += r * r
    return s / N


def _setup(N, D):
    def setup():
        rng = np.random.default_rng(N + D)
        A = rng.standard_normal((N, D))
        w = rng.standard_normal(D)
        y = A @ w + rng.standard_normal(N)
        w0 = np.zeros(D)
        assert np.abs(A).max() > 0 and np.abs(y).max() > 0
        return {"A": A, "y": y, "w": w0}

    return setup


def _analytic(data):
    A, y, w = data["A"], data["y"], data["w"]
    return (-2.0 / A.shape[0]) * (A.T @ (y - A @ w))


def _check(rtol):
    def check(data, results):
        ref = _analytic(data)
        for name, got in results.items():
            np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * np.abs(ref).max(), err_msg=name)

    return check


# -- mse_numgrad vs scipy's approx_derivative on the same loss ------------------


def _mse_numgrad(backend):
    def make(d):
        A, y, w = d["A"], d["y"], d["w"]
        return lambda: fastgrad.mse_numgrad(A, y, w, backend=backend)

    return make


def _scipy_3point(d):
    from scipy.optimize._numdiff import approx_derivative

    A, y, w = d["A"], d["y"], d["w"]

    def loss(w):
        r = y - A @ w
        return r @ r / A.shape[0]

    return lambda: approx_derivative(loss, w, method="3-point")


register(Case(
    "mse_numgrad", "(1000, 500) float64", _setup(1000, 500),
    [
        Contender("fastgrad-numba", "fastgrad", _mse_numgrad("numba")),
        Contender("fastgrad-cython", "fastgrad", _mse_numgrad("cython")),
        Contender("numpy", "baseline", _mse_numgrad("numpy"), blas=True),
        Contender("scipy", "baseline", _scipy_3point, blas=True),
    ],
    {"scipy": 100.0}, quick=True, check=_check(1e-6),
))


# -- numgrad over an @njit loss vs scipy.optimize.approx_fprime ------------------


def _numgrad_njit(method):
    def make(d):
        A, y, w = d["A"], d["y"], d["w"]
        return lambda: fastgrad.numgrad(mse_loss_njit, w, args=(A, y), method=method)

    return make


def _approx_fprime(d):
    from scipy.optimize import approx_fprime

    A, y, w = d["A"], d["y"], d["w"]
    return lambda: approx_fprime(w, mse_loss_njit, np.sqrt(np.finfo(float).eps), A, y)


register(Case(
    "numgrad", "njit loss (1000, 50)", _setup(1000, 50),
    [
        Contender("fastgrad-numba", "fastgrad", _numgrad_njit("central")),
        Contender("fastgrad-numba-forward", "fastgrad", _numgrad_njit("forward")),
        Contender("scipy", "baseline", _approx_fprime),
    ],
    {"scipy": 10.0}, quick=True, check=_check(1e-5),
))


# -- thread scaling: the same numgrad call at 2 threads vs 1 thread ------------------


def _at_threads(n):
    def make(d):
        A, y, w = d["A"], d["y"], d["w"]
        n_use = min(n, _config._max_threads())

        def call():
            before = fastgrad.get_num_threads()
            fastgrad.set_num_threads(n_use)
            try:
                return fastgrad.numgrad(mse_loss_njit, w, args=(A, y))
            finally:
                fastgrad.set_num_threads(before)

        return call

    return make


register(Case(
    "numgrad-threads", "njit loss (4000, 200) 2 vs 1 threads", _setup(4000, 200),
    [
        Contender("fastgrad-numba", "fastgrad", _at_threads(2)),
        Contender("baseline", "baseline", _at_threads(1)),
    ],
    {"baseline": 1.8}, check=_check(1e-6),
))
