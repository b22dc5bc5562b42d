"""Tests of the scipy.optimize drop-ins (approx_fprime, check_grad) and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

import fastgrad


def rosen_args(x, c):
    return c * so.rosen(x)


@njit
def quad_njit(x, c):
    return c * np.sum(x * x * x)


def vec_f(x):
    return np.array([x[0] ** 2 * x[1], np.sin(x[0]) + x[1], np.exp(x[1] / 3)])


@njit
def vec_njit(x, c):
    return np.array([c * x[0] ** 2 * x[-1], np.sin(x[0]) + x[-1], np.sum(np.exp(x / 3))])


@given(n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_approx_fprime_matches_scipy(n, seed):
    x = np.random.default_rng(seed).uniform(-2, 2, size=n)
    np.testing.assert_array_equal(fastgrad.approx_fprime(x, rosen_args, 1e-7, 2.0)
                                  if n > 1 else fastgrad.approx_fprime(x, np.sum),
                                  so.approx_fprime(x, rosen_args, 1e-7, 2.0)
                                  if n > 1 else so.approx_fprime(x, np.sum))


def test_approx_fprime_variants_match_scipy():
    x = np.array([0.5, -1.5])
    for eps in [np.sqrt(np.finfo(float).eps), [1e-6, 1e-4], 0.0, -1e-6, 1e-30]:
        np.testing.assert_array_equal(fastgrad.approx_fprime(x, vec_f, eps), so.approx_fprime(x, vec_f, eps))
        np.testing.assert_array_equal(fastgrad.approx_fprime(x, rosen_args, eps, 1.0),
                                      so.approx_fprime(x, rosen_args, eps, 1.0))
    got = fastgrad.approx_fprime(x, vec_f)
    assert got.shape == (3, 2)
    np.testing.assert_array_equal(fastgrad.approx_fprime(3.0, np.sin), so.approx_fprime(3.0, np.sin))
    np.testing.assert_array_equal(fastgrad.approx_fprime([1, 2], lambda x: x[:1] * 2.0),
                                  so.approx_fprime([1, 2], lambda x: x[:1] * 2.0))
    # njit f: compiled path, same arithmetic
    np.testing.assert_array_equal(fastgrad.approx_fprime(x, quad_njit, 1e-7, 2.0),
                                  so.approx_fprime(x, quad_njit, 1e-7, 2.0))
    with pytest.raises(ValueError, match="at most 1 dimension"):
        fastgrad.approx_fprime(np.ones((2, 2)), np.sum)
    with pytest.raises(ValueError, match="more than 1 dimension"):
        fastgrad.approx_fprime(np.ones(2), lambda x: np.ones((2, 2)))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_approx_fprime_njit_matches_scipy_at_threads(n_threads, threads):
    """The compiled loops (gradient and Jacobian) give scipy's bits on every thread count."""
    if n_threads > fastgrad._config._max_threads():
        pytest.skip(f"needs {n_threads} Numba threads")
    fastgrad.set_num_threads(n_threads)
    x = np.random.default_rng(3).uniform(-2, 2, size=11)
    for eps in (1e-7, np.linspace(1e-8, 1e-5, 11), -1e-6, 0.0):
        np.testing.assert_array_equal(fastgrad.approx_fprime(x, quad_njit, eps, 2.0),
                                      so.approx_fprime(x, quad_njit, eps, 2.0))
        np.testing.assert_array_equal(fastgrad.approx_fprime(x, vec_njit, eps, 2.0),
                                      so.approx_fprime(x, vec_njit, eps, 2.0))


def test_moved_names_still_importable_from_numdiff():
    """approx_fprime, check_grad, gradcheck & co. live in fastgrad.gradient_checks; fastgrad.numdiff re-exports them."""
    import importlib

    import fastgrad.numdiff as nd

    gc = importlib.import_module("fastgrad.gradient_checks")
    for name in ("approx_fprime", "check_grad", "gradcheck", "GradcheckResult", "GradientMismatchError"):
        assert getattr(nd, name) is getattr(gc, name) is getattr(fastgrad, name)
    from fastgrad.numdiff import approx_fprime  # noqa: F401
    with pytest.raises(AttributeError):
        nd.no_such_name  # noqa: B018


def test_check_grad_matches_scipy():
    func = lambda x: x[0] ** 2 - 0.5 * x[1] ** 3 + np.sin(x[2])  # noqa: E731
    grad = lambda x: [2 * x[0], -1.5 * x[1] ** 2, np.cos(x[2])]  # noqa: E731
    wrong = lambda x: [2 * x[0], -1.5 * x[1] ** 2, np.cos(x[2]) + 0.1]  # noqa: E731
    x0 = [1.5, -1.5, 0.3]
    for g in (grad, wrong):
        assert fastgrad.check_grad(func, g, x0) == so.check_grad(func, g, x0)
        assert fastgrad.check_grad(func, g, x0, epsilon=1e-6) == so.check_grad(func, g, x0, epsilon=1e-6)
        assert (fastgrad.check_grad(func, g, x0, direction="random", seed=5)
                == so.check_grad(func, g, x0, direction="random", seed=5))
        assert (fastgrad.check_grad(func, g, x0, direction="random", rng=5)
                == so.check_grad(func, g, x0, direction="random", rng=5))
    assert fastgrad.check_grad(func, wrong, x0) > 0.09
    with pytest.raises(ValueError, match="not a valid string"):
        fastgrad.check_grad(func, grad, x0, direction="some")
    with pytest.raises(ValueError, match="scalar valued"):
        fastgrad.check_grad(vec_f, lambda x: np.ones((3, 2)), [1.0, 2.0], direction="random")


# gradcheck -----------------------------------------------------------------------------


def f_mat(X):
    return np.sum(np.tanh(X) * X)


def g_mat(X):
    return np.tanh(X) + X * (1 - np.tanh(X) ** 2)


def test_gradcheck_passes_and_result_fields():
    X = np.random.default_rng(11).normal(size=(3, 4))
    r = fastgrad.gradcheck(f_mat, g_mat, X)
    assert isinstance(r, fastgrad.GradcheckResult) and r.ok
    assert r.max_abs_err < 1e-8 and r.max_rel_err < 1e-7
    assert r.analytic.shape == r.numeric.shape == X.shape
    assert isinstance(r.worst_index, tuple) and len(r.worst_index) == 2


@pytest.mark.parametrize("method", ["central", "five-point", "complex"])
def test_gradcheck_points_at_the_wrong_entry(method):
    X = np.random.default_rng(12).normal(size=(3, 4))

    def bad(X):
        g = g_mat(X)
        g[2, 1] *= 1.001
        return g

    with pytest.raises(fastgrad.GradientMismatchError, match=r"1 of 12 entries differ.*index \(2, 1\)") as info:
        fastgrad.gradcheck(f_mat, bad, X, method=method)
    assert isinstance(info.value, AssertionError)
    assert "(2, 1)" in str(info.value).splitlines()[-1]  # the table row of the worst entry
    r = fastgrad.gradcheck(f_mat, bad, X, method=method, raise_exception=False)
    assert not r.ok and r.worst_index == (2, 1)


def test_gradcheck_catches_seed_004_slip():
    """Seed 004's `/ 2*h` divides by 2 and multiplies by h: gradcheck must flag it."""
    A = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float64)
    Y = np.array([[14.0], [32.0], [50.0]])
    np.random.seed(0)  # noqa: NPY002 - the seed's own data
    W = np.random.randn(3, 1)  # noqa: NPY002

    def loss(W):
        return ((Y - A @ W) ** 2).mean()

    def seed_dW(W, h=0.1):
        dw = []
        for i in range(len(W)):
            w_plus, w_minus = W.copy(), W.copy()
            w_plus[i][0] += h
            w_minus[i][0] -= h
            dw.append((loss(w_plus) - loss(w_minus)) / 2*h)  # the slip, verbatim
        return np.array(dw).reshape(-1, 1)

    def fixed_dW(W, h=0.1):
        return np.array([(loss(W + h * e) - loss(W - h * e)) / (2 * h)
                         for e in np.eye(3).reshape(3, 3, 1)]).reshape(-1, 1)

    with pytest.raises(fastgrad.GradientMismatchError, match="3 of 3 entries differ"):
        fastgrad.gradcheck(loss, seed_dW, W)
    assert fastgrad.gradcheck(loss, fixed_dW, W).ok
    # the slip is exactly a factor h^2 = 0.01
    np.testing.assert_allclose(seed_dW(W), 0.01 * fixed_dW(W), rtol=1e-12)


def test_gradcheck_njit_and_bad_shapes():
    x = np.array([0.5, 1.0, -2.0])
    assert fastgrad.gradcheck(quad_njit, lambda x, c: 3 * c * x**2, x, args=(2.0,)).ok
    with pytest.raises(ValueError, match=r"grad returned an array of shape \(2,\) but x has shape \(3,\)"):
        fastgrad.gradcheck(quad_njit, lambda x, c: x[:2], x, args=(2.0,))
    r = fastgrad.gradcheck(lambda x: np.nan, lambda x: np.zeros(3), x, raise_exception=False)
    assert not r.ok
