"""numgrad/numjac over an @njit f before its compiled driver exists: small calls run from Python, same bits."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

import fastgrad
from fastgrad import _config
from fastgrad import numdiff as nd


@njit
def _scalar(x):
    return np.sum(np.sin(x) ** 3) + x[0] * x[-1]


@njit
def _vector(x):
    return np.sin(x) * x[0] + x[-1] ** 2


@pytest.fixture
def kernels():
    return _config.user_function_kernels()


def _both_routes(monkeypatch, kernels, call):
    """``call()`` once from Python (the driver reported missing) and once compiled (tier off).

    The Python route's limits are raised for the first call: the route is
    chosen from one timed evaluation of f, which a loaded machine (CI) can
    stretch past ``USER_PYTHON_CALL_S``; this test is about the bits of the
    two routes, not about where the line between them lies.
    """
    monkeypatch.setattr(nd, "_python_spent", {})
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 1e3)
    monkeypatch.setattr(_config, "USER_PYTHON_TOTAL_S", 1e3)
    monkeypatch.setattr(kernels, "driver_ready", lambda *a, **kw: False)
    spy = {"compiled": 0}
    for name in ("grad_into", "jac_into"):
        real = getattr(kernels, name)

        def counted(*a, _real=real, **kw):
            spy["compiled"] += 1
            return _real(*a, **kw)

        monkeypatch.setattr(kernels, name, counted)
    from_python = call()
    assert spy["compiled"] == 0, "the small call compiled instead of running from Python"
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 0.0)
    compiled = call()
    assert spy["compiled"] == 1
    return from_python, compiled


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["forward", "backward", "central", "five-point"])
def test_numgrad_from_python_equals_compiled_bitwise(monkeypatch, kernels, method, dtype):
    x = np.linspace(-1.0, 1.0, 23).astype(dtype)
    a, b = _both_routes(monkeypatch, kernels, lambda: fastgrad.numgrad(_scalar, x, method=method))
    np.testing.assert_array_equal(a, b)
    (ga, ea), (gb, eb) = _both_routes(
        monkeypatch, kernels, lambda: fastgrad.numgrad(_scalar, x, method=method, full_output=True))
    np.testing.assert_array_equal(ga, gb)
    np.testing.assert_array_equal(ea, eb)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["forward", "backward", "central", "five-point"])
def test_numjac_from_python_equals_compiled_bitwise(monkeypatch, kernels, method, dtype):
    x = np.linspace(-1.0, 1.0, 9).astype(dtype).reshape(3, 3)
    a, b = _both_routes(monkeypatch, kernels, lambda: fastgrad.numjac(_vector, x, method=method))
    np.testing.assert_array_equal(a, b)


def test_calls_from_python_stop_once_their_budget_is_spent(monkeypatch, kernels):
    monkeypatch.setattr(nd, "_python_spent", {})
    monkeypatch.setattr(kernels, "driver_ready", lambda *a, **kw: False)
    calls = []
    real = kernels.grad_into
    monkeypatch.setattr(kernels, "grad_into", lambda *a: calls.append(1) or real(*a))
    x = np.linspace(-1.0, 1.0, 50)
    per_call = _config.USER_PYTHON_OVERHEAD_S + 2 * x.size * _config.USER_PYTHON_EVAL_S  # at least this per call
    monkeypatch.setattr(_config, "USER_PYTHON_TOTAL_S", 2.5 * per_call + 1e-3)
    results = [fastgrad.numgrad(_scalar, x) for _ in range(40)]
    assert 0 < len(calls) < 40  # some calls ran from Python, then the compiled route took over
    assert all(np.array_equal(r, results[0]) for r in results)


def test_a_cached_driver_is_always_used(monkeypatch, kernels):
    x = np.linspace(-1.0, 1.0, 7)
    fastgrad.numgrad(_scalar, x)
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 0.0)
    fastgrad.numgrad(_scalar, x)  # compiles (or loads) the serial driver for float64 -> float64
    assert kernels.driver_ready("grad", _scalar, x, (), np.ones(7), np.empty(7), np.empty(0),
                                parallel=False)
    monkeypatch.undo()
    monkeypatch.setattr(nd, "_python_spent", {})
    calls = []
    real = kernels.grad_into
    monkeypatch.setattr(kernels, "grad_into", lambda *a: calls.append(1) or real(*a))
    fastgrad.numgrad(_scalar, x)
    assert calls == [1]


@njit
def _scaled(x, c):
    return c * np.sum(np.sin(x) ** 3)


def test_a_per_f_kernel_once_run_is_always_used(monkeypatch, kernels):
    # args make the call run the per-f kernels (no first-class driver); once they have run for these
    # types in this process, a small call needs no compile and must not go back to Python
    x = np.linspace(-1.0, 1.0, 11)
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 0.0)
    first = fastgrad.numgrad(_scaled, x, args=(2.0,), parallel=False)  # compiled route: runs the kernel
    assert kernels.driver_ready("grad", _scaled, x, (2.0,), parallel=False)
    assert not kernels.driver_ready("grad", _scaled, x.astype(np.float32), (2.0,), parallel=False)
    assert not kernels.driver_ready("grad", _scaled, x, (2.0,), parallel=True)
    monkeypatch.setattr(_config, "USER_PYTHON_CALL_S", 1e3)
    monkeypatch.setattr(_config, "USER_PYTHON_TOTAL_S", 1e3)
    monkeypatch.setattr(nd, "_python_spent", {})
    calls = []
    real = kernels.grad_into
    monkeypatch.setattr(kernels, "grad_into", lambda *a: calls.append(1) or real(*a))
    again = fastgrad.numgrad(_scaled, x, args=(2.0,), parallel=False)
    assert calls == [1] and nd._python_spent == {}
    np.testing.assert_array_equal(again, first)


@njit
def _counted(x, count):
    count[0] += 1  # f may write into its arguments: here, to count its evaluations
    return np.sum(x ** 3)


@pytest.mark.parametrize("method, per_element", [("central", 2), ("five-point", 4), ("forward", 1)])
def test_a_timed_f_is_not_evaluated_at_x_again(method, per_element):
    # the first call evaluates f(x) to check its result and time it (twice when it is cheap); a later
    # call on arguments of the same types and shapes knows both, and evaluates f(x) only where the
    # stencil uses it (forward/backward)
    n = 10 * per_element  # a size of its own for each method: the timing is known per f, types and shapes
    x = np.linspace(-1.0, 1.0, n)
    count = np.zeros(1, dtype=np.int64)
    fastgrad.numgrad(_counted, x, args=(count,), method=method, parallel=False)
    assert count[0] >= per_element * x.size + 1
    for _ in range(2):
        count[0] = 0
        g = fastgrad.numgrad(_counted, x, args=(count,), method=method, parallel=False)
        assert count[0] == per_element * x.size + (method == "forward")
        np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-5, atol=1e-7)
    count[0] = 0
    fastgrad.numgrad(_counted, np.linspace(-1.0, 1.0, n + 1), args=(count,), method=method, parallel=False)
    assert count[0] >= per_element * (n + 1) + 1  # another shape: timed again


def test_f_raising_from_python_propagates(monkeypatch, kernels):
    @njit
    def bad(x):
        if x[0] > 0.5:
            raise ValueError("x[0] too large")
        return np.sum(x)

    monkeypatch.setattr(nd, "_python_spent", {})
    monkeypatch.setattr(kernels, "driver_ready", lambda *a, **kw: False)
    with pytest.raises(ValueError, match="too large"):
        fastgrad.numgrad(bad, np.array([0.5 - 1e-9, 0.0]), method="forward", h=1e-3)


FRESH = """
import numpy as np, fastgrad
from numba import njit
from fastgrad._numba import numdiff as k

@njit
def f(x):
    return np.sum(x * np.sin(x))

x = np.linspace(0.1, 1.0, 5)
assert np.allclose(fastgrad.numgrad(f, x), np.sin(x) + x * np.cos(x))
assert np.allclose(fastgrad.numjac(lambda z: z, x), np.eye(5))
print(sorted(k._drivers), sorted(k._unbuilt))
"""


def test_first_contact_with_an_empty_cache_compiles_no_driver(tmp_path):
    # a new user's first small numgrad over an @njit f: only f itself is compiled
    r = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    drivers, unbuilt = r.stdout.strip().split("] [")
    assert drivers == "[", r.stdout  # none compiled or loaded
    assert "'grad'" in unbuilt, r.stdout  # looked for in the (empty) cache, not compiled
