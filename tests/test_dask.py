"""fastgrad.dask: chunked MSE and distributed numgrad (SPEC section 7).

The threaded-scheduler tests and the error tests are fast; the LocalCluster
tests share one cluster (2 worker processes, loopback only) started and closed
in this module; the out-of-core test (8 GiB of lazily generated chunks) is
marked slow.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgrad

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastgrad.dask as fgd  # noqa: E402

pytestmark = pytest.mark.dask

BACKENDS = fastgrad.available_backends()


def _problem(rng, N, D, K, dtype=np.float64):
    A = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, K) if K else D).astype(dtype)
    y = rng.standard_normal((N, K) if K else N).astype(dtype)
    return A, y, w


def _tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-12}


@pytest.fixture
def threaded():
    with dask.config.set(scheduler="threads"):
        yield


# ---------------------------------------------------------------------------
# Import hygiene


def test_import_fastgrad_does_not_import_dask():
    code = "import sys, fastgrad; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_without_dask_says_how_to_install():
    code = (
        "import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
        "try:\n    import fastgrad.dask\nexcept ImportError as e:\n    print(e)\n"
        "else:\n    raise SystemExit('no ImportError')"
    )
    res = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install fastgrad[dask]" in res.stdout


# ---------------------------------------------------------------------------
# Chunked MSE on the threaded scheduler: equal to the in-memory functions


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [0, 3])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_in_memory(threaded, rng, backend, K, reduction, dtype):
    A, y, w = _problem(rng, 1003, 7, K, dtype)
    Ad = da.from_array(A, chunks=(250, 7))  # 4 full chunks and a 3-row one
    yd = da.from_array(y, chunks=(250,) + y.shape[1:])
    loss, g = fgd.mse_loss_and_grad(Ad, yd, w, reduction=reduction, backend=backend)
    rloss, rg = fastgrad.mse_loss_and_grad(A, y, w, reduction=reduction, backend="numpy")
    assert isinstance(loss, float)
    assert g.shape == w.shape and g.dtype == dtype
    np.testing.assert_allclose(loss, rloss, **_tol(dtype))
    np.testing.assert_allclose(g, rg, **_tol(dtype))
    assert fgd.mse_loss(Ad, yd, w, reduction=reduction, backend=backend) == loss
    np.testing.assert_array_equal(fgd.mse_grad(Ad, yd, w, reduction=reduction, backend=backend), g)


@given(
    N=st.integers(1, 60),
    D=st.integers(1, 6),
    K=st.integers(0, 3),
    rows=st.integers(1, 25),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_in_memory_any_chunking(N, D, K, rows, seed):
    A, y, w = _problem(np.random.default_rng(seed), N, D, K)
    with dask.config.set(scheduler="sync"):
        loss, g = fgd.mse_loss_and_grad(da.from_array(A, chunks=(rows, D)), y, w)
    rloss, rg = fastgrad.mse_loss_and_grad(A, y, w, backend="numpy")
    np.testing.assert_allclose(loss, rloss, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(g, rg, rtol=1e-10, atol=1e-12)


def test_each_chunk_is_one_task_and_partials_are_summed(threaded, rng):
    A, y, w = _problem(rng, 100, 3, 0)
    Ad = da.from_array(A, chunks=(10, 3))
    delayed = fgd.mse_grad(Ad, y, w, compute=False)
    keys = [str(k) for k in dict(delayed.__dask_graph__())]
    assert sum(k.startswith("_chunk_partial-") for k in keys) == 10
    assert sum(k.startswith("_sum_partials-") for k in keys) == 2 + 1  # 10 -> 2 -> 1
    np.testing.assert_allclose(delayed.compute(), fastgrad.mse_grad(A, y, w), rtol=1e-12)


def test_deterministic(threaded, rng):
    A, y, w = _problem(rng, 5000, 9, 2)
    Ad = da.from_array(A, chunks=(317, 9))
    first = fgd.mse_loss_and_grad(Ad, y, w)
    for _ in range(3):
        again = fgd.mse_loss_and_grad(Ad, y, w)
        assert again[0] == first[0]
        np.testing.assert_array_equal(again[1], first[1])


def test_y_chunked_differently_is_rechunked(threaded, rng):
    A, y, w = _problem(rng, 300, 4, 2)
    Ad = da.from_array(A, chunks=(70, 4))
    yd = da.from_array(y, chunks=(45, 1))  # other row chunks and split columns
    np.testing.assert_allclose(fgd.mse_grad(Ad, yd, w), fastgrad.mse_grad(A, y, w), rtol=1e-12)


def test_empty_chunks_add_nothing(threaded, rng):
    A, y, w = _problem(rng, 40, 3, 0)
    Ad = da.from_array(A, chunks=((15, 0, 25), (3,)))
    assert 0 in Ad.chunks[0]
    np.testing.assert_allclose(fgd.mse_grad(Ad, y, w), fastgrad.mse_grad(A, y, w), rtol=1e-12)


def test_mixed_and_converted_dtypes(threaded, rng):
    A, y, w = _problem(rng, 200, 4, 0, np.float32)
    Ad = da.from_array(A, chunks=(64, 4))
    g = fgd.mse_grad(Ad, y.astype(np.float64), w)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, fastgrad.mse_grad(A, y.astype(np.float64), w), rtol=1e-10)
    Ai = np.arange(30).reshape(10, 3) % 4
    gi = fgd.mse_grad(da.from_array(Ai, chunks=(4, 3)), np.ones(10), np.ones(3))
    assert gi.dtype == np.float64
    np.testing.assert_allclose(gi, fastgrad.mse_grad(Ai, np.ones(10), np.ones(3)), rtol=1e-12)


def test_out_is_used_and_inputs_not_mutated(threaded, rng):
    A, y, w = _problem(rng, 120, 5, 2)
    w_before = w.copy()
    Ad = da.from_array(A, chunks=(50, 5))
    out = np.empty_like(w)
    g = fgd.mse_grad(Ad, y, w, out=out)
    assert g is out and np.shares_memory(g, out)
    loss, g2 = fgd.mse_loss_and_grad(Ad, y, w, out=np.empty_like(w))
    np.testing.assert_allclose(out, fastgrad.mse_grad(A, y, w), rtol=1e-12)
    np.testing.assert_array_equal(g2, out)
    np.testing.assert_array_equal(w, w_before)
    np.testing.assert_array_equal(Ad.compute(), A)


def test_compute_false_returns_delayed(threaded, rng):
    A, y, w = _problem(rng, 90, 3, 0)
    Ad = da.from_array(A, chunks=(40, 3))
    lazy = fgd.mse_loss_and_grad(Ad, y, w, compute=False)
    assert dask.is_dask_collection(lazy)
    loss, g = lazy.compute()
    eager = fgd.mse_loss_and_grad(Ad, y, w)
    assert loss == eager[0]
    np.testing.assert_array_equal(g, eager[1])
    # in-memory input: still a Delayed, computing to the in-memory result
    lazy_np = fgd.mse_loss(A, y, w, compute=False)
    assert dask.is_dask_collection(lazy_np)
    assert lazy_np.compute() == fastgrad.mse_loss(A, y, w)


def test_non_dask_input_falls_through(rng):
    A, y, w = _problem(rng, 50, 4, 2)
    out = np.empty_like(w)
    g = fgd.mse_grad(A, y, w, out=out, backend="numpy")
    assert g is out
    np.testing.assert_array_equal(g, fastgrad.mse_grad(A, y, w, backend="numpy"))
    assert fgd.mse_loss(A, y, w) == fastgrad.mse_loss(A, y, w)
    # a dask y or w with an in-memory A is computed first
    yd = da.from_array(y, chunks=(7, 2))
    wd = da.from_array(w, chunks=(2, 2))
    np.testing.assert_array_equal(fgd.mse_grad(A, yd, wd), fastgrad.mse_grad(A, y, w))


def test_check_finite(threaded, rng):
    A, y, w = _problem(rng, 60, 3, 0)
    A[55, 1] = np.nan
    Ad = da.from_array(A, chunks=(20, 3))
    assert np.isnan(fgd.mse_loss(Ad, y, w))  # NaN propagates
    with pytest.raises(ValueError, match="A contains NaN or Inf"):
        fgd.mse_loss(Ad, y, w, check_finite=True)
    with pytest.raises(ValueError, match="w contains NaN or Inf"):
        fgd.mse_loss(da.from_array(A[:20], chunks=(10, 3)), y[:20], np.array([1.0, np.inf, 0.0]),
                     check_finite=True)


# ---------------------------------------------------------------------------
# Errors: raised before anything is computed


def _graph_never_runs(block):
    raise AssertionError("the graph was computed")


@pytest.fixture
def lazy_A():
    """A (10, 3) dask array whose computation fails: errors must come before it."""
    return da.ones((10, 3), chunks=(5, 3)).map_blocks(_graph_never_runs, dtype=np.float64)


def test_column_chunks_raise_with_the_fix(lazy_A):
    A = da.ones((10, 4), chunks=(5, 2))
    with pytest.raises(ValueError, match=r"chunked along its columns \(2 column chunks.*A\.rechunk\(\{1: -1\}\)"):
        fgd.mse_grad(A, np.ones(10), np.ones(4))
    # and the fix works
    g = fgd.mse_grad(A.rechunk({1: -1}), np.ones(10), np.ones(4))
    np.testing.assert_allclose(g, fastgrad.mse_grad(np.ones((10, 4)), np.ones(10), np.ones(4)))


def test_unknown_chunk_sizes_raise():
    x = da.from_array(np.arange(20.0).reshape(10, 2), chunks=(5, 2))
    A = x[x[:, 0] > 3]
    with pytest.raises(ValueError, match=r"A has unknown \(nan\) chunk sizes.*A\.compute_chunk_sizes\(\)"):
        fgd.mse_grad(A, np.ones(3), np.ones(2))
    B = da.from_array(np.ones((4, 2)), chunks=(2, 2))
    yd = da.from_array(np.arange(8.0), chunks=4)
    with pytest.raises(ValueError, match=r"y has unknown \(nan\) chunk sizes.*y\.compute_chunk_sizes\(\)"):
        fgd.mse_grad(B, yd[yd > 3], np.ones(2))


@pytest.mark.parametrize(
    ("A_shape", "y_shape", "w_shape", "match"),
    [
        ((10, 3), (9,), (3,), r"A has 10 rows but y has 9 \(A \(10, 3\), y \(9,\)\)"),
        ((10, 3), (10,), (4,), r"A has 3 columns but w has 4 rows"),
        ((10, 3), (10,), (3, 2), r"w has shape \(3, 2\), so y must be 2-D \(N, K\)"),
        ((10, 3), (10, 3), (3, 2), r"w has 2 columns but y has 3"),
        ((0, 3), (0,), (3,), r"A has 0 rows .* mean over an empty sample axis is undefined"),
        ((10,), (10,), (3,), r"A must be 2-D \(N, D\), got an array of shape \(10,\)"),
        ((10, 3), (10,), (3, 1, 1), r"w must be 1-D \(D,\) or 2-D \(D, K\)"),
        ((10, 3), (10, 0), (3, 0), r"w has 0 columns .* mean over zero outputs is undefined"),
    ],
)
def test_shape_errors_as_in_memory(A_shape, y_shape, w_shape, match):
    A = da.zeros(A_shape, chunks=5).map_blocks(_graph_never_runs, dtype=np.float64)
    y, w = np.zeros(y_shape), np.zeros(w_shape)
    with pytest.raises(ValueError, match=match):
        fgd.mse_loss_and_grad(A, y, w)
    with pytest.raises(ValueError, match=match):  # the same rule in memory
        fastgrad.mse_loss_and_grad(np.zeros(A_shape), y, w)
    with pytest.raises(ValueError, match=match):  # and with a dask y
        fgd.mse_loss_and_grad(A, da.from_array(y), w)


def test_other_errors(lazy_A):
    with pytest.raises(TypeError, match="A is complex"):
        fgd.mse_grad(lazy_A.astype(np.complex128), np.ones(10), np.ones(3))
    with pytest.raises(TypeError, match="y has dtype <U1"):
        fgd.mse_grad(lazy_A, da.from_array(np.array(["a"] * 10)), np.ones(3))
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum'; got 'max'"):
        fgd.mse_grad(lazy_A, np.ones(10), np.ones(3), reduction="max")
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        fgd.mse_grad(lazy_A, np.ones(10), np.ones(3), backend="torch")
    with pytest.raises(ValueError, match=r"out has shape \(4,\) but the result has shape \(3,\)"):
        fgd.mse_grad(lazy_A, np.ones(10), np.ones(3), out=np.empty(4))
    with pytest.raises(TypeError, match="out has dtype float32 but the result has dtype float64"):
        fgd.mse_grad(lazy_A, np.ones(10), np.ones(3), out=np.empty(3, np.float32))
    with pytest.raises(ValueError, match="out= needs compute=True"):
        fgd.mse_grad(lazy_A, np.ones(10), np.ones(3), out=np.empty(3), compute=False)
    with pytest.raises(TypeError, match="compute must be True or False"):
        fgd.mse_grad(lazy_A, np.ones(10), np.ones(3), compute="yes")


# ---------------------------------------------------------------------------
# numgrad


def cubic(x, a):
    """f(x) = sum a * x^3 (module level: pickles by reference for the workers)."""
    return float(np.sum(a * x**3))


def cubic_grad(x, a):
    return 3.0 * a * x**2


def serial_numgrad(f, x, args, h, method):
    """The serial loop numgrad must equal: one element at a time on a copy, stored (representable) steps."""
    xc = np.array(x, copy=True)
    flat = xc.reshape(-1)
    hs = np.broadcast_to(np.asarray(h, dtype=np.float64), x.shape).reshape(-1)
    f0 = f(xc, *args)
    g = np.empty(flat.size)

    def f_at(i, value):
        flat[i] = value
        return float(flat[i]), f(xc, *args)

    for i in range(flat.size):
        x_i = float(flat[i])
        v_p, f_p = f_at(i, x_i + hs[i])
        if method == "central":
            v_m, f_m = f_at(i, x_i - (v_p - x_i))
            g[i] = (f_p - f_m) / (v_p - v_m)
        elif method == "forward":
            g[i] = (f_p - f0) / (v_p - x_i)
        elif method == "backward":
            v_m, f_m = f_at(i, x_i - hs[i])
            g[i] = (f0 - f_m) / (x_i - v_m)
        else:
            hh = v_p - x_i
            f_m1, f_p2, f_m2 = (f_at(i, x_i + m * hh)[1] for m in (-1.0, 2.0, -2.0))
            g[i] = ((f_m2 - f_p2) + 8.0 * (f_p - f_m1)) / (12.0 * hh)
        flat[i] = x_i
    return g.reshape(x.shape)


def default_h(x, method):
    c = {"central": 1 / 3, "forward": 1 / 2, "backward": 1 / 2, "five-point": 1 / 5}[method]
    return np.finfo(x.dtype).eps ** c * np.maximum(1.0, np.abs(x.astype(np.float64)))


@pytest.mark.parametrize("method", ["central", "forward", "backward", "five-point"])
@pytest.mark.parametrize("n_chunks", [1, 3, 50])
def test_numgrad_equals_serial(threaded, rng, method, n_chunks):
    x = rng.standard_normal((4, 5)) * 3
    a = rng.standard_normal((4, 5))
    x_before = x.copy()
    g = fgd.numgrad(cubic, x, args=(a,), method=method, n_chunks=n_chunks)
    assert g.shape == x.shape and g.dtype == np.float64
    np.testing.assert_array_equal(g, serial_numgrad(cubic, x, (a,), default_h(x, method), method))
    rtol = {"central": 1e-8, "five-point": 1e-9}.get(method, 1e-5)  # |f| ~ 50: forward is ~1e-6 off
    np.testing.assert_allclose(g, cubic_grad(x, a), rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(x, x_before)


def test_numgrad_given_steps_and_float32(threaded, rng):
    x = rng.standard_normal(7)
    a = np.ones(7)
    h = np.linspace(1e-6, 1e-5, 7)
    g = fgd.numgrad(cubic, x, args=(a,), h=h, n_chunks=3)
    np.testing.assert_array_equal(g, serial_numgrad(cubic, x, (a,), h, "central"))
    g = fgd.numgrad(cubic, x, args=(a,), h=1e-4, n_chunks=2)
    np.testing.assert_array_equal(g, serial_numgrad(cubic, x, (a,), 1e-4, "central"))
    x32 = x.astype(np.float32)
    g32 = fgd.numgrad(cubic, x32, args=(a,))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, cubic_grad(x, a), rtol=1e-3, atol=1e-3)
    assert fgd.numgrad(cubic, np.zeros((0, 3)), args=(1.0,)).shape == (0, 3)
    assert fgd.numgrad(cubic, 2.0, args=(1.0,)).shape == ()


def test_numgrad_float32_steps_and_fastgrad_numgrad(threaded, rng):
    x = (rng.standard_normal(9) * 4).astype(np.float32)
    a = rng.standard_normal(9)
    for method in ("central", "forward", "five-point"):
        g = fgd.numgrad(cubic, x, args=(a,), method=method, n_chunks=4)
        assert g.dtype == np.float32
        serial = serial_numgrad(cubic, x, (a,), default_h(x, method), method).astype(np.float32)
        np.testing.assert_array_equal(g, serial)
        # the same numbers as the in-process fastgrad.numgrad (same step rule, same stencils)
        np.testing.assert_allclose(g, fastgrad.numgrad(cubic, x, args=(a,), method=method), rtol=1e-6)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(fgd.numgrad(cubic, x64, args=(a,), n_chunks=2),
                               fastgrad.numgrad(cubic, x64, args=(a,)), rtol=1e-13)


def test_numgrad_errors():
    x = np.ones(3)
    with pytest.raises(ValueError, match="method must be one of 'central', 'forward'"):
        fgd.numgrad(cubic, x, args=(1.0,), method="complex")
    with pytest.raises(ValueError, match="h must be finite and > 0"):
        fgd.numgrad(cubic, x, args=(1.0,), h=0.0)
    with pytest.raises(ValueError, match=r"h has shape \(2,\) but x has shape \(3,\)"):
        fgd.numgrad(cubic, x, args=(1.0,), h=[1e-3, 1e-3])
    with pytest.raises(ValueError, match=r"h = 1e-20 vanishes at x\[0\] = .*use a larger step"):
        fgd.numgrad(cubic, x, args=(1.0,), h=1e-20)
    with pytest.raises(ValueError, match="n_chunks must be >= 1, got 0"):
        fgd.numgrad(cubic, x, args=(1.0,), n_chunks=0)
    with pytest.raises(TypeError, match="f must be callable"):
        fgd.numgrad("f", x)
    with pytest.raises(TypeError, match="x is complex"):
        fgd.numgrad(cubic, x.astype(complex))
    with pytest.raises(ValueError, match=r"f must return a scalar, got an array of shape \(3,\)"):
        with dask.config.set(scheduler="sync"):
            fgd.numgrad(np.sin, x)


# ---------------------------------------------------------------------------
# A LocalCluster with two worker processes (loopback only)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster:
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c


def _keys_run(ts):
    return [t["key"] for t in ts.data]


@pytest.mark.parametrize("K", [0, 2])
def test_cluster_matches_in_memory(client, rng, K):
    A, y, w = _problem(rng, 2000, 6, K)
    Ad = da.from_array(A, chunks=(300, 6))
    with client.as_current(), distributed.get_task_stream(client) as ts:
        loss, g = fgd.mse_loss_and_grad(Ad, y, w)
        g_sum = fgd.mse_grad(Ad, y, w, reduction="sum", backend="numpy")
    assert sum(str(k).startswith("_chunk_partial-") for k in _keys_run(ts)) == 2 * 7  # ran on the cluster
    rloss, rg = fastgrad.mse_loss_and_grad(A, y, w, backend="numpy")
    np.testing.assert_allclose(loss, rloss, rtol=1e-11)
    np.testing.assert_allclose(g, rg, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_sum, rg * (2000 * max(K, 1)), rtol=1e-10, atol=1e-9)


def test_cluster_numgrad_equals_serial(client, rng):
    x = rng.standard_normal((6, 4))
    a = rng.standard_normal((6, 4))
    with distributed.get_task_stream(client) as ts:
        g = fgd.numgrad(cubic, x, args=(a,), client=client)
        g_lambda = fgd.numgrad(lambda v: float(np.sum(v**3)), x, client=client, n_chunks=5, method="forward")
    assert sum(str(k).startswith("_numgrad_chunk-") for k in _keys_run(ts)) == 4 * 2 + 5
    np.testing.assert_array_equal(g, serial_numgrad(cubic, x, (a,), default_h(x, "central"), "central"))
    np.testing.assert_allclose(g, cubic_grad(x, a), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(g_lambda, 3 * x**2, rtol=1e-6, atol=1e-6)
    with client.as_current():  # client=None: dask's current scheduler, i.e. this client
        np.testing.assert_array_equal(fgd.numgrad(cubic, x, args=(a,), n_chunks=3), g)


# ---------------------------------------------------------------------------
# Out of core: 8 GiB of lazily generated 64 MiB chunks, never materialised


_ROWS, _D, _NB = 1 << 19, 16, 128  # 2**19 rows x 16 float64 = 64 MiB a chunk, 128 chunks = 8 GiB


def _chunk_A(seed_block):
    return np.random.default_rng([int(seed_block[0]), 0]).random((_ROWS, _D))


def _chunk_y(seed_block):
    return np.random.default_rng([int(seed_block[0]), 1]).random(_ROWS)


@pytest.mark.slow
def test_out_of_core_never_materialised():
    seeds = da.arange(_NB, chunks=1)
    A = seeds.map_blocks(_chunk_A, new_axis=1, chunks=(_ROWS, _D), dtype=np.float64)
    y = seeds.map_blocks(_chunk_y, chunks=(_ROWS,), dtype=np.float64)
    assert A.nbytes == 8 << 30 and A.chunksize == (_ROWS, _D)
    w = np.linspace(-0.1, 0.1, _D)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="threads", num_workers=2):
            loss, g = fgd.mse_loss_and_grad(A, y, w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert peak < 1 << 30, f"traced numpy peak {peak / 2**20:.0f} MiB"  # 1/8 of the total
    assert rss_growth < 2 << 30, f"peak RSS grew by {rss_growth / 2**20:.0f} MiB"

    # independent check: the same chunks regenerated one by one, numpy/BLAS sums
    sq, G = 0.0, np.zeros(_D)
    for s in range(_NB):
        Ac, yc = _chunk_A([s]), _chunk_y([s])
        r = yc - Ac @ w
        sq += float(r @ r)
        G += Ac.T @ r
    N = _ROWS * _NB
    np.testing.assert_allclose(loss, sq / N, rtol=1e-11)
    np.testing.assert_allclose(g, -2.0 * G / N, rtol=1e-10)


# ---------------------------------------------------------------------------
# A user f's result must be a real number; f may change its argument in place


@pytest.mark.parametrize("bad", [None, "1.5", 1 + 2j, True])
def test_numgrad_refuses_non_real_results(bad):
    with pytest.raises(TypeError, match="f must return a real number"):
        fgd.numgrad(lambda x: bad, np.arange(3.0), n_chunks=2)


def test_numgrad_f_that_changes_its_argument():
    def f(x):
        value = float(np.sum(x ** 2))
        x *= -3.0  # a careless f: the next evaluation must still see the right point
        return value

    x = np.array([0.5, -1.0, 2.0, 3.0])
    np.testing.assert_allclose(fgd.numgrad(f, x, n_chunks=2), 2 * x, rtol=1e-6)
    assert x.tolist() == [0.5, -1.0, 2.0, 3.0]
