"""Tests of numerical differentiation: numgrad, numjac, full_output, faults, threads."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import variants
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

import fastgrad
from fastgrad.numdiff import METHODS

REAL = ("forward", "backward", "central", "five-point")
THREADS = (1, 2)


def _set_threads(n):
    """Run on n threads (the ``threads`` fixture restores the count); skip where Numba has fewer."""
    if n > fastgrad._config._max_threads():
        pytest.skip(f"needs {n} Numba threads")
    fastgrad.set_num_threads(n)

# Functions of a matrix X with their analytic gradients -----------------------

B = np.array([[2.0, -1.0, 0.5], [0.3, 1.5, -0.7], [0.0, 0.4, 1.1]])


def quad(X):
    """sum_ij X_ij (B X)_ij for X (3, c): gradient (B + B^T) X."""
    return np.sum(X * (B @ X))


def quad_grad(X):
    return (B + B.T) @ X


def trans(X):
    """sum sin(X) exp(X / 3) + log(1 + X^2)."""
    return np.sum(np.sin(X) * np.exp(X / 3.0) + np.log1p(X * X))


def trans_grad(X):
    return np.exp(X / 3.0) * (np.cos(X) + np.sin(X) / 3.0) + 2.0 * X / (1.0 + X * X)


@njit
def trans_njit(X, scale):
    s = 0.0
    flat = X.reshape(X.size)
    for i in range(flat.size):
        v = flat[i]
        s += np.sin(v) * np.exp(v / 3.0) + np.log1p(v * v)
    return s * scale


@njit
def raises_njit(X, bound):
    if X.reshape(X.size)[0] > bound:
        raise ValueError("boom from njit")
    return np.sum(X)


@njit
def outer_njit(x, v):
    return np.outer(x, v)


def _tol(dtype, method):
    if dtype == np.float32:
        return {"forward": 3e-2, "backward": 3e-2, "central": 3e-3, "five-point": 3e-3, "complex": 1e-5}[method]
    return {"forward": 1e-6, "backward": 1e-6, "central": 1e-8, "five-point": 1e-10, "complex": 1e-13}[method]


shapes = st.tuples(st.integers(1, 4), st.integers(1, 4))


@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]),
       method=st.sampled_from(METHODS), seed=st.integers(0, 2**16))
def test_numgrad_transcendental(shape, dtype, method, seed):
    X = np.random.default_rng(seed).uniform(-1.5, 1.5, size=shape).astype(dtype)
    g = fastgrad.numgrad(trans, X, method=method)
    assert g.shape == X.shape and g.dtype == X.dtype
    np.testing.assert_allclose(g, trans_grad(X.astype(np.float64)), rtol=_tol(dtype, method),
                               atol=_tol(dtype, method))


@given(cols=st.integers(1, 4), method=st.sampled_from(("central", "five-point", "complex")),
       seed=st.integers(0, 2**16))
def test_numgrad_quadratic_exact(cols, method, seed):
    """Central, five-point and complex differences of a quadratic are exact up to rounding."""
    X = np.random.default_rng(seed).normal(size=(3, cols))
    np.testing.assert_allclose(fastgrad.numgrad(quad, X, method=method, h=0.5), quad_grad(X),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method,order", [("forward", 1), ("backward", 1), ("central", 2), ("five-point", 4)])
def test_convergence_order(method, order):
    """The error falls as h^p: the fitted slope of log(err) against log(h) is the method's order."""
    X = np.array([[0.3, -0.8], [1.1, 0.45]])
    hs = np.array([0.2, 0.1, 0.05, 0.025]) if order == 4 else np.array([0.02, 0.01, 0.005, 0.0025])
    errs = [np.abs(fastgrad.numgrad(trans, X, h=h, method=method) - trans_grad(X)).max() for h in hs]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.2, (slope, errs)


def test_default_steps_are_dtype_aware():
    """float32 x gets eps32-based steps: a float64-sized step would vanish or be noise."""
    X = np.array([[1.0, 2.0]], dtype=np.float32)
    g32 = fastgrad.numgrad(trans, X)
    np.testing.assert_allclose(g32, trans_grad(X.astype(np.float64)), rtol=3e-3)
    # an absolute step below float32's resolution is rejected, not silently zero
    with pytest.raises(ValueError, match="vanishes"):
        fastgrad.numgrad(trans, X, h=1e-12)


def test_full_output_error_estimate():
    X = np.array([[0.3, -0.8, 1.2]])
    for method in METHODS:
        g, err = fastgrad.numgrad(trans, X, method=method, full_output=True)
        actual = np.abs(g - trans_grad(X))
        assert err.shape == X.shape
        assert np.all(err >= 0.5 * actual), (method, err, actual)
        assert err.max() < _tol(np.float64, method), (method, err)  # small: at the method's accuracy
        np.testing.assert_array_equal(g, fastgrad.numgrad(trans, X, method=method))


def test_any_shape_and_args():
    for shape in [(), (5,), (2, 3), (2, 1, 3)]:
        X = np.random.default_rng(1).uniform(-1, 1, size=shape)
        g = fastgrad.numgrad(trans_njit.py_func, X, args=(2.0,))
        assert g.shape == X.shape
        np.testing.assert_allclose(g, 2.0 * trans_grad(X), rtol=1e-8, atol=1e-9)
    assert fastgrad.numgrad(trans, np.empty((0, 3))).shape == (0, 3)


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("method", METHODS)
def test_njit_path_bitwise_equals_python_path(method, n_threads, threads):
    """The compiled loop does the same arithmetic as the Python loop over the same compiled f."""
    X = np.random.default_rng(2).uniform(-1, 1, size=(3, 5))
    _set_threads(n_threads)
    g_jit, e_jit = fastgrad.numgrad(trans_njit, X, args=(1.5,), method=method, full_output=True)
    g_py, e_py = fastgrad.numgrad(lambda X, s: trans_njit(X, s), X, args=(1.5,), method=method,
                                  full_output=True)
    np.testing.assert_array_equal(g_jit, g_py)
    np.testing.assert_array_equal(e_jit, e_py)
    np.testing.assert_allclose(g_jit, 1.5 * trans_grad(X), rtol=_tol(np.float64, method), atol=1e-6)
    g_serial = fastgrad.numgrad(trans_njit, X, args=(1.5,), method=method, parallel=False)
    np.testing.assert_array_equal(g_jit, g_serial)


@pytest.mark.parametrize("n_threads", THREADS)
def test_threads_bitwise(n_threads, threads):
    """Every thread count gives the bits of the serial loop (so 1 and 2 threads agree)."""
    X = np.random.default_rng(3).uniform(-1, 1, size=(7, 9))
    _set_threads(n_threads)
    np.testing.assert_array_equal(fastgrad.numgrad(trans_njit, X, args=(1.0,)),
                                  fastgrad.numgrad(trans_njit, X, args=(1.0,), parallel=False))
    np.testing.assert_array_equal(fastgrad.numjac(outer_njit, X[0], args=(X[1],)),
                                  fastgrad.numjac(outer_njit, X[0], args=(X[1],), parallel=False))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_bitwise(workers):
    X = np.random.default_rng(4).uniform(-1, 1, size=(4, 5))
    serial = fastgrad.numgrad(trans, X, method="five-point")
    np.testing.assert_array_equal(fastgrad.numgrad(trans, X, method="five-point", workers=workers), serial)


def test_hostile_layouts_and_x_not_written(tmp_path):
    X = np.random.default_rng(5).uniform(-1, 1, size=(4, 3))
    ref = fastgrad.numgrad(trans, X)
    for label, Xv in variants(X, tmp_path):
        before = np.array(Xv)
        np.testing.assert_array_equal(fastgrad.numgrad(trans, Xv), ref, err_msg=label)
        np.testing.assert_array_equal(np.asarray(Xv), before, err_msg=label)
    seen = []

    def spy(Z):
        seen.append(Z)
        return trans(Z)

    fastgrad.numgrad(spy, X)
    assert all(not np.shares_memory(Z, X) for Z in seen)


def test_int_input_becomes_float64():
    g = fastgrad.numgrad(lambda x: np.sum(x.astype(float) ** 2), np.array([1, 2, 3]))
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [2.0, 4.0, 6.0], rtol=1e-9)


# Bad input and faults ------------------------------------------------------------


@pytest.mark.parametrize("h", [0.0, -1e-3, np.nan, np.inf, [1e-3, 0.0]])
def test_bad_step(h):
    with pytest.raises(ValueError, match="finite and > 0"):
        fastgrad.numgrad(trans, np.ones(2), h=h)


def test_step_shape_mismatch():
    with pytest.raises(ValueError, match=r"h has shape \(3,\) but x has shape \(2,\)"):
        fastgrad.numgrad(trans, np.ones(2), h=[1e-3, 1e-3, 1e-3])


def test_unknown_method():
    with pytest.raises(ValueError, match="'forward', 'backward', 'central', 'five-point', 'complex'"):
        fastgrad.numgrad(trans, np.ones(2), method="3-point")


def test_non_scalar_f():
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*numjac"):
        fastgrad.numgrad(lambda x: np.outer(x, x), np.ones(2))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        fastgrad.numgrad(outer_njit, np.ones(2), args=(np.ones(2),))


def test_nan_only_at_that_entry():
    def f(x):
        return np.nan if x[1] > 1.0 else np.sum(x**2)

    g = fastgrad.numgrad(f, np.array([1.0, 1.0, 1.0]))
    assert np.isnan(g[1]) and np.isfinite(g[[0, 2]]).all()
    np.testing.assert_allclose(g[[0, 2]], 2.0, rtol=1e-8)


def test_exception_propagates_x_unchanged():
    x = np.array([[0.2, 0.4], [0.6, 0.8]])
    before = x.copy()

    def f(z):
        if z[1, 1] > 0.8:
            raise KeyError("boom")
        return np.sum(z)

    with pytest.raises(KeyError, match="boom"):
        fastgrad.numgrad(f, x)
    with pytest.raises(KeyError, match="boom"):
        fastgrad.numgrad(f, x, workers=2)
    np.testing.assert_array_equal(x, before)
    # njit f: raised inside the parallel compiled loop, f's own exception comes back
    with pytest.raises(ValueError, match="boom from njit"):
        fastgrad.numgrad(raises_njit, x, args=(0.2,))
    with pytest.raises(ValueError, match="boom from njit"):
        fastgrad.numgrad(raises_njit, x, args=(0.2,), parallel=False)
    np.testing.assert_array_equal(x, before)
    assert fastgrad.numgrad(raises_njit, x, args=(5.0,)).shape == x.shape  # still usable


def test_complex_rejected_clearly():
    with pytest.raises(TypeError, match="method='complex' needs f to accept complex x"):
        fastgrad.numgrad(lambda x: float(x[0]) ** 2, np.ones(2), method="complex")
    with pytest.raises(TypeError, match="returned float"):
        fastgrad.numgrad(lambda x: 1.0, np.ones(2), method="complex")
    with pytest.raises(TypeError, match="ComplexWarning"):
        fastgrad.numgrad(lambda x: np.sum(x.astype(np.float64)), np.ones(2), method="complex")


def test_complex_x_and_bad_workers():
    with pytest.raises(TypeError, match="complex"):
        fastgrad.numgrad(trans, np.ones(2) + 1j)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        fastgrad.numgrad(trans, np.ones(2), workers=0)


# numjac ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_numjac_Wx(method):
    """d(W x)/dW: shape (n,) + (n, m); flattened it is x^T (x) I_n ('F') or I_n (x) x^T ('C')."""
    rng = np.random.default_rng(6)
    W = rng.normal(size=(2, 3))
    x = rng.normal(size=3)
    J = fastgrad.numjac(lambda W: W @ x, W, method=method)
    expect = np.einsum("ia,b->iab", np.eye(2), x)
    np.testing.assert_allclose(J, expect, atol=1e-6)
    np.testing.assert_allclose(fastgrad.numjac(lambda W: W @ x, W, method=method, flatten=True, order="F"),
                               np.kron(x, np.eye(2)), atol=1e-6)
    np.testing.assert_allclose(fastgrad.numjac(lambda W: W @ x, W, method=method, flatten=True, order="C"),
                               np.kron(np.eye(2), x), atol=1e-6)
    # 'F' is the default of every function that flattens
    np.testing.assert_allclose(fastgrad.numjac(lambda W: W @ x, W, method=method, flatten=True),
                               np.kron(x, np.eye(2)), atol=1e-6)


def test_default_order_matches_the_closed_form_jacobians():
    # with the defaults, numjac's flattened Jacobian of X -> A X B is jacobian_AXB(A, B)
    rng = np.random.default_rng(8)
    A, X, B = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(fastgrad.numjac(lambda X: A @ X @ B, X, flatten=True), fastgrad.jacobian_AXB(A, B),
                               atol=1e-8)
    np.testing.assert_allclose(fastgrad.matmul_jacobian(A, X, B, wrt=1, flatten=True),
                               fastgrad.jacobian_AXB(A, B), atol=1e-12)


@pytest.mark.parametrize("method", REAL)
def test_numjac_njit_matches_python(method):
    x = np.array([0.5, -1.0, 2.0])
    v = np.array([1.0, 2.0])
    J = fastgrad.numjac(outer_njit, x, args=(v,), method=method)
    assert J.shape == (3, 2, 3)
    np.testing.assert_array_equal(J, fastgrad.numjac(lambda x, v: outer_njit(x, v), x, args=(v,), method=method))
    np.testing.assert_allclose(J, np.einsum("ia,b->iba", np.eye(3), v), atol=1e-6)


def test_numjac_scalar_f_is_gradient_and_errors():
    X = np.array([[0.3, 0.6]])
    np.testing.assert_array_equal(fastgrad.numjac(trans, X), fastgrad.numgrad(trans, X))
    with pytest.raises(ValueError, match="order must be one of 'C', 'F'"):
        fastgrad.numjac(trans, X, order="K")
    calls = []

    def changing(x):
        calls.append(1)
        return np.ones(len(calls))

    with pytest.raises(ValueError, match=r"f returned shape \(2,\) at x \+ h e_j but \(1,\) at x"):
        fastgrad.numjac(changing, np.ones(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["forward", "backward", "central", "five-point"])
@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_default_steps_never_vanish(dtype, method, x):
    """x + h != x for the default steps at every finite x (default_steps checks given steps only)."""
    from fastgrad._steps import default_steps

    with np.errstate(over="ignore"):
        xa = np.array([x, -x]).astype(dtype)  # float32: out of range becomes inf, skipped
    if not np.isfinite(xa).all():
        return
    for full in (False, True):
        steps = default_steps(xa, None, method, full)
        for s in (steps, 0.5 * steps) if full else (steps,):
            with np.errstate(over="ignore"):
                moved = (xa - s if method == "backward" else xa + s).astype(dtype)
            assert (moved != xa).all()
