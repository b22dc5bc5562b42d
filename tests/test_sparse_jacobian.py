"""Sparse Jacobians: numjac(sparsity=), group_columns, detect_sparsity."""

from __future__ import annotations

import naive
import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit
from scipy.optimize._numdiff import approx_derivative
from scipy.optimize._numdiff import group_columns as scipy_group_columns

import fastgrad
from fastgrad import _config

METHODS = ["forward", "backward", "central", "five-point", "complex"]


# ---------------------------------------------------------------------------
# Structures and functions with a known sparse Jacobian


def banded(n, lower, upper):
    return sum(np.eye(n, k=k) for k in range(-lower, upper + 1)) != 0


def block(n, b):
    S = np.zeros((n, n), dtype=bool)
    for s in range(0, n, b):
        S[s:s + b, s:s + b] = True
    return S


def random_pattern(m, n, density, rng):
    S = rng.random((m, n)) < density
    S[rng.integers(m)] = False  # an empty row
    S[:, rng.integers(n)] = False  # an empty column
    return S


def structured_f(S):
    """f(x)_i = sum_j S_ij c_ij sin(x_j) x_j + (x_j^2 for the diagonal): Jacobian nonzero exactly on S."""
    C = np.where(S, np.linspace(0.5, 2.0, S.size).reshape(S.shape), 0.0)

    def f(x):
        return C @ (np.sin(x) + x * x)

    return f


@njit
def tridiagonal(x):
    """Broyden's tridiagonal function: f_i = (3 - 2 x_i) x_i - x_{i-1} - 2 x_{i+1} + 1."""
    n = x.size
    y = np.empty(n, dtype=x.dtype)
    for i in range(n):
        v = (3.0 - 2.0 * x[i]) * x[i] + 1.0
        if i > 0:
            v -= x[i - 1]
        if i < n - 1:
            v -= 2.0 * x[i + 1]
        y[i] = v
    return y


def tridiagonal_exact(x):
    n = x.size
    return np.diag(3.0 - 4.0 * x) - np.eye(n, k=-1) - 2.0 * np.eye(n, k=1)


def tri_structure(n):
    return sp.diags([np.ones(n - 1), np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="csr")


# ---------------------------------------------------------------------------
# group_columns


@pytest.mark.parametrize("seed", range(6))
def test_group_columns_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(1, 40, 2)
    S = rng.random((m, n)) < rng.uniform(0.05, 0.6)
    for order in (0, 7, 3, rng.permutation(n)):
        expect = scipy_group_columns(S, order)
        np.testing.assert_array_equal(fastgrad.group_columns(S, order), expect)
        np.testing.assert_array_equal(fastgrad.group_columns(sp.csr_array(S), order), expect)
        np.testing.assert_array_equal(fastgrad.group_columns(S.astype(float) * 2.5, order), expect)


@pytest.mark.parametrize("seed", range(4))
def test_group_columns_equals_naive_twin(seed):
    rng = np.random.default_rng(100 + seed)
    S = random_pattern(25, 30, 0.12, rng)
    for perm in (np.arange(30), rng.permutation(30)):
        np.testing.assert_array_equal(fastgrad.group_columns(S, order=perm), naive.group_columns(S, perm))
        groups = fastgrad.group_columns(S, order=perm)
        for g in range(groups.max() + 1):  # structurally orthogonal: no row meets two columns of a group
            assert (S[:, groups == g].sum(axis=1) <= 1).all()


def test_group_columns_default_and_natural_order():
    S = banded(9, 1, 1)
    np.testing.assert_array_equal(fastgrad.group_columns(S), scipy_group_columns(S))
    assert fastgrad.group_columns(S, order=np.arange(9)).tolist() == [0, 1, 2] * 3


def test_group_columns_bad_input():
    with pytest.raises(ValueError, match="S must be 2-dimensional"):
        fastgrad.group_columns(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="booleans or real numbers"):
        fastgrad.group_columns(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"order must be a permutation of range\(3\)"):
        fastgrad.group_columns(np.eye(3), order=[0, 0, 1])


# ---------------------------------------------------------------------------
# The kernels of the sparsity family, backend by backend: bitwise equal to
# straightforward Python loops (and the grouping to scipy's)


def kernel_patterns(seed, count):
    """``count`` random boolean patterns, empty rows and columns and degenerate shapes included."""
    rng = np.random.default_rng(seed)
    shapes = [(0, 4), (4, 0), (1, 1), (1, 9), (9, 1)] + [tuple(rng.integers(1, 35, 2)) for _ in range(count - 5)]
    for m, n in shapes:
        S = rng.random((m, n)) < rng.uniform(0.0, 0.7)
        if m > 1 and n > 1:
            S[rng.integers(m)] = False
            S[:, rng.integers(n)] = False
        yield rng, S


def loop_first_clash(S_csr, groups):
    """The first CSR entry whose group an earlier entry of its row already has: (row, earlier column, column)."""
    for i in range(S_csr.shape[0]):
        cols = S_csr.indices[S_csr.indptr[i]:S_csr.indptr[i + 1]]
        for b, j in enumerate(cols):
            for q in cols[:b]:
                if groups[q] == groups[j]:
                    return [i, q, j]
    return None


def test_sparsity_kernels_group_sparse(backend):
    kernels = _config.kernels("sparsity", backend)
    for rng, S in kernel_patterns(1, 40):
        m, n = S.shape
        csc = sp.csc_array(S)
        for perm in (np.arange(n), rng.permutation(n)):
            groups = np.full(n, 99, dtype=np.int64)
            union = np.full(m, 99, dtype=np.int64)
            kernels.group_sparse(m, n, csc.indices.astype(np.int64), csc.indptr.astype(np.int64),
                                 perm.astype(np.int64), union, groups)
            np.testing.assert_array_equal(groups, naive.group_columns(S, perm), err_msg=f"{backend} {S.shape}")
            if m and n:
                np.testing.assert_array_equal(groups, scipy_group_columns(S, perm))


def test_sparsity_kernels_group_order(backend):
    kernels = _config.kernels("sparsity", backend)
    rng = np.random.default_rng(2)
    for n in (0, 1, 7, 50, 300):
        G = int(rng.integers(1, 12))
        groups = rng.integers(0, G, n).astype(np.int64)
        gptr = np.full(G + 1, 99, dtype=np.int64)
        by_group = np.full(n, 99, dtype=np.int64)
        kernels.group_order(groups, G, gptr, by_group)
        np.testing.assert_array_equal(gptr, np.concatenate([[0], np.cumsum(np.bincount(groups, minlength=G))]))
        np.testing.assert_array_equal(by_group, np.argsort(groups, kind="stable"))


def test_sparsity_kernels_first_clash(backend):
    kernels = _config.kernels("sparsity", backend)
    clashes = 0
    for rng, S in kernel_patterns(3, 40):
        m, n = S.shape
        csr = sp.csr_array(S)
        for groups in (naive.group_columns(S, rng.permutation(n)), rng.integers(0, max(1, n // 2), n)):
            groups = np.asarray(groups, dtype=np.int64)
            G = int(groups.max()) + 1 if n else 0
            clash = np.full(3, 99, dtype=np.int64)
            found = kernels.first_clash(m, csr.indptr.astype(np.int64), csr.indices.astype(np.int64), groups, G,
                                        np.full(G, 99, dtype=np.int64), clash)
            expect = loop_first_clash(csr, groups)
            assert found is (expect is not None), (backend, S.shape)
            if found:
                clashes += 1
                assert clash.tolist() == expect, (backend, S.shape)
    assert clashes > 10  # random groups do clash


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparsity_kernels_scatter_groups(backend, dtype):
    kernels = _config.kernels("sparsity", backend)
    for rng, S in kernel_patterns(4, 25):
        m, n = S.shape
        csr = sp.csr_array(S)
        indptr, indices = csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
        groups = rng.integers(0, 5, n).astype(np.int64)
        row_c, col_c = rng.permutation(m).astype(np.int64), rng.permutation(n).astype(np.int64)
        g0, g1 = 1, 4
        num = rng.standard_normal((g1 - g0, m))
        den = rng.uniform(0.5, 2.0, n) * 1e-3
        data = np.full(indices.size, 7.0, dtype=dtype)
        kernels.scatter_groups(m, indptr, indices, groups, g0, g1, row_c, col_c, num, den, data)
        expect = np.full(indices.size, 7.0, dtype=dtype)
        for i in range(m):
            for k in range(indptr[i], indptr[i + 1]):
                g = groups[indices[k]]
                if g0 <= g < g1:
                    expect[k] = num[g - g0, row_c[i]] / den[col_c[indices[k]]]
        assert data.tobytes() == expect.tobytes(), (backend, S.shape)


def test_sparsity_functions_use_the_selected_backend(backend, monkeypatch):
    kernels = _config.kernels("sparsity", backend)
    names = _config.kernels("sparsity", "numpy").__all__  # the protocol
    called = []
    for name in names:
        fn = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _fn=fn, _name=name: (called.append(_name), _fn(*a))[1])
    S = banded(12, 1, 1)
    x = np.linspace(0.1, 1.0, 12)
    with fastgrad.use_backend(backend):
        groups = fastgrad.group_columns(S)
        J = fastgrad.numjac(lambda z: z ** 3, x, sparsity=(S, groups))
        with pytest.raises(ValueError, match="columns 0 and 1 are both in group 0 and both nonzero in row 0"):
            fastgrad.numjac(lambda z: z ** 3, x, sparsity=(S, np.zeros(12, dtype=int)))
    assert sorted(set(called)) == sorted(names)
    np.testing.assert_array_equal(groups, scipy_group_columns(S))
    np.testing.assert_allclose(J.toarray(), np.diag(3 * x ** 2), rtol=1e-8, atol=1e-12)


def test_sparse_jacobian_bitwise_equal_across_backends():
    rng = np.random.default_rng(6)
    S = random_pattern(30, 40, 0.15, rng)
    f = structured_f(S)
    x = rng.standard_normal(40)
    results = {}
    for backend in fastgrad.available_backends():
        with fastgrad.use_backend(backend):
            results[backend] = (fastgrad.group_columns(S, order=3), fastgrad.numjac(f, x, sparsity=S))
    groups, J = results["numba"]
    for backend, (g, K) in results.items():
        np.testing.assert_array_equal(g, groups, err_msg=backend)
        assert K.data.tobytes() == J.data.tobytes(), backend
        np.testing.assert_array_equal(K.indices, J.indices)


def test_cython_sparse_jacobian_compiles_no_numba_kernel():
    # with the Cython backend the grouping, the check and the scatter need no Numba compile
    import subprocess
    import sys

    if "cython" not in fastgrad.available_backends():
        pytest.skip("Cython backend not built")
    code = (
        "import sys, numpy as np, fastgrad\n"
        "S = np.eye(8) + np.eye(8, k=1) != 0\n"
        "groups = fastgrad.group_columns(S)\n"
        "J = fastgrad.numjac(lambda z: np.append(z[:-1] * z[1:], z[-1]), np.ones(8), sparsity=(S, groups))\n"
        "assert J.nnz == 15, J.nnz\n"
        "print(sorted(m for m in sys.modules if m.startswith('fastgrad._numba')))\n"
    )
    env = dict(__import__("os").environ, FASTGRAD_BACKEND="cython")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "fastgrad._numba.sparsity" not in out.stdout, out.stdout


# ---------------------------------------------------------------------------
# numjac(sparsity=) against the dense Jacobian and scipy


PATTERNS = {
    "tridiagonal": lambda rng: banded(12, 1, 1),
    "banded 2/3": lambda rng: banded(15, 2, 3),
    "block": lambda rng: block(12, 4),
    "random": lambda rng: random_pattern(10, 14, 0.2, rng),
    "random tall": lambda rng: random_pattern(20, 6, 0.3, rng),
    "empty": lambda rng: np.zeros((5, 7), dtype=bool),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_sparse_equals_dense(pattern, method):
    rng = np.random.default_rng(3)
    S = PATTERNS[pattern](rng)
    f = structured_f(S)
    x = rng.standard_normal(S.shape[1])
    dense = fastgrad.numjac(f, x, method=method, flatten=True)
    for structure in (S, S.astype(np.int8), sp.csr_array(S), sp.coo_matrix(S),
                      (S, fastgrad.group_columns(S)), (sp.csc_array(S), fastgrad.group_columns(S, order=1))):
        J = fastgrad.numjac(f, x, method=method, sparsity=structure)
        assert isinstance(J, sp.csr_array) and J.shape == S.shape and J.dtype == np.float64
        np.testing.assert_array_equal(J.toarray(), np.where(S, dense, 0.0))
        np.testing.assert_array_equal(J.toarray() != 0, S & (dense != 0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("order", ["F", "C"])
def test_matrix_x_and_f_in_either_order(order, dtype):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 4)).astype(dtype)

    def f(X):  # (4, 3): entry (a, b) depends on X[b, a] and X[b, a-1]
        Y = X.T ** 2
        Y[1:] += np.sin(X.T[:-1])
        return Y

    dense = fastgrad.numjac(f, X, flatten=True, order=order)
    S = dense != 0
    J = fastgrad.numjac(f, X, sparsity=S, order=order)
    assert J.dtype == dtype
    np.testing.assert_array_equal(J.toarray(), dense)


@pytest.mark.parametrize("method, scipy_method", [("central", "3-point"), ("forward", "2-point"),
                                                  ("complex", "cs")])
def test_equals_scipy_approx_derivative(method, scipy_method):
    rng = np.random.default_rng(11)
    n = 30
    x = rng.uniform(0.5, 1.5, n)  # positive: scipy's steps point the same way as fastgrad's
    S = tri_structure(n)
    groups = np.arange(n) % 3
    expect = approx_derivative(tridiagonal.py_func, x, method=scipy_method, sparsity=(S, groups)).toarray()
    got = fastgrad.numjac(tridiagonal, x, method=method, sparsity=(S, groups)).toarray()
    np.testing.assert_allclose(got, expect, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(got, tridiagonal_exact(x), rtol=1e-5, atol=1e-6)
    got_default = fastgrad.numjac(tridiagonal, x, method=method, sparsity=S).toarray()
    np.testing.assert_array_equal(got_default, got)  # natural-order groups: the same 3 groups


@pytest.mark.parametrize("method, per_group", [("central", 2), ("forward", 1), ("five-point", 4)])
def test_one_evaluation_per_group_and_point(method, per_group):
    n = 10_000
    x = np.linspace(-1.0, 1.0, n)
    calls = []

    def f(z):
        calls.append(1)
        return tridiagonal(z)

    J = fastgrad.numjac(f, x, method=method, sparsity=(tri_structure(n), np.arange(n) % 3))
    assert len(calls) == 1 + per_group * 3  # f(x) once (its shape), then each group at each point
    assert J.nnz == 3 * n - 2
    np.testing.assert_allclose(J.diagonal(), 3.0 - 4.0 * x, rtol=1e-5, atol=1e-6)


@pytest.fixture
def always_parallel(monkeypatch):
    """Every compiled call goes to the thread pool (however cheap f is)."""
    from fastgrad import _config

    monkeypatch.setattr(_config, "USER_PARALLEL_MIN_NS", 0)


@njit
def block_sin(x, c):
    """Blocks of 5: f_i = c sin(sum of x over i's block) x_i; the Jacobian is block diagonal."""
    y = np.empty(x.size, dtype=x.dtype)
    for b in range(0, x.size, 5):
        s = x[b:b + 5].sum()
        for i in range(b, min(b + 5, x.size)):
            y[i] = c * np.sin(s) * x[i]
    return y


@njit
def doubling_tridiagonal(x):
    x *= 2.0  # writes its argument: every evaluation must still see the right point
    return tridiagonal(x)


@njit
def raising(x):
    if x[7] != 0.5:
        raise ValueError("bad point in f")
    return x * x


@pytest.mark.parametrize("method", METHODS)
def test_njit_groups_in_parallel_bitwise_across_threads(method, n_threads, always_parallel):
    x = np.linspace(-1.0, 1.0, 60) * 0.3 + 0.5
    S = block(60, 5)
    a = fastgrad.numjac(block_sin, x, args=(1.5,), method=method, sparsity=S)  # 5 groups of 12
    b = fastgrad.numjac(block_sin, x, args=(1.5,), method=method, sparsity=S, parallel=False)
    c = fastgrad.numjac(lambda z: block_sin(z, 1.5), x, method=method, sparsity=S)
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    np.testing.assert_array_equal(a.toarray(), c.toarray())
    d = fastgrad.numjac(tridiagonal, x, method=method, sparsity=tri_structure(60))  # f passed by address
    np.testing.assert_array_equal(d.toarray(),
                                  fastgrad.numjac(tridiagonal, x, method=method, sparsity=tri_structure(60),
                                                  parallel=False).toarray())
    e = fastgrad.numjac(doubling_tridiagonal, x, method=method, sparsity=tri_structure(60))
    np.testing.assert_allclose(e.toarray(), tridiagonal_exact(2 * x) * 2, rtol=1e-5, atol=1e-5)


def test_njit_f_raising_in_the_parallel_loop_propagates(n_threads, always_parallel):
    x = np.full(30, 0.5)
    with pytest.raises(ValueError, match="bad point in f"):
        fastgrad.numjac(raising, x, sparsity=np.eye(30))


def test_njit_f_equal_to_its_python_twin(n_threads):
    x = np.linspace(-1.0, 1.0, 50)
    S = tri_structure(50)
    for method in METHODS:
        a = fastgrad.numjac(tridiagonal, x, method=method, sparsity=S)
        b = fastgrad.numjac(tridiagonal.py_func, x, method=method, sparsity=S)
        np.testing.assert_array_equal(a.toarray(), b.toarray())


def test_scalar_f_sparse_gradient():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    J = fastgrad.numjac(lambda z: z[1] ** 2 + z[3], x, sparsity=np.array([[0, 1, 0, 1]]))
    np.testing.assert_allclose(J.toarray(), [[0.0, 4.0, 0.0, 1.0]], rtol=1e-8)


def test_default_groups_remembered_per_pattern_and_returned_as_copies(monkeypatch):
    """Grouping runs once per pattern; a pattern of the same shape and nnz but other entries is regrouped."""
    from fastgrad import _validate
    from fastgrad import sparsity as _sparsity

    monkeypatch.setattr(_sparsity, "_groups_cache", [])
    calls = []
    compute = _sparsity._group_pattern
    monkeypatch.setattr(_sparsity, "_group_pattern", lambda *a: calls.append(1) or compute(*a))
    rng = np.random.default_rng(5)
    patterns = [rng.random((12, 10)) < 0.3 for _ in range(6)]
    patterns.append(patterns[0][::-1].copy())  # the same counts per row reversed: same nnz, other entries
    for S in patterns + patterns[::-1]:
        indptr, indices = _validate.sparsity_structure(S, S.shape)
        got = _sparsity._default_groups(*S.shape, indptr, indices)
        np.testing.assert_array_equal(got, compute(*S.shape, indptr, indices))
        got[:] = 99  # the caller's copy: the cache keeps its own
    # 7 patterns computed once each on the way in; on the way back, the 4 remembered ones are hits
    assert len(calls) == 7 + 3
    S = patterns[0]
    x = rng.random(10)
    J = fastgrad.numjac(lambda z: (S * z).sum(axis=1) ** 2, x, sparsity=S)  # a hit
    dense = fastgrad.numjac(lambda z: (S * z).sum(axis=1) ** 2, x)
    np.testing.assert_allclose(J.toarray(), dense, rtol=1e-8, atol=1e-12)


def test_default_groups_from_many_threads_at_once():
    """Threads asking for the groups of different patterns at once each get their own pattern's groups."""
    import concurrent.futures

    from fastgrad import _validate
    from fastgrad import sparsity as _sparsity

    rng = np.random.default_rng(6)
    patterns = [rng.random((15, 12)) < 0.25 for _ in range(9)]
    want = [_sparsity._group_pattern(*S.shape, *_validate.sparsity_structure(S, S.shape)) for S in patterns]

    def groups(q):
        S = patterns[q % len(patterns)]
        return q % len(patterns), _sparsity._default_groups(*S.shape, *_validate.sparsity_structure(S, S.shape))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for q, got in pool.map(groups, range(400)):
            np.testing.assert_array_equal(got, want[q])


def test_x_not_written():
    x = np.linspace(0.0, 1.0, 9)
    before = x.copy()
    fastgrad.numjac(lambda z: z ** 2, x, sparsity=np.eye(9))
    np.testing.assert_array_equal(x, before)


def test_sparse_with_workers_and_vectorized():
    import concurrent.futures

    S = banded(40, 1, 1)

    def f(x):  # works on one point (40,) and on a stack (B, 40) alike
        y = x ** 3
        y[..., 1:] += np.sin(x[..., :-1])
        y[..., :-1] -= x[..., 1:] ** 2
        return y

    x = np.linspace(-2.0, 2.0, 40)
    serial = fastgrad.numjac(f, x, sparsity=S).toarray()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        np.testing.assert_array_equal(fastgrad.numjac(f, x, sparsity=S, workers=ex).toarray(), serial)
    np.testing.assert_array_equal(fastgrad.numjac(f, x, sparsity=S, workers=2).toarray(), serial)
    np.testing.assert_array_equal(fastgrad.numjac(f, x, sparsity=S, vectorized=True).toarray(), serial)
    np.testing.assert_array_equal(fastgrad.numjac(f, x, sparsity=S, vectorized=True, chunk_size=2).toarray(),
                                  serial)
    np.testing.assert_allclose(serial, np.diag(3 * x ** 2) + np.diag(np.cos(x[:-1]), -1) - np.diag(2 * x[1:], 1),
                               rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------------
# method='adaptive' with a structure: the dense adaptive Jacobian's entries


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_adaptive_sparse_equals_dense_adaptive(pattern, dtype):
    rng = np.random.default_rng(4)
    S = PATTERNS[pattern](rng)
    f = structured_f(S)
    x = rng.standard_normal(S.shape[1]).astype(dtype)
    dense = fastgrad.numjac(f, x, method="adaptive", flatten=True)
    for structure in (S, sp.csr_array(S), (S, fastgrad.group_columns(S)), (sp.csc_array(S), np.arange(S.shape[1]))):
        J = fastgrad.numjac(f, x, method="adaptive", sparsity=structure)
        assert isinstance(J, sp.csr_array) and J.shape == S.shape and J.dtype == dtype
        np.testing.assert_array_equal(J.toarray(), np.where(S, dense, 0.0))


def test_adaptive_sparse_accuracy_and_evaluations():
    n = 3000
    x = np.linspace(-1.0, 1.0, n)
    calls = []

    def f(z):
        calls.append(1)
        return np.sin(z) * np.exp(0.3 * z) + np.append(0.0, z[:-1] * z[1:])

    J = fastgrad.numjac(f, x, method="adaptive", sparsity=(banded(n, 1, 0), np.arange(n) % 2))
    # f(x) once, then both points of each of the 2 groups at each of the 8 steps
    assert len(calls) == 1 + 2 * 2 * fastgrad._adaptive.ADAPTIVE_STEPS
    exact = np.diag(np.exp(0.3 * x) * (np.cos(x) + 0.3 * np.sin(x)) + np.append(0.0, x[:-1]))
    exact += np.diag(x[1:], -1)
    err = np.abs(J.toarray() - exact).max()
    central = np.abs(fastgrad.numjac(f, x, sparsity=banded(n, 1, 0)).toarray() - exact).max()
    assert err <= 1e-12 and err <= central / 100, (err, central)


@pytest.mark.parametrize("order", ["F", "C"])
def test_adaptive_sparse_matrix_x_and_scalar_f(order):
    X = np.random.default_rng(6).standard_normal((3, 4))

    def f(X):  # (4, 3): entry (a, b) depends on X[b, a] and X[b, a-1]
        Y = np.exp(X.T)
        Y[1:] += np.sin(X.T[:-1])
        return Y

    dense = fastgrad.numjac(f, X, method="adaptive", flatten=True, order=order)
    J = fastgrad.numjac(f, X, method="adaptive", sparsity=dense != 0, order=order)
    np.testing.assert_array_equal(J.toarray(), dense)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    f = lambda z: np.sin(z[1]) + z[3] ** 3  # noqa: E731
    g = fastgrad.numjac(f, x, method="adaptive", sparsity=[[0, 1, 0, 1]])
    np.testing.assert_array_equal(g.toarray()[0], fastgrad.numgrad(f, x, method="adaptive") * [0, 1, 0, 1])
    np.testing.assert_allclose(g.toarray(), [[0.0, np.cos(2.0), 0.0, 48.0]], rtol=1e-11)


def test_adaptive_sparse_njit_at_every_thread_count(n_threads, always_parallel):
    x = np.linspace(-1.0, 1.0, 60) * 0.3 + 0.5
    S = block(60, 5)
    a = fastgrad.numjac(block_sin, x, args=(1.5,), method="adaptive", sparsity=S)
    b = fastgrad.numjac(block_sin, x, args=(1.5,), method="adaptive", sparsity=S, parallel=False)
    c = fastgrad.numjac(lambda z: block_sin(z, 1.5), x, method="adaptive", sparsity=S)
    dense = fastgrad.numjac(block_sin, x, args=(1.5,), method="adaptive", flatten=True)
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    np.testing.assert_array_equal(a.toarray(), c.toarray())
    np.testing.assert_array_equal(a.toarray(), np.where(S, dense, 0.0))


def test_adaptive_sparse_with_workers_and_vectorized():
    import concurrent.futures

    S = banded(40, 1, 1)

    def f(x):  # one point (40,) or a stack (B, 40)
        y = x ** 3
        y[..., 1:] += np.sin(x[..., :-1])
        y[..., :-1] -= x[..., 1:] ** 2
        return y

    x = np.linspace(-2.0, 2.0, 40)
    serial = fastgrad.numjac(f, x, method="adaptive", sparsity=S).toarray()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        np.testing.assert_array_equal(fastgrad.numjac(f, x, method="adaptive", sparsity=S, workers=ex).toarray(),
                                      serial)
    np.testing.assert_array_equal(fastgrad.numjac(f, x, method="adaptive", sparsity=S, vectorized=True,
                                                  chunk_size=3).toarray(), serial)
    exact = np.diag(3 * x ** 2) + np.diag(np.cos(x[:-1]), -1) - np.diag(2 * x[1:], 1)
    np.testing.assert_allclose(serial, exact, rtol=1e-12, atol=1e-12)


def test_adaptive_sparse_bad_structure_refused():
    with pytest.raises(ValueError, match=r"sparsity has shape \(4, 4\) but the Jacobian has shape \(3, 3\)"):
        fastgrad.numjac(np.sin, np.ones(3), method="adaptive", sparsity=np.eye(4))
    with pytest.raises(ValueError, match="sparsity groups are not structurally orthogonal: columns 0 and 1 are "
                                         "both in group 0 and both nonzero in row 0"):
        fastgrad.numjac(np.sin, np.ones(3), method="adaptive", sparsity=(np.ones((3, 3)), [0, 0, 1]))


# ---------------------------------------------------------------------------
# Bad structures


def test_bad_sparsity_refused():
    f = lambda z: z ** 2  # noqa: E731
    x = np.ones(4)
    with pytest.raises(ValueError, match=r"sparsity has shape \(4, 3\) but the Jacobian has shape \(4, 4\)"):
        fastgrad.numjac(f, x, sparsity=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"sparsity has shape \(3, 4\)"):
        fastgrad.numjac(f, x, sparsity=sp.csr_array(np.ones((3, 4))))
    with pytest.raises(ValueError, match="sparsity must hold booleans or real numbers, got dtype <U1"):
        fastgrad.numjac(f, x, sparsity=np.full((4, 4), "a"))
    with pytest.raises(ValueError, match="sparsity must hold booleans or real numbers, got dtype complex128"):
        fastgrad.numjac(f, x, sparsity=np.eye(4) * 1j)
    with pytest.raises(ValueError, match=r"sparsity groups have shape \(3,\) but x has 4 elements"):
        fastgrad.numjac(f, x, sparsity=(np.eye(4), [0, 0, 0]))
    with pytest.raises(ValueError, match="sparsity groups must be integers, got dtype float64"):
        fastgrad.numjac(f, x, sparsity=(np.eye(4), [0.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="sparsity groups must be non-negative"):
        fastgrad.numjac(f, x, sparsity=(np.eye(4), [0, -1, 0, 0]))
    with pytest.raises(ValueError, match="sparsity groups are not structurally orthogonal: columns 0 and 1 "
                                         "are both in group 0 and both nonzero in row 1"):
        fastgrad.numjac(f, x, sparsity=(banded(4, 1, 0), [0, 0, 1, 2]))


# ---------------------------------------------------------------------------
# detect_sparsity


def test_detect_sparsity_finds_the_structure():
    n = 20
    S = fastgrad.detect_sparsity(tridiagonal, np.zeros(n))
    assert isinstance(S, sp.csr_array) and S.dtype == bool
    np.testing.assert_array_equal(S.toarray(), tri_structure(n).toarray() != 0)
    again = fastgrad.detect_sparsity(tridiagonal, np.zeros(n))
    np.testing.assert_array_equal(again.toarray(), S.toarray())  # repeatable
    J = fastgrad.numjac(tridiagonal, np.full(n, 0.5), sparsity=S)
    np.testing.assert_allclose(J.toarray(), tridiagonal_exact(np.full(n, 0.5)), atol=1e-8)


def test_detect_sparsity_equals_naive_twin_at_the_same_points():
    def f(z):
        return np.array([z[0] * z[3], np.sin(z[1]) + z[2] ** 3, z[3] * 0.0 + z[0]])

    x = np.array([0.0, 1.0, 0.0, 2.0])
    S = fastgrad.detect_sparsity(f, x, trials=2)
    rng = np.random.default_rng(20_240_601)  # the points detect_sparsity draws
    scale = 0.01 * np.maximum(1.0, np.abs(x))
    points = [x + scale * rng.uniform(-1.0, 1.0, size=x.shape) for _ in range(2)]
    np.testing.assert_array_equal(S.toarray(), naive.detect_sparsity(f, points))
    np.testing.assert_array_equal(S.toarray(), [[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]])


def test_detect_sparsity_entry_zero_at_x_found_and_order():
    # d(x_0^2)/dx_0 = 0 at x = 0: found at the nearby random points
    S = fastgrad.detect_sparsity(lambda z: np.array([z[0] ** 2, z[0] * z[2]]), np.zeros(3))
    np.testing.assert_array_equal(S.toarray(), [[True, False, False], [True, False, True]])
    X = np.zeros((2, 2))
    SF = fastgrad.detect_sparsity(lambda Z: Z[:, 0] ** 2, X)               # order 'F': vec(X) = X[0,0], X[1,0], ...
    SC = fastgrad.detect_sparsity(lambda Z: Z[:, 0] ** 2, X, order="C")
    np.testing.assert_array_equal(SF.toarray(), [[1, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(SC.toarray(), [[1, 0, 0, 0], [0, 0, 1, 0]])


def test_detect_sparsity_misses_an_entry_zero_at_every_trial_point():
    # a step function: derivative 0 almost everywhere, the documented limitation
    S = fastgrad.detect_sparsity(lambda z: np.floor(z * 1e-6) + z[::-1], np.zeros(2), trials=5)
    np.testing.assert_array_equal(S.toarray(), [[False, True], [True, False]])
    with pytest.raises(ValueError, match="trials must be"):
        fastgrad.detect_sparsity(lambda z: z, np.zeros(2), trials=0)
