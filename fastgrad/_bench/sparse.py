"""Benchmark cases and checks of evaluating any f: numjac of a Python f, vectorized f, sparse Jacobians,
group_columns and detect_sparsity."""

from __future__ import annotations

import numpy as np
from numba import njit

import fastgrad

from .. import _config
from . import Case, Check, Contender, register, register_check

__all__ = ["tridiagonal_njit"]


@njit(**_config.NUMBA_FLAGS)
def tridiagonal_njit(x):
    """Broyden's tridiagonal function ``f_i = (3 - 2 x_i) x_i - x_{i-1} - 2 x_{i+1} + 1``."""
    n = x.size
    y = np.empty(n, dtype=x.dtype)
    for i in range(n):
        v = (3.0 - 2.0 * x[i]) * x[i] + 1.0
        if i > 0:
            v -= x[i - 1]
        if i < n - 1:
            v -= 2.0 * x[i + 1]
        y[i] = v
    return y


def _tridiagonal_exact(x):
    n = x.size
    return np.diag(3.0 - 4.0 * x) - np.eye(n, k=-1) - 2.0 * np.eye(n, k=1)


def _tri_structure(n):
    import scipy.sparse as sp

    return sp.diags([np.ones(n - 1), np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="csr")


# -- numjac of a Python f (a least-squares residual) vs scipy's approx_derivative -------------


def _residual_setup(m, n):
    def setup():
        rng = np.random.default_rng(m + n)
        t = np.linspace(0.0, 1.0, m)
        A = np.cos(np.outer(t, np.arange(n)))  # a cosine basis fitted to noisy data
        y = np.sin(3.0 * t) + 0.01 * rng.standard_normal(m)
        p = 0.1 * rng.standard_normal(n)
        assert np.abs(A).max() > 0 and np.abs(y).max() > 0
        return {"A": A, "y": y, "p": p}

    return setup


def _residual(A, y):
    def f(p):
        return np.tanh(A @ p) - y

    return f


def _numjac_python(d):
    f, p = _residual(d["A"], d["y"]), d["p"]
    return lambda: fastgrad.numjac(f, p, order="C")


def _approx_derivative(d):
    from scipy.optimize._numdiff import approx_derivative

    f, p = _residual(d["A"], d["y"]), d["p"]
    return lambda: approx_derivative(f, p, method="3-point")


def _check_residual(data, results):
    A, p = data["A"], data["p"]
    exact = (1.0 - np.tanh(A @ p) ** 2)[:, None] * A
    for name, J in results.items():
        np.testing.assert_allclose(J, exact, rtol=1e-6, atol=1e-8, err_msg=name)


for _m in (200, 2000):
    register(Case(
        "numjac-python", f"residual (m={_m}, n=50)", _residual_setup(_m, 50),
        [
            Contender("fastgrad", "fastgrad", _numjac_python, blas=True),
            Contender("scipy", "baseline", _approx_derivative, blas=True),
        ],
        {"scipy": 1.0}, target_of="fastgrad", quick=_m == 200, check=_check_residual, functions=("numjac",),
    ))


# -- vectorized=True vs one call per point: n = 2000, a ~2 ms numpy f ------------------------
#
# The setting of scipy's example of a vectorized map (n = 2000, one evaluation of
# f about 2 ms).  f reduces x to its sum and then runs a scalar fixed-point
# iteration (s <- s + (c_k - s^2) / 1000, 4800 steps): one point costs ~2 ms of
# interpretive overhead (19 200 numpy scalar operations; measured 1.9-2.2 ms on
# the development machine), which a stacked call pays once for all its points.
# (With 800 steps, a 0.33 ms f, the same code measured 40x: the stack's fixed
# cost, writing and reading its 32 MB, weighs more against a cheaper f.)

_STEPS = 4800


def _iterate(X, c):
    s = X.sum(axis=-1)
    for k in range(_STEPS):
        s = s + 0.001 * (c[k] - s * s)
    return s


def _vectorized_setup(n):
    def setup():
        x = np.linspace(0.0, 1e-3, n)  # sum(x) = 1
        c = np.linspace(0.5, 1.5, _STEPS)
        assert np.abs(x).max() > 0
        return {"x": x, "c": c}

    return setup


def _numgrad_vectorized(vectorized):
    def make(d):
        x, c = d["x"], d["c"]
        return lambda: fastgrad.numgrad(_iterate, x, args=(c,), method="forward", vectorized=vectorized)

    return make


def _check_vectorized(data, results):
    # the same differences; f's stacked and single-point numpy loops may round tanh differently
    np.testing.assert_allclose(results["fastgrad"], results["serial"], rtol=1e-5, atol=1e-7)
    assert np.abs(results["serial"]).max() > 0


register(Case(
    "numgrad-vectorized", "n = 2000, ~2 ms numpy f, forward", _vectorized_setup(2000),
    [
        Contender("fastgrad", "fastgrad", _numgrad_vectorized(True)),
        Contender("serial", "baseline", _numgrad_vectorized(False)),
    ],
    {"serial": 50.0}, target_of="fastgrad", check=_check_vectorized, functions=("numgrad",),
))


# -- numjac(sparsity=) of a tridiagonal @njit f, n = 10^4, vs approx_derivative(sparsity=) ----


def _sparse_setup(n):
    def setup():
        x = np.linspace(-1.0, 1.0, n)
        tridiagonal_njit(x)  # compiled before timing
        return {"x": x, "S": _tri_structure(n), "groups": np.arange(n) % 3}

    return setup


def _numjac_sparse(with_groups):
    def make(d):
        x, S, g = d["x"], d["S"], d["groups"]
        sparsity = (S, g) if with_groups else S
        return lambda: fastgrad.numjac(tridiagonal_njit, x, sparsity=sparsity)

    return make


def _scipy_sparse(with_groups):
    def make(d):
        from scipy.optimize._numdiff import approx_derivative

        x, S, g = d["x"], d["S"], d["groups"]
        sparsity = (S, g) if with_groups else S
        return lambda: approx_derivative(tridiagonal_njit, x, method="3-point", sparsity=sparsity)

    return make


def _check_sparse(data, results):
    x = data["x"]
    diag = 3.0 - 4.0 * x
    for name, J in results.items():
        np.testing.assert_allclose(J.diagonal(), diag, rtol=1e-6, atol=1e-8, err_msg=name)
        np.testing.assert_allclose(J.diagonal(1), -2.0, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(J.diagonal(-1), -1.0, rtol=1e-6, err_msg=name)


register(Case(
    "numjac-sparse", "tridiagonal njit n = 10^4, 3 groups given", _sparse_setup(10_000),
    [
        Contender("fastgrad-numba", "fastgrad", _numjac_sparse(True)),
        Contender("scipy", "baseline", _scipy_sparse(True)),
    ],
    {"scipy": 10.0}, quick=True, check=_check_sparse, functions=("numjac",),
))

register(Case(
    "numjac-sparse", "tridiagonal njit n = 10^4, structure only", _sparse_setup(10_000),
    [
        Contender("fastgrad-numba", "fastgrad", _numjac_sparse(False)),
        Contender("scipy", "baseline", _scipy_sparse(False)),
    ],
    {"scipy": 10.0}, check=_check_sparse, functions=("numjac", "group_columns"),
))


# ---------------------------------------------------------------------------
# Correctness checks


def _group_columns_check(backend, rng):
    from scipy.optimize._numdiff import group_columns

    S = rng.random((30, 25)) < 0.15
    return [(fastgrad.group_columns(S, order), group_columns(S, order)) for order in (0, 5, np.arange(25))]


def _sparse_numjac_check(backend, rng):
    f = tridiagonal_njit if backend == "numba" else getattr(tridiagonal_njit, "py_func", tridiagonal_njit)
    x = rng.uniform(-1.0, 1.0, 40)
    S = _tri_structure(40)
    pairs = []
    for method in ("central", "forward", "five-point", "complex", "adaptive"):
        J = fastgrad.numjac(f, x, method=method, sparsity=S).toarray()
        pairs.append((J, fastgrad.numjac(f, x, method=method, flatten=True)))
        pairs.append((J, _tridiagonal_exact(x)))
    return pairs


def _detect_sparsity_check(backend, rng):
    f = tridiagonal_njit if backend == "numba" else getattr(tridiagonal_njit, "py_func", tridiagonal_njit)
    S = fastgrad.detect_sparsity(f, rng.uniform(-1.0, 1.0, 12))
    return [(S.toarray(), _tri_structure(12).toarray() != 0)]


register_check(Check("group_columns random (30, 25) vs scipy", ("group_columns",), _group_columns_check,
                     rtol=0.0, atol=0.0))
register_check(Check("numjac sparsity= tridiagonal (40,)", ("numjac",), _sparse_numjac_check, rtol=1e-5,
                     atol=1e-6))
register_check(Check("detect_sparsity tridiagonal (12,)", ("detect_sparsity",), _detect_sparsity_check,
                     rtol=0.0, atol=0.0))
