"""Tests of the MSE kernels on a scipy.sparse A (family 'mse_sparse') and of its validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from conftest import BACKENDS, COMPILED
from hypothesis import given
from hypothesis import strategies as st

import fastgrad
from fastgrad import _config, _validate

CLASSES = {
    "csr_array": scipy.sparse.csr_array, "csc_array": scipy.sparse.csc_array,
    "csr_matrix": scipy.sparse.csr_matrix, "csc_matrix": scipy.sparse.csc_matrix,
}


def _loss_grad(A, y, w, backend, n_threads=1, sample_weight=None, intercept=None, reduction="mean"):
    """Validate, then run the backend's sparse kernel: ``(loss, grad shaped like w, grad_b or None)``."""
    v = _validate.mse_sparse_inputs(A, y, w, reduction, sample_weight=sample_weight, intercept=intercept)
    k = _config.kernels("mse_sparse", backend)
    D, K = v.W.shape
    out = np.full((D, K), np.nan)
    gb = None if v.b is None else np.full(K, np.nan)
    run = k.csr_loss_grad if v.A.fmt == "csr" else k.csc_loss_grad
    loss = run(v.A.indptr, v.A.indices, v.A.data, v.Y, v.W, v.s, v.b, v.scale, out, gb, n_threads)
    return loss, out.reshape(v.w_shape), gb


def _dense(A, y, w, s=None, b=None, reduction="mean"):
    """The same quantities from ``A.toarray()`` with numpy, float64."""
    Ad = np.asarray(A.toarray(), dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64).reshape(Ad.shape[0], -1)
    W = np.asarray(w, dtype=np.float64).reshape(Ad.shape[1], -1)
    S = np.ones(Ad.shape[0]) if s is None else np.asarray(s, dtype=np.float64)
    R = Y - Ad @ W - (0.0 if b is None else b)
    scale = 1.0 / (W.shape[1] * S.sum()) if reduction == "mean" else 1.0
    return (scale * float(np.sum(S[:, None] * R**2)), (-2 * scale * Ad.T @ (S[:, None] * R)).reshape(np.shape(w)),
            -2 * scale * (S[:, None] * R).sum(axis=0))


def _random_sparse(rng, N, D, density, cls, index_dtype=np.int32, dtype=np.float64):
    A = scipy.sparse.random_array((N, D), density=density, format="csr", rng=rng, dtype=dtype)
    A = CLASSES[cls](A)
    A.indices = A.indices.astype(index_dtype)
    A.indptr = A.indptr.astype(index_dtype)
    return A


@pytest.mark.parametrize("backend", BACKENDS)
@given(N=st.integers(1, 700), D=st.integers(1, 12), K=st.integers(0, 3),
       density=st.sampled_from([0.0, 0.05, 0.3, 1.0]), cls=st.sampled_from(sorted(CLASSES)),
       index_dtype=st.sampled_from([np.int32, np.int64]), dtype=st.sampled_from([np.float32, np.float64]),
       weighted=st.booleans(), intercept=st.booleans(), reduction=st.sampled_from(["mean", "sum"]),
       seed=st.integers(0, 2**16))
def test_loss_grad_matches_the_dense_result(backend, N, D, K, density, cls, index_dtype, dtype, weighted,
                                            intercept, reduction, seed):
    rng = np.random.default_rng(seed)
    A = _random_sparse(rng, N, D, density, cls, index_dtype, dtype)  # density 0: every row and column empty
    w = rng.standard_normal((D, K) if K else D)
    y = rng.standard_normal((N, K) if K else N)
    s = rng.random(N) + 0.01 if weighted else None
    b = rng.standard_normal(max(K, 1)) if intercept else None
    loss, g, gb = _loss_grad(A, y, w, backend, sample_weight=s, intercept=b, reduction=reduction)
    rloss, rg, rgb = _dense(A, y, w, s, b, reduction)
    tol = 1e-11
    assert loss == pytest.approx(rloss, rel=tol, abs=tol)
    np.testing.assert_allclose(g, rg, rtol=tol, atol=tol * (1 + np.abs(rg).max(initial=0)), err_msg=backend)
    if intercept:
        np.testing.assert_allclose(gb, rgb, rtol=tol, atol=tol * (1 + np.abs(rgb).max()))
    else:
        assert gb is None


@pytest.mark.parametrize("backend", BACKENDS)
@given(N=st.integers(1, 300), D=st.integers(45, 90), density=st.sampled_from([0.8, 1.0]),
       index_dtype=st.sampled_from([np.int32, np.int64]), dtype=st.sampled_from([np.float32, np.float64]),
       weighted=st.booleans(), intercept=st.booleans(), seed=st.integers(0, 2**16))
def test_long_rows_checked_in_the_pass_match_the_dense_result(backend, N, D, density, index_dtype, dtype,
                                                               weighted, intercept, seed):
    # 36 or more entries a row and one output: the row loops that check the indices as they read them
    rng = np.random.default_rng(seed)
    A = _random_sparse(rng, N, D, density, "csr_array", index_dtype, dtype)
    assert _config.sparse_checks_in_pass(A.nnz, N, 1)
    w, y = rng.standard_normal(D), rng.standard_normal(N)
    s = rng.random(N) + 0.01 if weighted else None
    b = rng.standard_normal(1) if intercept else None
    loss, g, gb = _loss_grad(A, y, w, backend, 2, sample_weight=s, intercept=b)
    rloss, rg, rgb = _dense(A, y, w, s, b)
    tol = 1e-11
    assert loss == pytest.approx(rloss, rel=tol, abs=tol)
    np.testing.assert_allclose(g, rg, rtol=tol, atol=tol * (1 + np.abs(rg).max()))
    if intercept:
        np.testing.assert_allclose(gb, rgb, rtol=tol, atol=tol * (1 + np.abs(rgb).max()))
    Ad = A.toarray().astype(np.float64)
    S = np.ones(N) if s is None else s
    hv = fastgrad.mse_hessp(A, w, sample_weight=s, backend=backend)
    ref = (2.0 / S.sum()) * Ad.T @ (S * (Ad @ w))
    np.testing.assert_allclose(hv, ref, rtol=1e-11, atol=1e-11 * np.abs(ref).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_rows_with_duplicates_unsorted_and_explicit_zeros_checked_in_the_pass(backend, rng):
    # rows of 60 entries drawn with repetition from 50 columns, in no order, some of them 0: the
    # row loops that check the indices read them as the matrix they describe (duplicates add)
    N, D, per_row = 40, 50, 60
    indices = rng.integers(0, D, size=N * per_row)
    data = rng.standard_normal(N * per_row) * (rng.random(N * per_row) < 0.9)
    A = scipy.sparse.csr_array((data, indices, np.arange(0, N * per_row + 1, per_row)), shape=(N, D))
    assert not A.has_canonical_format and _config.sparse_checks_in_pass(A.nnz, N, 1)
    w, y = rng.standard_normal(D), rng.standard_normal(N)
    loss, g, _ = _loss_grad(A, y, w, backend, 2)
    rloss, rg, _ = _dense(A, y, w)
    assert loss == pytest.approx(rloss, rel=1e-12)
    np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-14 * np.abs(rg).max())
    np.testing.assert_allclose(fastgrad.mse_hessp(A, w, backend=backend),
                               fastgrad.mse_hessp(A.toarray(), w, backend="numpy"), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_empty_rows_and_columns_and_the_scipy_expression(backend, fmt, rng):
    dense = rng.standard_normal((500, 9)) * (rng.random((500, 9)) < 0.3)
    dense[::7] = 0.0   # empty rows
    dense[:, 4] = 0.0  # an empty column
    A = scipy.sparse.csr_array(dense).asformat(fmt)
    w, y = rng.standard_normal(9), rng.standard_normal(500)
    loss, g, _ = _loss_grad(A, y, w, backend)
    np.testing.assert_allclose(g, (2 / 500) * (A.T @ (A @ w - y)), rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(np.mean((y - A @ w) ** 2), rel=1e-12)
    assert g[4] == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("D", [0, 3])
@pytest.mark.parametrize("K", [0, 2])
def test_no_columns_or_no_entries_still_give_the_loss_of_y_minus_b(backend, fmt, D, K, rng):
    """D = 0 or an A with no stored entries: r = y - b, so the loss and the intercept's gradient are not 0."""
    N = 37
    A = scipy.sparse.csr_array((N, D)).asformat(fmt)
    y = rng.standard_normal((N, K) if K else N) + 1.0
    w = rng.standard_normal((D, K) if K else D)
    s = rng.uniform(0.5, 2.0, N)
    b = rng.standard_normal(K) if K else 0.7
    for kw in ({}, {"intercept": b}, {"intercept": b, "sample_weight": s, "reduction": "sum"}):
        got = fastgrad.mse_loss_and_grad(A, y, w, backend=backend, **kw)
        want = fastgrad.mse_loss_and_grad(A.toarray(), y, w, backend="numpy", **kw)
        loss, grads = got[0], got[1] if "intercept" in kw else (got[1], None)
        rloss, rgrads = want[0], want[1] if "intercept" in kw else (want[1], None)
        assert rloss > 0.0
        assert loss == pytest.approx(rloss, rel=1e-12)
        np.testing.assert_allclose(grads[0], rgrads[0], rtol=1e-12, atol=1e-15)
        if grads[1] is not None:
            np.testing.assert_allclose(grads[1], rgrads[1], rtol=1e-12)
        assert fastgrad.mse_loss(A, y, w, backend=backend, **kw) == pytest.approx(rloss, rel=1e-12)
    np.testing.assert_allclose(fastgrad.mse_hessp(A, w, alpha=0.5, backend=backend), 1.0 * w, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_unsorted_indices_duplicates_and_explicit_zeros_are_the_matrix_they_describe(backend, fmt, rng):
    # row/column 0: entries (0, 2) = 1 and (0, 2) = 2 (duplicates add), (0, 0) = 0 explicit, unsorted
    indptr = np.array([0, 3, 5, 5])
    indices = np.array([2, 0, 2, 1, 0])
    data = np.array([1.0, 0.0, 2.0, 4.0, -1.0])
    cls = scipy.sparse.csr_array if fmt == "csr" else scipy.sparse.csc_array
    A = cls((data, indices, indptr), shape=(3, 3))
    assert not A.has_canonical_format
    before = (A.indices.copy(), A.indptr.copy(), A.data.copy())
    w, y = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    loss, g, _ = _loss_grad(A, y, w, backend)
    rloss, rg, _ = _dense(A, y, w)  # toarray() sums the duplicates
    assert loss == pytest.approx(rloss, rel=1e-13)
    np.testing.assert_allclose(g, rg, rtol=1e-13, atol=1e-15)
    for got, want in zip((A.indices, A.indptr, A.data), before, strict=True):
        np.testing.assert_array_equal(got, want)  # nothing sorted or summed in place
    np.testing.assert_allclose(fastgrad.mse_hessp(A, w, backend=backend),
                               fastgrad.mse_hessp(A.toarray(), w, backend="numpy"), rtol=1e-13)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("row_entries", ["short", "long"])  # long: K = 1 checks the indices in the pass
def test_threads_give_the_same_bits(backend, fmt, K, row_entries, rng, threads):
    if fastgrad._config._max_threads() < 2:
        pytest.skip("needs 2 threads")
    D, density = (40, 0.1) if row_entries == "short" else (80, 0.6)
    A = _random_sparse(rng, 30000 if row_entries == "short" else 6000, D, density, fmt + "_array")  # many blocks
    N = A.shape[0]
    assert _config.sparse_checks_in_pass(A.nnz, N, K) == (row_entries == "long" and K == 1)
    w, y, s, b = rng.standard_normal((D, K)), rng.standard_normal((N, K)), rng.random(N), np.ones(K)
    one = _loss_grad(A, y, w, backend, 1, s, b)
    two = _loss_grad(A, y, w, backend, 2, s, b)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[2], two[2])
    other = _loss_grad(A, y, w, "numba" if backend == "cython" else "cython", 2, s, b)
    np.testing.assert_allclose(one[1], other[1], rtol=1e-12, atol=1e-15)


def test_validation_keeps_the_users_arrays(rng):
    A = _random_sparse(rng, 50, 6, 0.3, "csr_matrix", np.int64, np.float32)
    v = _validate.sparse_inputs(A)
    assert v.fmt == "csr" and v.shape == (50, 6)
    assert v.indices is A.indices and v.indptr is A.indptr and v.data is A.data  # no copy
    A.data = A.data.astype(np.int16)
    assert _validate.sparse_inputs(A).data.dtype == np.float64  # other real data: a float64 copy


def test_bad_sparse_inputs():
    A = scipy.sparse.csr_array(np.eye(3))
    with pytest.raises(TypeError, match=r"A is a scipy.sparse lil_array in 'lil' format; .* pass A.tocsr\(\)"):
        _validate.sparse_inputs(scipy.sparse.lil_array(A))
    bad = scipy.sparse.csr_array((np.ones(2), np.array([0, 5]), np.array([0, 1, 2, 2])), shape=(3, 3))
    with pytest.raises(ValueError, match=r"A is a malformed CSR matrix: an index lies outside \[0, 3\)"):
        _validate.sparse_inputs(bad)
    for itype in (np.int32, np.int64):  # a negative index, of either index type, in a CSR or CSC A
        for fmt in (scipy.sparse.csr_array, scipy.sparse.csc_matrix):
            bad = fmt(np.eye(3))
            bad.indices = np.array([0, -1, 2], dtype=itype)
            bad.indptr = bad.indptr.astype(itype)
            kind = "CSR" if bad.format == "csr" else "CSC"
            with pytest.raises(ValueError, match=rf"A is a malformed {kind} matrix: an index lies outside \[0, 3\)"):
                _validate.sparse_inputs(bad)
    bad = scipy.sparse.csr_array(np.eye(3))
    bad.indptr = np.array([0, 2, 1, 3], dtype=bad.indptr.dtype)
    with pytest.raises(ValueError, match="A is a malformed CSR matrix: indptr must rise from 0"):
        _validate.sparse_inputs(bad)
    C = scipy.sparse.csc_array(np.eye(3) * 1j)
    with pytest.raises(TypeError, match="A.data is complex"):
        _validate.sparse_inputs(C)
    with pytest.raises(ValueError, match="A has 3 rows but y has 4"):
        _validate.mse_sparse_inputs(A, np.ones(4), np.ones(3), "mean")
    with pytest.raises(ValueError, match="A contains NaN"):
        _validate.mse_sparse_inputs(A * np.nan, np.ones(3), np.ones(3), "mean", True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("D", "K"), [(100, 1), (100, 3), (6, 1)])  # checked in the kernels' pass or before
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("bad", ["-1", "D", "2**31-1"])
@pytest.mark.parametrize("row", [0, 1000, 2000])  # first row, a row inside a block, the odd row at the end
def test_a_csr_index_out_of_range_is_refused(backend, D, K, index_dtype, bad, row, rng, n_threads):
    # long rows and one output: validation leaves the column indices to the kernels' row loops
    # (sparse_checks_in_pass); every function of the family raises the validation's error, at
    # every thread count, and writes nothing
    N = 2001
    A = _random_sparse(rng, N, D, 0.5, "csr_array", index_dtype)
    assert _config.sparse_checks_in_pass(A.nnz, N, K) == (D == 100 and K == 1)
    A.indices[A.indptr[row] + 1] = {"-1": -1, "D": D, "2**31-1": 2**31 - 1}[bad]  # the row's second entry
    y = rng.standard_normal((N, K))
    w = rng.standard_normal((D, K))
    error = rf"A is a malformed CSR matrix: an index lies outside \[0, {D}\)"
    out = np.full((D, K), 7.0)
    for call in (lambda: fastgrad.mse_grad(A, y, w, out=out, backend=backend),
                 lambda: fastgrad.mse_loss(A, y, w, backend=backend),
                 lambda: fastgrad.mse_loss_and_grad(A, y, w, intercept=np.zeros(K), sample_weight=np.ones(N),
                                                    backend=backend),
                 lambda: fastgrad.mse_hessp(A, w, backend=backend),
                 lambda: fastgrad.mse_hessp(A, w, sample_weight=np.ones(N), alpha=0.5, backend=backend),
                 lambda: fastgrad.mse_hessian(A)):
        with pytest.raises(ValueError, match=error):
            call()
    assert np.all(out == 7.0)
    v = _validate.mse_sparse_inputs(A, y, w, "mean") if (D == 100 and K == 1) else None
    if v is not None:  # the kernel alone (the protocol) raises it: validation passed it on
        with pytest.raises(ValueError, match=error):
            _config.kernels("mse_sparse", backend).csr_loss_grad(
                v.A.indptr, v.A.indices, v.A.data, v.Y, v.W, None, None, v.scale, out, None, n_threads)
        assert np.all(out == 7.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_entries_past_the_last_row_are_not_read_or_checked(backend, rng):
    # indptr[-1] < nnz: the stored entries past it belong to no row, so their indices are not checked
    A = _random_sparse(rng, 40, 5, 0.5, "csr_array")
    indices = np.concatenate([A.indices, [99]]).astype(A.indices.dtype)
    data = np.concatenate([A.data, [1.0]])
    B = scipy.sparse.csr_array((data, indices, A.indptr), shape=A.shape)
    B.indices, B.data = indices, data  # scipy keeps the unused tail as given
    y, w = rng.standard_normal(40), rng.standard_normal(5)
    np.testing.assert_array_equal(fastgrad.mse_grad(B, y, w, backend=backend),
                                  fastgrad.mse_grad(A, y, w, backend=backend))
    np.testing.assert_array_equal(fastgrad.mse_hessp(B, w, backend=backend),
                                  fastgrad.mse_hessp(A, w, backend=backend))


def test_no_columns_but_entries_is_refused():
    A = scipy.sparse.csr_array((np.ones(1), np.array([0], dtype=np.int32), np.array([0, 1, 1], dtype=np.int32)),
                               shape=(2, 1))
    A._shape = (2, 0)  # a CSR A of no columns with one entry (only a hand-made one has this)
    with pytest.raises(ValueError, match=r"an index lies outside \[0, 0\)"):
        _validate.mse_sparse_inputs(A, np.ones(2), np.ones(0), "mean")


@pytest.mark.parametrize("backend", COMPILED)
def test_wide_a_keeps_the_partials_small_and_the_bits(backend, rng, threads):
    # D = 2 * 10^6: one (D, 1) partial is 16 MB, so the 3000 rows go in blocks of 1500 (two partials)
    N, D = 3000, 2 * 10**6
    assert _config.sparse_row_blocks(N, D, 1) == 1500
    assert _config.sparse_row_blocks(N, 10, 1) == _config.row_blocks(N)
    cols = rng.integers(0, D, size=N * 5)
    A = scipy.sparse.csr_array((rng.standard_normal(N * 5), (np.repeat(np.arange(N), 5), cols)), shape=(N, D))
    w, y = rng.standard_normal(D), rng.standard_normal(N)
    one = _loss_grad(A, y, w, backend, 1)
    two = _loss_grad(A, y, w, backend, 2)
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_allclose(one[1], (2 / N) * (A.T @ (A @ w - y)), rtol=1e-12, atol=1e-15)
    h = fastgrad.mse_hessp(A, w, backend=backend)
    np.testing.assert_allclose(h, (2 / N) * (A.T @ (A @ w)), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# The public functions and MSEObjective with a sparse A


@pytest.mark.parametrize("cls", sorted(CLASSES))
@pytest.mark.parametrize("backend", fastgrad.available_backends())
@pytest.mark.parametrize("K", [0, 3])
def test_public_functions_take_sparse_a(cls, backend, K):
    """mse_loss / mse_grad / mse_loss_and_grad / MSEObjective on a sparse A equal the dense results."""
    rng = np.random.default_rng(7 + K)
    N, D = 300, 12
    A = CLASSES[cls](scipy.sparse.random_array((N, D), density=0.2, format="csr", rng=rng))
    Ad = A.toarray()
    y = rng.standard_normal((N, K) if K else N)
    w = rng.standard_normal((D, K) if K else D)
    s = rng.uniform(0.5, 2.0, N)
    b = rng.standard_normal(K) if K else 0.7
    kw = dict(sample_weight=s, intercept=b, alpha=0.3, backend=backend)
    loss, (gw, gb) = fastgrad.mse_loss_and_grad(A, y, w, **kw)
    rloss, (rgw, rgb) = fastgrad.mse_loss_and_grad(Ad, y, w, **{**kw, "backend": "numpy"})
    np.testing.assert_allclose(loss, rloss, rtol=1e-12)
    np.testing.assert_allclose(gw, rgw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, rgb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fastgrad.mse_loss(A, y, w, backend=backend),
                               fastgrad.mse_loss(Ad, y, w, backend="numpy"), rtol=1e-12)
    np.testing.assert_allclose(fastgrad.mse_grad(A, y, w, backend=backend),
                               fastgrad.mse_grad(Ad, y, w, backend="numpy"), rtol=1e-10, atol=1e-12)
    obj = fastgrad.MSEObjective(A, y, sample_weight=s, alpha=0.3, fit_intercept=True, backend=backend)
    ref = fastgrad.MSEObjective(Ad, y, sample_weight=s, alpha=0.3, fit_intercept=True, backend="numpy")
    coef = rng.standard_normal(obj.n_coef)
    p = rng.standard_normal(obj.n_coef)
    np.testing.assert_allclose(obj.loss(coef), ref.loss(coef), rtol=1e-12)
    np.testing.assert_allclose(obj.grad(coef), ref.grad(coef), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(obj.hessp(coef, p), ref.hessp(coef, p), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(obj.hess(coef), ref.hess(coef), rtol=1e-10, atol=1e-12)


def test_a_sparse_pass_counts_its_entries_as_more_work_than_dense_elements(monkeypatch):
    # 5*10^4 stored entries (CSR (10^4, 100) at 5%): serially twice the time on two threads,
    # so the pass goes parallel although the entries alone are below PARALLEL_MIN_WORK
    monkeypatch.setattr(_config, "get_num_threads", lambda: 2)
    assert 5 * 10**4 < _config.PARALLEL_MIN_WORK
    assert _config.sparse_threads(5 * 10**4, 10**4, 1) == 2
    assert _config.sparse_threads(1000, 100, 1) == 1  # a small one stays serial
    assert _config.sparse_threads(10, 10**6, 1) == 2  # the rows are work too (the residuals)
