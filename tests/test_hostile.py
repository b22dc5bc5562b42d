"""Hostile inputs that once gave wrong answers or unhelpful errors (found by an adversarial probe).

Each test names the input; the expected values are worked out here with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import BACKENDS

import fastgrad

A2 = np.array([[1.0, 2.0], [3.0, 4.0]])
Y2 = np.array([1.0, 2.0])


# ---------------------------------------------------------------------------
# Subnormal sample weights: the weighted mean does not depend on the weights' scale


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_subnormal_sample_weights_give_the_weighted_mean(backend, fmt):
    A = A2 if fmt == "dense" else getattr(sp, f"{fmt}_array")(A2)
    s_tiny = np.array([1e-310, 3e-310])  # their sum's reciprocal overflows float64
    s_norm = np.array([1.0, 3.0])
    w, v = np.array([0.5, -0.25]), np.array([1.0, 1.0])
    loss_t, g_t = fastgrad.mse_loss_and_grad(A, Y2, w, sample_weight=s_tiny, backend=backend)
    loss_n, g_n = fastgrad.mse_loss_and_grad(A, Y2, w, sample_weight=s_norm, backend=backend)
    assert np.isfinite(loss_t) and loss_t == pytest.approx(loss_n, rel=1e-12)
    np.testing.assert_allclose(g_t, g_n, rtol=1e-12)
    _, (gw, gb) = fastgrad.mse_loss_and_grad(A, Y2, w, sample_weight=s_tiny, intercept=0.5, backend=backend)
    _, (gw_n, gb_n) = fastgrad.mse_loss_and_grad(A, Y2, w, sample_weight=s_norm, intercept=0.5, backend=backend)
    np.testing.assert_allclose(gw, gw_n, rtol=1e-12)
    assert gb == pytest.approx(gb_n, rel=1e-12)
    np.testing.assert_allclose(fastgrad.mse_hessp(A, v, sample_weight=s_tiny, backend=backend),
                               fastgrad.mse_hessp(A, v, sample_weight=s_norm, backend=backend), rtol=1e-12)
    np.testing.assert_allclose(fastgrad.mse_hessian(A, sample_weight=s_tiny),
                               fastgrad.mse_hessian(A, sample_weight=s_norm), rtol=1e-12)
    # the sum: tiny weights, a tiny (finite, correct) loss
    assert fastgrad.mse_loss(A, Y2, w, sample_weight=s_tiny, reduction="sum", backend=backend) == pytest.approx(
        1e-310 * fastgrad.mse_loss(A, Y2, w, sample_weight=s_norm, reduction="sum", backend=backend), rel=1e-9)


def test_subnormal_sample_weights_objective_and_dask():
    s_tiny, s_norm = np.array([1e-310, 3e-310]), np.array([1.0, 3.0])
    c = np.array([0.5, -0.25, 0.1])
    o_t = fastgrad.MSEObjective(A2, Y2, sample_weight=s_tiny, fit_intercept=True)
    o_n = fastgrad.MSEObjective(A2, Y2, sample_weight=s_norm, fit_intercept=True)
    for method in ("loss", "grad", "hess"):
        np.testing.assert_allclose(getattr(o_t, method)(c), getattr(o_n, method)(c), rtol=1e-12)
    np.testing.assert_allclose(o_t.hessp(c, np.ones(3)), o_n.hessp(c, np.ones(3)), rtol=1e-12)
    da = pytest.importorskip("dask.array")
    import fastgrad.dask as fgd

    loss, g = fgd.mse_loss_and_grad(da.from_array(A2, chunks=(1, 2)), Y2, c[:2], sample_weight=s_tiny)
    loss_n, g_n = fastgrad.mse_loss_and_grad(A2, Y2, c[:2], sample_weight=s_norm)
    assert loss == pytest.approx(loss_n, rel=1e-12)
    np.testing.assert_allclose(g, g_n, rtol=1e-12)


# ---------------------------------------------------------------------------
# MSEObjective with no columns (D = 0): only the intercept, or nothing, to fit


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_objective_with_no_columns(fmt, fit_intercept):
    y = np.arange(4.0)
    A = np.zeros((4, 0)) if fmt == "dense" else getattr(sp, f"{fmt}_matrix")((4, 0))
    obj = fastgrad.MSEObjective(A, y, fit_intercept=fit_intercept)
    c = np.array([0.5]) if fit_intercept else np.zeros(0)
    b = c[0] if fit_intercept else 0.0
    loss, g = obj.loss_and_grad(c)
    assert loss == pytest.approx(np.mean((y - b) ** 2))
    assert obj.loss(c) == loss
    want_g = [-2.0 * np.mean(y - b)] if fit_intercept else []
    np.testing.assert_allclose(g, want_g)
    np.testing.assert_allclose(obj.grad(c), want_g)
    want_h = np.full((1, 1), 2.0) if fit_intercept else np.zeros((0, 0))
    np.testing.assert_allclose(obj.hess(c), want_h)
    np.testing.assert_allclose(obj.hessp(c, np.ones(c.size)), want_h @ np.ones(c.size))


# ---------------------------------------------------------------------------
# Second derivatives: NaN/Inf in x propagate; a tiny direction v


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_second_derivatives_of_an_x_with_nan_or_inf_propagate(bad):
    f = lambda x: float(np.sum(x ** 2))  # noqa: E731
    x = np.array([bad, 1.0])
    with np.errstate(invalid="ignore", over="ignore"):
        H = fastgrad.numhess(f, x)
        H2, err = fastgrad.numhess(f, x, full_output=True)
        d = fastgrad.numhess_diag(f, x)
    assert H.shape == (2, 2) and np.isnan(H).all() and np.isnan(H2).all()
    assert np.isnan(d).all()
    with pytest.raises(fastgrad.GradientMismatchError):  # a NaN Hessian never passes the check
        with np.errstate(invalid="ignore", over="ignore"):
            fastgrad.hesscheck(f, lambda x: 2.0 * np.eye(2), x)


@pytest.mark.parametrize("scale", [1e-315, 1e-310, 1e-300, 1.0, 1e300])
@pytest.mark.parametrize("with_grad", [False, True])
def test_numhvp_of_a_tiny_or_huge_direction(scale, with_grad):
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    f = lambda x: 0.5 * x @ A @ x  # noqa: E731
    x, v = np.array([0.5, -1.0]), np.array([1.0, -0.5]) * scale
    kw = {"grad": lambda x: A @ x} if with_grad else {}
    hv = fastgrad.numhvp(f, x, v, **kw)
    np.testing.assert_allclose(hv, A @ v, rtol=1e-6 if with_grad else 1e-4, atol=0)


def test_numhvp_unchanged_for_ordinary_directions():
    # the rescaling of tiny directions leaves every other call as it was, bit for bit
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    f = lambda x: 0.5 * x @ A @ x  # noqa: E731
    x, v = np.array([0.5, -1.0]), np.array([0.3, 0.7])
    t = float(np.finfo(np.float64).eps) ** 0.25 * 1.0 / 0.7
    gp = fastgrad.numgrad(f, x + t * v)
    gm = fastgrad.numgrad(f, x - t * v)
    np.testing.assert_array_equal(fastgrad.numhvp(f, x, v), (gp - gm) / (2.0 * t))


# ---------------------------------------------------------------------------
# pandas nullable dtypes; empty x; group labels with gaps; messages naming the argument


def test_dataframe_of_nullable_dtypes_reads_as_floats():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]}).astype("Float64")
    plain = frame.to_numpy(dtype=np.float64)
    w = np.array([0.5, -1.0])
    assert fastgrad.mse_loss(frame, np.ones(3), w) == fastgrad.mse_loss(plain, np.ones(3), w)
    ints = pd.DataFrame({"a": [1, 2, 3], "b": [True, False, True]}).astype({"a": "Int64", "b": "boolean"})
    np.testing.assert_array_equal(fastgrad.mse_grad(ints, np.ones(3), w),
                                  fastgrad.mse_grad(np.array([[1.0, 1.0], [2.0, 0.0], [3.0, 1.0]]), np.ones(3), w))
    missing = pd.DataFrame({"a": [1.0, None, 3.0]}).astype("Float64")  # pd.NA reads as NaN
    assert np.isnan(fastgrad.mse_loss(missing, np.ones(3), np.ones(1)))
    with pytest.raises(TypeError, match="A has dtype object"):
        fastgrad.mse_loss(pd.DataFrame({"a": ["x", "y", "z"]}), np.ones(3), np.ones(1))


def test_taylor_test_of_an_empty_x_is_vacuous():
    r = fastgrad.taylor_test(lambda x: 1.0, lambda x: x, np.zeros(0))
    assert r.ok and np.all(r.errors == 0.0)
    assert fastgrad.taylor_test(lambda x: 1.0, lambda x: x, np.zeros(0), v=np.zeros(0)).ok


def test_numjac_group_labels_with_gaps():
    F = lambda x: np.array([x[0] ** 2, 3.0 * x[1], np.sin(x[2]), x[0] * x[3]])  # noqa: E731
    S = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    x = np.array([1.0, 2.0, 0.5, -1.0])
    calls = []

    def counted(z):
        calls.append(1)
        return F(z)

    J = fastgrad.numjac(counted, x, sparsity=(S, np.array([0, 5, 10**12, 5]))).toarray()
    n_gapped = len(calls)
    calls.clear()
    J2 = fastgrad.numjac(counted, x, sparsity=(S, np.array([0, 1, 2, 1]))).toarray()
    np.testing.assert_array_equal(J, J2)
    assert n_gapped == len(calls)  # the same three groups evaluated, no empty ones
    want = np.array([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, np.cos(0.5), 0], [-1.0, 0, 0, 1.0]])
    np.testing.assert_allclose(J, want, rtol=1e-6, atol=1e-9)


def test_mse_numgrad_step_errors_name_w():
    A, y, w = np.ones((4, 3)), np.ones((4, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match=r"h has shape \(3,\) but w has shape \(3, 2\)"):
        fastgrad.mse_numgrad(A, y, w, h=np.ones(3))
    with pytest.raises(ValueError, match=r"vanishes at w\[0, 0\]"):
        fastgrad.mse_numgrad(A, y, w, h=1e-30, method="forward")


FLAG_CALLS = {
    "mse_grad check_finite": lambda v: fastgrad.mse_grad(np.ones((3, 2)), np.ones(3), np.ones(2), check_finite=v),
    "mse_hessp check_finite": lambda v: fastgrad.mse_hessp(np.ones((3, 2)), np.ones(2), check_finite=v),
    "kron check_finite": lambda v: fastgrad.kron(np.eye(2), np.eye(2), check_finite=v),
    "grad_logdet signed": lambda v: fastgrad.grad_logdet(np.eye(2), signed=v),
    "grad_det check_finite": lambda v: fastgrad.grad_det(np.eye(2), check_finite=v),
    "numgrad full_output": lambda v: fastgrad.numgrad(np.sum, np.ones(2), full_output=v),
    "numgrad check_finite": lambda v: fastgrad.numgrad(np.sum, np.ones(2), check_finite=v),
    "numjac flatten": lambda v: fastgrad.numjac(lambda x: x, np.ones(2), flatten=v),
    "numhess full_output": lambda v: fastgrad.numhess(np.sum, np.ones(2), full_output=v),
    "matmul_jacobian flatten": lambda v: fastgrad.matmul_jacobian(np.eye(2), np.eye(2), wrt=0, flatten=v),
    "fit_linear progress": lambda v: fastgrad.fit_linear(np.ones((3, 2)), np.ones(3), epochs=1, progress=v),
    "dense_forward check_finite": lambda v: fastgrad.dense_forward(np.ones((2, 2)), np.ones((2, 2)), np.ones(2),
                                                                   check_finite=v),
    "numgrad parallel": lambda v: fastgrad.numgrad(np.sum, np.ones(2), parallel=v),
    "numgrad vectorized": lambda v: fastgrad.numgrad(np.sum, np.ones(2), vectorized=v),
    "numjac parallel": lambda v: fastgrad.numjac(lambda x: x, np.ones(2), parallel=v),
    "numjac vectorized": lambda v: fastgrad.numjac(lambda x: x, np.ones(2), vectorized=v),
    "numhess parallel": lambda v: fastgrad.numhess(np.sum, np.ones(2), parallel=v),
    "numhess_diag parallel": lambda v: fastgrad.numhess_diag(np.sum, np.ones(2), parallel=v),
    "gradcheck raise_exception": lambda v: fastgrad.gradcheck(np.sum, np.ones_like, np.ones(2), raise_exception=v),
    "hesscheck raise_exception": lambda v: fastgrad.hesscheck(np.sum, lambda x: np.zeros((2, 2)), np.ones(2),
                                                              raise_exception=v),
}


@pytest.mark.parametrize("call", list(FLAG_CALLS), ids=list(FLAG_CALLS))
def test_flags_must_be_true_or_false(call):
    # a string such as 'no' would read as True: refused, naming the flag
    flag = call.split()[1]
    with pytest.raises(TypeError, match=f"{flag} must be True or False, got 'no'"):
        FLAG_CALLS[call]("no")
    FLAG_CALLS[call](False)
    FLAG_CALLS[call](np.bool_(False))


# ---------------------------------------------------------------------------
# The complex step of an f that returns NaN: NaN + 0j has a finite imaginary part


def _nan_scalar(z):
    return np.nan + 0.0 * z[0] + z[1] ** 2


def _nan_vector(z):
    return np.array([np.nan + 0.0 * z[0], z[1] ** 2, z[0] * z[1]])


@pytest.mark.parametrize("jit", [False, True], ids=["python", "njit"])
def test_complex_step_of_a_nan_value_is_nan(jit):
    # "a NaN returned by f makes only the affected entries NaN", for method='complex' too
    # (Im(NaN + 0j) / h was 0)
    import numba

    f, F = (numba.njit(_nan_scalar), numba.njit(_nan_vector)) if jit else (_nan_scalar, _nan_vector)
    x = np.array([1.0, 2.0])
    assert np.isnan(fastgrad.numgrad(f, x, method="complex")).all()
    g, err = fastgrad.numgrad(f, x, method="complex", full_output=True)
    assert np.isnan(g).all()
    J = fastgrad.numjac(F, x, method="complex")
    assert np.isnan(J[0]).all()
    np.testing.assert_allclose(J[1:], [[0.0, 4.0], [2.0, 1.0]], rtol=1e-15)
    S = sp.csr_array(np.ones((3, 2)))
    Js = fastgrad.numjac(F, x, method="complex", sparsity=S).toarray()
    assert np.isnan(Js[0]).all() and np.allclose(Js[1:], J[1:])


# ---------------------------------------------------------------------------
# Matrix identities: a finite cofactor whose running products over- or underflow; NaN in X


def test_grad_det_of_singular_values_whose_running_products_overflow():
    # det X = 1 and every cofactor is finite, but 1e160 * 1e160 overflows and
    # 1e-160 * 1e-160 underflows on the way (the result was all NaN)
    G = fastgrad.grad_det(np.diag([1e160, 1e160, 1e-160, 1e-160]))
    np.testing.assert_allclose(G, np.diag([1e-160, 1e-160, 1e160, 1e160]), rtol=1e-14, atol=0)
    # a cofactor beyond float64's range is inf where it is nonzero, the zeros stay zeros
    G = fastgrad.grad_det(np.diag([1e200, 1e200, 1e-200]))
    off = G.copy()
    np.fill_diagonal(off, 0.0)
    assert G[2, 2] == np.inf and not off.any()
    np.testing.assert_allclose(np.diag(G)[:2], [1.0, 1.0], rtol=1e-14)
    assert not fastgrad.grad_det(np.diag([1e-200, 1e-200, 1e-200])).any()  # cofactors 1e-400: 0
    # permuted and signed: the same cofactors, moved
    P = np.array([[0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    X = P @ np.diag([1e160, 1e-160, 1e160, 1e-160])
    want = np.linalg.det(P) * P @ np.diag([1e-160, 1e160, 1e-160, 1e160])  # adj(X)^T = det(X) X^-T, det X = det P
    np.testing.assert_allclose(fastgrad.grad_det(X), want, rtol=1e-14, atol=1e-170)  # SVD rounding in the zeros


@pytest.mark.parametrize("where", [(0, 0), (0, 1), (1, 0)])
def test_nan_in_x_propagates_through_inverse_identities(where):
    # slogdet / LAPACK's inverse call some NaN matrices singular: the docs say NaN propagates
    X = np.array([[2.0, 1.0], [1.0, 1.0]])
    X[where] = np.nan
    assert np.isnan(fastgrad.grad_logdet(X)).all()
    assert np.isnan(fastgrad.jacobian_inv(X)).all()
    assert np.isnan(fastgrad.dinv(X, np.eye(2))).all()
    assert np.isnan(fastgrad.grad_det(X)).all()


# ---------------------------------------------------------------------------
# gradcheck's fast mode validates h as the full check does; the gradient's dtype is checked


def test_gradcheck_fast_mode_checks_h_and_grad():
    x = np.array([0.5, -1.0, 2.0])
    f = lambda x: np.sum(np.sin(x))  # noqa: E731
    for mode in ("full", "fast"):
        with pytest.raises(ValueError, match="h = 1e-300 vanishes at x"):  # was ZeroDivisionError (fast)
            fastgrad.gradcheck(f, np.cos, x, mode=mode, h=1e-300)
        with pytest.raises(ValueError, match=r"h has shape \(2,\) but x has shape \(3,\)"):  # fast: accepted
            fastgrad.gradcheck(f, np.cos, x, mode=mode, h=np.array([1e-5, 1e-5]))
        # a complex gradient passed with its imaginary part dropped; strings and None gave numpy's errors
        for bad, dtype in ((lambda x: np.cos(x) + 5j, "complex128"), (lambda x: ["a", "b", "c"], "<U1"),
                           (lambda x: None, "object")):
            with pytest.raises(TypeError, match=f"grad must return an array of real numbers, got dtype {dtype}"):
                fastgrad.gradcheck(f, bad, x, mode=mode)
        assert fastgrad.gradcheck(f, np.cos, x, mode=mode, h=np.full(3, 1e-5)).ok
        assert fastgrad.gradcheck(lambda x: float(np.sum(x)), lambda x: np.ones(3, dtype=int), x, mode=mode).ok


# ---------------------------------------------------------------------------
# taylor_test of a tiny direction: t_0 = 2^-4 max(1, max|x_i|) / max|v_i| overflowed to inf


@pytest.mark.parametrize("vmax", [3e-310, 5e-324, 1e-300])
def test_taylor_test_of_a_tiny_direction(vmax):
    x = np.array([0.5, -1.0, 2.0])
    f = lambda x: np.sum(np.sin(x))  # noqa: E731
    v = np.array([vmax, 0.0, -vmax])
    r = fastgrad.taylor_test(f, np.cos, x, v=v)
    assert r.ok and np.isfinite(r.steps).all()
    assert not fastgrad.taylor_test(f, lambda x: np.cos(x) + [1.0, 0.0, 0.0], x, v=v).ok
    # the same steps as a direction of ordinary size with the same signs
    assert fastgrad.taylor_test(f, np.cos, x, v=np.sign(v)).ok


# ---------------------------------------------------------------------------
# approx_fprime/check_grad: scipy's replacement step follows the dtype of f's result (sqrt of
# float32's eps for a float32 f, not float64's, which a float32 f cannot resolve: gradient 0);
# epsilon=None takes that relative step everywhere, as scipy's


@pytest.mark.parametrize("epsilon", [0.0, None, np.array([1e-8, 0.0, 1e-8, 0.0])])
@pytest.mark.parametrize("fdtype", [np.float32, np.float16, np.float64, int])
def test_approx_fprime_vanishing_step_follows_the_dtype_of_f(epsilon, fdtype):
    from scipy import optimize

    x = np.array([0.5, -1.0, 2.0, 1e20])
    scalar = lambda x: fdtype(np.sum(np.sin(x[:3]) * x[:3]) * 1000)  # noqa: E731
    vector = lambda x: np.append(np.sin(x[:3]) * 1000, x[3] * 1e-18).astype(fdtype)  # noqa: E731
    for f in (scalar, vector):
        np.testing.assert_array_equal(fastgrad.approx_fprime(x, f, epsilon), optimize.approx_fprime(x, f, epsilon))
    grad = lambda x: np.cos(x[:3]) * x[:3] + np.sin(x[:3])  # noqa: E731
    f3 = lambda x: fdtype(np.sum(np.sin(x) * x))  # noqa: E731
    x3 = x[:3]
    e3 = epsilon[:3] if isinstance(epsilon, np.ndarray) else epsilon
    assert fastgrad.check_grad(f3, grad, x3, epsilon=e3) == optimize.check_grad(f3, grad, x3, epsilon=e3)


# ---------------------------------------------------------------------------
# jacobian_Wx: the entries off the identity's support are exact zeros on every backend, even where
# x holds NaN or Inf (the numpy backend's np.kron made NaN of 0 * NaN there)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ["F", "C"])
def test_jacobian_Wx_nonfinite_x_leaves_exact_zeros(backend, order):
    x = np.array([1.0, np.nan, 0.0, np.inf, -0.0])
    n, m = 3, x.size
    expected = np.zeros((n, n * m))
    for i in range(n):
        for b in range(m):
            expected[i, i + b * n if order == "F" else i * m + b] = x[b]
    J = fastgrad.jacobian_Wx(x, n, order=order, backend=backend)
    np.testing.assert_array_equal(J, expected)
    np.testing.assert_array_equal(fastgrad.jacobian_Wx(x, n, order=order, format="csr", backend=backend).toarray(),
                                  expected)


# ---------------------------------------------------------------------------
# Cross-entropy with a +inf logit in another class than the target's: the row's softmax is NaN,
# so its loss is NaN on every backend (the numpy backend's log_softmax gave -inf there: loss +inf)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("targets", ["labels", "one-hot"])
def test_mlp2_inf_logit_of_another_class_gives_nan_loss(backend, targets):
    X, W1, b1, W2 = np.ones((2, 1)), np.ones((1, 1)), np.zeros(1), np.zeros((1, 3))
    b2 = np.array([np.inf, 0.0, 0.0])
    y = np.array([1, 2])  # never the +inf class
    Y = y if targets == "labels" else np.eye(3)[y]
    with np.errstate(invalid="ignore", over="ignore"):
        val, grads = fastgrad.mlp2_loss_and_grad(X, Y, W1, b1, W2, b2, activation="identity", backend=backend)
    assert np.isnan(val)
    for g in grads:
        assert np.isnan(g).all(), grads


# ---------------------------------------------------------------------------
# Cross-entropy with dense targets and a -inf logit in a class whose target is 0: that class has
# probability 0 and target 0, so it adds nothing (the compiled kernels' 0 * inf made the loss NaN)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("targets", ["labels", "one-hot", "probabilities"])
def test_mlp2_minus_inf_logit_of_a_zero_target_adds_nothing(backend, targets):
    X, W1, b1, W2 = np.ones((2, 1)), np.ones((1, 1)), np.zeros(1), np.zeros((1, 3))
    b2 = np.array([-np.inf, 0.0, 0.0])
    y = np.array([1, 2])
    Y = {"labels": y, "one-hot": np.eye(3)[y], "probabilities": np.array([[0.0, 0.5, 0.5]] * 2)}[targets]
    val, grads = fastgrad.mlp2_loss_and_grad(X, Y, W1, b1, W2, b2, activation="identity", backend=backend)
    # the two finite classes share the probability: loss log 2, and the gradients are finite
    assert val == pytest.approx(np.log(2.0), rel=1e-15)
    for g in grads:
        assert np.isfinite(g).all(), grads


# ---------------------------------------------------------------------------
# group_columns: an order that is neither a permutation nor a seed is named in the error
# (numpy's RandomState raised its own "Cannot cast scalar" / "Seed must be ..." errors)


@pytest.mark.parametrize("order, error, message", [
    ("abc", TypeError, "order must be an integer, got str"),
    (1.5, TypeError, "order must be an integer, got float"),
    (True, TypeError, "order must be an integer, got bool"),
    (-1, ValueError, "order must be >= 0, got -1"),
    (2**40, ValueError, r"order must be a permutation of range\(3\), None or a seed below 2\*\*32"),
])
def test_group_columns_names_a_bad_order(order, error, message):
    with pytest.raises(error, match=message):
        fastgrad.group_columns(np.eye(3), order=order)
    assert fastgrad.group_columns(np.eye(3), order=np.uint32(2**32 - 1)).shape == (3,)


# ---------------------------------------------------------------------------
# numjac: a structure written as a 2-tuple of rows reads as (structure, groups), as scipy's (which
# then returns a wrong Jacobian); the error says so


def test_numjac_a_tuple_structure_error_names_the_tuple_reading():
    f = lambda x: 2.0 * x  # noqa: E731
    with pytest.raises(ValueError, match=r"a 2-tuple sparsity is read as \(structure, groups\)"):
        fastgrad.numjac(f, np.ones(2), sparsity=((1, 0), (0, 1)))
    J = fastgrad.numjac(f, np.ones(2), sparsity=np.array(((1, 0), (0, 1))))  # the same rows as an array
    np.testing.assert_allclose(J.toarray(), 2.0 * np.eye(2), rtol=1e-6)
