"""The model users fit: sample weights, an intercept and the ridge term on the MSE functions.

Against numpy written out here, closed-form weighted ridge solutions (scikit-learn's
Ridge objective with ``reduction='sum'``), scipy.optimize, row repetition, and every
backend at 1 and 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from conftest import BACKENDS, COMPILED
from hypothesis import given
from hypothesis import strategies as st

import fastgrad

TOL = {np.float64: 1e-10, np.float32: 2e-4}


def assert_close(got, ref, dtype):
    ref = np.asarray(ref, dtype=np.float64)
    tol = TOL[dtype]
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * (1.0 + np.abs(ref).max(initial=0.0)))


def numpy_model(A, y, w, s, b, alpha, reduction):
    """The loss and gradients written out in float64 numpy: r = y - A w - b."""
    A, y, w = (np.asarray(x, dtype=np.float64) for x in (A, y, w))
    Y = y.reshape(len(y), -1)
    W = w.reshape(w.shape[0], -1)
    K = Y.shape[1]
    s = np.ones(len(A)) if s is None else np.asarray(s, dtype=np.float64)
    bb = np.zeros(K) if b is None else np.broadcast_to(np.asarray(b, dtype=np.float64), (K,))
    R = Y - A @ W - bb
    c = 1.0 / (K * s.sum()) if reduction == "mean" else 1.0
    loss = c * np.sum(s[:, None] * R * R) + alpha * np.sum(W * W)
    gw = -2.0 * c * A.T @ (s[:, None] * R) + 2.0 * alpha * W
    gb = -2.0 * c * (s[:, None] * R).sum(axis=0)
    if b is not None and np.ndim(b) == 0:
        gb = gb.sum()
    return loss, gw.reshape(w.shape), gb


def problem(rng, N, D, K, dtype, offset=0.0):
    A = (rng.standard_normal((N, D)) + offset).astype(dtype)
    w = rng.standard_normal((D, K) if K else D).astype(dtype)
    y = (rng.standard_normal((N, K) if K else N) + 3.0).astype(dtype)
    return A, y, w


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    N=st.integers(1, 1500), D=st.integers(1, 40), K=st.integers(0, 3),
    dtype=st.sampled_from([np.float64, np.float32]), reduction=st.sampled_from(["mean", "sum"]),
    weighted=st.booleans(), intercept=st.sampled_from(["none", "scalar", "vector"]),
    alpha=st.sampled_from([0.0, 0.5]), fortran=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_matches_numpy_all_backends(backend, N, D, K, dtype, reduction, weighted, intercept, alpha, fortran,
                                    seed):
    rng = np.random.default_rng(seed)
    A, y, w = problem(rng, N, D, K, dtype)
    if fortran:
        A = np.asfortranarray(A)
    s = (rng.random(N) * 3).astype(dtype) if weighted else None
    if s is not None:
        s[0] = 1.0  # not all zero
    b = {"none": None, "scalar": dtype(0.7), "vector": rng.standard_normal(max(K, 1)).astype(dtype)}[intercept]
    loss, g = fastgrad.mse_loss_and_grad(A, y, w, reduction=reduction, sample_weight=s, intercept=b,
                                         alpha=alpha, backend=backend)
    rloss, rgw, rgb = numpy_model(A, y, w, s, b, alpha, reduction)
    assert isinstance(loss, float)
    assert_close(loss, rloss, dtype)
    if b is None:
        assert g.shape == w.shape and g.dtype == dtype
        assert_close(g, rgw, dtype)
        return
    gw, gb = g
    assert gw.shape == w.shape and gw.dtype == dtype
    assert_close(gw, rgw, dtype)
    if intercept == "scalar":
        assert isinstance(gb, float)
    else:
        assert gb.shape == (max(K, 1),) and gb.dtype == dtype
    assert_close(gb, rgb, dtype)
    # the three functions agree
    kw = dict(reduction=reduction, sample_weight=s, intercept=b, alpha=alpha, backend=backend)
    assert fastgrad.mse_loss(A, y, w, **kw) == loss
    gw2, gb2 = fastgrad.mse_grad(A, y, w, **kw)
    np.testing.assert_array_equal(gw2, gw)
    np.testing.assert_array_equal(gb2, gb)


def test_hand_example(backend):
    # A = [[1, 2], [3, 4]], y = [1, 2], w = 0, b = 0.5, s = [1, 2]: r = [0.5, 1.5],
    # loss = (1 * 0.25 + 2 * 2.25) / (1 * 3) = 4.75 / 3; grad_w = -(2/3) A^T (s r) =
    # -(2/3) [0.5 + 9, 1 + 12]; grad_b = -(2/3) (0.5 + 3); alpha adds alpha |w|^2 = 0 here.
    A = [[1.0, 2.0], [3.0, 4.0]]
    loss, (gw, gb) = fastgrad.mse_loss_and_grad(A, [1.0, 2.0], [0.0, 0.0], sample_weight=[1.0, 2.0],
                                                intercept=0.5, alpha=0.1, backend=backend)
    assert loss == pytest.approx(4.75 / 3, rel=1e-15)
    np.testing.assert_allclose(gw, [-19.0 / 3, -26.0 / 3], rtol=1e-15)
    assert gb == pytest.approx(-7.0 / 3, rel=1e-15)
    # the ridge term at w = [1, -1]: + 0.1 * 2 to the loss, + 0.2 w to the gradient
    l0, g0 = fastgrad.mse_loss_and_grad(A, [1.0, 2.0], [1.0, -1.0], backend=backend)
    l1, g1 = fastgrad.mse_loss_and_grad(A, [1.0, 2.0], [1.0, -1.0], alpha=0.1, backend=backend)
    assert l1 == pytest.approx(l0 + 0.2, rel=1e-15)
    np.testing.assert_allclose(g1, g0 + [0.2, -0.2], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3000, 16, 0), (1500, 5, 3), (700, 33, 0)])
def test_unit_weights_equal_unweighted(backend, shape, rng):
    # s_i r_i = r_i exactly, so the sums agree to the last bit or two (the weighted
    # kernel is compiled apart and may contract its multiply-adds differently)
    A, y, w = problem(rng, *shape, np.float64)
    for AA in (A, np.asfortranarray(A)):
        plain = fastgrad.mse_loss_and_grad(AA, y, w, backend=backend)
        ones = fastgrad.mse_loss_and_grad(AA, y, w, sample_weight=np.ones(len(A)), backend=backend)
        assert ones[0] == pytest.approx(plain[0], rel=4 * np.finfo(float).eps)
        np.testing.assert_allclose(ones[1], plain[1], rtol=1e-14, atol=1e-14 * np.abs(plain[1]).max())
        # a zero intercept and alpha = 0 change nothing either (up to rounding: the
        # intercept's kernel is compiled apart and may contract its sums differently)
        zero = fastgrad.mse_loss_and_grad(AA, y, w, intercept=0.0, alpha=0.0, backend=backend)
        assert zero[0] == pytest.approx(plain[0], rel=1e-14)
        np.testing.assert_allclose(zero[1][0], plain[1], rtol=1e-13, atol=1e-13 * np.abs(plain[1]).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_integer_weights_are_row_repetition(backend, reduction, rng):
    A, y, w = problem(rng, 900, 7, 2, np.float64)
    s = rng.integers(0, 4, size=900)
    s[0] = 2
    rep = np.repeat(np.arange(900), s)
    loss, (gw, gb) = fastgrad.mse_loss_and_grad(A, y, w, sample_weight=s, intercept=[0.5, -1.0],
                                                reduction=reduction, backend=backend)
    rloss, (rgw, rgb) = fastgrad.mse_loss_and_grad(A[rep], y[rep], w, intercept=[0.5, -1.0],
                                                   reduction=reduction, backend=backend)
    assert loss == pytest.approx(rloss, rel=1e-12)
    np.testing.assert_allclose(gw, rgw, rtol=1e-11, atol=1e-11 * np.abs(rgw).max())
    np.testing.assert_allclose(gb, rgb, rtol=1e-11, atol=1e-11 * np.abs(rgb).max())


@pytest.mark.parametrize("backend", COMPILED)
def test_bitwise_identical_across_threads(backend, rng, threads):
    A, y, w = problem(rng, 40_000, 12, 2, np.float64)
    s = rng.random(40_000)
    results = []
    for n in (1, 2):
        fastgrad.set_num_threads(n)
        for AA in (A, np.asfortranarray(A)):
            results.append(fastgrad.mse_loss_and_grad(AA, y, w, sample_weight=s, intercept=[1.0, 2.0],
                                                      alpha=0.3, backend=backend))
    for (l1, (g1, b1)), (l2, (g2, b2)) in [(results[0], results[2]), (results[1], results[3])]:
        assert l1 == l2
        np.testing.assert_array_equal(g1, g2)
        np.testing.assert_array_equal(b1, b2)


def weighted_ridge(A, y, s, alpha):
    """argmin_w,b sum_i s_i (y_i - a_i w - b)^2 + alpha |w|^2 (scikit-learn's Ridge objective), closed form."""
    sw = s / s.sum()
    Y = y.reshape(len(y), -1)
    am = sw @ A
    ym = sw @ Y
    Ac, Yc = A - am, Y - ym
    W = np.linalg.solve(Ac.T @ (s[:, None] * Ac) + alpha * np.eye(A.shape[1]), Ac.T @ (s[:, None] * Yc))
    b = ym - am @ W
    return (W[:, 0], b[0]) if y.ndim == 1 else (W, b)


@pytest.mark.parametrize("K", [0, 2])
def test_ridge_solution_is_stationary(backend, K, rng, n_threads):
    A, y, _ = problem(rng, 3000, 6, K, np.float64, offset=2.0)
    s = rng.random(3000) * 2
    alpha = 3.0
    w, b = weighted_ridge(A, y, s, alpha)
    # reduction='sum' is scikit-learn's Ridge objective sum_i s_i r_i^2 + alpha |w|^2
    gw, gb = fastgrad.mse_grad(A, y, w, sample_weight=s, intercept=b, alpha=alpha, reduction="sum",
                               backend=backend)
    scale = np.abs(A).sum() * np.abs(y).max()
    assert np.abs(gw).max() < 1e-11 * scale
    assert np.abs(gb).max() < 1e-11 * scale
    # the mean divides the data term by K sum(s): the same point with alpha * K sum(s)
    kk = max(K, 1)
    gw, gb = fastgrad.mse_grad(A, y, w, sample_weight=s, intercept=b, alpha=alpha / (kk * s.sum()),
                               backend=backend)
    assert np.abs(gw).max() < 1e-11 * scale / s.sum()
    assert np.abs(gb).max() < 1e-11 * scale / s.sum()
    # and it is not stationary for a different alpha
    gw, _ = fastgrad.mse_grad(A, y, w, sample_weight=s, intercept=b, alpha=2 * alpha, reduction="sum",
                              backend=backend)
    assert np.abs(gw).max() > 1e-3


@pytest.mark.parametrize("K", [0, 3])
def test_objective_fit_intercept_with_scipy(backend, K, rng):
    A, y, _ = problem(rng, 300, 5, K, np.float64, offset=1.0)
    s = rng.random(300) + 0.1
    alpha = 0.05
    obj = fastgrad.MSEObjective(A, y, sample_weight=s, alpha=alpha, fit_intercept=True, reduction="sum",
                                backend=backend)
    kk = max(K, 1)
    assert obj.n_coef == 5 * kk + kk
    res = scipy.optimize.minimize(obj.loss_and_grad, np.zeros(obj.n_coef), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 2000})
    w, b = weighted_ridge(A, y, s, alpha)
    np.testing.assert_allclose(res.x[:5 * kk].reshape(w.shape), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.x[5 * kk:], np.ravel(b), rtol=1e-5, atol=1e-6)
    # the packed gradient is [grad_w.ravel(), grad_b], the loss that of the functions
    coef = res.x + 0.1
    wc, bc = coef[:5 * kk].reshape(obj.w_shape), coef[5 * kk:]
    loss, (gw, gb) = fastgrad.mse_loss_and_grad(A, y, wc, sample_weight=s, intercept=bc, alpha=alpha,
                                                reduction="sum", backend=backend)
    assert obj.loss(coef) == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(obj.grad(coef), np.concatenate([gw.ravel(), gb]), rtol=1e-13)
    assert obj(coef) == obj.loss(coef)
    with pytest.raises(ValueError, match=f"coef has 3 elements but the problem has coefficients \\[w, b\\] "
                                         f"of length {obj.n_coef}"):
        obj.loss(np.zeros(3))
    assert "fit_intercept=True" in repr(obj)


def test_objective_without_intercept_reaches_lstsq_mean(backend, rng):
    A, y, _ = problem(rng, 200, 4, 0, np.float64)
    obj = fastgrad.MSEObjective(A, y, sample_weight=np.ones(200), backend=backend)
    res = scipy.optimize.minimize(obj.loss_and_grad, np.zeros(4), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 1e-15})
    np.testing.assert_allclose(res.x, np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-5, atol=1e-7)
    assert obj.grad(res.x).shape == (4,)


def test_out_with_intercept(backend, rng):
    A, y, w = problem(rng, 100, 3, 2, np.float64)
    out = np.empty((3, 2))
    loss, (gw, gb) = fastgrad.mse_loss_and_grad(A, y, w, intercept=[1.0, 2.0], out=out, backend=backend)
    assert gw is out
    ref = fastgrad.mse_grad(A, y, w, intercept=[1.0, 2.0], backend="numpy")
    np.testing.assert_allclose(out, ref[0], rtol=1e-12)
    # a scalar intercept shared by the outputs: its gradient is the sum over them
    _, gsum = fastgrad.mse_grad(A, y, w, intercept=1.5, backend=backend)
    _, gvec = fastgrad.mse_grad(A, y, w, intercept=[1.5, 1.5], backend=backend)
    assert isinstance(gsum, float)
    assert gsum == pytest.approx(gvec.sum(), rel=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
def test_python_scalar_intercept_keeps_float32(backend, sparse, rng):
    # a Python float (or int) intercept has no dtype of its own: float32 arrays give float32
    # results, as numpy's promotion treats Python scalars; a float64 scalar or array promotes
    A, y, w = problem(rng, 60, 3, 0, np.float32)
    if sparse:
        import scipy.sparse

        A = scipy.sparse.csr_array(A)
    for b, want in ((0.5, np.float32), (2, np.float32), (np.float32(0.5), np.float32),
                    (np.float64(0.5), np.float64), (np.array([0.5]), np.float64)):
        gw, gb = fastgrad.mse_grad(A, y, w, intercept=b, backend=backend)
        assert gw.dtype == want, (b, gw.dtype)
        loss, (gw2, _) = fastgrad.mse_loss_and_grad(A, y, w, intercept=b, backend=backend)
        assert gw2.dtype == want, (b, gw2.dtype)
        Ad = A.toarray() if sparse else A
        _, ref, _ = numpy_model(Ad, y, w, None, float(np.asarray(b).reshape(-1)[0]), 0.0, "mean")
        assert_close(gw, ref, np.float32)


def test_inputs_not_written(backend, rng):
    A, y, w = problem(rng, 500, 4, 0, np.float64)
    s = rng.random(500)
    b = np.array([0.5])
    copies = [x.copy() for x in (A, y, w, s, b)]
    for x in (A, y, w, s, b):
        x.flags.writeable = False
    fastgrad.mse_loss_and_grad(A, y, w, sample_weight=s, intercept=b, alpha=1.0, backend=backend)
    for x, c in zip((A, y, w, s, b), copies, strict=True):
        np.testing.assert_array_equal(x, c)


BAD = [
    ({"sample_weight": np.ones(4)}, ValueError,
     "A has 5 rows but sample_weight has 4 entries (A (5, 2), sample_weight (4,))"),
    ({"sample_weight": np.ones((5, 1))}, ValueError, "sample_weight must be 1-D (N,), got an array of shape (5, 1)"),
    ({"sample_weight": [1.0, -1.0, 1.0, 1.0, 1.0]}, ValueError,
     "sample_weight must be finite and >= 0; sample_weight[1] is -1.0"),
    ({"sample_weight": [1.0, 1.0, np.nan, 1.0, 1.0]}, ValueError,
     "sample_weight must be finite and >= 0; sample_weight[2] is nan"),
    ({"sample_weight": [1.0, 1.0, 1.0, np.inf, 1.0]}, ValueError,
     "sample_weight must be finite and >= 0; sample_weight[3] is inf"),
    ({"sample_weight": [1e308] * 5}, ValueError,
     "sample_weight sums to inf: the weights are finite but their sum overflows float64; scale them down"),
    ({"sample_weight": np.zeros(5)}, ValueError,
     "sample_weight is 0 for every row: the weighted mean divides by their sum"),
    ({"sample_weight": np.zeros(5), "reduction": "sum"}, ValueError,
     "sample_weight is 0 for every row: a fit with every weight 0 leaves nothing to fit"),
    ({"sample_weight": ["a"] * 5}, TypeError, "sample_weight has dtype <U1, which is not a real number type"),
    ({"intercept": [1.0, 2.0]}, ValueError, "w has 1 output but intercept has 2 entries (w (2,), intercept (2,))"),
    ({"intercept": np.ones((1, 1))}, ValueError,
     "intercept must be a scalar or 1-D (K,), got an array of shape (1, 1)"),
    ({"intercept": 1j}, TypeError, "intercept is complex (complex128); fastgrad works on real data only"),
    ({"alpha": -1.0}, ValueError, "alpha must be finite and >= 0, got -1.0"),
    ({"alpha": np.nan}, ValueError, "alpha must be finite and >= 0, got nan"),
    ({"alpha": "1"}, TypeError, "alpha must be a real number >= 0, got str"),
    ({"alpha": None}, TypeError, "alpha must be a real number >= 0, got NoneType"),
]


@pytest.mark.parametrize(("kw", "exc", "msg"), BAD, ids=[m[:40] for _, _, m in BAD])
def test_bad_inputs(kw, exc, msg, backend):
    A, y, w = np.ones((5, 2)), np.ones(5), np.ones(2)
    for fn in (fastgrad.mse_loss, fastgrad.mse_grad, fastgrad.mse_loss_and_grad):
        with pytest.raises(exc) as info:
            fn(A, y, w, backend=backend, **kw)
        assert str(info.value) == msg
    kw_obj = {k: v for k, v in kw.items() if k != "intercept"}
    if kw_obj:
        with pytest.raises(exc) as info:
            fastgrad.MSEObjective(A, y, **kw_obj)
        assert str(info.value) == msg


def test_bad_inputs_more():
    A, y, w = np.ones((5, 2)), np.ones((5, 3)), np.ones((2, 3))
    with pytest.raises(ValueError) as info:
        fastgrad.mse_grad(A, y, w, intercept=[1.0, 2.0])
    assert str(info.value) == "w has 3 outputs but intercept has 2 entries (w (2, 3), intercept (2,))"
    with pytest.raises(ValueError, match="sample_weight contains NaN or Inf"):
        fastgrad.mse_grad(A, y, w, sample_weight=[1, 1, np.inf, 1, 1], check_finite=True)
    with pytest.raises(ValueError, match="intercept contains NaN or Inf"):
        fastgrad.mse_grad(A, y, w, intercept=np.nan, check_finite=True)
    with pytest.raises(TypeError, match="fit_intercept must be True or False, got 1"):
        fastgrad.MSEObjective(A, y, fit_intercept=1)
    # NaN in the intercept propagates without check_finite, as NaN data does
    loss, (gw, gb) = fastgrad.mse_loss_and_grad(A, y, w, intercept=np.nan)
    assert np.isnan(loss) and np.isnan(gw).all() and np.isnan(gb)


def test_dask_model_keywords(rng):
    da = pytest.importorskip("dask.array")
    import fastgrad.dask as fgd

    A, y, w = problem(rng, 1000, 5, 2, np.float64)
    s = rng.random(1000)
    s[:300] = 0.0  # a chunk of zero weights is fine; only all zero is refused
    Ad = da.from_array(A, chunks=(250, 5))
    for kw in ({"sample_weight": s}, {"intercept": [0.3, -0.2]},
               {"sample_weight": da.from_array(s, chunks=100), "intercept": 0.3, "alpha": 0.2, "reduction": "sum"}):
        loss, g = fgd.mse_loss_and_grad(Ad, y, w, **kw)
        kw_mem = dict(kw, sample_weight=s) if "sample_weight" in kw else kw
        rloss, rg = fastgrad.mse_loss_and_grad(A, y, w, **kw_mem)
        assert loss == pytest.approx(rloss, rel=1e-12)
        if "intercept" in kw:
            np.testing.assert_allclose(g[0], rg[0], rtol=1e-11)
            np.testing.assert_allclose(g[1], rg[1], rtol=1e-11)
            assert type(g[1]) is type(rg[1])
        else:
            np.testing.assert_allclose(g, rg, rtol=1e-11)
        assert fgd.mse_loss(Ad, y, w, **kw) == pytest.approx(rloss, rel=1e-12)
    A32, y32, w32 = (x.astype(np.float32) for x in (A, y, w))
    gw, _ = fgd.mse_grad(da.from_array(A32, chunks=(250, 5)), y32, w32, intercept=0.3)
    assert gw.dtype == fastgrad.mse_grad(A32, y32, w32, intercept=0.3)[0].dtype == np.float32
    with pytest.raises(ValueError, match="A has 1000 rows but sample_weight has 3 entries"):
        fgd.mse_grad(Ad, y, w, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="alpha must be finite and >= 0, got -2"):
        fgd.mse_grad(Ad, y, w, alpha=-2)


@pytest.mark.parametrize("K", [0, 3])
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_objective_hessp_and_hess(K, fit_intercept, reduction, rng):
    A, y, _ = problem(rng, 60, 4, K, np.float64, offset=1.0)
    s = rng.random(60) + 0.2
    obj = fastgrad.MSEObjective(A, y, sample_weight=s, alpha=0.3, fit_intercept=fit_intercept,
                                reduction=reduction)
    x = rng.standard_normal(obj.n_coef)
    # the loss is quadratic: central differences of the gradient are its Hessian up to rounding
    H = np.array([(obj.grad(x + 1e-3 * e) - obj.grad(x - 1e-3 * e)) / 2e-3 for e in np.eye(obj.n_coef)]).T
    np.testing.assert_allclose(obj.hess(x), H, rtol=1e-9, atol=1e-9 * np.abs(H).max())
    np.testing.assert_allclose(obj.hess(x), obj.hess(x).T, rtol=0, atol=1e-12 * np.abs(H).max())
    p = rng.standard_normal(obj.n_coef)
    np.testing.assert_allclose(obj.hessp(x, p), H @ p, rtol=1e-9, atol=1e-9 * np.abs(H @ p).max())
    if not fit_intercept and K:  # p shaped like w comes back shaped like w
        assert obj.hessp(x, p.reshape(obj.w_shape)).shape == obj.w_shape


def test_objective_trust_ncg_reaches_ridge(backend, rng):
    A, y, _ = problem(rng, 400, 5, 0, np.float64, offset=1.0)
    s = rng.random(400) + 0.1
    obj = fastgrad.MSEObjective(A, y, sample_weight=s, alpha=2.0, fit_intercept=True, reduction="sum",
                                backend=backend)
    res = scipy.optimize.minimize(obj.loss_and_grad, np.zeros(obj.n_coef), jac=True, hessp=obj.hessp,
                                  method="trust-ncg", options={"gtol": 1e-9})
    w, b = weighted_ridge(A, y, s, 2.0)
    np.testing.assert_allclose(res.x, np.append(w, b), rtol=1e-7, atol=1e-8)
