"""Reliability of numerical differentiation over a user's f (SPEC §1 amended, §3, §8 "first contact").

Each test here failed on the code before the fix it guards:

* an exception raised by an ``@njit`` f inside the parallel loop was lost
  (numba#2811) and stale entries came back;
* a Python f returning None/"1.5" gave NaN/0, a complex-valued f under the
  complex step gave garbage;
* Ctrl-C with ``workers=2`` waited for the running chunks (~10 s);
* an f that writes into its argument shifted the later points;
* an object-mode ``jit(forceobj=True)`` f was compiled as ``@njit`` and failed;
* ``NUMBA_DISABLE_JIT=1`` broke numgrad;
* overflow warnings from the error bound without ``full_output``, no
  ``check_finite``, unchecked gradcheck tolerances;
* the driver of an ``@njit`` f was recompiled in every process;
* two-element problems went to the thread pool.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numba
import numpy as np
import pytest
import scipy.optimize as so
from numba import njit

import fastgrad
from fastgrad import _config

REAL = ("forward", "backward", "central", "five-point")
ALL = REAL + ("complex",)
THREADS = (1, 2)


def _kernels():
    return _config.user_function_kernels()


def _set_threads(n):
    if n > _config._max_threads():
        pytest.skip(f"needs {n} Numba threads")
    fastgrad.set_num_threads(n)


@pytest.fixture(autouse=True)
def compiled_route(monkeypatch):
    """Every call over an @njit f takes the compiled route, however small (these tests are about it);
    small calls before the driver is compiled run f from Python: tests/test_numdiff_tiers.py."""
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 0.0)


@pytest.fixture
def always_parallel(monkeypatch):
    """Every compiled loop over more than one element goes to the thread pool (no work threshold)."""
    monkeypatch.setattr(_config, "USER_PARALLEL_MIN_NS", 0)


@pytest.fixture
def launches(monkeypatch):
    """The thread counts of the parallel launches of the user-function kernels."""
    k = _kernels()
    seen = []
    real = k.launch

    def spy(serial, parallel, n_threads, *args):
        seen.append(n_threads)
        return real(serial, parallel, n_threads, *args)

    monkeypatch.setattr(k, "launch", spy)
    return seen


def _run(code, timeout=240, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


# ---------------------------------------------------------------------------
# 1. An exception raised by an @njit f propagates at every thread count


@njit
def undefined_at_7(x):
    """Raises whenever x[7] is moved away from 7 (every stencil touches it)."""
    if x[7] != 7.0:
        raise ValueError("f undefined here")
    return np.sum(x**2)


@njit
def undefined_at_7_args(x, scale):
    if x[7] != 7.0:
        raise ValueError("f undefined here")
    return scale * np.sum(x**2)


@njit
def undefined_at_7_complex(x):
    if x[7].imag != 0.0:
        raise ValueError("f undefined here")
    return np.sum(x**2)


@njit
def undefined_at_7_vector(x):
    if x[7] != 7.0:
        raise ValueError("f undefined here")
    return x**2


@njit
def undefined_at_7_vector_complex(x):
    if x[7].imag != 0.0:
        raise ValueError("f undefined here")
    return x**2


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("method", ALL)
def test_njit_exception_propagates_numgrad_numjac(method, n_threads, threads, always_parallel, launches):
    _set_threads(n_threads)
    x = np.arange(10.0)
    scalar = undefined_at_7_complex if method == "complex" else undefined_at_7
    vector = undefined_at_7_vector_complex if method == "complex" else undefined_at_7_vector
    for full in (False, True):
        with pytest.raises(ValueError, match="f undefined here"):
            fastgrad.numgrad(scalar, x, method=method, full_output=full)
    with pytest.raises(ValueError, match="f undefined here"):
        fastgrad.numjac(vector, x, method=method)
    if method != "complex":  # extra args: the per-f kernels
        with pytest.raises(ValueError, match="f undefined here"):
            fastgrad.numgrad(undefined_at_7_args, x, args=(2.0,), method=method)
    if n_threads > 1:
        assert launches and all(n == n_threads for n in launches)  # the parallel loop really ran


@pytest.mark.parametrize("n_threads", THREADS)
def test_njit_exception_propagates_scipy_dropins_and_gradcheck(n_threads, threads, always_parallel):
    _set_threads(n_threads)
    x = np.arange(10.0)
    for _ in range(20):
        with pytest.raises(ValueError, match="f undefined here"):
            fastgrad.approx_fprime(x, undefined_at_7)
        with pytest.raises(ValueError, match="f undefined here"):
            fastgrad.approx_fprime(x, undefined_at_7_vector)
        with pytest.raises(ValueError, match="f undefined here"):
            fastgrad.check_grad(undefined_at_7, lambda z: 2 * z, x)
        with pytest.raises(ValueError, match="f undefined here"):
            fastgrad.gradcheck(undefined_at_7, lambda z: 2 * z, x)
        with pytest.raises(ValueError, match="f undefined here"):
            fastgrad.numgrad(undefined_at_7, x)


@njit
def smooth(x):
    return np.sum(np.sin(x) * x)


@njit
def smooth_vector(x):
    return np.sin(x) * x


def test_results_bitwise_across_threads_when_f_does_not_raise(threads, always_parallel):
    """The status bytes and serial re-runs change nothing when f behaves: same bits on 1 and 2 threads."""
    x = np.linspace(-1.0, 2.0, 37)
    results = {}
    for n in THREADS:
        if n > _config._max_threads():
            continue
        fastgrad.set_num_threads(n)
        results[n] = [fastgrad.numgrad(smooth, x, method=m, full_output=True) for m in ALL]
        results[n] += [(fastgrad.numjac(smooth_vector, x, method=m),) for m in ALL]
    for got in results.values():
        for a, b in zip(got, results[1], strict=True):
            for u, v in zip(a, b, strict=True):
                np.testing.assert_array_equal(u, v)


# ---------------------------------------------------------------------------
# 2. What f returns: a real number; a complex-valued f under the complex step


@pytest.mark.parametrize("method", REAL)
@pytest.mark.parametrize("bad", [None, "1.5", True, 1 + 2j, object()],
                         ids=lambda v: "object" if type(v) is object else repr(v))
def test_python_f_non_real_result_raises_typeerror(bad, method):
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="f must return"):
        fastgrad.numgrad(lambda z: bad, x, method=method)
    # a bad value only at the perturbed points (f(x) itself is fine)
    with pytest.raises(TypeError, match="f must return"):
        fastgrad.numgrad(lambda z: 1.0 if z[0] == 1.0 else bad, x, method=method)
    with pytest.raises(TypeError, match="f must return"):
        fastgrad.numgrad(lambda z: 1.0 if z[0] == 1.0 else bad, x, method=method, workers=2)


@pytest.mark.parametrize("bad", [None, "1.5", [1.0, "a"], np.array(["x", "y"])], ids=repr)
def test_numjac_and_approx_fprime_non_real_result_raise_typeerror(bad):
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="f must return"):
        fastgrad.numjac(lambda z: bad, x)
    with pytest.raises(TypeError, match="f must return"):
        fastgrad.numjac(lambda z: z * 2.0 if z[0] == 1.0 else bad, x)
    with pytest.raises(TypeError, match="f must return"):
        fastgrad.approx_fprime(x, lambda z: bad)
    with pytest.raises(TypeError):  # scipy refuses these too
        so.approx_fprime(x, lambda z: bad)


def test_complex_result_under_real_methods_refused():
    with pytest.raises(TypeError, match="f must return a real number"):
        fastgrad.numgrad(lambda z: np.sum(z) + 1j, np.ones(2))
    with pytest.raises(TypeError, match="f must return real numbers"):
        fastgrad.numjac(lambda z: z + 1j, np.ones(2))


@njit
def complex_valued(x):
    return np.sum((1 + 1j) * x**2)


@njit
def complex_valued_vector(x):
    return (1 + 1j) * x**2


def test_complex_valued_f_under_complex_step_raises_valueerror():
    x = np.array([1.0, 2.0])
    for f in (lambda z: np.sum((1 + 1j) * z**2), complex_valued):
        with pytest.raises(ValueError, match="complex-valued at the real point"):
            fastgrad.numgrad(f, x, method="complex")
        with pytest.raises(ValueError, match="complex-valued at the real point"):
            fastgrad.gradcheck(f, lambda z: 2 * z, x, method="complex")
    for f in (lambda z: (1 + 1j) * z**2, complex_valued_vector):
        with pytest.raises(ValueError, match="complex-valued at the real point"):
            fastgrad.numjac(f, x, method="complex")
    # a real-valued f computed in complex arithmetic is fine (Im f(x) = 0 at real x)
    np.testing.assert_allclose(fastgrad.numgrad(lambda z: np.sum(z**2 + 0j), x, method="complex"), 2 * x)


# ---------------------------------------------------------------------------
# 3. Ctrl-C with workers= is honoured within a second


def test_ctrl_c_stops_workers_quickly():
    code = """
        import time, numpy as np, fastgrad
        def f(x):
            time.sleep(0.01)
            return float(np.sum(x))
        print("ready", flush=True)
        fastgrad.numgrad(f, np.zeros(4000), workers=2)   # 8000 evaluations, 40 s
        print("finished", flush=True)
    """
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert "KeyboardInterrupt" in err, err[-2000:]
    assert "finished" not in out
    assert took < 2.0, f"the process exited {took:.1f} s after SIGINT"


def test_worker_exception_stops_the_pool():
    """f's exception in one worker ends the others at their next evaluation (no waiting for the chunks)."""
    calls = []

    def f(z):
        calls.append(1)
        if z[0] != 0.0:
            raise KeyError("first element")
        time.sleep(0.002)
        return float(np.sum(z))

    with pytest.raises(KeyError, match="first element"):
        fastgrad.numgrad(f, np.zeros(400), workers=2)
    time.sleep(0.05)
    assert len(calls) < 200  # 801 evaluations without the stop


# ---------------------------------------------------------------------------
# 4. An f that writes into its argument sees the right point every time


def doubling(z):
    z *= 2.0
    return np.sum(z**3)


def pinning(z):
    z[0] = 99.0
    return np.sum(z**2)


@njit
def doubling_njit(z):
    z *= 2.0
    return np.sum(z * z * z)  # not z**3: Numba's complex power is inexact for negative reals


@njit
def doubling_njit_args(z, c):
    z *= 2.0
    return c * np.sum(z * z * z)


@njit
def doubling_vector_njit(z):
    z *= 2.0
    return z * z


@njit
def identity_njit(z):
    return z


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("method", ALL)
def test_f_writing_its_argument(method, n_threads, threads, always_parallel):
    _set_threads(n_threads)
    x = np.array([1.0, -1.0, 2.0, 3.0])
    before = x.copy()
    expect = 24.0 * x**2  # d/dx sum((2x)^3)
    tol = dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fastgrad.numgrad(doubling, x, method=method), expect, **tol)
    np.testing.assert_allclose(fastgrad.numgrad(doubling, x, method=method, workers=2), expect, **tol)
    np.testing.assert_allclose(fastgrad.numgrad(doubling_njit, x, method=method), expect, **tol)
    np.testing.assert_allclose(fastgrad.numgrad(doubling_njit_args, x, args=(1.0,), method=method), expect, **tol)
    np.testing.assert_allclose(fastgrad.numgrad(pinning, x, method=method), [0.0, -2.0, 4.0, 6.0], **tol)
    np.testing.assert_allclose(fastgrad.numjac(doubling_vector_njit, x, method=method), np.diag(8.0 * x), **tol)
    np.testing.assert_allclose(fastgrad.numjac(lambda z: doubling_vector_njit(z), x, method=method),
                               np.diag(8.0 * x), **tol)
    # an f that returns (a view of) its argument
    np.testing.assert_allclose(fastgrad.numjac(identity_njit, x, method=method), np.eye(4), **tol)
    np.testing.assert_allclose(fastgrad.numjac(lambda z: z, x, method=method), np.eye(4), **tol)
    if method == "forward":
        np.testing.assert_allclose(fastgrad.approx_fprime(x, doubling), expect, rtol=1e-5)
        np.testing.assert_allclose(fastgrad.approx_fprime(x, doubling_njit), expect, rtol=1e-5)
    np.testing.assert_array_equal(x, before)


# ---------------------------------------------------------------------------
# 5. An object-mode dispatcher is a Python callable


@numba.jit(forceobj=True)
def object_mode(z):
    return float(np.sum(np.asarray(z) ** 2))


def test_object_mode_dispatcher_is_called_as_python():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(fastgrad.numgrad(object_mode, x), 2 * x, rtol=1e-8)
    np.testing.assert_allclose(fastgrad.numjac(object_mode, x), 2 * x, rtol=1e-8)
    np.testing.assert_allclose(fastgrad.approx_fprime(x, object_mode), 2 * x, rtol=1e-6)
    assert fastgrad.gradcheck(object_mode, lambda z: 2 * z, x).ok


# ---------------------------------------------------------------------------
# 6. NUMBA_DISABLE_JIT=1


DISABLE_JIT = """
import numpy as np, fastgrad
from numba import njit

@njit
def f(x):
    return np.sum(x ** 3)

def g(x):
    return np.sum(x ** 3)

@njit
def v(x):
    return x ** 2

x = np.array([0.5, -1.0, 2.0])
for fn in (f, g):
    for method in ("forward", "backward", "central", "five-point", "complex"):
        tol = 1e-5 if method in ("forward", "backward") else 1e-8
        assert np.allclose(fastgrad.numgrad(fn, x, method=method), 3 * x ** 2, rtol=tol), method
        gr, err = fastgrad.numgrad(fn, x, method=method, full_output=True)
        assert np.allclose(gr, 3 * x ** 2, rtol=tol) and err.shape == x.shape
        assert np.allclose(fastgrad.numgrad(fn, x, method=method, workers=2), 3 * x ** 2, rtol=tol)
        assert np.allclose(fastgrad.numjac(v, x, method=method), np.diag(2 * x), rtol=tol)
    assert np.allclose(fastgrad.approx_fprime(x, fn), 3 * x ** 2, rtol=1e-5)
    assert fastgrad.check_grad(fn, lambda z: 3 * z ** 2, x) < 1e-5
    assert fastgrad.gradcheck(fn, lambda z: 3 * z ** 2, x).ok
    assert fastgrad.gradcheck(fn, lambda z: 3 * z ** 2, x, method="complex").ok
print("ok")
"""


def test_numba_disable_jit():
    r = _run(DISABLE_JIT, NUMBA_DISABLE_JIT="1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")


# ---------------------------------------------------------------------------
# 7. Warnings, check_finite, gradcheck's own arguments


def test_no_overflow_warning_without_full_output():
    """The rounding bound |f_p| + |f_m| overflows for f ~ 1e308; it is formed only with full_output."""
    x = np.full(3, 0.1)

    def big(z):
        return 1.5e308 * (1.0 + 1e-3 * np.sum(z))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in REAL:
            g = fastgrad.numgrad(big, x, method=method, h=1e-3)
            np.testing.assert_allclose(g, 1.5e305, rtol=1e-6)


def test_check_finite():
    for bad in (np.nan, np.inf, -np.inf):
        x = np.array([1.0, bad])
        with pytest.raises(ValueError, match=r"x contains NaN or Inf \(check_finite=True\)"):
            fastgrad.numgrad(lambda z: float(np.sum(z)), x, check_finite=True)
        with pytest.raises(ValueError, match=r"x contains NaN or Inf \(check_finite=True\)"):
            fastgrad.numjac(lambda z: z * 2.0, x, check_finite=True)
    # the default: NaN propagates into the affected entries only
    assert np.isnan(fastgrad.numgrad(lambda z: float(z[0] ** 2 + z[1]), np.array([1.0, np.nan]))).all()
    np.testing.assert_allclose(fastgrad.numgrad(lambda z: float(np.sum(z)), np.ones(2), check_finite=True), 1.0)


@pytest.mark.parametrize("kw,err,match", [
    (dict(rtol=np.nan), ValueError, "rtol must be finite and >= 0"),
    (dict(atol=np.inf), ValueError, "atol must be finite and >= 0"),
    (dict(rtol=-1e-5), ValueError, "rtol must be finite and >= 0"),
    (dict(atol=-1e-8), ValueError, "atol must be finite and >= 0"),
    (dict(rtol=True), TypeError, "rtol must be a real number"),
    (dict(atol="1e-8"), TypeError, "atol must be a real number"),
    (dict(rtol="1e-5"), TypeError, "rtol must be a real number"),
    (dict(h=True), TypeError, "h must be a real number"),
    (dict(h=-1.0), ValueError, "h must be finite and > 0"),
])
def test_gradcheck_refuses_bad_tolerances_and_steps(kw, err, match):
    calls = []

    def f(z):
        calls.append(1)
        return float(np.sum(z**2))

    with pytest.raises(err, match=match):
        fastgrad.gradcheck(f, lambda z: 2 * z, np.ones(3), **kw)
    assert not calls  # refused before any work
    assert fastgrad.gradcheck(f, lambda z: 2 * z, np.ones(3), rtol=0, atol=1e-6).ok


# ---------------------------------------------------------------------------
# 8. The compiled driver of an @njit f: cached, and the same bits as the per-f kernel


@njit
def cubic(x):
    return np.sum(x * x * x) + np.prod(np.cos(x))


@njit
def cubic_vector(x):
    return x * x * x + np.sum(np.cos(x))


@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("x", [np.linspace(-1, 2, 11), np.linspace(-1, 2, 12).reshape(3, 4),
                               np.linspace(-1, 2, 11).astype(np.float32)], ids=["1d", "2d", "f32"])
def test_first_class_driver_bitwise_equals_per_f_kernel(x, n_threads, threads, always_parallel, monkeypatch):
    _set_threads(n_threads)
    k = _kernels()
    fc = [fastgrad.numgrad(cubic, x, method=m, full_output=True) for m in ALL]
    fc += [(fastgrad.numjac(cubic_vector, x, method=m),) for m in ALL]
    assert any(key[2] == k._x_types[(x.dtype, x.ndim)] for key in k._drivers)  # the driver ran
    monkeypatch.setattr(k, "_first_class", lambda *a: None)  # the per-f kernels (dispatcher argument)
    per_f = [fastgrad.numgrad(cubic, x, method=m, full_output=True) for m in ALL]
    per_f += [(fastgrad.numjac(cubic_vector, x, method=m),) for m in ALL]
    py = [fastgrad.numgrad(lambda z: cubic(z), x, method=m, full_output=True) for m in ALL]
    py += [(fastgrad.numjac(lambda z: cubic_vector(z), x, method=m),) for m in ALL]
    for a, b, c in zip(fc, per_f, py, strict=True):
        for u, v, w in zip(a, b, c, strict=True):
            np.testing.assert_array_equal(u, v)
            np.testing.assert_array_equal(u, w)


FIRST_CONTACT = """
import numpy as np, fastgrad
from numba import njit
from fastgrad._numba import numdiff as k

@njit
def f(x):
    return np.sum(x * np.sin(x))

@njit
def v(x):
    return x * np.sin(x)

x = np.linspace(0.1, 1.0, 5)
fastgrad.set_num_threads(1)
fastgrad._config.USER_PYTHON_CALL_S = 0.0  # the compiled route even for this small call
assert np.allclose(fastgrad.numgrad(f, x), np.sin(x) + x * np.cos(x))
assert np.allclose(fastgrad.numjac(v, x), np.diag(np.sin(x) + x * np.cos(x)))
hits = sum(sum(d.stats.cache_hits.values()) for d in k._drivers.values() if d is not None)
misses = sum(sum(d.stats.cache_misses.values()) for d in k._drivers.values() if d is not None)
print(len(k._drivers), hits, misses)
"""


def test_first_class_driver_is_cached_across_processes():
    """A second process compiles only the user's f: fastgrad's driver comes from Numba's on-disk cache."""
    if not _config.NUMBA_FLAGS["cache"]:
        pytest.skip("Numba's on-disk cache is off here")
    first = _run(FIRST_CONTACT)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run(FIRST_CONTACT)
    assert second.returncode == 0, second.stderr[-3000:]
    drivers, hits, misses = map(int, second.stdout.split())
    assert drivers == 2 and hits == 2 and misses == 0, second.stdout


FRESH_CACHE = """
import numba, numpy as np, fastgrad
from numba import njit

@njit
def f(x):
    return np.sum(x ** 2)

@njit
def g(x, c):
    return c * np.sum(x ** 2)

fastgrad._config.USER_PARALLEL_MIN_NS = 0  # the compiled loops of several elements run in parallel
fastgrad._config.USER_PYTHON_CALL_S = 0.0  # the compiled route even for these small calls
x = np.linspace(0.1, 1.0, 4)
for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
    fastgrad.set_num_threads(n)
    assert np.allclose(fastgrad.numgrad(f, x), 2 * x)                  # compiles the driver here
    assert np.allclose(fastgrad.numgrad(g, x, args=(3.0,)), 6 * x)     # then the per-f kernel
    assert np.allclose(fastgrad.numjac(lambda z, c: c * z, x, args=(2.0,)), 2 * np.eye(4))
print("ok")
"""


def test_driver_compiled_in_process_then_per_f_kernel(tmp_path):
    """With an empty cache the drivers compile in the process; the per-f kernels must still type f alone.

    (A shared chunk dispatcher once held the driver's first-class overload, and
    Numba then tried to compile every later f for that signature: "Signature
    mismatch" for an f with extra args.)
    """
    r = _run(FRESH_CACHE, NUMBA_CACHE_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")


# ---------------------------------------------------------------------------
# 9. Parallel only when the work pays


def _spy_threads(monkeypatch, name):
    k = _kernels()
    seen = []
    real = getattr(k, name)

    def spy(*args):
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(k, name, spy)
    return seen


@njit
def cheap(x):
    return x[0] * x[1]


@njit
def cheap_vector(x):
    return x * x[0]


@njit
def costly(x):
    s = 0.0
    for r in range(50_000):
        s += np.sin(x[0] + r * 1e-6) * x[1]
    return s


def test_small_cheap_problem_runs_serially(threads, monkeypatch, launches):
    _set_threads(2)
    grad_threads = _spy_threads(monkeypatch, "grad_into")
    jac_threads = _spy_threads(monkeypatch, "jac_into")
    cgrad_threads = _spy_threads(monkeypatch, "cgrad_into")
    x = np.array([1.5, 2.0])
    for _ in range(3):
        np.testing.assert_allclose(fastgrad.numgrad(cheap, x), [2.0, 1.5], rtol=1e-9)
        np.testing.assert_allclose(fastgrad.numgrad(cheap, x, method="complex"), [2.0, 1.5], rtol=1e-12)
        np.testing.assert_allclose(fastgrad.numjac(cheap_vector, x), [[3.0, 0.0], [2.0, 1.5]], rtol=1e-9)
    assert grad_threads == [1, 1, 1] and cgrad_threads == [1, 1, 1] and jac_threads == [1, 1, 1]
    assert launches == []  # the thread pool was never woken


def test_costly_problem_runs_in_parallel(threads, monkeypatch):
    """~1 ms per evaluation, 40 evaluations: far above the threshold, the pool is used."""
    _set_threads(2)
    grad_threads = _spy_threads(monkeypatch, "grad_into")
    x = np.linspace(0.5, 1.0, 20)
    fastgrad.numgrad(costly, x)
    assert grad_threads == [2]
    np.testing.assert_array_equal(fastgrad.numgrad(costly, x),
                                  fastgrad.numgrad(costly, x, parallel=False))
