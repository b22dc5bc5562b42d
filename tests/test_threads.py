"""Determinism across thread counts and safety of concurrent calls."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import COMPILED

import fastgrad
from fastgrad import _config


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("N, D, K, dtype", [(100_000, 16, 0, np.float64), (30_000, 130, 3, np.float64),
                                            (60_000, 40, 0, np.float32), (7_777, 200, 1, np.float64)])
def test_bitwise_identical_for_every_thread_count(backend, N, D, K, dtype, threads):
    assert N * D * max(K, 1) >= _config.PARALLEL_MIN_WORK  # really on the parallel path
    rng = np.random.default_rng(N + D)
    A = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, K) if K else D).astype(dtype)
    y = rng.standard_normal((N, K) if K else N).astype(dtype)
    results = []
    for n in (1, 2, 1, 2):
        fastgrad.set_num_threads(n)
        assert fastgrad.get_num_threads() == n
        results.append(fastgrad.mse_loss_and_grad(A, y, w, backend=backend))
    for loss, g in results[1:]:
        assert loss == results[0][0]
        assert np.array_equal(g, results[0][1])  # bit for bit, not approximately


@pytest.mark.parametrize("backend", fastgrad.available_backends())
def test_serial_and_parallel_paths_agree_bitwise(backend, threads):
    # the same partition is used on both paths, so crossing the size threshold
    # (the protocol's n_threads) changes nothing
    k = _config.kernels("mse", backend)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5000, 8))
    Y = rng.standard_normal((5000, 1))
    WT = rng.standard_normal((1, 8))
    o1, o2 = np.empty((8, 1)), np.empty((8, 1))
    l1 = k.loss_grad(A, Y, WT, None, None, 1 / 5000, o1, None, 1)
    l2 = k.loss_grad(A, Y, WT, None, None, 1 / 5000, o2, None, 2)
    assert l1 == l2 and np.array_equal(o1, o2)


@pytest.mark.parametrize("backend", fastgrad.available_backends())
def test_eight_python_threads_concurrently(backend):
    rng = np.random.default_rng(8)
    problems = []
    for t in range(8):
        N, D = 20_000 + 1000 * t, 10 + t
        A = rng.standard_normal((N, D))
        w = rng.standard_normal(D)
        y = rng.standard_normal(N)
        problems.append((A, y, w, fastgrad.mse_grad(A, y, w, backend="numpy")))
    results: list = [None] * 8
    errors: list = []
    barrier = threading.Barrier(8)

    def work(t):
        try:
            A, y, w, _ = problems[t]
            barrier.wait()
            for _ in range(5):
                results[t] = fastgrad.mse_grad(A, y, w, backend=backend)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    assert not errors
    for t in range(8):
        np.testing.assert_allclose(results[t], problems[t][3], rtol=1e-10, atol=1e-12)


def test_set_num_threads_validation(threads):
    import numba

    with pytest.raises(ValueError, match="n must be between 1 and"):
        fastgrad.set_num_threads(0)
    with pytest.raises(ValueError, match="n must be between 1 and"):
        fastgrad.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        fastgrad.set_num_threads(1.0)
    fastgrad.set_num_threads(np.int64(1))
    assert fastgrad.get_num_threads() == 1


def test_threads_apply_to_numba_in_every_python_thread(threads):
    import numba

    fastgrad.set_num_threads(1)
    seen = []

    def work():
        _config.numba_threads()
        seen.append(numba.get_num_threads())

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert seen == [1]
