"""The MSE loss and gradient: every backend against the naive twin and the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from conftest import BACKENDS, variants
from hypothesis import given
from hypothesis import strategies as st
from naive import mse_loss_grad as naive_mse

import fastgrad

TOL = {np.float64: 1e-10, np.float32: 2e-4}


def make(rng, N, D, K, dtype):
    """A, y, w with K == 0 meaning 1-D y and w."""
    A = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, K) if K else D).astype(dtype)
    y = rng.standard_normal((N, K) if K else N).astype(dtype)
    return A, y, w


def assert_close(got, ref, dtype):
    ref = np.asarray(ref)
    tol = TOL[dtype]
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * (1.0 + np.abs(ref).max(initial=0.0)))


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    N=st.integers(1, 2000), D=st.integers(1, 70), K=st.integers(0, 4),
    dtype=st.sampled_from([np.float64, np.float32]), reduction=st.sampled_from(["mean", "sum"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference_all_backends(backend, N, D, K, dtype, reduction, seed):
    A, y, w = make(np.random.default_rng(seed), N, D, K, dtype)
    rloss, rgrad = fastgrad.mse_loss_and_grad(A, y, w, reduction=reduction, backend="numpy")
    scale = 1.0 / (N * max(K, 1)) if reduction == "mean" else 1.0
    # numpy reference against float64 numpy written out independently
    R = y.astype(np.float64) - A.astype(np.float64) @ w.astype(np.float64)
    assert_close(rloss, scale * np.sum(R * R), np.float64)
    assert_close(rgrad, -2.0 * scale * A.astype(np.float64).T @ R, dtype)
    loss, grad = fastgrad.mse_loss_and_grad(A, y, w, reduction=reduction, backend=backend)
    assert isinstance(loss, float)
    assert grad.shape == w.shape
    assert grad.dtype == dtype
    assert_close(loss, rloss, dtype)
    assert_close(grad, rgrad, dtype)
    assert fastgrad.mse_loss(A, y, w, reduction=reduction, backend=backend) == loss
    np.testing.assert_array_equal(fastgrad.mse_grad(A, y, w, reduction=reduction, backend=backend), grad)


@pytest.mark.parametrize("backend", BACKENDS)
@given(N=st.integers(1, 12), D=st.integers(1, 6), K=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_matches_naive_twin(backend, N, D, K, seed):
    A, y, w = make(np.random.default_rng(seed), N, D, K, np.float64)
    nloss, ngrad = naive_mse(A, y, w)
    loss, grad = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    assert_close(loss, nloss, np.float64)
    assert_close(grad, ngrad, np.float64)


def test_seed_000_hand_example(backend):
    # seed 000: loss = (1/N) sum (y - A w)^2, dW = -(2/N) A^T (Y - A W); worked by hand:
    # A = [[1, 2], [3, 4]], y = [1, 2], w = [0, 0]: r = y, loss = (1 + 4)/2 = 2.5,
    # g = -(2/2) [1*1 + 3*2, 2*1 + 4*2] = [-7, -10].
    loss, g = fastgrad.mse_loss_and_grad([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0], [0.0, 0.0], backend=backend)
    assert loss == 2.5
    assert g.tolist() == [-7.0, -10.0]
    # at the exact solution w = [0, 0.5] the residual and the gradient vanish
    loss, g = fastgrad.mse_loss_and_grad([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0], [0.0, 0.5], backend=backend)
    assert loss == 0.0 and not g.any()


def test_seed_004_problem_loss(backend):
    # seed 004 prints "Loss: 340.381080443314" for this problem
    A = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype="float32")
    np.random.seed(0)  # noqa: NPY002 - seed 004 exactly
    W = np.random.randn(3, 1)  # noqa: NPY002
    Y = np.array([[14], [32], [50]])
    loss, g = fastgrad.mse_loss_and_grad(A, Y, W, backend=backend)
    assert loss == pytest.approx(340.381080443314, rel=1e-13)
    assert g.dtype == np.float64 and g.shape == (3, 1)


@pytest.mark.parametrize("K", [0, 3])
def test_hostile_layouts(backend, K, tmp_path, rng):
    A, y, w = make(rng, 700, 9, K, np.float64)
    ref = fastgrad.mse_loss_and_grad(A, y, w, backend="numpy")
    for (_la, Av), (_ly, yv), (_lw, wv) in zip(variants(A, tmp_path), variants(y), variants(w), strict=False):
        loss, g = fastgrad.mse_loss_and_grad(Av, yv, wv, backend=backend)
        assert_close(loss, ref[0], np.float64)
        assert_close(g, ref[1], np.float64)
    # every A variant with plain y, w (includes the memmap)
    for _label, Av in variants(A, tmp_path):
        assert_close(fastgrad.mse_grad(Av, y, w, backend=backend), ref[1], np.float64)


def test_byteswapped_and_other_real_dtypes(backend, rng):
    A, y, w = make(rng, 50, 4, 0, np.float64)
    ref = fastgrad.mse_grad(A, y, w, backend="numpy")
    assert_close(fastgrad.mse_grad(A.astype(">f8"), y, w, backend=backend), ref, np.float64)
    Ai = (A * 10).astype(np.int64)
    g = fastgrad.mse_grad(Ai, y, w, backend=backend)
    assert g.dtype == np.float64
    assert_close(g, fastgrad.mse_grad(Ai.astype(np.float64), y, w, backend="numpy"), np.float64)
    for dt in (np.bool_, np.int8, np.uint16, np.float16):
        g = fastgrad.mse_grad(A.astype(dt), y.astype(dt), w.astype(dt), backend=backend)
        assert g.dtype == np.float64
    assert fastgrad.mse_grad([[1, 2]], [3], [1, 1], backend=backend).dtype == np.float64


def test_result_dtype_rule(backend, rng):
    A, y, w = make(rng, 30, 3, 0, np.float32)
    assert fastgrad.mse_grad(A, y, w, backend=backend).dtype == np.float32
    assert fastgrad.mse_grad(A, y, w.astype(np.float64), backend=backend).dtype == np.float64
    assert fastgrad.mse_grad(A.astype(np.float64), y, w, backend=backend).dtype == np.float64
    assert fastgrad.mse_grad(A, y.astype(np.float64), w, backend=backend).dtype == np.float64


def test_float32_accumulates_in_float64(compiled_backend):
    # 10^6 equal residuals: a float32 accumulator would drift visibly, float64 does not.
    N = 1_000_000
    A = np.full((N, 1), 0.1, dtype=np.float32)
    y = np.full(N, 0.3, dtype=np.float32)
    w = np.ones(1, dtype=np.float32)
    exact_r = np.float64(np.float32(0.3)) - np.float64(np.float32(0.1))
    loss, g = fastgrad.mse_loss_and_grad(A, y, w, backend=compiled_backend)
    assert loss == pytest.approx(exact_r**2, rel=1e-6)
    assert g[0] == pytest.approx(-2.0 * np.float64(np.float32(0.1)) * exact_r, rel=1e-6)


def test_inputs_not_mutated(backend, rng):
    A, y, w = make(rng, 400, 7, 2, np.float64)
    copies = [A.copy(), y.copy(), w.copy()]
    fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    for before, after in zip(copies, (A, y, w), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("K", [0, 2])
def test_out_is_used(backend, K, rng):
    A, y, w = make(rng, 300, 5, K, np.float64)
    out = np.full(w.shape, np.nan)
    res = fastgrad.mse_grad(A, y, w, out=out, backend=backend)
    assert res is out and np.shares_memory(res, out)
    np.testing.assert_allclose(out, fastgrad.mse_grad(A, y, w, backend="numpy"), rtol=1e-12)
    # a non-contiguous out view is filled in place too
    big = np.zeros((2 * w.shape[0],) + w.shape[1:])
    view = big[::2]
    fastgrad.mse_grad(A, y, w, out=view, backend=backend)
    np.testing.assert_allclose(big[::2], out, rtol=1e-12)
    assert not big[1::2].any()
    # out may alias w: the gradient is written only after every read of w
    w2 = w.copy()
    fastgrad.mse_grad(A, y, w2, out=w2, backend=backend)
    np.testing.assert_allclose(w2, out, rtol=1e-12)


def test_nan_and_inf_propagate(backend, rng):
    A, y, w = make(rng, 100, 4, 0, np.float64)
    A[17, 2] = np.nan
    loss, g = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    assert np.isnan(loss) and np.isnan(g).all()
    A[17, 2] = np.inf
    loss, g = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    assert not np.isfinite(loss) and not np.isfinite(g).all()
    with pytest.raises(ValueError, match="A contains NaN or Inf"):
        fastgrad.mse_grad(A, y, w, check_finite=True, backend=backend)


def test_zero_features(backend):
    # D = 0 is a well-defined (empty) gradient; the loss is the mean of y^2
    loss, g = fastgrad.mse_loss_and_grad(np.empty((3, 0)), np.array([1.0, 2.0, 2.0]), np.empty(0), backend=backend)
    assert loss == 3.0 and g.shape == (0,)


def test_sum_reduction_scales(backend, rng):
    A, y, w = make(rng, 80, 3, 2, np.float64)
    lm, gm = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
    ls, gs = fastgrad.mse_loss_and_grad(A, y, w, reduction="sum", backend=backend)
    assert ls == pytest.approx(lm * 160, rel=1e-12)
    np.testing.assert_allclose(gs, gm * 160, rtol=1e-12)


@pytest.mark.parametrize("K", [0, 2])
def test_objective_with_scipy_minimize_reaches_lstsq(backend, K, rng):
    A, y, _ = make(rng, 200, 6, K, np.float64)
    obj = fastgrad.MSEObjective(A, y, backend=backend)
    w0 = np.zeros(obj.w_shape).ravel()  # scipy wants 1-D x0
    res = scipy.optimize.minimize(obj.loss_and_grad, w0, jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 1000})
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(res.x.reshape(obj.w_shape), sol, rtol=1e-5, atol=1e-7)
    # the methods agree with the functions, in the shape w was given in
    wf = sol.ravel() + 0.1
    assert obj.loss(wf) == pytest.approx(fastgrad.mse_loss(A, y, wf.reshape(obj.w_shape)))
    assert obj.grad(wf).shape == wf.shape
    assert obj(wf) == obj.loss(wf)
    assert obj.grad(wf.reshape(obj.w_shape)).shape == obj.w_shape
    with pytest.raises(ValueError, match="coef has 5 elements but the problem has weights of shape"):
        obj.loss(np.zeros(5))


def test_objective_validates():
    with pytest.raises(ValueError, match="A has 3 rows but y has 2"):
        fastgrad.MSEObjective(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum'; got 'max'"):
        fastgrad.MSEObjective(np.zeros((3, 2)), np.zeros(3), reduction="max")
    assert "MSEObjective" in repr(fastgrad.MSEObjective(np.zeros((3, 2)), np.zeros(3)))


def test_numba_and_cython_agree_at_scale(rng):
    if "cython" not in BACKENDS:
        pytest.skip("Cython backend not built")
    for N, D, K, dtype in [(50_000, 16, 0, np.float64), (20_000, 130, 2, np.float64), (40_000, 33, 0, np.float32)]:
        A, y, w = make(rng, N, D, K, dtype)
        a = fastgrad.mse_loss_and_grad(A, y, w, backend="numba")
        b = fastgrad.mse_loss_and_grad(A, y, w, backend="cython")
        r = fastgrad.mse_loss_and_grad(A, y, w, backend="numpy")
        for x in (a, b):
            assert_close(x[0], r[0], np.float64)
            assert_close(x[1], r[1], np.float64 if dtype == np.float64 else np.float32)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-12 * np.abs(r[1]).max())


def test_tiny_call_fast_path_is_the_same_kernel(rng, backend):
    # C-contiguous float64 1-D problems below the parallel threshold take one compiled call;
    # the result must be bit for bit the general path's (same kernel, same partition)
    import fastgrad.mse as m
    from fastgrad import _validate

    for N, D in [(1, 1), (100, 3), (257, 5), (1000, 60)]:
        A, y, w = make(rng, N, D, 0, np.float64)
        assert _validate.is_plain_vector_problem(A, y, w, "mean", False)
        fast = fastgrad.mse_loss_and_grad(A, y, w, backend=backend)
        # 2-D y and w take the general path (validation, kernel protocol) to the same kernel
        general = m._dispatch(_validate.mse_inputs(A, y.reshape(-1, 1), w.reshape(-1, 1), "mean"), backend)
        assert fast[0] == general[0]
        assert np.array_equal(fast[1], general[1][:, 0])
        assert isinstance(fast[0], float) and fast[1].shape == (D,)
    A, y, w = make(rng, 10, 3, 0, np.float64)
    assert not _validate.is_plain_vector_problem(A, y, w, "sum", False)
    assert not _validate.is_plain_vector_problem(A, y, w, "mean", True)
    assert not _validate.is_plain_vector_problem(A, y[:9], w, "mean", False)
    assert not _validate.is_plain_vector_problem(A[:, :2], y, w[:2], "mean", False)  # not contiguous
    assert not _validate.is_plain_vector_problem(A.astype(np.float32), y, w, "mean", False)
