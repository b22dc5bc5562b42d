"""Tests of second derivatives: numhess, numhess_diag, numhvp, hesscheck, and the Taylor test."""

from __future__ import annotations

import math

import naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

import fastgrad
from fastgrad import _config

# Functions of the flattened x with closed-form Hessians -----------------------
# Each has a Python version (numpy) and an @njit one (loops, the same formula).


def quad(x, A):
    """x^T A x over the flattened x: H = A + A^T."""
    flat = x.reshape(-1)
    return flat @ A @ flat


def quad_hess(x, A):
    return A + A.T


@njit
def quad_njit(x, A):
    flat = x.reshape(x.size)
    s = 0.0
    for i in range(flat.size):
        for j in range(flat.size):
            s += flat[i] * A[i, j] * flat[j]
    return s


def rosen(x):
    """Rosenbrock: sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2."""
    z = x.reshape(-1)
    return np.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2)


def rosen_hess(x):
    z = np.asarray(x, dtype=np.float64).reshape(-1)
    n = z.size
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200.0 * z[i] ** 2 - 400.0 * z[i + 1] + 2.0
        H[i + 1, i + 1] += 200.0
        H[i, i + 1] = H[i + 1, i] = -400.0 * z[i]
    return H


@njit
def rosen_njit(x):
    z = x.reshape(x.size)
    s = 0.0
    for i in range(z.size - 1):
        s += 100.0 * (z[i + 1] - z[i] * z[i]) ** 2 + (1.0 - z[i]) ** 2
    return s


def lse(x):
    """log sum exp x (stable): H = diag(p) - p p^T, p = softmax(x)."""
    z = x.reshape(-1)
    m = np.max(z)
    return m + np.log(np.sum(np.exp(z - m)))


def lse_hess(x):
    z = np.asarray(x, dtype=np.float64).reshape(-1)
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.diag(p) - np.outer(p, p)


@njit
def lse_njit(x):
    z = x.reshape(x.size)
    m = z.max()
    s = 0.0
    for i in range(z.size):
        s += np.exp(z[i] - m)
    return m + np.log(s)


def sinprod(x):
    """sum_i sin(x_i x_{i+1}) + sum_i sin(x_i): products inside sines."""
    z = x.reshape(-1)
    return np.sum(np.sin(z[:-1] * z[1:])) + np.sum(np.sin(z))


def sinprod_hess(x):
    z = np.asarray(x, dtype=np.float64).reshape(-1)
    n = z.size
    H = np.diag(-np.sin(z))
    for i in range(n - 1):
        u = z[i] * z[i + 1]
        H[i, i] -= np.sin(u) * z[i + 1] ** 2
        H[i + 1, i + 1] -= np.sin(u) * z[i] ** 2
        H[i, i + 1] = H[i + 1, i] = np.cos(u) - np.sin(u) * u
    return H


@njit
def sinprod_njit(x):
    z = x.reshape(x.size)
    s = 0.0
    for i in range(z.size - 1):
        s += np.sin(z[i] * z[i + 1])
    for i in range(z.size):
        s += np.sin(z[i])
    return s


CASES = {  # name: (python f, njit f, closed-form Hessian (flattened), x range, extra args)
    "quad": (quad, quad_njit, quad_hess, 2.0, True),
    "rosen": (rosen, rosen_njit, rosen_hess, 1.5, False),
    "lse": (lse, lse_njit, lse_hess, 3.0, False),
    "sinprod": (sinprod, sinprod_njit, sinprod_hess, 1.5, False),
}


def _problem(name, shape, dtype, seed):
    py, nj, hess, scale, with_A = CASES[name]
    rng = np.random.default_rng(seed)
    x = rng.uniform(-scale, scale, size=shape).astype(dtype)
    n = x.size
    args = (rng.standard_normal((n, n)),) if with_A else ()
    xf = x.astype(np.float64)
    exact = hess(xf, *args).reshape(x.shape * 2)
    f0 = abs(float(py(xf, *args)))
    return py, nj, x, args, exact, f0


def _assert_close(H, exact, f0, dtype):
    """A Hessian by differences is good to ~sqrt(eps) (|f| + |H|) in the entries' scale."""
    scale = max(1.0, f0, float(np.abs(exact).max()))
    tol = (2e-6 if dtype == np.float64 else 3e-2) * scale
    np.testing.assert_allclose(H.astype(np.float64), exact, rtol=0, atol=tol)


SHAPES = st.sampled_from([(1,), (2,), (3,), (5,), (2, 3), (3, 1), (1, 1)])


@given(name=st.sampled_from(sorted(CASES)), shape=SHAPES, dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_closed_forms_python_f(name, shape, dtype, seed):
    py, _, x, args, exact, f0 = _problem(name, shape, dtype, seed)
    H = fastgrad.numhess(py, x, args=args)
    assert H.shape == x.shape * 2 and H.dtype == dtype
    _assert_close(H, exact, f0, dtype)
    n = x.size
    assert np.array_equal(H.reshape(n, n), H.reshape(n, n).T)  # symmetric by construction, bit for bit


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("shape,dtype", [((6,), np.float64), ((2, 3), np.float64), ((5,), np.float32)])
def test_closed_forms_njit_f(name, shape, dtype):
    _, nj, x, args, exact, f0 = _problem(name, shape, dtype, 7)
    H = fastgrad.numhess(nj, x, args=args)
    assert H.shape == x.shape * 2 and H.dtype == dtype
    _assert_close(H, exact, f0, dtype)
    n = x.size
    assert np.array_equal(H.reshape(n, n), H.reshape(n, n).T)


def test_scalar_like_x():
    for x in (np.array([0.7]), np.array(0.7), 0.7):
        H = fastgrad.numhess(lambda x: np.sum(np.sin(x)), x)
        assert H.shape == np.shape(x) * 2
        assert abs(float(H.reshape(())) + np.sin(0.7)) < 1e-8
    assert fastgrad.numhess(rosen_njit, np.array([0.7])).shape == (1, 1)
    assert fastgrad.numhess(np.sum, np.zeros(0)).shape == (0, 0)


def test_njit_path_bitwise_equals_python_path():
    """The compiled loop and the Python loop do the same arithmetic (an f without libm calls)."""
    x = np.random.default_rng(1).uniform(-2, 2, (2, 3))
    for f in (rosen_njit, quad_njit):
        args = (np.random.default_rng(2).standard_normal((6, 6)),) if f is quad_njit else ()
        for full in (False, True):
            a = fastgrad.numhess(f, x, args=args, full_output=full)
            b = fastgrad.numhess(f.py_func, x, args=args, full_output=full)
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fastgrad.numhess_diag(f, x, args=args),
                                      fastgrad.numhess_diag(f.py_func, x, args=args))
    x32 = x.astype(np.float32)  # the points rounded to float32 the same way on both paths
    for full in (False, True):
        np.testing.assert_array_equal(fastgrad.numhess(chain64_njit, x32, full_output=full),
                                      fastgrad.numhess(chain64_njit.py_func, x32, full_output=full))
        np.testing.assert_array_equal(fastgrad.numhess_diag(chain64_njit, x32, full_output=full),
                                      fastgrad.numhess_diag(chain64_njit.py_func, x32, full_output=full))


@njit
def chain64_njit(x):
    """A polynomial chain computed in float64 whatever x's dtype (so compiled and Python agree bitwise)."""
    z = x.reshape(x.size)
    s = 0.0
    prev = 1.0
    for i in range(z.size):
        w = np.float64(z[i])
        s += w * w * w - 2.0 * w * prev
        prev = w
    return s


@pytest.fixture
def always_parallel(monkeypatch):
    """Every compiled call goes to the thread pool (however cheap f is)."""
    monkeypatch.setattr(_config, "USER_PARALLEL_MIN_NS", 0)


@pytest.mark.parametrize("n", [1, 2, 7, 24])
def test_threads_bitwise(n, n_threads, always_parallel):
    x = np.random.default_rng(n).uniform(-1, 1, n)
    H, err = fastgrad.numhess(sinprod_njit, x, full_output=True)
    Hs, errs = fastgrad.numhess(sinprod_njit, x, full_output=True, parallel=False)
    np.testing.assert_array_equal(H, Hs)
    np.testing.assert_array_equal(err, errs)
    np.testing.assert_array_equal(H, H.T)
    np.testing.assert_array_equal(fastgrad.numhess_diag(sinprod_njit, x),
                                  fastgrad.numhess_diag(sinprod_njit, x, parallel=False))


@njit
def raises_njit(x, at):
    if x[at] > 0.5:
        raise ValueError("boom from njit")
    return np.sum(x * x)


def test_njit_exception_propagates_at_every_thread_count(n_threads, always_parallel):
    x = np.zeros(12)
    before = x.copy()
    with pytest.raises(ValueError, match="boom from njit"):  # f(x) is fine, f(x + 2h e_9) is not...
        fastgrad.numhess(raises_njit, x, args=(9,), h=0.3)
    with pytest.raises(ValueError, match="boom from njit"):
        fastgrad.numhess_diag(raises_njit, x, args=(9,), h=0.6)
    np.testing.assert_array_equal(x, before)
    H = fastgrad.numhess(raises_njit, x, args=(9,), h=0.1)  # ...and with smaller steps all is well
    np.testing.assert_allclose(H, 2 * np.eye(12), atol=1e-12)


def test_python_exception_propagates():
    def f(x):
        if x[1] > 0.1:
            raise KeyError("from f")
        return float(np.sum(x))

    with pytest.raises(KeyError, match="from f"):
        fastgrad.numhess(f, np.zeros(3), h=0.2)


def _counting(f):
    calls = []

    def counted(x, *args):
        calls.append(1)
        return f(x, *args)

    return counted, calls


@pytest.mark.parametrize("n", [1, 4, 9])
def test_evaluation_counts(n):
    x = np.linspace(-1, 1, n)
    g, calls = _counting(sinprod)
    fastgrad.numhess_diag(g, x)
    assert len(calls) == 2 * n + 1
    calls.clear()
    fastgrad.numhess(g, x)
    assert len(calls) == 2 * n * n + 1  # 4 per pair i < j, 2 per diagonal entry, f(x)
    calls.clear()
    fastgrad.numhess(g, x, full_output=True)
    assert len(calls) == 4 * n * n + 1


@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_numhess_diag_matches_numhess(shape):
    x = np.random.default_rng(3).uniform(-1.5, 1.5, shape)
    n = x.size
    for f in (sinprod, sinprod_njit):
        d = fastgrad.numhess_diag(f, x)
        H = fastgrad.numhess(f, x).reshape(n, n)
        assert d.shape == shape
        np.testing.assert_allclose(d.reshape(-1), np.diag(H), rtol=0, atol=1e-6)
        np.testing.assert_allclose(d.reshape(-1), np.diag(sinprod_hess(x)), rtol=0, atol=1e-6)
    d, err = fastgrad.numhess_diag(sinprod, x, full_output=True)
    assert err.shape == shape and (err >= 0).all() and err.max() < 1e-5


def test_full_output_bounds_the_error():
    x = np.random.default_rng(4).uniform(-1.5, 1.5, 5)
    exact = sinprod_hess(x)
    for hh in (None, 1e-3, 1e-2, 3e-2):
        H, err = fastgrad.numhess(sinprod, x, h=hh, full_output=True)
        assert err.shape == H.shape and np.array_equal(err, err.T)
        actual = np.abs(H - exact)
        if hh is None:  # truncation and rounding balanced: an estimate of the size of the error
            assert actual.max() <= 2 * err.max() and err.max() < 1e-6
        else:  # truncation dominates: Richardson is sharp entry by entry
            assert (actual <= 1.1 * err).all()
        assert np.array_equal(H, fastgrad.numhess(sinprod, x, h=hh))  # the h/2 stencil does not change H


def test_default_step_is_dtype_aware():
    """A float32 x gets eps32^(1/4) steps: a float64 step would drown in rounding."""
    x = np.array([0.3, -0.8, 1.1], dtype=np.float32)
    H = fastgrad.numhess(sinprod, x)
    np.testing.assert_allclose(H, sinprod_hess(x), atol=2e-2)
    with pytest.raises(ValueError, match="vanishes"):
        fastgrad.numhess(sinprod, x, h=1e-9)


@pytest.mark.parametrize("shape", [(4,), (2, 3)])
def test_numhvp(shape):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, shape)
    v = rng.standard_normal(shape)
    n = x.size
    Hv = (sinprod_hess(x) @ v.reshape(-1)).reshape(shape)

    def grad(x):
        z = x.reshape(-1)
        g = np.cos(z)
        g[:-1] += np.cos(z[:-1] * z[1:]) * z[1:]
        g[1:] += np.cos(z[:-1] * z[1:]) * z[:-1]
        return g.reshape(x.shape)

    for f in (sinprod, sinprod_njit):
        got = fastgrad.numhvp(f, x, v)
        assert got.shape == shape
        np.testing.assert_allclose(got, Hv, rtol=0, atol=1e-6)
    got = fastgrad.numhvp(None, x, v, grad=grad)
    np.testing.assert_allclose(got, Hv, rtol=0, atol=1e-8)
    np.testing.assert_allclose(got, (fastgrad.numhess(sinprod, x).reshape(n, n) @ v.reshape(-1)).reshape(shape),
                               atol=1e-6)
    np.testing.assert_array_equal(fastgrad.numhvp(sinprod, x, np.zeros(shape)), np.zeros(shape))
    got = fastgrad.numhvp(None, x, v, grad=grad, h=1e-4)
    np.testing.assert_allclose(got, Hv, rtol=0, atol=1e-6)
    x32, v32 = x.astype(np.float32), v.astype(np.float32)
    assert fastgrad.numhvp(sinprod, x32, v32).dtype == np.float32
    assert fastgrad.numhvp(sinprod, x32, v).dtype == np.float64


def test_numhvp_errors():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"v has shape \(2,\) but x has shape \(3,\)"):
        fastgrad.numhvp(sinprod, x, np.ones(2))
    with pytest.raises(ValueError, match=r"grad returned an array of shape \(2,\) but x has shape \(3,\)"):
        fastgrad.numhvp(sinprod, x, np.ones(3), grad=lambda x: x[:2])
    with pytest.raises(TypeError, match="grad must return an array of real numbers"):
        fastgrad.numhvp(sinprod, x, np.ones(3), grad=lambda x: x.astype(complex))
    with pytest.raises(ValueError, match="h must be finite and > 0"):
        fastgrad.numhvp(sinprod, x, np.ones(3), h=-1.0)
    with pytest.raises(ValueError, match="h must be a scalar"):
        fastgrad.numhvp(sinprod, x, np.ones(3), h=[1e-3, 1e-3, 1e-3])
    with pytest.raises(TypeError, match="f must return a real number"):
        fastgrad.numhvp(lambda x: None, x, np.ones(3))


def test_hesscheck_right_and_wrong():
    x = np.random.default_rng(6).uniform(-1, 1, 5)
    r = fastgrad.hesscheck(sinprod, sinprod_hess, x)
    assert r.ok and r.worst_index in {(i, j) for i in range(5) for j in range(5)}
    assert r.analytic.shape == r.numeric.shape == (5, 5) and r.max_abs_err < 1e-6
    assert isinstance(r, fastgrad.GradcheckResult)
    off = np.zeros((5, 5))
    off[3, 1] = 1e-3

    def wrong(x):
        return sinprod_hess(x) + off

    r = fastgrad.hesscheck(sinprod_njit, wrong, x, raise_exception=False)
    assert not r.ok and r.worst_index == (3, 1)
    assert r.max_abs_err == pytest.approx(1e-3, rel=1e-3)
    with pytest.raises(fastgrad.GradientMismatchError, match=r"1 of 25 entries differ.*float64 x, rtol=0.0001, "
                                                             r"atol=1e-06 max\(1, \|f\(x\)\|\) = 1e-06\); "
                                                             r"worst at index \(3, 1\)"):
        fastgrad.hesscheck(sinprod, wrong, x)
    assert fastgrad.hesscheck(sinprod, wrong, x, atol=1e-2).ok
    with pytest.raises(fastgrad.GradientMismatchError, match=r"rtol=0.0001, atol=0.0001\); worst"):
        fastgrad.hesscheck(sinprod, wrong, x, atol=1e-4)  # a given atol is used as it is
    big = fastgrad.hesscheck(lambda x: 1e4 + sinprod(x), sinprod_hess, x, raise_exception=False)
    assert big.ok  # the default atol grows with |f|: rounding of f ~ 1e4 is not a wrong Hessian


def test_hesscheck_default_tolerances_on_rosenbrock():
    """Rosenbrock's |f| reaches hundreds: the rounding error of its differences must not fail a right Hessian."""
    for seed in range(10):
        x = np.random.default_rng(seed).uniform(-1.5, 1.5, 6)
        assert fastgrad.hesscheck(rosen_njit, rosen_hess, x).ok
        off = np.zeros((6, 6))
        off[2, 3] = off[3, 2] = 1.0
        r = fastgrad.hesscheck(rosen_njit, lambda x, off=off: rosen_hess(x) + off, x, raise_exception=False)
        assert not r.ok and r.worst_index in ((2, 3), (3, 2))


def test_hesscheck_any_shape_and_flat_hessian():
    x = np.random.default_rng(7).uniform(-1, 1, (2, 3))
    r = fastgrad.hesscheck(rosen, rosen_hess, x, atol=1e-4)  # the (6, 6) form is accepted
    assert r.ok and r.analytic.shape == (2, 3, 2, 3)
    off = np.zeros((6, 6))
    off[4, 2] = 1.0
    r = fastgrad.hesscheck(rosen, lambda x: rosen_hess(x) + off, x, atol=1e-4, raise_exception=False)
    assert not r.ok and r.worst_index == (1, 1, 0, 2)  # x[1, 1] and x[0, 2]
    with pytest.raises(ValueError, match=r"hess returned an array of shape \(5, 5\) but the Hessian of x with "
                                         r"shape \(2, 3\) has shape \(2, 3, 2, 3\)"):
        fastgrad.hesscheck(rosen, lambda x: np.zeros((5, 5)), x)
    with pytest.raises(ValueError, match="rtol must be finite and >= 0"):
        fastgrad.hesscheck(rosen, rosen_hess, x, rtol=-1.0)
    with pytest.raises(TypeError, match="atol must be a real number"):
        fastgrad.hesscheck(rosen, rosen_hess, x, atol="1e-3")


def test_hesscheck_float32_defaults_pass_a_right_hessian():
    for seed in range(5):
        x = np.random.default_rng(seed).uniform(-1, 1, 4).astype(np.float32)
        assert fastgrad.hesscheck(sinprod, sinprod_hess, x).ok
        assert fastgrad.hesscheck(lse, lse_hess, x).ok
    wrong = fastgrad.hesscheck(sinprod, lambda x: 2 * sinprod_hess(x), x, raise_exception=False)
    assert not wrong.ok


# The Taylor test --------------------------------------------------------------


def sinprod_grad(x):
    z = x.reshape(-1).astype(np.float64)
    g = np.cos(z)
    g[:-1] += np.cos(z[:-1] * z[1:]) * z[1:]
    g[1:] += np.cos(z[:-1] * z[1:]) * z[:-1]
    return g.reshape(x.shape)


def rosen_grad(x):
    z = x.reshape(-1).astype(np.float64)
    g = np.zeros_like(z)
    g[:-1] += -400.0 * z[:-1] * (z[1:] - z[:-1] ** 2) - 2.0 * (1.0 - z[:-1])
    g[1:] += 200.0 * (z[1:] - z[:-1] ** 2)
    return g.reshape(x.shape)


TAYLOR = [(sinprod, sinprod_grad), (rosen, rosen_grad), (sinprod_njit, sinprod_grad), (rosen_njit, rosen_grad)]


@pytest.mark.parametrize("f,grad", TAYLOR, ids=["sinprod", "rosen", "sinprod_njit", "rosen_njit"])
@pytest.mark.parametrize("shape", [(1,), (5,), (2, 3)])
def test_taylor_verdicts(f, grad, shape):
    if shape == (1,) and grad is rosen_grad:
        pytest.skip("Rosenbrock of one variable is constant")
    x = np.random.default_rng(8).uniform(-1.2, 1.2, shape)
    right = fastgrad.taylor_test(f, grad, x)
    assert isinstance(right, fastgrad.TaylorResult)
    assert right.ok and abs(right.order - 2.0) < 0.15, right
    assert right.steps.shape == right.errors.shape == (12,)
    assert np.allclose(right.steps[1:] / right.steps[:-1], 0.5)
    h = 0.1
    for wrong in (lambda x: h * h * grad(x),  # the `/ 2*h` slip: h^2 times the gradient
                  lambda x: -grad(x),  # a sign error
                  lambda x: 2.0 * grad(x)):  # a scale error
        r = fastgrad.taylor_test(f, wrong, x)
        assert not r.ok and abs(r.order - 1.0) < 0.15, r


def test_taylor_float32_and_direction():
    x = np.random.default_rng(9).uniform(-1, 1, 6).astype(np.float32)
    assert fastgrad.taylor_test(sinprod, sinprod_grad, x).ok
    r = fastgrad.taylor_test(sinprod, lambda x: 0.01 * sinprod_grad(x), x)
    assert not r.ok and abs(r.order - 1.0) < 0.2
    x = np.random.default_rng(9).uniform(-1, 1, 6)
    wrong_at_0 = lambda x: sinprod_grad(x) + np.eye(6)[0]  # noqa: E731
    v = np.eye(6)[1]
    assert fastgrad.taylor_test(sinprod, wrong_at_0, x, v=v).ok  # the error is orthogonal to v
    assert not fastgrad.taylor_test(sinprod, wrong_at_0, x).ok
    assert not fastgrad.taylor_test(sinprod, wrong_at_0, x, v=np.eye(6)[0]).ok


def test_taylor_linear_f_is_at_rounding_level():
    c = np.array([1.0, -2.0, 0.5])
    r = fastgrad.taylor_test(lambda x: c @ x + 3.0, lambda x: c, np.array([0.1, 0.2, 0.3]))
    assert r.ok and math.isnan(r.order)
    r = fastgrad.taylor_test(lambda x: c @ x + 3.0, lambda x: 2 * c, np.array([0.1, 0.2, 0.3]))
    assert not r.ok and abs(r.order - 1.0) < 1e-6


def test_taylor_errors():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"v has shape \(2,\) but x has shape \(3,\)"):
        fastgrad.taylor_test(sinprod, sinprod_grad, x, v=np.ones(2))
    with pytest.raises(ValueError, match="v must be finite and not zero"):
        fastgrad.taylor_test(sinprod, sinprod_grad, x, v=np.zeros(3))
    with pytest.raises(ValueError, match=r"grad returned an array of shape \(2,\) but x has shape \(3,\)"):
        fastgrad.taylor_test(sinprod, lambda x: x[:2], x)
    for bad in (None, "1.0"):
        with pytest.raises(TypeError, match="f must return a real number"):
            fastgrad.taylor_test(lambda x, bad=bad: bad, sinprod_grad, x)


# Bad inputs -------------------------------------------------------------------


@pytest.mark.parametrize("h", [0.0, -1e-3, np.nan, np.inf, [1e-3, -1e-3, 1e-3]])
def test_bad_step(h):
    for fn in (fastgrad.numhess, fastgrad.numhess_diag):
        with pytest.raises(ValueError, match="h must be finite and > 0"):
            fn(sinprod, np.zeros(3), h=h)


def test_step_shape_mismatch():
    with pytest.raises(ValueError, match=r"h has shape \(2,\) but x has shape \(3,\)"):
        fastgrad.numhess(sinprod, np.zeros(3), h=[1e-3, 1e-3])


@njit
def returns_none_njit(x):
    x[0] = x[0]


@pytest.mark.parametrize("bad", [None, "1.0", 1 + 2j, True, object()])
def test_f_not_a_real_number(bad):
    for fn in (fastgrad.numhess, fastgrad.numhess_diag):
        with pytest.raises(TypeError, match="f must return a real number"):
            fn(lambda x, bad=bad: bad, np.zeros(3))


def test_f_not_a_scalar_and_njit_none():
    with pytest.raises(ValueError, match=r"f must return a scalar, got an array of shape \(3,\)"):
        fastgrad.numhess(lambda x: x, np.zeros(3))
    with pytest.raises(TypeError, match="f must return a real number, got NoneType"):
        fastgrad.numhess(returns_none_njit, np.zeros(3))
    H = fastgrad.numhess(lambda x: np.array([np.sum(x**2)]), np.zeros(2))  # one element: a scalar
    np.testing.assert_allclose(H, 2 * np.eye(2), atol=1e-7)


def test_bad_x():
    with pytest.raises(TypeError, match="x is complex"):
        fastgrad.numhess(sinprod, np.zeros(3, dtype=complex))
    with pytest.raises(TypeError, match="masked arrays are not supported"):
        fastgrad.numhess(sinprod, np.ma.zeros(3))
    H = fastgrad.numhess(lambda x: float(np.sum(x**3)), np.array([1, 2]))  # int x: float64
    assert H.dtype == np.float64
    np.testing.assert_allclose(H, np.diag([6.0, 12.0]), atol=1e-6)


def test_layouts_and_x_not_written():
    x = np.asfortranarray(np.random.default_rng(10).uniform(-1, 1, (2, 3)))
    ro = np.array(x)
    ro.flags.writeable = False

    def writer(z):
        s = float(np.sum(np.sin(z)))
        z[...] = 99.0  # f writes into its argument: it sees copies only
        return s

    ref = fastgrad.numhess(lambda z: float(np.sum(np.sin(z))), np.ascontiguousarray(x))
    for arr in (x, ro, x[:, ::1]):
        np.testing.assert_array_equal(fastgrad.numhess(writer, arr), ref)
    np.testing.assert_array_equal(ro, x)


@njit
def writer_njit(z):
    s = np.sum(np.sin(z))
    z[:] = 99.0
    return s


def test_njit_f_writing_into_x(always_parallel):
    x = np.random.default_rng(11).uniform(-1, 1, 6)
    H = fastgrad.numhess(writer_njit, x)
    np.testing.assert_allclose(H, np.diag(-np.sin(x)), atol=1e-7)


# Naive twins ------------------------------------------------------------------


def test_twins():
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, (2, 2))
    v = rng.standard_normal((2, 2))
    np.testing.assert_allclose(fastgrad.numhess(sinprod, x), naive.numhess(sinprod, x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(naive.numhess(sinprod, x).reshape(4, 4), sinprod_hess(x), atol=1e-6)
    np.testing.assert_allclose(fastgrad.numhess_diag(sinprod, x), naive.numhess_diag(sinprod, x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fastgrad.numhvp(None, x, v, grad=sinprod_grad),
                               naive.numhvp(None, x, v, grad=sinprod_grad), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fastgrad.numhvp(sinprod, x, v), naive.numhvp(sinprod, x, v), rtol=0, atol=1e-6)
    off = np.zeros((4, 4))
    off[2, 0] = 1e-2
    for hess in (sinprod_hess, lambda x: sinprod_hess(x) + off):
        r = fastgrad.hesscheck(sinprod, hess, x, raise_exception=False)
        ok, worst = naive.hesscheck(sinprod, hess, x)
        assert r.ok == ok
        if not ok:
            assert r.worst_index == worst == (1, 0, 0, 0)
    for grad in (sinprod_grad, lambda x: 2 * sinprod_grad(x)):
        r = fastgrad.taylor_test(sinprod, grad, x, v=v)
        order, errors = naive.taylor_test(sinprod, grad, x, v, r.steps, noise=1e-12)
        np.testing.assert_allclose(r.errors, errors, rtol=1e-6, atol=1e-15)
        assert order == pytest.approx(r.order, abs=0.05)


def test_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    x = np.random.default_rng(13).uniform(-1, 1, 6)

    def f_jax(z):
        return jnp.sum(jnp.sin(z[:-1] * z[1:])) + jnp.sum(jnp.sin(z))

    np.testing.assert_allclose(fastgrad.numhess(sinprod, x), np.asarray(jax.hessian(f_jax)(x)), atol=1e-6)
