"""method='adaptive' of numgrad, numjac and numhess: Richardson extrapolation over a geometric sequence of steps.

Against closed forms on numdifftools' example functions (and a pole, 1/x, x^3,
Rosenbrock), the error bound, the Python and the @njit paths, thread counts,
float32, evaluation counts and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import fastgrad
from fastgrad import _adaptive, _config

# name: (f, f', points); f(x) = sum_j fn(x_j), so grad_j = fn'(x_j)
SUITE = {
    "exp": (np.exp, np.exp, [0.5, -1.0, 2.0]),
    "sin": (np.sin, np.cos, [0.5, 1.3, -2.0]),
    "cos": (np.cos, lambda x: -np.sin(x), [0.5, 1.3, -2.0]),
    "tan": (np.tan, lambda x: 1 / np.cos(x) ** 2, [0.5, 1.0, -0.3]),
    "tan near its pole": (np.tan, lambda x: 1 / np.cos(x) ** 2, [1.5, 1.55]),
    "cosh": (np.cosh, np.sinh, [0.5, 1.5]),
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2, [0.5, -1.5]),
    "arcsinh": (np.arcsinh, lambda x: 1 / np.sqrt(1 + x * x), [0.5, 2.0]),
    "arctan": (np.arctan, lambda x: 1 / (1 + x * x), [0.5, -3.0]),
    "arcsin": (np.arcsin, lambda x: 1 / np.sqrt(1 - x * x), [0.5, -0.3]),
    "expm1": (np.expm1, np.exp, [0.5, 1e-3]),
    "log": (np.log, lambda x: 1 / x, [0.5, 3.0]),
    "log1p": (np.log1p, lambda x: 1 / (1 + x), [0.5, 3.0]),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), [0.5, 4.0]),
    "1/x": (lambda x: 1 / x, lambda x: -1 / x**2, [0.1, 0.5, -2.0]),
    "x^3": (lambda x: x**3, lambda x: 3 * x**2, [2.0, -0.5]),
    "exp(x) at 10": (np.exp, np.exp, [10.0]),
}


def rosen(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def rosen_grad(x):
    g = np.zeros_like(x, dtype=np.float64)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def rosen_hess(x):
    n = x.size
    H = np.zeros((n, n))
    i = np.arange(n - 1)
    H[i, i] += 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    H[i + 1, i + 1] += 200.0
    H[i, i + 1] = H[i + 1, i] = -400.0 * x[:-1]
    return H


@njit
def rosen_njit(x):
    s = 0.0
    for i in range(x.size - 1):
        s += 100.0 * (x[i + 1] - x[i] * x[i]) ** 2 + (1.0 - x[i]) ** 2
    return s


@njit
def sinexp_njit(x):
    s = 0.0
    for i in range(x.size):
        s += np.sin(x[i]) * np.exp(0.3 * x[i])
    return s


def sinexp_grad(x):
    return np.exp(0.3 * x) * (np.cos(x) + 0.3 * np.sin(x))


def _py(f):
    """The Python function of an @njit f (f itself under NUMBA_DISABLE_JIT=1)."""
    return getattr(f, "py_func", f)


def rel_err(got, want):
    return np.abs(np.asarray(got, dtype=np.float64) - want) / np.maximum(1.0, np.abs(want))


@pytest.mark.parametrize("name", list(SUITE))
def test_example_suite_against_closed_forms(name):
    fn, dfn, points = SUITE[name]
    x = np.array(points)
    truth = dfn(x)

    def f(z):
        return float(np.sum(fn(z)))

    adaptive, bound = fastgrad.numgrad(f, x, method="adaptive", full_output=True)
    central = fastgrad.numgrad(f, x)
    err = rel_err(adaptive, truth)
    assert err.max() <= 1e-10, (name, err)
    # much better than one central difference (which is good to ~1e-10 at best)
    assert err.max() <= max(rel_err(central, truth).max() / 10, 1e-13), name
    assert np.all(np.isfinite(bound)) and np.all(bound >= 0)


def test_error_bound_holds_in_most_entries():
    covered = total = 0
    for fn, dfn, points in SUITE.values():
        x = np.array(points)
        g, bound = fastgrad.numgrad(lambda z, fn=fn: float(np.sum(fn(z))), x, method="adaptive", full_output=True)
        actual = np.abs(g - dfn(x))
        covered += int(np.sum(bound >= actual))
        total += x.size
    assert covered >= 0.9 * total, (covered, total)


def test_rosenbrock_gradient_python_and_njit():
    x = np.random.default_rng(3).uniform(-1.2, 1.2, 12)
    for f in (rosen, rosen_njit):
        g = fastgrad.numgrad(f, x, method="adaptive")
        assert rel_err(g, rosen_grad(x)).max() <= 1e-10
    # the same quotients of the same f: the compiled loop and the Python path agree bit for bit
    np.testing.assert_array_equal(fastgrad.numgrad(rosen_njit, x, method="adaptive"),
                                  fastgrad.numgrad(_py(rosen_njit), x, method="adaptive"))


@pytest.mark.parametrize("shape", [(5,), (2, 3), ()])
def test_any_shape(shape):
    x = np.random.default_rng(1).uniform(-1, 1, shape)
    g, err = fastgrad.numgrad(lambda z: float(np.sum(np.sin(z) * np.exp(0.3 * z))), x,
                              method="adaptive", full_output=True)
    assert g.shape == err.shape == np.shape(x)
    assert rel_err(g, sinexp_grad(x)).max() <= 1e-10


def test_numjac_adaptive_against_closed_form():
    x = np.random.default_rng(4).uniform(0.2, 1.5, (2, 3))

    def f(z):  # f_k = sin(z_k) z_0 + log(z_k): J = diag(cos(z) z_0 + 1/z) + e_0 column sin(z)
        return np.sin(z) * z[0, 0] + np.log(z)

    J = fastgrad.numjac(f, x, method="adaptive")
    want = np.zeros((2, 3, 2, 3))
    for k in np.ndindex(2, 3):
        want[k + k] += np.cos(x[k]) * x[0, 0] + 1 / x[k]
        want[k + (0, 0)] += np.sin(x[k])
    assert J.shape == (2, 3, 2, 3)
    assert rel_err(J, want).max() <= 1e-10
    assert rel_err(J, want).max() <= rel_err(fastgrad.numjac(f, x), want).max() / 10
    flat = fastgrad.numjac(f, x, method="adaptive", flatten=True, order="C")
    np.testing.assert_array_equal(flat, J.reshape(6, 6))
    # a scalar f: its gradient
    np.testing.assert_array_equal(fastgrad.numjac(rosen, x.ravel(), method="adaptive"),
                                  fastgrad.numgrad(rosen, x.ravel(), method="adaptive"))


@njit
def vec_njit(z):
    return np.sin(z) * z[0] + z * z * z


def test_numjac_adaptive_njit():
    x = np.random.default_rng(5).uniform(-1, 1, 7)
    want = np.diag(np.cos(x) * x[0] + 3 * x * x)
    want[:, 0] += np.sin(x)
    J = fastgrad.numjac(vec_njit, x, method="adaptive")
    assert rel_err(J, want).max() <= 1e-10
    np.testing.assert_allclose(J, fastgrad.numjac(_py(vec_njit), x, method="adaptive"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("f", [rosen, rosen_njit], ids=["python", "njit"])
def test_numhess_adaptive_against_closed_form(f):
    x = np.random.default_rng(6).uniform(-1.2, 1.2, 6)
    H, err = fastgrad.numhess(f, x, method="adaptive", full_output=True)
    want = rosen_hess(x)
    assert rel_err(H, want).max() <= 1e-9
    np.testing.assert_array_equal(H, H.T)
    assert err.shape == H.shape and np.all(err >= 0)
    assert rel_err(fastgrad.numhess(f, x), want).max() > rel_err(H, want).max()


@pytest.mark.parametrize("shape", [(), (2, 2), (3, 1), (2, 1, 2)])
def test_numhess_adaptive_any_shape_of_x(shape):
    # x of any shape: the Hessian of shape x.shape + x.shape, the same numbers as for the flat x
    x = np.random.default_rng(8).uniform(-1.2, 1.2, shape)
    n = x.size

    def f(z):
        z = np.reshape(z, -1)
        return float(np.sum(np.sin(z) * np.exp(0.3 * z))) + (rosen(z) if z.size > 1 else 0.0)

    H, err = fastgrad.numhess(f, x, method="adaptive", full_output=True)
    assert H.shape == err.shape == shape + shape
    Hf, errf = fastgrad.numhess(f, x.reshape(-1), method="adaptive", full_output=True)
    np.testing.assert_array_equal(H.reshape(n, n), Hf)
    np.testing.assert_array_equal(err.reshape(n, n), errf)
    h = np.full(shape, 0.05)
    np.testing.assert_array_equal(fastgrad.numhess(f, x, h=h, method="adaptive").reshape(n, n),
                                  fastgrad.numhess(f, x.reshape(-1), h=h.reshape(-1), method="adaptive"))
    z = x.reshape(-1)
    want = np.diag(np.exp(0.3 * z) * (0.6 * np.cos(z) + (0.09 - 1.0) * np.sin(z)))
    if n > 1:
        want = want + rosen_hess(z)
    assert rel_err(Hf, want).max() <= 1e-8


def test_numhess_adaptive_nonpolynomial():
    x = np.array([0.7, -0.4, 1.1])
    H, err = fastgrad.numhess(sinexp_njit, x, method="adaptive", full_output=True)
    d2 = np.exp(0.3 * x) * (0.6 * np.cos(x) + (0.09 - 1.0) * np.sin(x))
    np.testing.assert_allclose(H, np.diag(d2), rtol=0, atol=1e-9)
    assert np.mean(err >= np.abs(H - np.diag(d2))) >= 0.9


@pytest.fixture
def always_parallel(monkeypatch):
    """Every compiled call goes to the thread pool (however cheap f is)."""
    monkeypatch.setattr(_config, "USER_PARALLEL_MIN_NS", 0)


def test_bitwise_across_thread_counts(n_threads, always_parallel):
    x = np.random.default_rng(7).uniform(-1, 1, 13)
    g, e = fastgrad.numgrad(sinexp_njit, x, method="adaptive", full_output=True)
    gs, es = fastgrad.numgrad(sinexp_njit, x, method="adaptive", full_output=True, parallel=False)
    np.testing.assert_array_equal(g, gs)
    np.testing.assert_array_equal(e, es)
    np.testing.assert_array_equal(fastgrad.numjac(vec_njit, x, method="adaptive"),
                                  fastgrad.numjac(vec_njit, x, method="adaptive", parallel=False))
    np.testing.assert_array_equal(fastgrad.numhess(sinexp_njit, x[:5], method="adaptive"),
                                  fastgrad.numhess(sinexp_njit, x[:5], method="adaptive", parallel=False))


@njit
def sqrt_sum_njit(x):
    return np.sum(np.sqrt(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_gradient_equals_the_python_path_bitwise(dtype, n_threads, always_parallel, monkeypatch):
    """The compiled adaptive gradient (each element stopping at its own step) and the Python path (every step
    evaluated, then the same tableau with the same stopping rule) give the same bits, NaN bounds included."""
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 0.0)  # the compiled loop, not f called from Python
    x = np.random.default_rng(11).uniform(-1, 1, 17).astype(dtype)
    for f in (sinexp_njit, rosen_njit):
        g, e = fastgrad.numgrad(f, x, method="adaptive", full_output=True)
        gp, ep = fastgrad.numgrad(lambda z, f=f: f(z), x, method="adaptive", full_output=True)  # from Python
        np.testing.assert_array_equal(g, gp)
        np.testing.assert_array_equal(e, ep)
    z = np.array([1e-4, 0.5, 2.0], dtype=dtype)  # sqrt at 1e-4: every step crosses 0, the bound is NaN
    with np.errstate(invalid="ignore"):
        g, e = fastgrad.numgrad(sqrt_sum_njit, z, method="adaptive", full_output=True)
        gp, ep = fastgrad.numgrad(lambda v: sqrt_sum_njit(v), z, method="adaptive", full_output=True)
    assert np.isnan(e[0]) and np.isfinite(e[1:]).all()
    np.testing.assert_array_equal(g, gp)
    np.testing.assert_array_equal(e, ep)


@njit
def counted_sin(x, count):
    count[0] += 1
    return np.sum(np.sin(x))


def test_compiled_gradient_evaluates_only_the_steps_it_uses(monkeypatch):
    """Smooth f: each element stops after a few of the 8 steps; a change to the quotients of the steps
    after every element's stop changes nothing (extrapolate), and the compiled loop never evaluates them."""
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 0.0)
    x = np.linspace(-1.0, 1.0, 20)
    count = np.zeros(1, dtype=np.int64)
    g = fastgrad.numgrad(counted_sin, x, args=(count,), method="adaptive", parallel=False)
    np.testing.assert_allclose(g, np.cos(x), rtol=1e-12, atol=1e-13)
    full = 2 * _adaptive.ADAPTIVE_STEPS * x.size
    assert x.size * 2 * 3 < count[0] < 0.8 * full  # at least 3 steps per element, well short of 8
    steps = _adaptive.adaptive_steps(x, None)
    D = [(np.sin(x + s) - np.sin(x - s)) / (2 * s) for s in steps]
    best, err = _adaptive.extrapolate(D, steps, 1e-16, 1)
    D[-1] = np.full_like(x, 1e300)  # the last step: after the stop of every element
    best2, err2 = _adaptive.extrapolate(D, steps, 1e-16, 1)
    np.testing.assert_array_equal(best, best2)
    np.testing.assert_array_equal(err, err2)


def test_python_workers_same_bits():
    x = np.random.default_rng(8).uniform(-1, 1, 9)
    f = _py(sinexp_njit)
    np.testing.assert_array_equal(fastgrad.numgrad(f, x, method="adaptive", workers=2),
                                  fastgrad.numgrad(f, x, method="adaptive"))


@pytest.mark.parametrize("f", [lambda z: np.sum(np.sin(z) * np.exp(np.float32(0.3) * z)), sinexp_njit],
                         ids=["python", "njit"])
def test_float32(f):
    x = np.random.default_rng(9).uniform(-1, 1, 6).astype(np.float32)
    g, err = fastgrad.numgrad(f, x, method="adaptive", full_output=True)
    assert g.dtype == err.dtype == np.float32
    truth = sinexp_grad(x.astype(np.float64))
    assert rel_err(g, truth).max() <= 2e-5
    assert rel_err(g, truth).max() <= rel_err(fastgrad.numgrad(f, x), truth).max()
    H = fastgrad.numhess(sinexp_njit, x[:3], method="adaptive")
    assert H.dtype == np.float32


def test_evaluation_counts():
    calls = []

    def f(z):
        calls.append(1)
        return float(np.sum(z ** 3))

    x = np.arange(1.0, 6.0)
    fastgrad.numgrad(f, x, method="adaptive")
    assert len(calls) == 2 * _adaptive.ADAPTIVE_STEPS * x.size + 1
    calls.clear()
    fastgrad.numhess(f, x[:3], method="adaptive")
    assert len(calls) == _adaptive.ADAPTIVE_STEPS * (2 * 3 * 3) + 1


def test_step_sequence_and_given_h():
    x = np.array([0.5, -30.0])
    steps = _adaptive.adaptive_steps(x, None)
    assert len(steps) == _adaptive.ADAPTIVE_STEPS
    np.testing.assert_array_equal(steps[0], _adaptive.ADAPTIVE_BASE * np.array([1.0, 30.0]))
    for a, b in zip(steps[:-1], steps[1:], strict=True):
        np.testing.assert_array_equal(a, _adaptive.ADAPTIVE_RATIO * b)
    g = fastgrad.numgrad(lambda z: float(np.sum(np.sin(z))), x, method="adaptive", h=0.01)
    assert rel_err(g, np.cos(x)).max() <= 1e-11


def test_x_not_written_and_empty():
    x = np.array([0.3, 0.4])
    before = x.copy()
    fastgrad.numgrad(lambda z: float(np.sum(z ** 2)), x, method="adaptive")
    np.testing.assert_array_equal(x, before)
    g, e = fastgrad.numgrad(lambda z: 0.0, np.zeros(0), method="adaptive", full_output=True)
    assert g.shape == e.shape == (0,)
    assert fastgrad.numhess(lambda z: 0.0, np.zeros(0), method="adaptive").shape == (0, 0)


def test_no_finite_estimate_gives_nan_bound():
    # sqrt at 1e-4: every step of the sequence crosses 0, so no tableau entry is finite
    def f(z):
        with np.errstate(invalid="ignore"):
            return float(np.sqrt(z[0]))

    g, err = fastgrad.numgrad(f, np.array([1e-4]), method="adaptive", full_output=True)
    assert np.isnan(err[0])


def test_bad_input():
    with pytest.raises(ValueError, match="method must be one of 'forward', 'backward', 'central', "
                                         "'five-point', 'complex', 'adaptive'; got 'richardson'"):
        fastgrad.numgrad(np.sum, np.ones(2), method="richardson")
    with pytest.raises(ValueError, match="method must be one of 'central', 'adaptive'; got 'forward'"):
        fastgrad.numhess(np.sum, np.ones(2), method="forward")
    with pytest.raises(ValueError, match=r"h = .* vanishes at x\[0\]"):
        fastgrad.numgrad(np.sum, np.array([1e10]), method="adaptive", h=1e-7)
    with pytest.raises(ValueError, match="h must be finite and > 0"):
        fastgrad.numjac(np.sin, np.ones(2), method="adaptive", h=-1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        fastgrad.mse_numgrad(np.ones((3, 2)), np.ones(3), np.ones(2), method="adaptive")


def test_vectorized_f():
    x = np.array([0.2, -0.7, 1.1])

    def fv(stack):  # a stack of points, shape (m, 3) -> (m,)
        return np.sum(np.sin(stack) * np.exp(0.3 * stack), axis=1)

    g = fastgrad.numgrad(fv, x, method="adaptive", vectorized=True)
    np.testing.assert_array_equal(g, fastgrad.numgrad(_py(sinexp_njit), x, method="adaptive"))
    J = fastgrad.numjac(lambda s: np.sin(s), x, method="adaptive", vectorized=True)
    assert rel_err(J, np.diag(np.cos(x))).max() <= 1e-10


def test_bad_step_refused_before_any_evaluation():
    calls = []

    def f(z):
        calls.append(1)
        return float(np.sum(z ** 2))

    for call in (fastgrad.numgrad, fastgrad.numjac, fastgrad.numhess):
        with pytest.raises(ValueError, match="h must be finite and > 0"):
            call(f, np.ones(3), method="adaptive", h=np.nan)
    assert not calls
