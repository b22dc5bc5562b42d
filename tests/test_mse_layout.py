"""The MSE kernels read A in place whatever its layout: C or Fortran order, slices, negative
strides, read-only arrays, memmaps, pandas frames; no O(N D) copy, bitwise identical results
for every thread count."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import BACKENDS, COMPILED
from hypothesis import given
from hypothesis import strategies as st

import fastgrad
from fastgrad import _config, _validate

TOL = {np.float64: 1e-10, np.float32: 2e-4}


def assert_close(got, ref, dtype):
    ref = np.asarray(ref)
    tol = TOL[dtype]
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * (1.0 + np.abs(ref).max(initial=0.0)))


def layout(B: np.ndarray, name: str, tmp_path=None) -> np.ndarray:
    """An array equal to B (N, D) in the layout ``name``, never C-contiguous unless name is 'C'."""
    N, D = B.shape
    if name == "C":
        return np.ascontiguousarray(B)
    if name == "F":
        return np.asfortranarray(B)
    if name == "col_slice":  # A[:, ::2] of a C array: no unit stride at all
        base = np.zeros((N, 2 * D), B.dtype)
        base[:, ::2] = B
        return base[:, ::2]
    if name == "col_prefix":  # A[:, :D] of a wider C array: rows contiguous, row stride > D
        base = np.zeros((N, D + 3), B.dtype)
        base[:, :D] = B
        return base[:, :D]
    if name == "row_slice":  # A[::3]
        base = np.zeros((3 * N, D), B.dtype)
        base[::3] = B
        return base[::3]
    if name == "T_of_C":  # A.T of a C array: Fortran order
        return np.ascontiguousarray(B.T).T
    if name == "neg_rows":  # A[::-1]
        return np.ascontiguousarray(B[::-1])[::-1]
    if name == "neg_cols_F":  # columns contiguous, negative column stride
        return np.asfortranarray(B[:, ::-1])[:, ::-1]
    if name == "F_row_slice":  # A[::2] of a Fortran array: no unit stride
        base = np.zeros((2 * N, D), B.dtype, order="F")
        base[::2] = B
        return base[::2]
    if name == "readonly_F":
        A = np.asfortranarray(B)
        A.flags.writeable = False
        return A
    if name == "readonly":
        A = np.array(B)
        A.flags.writeable = False
        return A
    if name == "memmap_F":
        path = tmp_path / f"A_{N}_{D}_{B.dtype}.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=B.dtype, shape=B.shape, fortran_order=True)
        mm[...] = B
        mm.flush()
        del mm
        return np.load(path, mmap_mode="r")
    raise ValueError(name)


LAYOUTS = ["C", "F", "col_slice", "col_prefix", "row_slice", "T_of_C", "neg_rows", "neg_cols_F",
           "F_row_slice", "readonly", "readonly_F", "memmap_F"]


def make(rng, N, D, K, dtype):
    """A (C order), y, w with K == 0 meaning 1-D y and w."""
    A = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, K) if K else D).astype(dtype)
    y = rng.standard_normal((N, K) if K else N).astype(dtype)
    return A, y, w


def serial_result(A, y, w, backend):
    """The result at one thread (the serial kernel), the thread count restored afterwards."""
    before = fastgrad.get_num_threads()
    fastgrad.set_num_threads(1)
    try:
        return fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    finally:
        fastgrad.set_num_threads(before)


@pytest.mark.parametrize("K", [0, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", LAYOUTS)
def test_every_layout_in_place_and_bitwise_for_every_thread_count(backend, name, dtype, K, n_threads, tmp_path):
    # N D max(K, 1) >= 2**17: the call runs parallel at 2 threads; odd N and D leave
    # partial row groups, column groups and tiles
    N, D = 9001, 15
    assert N * D * max(K, 1) >= 2**17
    B, y, w = make(np.random.default_rng(7), N, D, K, dtype)
    A = layout(B, name, tmp_path)
    assert np.array_equal(A, B)
    ref_loss, ref_grad = fastgrad.mse_loss_and_grad(B, y, w, backend="numpy")
    loss, grad = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    assert grad.shape == w.shape and grad.dtype == dtype
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    if backend != "numpy":
        one_loss, one_grad = serial_result(A, y, w, backend)
        assert loss == one_loss
        assert np.array_equal(grad, one_grad)  # bit for bit, not approximately
        # the same layout, any contents: the same result again (no state kept between calls)
        again = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
        assert again[0] == loss and np.array_equal(again[1], grad)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_fortran_several_tiles_per_block(backend, dtype, n_threads):
    # blocks of 626 rows: at D = 72 a float64 tile has 512 rows (a float32 one 1024), so a
    # block holds a full tile and a partial one (float64) or one partial tile (float32)
    N, D, K = 40001, 72, 2
    B, y, w = make(np.random.default_rng(11), N, D, K, dtype)
    A = np.asfortranarray(B)
    ref_loss, ref_grad = fastgrad.mse_loss_and_grad(B, y, w, backend="numpy")
    loss, grad = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    one_loss, one_grad = serial_result(A, y, w, backend)
    assert loss == one_loss and np.array_equal(grad, one_grad)


@pytest.mark.cython
def test_cython_row_strided_A_runs_the_c_order_kernel():
    # Cython's row kernel takes a row stride: C order and the rows of a wider array
    # (row stride > D) run the very same code, so give the very same bits (Numba
    # compiles a strided specialization, equal to rounding)
    if "cython" not in BACKENDS:
        pytest.skip("Cython backend not built")
    backend = "cython"
    rng = np.random.default_rng(3)
    N, D = 5000, 9
    A = rng.standard_normal((N, D))
    wide = np.zeros((N, D + 4))
    wide[:, :D] = A
    Y = rng.standard_normal((N, 2))
    WT = rng.standard_normal((2, D))
    k = _config.kernels("mse", backend)
    o1, o2 = np.empty((D, 2)), np.empty((D, 2))
    l1 = k.loss_grad(A, Y, WT, None, None, 0.1, o1, None, 2)
    l2 = k.loss_grad(wide[:, :D], Y, WT, None, None, 0.1, o2, None, 2)
    assert l1 == l2 and np.array_equal(o1, o2)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("name", ["F", "T_of_C", "col_slice", "row_slice", "col_prefix"])
def test_no_copy_of_A(backend, name):
    # a (200000, 16) float64 A is 25.6 MB; the call may allocate O(D K blocks), never O(N D)
    B, y, w = make(np.random.default_rng(5), 200_000, 16, 0, np.float64)
    A = layout(B, name)
    fastgrad.mse_grad(A, y, w, backend=backend)  # compile / warm up outside the measurement
    tracemalloc.start()
    try:
        g = fastgrad.mse_grad(A, y, w, backend=backend)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{name}: {peak} bytes allocated during the call"
    assert_close(g, fastgrad.mse_grad(B, y, w, backend="numpy"), np.float64)


def test_validation_passes_A_through():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((50, 4))
    y, w = rng.standard_normal(50), rng.standard_normal(4)
    for name in ["F", "col_slice", "row_slice", "neg_rows", "readonly_F"]:
        A = layout(B, name)
        assert _validate.mse_inputs(A, y, w, "mean").A is A
    # the tiny-call fast path stays C-contiguous only
    assert _validate.is_plain_vector_problem(B, y, w, "mean", False)
    assert not _validate.is_plain_vector_problem(np.asfortranarray(B), y, w, "mean", False)
    # dtype conversion and byte order still make the one copy they must
    assert _validate.mse_inputs(np.asfortranarray(B).astype(np.int64), y, w, "mean").A.dtype == np.float64
    swapped = np.asfortranarray(B).astype(B.dtype.newbyteorder())
    v = _validate.mse_inputs(swapped, y, w, "mean")
    assert v.A.dtype.isnative and np.array_equal(v.A, B)


def test_unaligned_A_is_copied_once_and_correct(backend):
    # packed records: A's rows 12 bytes apart, not whole float64 elements
    rng = np.random.default_rng(4)
    rec = np.zeros(3000, dtype=[("a", "f8", (4,)), ("b", "f4")])
    rec["a"] = rng.standard_normal((3000, 4))
    A = rec["a"]
    assert not A.flags.aligned
    y, w = rng.standard_normal(3000), rng.standard_normal(4)
    ref = fastgrad.mse_loss_and_grad(np.array(A), y, w, backend="numpy")
    loss, g = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    assert_close(loss, ref[0], np.float64)
    assert_close(g, ref[1], np.float64)


@pytest.mark.parametrize("backend", COMPILED)
def test_zero_strides(backend):
    # broadcast views (stride 0) are read in place too
    rng = np.random.default_rng(6)
    y, w = rng.standard_normal(4000), rng.standard_normal(7)
    for A in (np.broadcast_to(rng.standard_normal(7), (4000, 7)),
              np.broadcast_to(rng.standard_normal((4000, 1)), (4000, 7)),
              np.broadcast_to(np.float64(0.5), (4000, 7))):
        ref = fastgrad.mse_loss_and_grad(np.array(A), y, w, backend="numpy")
        loss, g = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
        assert_close(loss, ref[0], np.float64)
        assert_close(g, ref[1], np.float64)


def test_numba_low_level_kernel_takes_fortran_order():
    from fastgrad._numba import mse as nb

    rng = np.random.default_rng(2)
    A = np.asfortranarray(rng.standard_normal((3000, 6)))
    Y = rng.standard_normal((3000, 2))
    WT = rng.standard_normal((2, 6))
    out = np.empty((6, 2))
    loss = nb.mse_loss_grad(A, Y, WT, 1 / 6000, out)
    out2 = np.empty((6, 2))
    assert nb.mse_loss_grad_parallel(A, Y, WT, 1 / 6000, out2) == loss and np.array_equal(out, out2)
    ref_loss, ref_g = fastgrad.mse_loss_and_grad(np.ascontiguousarray(A), Y, WT.T, backend="numpy")
    assert_close(loss, ref_loss, np.float64)
    assert_close(out, ref_g, np.float64)


# ---------------------------------------------------------------------------
# pandas


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_pandas_frame_and_series(backend, dtype, n_threads):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(8)
    N, D = 20_000, 12
    df = pd.DataFrame(rng.standard_normal((N, D)).astype(dtype), columns=[f"x{j}" for j in range(D)])
    s = pd.Series(rng.standard_normal(N).astype(dtype), name="target")
    w = rng.standard_normal(D).astype(dtype)
    B = np.ascontiguousarray(df.to_numpy())
    ref_loss, ref_grad = fastgrad.mse_loss_and_grad(B, s.to_numpy(), w, backend="numpy")
    for A in (df.to_numpy(), df):  # the array pandas gives (Fortran order) and the frame itself
        for y in (s, s.to_numpy()):
            loss, grad = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
            assert isinstance(grad, np.ndarray) and grad.dtype == dtype
            assert_close(loss, ref_loss, dtype)
            assert_close(grad, ref_grad, dtype)
            if backend != "numpy":
                one = serial_result(A, y, w, backend)
                assert one[0] == loss and np.array_equal(one[1], grad)
    # several targets as a frame (K = 3)
    Yf = pd.DataFrame(rng.standard_normal((N, 3)).astype(dtype))
    W = rng.standard_normal((D, 3)).astype(dtype)
    ref = fastgrad.mse_grad(B, Yf.to_numpy(), W, backend="numpy")
    assert_close(fastgrad.mse_grad(df, Yf, W, backend=backend), ref, dtype)


@pytest.mark.parametrize("backend", COMPILED)
def test_pandas_frame_not_copied(backend):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(9)
    df = pd.DataFrame(rng.standard_normal((200_000, 16)))
    s = pd.Series(rng.standard_normal(200_000))
    w = rng.standard_normal(16)
    fastgrad.mse_grad(df, s, w, backend=backend)
    tracemalloc.start()
    try:
        fastgrad.mse_grad(df, s, w, backend=backend)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak} bytes allocated during the call"


# ---------------------------------------------------------------------------
# Random shapes and layouts

HYP_LAYOUTS = ["C", "F", "col_slice", "col_prefix", "row_slice", "T_of_C", "neg_rows", "neg_cols_F",
               "F_row_slice", "readonly_F"]


@pytest.mark.parametrize("backend", COMPILED)
@given(
    N=st.integers(1, 3000), D=st.integers(0, 40), K=st.integers(0, 4),
    dtype=st.sampled_from([np.float64, np.float32]), name=st.sampled_from(HYP_LAYOUTS),
    reduction=st.sampled_from(["mean", "sum"]), parallel=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_random_shapes_and_layouts(backend, N, D, K, dtype, name, reduction, parallel, seed):
    B, y, w = make(np.random.default_rng(seed), N, D, K, dtype)
    A = layout(B, name)
    ref_loss, ref_grad = fastgrad.mse_loss_and_grad(B, y, w, reduction=reduction, backend="numpy")
    # the protocol directly, so that small shapes run the parallel kernel too
    v = _validate.mse_inputs(A, y, w, reduction)
    k = _config.kernels("mse", backend)
    Kk = v.Y.shape[1]
    out1, out2 = np.empty((D, Kk)), np.empty((D, Kk))
    l1 = k.loss_grad(v.A, v.Y, v.WT, None, None, v.scale, out1, None, 1)
    l2 = k.loss_grad(v.A, v.Y, v.WT, None, None, v.scale, out2, None, 2 if parallel else 1)
    assert l1 == l2 and np.array_equal(out1, out2)
    assert_close(l1, ref_loss, dtype)
    assert_close(out1.reshape(w.shape), ref_grad, dtype)

