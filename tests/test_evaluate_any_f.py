"""Evaluating any f fast: vectorized=True, workers= (int, Executor, map-like), the whole-column Python path."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest
from numba import njit

import fastgrad

METHODS = ["forward", "backward", "central", "five-point", "complex"]


def loss(z):
    """A scalar f of one point; ``loss_stack`` is the same arithmetic on a stack of points."""
    return np.sum(np.sin(z) ** 3 + z * z, axis=(-2, -1))


def loss_stack(Z):
    return np.sum(np.sin(Z) ** 3 + Z * Z, axis=(-2, -1))


def field(z):
    """An array-valued f (elementwise per point), one point or a stack alike."""
    return np.sin(z) * z[..., ::-1, :] + z ** 2


@njit
def field_njit(z):
    return np.sin(z) * z[::-1, :] + z ** 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", METHODS)
def test_vectorized_equals_serial_bitwise(method, dtype):
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(dtype)
    g = fastgrad.numgrad(loss, x, method=method)
    for chunk_size in (None, 1, 5, 24, 100):
        np.testing.assert_array_equal(fastgrad.numgrad(loss_stack, x, method=method, vectorized=True,
                                                       chunk_size=chunk_size), g)
    J = fastgrad.numjac(field, x, method=method)
    for chunk_size in (None, 7):
        np.testing.assert_array_equal(fastgrad.numjac(field, x, method=method, vectorized=True,
                                                      chunk_size=chunk_size), J)
    g, err = fastgrad.numgrad(loss, x, method=method, full_output=True)
    gv, errv = fastgrad.numgrad(loss_stack, x, method=method, full_output=True, vectorized=True)
    np.testing.assert_array_equal(gv, g)
    np.testing.assert_array_equal(errv, err)
    expect = 3 * np.sin(x.astype(float)) ** 2 * np.cos(x.astype(float)) + 2 * x
    tol = 1e-2 if dtype == np.float32 or method in ("forward", "backward") else 1e-6
    np.testing.assert_allclose(g, expect, rtol=tol, atol=tol)


def test_vectorized_calls_f_with_stacks():
    shapes = []

    def f(Z):
        shapes.append(Z.shape)
        return np.sum(Z ** 2, axis=1)

    x = np.arange(10.0)
    fastgrad.numgrad(f, x, vectorized=True, chunk_size=8)
    assert shapes[0] == (1, 10)  # f(x), as a stack of one point
    assert shapes[1:] == [(8, 10), (8, 10), (4, 10)]  # 20 perturbed points, at most 8 per call


def test_vectorized_bad_shape_names_f():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"f \(vectorized=True\) must return shape \(6,\) for a stack of 6 points"):
        fastgrad.numgrad(lambda Z: np.sum(Z) if Z.shape[0] > 1 else np.zeros(1), x, vectorized=True)
    with pytest.raises(ValueError, match=r"f \(vectorized=True\) must return an array whose first axis"):
        fastgrad.numgrad(lambda Z: 1.0, x, vectorized=True)
    with pytest.raises(ValueError, match=r"f \(vectorized=True\) must return shape \(6, 3\)"):
        fastgrad.numjac(lambda Z: Z if Z.shape[0] == 1 else Z[:, :2], x, vectorized=True)
    with pytest.raises(TypeError, match="f must return a real number"):
        fastgrad.numgrad(lambda Z: np.array([None] * Z.shape[0]) if Z.shape[0] > 1 else np.zeros(1), x,
                         vectorized=True)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        fastgrad.numgrad(loss_stack, np.zeros((2, 2)), vectorized=True, chunk_size=0)


@njit
def loss_njit(z):
    return np.sum(np.sin(z) * np.sin(z) * np.sin(z) + z * z)  # not sin(z)**3: Numba's complex power is inexact


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", METHODS)
def test_python_path_equals_njit_kernels_bitwise(method, dtype, n_threads):
    """The whole-column numpy differences do the compiled kernels' arithmetic: the same f gives the same bits."""
    x = np.random.default_rng(2).standard_normal((4, 3)).astype(dtype)
    np.testing.assert_array_equal(fastgrad.numjac(lambda z: field_njit(z), x, method=method),
                                  fastgrad.numjac(field_njit, x, method=method))
    a = fastgrad.numgrad(lambda z: loss_njit(z), x, method=method, full_output=True)
    b = fastgrad.numgrad(loss_njit, x, method=method, full_output=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("method", METHODS + ["adaptive"])
def test_results_do_not_depend_on_the_block_size(method, monkeypatch):
    """A Python f is evaluated a block of columns at a time (blocks of ~1 MiB of results): one column per
    block gives the same bits as the whole Jacobian in one block, dense, sparse and full_output alike."""
    from fastgrad import _evaluate

    x = np.random.default_rng(3).standard_normal((4, 3))
    S = fastgrad.numjac(field, x, flatten=True, order="C") != 0  # field's structure
    assert 12 < S.sum() < 144

    def run():
        out = [fastgrad.numjac(field, x, method=method), fastgrad.numgrad(loss, x, method=method, full_output=True)]
        if method != "adaptive":
            out.append(fastgrad.numjac(field, x, method=method, sparsity=S, order="C").toarray())
        return out

    one_block = run()
    monkeypatch.setattr(_evaluate, "SERIAL_BLOCK_BYTES", 1)  # a block of one column
    assert _evaluate.block_columns(4, 12) == 1
    for got, want in zip(run(), one_block, strict=True):
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
                        strict=True):
            np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------------------
# workers=


def _pool_kinds():
    pool = concurrent.futures.ThreadPoolExecutor(2)
    return pool, {"int": 2, "executor": pool, "map-like": pool.map, "builtin map": map}


@pytest.mark.parametrize("method", ["central", "forward", "complex"])
def test_workers_equal_serial_bitwise(method):
    x = np.random.default_rng(3).standard_normal((3, 5))
    g = fastgrad.numgrad(loss, x, method=method)
    J = fastgrad.numjac(field, x, method=method)
    pool, kinds = _pool_kinds()
    with pool:
        for name, workers in kinds.items():
            np.testing.assert_array_equal(fastgrad.numgrad(loss, x, method=method, workers=workers), g,
                                          err_msg=name)
            np.testing.assert_array_equal(fastgrad.numjac(field, x, method=method, workers=workers), J,
                                          err_msg=name)
            np.testing.assert_array_equal(
                fastgrad.numgrad(loss_stack, x, method=method, workers=workers, vectorized=True, chunk_size=4),
                g, err_msg=name)


def _square_sum(z):
    return float(np.sum(z * z))


def test_process_pool_executor():
    x = np.linspace(0.0, 1.0, 6)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        np.testing.assert_array_equal(fastgrad.numgrad(_square_sum, x, workers=pool),
                                      fastgrad.numgrad(_square_sum, x))


def test_f_raising_in_workers_propagates():
    def f(z):
        if z[1] != 0.0:
            raise KeyError("bad point")
        return float(np.sum(z))

    pool, kinds = _pool_kinds()
    with pool:
        for workers in kinds.values():
            with pytest.raises(KeyError, match="bad point"):
                fastgrad.numgrad(f, np.zeros(40), workers=workers)
            with pytest.raises(KeyError, match="bad point"):
                fastgrad.numjac(lambda z: f(z) * z, np.zeros(40), workers=workers)


def test_tiny_problem_runs_serially():
    """A pool costs more than a small problem takes: workers=2 then runs in the calling thread."""
    seen = set()

    def f(z):
        seen.add(threading.get_ident())
        return float(np.sum(z ** 2))

    fastgrad.numgrad(f, np.ones(5), workers=2)
    assert seen == {threading.get_ident()}


def test_slow_f_uses_the_pool():
    import time

    seen = []

    def f(z):
        seen.append(threading.get_ident())
        time.sleep(0.001)
        return float(np.sum(z ** 2))

    np.testing.assert_allclose(fastgrad.numgrad(f, np.ones(8), workers=2), 2.0, rtol=1e-8)
    assert seen[0] == threading.get_ident()  # f(x), timed: 16 such evaluations are worth a pool
    assert threading.get_ident() not in seen[1:] and len(seen) == 17


def test_bad_workers_refused():
    with pytest.raises(TypeError, match="workers must be an int"):
        fastgrad.numgrad(loss, np.ones((2, 2)), workers="two")
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        fastgrad.numjac(field, np.ones((2, 2)), workers=0)
    with pytest.raises(TypeError, match="workers must be an int"):
        fastgrad.numgrad(loss, np.ones((2, 2)), workers=2.0)
