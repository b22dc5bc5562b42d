"""Tests of mse_hessp and mse_hessian: closed forms, differences of the gradient, layouts, threads, optimisers."""

from __future__ import annotations

import naive
import numpy as np
import pytest
import scipy.sparse
from conftest import BACKENDS, COMPILED
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize

import fastgrad
from fastgrad import _validate


def _closed_form(A, v, s=None, alpha=0.0, reduction="mean"):
    """``2 scale A^T S (A v) + 2 alpha v`` in float64 numpy."""
    A = np.asarray(A.toarray() if scipy.sparse.issparse(A) else A, dtype=np.float64)
    V = np.asarray(v, dtype=np.float64).reshape(A.shape[1], -1)
    S = np.ones(A.shape[0]) if s is None else np.asarray(s, dtype=np.float64)
    scale = 1.0 / (V.shape[1] * S.sum()) if reduction == "mean" else 1.0
    return (2.0 * scale * (A.T @ (S[:, None] * (A @ V))) + 2.0 * alpha * V).reshape(np.shape(v))


# backend by parametrize, not the conftest fixture: hypothesis rejects function-scoped fixtures
@pytest.mark.parametrize("backend", BACKENDS)
@given(N=st.integers(1, 600), D=st.integers(1, 9), K=st.integers(0, 3),
       dtype=st.sampled_from([np.float32, np.float64]), weighted=st.booleans(),
       alpha=st.sampled_from([0.0, 0.7]), reduction=st.sampled_from(["mean", "sum"]),
       layout=st.sampled_from(["C", "F", "strided", "csr", "csc"]), seed=st.integers(0, 2**16))
def test_hessp_matches_the_closed_form(backend, N, D, K, dtype, weighted, alpha, reduction, layout, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N, 2 * D)).astype(dtype)[:, ::2] if layout == "strided" else \
        rng.standard_normal((N, D)).astype(dtype)
    if layout == "F":
        A = np.asfortranarray(A)
    elif layout in ("csr", "csc"):
        A = scipy.sparse.csr_array(A * (rng.random((N, D)) < 0.4)).asformat(layout)
    v = rng.standard_normal((D, K) if K else D).astype(dtype)
    s = rng.random(N).astype(dtype) + 0.01 if weighted else None
    got = fastgrad.mse_hessp(A, v, sample_weight=s, alpha=alpha, reduction=reduction, backend=backend)
    ref = _closed_form(A, v, s, alpha, reduction)
    assert got.shape == v.shape
    single = dtype == np.float32 and (s is None or s.dtype == np.float32)
    assert got.dtype == (np.float32 if single else np.float64)
    tol = 2e-5 if single else 1e-11
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * (1 + np.abs(ref).max()),
                               err_msg=f"{backend} {layout} {dtype.__name__}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_hessp_is_the_difference_of_the_gradient(backend, rng):
    # the MSE is quadratic: grad(w + v) - grad(w) = H v exactly (up to rounding), whatever w and y
    A, y = rng.standard_normal((300, 6)), rng.standard_normal((300, 2))
    w, v = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    dg = fastgrad.mse_grad(A, y, w + v, backend="numpy") - fastgrad.mse_grad(A, y, w, backend="numpy")
    np.testing.assert_allclose(fastgrad.mse_hessp(A, v, backend=backend), dg, rtol=1e-10, atol=1e-12)


def test_naive_twins_agree(rng):
    A, v, s = rng.standard_normal((13, 4)), rng.standard_normal((4, 2)), rng.random(13)
    np.testing.assert_allclose(fastgrad.mse_hessp(A, v, sample_weight=s, alpha=0.2),
                               naive.mse_hessp(A, v, s, 0.2), rtol=1e-12)
    np.testing.assert_allclose(fastgrad.mse_hessian(A, sample_weight=s, alpha=0.2, reduction="sum"),
                               naive.mse_hessian(A, s, 0.2, "sum"), rtol=1e-12)


@pytest.mark.parametrize("fmt", ["dense", "F", "float32", "csr", "csc"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hessian_columns_are_hessp_of_unit_vectors(fmt, reduction, rng):
    A = rng.standard_normal((200, 5))
    if fmt == "F":
        A = np.asfortranarray(A)
    elif fmt == "float32":
        A = A.astype(np.float32)
    elif fmt in ("csr", "csc"):
        A = scipy.sparse.csr_matrix(A * (rng.random(A.shape) < 0.5)).asformat(fmt)
    s = rng.random(200)
    H = fastgrad.mse_hessian(A, sample_weight=s, alpha=0.3, reduction=reduction)
    cols = np.stack([fastgrad.mse_hessp(A, e, sample_weight=s, alpha=0.3, reduction=reduction)
                     for e in np.eye(5)], axis=1)
    assert H.shape == (5, 5) and H.dtype == np.float64
    np.testing.assert_allclose(H, H.T, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(H, cols, rtol=1e-10, atol=1e-12)


def test_hessian_float32_result_and_no_weights(rng):
    A = rng.standard_normal((50, 3)).astype(np.float32)
    H = fastgrad.mse_hessian(A)
    assert H.dtype == np.float32
    np.testing.assert_allclose(H, (2 / 50) * (A.T.astype(float) @ A.astype(float)), rtol=1e-6)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("layout", ["C", "F", "reversed", "csr", "csc"])
def test_threads_give_the_same_bits(backend, layout, rng, threads):
    if fastgrad._config._max_threads() < 2:
        pytest.skip("needs 2 threads")
    A = rng.standard_normal((20000, 8))  # several row blocks, above the parallel threshold
    if layout == "F":
        A = np.asfortranarray(A)
    elif layout == "reversed":
        A = A[::-1]
    elif layout in ("csr", "csc"):
        A = scipy.sparse.csr_array(A * (rng.random(A.shape) < 0.5)).asformat(layout)
    v, s = rng.standard_normal((8, 2)), rng.random(20000)
    fastgrad.set_num_threads(1)
    one = fastgrad.mse_hessp(A, v, sample_weight=s, backend=backend)
    fastgrad.set_num_threads(2)
    two = fastgrad.mse_hessp(A, v, sample_weight=s, backend=backend)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, _closed_form(A, v, s), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", COMPILED)
def test_a_is_read_in_place_and_never_written(backend, rng):
    A = np.asfortranarray(rng.standard_normal((3000, 7)))
    A.flags.writeable = False
    before = A.copy()
    got = fastgrad.mse_hessp(A, np.ones(7), backend=backend)
    np.testing.assert_array_equal(A, before)
    np.testing.assert_allclose(got, _closed_form(A, np.ones(7)), rtol=1e-12)


def test_nan_propagates_and_check_finite_raises(rng):
    A = rng.standard_normal((10, 3))
    A[2, 1] = np.nan
    assert np.isnan(fastgrad.mse_hessp(A, np.ones(3))).any()
    with pytest.raises(ValueError, match="A contains NaN"):
        fastgrad.mse_hessp(A, np.ones(3), check_finite=True)


# --- Newton-type optimisers reach the least-squares and ridge solutions ----------------------


@pytest.mark.parametrize("method", ["trust-ncg", "Newton-CG"])
def test_minimize_reaches_lstsq(method, rng):
    A = rng.standard_normal((400, 8))
    y = A @ rng.standard_normal(8) + 0.1 * rng.standard_normal(400)
    res = minimize(lambda w: fastgrad.mse_loss_and_grad(A, y, w, backend="numba"), np.zeros(8), jac=True,
                   hessp=lambda w, p: fastgrad.mse_hessp(A, p), method=method, options={"gtol": 1e-10}
                   if method == "trust-ncg" else {"xtol": 1e-12})
    np.testing.assert_allclose(res.x, np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-7, atol=1e-8)
    _assert_newton_speed(res, method)


def _assert_newton_speed(res, method):
    """The exact Hessian of a quadratic: few steps (with H/2 in its place trust-ncg took 37, Newton-CG 13
    gradients)."""
    if method == "trust-ncg":
        assert res.nit <= 10, res
    else:
        assert res.njev <= 9, res


@pytest.mark.parametrize("method", ["trust-ncg", "Newton-CG"])
def test_minimize_reaches_weighted_ridge(method, rng):
    # loss = sum_i s_i r_i^2 / sum_i s_i + alpha |w|^2:  (A^T S A / sum s + alpha I) w = A^T S y / sum s
    A, y, s, alpha = rng.standard_normal((300, 5)), rng.standard_normal(300), rng.random(300), 0.4

    def loss_and_grad(w):
        r = y - A @ w
        return (s @ r**2) / s.sum() + alpha * w @ w, -2 * A.T @ (s * r) / s.sum() + 2 * alpha * w

    res = minimize(loss_and_grad, np.zeros(5), jac=True, method=method,
                   hessp=lambda w, p: fastgrad.mse_hessp(A, p, sample_weight=s, alpha=alpha),
                   options={"gtol": 1e-10} if method == "trust-ncg" else {"xtol": 1e-12})
    closed = np.linalg.solve(A.T @ (s[:, None] * A) / s.sum() + alpha * np.eye(5), A.T @ (s * y) / s.sum())
    np.testing.assert_allclose(res.x, closed, rtol=1e-6, atol=1e-8)
    _assert_newton_speed(res, method)


# --- bad inputs -----------------------------------------------------------------------------


def test_bad_inputs():
    A = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"A has 3 columns but v has 2 rows \(A \(4, 3\), v \(2,\)\)"):
        fastgrad.mse_hessp(A, np.ones(2))
    with pytest.raises(ValueError, match=r"v must be 1-D \(D,\) or 2-D \(D, K\), shaped like w"):
        fastgrad.mse_hessp(A, np.ones((3, 1, 1)))
    with pytest.raises(ValueError, match=r"A must be 2-D \(N, D\)"):
        fastgrad.mse_hessp(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="A has 0 rows"):
        fastgrad.mse_hessp(np.ones((0, 3)), np.ones(3))
    with pytest.raises(ValueError, match="A has 4 rows but sample_weight has 5 entries"):
        fastgrad.mse_hessp(A, np.ones(3), sample_weight=np.ones(5))
    with pytest.raises(ValueError, match=r"sample_weight must be finite and >= 0; sample_weight\[1\] is -1.0"):
        fastgrad.mse_hessp(A, np.ones(3), sample_weight=np.array([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="sample_weight is 0 for every row"):
        fastgrad.mse_hessian(A, sample_weight=np.zeros(4))
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        fastgrad.mse_hessp(A, np.ones(3), alpha=-1.0)
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum'"):
        fastgrad.mse_hessian(A, reduction="max")
    with pytest.raises(TypeError, match="v is complex"):
        fastgrad.mse_hessp(A, np.ones(3, dtype=complex))
    with pytest.raises(TypeError, match=r"A is a scipy.sparse coo_array in 'coo' format; .* pass A.tocsr\(\)"):
        fastgrad.mse_hessp(scipy.sparse.coo_array(A), np.ones(3))


# --- the low-level API: the Numba kernels inside a user's own @njit code -----------------------


def test_numba_kernels_inside_user_njit(rng):
    from numba import njit

    from fastgrad._numba import mse_hessp as nb_hessp
    from fastgrad._numba import mse_sparse as nb_sparse

    @njit(cache=False)
    def user_hv(A, VT, indptr, indices, data, V, out, out_sparse):
        nb_hessp.mse_hessp(A, VT, None, 1.0 / A.shape[0], 0.0, out)
        nb_sparse.hessp_csr(indptr, indices, data, V, None, 1.0 / A.shape[0], 0.0, out_sparse)

    A = rng.standard_normal((300, 5))
    S = scipy.sparse.csr_array(A * (rng.random(A.shape) < 0.5))
    v = rng.standard_normal(5)
    out, out_sparse = np.empty((5, 1)), np.empty((5, 1))
    user_hv(A, v.reshape(1, 5), S.indptr, S.indices, S.data, v.reshape(5, 1), out, out_sparse)
    np.testing.assert_allclose(out[:, 0], _closed_form(A, v), rtol=1e-12)
    np.testing.assert_allclose(out_sparse[:, 0], _closed_form(S, v), rtol=1e-12)


def test_against_jax_hessian_when_jax_is_installed(rng):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    A, y, s = rng.standard_normal((40, 4)), rng.standard_normal((40, 2)), rng.random(40)

    def loss(w):  # the weighted ridge MSE of two outputs, w flattened (D*K,)
        r = y - A @ w.reshape(4, 2)
        return jnp.sum(s[:, None] * r**2) / (2 * s.sum()) + 0.3 * jnp.sum(w**2)

    H = np.asarray(jax.hessian(loss)(jnp.zeros(8)))
    V = rng.standard_normal((4, 2))
    np.testing.assert_allclose(fastgrad.mse_hessp(A, V, sample_weight=s, alpha=0.3).reshape(-1),
                               H @ V.reshape(-1), rtol=1e-12, atol=1e-12)


# --- the low-level API: the Cython kernels by cimport ------------------------------------------

USER_PYX = """
# cython: language_level=3, boundscheck=False, wraparound=False
from fastgrad._cython.mse_hessp cimport hessp_partials
from fastgrad._cython.mse_sparse cimport csr_hessp_block
import numpy as np

def user_hessp(const double[:, ::1] A, const double[::1] v):
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1]
    G_arr = np.zeros((1, 1, D))
    cdef double[:, :, ::1] G = G_arr
    with nogil:
        hessp_partials(&A[0, 0], D, 1, N, D, &v[0], 1, NULL, N, &G[0, 0, 0], 1, 1)
    return G_arr[0, 0]

def user_csr_hessp(const int[::1] indptr, const int[::1] indices, const double[::1] data,
                   const double[::1] v, Py_ssize_t N):
    cdef Py_ssize_t D = v.shape[0]
    G_arr = np.zeros(D)
    t_arr = np.zeros(1)
    cdef double[::1] G = G_arr
    cdef double[::1] t = t_arr
    cdef int bad = 0
    with nogil:
        csr_hessp_block(&indptr[0], &indices[0], &data[0], &v[0], D, NULL, 1, 0, N, &G[0], &t[0], True, &bad)
    if bad:
        raise ValueError("an index out of range")
    return G_arr
"""


def test_cython_kernels_by_cimport(tmp_path):
    from conftest import run_user_extension

    check = """
    import numpy as np, scipy.sparse
    import user_second_order as u
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 5)); v = rng.standard_normal(5)
    S = scipy.sparse.csr_array(A * (rng.random(A.shape) < 0.5))
    ok = np.allclose(u.user_hessp(A, v), A.T @ (A @ v), rtol=1e-12)
    ok &= np.allclose(u.user_csr_hessp(S.indptr.astype(np.int32), S.indices.astype(np.int32), S.data, v, 300),
                      S.T @ (S @ v), rtol=1e-12)
    print("ok" if ok else "mismatch")
    """
    run_user_extension(tmp_path, "user_second_order", USER_PYX, "mse_hessp.pxd", check)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_plain_call_skips_conversions_and_gives_the_same_bits(backend, rng):
    # C-contiguous float64 A and a 1-D v, no keywords: validation returns views of v, and the
    # result is bit for bit that of the full rules (a 2-D v of one column takes them)
    A, v = rng.standard_normal((300, 7)), rng.standard_normal(7)
    h = _validate.mse_hessp_inputs(A, v, None, 0.0, "mean")
    assert np.shares_memory(h.VT, v) and h.VT.shape == (1, 7) and h.V.shape == (7, 1) and h.s is None
    full = _validate.mse_hessp_inputs(A, v[:, None], None, 0.0, "mean")
    assert (h.scale, h.alpha, h.dtype) == (full.scale, full.alpha, full.dtype) and h.v_shape == (7,)
    np.testing.assert_array_equal(fastgrad.mse_hessp(A, v, backend=backend),
                                  fastgrad.mse_hessp(A, v[:, None], backend=backend)[:, 0])
    with pytest.raises(ValueError, match="A has 7 columns but v has 6 rows"):  # errors: the full rules
        fastgrad.mse_hessp(A, v[:6], backend=backend)
    with pytest.raises(ValueError, match="empty"):
        fastgrad.mse_hessp(A[:0], v, backend=backend)
