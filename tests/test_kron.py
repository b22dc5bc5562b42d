"""kron, vec/unvec, jacobian_Wx, jacobian_AXB, KronOperator, matmul_jacobian (seeds 001 and 003)."""

from __future__ import annotations

import resource
import time
import tracemalloc

import naive
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import BACKENDS, COMPILED, variants
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse.linalg import LinearOperator

import fastgrad
from fastgrad import _config

DTYPES = [np.float64, np.float32]
dims = st.integers(0, 7)
pos = st.integers(1, 7)


def operand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------
# kron


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    sa=st.one_of(st.tuples(pos), st.tuples(dims, dims)), sb=st.one_of(st.tuples(pos), st.tuples(dims, dims)),
    da=st.sampled_from(DTYPES), db=st.sampled_from(DTYPES), ta=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_kron_equals_np_kron(backend, sa, sb, da, db, ta, seed):
    rng = np.random.default_rng(seed)
    A = operand(rng, sa, da)
    B = operand(rng, sb, db)
    if ta and A.ndim == 2:
        A = A.T  # a transposed (F-ordered) view
    ref = np.kron(A, B)
    got = fastgrad.kron(A, B, backend=backend)
    assert got.dtype == ref.dtype  # float32 only when both are
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)  # one rounding per element, as np.kron


@pytest.mark.parametrize("backend", BACKENDS)
@given(m=pos, n=pos, p=pos, q=pos, seed=st.integers(0, 2**32 - 1))
def test_kron_matches_naive_twin(backend, m, n, p, q, seed):
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((m, n)), rng.standard_normal((p, q))
    twin = naive.kron(A, B)
    np.testing.assert_array_equal(fastgrad.kron(A, B, backend=backend), twin)
    np.testing.assert_array_equal(fastgrad.kron(A[0], B[0], backend=backend), naive.kron(A[0], B[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kron_hostile_layouts_not_mutated(backend, dtype, rng, tmp_path):
    A0 = operand(rng, (5, 4), dtype)
    B0 = operand(rng, (3, 6), dtype)
    ref = np.kron(A0, B0)
    for (la, A), (lb, B) in zip(variants(A0, tmp_path), variants(B0, tmp_path), strict=True):
        before = (A.copy(), B.copy())
        got = fastgrad.kron(A, B, backend=backend)
        np.testing.assert_array_equal(got, ref, err_msg=f"{la}/{lb}")
        np.testing.assert_array_equal(A, before[0])
        np.testing.assert_array_equal(B, before[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_kron_out_is_used(backend, dtype, rng):
    A, B = operand(rng, (4, 3), dtype), operand(rng, (2, 5), dtype)
    out = np.full((8, 15), np.nan, dtype=dtype)
    res = fastgrad.kron(A, B, out=out, backend=backend)
    assert res is out
    np.testing.assert_array_equal(out, np.kron(A, B))
    # a strided / transposed out
    big = np.full((15, 16), np.nan, dtype=dtype)
    view = big[:, ::2].T
    assert np.shares_memory(fastgrad.kron(A, B, out=view, backend=backend), big)
    np.testing.assert_array_equal(view, np.kron(A, B))
    # negative strides
    rev = np.full((8, 15), np.nan, dtype=dtype)[::-1, ::-1]
    fastgrad.kron(A, B, out=rev, backend=backend)
    np.testing.assert_array_equal(rev, np.kron(A, B))
    # 1-D result
    out1 = np.empty(12, dtype=dtype)
    fastgrad.kron(A[0], B[0, :4], out=out1, backend=backend)
    np.testing.assert_array_equal(out1, np.kron(A[0], B[0, :4]))


def test_kron_out_aliasing_an_operand(backend):
    # out overlaps A: the operands must be read before they are overwritten
    buf = np.zeros((4, 4))
    buf[:2, :2] = [[1.0, 2.0], [3.0, 4.0]]
    A = buf[:2, :2]
    B = np.array([[1.0, 10.0], [100.0, 1000.0]])
    ref = np.kron(A, B)
    fastgrad.kron(A, B, out=buf, backend=backend)
    np.testing.assert_array_equal(buf, ref)


def test_kron_mixed_and_converted_dtypes(backend):
    A = np.array([[1, 2]], dtype=np.int64)
    B = np.array([[0.5]], dtype=np.float32)
    got = fastgrad.kron(A, B, backend=backend)
    assert got.dtype == np.float64
    assert got.tolist() == [[0.5, 1.0]]
    assert fastgrad.kron(np.ones(2, np.float32), np.ones(2, np.float32), backend=backend).dtype == np.float32


def test_kron_nan_propagates(backend):
    got = fastgrad.kron([[np.nan, 1.0]], [[2.0, np.inf]], backend=backend)
    np.testing.assert_array_equal(got, np.kron([[np.nan, 1.0]], [[2.0, np.inf]]))


def test_kron_bad_input(backend):
    with pytest.raises(ValueError, match=r"A must be 1-D or 2-D, got an array of shape \(2, 2, 2\)"):
        fastgrad.kron(np.ones((2, 2, 2)), np.ones(2), backend=backend)
    with pytest.raises(TypeError, match="B is complex"):
        fastgrad.kron(np.ones(2), np.ones(2, complex), backend=backend)
    with pytest.raises(ValueError, match=r"out has shape \(3, 4\) but the result has shape \(4, 4\)"):
        fastgrad.kron(np.ones((2, 2)), np.ones((2, 2)), out=np.empty((3, 4)), backend=backend)
    with pytest.raises(TypeError, match="out has dtype float32 but the result has dtype float64"):
        fastgrad.kron(np.ones((2, 2)), np.ones((2, 2)), out=np.empty((4, 4), np.float32), backend=backend)
    ro = np.empty((4, 4))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fastgrad.kron(np.ones((2, 2)), np.ones((2, 2)), out=ro, backend=backend)


def _max_threads():
    import numba

    return numba.config.NUMBA_NUM_THREADS


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kron_parallel_paths_bitwise_equal_across_threads(compiled_backend, dtype, n_threads, rng, threads,
                                                          monkeypatch):
    if n_threads > _max_threads():
        pytest.skip(f"Numba runs at most {_max_threads()} threads here")
    monkeypatch.setattr(_config, "FILL_PARALLEL_MIN", 0)  # force the parallel kernels
    A, B = operand(rng, (13, 7), dtype), operand(rng, (9, 11), dtype).T
    x = operand(rng, 9, dtype)

    def results(n):
        fastgrad.set_num_threads(n)
        return (
            fastgrad.kron(A, B, backend=compiled_backend),
            fastgrad.jacobian_Wx(x, 17, order="F", backend=compiled_backend),
            fastgrad.jacobian_Wx(x, 17, order="C", backend=compiled_backend),
            fastgrad.jacobian_AXB(A, B, format="csr", backend=compiled_backend).toarray(),
        )

    serial, got = results(1), results(n_threads)
    np.testing.assert_array_equal(serial[0], np.kron(A, B))
    np.testing.assert_array_equal(serial[1], naive.jacobian_Wx(x, 17, "F").astype(dtype))
    np.testing.assert_array_equal(serial[2], naive.jacobian_Wx(x, 17, "C").astype(dtype))
    np.testing.assert_array_equal(serial[3], np.kron(B.T, A))
    for g, ref in zip(got, serial, strict=True):
        assert g.tobytes() == ref.tobytes()


def test_numba_and_cython_agree(rng):
    if "cython" not in COMPILED:
        pytest.skip("cython backend not built")
    A, B = rng.standard_normal((20, 30)), rng.standard_normal((40, 10)).T
    np.testing.assert_array_equal(fastgrad.kron(A, B, backend="numba"), fastgrad.kron(A, B, backend="cython"))
    x = rng.standard_normal(6)
    for fmt in ("dense", "csr"):
        a = fastgrad.jacobian_Wx(x, 5, format=fmt, backend="numba")
        c = fastgrad.jacobian_Wx(x, 5, format=fmt, backend="cython")
        np.testing.assert_array_equal(a.toarray() if fmt == "csr" else a, c.toarray() if fmt == "csr" else c)


def test_kron_parallel_path_taken_above_threshold(backend, rng, threads, monkeypatch):
    # outputs at or above FILL_PARALLEL_MIN go to the kernel with every thread, smaller ones with one
    fastgrad.set_num_threads(min(2, _max_threads()))
    n = fastgrad.get_num_threads()
    impl = _config.kernels("kron", backend)
    calls = []

    def spy(f, label):
        return lambda *a: (calls.append(label), f(*a))[1]

    f = impl.kron
    monkeypatch.setattr(impl, "kron", lambda A, B, out, n_threads: (calls.append(n_threads),
                                                                    f(A, B, out, n_threads))[1])
    expect = [1, n]
    if backend == "numba":  # one thread runs the serial target, more the parallel one
        for name in ("kron_fill", "kron_fill_parallel"):
            monkeypatch.setattr(impl, name, spy(getattr(impl, name), name))
        expect = [1, "kron_fill", n, "kron_fill_parallel" if n > 1 else "kron_fill"]
    A, B = rng.standard_normal((6, 5)), rng.standard_normal((4, 7))
    monkeypatch.setattr(_config, "FILL_PARALLEL_MIN", 6 * 5 * 4 * 7 + 1)
    np.testing.assert_array_equal(fastgrad.kron(A, B, backend=backend), np.kron(A, B))
    monkeypatch.setattr(_config, "FILL_PARALLEL_MIN", 6 * 5 * 4 * 7)
    np.testing.assert_array_equal(fastgrad.kron(A, B, backend=backend), np.kron(A, B))
    assert calls == expect


# ---------------------------------------------------------------------------
# vec / unvec


@given(m=dims, n=dims, order=st.sampled_from(["F", "C"]), seed=st.integers(0, 2**32 - 1))
def test_vec_unvec_roundtrip_and_index(m, n, order, seed):
    X = np.random.default_rng(seed).standard_normal((m, n))
    v = fastgrad.vec(X, order=order)
    assert v.shape == (m * n,)
    for a in range(m):
        for b in range(n):
            assert v[naive.vec_index(a, b, (m, n), order)] == X[a, b]
    np.testing.assert_array_equal(fastgrad.unvec(v, (m, n), order=order), X)


def test_vec_default_is_column_stacking():
    X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert fastgrad.vec(X).tolist() == [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    assert fastgrad.unvec([1.0, 4.0, 2.0, 5.0, 3.0, 6.0], (2, 3)).tolist() == X.tolist()


def test_vec_unvec_bad_input():
    with pytest.raises(ValueError, match=r"v has length 5 but shape \(2, 3\) needs 6 elements"):
        fastgrad.unvec(np.ones(5), (2, 3))
    with pytest.raises(ValueError, match=r"order must be one of 'F', 'C'; got 'A'"):
        fastgrad.vec(np.ones((2, 2)), order="A")
    with pytest.raises(ValueError, match=r"order must be one of 'F', 'C'; got 'K'"):
        fastgrad.unvec(np.ones(4), (2, 2), order="K")
    with pytest.raises(ValueError, match=r"v must be 1-D, got an array of shape \(2, 2\)"):
        fastgrad.unvec(np.ones((2, 2)), (4,))
    with pytest.raises(TypeError, match="X is complex"):
        fastgrad.vec(np.ones(2, complex))
    with pytest.raises(TypeError, match="shape must be an int or a tuple of ints"):
        fastgrad.unvec(np.ones(4), (2.0, 2))


# ---------------------------------------------------------------------------
# jacobian_Wx


def _dense(J):
    if sp.issparse(J):
        return J.toarray()
    if isinstance(J, LinearOperator):
        return J @ np.eye(J.shape[1], dtype=J.dtype)
    return J


@pytest.mark.parametrize("backend", BACKENDS)
@given(n=pos, m=pos, order=st.sampled_from(["F", "C"]), fmt=st.sampled_from(["dense", "csr", "operator"]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_jacobian_Wx_closed_form(backend, n, m, order, fmt, dtype, seed):
    x = np.random.default_rng(seed).standard_normal(m).astype(dtype)
    twin = naive.jacobian_Wx(x, n, order)
    eye = np.eye(n)
    closed = np.kron(eye, x[None]) if order == "C" else np.kron(x[None], eye)  # I ⊗ xᵀ / xᵀ ⊗ I
    np.testing.assert_array_equal(twin, closed)
    J = fastgrad.jacobian_Wx(x, n, order=order, format=fmt, backend=backend)
    assert J.shape == (n, n * m)
    assert J.dtype == dtype
    if fmt == "csr":
        assert isinstance(J, sp.csr_array)
        assert J.nnz == n * m == np.count_nonzero(twin)  # random x has no zeros
    np.testing.assert_allclose(_dense(J), twin, rtol=1e-6 if dtype == np.float32 else 0)


@pytest.mark.parametrize("order", ["F", "C"])
def test_jacobian_Wx_against_numerical_jacobian(order, backend, rng):
    n, m = 4, 3
    x = rng.standard_normal(m)
    W = rng.standard_normal((n, m))
    num = naive.numjac(lambda v: fastgrad.unvec(v, (n, m), order=order) @ x, fastgrad.vec(W, order=order))
    np.testing.assert_allclose(fastgrad.jacobian_Wx(x, n, order=order, backend=backend), num, atol=1e-8)
    # the other order's Jacobian does not fit: the test tells the orders apart
    other = "C" if order == "F" else "F"
    assert not np.allclose(fastgrad.jacobian_Wx(x, n, order=other), num, atol=1e-3)


def test_jacobian_Wx_csr_structure_and_explicit_zeros(backend):
    x = np.array([1.0, 0.0, 2.0])
    J = fastgrad.jacobian_Wx(x, 4, format="csr", backend=backend)
    assert J.nnz == 4 * 2 == np.count_nonzero(J.toarray())  # only the structural nonzeros
    assert J.has_sorted_indices
    np.testing.assert_array_equal(J.toarray(), naive.jacobian_Wx(x, 4))
    Jc = fastgrad.jacobian_Wx(x.reshape(3, 1), 4, order="C", format="csr", backend=backend)  # column x
    np.testing.assert_array_equal(Jc.toarray(), naive.jacobian_Wx(x, 4, "C"))


def test_jacobian_Wx_bad_input():
    with pytest.raises(ValueError, match=r"format must be one of 'dense', 'csr', 'operator'; got 'coo'"):
        fastgrad.jacobian_Wx(np.ones(3), 2, format="coo")
    with pytest.raises(ValueError, match=r"order must be one of 'F', 'C'; got 'c'"):
        fastgrad.jacobian_Wx(np.ones(3), 2, order="c")
    with pytest.raises(ValueError, match=r"x must be 1-D \(m,\) or a column \(m, 1\), got an array of shape"):
        fastgrad.jacobian_Wx(np.ones((3, 2)), 2)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        fastgrad.jacobian_Wx(np.ones(3), 0)
    with pytest.raises(TypeError, match="x is complex"):
        fastgrad.jacobian_Wx(np.ones(3, complex), 2)


# ---------------------------------------------------------------------------
# jacobian_AXB


@pytest.mark.parametrize("backend", BACKENDS)
@given(p=pos, m=pos, n=pos, q=pos, order=st.sampled_from(["F", "C"]),
       fmt=st.sampled_from(["dense", "csr", "operator"]), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1))
def test_jacobian_AXB_closed_form(backend, p, m, n, q, order, fmt, dtype, seed):
    rng = np.random.default_rng(seed)
    A, B = operand(rng, (p, m), dtype), operand(rng, (n, q), dtype)
    twin = naive.jacobian_AXB(A, B, order)
    closed = np.kron(A, B.T) if order == "C" else np.kron(B.T, A)
    np.testing.assert_allclose(twin, closed, rtol=1e-6 if dtype == np.float32 else 1e-15)
    J = fastgrad.jacobian_AXB(A, B, order=order, format=fmt, backend=backend)
    assert J.shape == (p * q, m * n)
    assert J.dtype == dtype
    if fmt == "csr":
        assert J.nnz == np.count_nonzero(closed)
    if fmt == "dense":
        np.testing.assert_array_equal(J, closed)
    else:
        np.testing.assert_allclose(_dense(J), closed, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                   atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("fmt", ["dense", "csr", "operator"])
@pytest.mark.parametrize("order", ["F", "C"])
def test_jacobian_AXB_against_numerical_jacobian(order, fmt, backend, rng):
    A, B = rng.standard_normal((2, 3)), rng.standard_normal((4, 5))
    X = rng.standard_normal((3, 4))

    def f(v):
        return fastgrad.vec(A @ fastgrad.unvec(v, (3, 4), order=order) @ B, order=order)

    num = naive.numjac(f, fastgrad.vec(X, order=order))
    J = fastgrad.jacobian_AXB(A, B, order=order, format=fmt, backend=backend)
    np.testing.assert_allclose(_dense(J), num, atol=1e-8)
    # the Cookbook form: vec(A X B) = (Bᵀ ⊗ A) vec(X)
    np.testing.assert_allclose(fastgrad.jacobian_AXB(A, B, order=order) @ fastgrad.vec(X, order=order),
                               fastgrad.vec(A @ X @ B, order=order))


def test_jacobian_AXB_csr_identity_factor_is_sparse(backend, rng):
    # A = I: Bᵀ ⊗ I has nnz(B) * n nonzeros, built without a dense intermediate
    B = rng.standard_normal((4, 3))
    B[1, 2] = 0.0
    J = fastgrad.jacobian_AXB(np.eye(5), B, format="csr", backend=backend)
    assert J.nnz == 5 * 11 == np.count_nonzero(np.kron(B.T, np.eye(5)))
    np.testing.assert_array_equal(J.toarray(), np.kron(B.T, np.eye(5)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kron_csr_rows_of_zero_one_and_many_entries(compiled_backend, n_threads, dtype, rng):
    # Q = A (order F: Bᵀ ⊗ A) with rows of 0, 1 and several stored entries, values not 1: the
    # kernels' one-entry rows (no inner loop) and their general rows in one call, at every thread count
    A = operand(rng, (6, 7), dtype)
    A[0] = 0.0
    A[1, 1:] = 0.0
    A[3, :6] = 0.0
    A[4, 2:5] = 0.0
    B = operand(rng, (7, 5), dtype)
    B[2, 1] = 0.0
    J = fastgrad.jacobian_AXB(A, B, format="csr", backend=compiled_backend)
    P, Q = sp.csr_array(B.T), sp.csr_array(A)
    ref = sp.kron(P, Q, format="csr")
    assert J.dtype == dtype and J.nnz == ref.nnz == np.count_nonzero(A) * np.count_nonzero(B)
    np.testing.assert_array_equal(J.indptr, ref.indptr)
    np.testing.assert_array_equal(J.indices, ref.indices)
    np.testing.assert_array_equal(J.toarray(), np.kron(B.T, A))
    # the protocol itself at n_threads (the public call is too small to go parallel)
    i32 = np.int32
    indptr, indices, data = np.full(31, -1, i32), np.full(ref.nnz, -1, i32), np.full(ref.nnz, np.nan, dtype)
    _config.kernels("kron", compiled_backend).kron_csr(
        P.indptr.astype(i32), P.indices.astype(i32), P.data, Q.indptr.astype(i32), Q.indices.astype(i32),
        Q.data, 7, indptr, indices, data, n_threads)
    np.testing.assert_array_equal(indptr, J.indptr)
    np.testing.assert_array_equal(indices, J.indices)
    assert data.tobytes() == J.data.tobytes()


def test_jacobian_AXB_bad_input():
    with pytest.raises(ValueError, match=r"B must be 2-D, got an array of shape \(3,\)"):
        fastgrad.jacobian_AXB(np.ones((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"format must be one of 'dense', 'csr', 'operator'; got 'CSR'"):
        fastgrad.jacobian_AXB(np.ones((2, 2)), np.ones((2, 2)), format="CSR")
    with pytest.raises(TypeError, match="A is complex"):
        fastgrad.jacobian_AXB(np.ones((2, 2), complex), np.ones((2, 2)))


# ---------------------------------------------------------------------------
# KronOperator


@given(mA=pos, nA=pos, mB=pos, nB=pos, K=st.integers(1, 4), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1))
def test_kron_operator_products_equal_dense(mA, nA, mB, nB, K, dtype, seed):
    rng = np.random.default_rng(seed)
    A, B = operand(rng, (mA, nA), dtype), operand(rng, (mB, nB), dtype)
    D = np.kron(A.astype(np.float64), B.astype(np.float64))
    op = fastgrad.KronOperator(A, B)
    assert op.shape == D.shape and op.dtype == dtype
    x, y = rng.standard_normal(nA * nB), rng.standard_normal(mA * mB)
    X, Y = rng.standard_normal((nA * nB, K)), rng.standard_normal((mA * mB, K))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.matvec(x), D @ x, **tol)
    np.testing.assert_allclose(op.rmatvec(y), D.T @ y, **tol)
    np.testing.assert_allclose(op.matmat(X), D @ X, **tol)
    np.testing.assert_allclose(op.rmatmat(Y), D.T @ Y, **tol)
    np.testing.assert_allclose(op @ x, D @ x, **tol)
    np.testing.assert_allclose(op.H @ y, D.T @ y, **tol)
    np.testing.assert_allclose(op.T @ Y, D.T @ Y, **tol)
    np.testing.assert_array_equal(op.todense(), np.kron(A, B))
    np.testing.assert_array_equal(op.T.todense(), np.kron(A, B).T)
    assert op.todense().dtype == dtype


def test_kron_operator_vec_trick_column_stacking(rng):
    # the textbook identity (A ⊗ B) vec(X) = vec(B X Aᵀ) with the column-stacking vec
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((5, 2))
    X = rng.standard_normal((2, 4))
    op = fastgrad.KronOperator(A, B)
    # numpy's C ravel reverses the roles: (A ⊗ B) X'.ravel() = (A X' Bᵀ).ravel(), X' = Xᵀ
    np.testing.assert_allclose(op @ fastgrad.vec(X.T, order="C"), fastgrad.vec(A @ X.T @ B.T, order="C"))
    np.testing.assert_allclose(op @ fastgrad.vec(X), fastgrad.vec(B @ X @ A.T))


def test_kron_operator_sparse_factor_and_scipy_solvers(rng):
    from scipy.sparse.linalg import cg

    A = rng.standard_normal((4, 4))
    A = A @ A.T + 4 * np.eye(4)
    op = fastgrad.KronOperator(A, sp.identity(3, format="csr"))
    b = rng.standard_normal(12)
    x, info = cg(op, b, rtol=1e-12, atol=0.0)
    assert info == 0
    np.testing.assert_allclose(np.kron(A, np.eye(3)) @ x, b, atol=1e-8)
    assert "KronOperator" in repr(op)


def test_kron_operator_bad_input():
    with pytest.raises(ValueError, match=r"A must be 2-D, got an array of shape \(3,\)"):
        fastgrad.KronOperator(np.ones(3), np.ones((2, 2)))
    with pytest.raises(TypeError, match="B is complex"):
        fastgrad.KronOperator(np.ones((2, 2)), np.ones((2, 2), complex))
    op = fastgrad.KronOperator(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError):
        op.matvec(np.ones(5))


@pytest.mark.slow
def test_kron_operator_2000x2000_factors_never_forms_the_product():
    # A ⊗ B would be 4e6 x 4e6 (128 TB); a matvec must take O(size of A, B, x) memory
    n = 2000
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n))
    B = rng.standard_normal((n, n))
    x = rng.standard_normal(n * n)
    op = fastgrad.KronOperator(A, B)
    tracemalloc.start()
    t0 = time.perf_counter()
    y = op @ x
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert y.shape == (n * n,)
    assert peak < 200 * 2**20, peak  # three n×n temporaries at most (~96 MB)
    assert elapsed < 60
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 8 * 2**20  # KiB: < 8 GB
    X = x.reshape(n, n)
    for r in (0, 12345, n * n - 1):  # y[i n + k] = A[i] · X · B[k]
        i, k = divmod(r, n)
        np.testing.assert_allclose(y[r], A[i] @ X @ B[k], rtol=1e-9)


# ---------------------------------------------------------------------------
# matmul_jacobian


@pytest.mark.parametrize("backend", BACKENDS)
@given(k=st.integers(1, 4), wrt=st.integers(0, 3), dims_=st.lists(pos, min_size=5, max_size=5),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_matmul_jacobian_matches_twin(backend, k, wrt, dims_, dtype, seed):
    rng = np.random.default_rng(seed)
    wrt = wrt % k
    mats = [operand(rng, (dims_[t], dims_[t + 1]), dtype) for t in range(k)]
    twin = naive.matmul_jacobian(mats, wrt)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    J = fastgrad.matmul_jacobian(*mats, wrt=wrt, backend=backend)
    assert J.dtype == dtype
    assert J.shape == (dims_[0], dims_[k], *mats[wrt].shape)
    np.testing.assert_allclose(J, twin, rtol=tol, atol=tol)
    p, q = J.shape[:2]
    r, s = mats[wrt].shape
    np.testing.assert_array_equal(fastgrad.matmul_jacobian(*mats, wrt=wrt, flatten=True, order="C",
                                                           backend=backend), J.reshape(p * q, r * s))
    JF = fastgrad.matmul_jacobian(*mats, wrt=wrt, flatten=True, order="F", backend=backend)
    np.testing.assert_array_equal(JF, J.transpose(1, 0, 3, 2).reshape(q * p, s * r))
    # 'F' is the default of every function that flattens
    np.testing.assert_array_equal(fastgrad.matmul_jacobian(*mats, wrt=wrt, flatten=True, backend=backend), JF)


def test_matmul_jacobian_against_numerical_jacobian(rng):
    mats = [rng.standard_normal(s) for s in ((2, 3), (3, 4), (4, 2), (2, 3))]
    for wrt in range(4):
        def f(M, wrt=wrt):
            ms = list(mats)
            ms[wrt] = M
            return np.linalg.multi_dot(ms)

        num = naive.numjac(f, mats[wrt])
        np.testing.assert_allclose(fastgrad.matmul_jacobian(*mats, wrt=wrt), num, atol=1e-8)
        for order in ("F", "C"):
            r, s = mats[wrt].shape
            flat = naive.numjac(lambda v, order=order, f=f, r=r, s=s:
                                fastgrad.vec(f(fastgrad.unvec(v, (r, s), order=order)), order=order),
                                fastgrad.vec(mats[wrt], order=order))
            np.testing.assert_allclose(fastgrad.matmul_jacobian(*mats, wrt=wrt, flatten=True, order=order),
                                       flat, atol=1e-8)


def test_matmul_jacobian_seed_003_example_and_slip(rng):
    # seed 003: L2 = w1 (w0 L0), w1 (4, 5), w0 (5, 3), L0 (3, 1); wrt w0 it is J = w1_ia L0_bj
    w1, w0, L0 = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal((3, 1))
    J = fastgrad.matmul_jacobian(w1, w0, L0, wrt=1)
    assert J.shape == (4, 1, 5, 3)
    np.testing.assert_allclose(J, np.einsum("ia,bj->ijab", w1, L0), rtol=1e-14)
    # seed 003's answer: Q = x (y P), ∂q_ij/∂x_ab. Correct: δ_ia (yP)_bj; the slip: δ_ia Σ_t y_bt p_tb.
    x, y, P = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((4, 3))
    J = fastgrad.matmul_jacobian(x, y, P, wrt=0)
    yP = y @ P
    correct = np.einsum("ia,bj->ijab", np.eye(2), yP)
    slip = np.einsum("ia,b,j->ijab", np.eye(2), np.diagonal(yP), np.ones(3))  # Σ_t y_bt p_tb = (yP)_bb
    np.testing.assert_allclose(J, correct, rtol=1e-14)
    assert not np.allclose(J, slip)
    num = naive.numjac(lambda M: M @ y @ P, x)
    np.testing.assert_allclose(num, correct, atol=1e-8)


def test_matmul_jacobian_bad_input():
    with pytest.raises(ValueError, match=r"mats\[0\] has 3 columns but mats\[1\] has 4 rows "
                                         r"\(mats\[0\] \(2, 3\), mats\[1\] \(4, 2\)\)"):
        fastgrad.matmul_jacobian(np.ones((2, 3)), np.ones((4, 2)), wrt=0)
    with pytest.raises(ValueError, match=r"wrt must be in \[-2, 1\] for 2 matrices, got 2"):
        fastgrad.matmul_jacobian(np.ones((2, 3)), np.ones((3, 2)), wrt=2)
    with pytest.raises(ValueError, match=r"order must be one of 'F', 'C'; got 'X'"):
        fastgrad.matmul_jacobian(np.ones((2, 3)), wrt=0, flatten=True, order="X")
    with pytest.raises(ValueError, match="at least one matrix"):
        fastgrad.matmul_jacobian(wrt=0)
    with pytest.raises(TypeError, match="mats\\[1\\] is complex"):
        fastgrad.matmul_jacobian(np.ones((2, 3)), np.ones((3, 2), complex), wrt=0)
    assert fastgrad.matmul_jacobian(np.ones((2, 3)), np.ones((3, 2)), wrt=-1).shape == (2, 2, 3, 2)


# ---------------------------------------------------------------------------
# against fastgrad.numjac (the numerical-differentiation family)


@pytest.mark.skipif(not hasattr(fastgrad, "numjac"), reason="fastgrad.numjac not available")
@pytest.mark.parametrize("order", ["F", "C"])
def test_against_fastgrad_numjac(order, rng):
    n, m = 3, 4
    x, W = rng.standard_normal(m), rng.standard_normal((n, m))
    num = fastgrad.numjac(lambda Z: Z @ x, W, flatten=True, order=order)
    np.testing.assert_allclose(fastgrad.jacobian_Wx(x, n, order=order), num, atol=1e-8)
    A, B, X = rng.standard_normal((2, 3)), rng.standard_normal((4, 5)), rng.standard_normal((3, 4))
    num = fastgrad.numjac(lambda Z: A @ Z @ B, X, flatten=True, order=order)
    np.testing.assert_allclose(fastgrad.jacobian_AXB(A, B, order=order), num, atol=1e-8)
    w1, w0, L0 = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal((3, 1))
    num = fastgrad.numjac(lambda Z: w1 @ (Z @ L0), w0)  # seed 003: L2 = w1 (w0 L0)
    np.testing.assert_allclose(fastgrad.matmul_jacobian(w1, w0, L0, wrt=1), num, atol=1e-8)
