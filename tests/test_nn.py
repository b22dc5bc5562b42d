"""Dense layer and 2-layer MLP gradients (seeds 001 and 002): every backend against the
numpy reference, the naive loop twins and central differences; hostile layouts,
threads, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS, variants
from hypothesis import given
from hypothesis import strategies as st
from naive import dense_backward as naive_dense_backward
from naive import mlp2_loss as naive_mlp2_loss
from naive import nn_central_grad

import fastgrad
from fastgrad import _config, reference

ACTS = ("identity", "sigmoid", "tanh", "relu")
DTYPES = (np.float32, np.float64)
# dZ columns up to which the compiled backends take the fused float32 dW/db pass
# (their kernel modules' FUSED_MAX_C, checked below)
FUSED_MAX_C = 16


def assert_close(got, ref, dtype, rtol64=1e-10):
    """float64: tight; float32: BLAS sgemm rounding, relative to the largest entry."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    tol = 2e-4 if dtype == np.float32 else rtol64
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)


def dense_data(rng, N, D, C, dtype=np.float64):
    X = rng.standard_normal((N, D)).astype(dtype)
    W = rng.standard_normal((D, C)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    dZ = rng.standard_normal((N, C)).astype(dtype)
    return X, W, b, dZ


def mlp_data(rng, N, D, H, C, loss="softmax_cross_entropy", labels=True, dtype=np.float64):
    X = rng.standard_normal((N, D)).astype(dtype)
    W1 = (rng.standard_normal((D, H)) / np.sqrt(D)).astype(dtype)
    b1 = (0.5 * rng.standard_normal(H)).astype(dtype)
    W2 = (rng.standard_normal((H, C)) / np.sqrt(H)).astype(dtype)
    b2 = (0.5 * rng.standard_normal(C)).astype(dtype)
    if loss == "mse":
        Y = rng.standard_normal((N, C)).astype(dtype)
    elif labels:
        Y = rng.integers(0, C, N)
    else:
        Y = rng.dirichlet(np.ones(C), N).astype(dtype)  # probability targets
    return X, Y, W1, b1, W2, b2


# ---------------------------------------------------------------------------
# dense_forward


@given(N=st.integers(1, 9), D=st.integers(1, 6), C=st.integers(1, 20), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(DTYPES), backend=st.sampled_from(BACKENDS))
def test_dense_forward_matches_reference(N, D, C, seed, dtype, backend):
    X, W, b, _ = dense_data(np.random.default_rng(seed), N, D, C, dtype)
    Z = fastgrad.dense_forward(X, W, b, backend=backend)
    assert Z.dtype == dtype and Z.shape == (N, C)
    naive = np.array([[sum(float(X[i, j]) * float(W[j, k]) for j in range(D)) + float(b[k])
                       for k in range(C)] for i in range(N)])
    assert_close(Z, naive, dtype)


def test_dense_forward_out_is_used(backend, rng):
    X, W, b, _ = dense_data(rng, 7, 3, 4)
    out = np.full((7, 4), np.nan)
    Z = fastgrad.dense_forward(X, W, b, out=out, backend=backend)
    assert Z is out and np.shares_memory(Z, out)
    assert_close(out, X @ W + b, np.float64)
    fout = np.full((7, 4), np.nan, order="F")  # non-contiguous out goes through a temporary
    assert fastgrad.dense_forward(X, W, b, out=fout, backend=backend) is fout
    assert_close(fout, X @ W + b, np.float64)
    with pytest.raises(ValueError, match=r"out has shape \(4, 7\) but the result has shape \(7, 4\)"):
        fastgrad.dense_forward(X, W, b, out=np.empty((4, 7)), backend=backend)
    with pytest.raises(TypeError, match="out has dtype float32"):
        fastgrad.dense_forward(X, W, b, out=np.empty((7, 4), np.float32), backend=backend)


# ---------------------------------------------------------------------------
# dense_backward


@given(N=st.integers(1, 8), D=st.integers(1, 5), C=st.integers(1, 2 * FUSED_MAX_C + 3),
       seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES), backend=st.sampled_from(BACKENDS))
def test_dense_backward_matches_naive_twin(N, D, C, seed, dtype, backend):
    X, W, _, dZ = dense_data(np.random.default_rng(seed), N, D, C, dtype)
    got = fastgrad.dense_backward(X, W, dZ, backend=backend)
    for g, r, shape in zip(got, naive_dense_backward(X, W, dZ), [(N, D), (D, C), (C,)], strict=True):
        assert g.shape == shape and g.dtype == dtype
        assert_close(g, r, dtype)


@pytest.mark.parametrize("C", [3, FUSED_MAX_C + 5])  # fused streaming pass and the BLAS path
def test_dense_backward_is_the_gradient(backend, rng, C):
    """With L = sum(Z o G), dL/dZ = G: dense_backward(X, W, G) is the gradient of L wrt X, W, b."""
    X, W, b, G = dense_data(rng, 5, 4, C)
    dX, dW, db = fastgrad.dense_backward(X, W, G, backend=backend)
    np.testing.assert_allclose(dX, nn_central_grad(lambda x: np.sum((x @ W + b) * G), X), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(dW, nn_central_grad(lambda w: np.sum((X @ w + b) * G), W), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(db, nn_central_grad(lambda v: np.sum((X @ W + v) * G), b), rtol=1e-7, atol=1e-8)


def test_dense_backward_seed001_bias_example(backend):
    """Seed 001 (2b) with its 2x4 X and 4x3 W: dL/db = sum_i dL_i/dz_i, the column sums of dZ."""
    X = np.array([[1., 2., 3., 4.], [5., 6., 7., 8.]])  # x_11 .. x_24
    W = np.arange(1., 13.).reshape(4, 3)  # w_11 .. w_43
    dZ = np.array([[1., 2., 3.], [4., 5., 6.]])  # dL_i/dz_i, one row per sample
    dX, dW, db = fastgrad.dense_backward(X, W, dZ, backend=backend)
    assert db.tolist() == [5.0, 7.0, 9.0]
    # dW = X^T dZ worked by hand: row j is x_1j [1, 2, 3] + x_2j [4, 5, 6]
    assert dW.tolist() == [[21., 27., 33.], [26., 34., 42.], [31., 41., 51.], [36., 48., 60.]]
    # dX = dZ W^T: dx_1j = sum_k dz_1k w_jk
    assert dX.tolist() == [[14., 32., 50., 68.], [32., 77., 122., 167.]]
    Z = fastgrad.dense_forward(X, W, [0.5, -1., 2.], backend=backend)
    assert Z.tolist() == (X @ W + [0.5, -1., 2.]).tolist()  # b broadcast to every row (1d)


@pytest.mark.parametrize("C", [4, 40])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_numba_cython_agree(rng, C, dtype):
    if "cython" not in BACKENDS:
        pytest.skip("cython backend not built")
    X, W, _, dZ = dense_data(rng, 1500, 30, C, dtype)
    a = fastgrad.dense_backward(X, W, dZ, backend="numba")
    b = fastgrad.dense_backward(X, W, dZ, backend="cython")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-4 if dtype == np.float32 else 1e-11)


def test_dense_hostile_layouts_not_mutated(backend, rng, tmp_path):
    X, W, b, dZ = dense_data(rng, 9, 4, 3)
    ref = reference.dense_backward(X, W, dZ)
    for (lx, Xv), (lz, dZv) in zip(variants(X, tmp_path), variants(dZ, tmp_path), strict=True):
        Xc, dZc = np.array(Xv), np.array(dZv)
        got = fastgrad.dense_backward(Xv, W, dZv, backend=backend)
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12, err_msg=f"{lx}/{lz}")
        np.testing.assert_allclose(fastgrad.dense_forward(Xv, W, b, backend=backend), X @ W + b,
                                   rtol=1e-12, err_msg=lx)
        assert np.array_equal(Xv, Xc) and np.array_equal(dZv, dZc)


def test_dense_dtype_rules(backend, rng):
    X, W, b, dZ = dense_data(rng, 5, 3, 2)
    assert fastgrad.dense_backward(X.astype(np.float32), W, dZ, backend=backend)[1].dtype == np.float64
    assert fastgrad.dense_forward(X.astype(int), W, b, backend=backend).dtype == np.float64
    f32 = [a.astype(np.float32) for a in (X, W, b)]
    assert fastgrad.dense_forward(*f32, backend=backend).dtype == np.float32
    with pytest.raises(TypeError, match="complex"):
        fastgrad.dense_backward(X + 1j, W, dZ, backend=backend)


@pytest.mark.parametrize("C", [4, 40])
@pytest.mark.parametrize("dtype", DTYPES)  # float32 with C <= FUSED_MAX_C: the fused dW/db pass
def test_dense_backward_threads_bitwise(compiled_backend, threads, monkeypatch, rng, C, dtype):
    monkeypatch.setattr(_config, "STREAM_PARALLEL_MIN", 1)  # the db pass takes the parallel path too
    X, W, _, dZ = dense_data(rng, 3000, 50, C, dtype)  # large enough for the parallel path
    fastgrad.set_num_threads(1)
    one = fastgrad.dense_backward(X, W, dZ, backend=compiled_backend)
    fastgrad.set_num_threads(2)
    two = fastgrad.dense_backward(X, W, dZ, backend=compiled_backend)
    for a, b in zip(one[1:], two[1:], strict=True):  # dW, db: fastgrad's reductions
        assert np.array_equal(a, b)


def test_dense_bad_input(backend):
    X, W, dZ = np.ones((2, 4)), np.ones((3, 3)), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"X has 4 columns but W has 3 rows \(X \(2, 4\), W \(3, 3\)\)"):
        fastgrad.dense_backward(X, W, dZ, backend=backend)
    with pytest.raises(ValueError, match=r"dZ has shape \(2, 2\) but Z = X W has shape \(2, 3\)"):
        fastgrad.dense_backward(np.ones((2, 3)), W, np.ones((2, 2)), backend=backend)
    with pytest.raises(ValueError, match=r"b has 2 entries but W has 3 columns \(b \(2,\), W \(3, 3\)\)"):
        fastgrad.dense_forward(np.ones((2, 3)), W, np.ones(2), backend=backend)
    with pytest.raises(ValueError, match=r"X must be 2-D \(N, D\), got an array of shape \(3,\)"):
        fastgrad.dense_forward(np.ones(3), W, np.ones(3), backend=backend)
    with pytest.raises(ValueError, match="X contains NaN"):
        fastgrad.dense_backward(np.full((2, 3), np.nan), W, dZ, check_finite=True, backend=backend)


def test_dense_nan_propagates(backend):
    X = np.ones((3, 2))
    X[1, 0] = np.nan
    dX, dW, db = fastgrad.dense_backward(X, np.ones((2, 2)), np.ones((3, 2)), backend=backend)
    assert np.isnan(dW[0]).all() and np.isfinite(dW[1]).all() and np.isfinite(db).all()


def test_dense_empty_dimensions(backend):
    dX, dW, db = fastgrad.dense_backward(np.ones((3, 0)), np.ones((0, 2)), np.ones((3, 2)), backend=backend)
    assert dX.shape == (3, 0) and dW.shape == (0, 2) and db.tolist() == [3.0, 3.0]


# ---------------------------------------------------------------------------
# mlp2_loss_and_grad


CASES = [(a, "softmax_cross_entropy", True) for a in ACTS] + [
    ("relu", "softmax_cross_entropy", False), ("tanh", "softmax_cross_entropy", False),
    ("sigmoid", "mse", False), ("identity", "mse", False), ("relu", "mse", False),
]


@pytest.mark.parametrize("activation,loss,labels", CASES)
def test_mlp2_is_the_gradient(backend, activation, loss, labels):
    """Every gradient against central differences of the naive loop twin of the loss."""
    rng = np.random.default_rng(7)
    X, Y, W1, b1, W2, b2 = mlp_data(rng, 5, 3, 4, 3, loss, labels)
    val, grads = fastgrad.mlp2_loss_and_grad(X, Y, W1, b1, W2, b2, activation=activation, loss=loss,
                                             backend=backend)
    params = [W1, b1, W2, b2]
    assert val == pytest.approx(naive_mlp2_loss(X, Y, *params, activation, loss), rel=1e-12)
    for t, g in enumerate(grads):
        def f(p, t=t):
            ps = list(params)
            ps[t] = p
            return naive_mlp2_loss(X, Y, *ps, activation, loss)

        np.testing.assert_allclose(g, nn_central_grad(f, params[t]), rtol=1e-6, atol=1e-9,
                                   err_msg=f"gradient {t} ({activation}, {loss})")
        assert g.shape == params[t].shape


@pytest.mark.skipif(not hasattr(fastgrad, "gradcheck"), reason="fastgrad.gradcheck not written yet")
def test_mlp2_gradcheck(backend):
    rng = np.random.default_rng(3)
    X, Y, W1, b1, W2, b2 = mlp_data(rng, 6, 3, 5, 4)

    def loss_w1(w):
        return fastgrad.mlp2_loss_and_grad(X, Y, w, b1, W2, b2, activation="tanh", backend=backend)[0]

    def grad_w1(w):
        return fastgrad.mlp2_loss_and_grad(X, Y, w, b1, W2, b2, activation="tanh", backend=backend)[1][0]

    assert fastgrad.gradcheck(loss_w1, grad_w1, W1).ok


@given(N=st.integers(1, 12), D=st.integers(1, 5), H=st.integers(1, 9), C=st.integers(1, 6),
       seed=st.integers(0, 2**16), case=st.sampled_from(CASES), dtype=st.sampled_from(DTYPES),
       backend=st.sampled_from(BACKENDS))
def test_mlp2_matches_reference(N, D, H, C, seed, case, dtype, backend):
    activation, loss, labels = case
    X, Y, W1, b1, W2, b2 = mlp_data(np.random.default_rng(seed), N, D, H, C, loss, labels, dtype)
    val, grads = fastgrad.mlp2_loss_and_grad(X, Y, W1, b1, W2, b2, activation=activation, loss=loss,
                                             backend=backend)
    rval, rgrads = reference.mlp2_loss_grad(X, Y, W1, b1, W2, b2, activation, loss, labels)
    assert isinstance(val, float)
    assert val == pytest.approx(rval, rel=1e-4 if dtype == np.float32 else 1e-11, abs=1e-6)
    for g, r in zip(grads, rgrads, strict=True):
        assert g.dtype == dtype and g.shape == r.shape
        assert_close(g, r, dtype, rtol64=1e-9)


def test_mlp2_seed002_column_vector_form(backend, rng):
    """N = 1: seed 002's numerator-layout results are the transposes of the gradients wrt its
    column-vector weights W1s = W1^T, W2s = W2^T, i.e. exactly dW1 and dW2."""
    from scipy.special import softmax

    D, H, C = 4, 5, 3
    x = rng.standard_normal((D, 1))
    W1s, W2s = rng.standard_normal((H, D)), rng.standard_normal((C, H))
    label = 2
    h = W1s @ x
    y = W2s @ np.tanh(h)
    dLdy = (softmax(y[:, 0]) - np.eye(C)[label])[None, :]  # (1, C), numerator layout
    seed_dW2 = np.tanh(h) @ dLdy  # sigma(W1 x) dL/dy, (H, C)
    seed_dW1 = x @ ((dLdy @ W2s) * (1 - np.tanh(h) ** 2).T)  # x [(dL/dy W2) o sigma'(W1 x)^T], (D, H)
    _, (dW1, db1, dW2, db2) = fastgrad.mlp2_loss_and_grad(
        x.T, [label], W1s.T, np.zeros(H), W2s.T, np.zeros(C), activation="tanh", backend=backend)
    np.testing.assert_allclose(dW2, seed_dW2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dW1, seed_dW1, rtol=1e-12, atol=1e-14)

    def loss_of_W1s(w):
        return naive_mlp2_loss(x.T, [label], w.T, np.zeros(H), W2s.T, np.zeros(C), "tanh",
                               "softmax_cross_entropy")

    # the gradient wrt the seed's own W1s (gradient layout, (H, D)) is the transpose
    np.testing.assert_allclose(nn_central_grad(loss_of_W1s, W1s), seed_dW1.T, rtol=1e-6, atol=1e-9)


def test_mlp2_torch_conventions_by_formula(backend, rng):
    """torch.nn.CrossEntropyLoss() / MSELoss() defaults written out: means over N and over N*C."""
    from scipy.special import log_softmax, softmax

    N, D, H, C = 6, 3, 4, 5
    X, y, W1, b1, W2, b2 = mlp_data(rng, N, D, H, C)
    Z2 = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    val, (_, _, _, db2) = fastgrad.mlp2_loss_and_grad(X, y, W1, b1, W2, b2, backend=backend)
    assert val == pytest.approx(-np.mean(log_softmax(Z2, axis=1)[np.arange(N), y]), rel=1e-12)
    np.testing.assert_allclose(db2, ((softmax(Z2, axis=1) - np.eye(C)[y]) / N).sum(0), atol=1e-14)
    # one-hot targets give the same loss and gradients as the labels
    val1, g1 = fastgrad.mlp2_loss_and_grad(X, np.eye(C)[y], W1, b1, W2, b2, backend=backend)
    assert val1 == pytest.approx(val, rel=1e-12)
    # probability targets: -(1/N) sum y log softmax
    P = rng.dirichlet(np.ones(C), N)
    valp, _ = fastgrad.mlp2_loss_and_grad(X, P, W1, b1, W2, b2, backend=backend)
    assert valp == pytest.approx(-np.sum(P * log_softmax(Z2, axis=1)) / N, rel=1e-12)
    # MSE: mean over all N*C entries
    T = rng.standard_normal((N, C))
    valm, (_, _, _, db2m) = fastgrad.mlp2_loss_and_grad(X, T, W1, b1, W2, b2, loss="mse", backend=backend)
    assert valm == pytest.approx(np.mean((Z2 - T) ** 2), rel=1e-12)
    np.testing.assert_allclose(db2m, (2 * (Z2 - T) / (N * C)).sum(0), atol=1e-14)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp2_stable_at_huge_logits(backend, dtype, act):
    """Logits of +-1e3 (and sigmoid inputs of +-1e3) give a finite loss and gradient."""
    X = np.array([[1.0, -1.0], [-1.0, 1.0]], dtype=dtype)
    W1 = np.array([[1e3, 0.0], [0.0, 1e3]], dtype=dtype)  # hidden pre-activations +-1e3
    b1 = np.zeros(2, dtype=dtype)
    W2 = np.zeros((2, 3), dtype=dtype)
    b2 = np.array([1e3, -1e3, 0.0], dtype=dtype)  # logits [1e3, -1e3, 0] for every sample
    # (warnings are errors: an overflow in the numpy reference would fail too)
    val, grads = fastgrad.mlp2_loss_and_grad(X, [1, 0], W1, b1, W2, b2, activation=act, backend=backend)
    assert np.isfinite(val) and all(np.isfinite(g).all() for g in grads), act
    assert val == pytest.approx(1000.0, rel=1e-6)  # ((lse - z_1) + (lse - z_0))/2 = (2000 + 0)/2
    np.testing.assert_allclose(grads[3], [0.5, -0.5, 0.0], atol=1e-6)  # ((e_0 - e_1) + 0)/2
    val, grads = fastgrad.mlp2_loss_and_grad(X, np.full((2, 3), 1 / 3, dtype), W1, b1, W2 + 1, b2,
                                             activation=act, backend=backend)
    assert np.isfinite(val) and all(np.isfinite(g).all() for g in grads), act


def test_mlp2_db2_at_huge_logits_exact(backend):
    val, grads = fastgrad.mlp2_loss_and_grad(np.ones((1, 1)), [1], np.ones((1, 1)), np.zeros(1),
                                             np.zeros((1, 3)), np.array([1e3, -1e3, 0.0]), backend=backend)
    assert val == 2000.0
    np.testing.assert_array_equal(grads[3], [1.0, -1.0, 0.0])  # softmax = e_0, minus e_1


@pytest.mark.parametrize("activation,loss,labels", CASES)
def test_mlp2_numba_cython_agree(rng, activation, loss, labels):
    if "cython" not in BACKENDS:
        pytest.skip("cython backend not built")
    data = mlp_data(rng, 700, 6, 40, 4, loss, labels)
    a = fastgrad.mlp2_loss_and_grad(*data, activation=activation, loss=loss, backend="numba")
    b = fastgrad.mlp2_loss_and_grad(*data, activation=activation, loss=loss, backend="cython")
    assert a[0] == pytest.approx(b[0], rel=1e-13)
    for x, y in zip(a[1], b[1], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("activation,loss,labels", [("sigmoid", "softmax_cross_entropy", True),
                                                    ("relu", "mse", False)])
def test_mlp2_threads_bitwise(compiled_backend, threads, monkeypatch, activation, loss, labels):
    monkeypatch.setattr(_config, "STREAM_PARALLEL_MIN", 1)  # every elementwise pass takes the parallel path
    data = mlp_data(np.random.default_rng(5), 2100, 8, 70, 5, loss, labels)
    fastgrad.set_num_threads(1)
    one = fastgrad.mlp2_loss_and_grad(*data, activation=activation, loss=loss, backend=compiled_backend)
    fastgrad.set_num_threads(2)
    two = fastgrad.mlp2_loss_and_grad(*data, activation=activation, loss=loss, backend=compiled_backend)
    assert one[0] == two[0]
    for a, b in zip(one[1], two[1], strict=True):
        assert np.array_equal(a, b)


def test_mlp2_hostile_layouts_not_mutated(backend, tmp_path):
    X, Y, W1, b1, W2, b2 = mlp_data(np.random.default_rng(11), 8, 3, 5, 4, "mse", False)
    rval, rgrads = reference.mlp2_loss_grad(X, Y, W1, b1, W2, b2, "tanh", "mse", False)
    for (lx, Xv), (lw, W1v), (ly, Yv) in zip(variants(X, tmp_path), variants(W1, tmp_path),
                                             variants(Y, tmp_path), strict=True):
        copies = [np.array(a) for a in (Xv, W1v, Yv)]
        val, grads = fastgrad.mlp2_loss_and_grad(Xv, Yv, W1v, b1, W2, b2, activation="tanh", loss="mse",
                                                 backend=backend)
        assert val == pytest.approx(rval, rel=1e-12), lx
        for g, r in zip(grads, rgrads, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-13, err_msg=f"{lx}/{lw}/{ly}")
        for a, c in zip((Xv, W1v, Yv), copies, strict=True):
            assert np.array_equal(a, c)


def test_mlp2_dtype_rules(backend, rng):
    X, y, W1, b1, W2, b2 = mlp_data(rng, 5, 3, 4, 3, dtype=np.float32)
    _, g = fastgrad.mlp2_loss_and_grad(X, y, W1, b1, W2, b2, backend=backend)
    assert all(a.dtype == np.float32 for a in g)  # integer labels do not count
    _, g = fastgrad.mlp2_loss_and_grad(X, y, W1.astype(np.float64), b1, W2, b2, backend=backend)
    assert all(a.dtype == np.float64 for a in g)
    _, g = fastgrad.mlp2_loss_and_grad(X, y.astype(np.float64), W1, b1, W2, b2, backend=backend)
    assert all(a.dtype == np.float32 for a in g)  # float labels of integral value are labels


def test_mlp2_mse_accepts_1d_targets_when_one_output(backend, rng):
    X, Y, W1, b1, W2, b2 = mlp_data(rng, 6, 2, 3, 1, "mse", False)
    a = fastgrad.mlp2_loss_and_grad(X, Y[:, 0], W1, b1, W2, b2, loss="mse", backend=backend)
    b = fastgrad.mlp2_loss_and_grad(X, Y, W1, b1, W2, b2, loss="mse", backend=backend)
    assert a[0] == b[0]


def test_mlp2_nan_propagates(backend, rng):
    X, y, W1, b1, W2, b2 = mlp_data(rng, 4, 3, 5, 3)
    X[2, 1] = np.nan
    val, grads = fastgrad.mlp2_loss_and_grad(X, y, W1, b1, W2, b2, activation="tanh", backend=backend)
    assert np.isnan(val) and np.isnan(grads[3]).all() and np.isnan(grads[0]).any()
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        fastgrad.mlp2_loss_and_grad(X, y, W1, b1, W2, b2, check_finite=True, backend=backend)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
@pytest.mark.parametrize("case", ["inf_b2", "nan_x", "nan_y"])
def test_mlp2_relu_mask_keeps_nan(backend, dtype, loss, case):
    """relu's ``o sigma'`` is a product: a NaN upstream gradient stays NaN where z <= 0 (NaN * 0)."""
    X, y = np.ones((2, 2)), np.array([0, 1])
    W1, b1, W2, b2 = -np.eye(2), np.zeros(2), np.eye(2), np.zeros(2)  # z1 = -1 <= 0 everywhere
    Y = np.eye(2)[y] if loss == "mse" else y
    if case == "inf_b2":
        b2 = np.array([np.inf, 0.0])
    elif case == "nan_x":
        X = np.array([[1.0, 1.0], [np.nan, 1.0]])
    else:
        Y = np.array([[1.0, 0.0], [np.nan, 1.0]])  # one-hot targets with a NaN
    args = [np.asarray(a, dtype) for a in (X, Y, W1, b1, W2, b2)]
    if args[1].ndim == 1:
        args[1] = y
    with np.errstate(invalid="ignore"):
        val, (dW1, db1, dW2, db2) = fastgrad.mlp2_loss_and_grad(*args, activation="relu", loss=loss,
                                                                backend=backend)
        rval, rgrads = reference.mlp2_loss_grad(*args, "relu", loss, args[1].ndim == 1)
    assert not np.isfinite(val)
    assert np.isnan(dW1).all() and np.isnan(db1).all(), (dW1, db1)
    for got, ref in zip((dW1, db1, dW2, db2), rgrads, strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_pass_multiplies_by_the_mask(backend, dtype):
    """The protocol's activation_backward for relu is ``dA * [A > 0]`` in IEEE arithmetic."""
    A = np.array([[1.0, 0.0, 0.0, np.nan, -0.0, 2.0], [0.0, 0.0, 3.0, 0.0, np.nan, 0.0]], dtype)
    dA = np.array([[np.nan, np.nan, np.inf, 1.0, -np.inf, -2.0], [-1.0, 5.0, np.nan, np.nan, 2.0, 0.5]], dtype)
    got, db = dA.copy(), np.empty(6, dtype)
    with np.errstate(invalid="ignore"):
        want = dA.astype(np.float64) * (A > 0)
        _config.kernels("nn", backend).activation_backward(got, A, _config.ACTIVATION_CODES["relu"], db, 1)
    np.testing.assert_array_equal(got, want.astype(dtype))  # NaN where want is NaN, 0 where it is 0
    np.testing.assert_array_equal(db, want.sum(axis=0).astype(dtype))


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("targets", ["labels", "one-hot"])
def test_mlp2_inf_logit_row_is_nan_in_every_gradient(backend, act, targets):
    """A row whose softmax is NaN (+inf logit) gives NaN in every gradient entry, on every backend."""
    X, y = np.ones((2, 2)), np.array([0, 1])
    W1, b1, W2, b2 = -np.eye(2), np.zeros(2), np.eye(2), np.array([np.inf, 0.0])
    Y = y if targets == "labels" else np.eye(2)[y]
    with np.errstate(invalid="ignore", over="ignore"):
        val, grads = fastgrad.mlp2_loss_and_grad(X, Y, W1, b1, W2, b2, activation=act, backend=backend)
    assert np.isnan(val)
    for g in grads:
        assert np.isnan(g).all(), grads


@pytest.mark.parametrize("kind", ["labels", "targets"])
def test_loss_pass_nan_softmax_row_is_nan(backend, kind):
    """The cross-entropy passes: a row with a +inf or NaN logit is NaN in every entry of dL/dZ;
    the other rows are those of the finite rows alone."""
    Z = np.array([[0.5, np.inf, -1.0], [0.1, 0.2, 0.3], [np.nan, 1.0, 2.0], [2.0, -1.0, 0.0]])
    b = np.zeros(3)
    y = np.array([0, 1, 2, 0], dtype=np.intp)
    T = np.eye(3)[y]
    k = _config.kernels("nn", backend)
    out, db = Z.copy(), np.empty(3)
    with np.errstate(invalid="ignore"):
        if kind == "labels":
            val = k.loss_labels(out, b, y, 0.25, db, 1)
        else:
            val = k.loss_targets(out, b, T, _config.LOSS_CODES["softmax_cross_entropy"], 0.25, db, 1)
    assert np.isnan(val) and np.isnan(db).all()
    assert np.isnan(out[[0, 2]]).all()
    _, rdZ = reference.nn_loss(Z[[1, 3]], y[[1, 3]], "softmax_cross_entropy", True)
    np.testing.assert_allclose(out[[1, 3]], rdZ * 2 / 4, rtol=1e-14)


def test_mlp2_bad_input(backend):
    X, W1, b1, W2, b2 = np.ones((3, 2)), np.ones((2, 4)), np.ones(4), np.ones((4, 5)), np.ones(5)
    call = fastgrad.mlp2_loss_and_grad
    with pytest.raises(ValueError, match=r"Y has label 5 at index 1, outside \[0, 5\)"):
        call(X, [0, 5, 1], W1, b1, W2, b2, backend=backend)
    with pytest.raises(ValueError, match=r"Y has label -1 at index 2"):
        call(X, np.array([0, 1, -1]), W1, b1, W2, b2, backend=backend)
    with pytest.raises(ValueError, match=r"labels must be integers: label 0.5 at index 0"):
        call(X, [0.5, 1.0, 1.0], W1, b1, W2, b2, backend=backend)
    with pytest.raises(ValueError, match=r"X has 3 rows but Y has 2 labels"):
        call(X, [0, 1], W1, b1, W2, b2, backend=backend)
    with pytest.raises(ValueError, match=r"one-hot Y has shape \(3, 4\) but the network's output \(logits\) "
                                         r"has shape \(3, 5\)"):
        call(X, np.eye(4)[[0, 1, 2]], W1, b1, W2, b2, backend=backend)
    with pytest.raises(ValueError, match=r"Y has shape \(3, 2\) but the network's output"):
        call(X, np.ones((3, 2)), W1, b1, W2, b2, loss="mse", backend=backend)
    with pytest.raises(ValueError, match=r"activation must be one of 'identity', 'sigmoid', 'tanh', 'relu'; "
                                         r"got 'gelu'"):
        call(X, [0, 1, 2], W1, b1, W2, b2, activation="gelu", backend=backend)
    with pytest.raises(ValueError, match=r"loss must be one of 'mse', 'softmax_cross_entropy'; got 'hinge'"):
        call(X, [0, 1, 2], W1, b1, W2, b2, loss="hinge", backend=backend)
    with pytest.raises(ValueError, match=r"X has 2 columns but W1 has 3 rows \(X \(3, 2\), W1 \(3, 4\)\)"):
        call(X, [0, 1, 2], np.ones((3, 4)), b1, W2, b2, backend=backend)
    with pytest.raises(ValueError, match=r"W1 has 4 columns but W2 has 3 rows \(W1 \(2, 4\), W2 \(3, 5\)\)"):
        call(X, [0, 1, 2], W1, b1, np.ones((3, 5)), b2, backend=backend)
    with pytest.raises(ValueError, match=r"b1 has 3 entries but W1 has 4 columns"):
        call(X, [0, 1, 2], W1, np.ones(3), W2, b2, backend=backend)
    with pytest.raises(ValueError, match=r"b2 has 4 entries but W2 has 5 columns"):
        call(X, [0, 1, 2], W1, b1, W2, np.ones(4), backend=backend)
    with pytest.raises(ValueError, match=r"X has 0 rows"):
        call(np.ones((0, 2)), np.zeros(0, int), W1, b1, W2, b2, backend=backend)
    with pytest.raises(TypeError, match="labels must be integers, got dtype <U1"):
        call(X, np.array(["a", "b", "c"]), W1, b1, W2, b2, backend=backend)


# ---------------------------------------------------------------------------
# Low-level API


def test_numba_kernels_callable_from_user_njit(rng):
    from numba import njit

    from fastgrad._numba import nn as knn

    @njit
    def user_backward(X, dZ):
        dW = np.empty((X.shape[1], dZ.shape[1]))
        db = np.empty(dZ.shape[1])
        knn.dw_db_kernel(X, dZ, dW, db)
        return dW, db

    X, _, _, dZ = dense_data(rng, 11, 3, 2)
    dW, db = user_backward(X, dZ)
    np.testing.assert_allclose(dW, X.T @ dZ, rtol=1e-13)
    np.testing.assert_allclose(db, dZ.sum(0), rtol=1e-13)
    assert knn.sigmoid(-1000.0) == 0.0 and knn.sigmoid(1000.0) == 1.0
    assert knn.activation_derivative(0.25, knn.SIGMOID) == 0.1875


def test_activation_kernels_vs_reference(rng):
    """Kernel activations (compiled and their derivative-from-value) against scipy/numpy formulas."""
    from fastgrad._numba import nn as knn

    z = np.concatenate([rng.standard_normal(50) * 5, [-1e3, -40.0, 0.0, 40.0, 1e3]])
    for name, code in _config.ACTIVATION_CODES.items():
        a = np.array([knn.activate(v, code) for v in z])
        np.testing.assert_allclose(a, reference.nn_activation(z, name), rtol=1e-14, atol=1e-300)
        d = np.array([knn.activation_derivative(v, code) for v in a])
        np.testing.assert_allclose(d, reference.nn_activation_derivative(z, name), rtol=1e-9, atol=1e-15)
        # the reference's derivative from the value (the numpy backend's) is the one from z, bit for bit
        ra = reference.nn_activation(z, name)
        assert np.array_equal(reference.nn_activation_derivative_from_value(ra, name),
                              reference.nn_activation_derivative(z, name)), name


STREAM_PASSES = ([("act", a) for a in ACTS] + [("loss", "mse"), ("loss", "xent"), ("loss", "labels")]
                 + [("back", a) for a in ACTS])


def _stream_data(rng, dtype):
    N, C = 1300, 6  # 6 row blocks of 256 (the last one short)
    Z = (3 * rng.standard_normal((N, C))).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, N).astype(np.intp)
    T = rng.standard_normal((N, C)).astype(dtype)
    return Z, b, y, T, np.tanh(Z)


def _stream_pass(k, what, name, data, n_threads):
    """One streaming pass of the protocol of kernel module ``k``; the arrays it wrote (and the loss)."""
    Z, b, y, T, A = data
    N, C = Z.shape
    if what == "act":
        out = Z.copy()
        k.bias_activation(out, b, _config.ACTIVATION_CODES[name], n_threads)
        return (out,)
    if what == "loss":
        out, db = Z.copy(), np.empty(C, Z.dtype)
        if name == "labels":
            val = k.loss_labels(out, b, y, 1.0 / N, db, n_threads)
        else:
            kind = _config.LOSS_CODES["mse" if name == "mse" else "softmax_cross_entropy"]
            val = k.loss_targets(out, b, T, kind, 1.0 / N, db, n_threads)
        return out, db, np.array(val)
    dA, db = T.copy(), np.empty(C, Z.dtype)
    k.activation_backward(dA, A, _config.ACTIVATION_CODES[name], db, n_threads)
    return dA, db


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("what,name", STREAM_PASSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_stream_kernels_threads_bitwise(backend, rng, dtype, what, name, n_threads):
    """The protocol's streaming passes: n_threads gives the bits of one thread (numba: the
    parallel target those of the serial one), every backend agrees with numba's serial kernel
    to rounding, and each pass matches its numpy formula."""
    data = _stream_data(rng, dtype)
    Z, b, y, T, A = data
    k = _config.kernels("nn", backend)
    got = _stream_pass(k, what, name, data, n_threads)
    one = _stream_pass(k, what, name, data, 1)
    for r, t in zip(got, one, strict=True):
        assert np.array_equal(r, t)  # n_threads == 1, bit for bit
    if "numba" in BACKENDS:  # numba and the other backends agree to rounding
        other = _stream_pass(_config.kernels("nn", "numba"), what, name, data, 1)
        for r, t in zip(got, other, strict=True):
            np.testing.assert_allclose(r, t, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    if what == "act":
        np.testing.assert_allclose(got[0], reference.nn_activation(Z.astype(np.float64) + b, name),
                                   rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-6)
    elif what == "loss":  # the loss kernels against their numpy formulas
        loss, labels, Y = {"mse": ("mse", False, T), "xent": ("softmax_cross_entropy", False, T),
                           "labels": ("softmax_cross_entropy", True, y)}[name]
        out, db, val = got
        rval, rdZ = reference.nn_loss(Z.astype(np.float64) + b, Y, loss, labels)
        if loss == "mse":  # the kernel takes scale = 1/N here; the reference means over N*C
            rval, rdZ = rval * Z.shape[1], rdZ * Z.shape[1]
        assert float(val) == pytest.approx(rval, rel=tol)
        np.testing.assert_allclose(out, rdZ, rtol=tol, atol=tol * np.abs(rdZ).max())
        np.testing.assert_allclose(db, rdZ.sum(0), rtol=tol, atol=tol * np.abs(rdZ).max() * 10)
    else:
        rdZ = T.astype(np.float64) * reference.nn_activation_derivative_from_value(A, name)
        np.testing.assert_allclose(got[0], rdZ, rtol=tol, atol=tol)
        np.testing.assert_allclose(got[1], rdZ.sum(0), rtol=tol, atol=tol * 10 * np.abs(rdZ).max())


# ---------------------------------------------------------------------------
# The backend protocol

PROTOCOL = ("dw_db", "bias_grad", "bias_activation", "loss_labels", "loss_targets", "activation_backward",
            "dense_forward", "dense_backward", "mlp2")


@pytest.mark.parametrize("name", PROTOCOL)
def test_protocol_is_the_same_in_every_backend(name):
    """Every backend's nn module exports the protocol function with the same arguments, n_threads last."""
    import inspect

    params = {b: tuple(inspect.signature(getattr(_config.kernels("nn", b), name)).parameters)
              for b in BACKENDS}
    assert len(set(params.values())) == 1, params
    assert params[BACKENDS[0]][-1] == "n_threads"


def test_codes_are_the_config_codes():
    """The Numba constants and the Cython enums of the activation and loss codes are _config's."""
    if "numba" in BACKENDS:
        from fastgrad._numba import nn as knb

        assert {"identity": knb.IDENTITY, "sigmoid": knb.SIGMOID, "tanh": knb.TANH,
                "relu": knb.RELU} == _config.ACTIVATION_CODES
        assert {"mse": knb.LOSS_MSE, "softmax_cross_entropy": knb.LOSS_XENT} == _config.LOSS_CODES
    if "cython" in BACKENDS:
        from fastgrad._cython import nn as kcy

        assert kcy.ACTIVATION_CODES == _config.ACTIVATION_CODES
        assert kcy.LOSS_CODES == _config.LOSS_CODES


def test_fused_max_c_of_the_kernels(compiled_backend):
    assert _config.kernels("nn", compiled_backend).FUSED_MAX_C == FUSED_MAX_C

