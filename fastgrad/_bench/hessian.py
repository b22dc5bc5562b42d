"""Correctness checks and the benchmark case of second derivatives: numhess, numhess_diag, numhvp,
hesscheck, and the Taylor test (taylor_test, TaylorResult)."""

from __future__ import annotations

import importlib.util

import numpy as np
from numba import njit, prange

import fastgrad

from .. import _config
from . import Case, Check, Contender, register, register_check

__all__ = ["sin_chain", "sin_chain_hessian", "evaluation_floor"]


@njit(**_config.NUMBA_EXACT_FLAGS)
def sin_chain(x):
    """``sum_i sin(x_i) x_{i+1} + x . x`` over the flattened x: a banded Hessian."""
    flat = x.reshape(x.size)
    n = flat.size
    s = 0.0
    for i in range(n - 1):
        s += np.sin(flat[i]) * flat[i + 1]
    for i in range(n):
        s += flat[i] * flat[i]
    return s


def sin_chain_grad(x):
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    g = 2.0 * flat
    g[:-1] += np.cos(flat[:-1]) * flat[1:]
    g[1:] += np.sin(flat[:-1])
    return g.reshape(np.shape(x))


def sin_chain_hessian(x):
    """The closed form: ``H_ii = 2 - sin(x_i) x_{i+1}``, ``H_i,i+1 = cos(x_i)`` (flattened x; shape x.shape * 2)."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    n = flat.size
    H = 2.0 * np.eye(n)
    i = np.arange(n - 1)
    H[i, i] -= np.sin(flat[:-1]) * flat[1:]
    H[i, i + 1] = H[i + 1, i] = np.cos(flat[:-1])
    return H.reshape(np.shape(x) * 2)


def _user_f(f, backend):
    """The numba backend differentiates the @njit f (the compiled loop), the others its Python function."""
    return f if backend == "numba" else getattr(f, "py_func", f)


# ---------------------------------------------------------------------------
# Correctness checks (``fastgrad check``, tests/test_registry.py)


def _numhess_check(backend, rng):
    x = rng.uniform(-1.0, 1.0, size=(2, 3))
    f = _user_f(sin_chain, backend)
    H = fastgrad.numhess(f, x)
    return [(H, sin_chain_hessian(x)), (H, np.swapaxes(np.swapaxes(H, 0, 2), 1, 3))]


register_check(Check("numhess sin chain (2, 3)", ("numhess",), _numhess_check, rtol=1e-6, atol=1e-6))


def _numhess_diag_check(backend, rng):
    x = rng.uniform(-1.0, 1.0, size=7)
    f = _user_f(sin_chain, backend)
    return [(fastgrad.numhess_diag(f, x), np.diag(sin_chain_hessian(x)))]


register_check(Check("numhess_diag sin chain (7,)", ("numhess_diag",), _numhess_diag_check, rtol=1e-6, atol=1e-6))


def _numhvp_check(backend, rng):
    x = rng.uniform(-1.0, 1.0, size=6)
    v = rng.standard_normal(6)
    f = _user_f(sin_chain, backend)
    Hv = sin_chain_hessian(x) @ v
    return [(fastgrad.numhvp(f, x, v), Hv), (fastgrad.numhvp(f, x, v, grad=sin_chain_grad), Hv)]


register_check(Check("numhvp sin chain (6,), numgrad and analytic gradient", ("numhvp",), _numhvp_check,
                     rtol=1e-6, atol=1e-6))


def _hesscheck_check(backend, rng):
    x = rng.uniform(-1.0, 1.0, size=5)
    f = _user_f(sin_chain, backend)
    good = fastgrad.hesscheck(f, sin_chain_hessian, x)
    off = np.zeros((5, 5))
    off[1, 3] = off[3, 1] = 1e-2

    def wrong(x):
        return sin_chain_hessian(x) + off

    bad = fastgrad.hesscheck(f, wrong, x, raise_exception=False)
    try:
        fastgrad.hesscheck(f, wrong, x)
        raised = False
    except fastgrad.GradientMismatchError:
        raised = True
    return [(good.ok, True), (good.numeric, sin_chain_hessian(x)), (bad.ok, False),
            (bad.worst_index in ((1, 3), (3, 1)), True), (raised, True)]


register_check(Check("hesscheck sin chain (5,), right and wrong Hessian", ("hesscheck",), _hesscheck_check,
                     rtol=1e-6, atol=1e-6))


def _taylor_check(backend, rng):
    x = rng.uniform(-1.0, 1.0, size=8)
    f = _user_f(sin_chain, backend)
    right = fastgrad.taylor_test(f, sin_chain_grad, x)
    slip = fastgrad.taylor_test(f, lambda x: 0.01 * sin_chain_grad(x), x)  # the /2*h slip: h^2 g, h = 0.1
    sign = fastgrad.taylor_test(f, lambda x: -sin_chain_grad(x), x)
    return [(isinstance(right, fastgrad.TaylorResult), True), (right.ok, True), (abs(right.order - 2.0) < 0.2, True),
            (slip.ok, False), (abs(slip.order - 1.0) < 0.2, True), (sign.ok, False),
            (right.steps.shape, (12,)), (right.errors.shape, (12,))]


register_check(Check("taylor_test sin chain (8,), right, h^2-scaled and negated gradient",
                     ("taylor_test", "TaylorResult"), _taylor_check))


# ---------------------------------------------------------------------------
# Benchmark: numhess of an @njit f, n = 200, vs its evaluation floor and numdifftools


@njit(**_config.NUMBA_USER_PARALLEL_FLAGS)
def _evaluation_floor(f, x, args, n_evals, n_chunks, out):
    """``n_evals`` evaluations of ``f(x, *args)`` over ``n_chunks`` prange chunks, one element perturbed each time."""
    n = x.size
    for c in prange(n_chunks):
        xc = x.copy()
        s = 0.0
        for k in range(c * n_evals // n_chunks, (c + 1) * n_evals // n_chunks):
            j = k % n
            xc[j] = x[j] + 1e-4  # a new point every time: nothing to hoist out of the loop
            s += f(xc, *args)
            xc[j] = x[j]
        out[c] = s


def evaluation_floor(f, x, n_evals, n_threads=None, args=()):
    """The time floor of a finite-difference call: ``n_evals`` evaluations of ``f(x, *args)`` on ``n_threads`` threads.

    Nothing but the evaluations (no stencil, no copies to restore): n_evals x one
    evaluation / threads, measured by running them.
    """
    n_threads = _config.numba_threads(n_threads)
    out = np.empty(n_threads)
    with _config.parallel_guard():
        _evaluation_floor(f, x, tuple(args), n_evals, n_threads, out)
    return out


N_HESS = 200


def _hess_setup():
    x = np.random.default_rng(N_HESS).uniform(-1.0, 1.0, N_HESS)
    return {"x": x}


def _numhess(d):
    x = d["x"]
    return lambda: fastgrad.numhess(sin_chain, x)


def _floor(d):
    x = d["x"]
    n_evals = 2 * x.size * x.size + 1  # numhess's: 4 per pair i < j, 2 per diagonal entry, f(x)
    return lambda: evaluation_floor(sin_chain, x, n_evals)


def _numdifftools(d):
    import numdifftools as nd

    x = d["x"]
    hess = nd.Hessian(sin_chain)
    return lambda: hess(x)


def _hess_case_check(data, results):
    ref = sin_chain_hessian(data["x"])
    for name, got in results.items():
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=name)


_contenders = [
    Contender("fastgrad-numba", "fastgrad", _numhess),
    Contender("floor", "floor", _floor),
]
_targets = {"floor": 1.2}
if importlib.util.find_spec("numdifftools") is not None:
    _contenders.append(Contender("numdifftools", "baseline", _numdifftools))
    _targets["numdifftools"] = 20.0

register(Case("numhess", f"njit f n={N_HESS}", _hess_setup, _contenders, _targets, quick=False,
              check=_hess_case_check))


# -- numhess_diag vs numdifftools.Hessdiag; numhess vs scipy.differentiate.hessian ------------------


def sin_chain_vectorized(X):
    """``sin_chain`` of the points ``X[:, k...]`` (axis 0 runs over the elements of x): scipy.differentiate's f."""
    return np.sum(np.sin(X[:-1]) * X[1:], axis=0) + np.sum(X * X, axis=0)


def _numhess_diag(d):
    x = d["x"]
    return lambda: fastgrad.numhess_diag(sin_chain, x)


def _diag_floor(d):
    x = d["x"]
    return lambda: evaluation_floor(sin_chain, x, 2 * x.size + 1)  # numhess_diag's: 2 per element, f(x)


def _nd_hessdiag(d):
    import numdifftools as nd

    x = d["x"]
    hessdiag = nd.Hessdiag(sin_chain)
    return lambda: hessdiag(x)


def _diag_case_check(data, results):
    ref = np.diag(sin_chain_hessian(data["x"]))
    for name, got in results.items():
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=name)


_diag_contenders = [
    Contender("fastgrad-numba", "fastgrad", _numhess_diag),
    Contender("floor", "floor", _diag_floor),
]
_diag_targets = {"floor": 1.5}
if importlib.util.find_spec("numdifftools") is not None:
    _diag_contenders.append(Contender("numdifftools", "baseline", _nd_hessdiag))
    _diag_targets["numdifftools"] = 20.0

register(Case("numhess_diag", f"njit f n={N_HESS}", _hess_setup, _diag_contenders, _diag_targets, quick=False,
              check=_diag_case_check))

N_HESS_SCIPY = 30  # scipy.differentiate.hessian iterates on an (n, n, ...) stack: a smaller n


def _hess_scipy_setup():
    return {"x": np.random.default_rng(N_HESS_SCIPY).uniform(-1.0, 1.0, N_HESS_SCIPY)}


def _numhess_adaptive(d):
    x = d["x"]
    return lambda: fastgrad.numhess(sin_chain, x, method="adaptive")


def _scipy_hessian(d):
    from scipy.differentiate import hessian

    x = d["x"]
    return lambda: hessian(sin_chain_vectorized, x).ddf


_scipy_contenders = [
    Contender("fastgrad-numba", "fastgrad", _numhess),
    Contender("fastgrad-numba-adaptive", "fastgrad", _numhess_adaptive),
]
if importlib.util.find_spec("scipy.differentiate") is not None:
    _scipy_contenders.append(Contender("scipy.differentiate", "baseline", _scipy_hessian))

register(Case("numhess", f"njit f n={N_HESS_SCIPY}, vs scipy.differentiate", _hess_scipy_setup, _scipy_contenders,
              {}, quick=False, check=_hess_case_check))
