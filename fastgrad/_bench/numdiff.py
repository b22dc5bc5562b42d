"""Benchmark cases and correctness checks of numerical differentiation: mse_numgrad, numgrad, numjac
and the scipy drop-ins approx_fprime, check_grad, gradcheck."""

from __future__ import annotations

import numpy as np
from numba import njit

import fastgrad

from .. import _config
from . import Case, Check, Contender, register, register_check

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


def _numgrad_floor(d):
    from .hessian import evaluation_floor

    A, y, w = d["A"], d["y"], d["w"]
    # central: 2 per element (f(w) itself is evaluated by the first call only, to check and time f)
    return lambda: evaluation_floor(mse_loss_njit, w, 2 * w.size, args=(A, y))


# The target is the evaluation floor (SPEC: within 1.15x), not scipy: approx_fprime's own overhead is
# about half an evaluation per element, so no finite-difference code can be 10x faster than it here.
# A call this small first runs f from Python (no compile) until such calls have cost
# USER_PYTHON_TOTAL_S; the warm-up passes that, so the rows time the compiled loop.
register(Case(
    "numgrad", "njit loss (1000, 50)", _setup(1000, 50),
    [
        Contender("fastgrad-numba", "fastgrad", _numgrad_njit("central")),
        Contender("fastgrad-numba-forward", "fastgrad", _numgrad_njit("forward")),
        Contender("scipy", "baseline", _approx_fprime),
        Contender("floor", "floor", _numgrad_floor),
    ],
    {"floor": 1.15}, quick=True, check=_check(1e-5), warmup_s=2 * _config.USER_PYTHON_TOTAL_S,
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
    {"baseline": 1.8}, check=_check(1e-6), functions=("numgrad",),
))


# ---------------------------------------------------------------------------
# Correctness checks (``fastgrad check``, tests/test_registry.py).  The numdiff
# functions take no backend: on 'numba' they get an @njit f (the compiled loop),
# on the other backends its Python function (the Python loop).


def _user_f(f, backend):
    return f if backend == "numba" else _py(f)


def _py(f):
    """The Python function of a dispatcher (f itself under NUMBA_DISABLE_JIT=1)."""
    return getattr(f, "py_func", f)


def _mse_numgrad_check(N, D, K, dtype, method):
    def run(backend, rng):
        A = rng.standard_normal((N, D)).astype(dtype)
        w = rng.standard_normal((D, K) if K else D).astype(dtype)
        y = rng.standard_normal((N, K) if K else N).astype(dtype)
        g = fastgrad.mse_numgrad(A, y, w, method=method, backend=backend)
        return [(g, fastgrad.mse_numgrad(A, y, w, method=method, backend="numpy")),
                (g, fastgrad.mse_grad(A, y, w, backend="numpy"))]

    return run


for _label, _args in (("(200, 7) central f64", (200, 7, 0, np.float64, "central")),
                      ("(3000, 70, K=3) five-point f64", (3000, 70, 3, np.float64, "five-point")),
                      ("(500, 9) complex f32", (500, 9, 0, np.float32, "complex"))):
    register_check(Check(f"mse_numgrad {_label}", ("mse_numgrad",), _mse_numgrad_check(*_args)))


@njit(**_config.NUMBA_FLAGS)
def xsinx(x):
    """``sum x sin x``, gradient ``x cos x + sin x``."""
    return np.sum(x * np.sin(x))


@njit(**_config.NUMBA_FLAGS)
def xsinx_elementwise(x):
    """``x sin x`` elementwise: a diagonal Jacobian ``x cos x + sin x``."""
    return x * np.sin(x)


def _dxsinx(x):
    return x * np.cos(x) + np.sin(x)


def _numgrad_check(backend, rng):
    x = rng.uniform(0.5, 1.5, size=(3, 4))
    return [(fastgrad.numgrad(_user_f(xsinx, backend), x, method="five-point"), _dxsinx(x))]


register_check(Check("numgrad x sin x (3, 4) five-point", ("numgrad",), _numgrad_check))


def _numjac_check(backend, rng):
    x = rng.uniform(0.5, 1.5, size=(3, 4))
    f = _user_f(xsinx_elementwise, backend)
    diag = np.diag(_dxsinx(x).ravel())
    return [(fastgrad.numjac(f, x), diag.reshape(3, 4, 3, 4)),
            (fastgrad.numjac(f, x, flatten=True, order="C"), diag),
            (fastgrad.numjac(f, x, flatten=True), np.diag(_dxsinx(x).ravel(order="F")))]  # 'F', the default


register_check(Check("numjac x sin x elementwise (3, 4)", ("numjac",), _numjac_check))


# approx_fprime and check_grad against scipy.optimize's (their drop-in originals, same steps and
# arithmetic).  The test function is plain arithmetic in a loop, without fastmath, so its compiled
# and Python versions agree bitwise and the forward differences can be compared to rounding.


@njit(**_config.NUMBA_EXACT_FLAGS)  # no fastmath: bitwise equal to the Python function
def cubic(x, c):
    """``sum_i c (i + 1) x_i^2 + x_i^3 / 3``."""
    s = 0.0
    for i in range(x.size):
        xi = x[i]
        s += c * (i + 1.0) * xi * xi + xi * xi * xi / 3.0
    return s


def _dcubic(x, c):
    return 2.0 * c * (np.arange(x.size) + 1.0) * x + x * x


@njit(**_config.NUMBA_EXACT_FLAGS)  # no fastmath: bitwise equal to the Python function
def cubes(x, c):
    """``c x_i^3`` elementwise (a 1-D f: approx_fprime returns its Jacobian)."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = c * x[i] * x[i] * x[i]
    return out


def _approx_fprime_check(backend, rng):
    from scipy import optimize

    x = rng.uniform(-2.0, 2.0, 6)
    f, F = _user_f(cubic, backend), _user_f(cubes, backend)
    steps = np.geomspace(1e-8, 1e-6, 6)
    return [
        (fastgrad.approx_fprime(x, f, 1.4901161193847656e-08, 0.5),
         optimize.approx_fprime(x, _py(cubic), 1.4901161193847656e-08, 0.5)),
        (fastgrad.approx_fprime(x, f, steps, 2.0), optimize.approx_fprime(x, _py(cubic), steps, 2.0)),
        (fastgrad.approx_fprime(x, F, 1e-7, 1.5), optimize.approx_fprime(x, _py(cubes), 1e-7, 1.5)),
    ]


register_check(Check("approx_fprime cubic (6,), vs scipy", ("approx_fprime",), _approx_fprime_check))


def _check_grad_check(backend, rng):
    from scipy import optimize

    x = rng.uniform(-2.0, 2.0, 6)
    f = _user_f(cubic, backend)
    off = np.zeros(6)
    off[[1, 4]] = 3.0, 4.0

    def wrong(x, c):
        return _dcubic(x, c) + off

    return [
        (fastgrad.check_grad(f, _dcubic, x, 0.5), optimize.check_grad(_py(cubic), _dcubic, x, 0.5)),
        (fastgrad.check_grad(f, wrong, x, 0.5), optimize.check_grad(_py(cubic), wrong, x, 0.5)),
        (fastgrad.check_grad(f, wrong, x, 0.5), 5.0),  # |off| = 5, the forward differences good to ~1e-7
    ]


register_check(Check("check_grad cubic (6,), vs scipy", ("check_grad",), _check_grad_check))


def _gradcheck_check(backend, rng):
    x = rng.uniform(0.5, 1.5, size=(3, 4))
    f = _user_f(xsinx, backend)
    good = fastgrad.gradcheck(f, _dxsinx, x)
    off = np.zeros((3, 4))
    off[1, 2] = 1e-3

    def wrong(x):
        return _dxsinx(x) + off

    bad = fastgrad.gradcheck(f, wrong, x, raise_exception=False)
    try:
        fastgrad.gradcheck(f, wrong, x)
        raised = False
    except fastgrad.GradientMismatchError:
        raised = True
    return [(good.analytic, _dxsinx(x)), (good.numeric, _dxsinx(x)), (good.ok, True),
            (bad.ok, False), (bad.worst_index, (1, 2)), (bad.numeric, _dxsinx(x)), (raised, True)]


register_check(Check("gradcheck x sin x (3, 4), right and wrong gradient",
                     ("gradcheck", "GradcheckResult", "GradientMismatchError"), _gradcheck_check))


# -- numgrad(method='adaptive') vs numdifftools.Gradient and scipy.differentiate.jacobian ----------
# The same @njit f as the numhess case (fastgrad._bench.hessian.sin_chain); scipy's jacobian needs a
# vectorised f (the points along the trailing axes), so it gets the numpy twin of the same function.

N_ADAPTIVE = 100


def _adaptive_setup():
    return {"x": np.random.default_rng(N_ADAPTIVE).uniform(-1.0, 1.0, N_ADAPTIVE)}


def _numgrad_adaptive(d):
    from .hessian import sin_chain

    x = d["x"]
    return lambda: fastgrad.numgrad(sin_chain, x, method="adaptive")


def _adaptive_floor(d):
    from .hessian import evaluation_floor, sin_chain

    x = d["x"]
    from .._adaptive import ADAPTIVE_STEPS

    n_evals = 2 * ADAPTIVE_STEPS * x.size + 1  # 2 per element per step, and f(x)
    return lambda: evaluation_floor(sin_chain, x, n_evals)


def _nd_gradient(d):
    import numdifftools as nd

    from .hessian import sin_chain

    x = d["x"]
    grad = nd.Gradient(sin_chain)
    return lambda: grad(x)


def sin_chain_vectorized(X):
    """``sin_chain`` of the points ``X[:, k...]`` (axis 0 runs over the elements of x): scipy.differentiate's f."""
    return np.sum(np.sin(X[:-1]) * X[1:], axis=0) + np.sum(X * X, axis=0)


def _scipy_jacobian(d):
    from scipy.differentiate import jacobian

    x = d["x"]
    return lambda: jacobian(sin_chain_vectorized, x).df


def _adaptive_case_check(data, results):
    from .hessian import sin_chain_grad

    ref = sin_chain_grad(data["x"])
    for name, got in results.items():
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9, err_msg=name)


def _adaptive_contenders():
    import importlib.util

    contenders = [Contender("fastgrad-numba", "fastgrad", _numgrad_adaptive),
                  Contender("floor", "floor", _adaptive_floor)]
    # the floor row is shown, not a target: it is the floor of every step (2 K n + 1 evaluations), and the
    # compiled gradient evaluates only the steps each element's tableau uses (often below it)
    targets = {}
    if importlib.util.find_spec("numdifftools") is not None:
        contenders.append(Contender("numdifftools", "baseline", _nd_gradient))
        targets["numdifftools"] = 10.0
    if importlib.util.find_spec("scipy.differentiate") is not None:
        contenders.append(Contender("scipy.differentiate", "baseline", _scipy_jacobian))
    return contenders, targets


register(Case("numgrad", f"adaptive njit f n={N_ADAPTIVE}", _adaptive_setup, *_adaptive_contenders(),
              quick=False, check=_adaptive_case_check,
              warmup_s=2 * _config.USER_PYTHON_TOTAL_S))  # as the (1000, 50) case: the compiled loop


def _adaptive_check(backend, rng):
    """method='adaptive' to 1e-12 where central differences give ~1e-10: gradient, Jacobian, Hessian."""
    from .hessian import sin_chain, sin_chain_hessian

    x = rng.uniform(0.5, 1.5, size=(2, 3))
    g, err = fastgrad.numgrad(_user_f(xsinx, backend), x, method="adaptive", full_output=True)
    J = fastgrad.numjac(_user_f(xsinx_elementwise, backend), x, method="adaptive")
    H = fastgrad.numhess(_user_f(sin_chain, backend), x[0], method="adaptive")
    return [(g, _dxsinx(x)), (bool(np.all(err < 1e-10)), True),
            (J, np.diag(_dxsinx(x).ravel()).reshape(2, 3, 2, 3)), (H, sin_chain_hessian(x[0]))]


register_check(Check("numgrad, numjac, numhess method='adaptive' x sin x (2, 3), sin chain (3,)",
                     ("numgrad", "numjac", "numhess"), _adaptive_check, rtol=1e-12, atol=1e-11))
