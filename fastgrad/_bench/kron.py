"""Benchmark cases and correctness checks of the Kronecker / vec-Jacobian kernels: kron, vec, unvec,
jacobian_Wx, jacobian_AXB, KronOperator, matmul_jacobian."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import fastgrad

from . import Case, Check, Contender, register, register_check

BACKENDS = ("numba", "cython")


def _kron_setup(shape_a, shape_b):
    def setup():
        rng = np.random.default_rng(sum(shape_a) + sum(shape_b))
        A = rng.standard_normal(shape_a)
        B = rng.standard_normal(shape_b)
        out = np.empty((shape_a[0] * shape_b[0], shape_a[1] * shape_b[1]))
        out[...] = 0.0  # touch every page: the timed fills write into existing memory
        assert np.isfinite(A).all() and A.std() > 0.5 and B.std() > 0.5
        return {"A": A, "B": B, "out": out}

    return setup


def _check_dense(data, results):
    ref = results[next(n for n in results if not n.startswith("fastgrad"))]
    for name, got in results.items():
        np.testing.assert_array_equal(got, ref, err_msg=name)


def _kron_into(backend):
    return lambda d: (lambda: fastgrad.kron(d["A"], d["B"], out=d["out"], backend=backend))


def _kron_fresh(backend):
    return lambda d: (lambda: fastgrad.kron(d["A"], d["B"], backend=backend))


# kron with a 3000 x 3000 output: >= 3x np.kron into a preallocated out, >= 1.5x fresh
for mode, make, target in (("out=", _kron_into, 3.0), ("fresh", _kron_fresh, 1.5)):
    register(Case(
        "kron", f"(60, 50)x(50, 60) {mode}", _kron_setup((60, 50), (50, 60)),
        [Contender(f"fastgrad-{b}", "fastgrad", make(b)) for b in BACKENDS]
        + [Contender("np.kron", "baseline", lambda d: (lambda: np.kron(d["A"], d["B"])))],
        {"np.kron": target}, quick=mode == "out=", check=_check_dense,
    ))


# jacobian_AXB dense, A 30x40, B 50x20: >= 5x np.kron(B.T, A)
def _axb_setup():
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((30, 40)), rng.standard_normal((50, 20))
    assert A.std() > 0.5 and B.std() > 0.5
    return {"A": A, "B": B}


def _axb(backend):
    return lambda d: (lambda: fastgrad.jacobian_AXB(d["A"], d["B"], backend=backend))


register(Case(
    "jacobian_AXB", "dense A (30, 40) B (50, 20)", _axb_setup,
    [Contender(f"fastgrad-{b}", "fastgrad", _axb(b)) for b in BACKENDS]
    + [Contender("np.kron(B.T, A)", "baseline", lambda d: (lambda: np.kron(d["B"].T, d["A"])))],
    {"np.kron(B.T, A)": 5.0}, quick=True, check=_check_dense,
))


# jacobian_Wx(x, 1000, format='csr'), m = 300: <= 5 ms absolute (the dense np.kron route
# builds 2.4 GB); scipy.sparse.kron of the same factors is timed for comparison, no target.
def _wx_setup():
    x = np.random.default_rng(4).standard_normal(300)
    assert np.count_nonzero(x) == 300
    return {"x": x, "n": 1000}


def _check_csr(data, results):
    ref = sp.csr_array(results["scipy.sparse.kron"])
    for name, got in results.items():
        assert got.shape == (1000, 300_000) and got.nnz == 300_000, name
        assert abs(sp.csr_array(got) - ref).max() == 0.0, name


def _wx(backend):
    return lambda d: (lambda: fastgrad.jacobian_Wx(d["x"], d["n"], format="csr", backend=backend))


register(Case(
    "jacobian_Wx", "csr x (300,) n=1000", _wx_setup,
    [Contender(f"fastgrad-{b}", "fastgrad", _wx(b)) for b in BACKENDS]
    + [Contender("scipy.sparse.kron", "baseline",
                 lambda d: (lambda: sp.kron(d["x"][None, :], sp.identity(d["n"], format="csr"), format="csr")))],
    {}, quick=True, check=_check_csr,
))


# ---------------------------------------------------------------------------
# Correctness checks (``fastgrad check``, tests/test_registry.py)

ORDERS = ("F", "C")


def _kron_check(sa, sb, da, db, transpose):
    def run(backend, rng):
        A = rng.standard_normal(sa).astype(da)
        B = rng.standard_normal(sb).astype(db)
        if transpose:
            A = A.T
        return [(fastgrad.kron(A, B, backend=backend), np.kron(A, B))]

    return run


register_check(Check("kron (60, 50)x(50, 60) f64", ("kron",),
                     _kron_check((60, 50), (50, 60), np.float64, np.float64, False)))
register_check(Check("kron (7,)x(5, 3) f32", ("kron",), _kron_check((7,), (5, 3), np.float32, np.float32, False)))
register_check(Check("kron transposed f32 x f64", ("kron",),
                     _kron_check((30, 40), (20, 50), np.float32, np.float64, True)))


def _jacobian_check(fmt):
    def run(backend, rng):
        x = rng.standard_normal(7)
        A, B = rng.standard_normal((3, 4)), rng.standard_normal((5, 2))
        pairs = []
        for order in ORDERS:
            eye = np.eye(6)
            ref_wx = np.kron(eye, x[None]) if order == "C" else np.kron(x[None], eye)
            ref_axb = np.kron(A, B.T) if order == "C" else np.kron(B.T, A)
            jw = fastgrad.jacobian_Wx(x, 6, order=order, format=fmt, backend=backend)
            ja = fastgrad.jacobian_AXB(A, B, order=order, format=fmt, backend=backend)
            if fmt == "csr":
                jw, ja = jw.toarray(), ja.toarray()
            elif fmt == "operator":
                jw, ja = jw.todense(), ja @ np.eye(ja.shape[1])
            pairs += [(jw, ref_wx), (ja, ref_axb)]
        return pairs

    return run


for _fmt in ("dense", "csr", "operator"):
    register_check(Check(f"jacobian_Wx/AXB {_fmt}", ("jacobian_Wx", "jacobian_AXB"), _jacobian_check(_fmt)))


def _matmul_jacobian_check(backend, rng):
    Ms = [rng.standard_normal(s) for s in ((3, 4), (4, 5), (5, 2))]
    J = fastgrad.matmul_jacobian(*Ms, wrt=1, backend=backend)
    return [(J, np.einsum("ia,bj->ijab", Ms[0], Ms[2]))]


register_check(Check("matmul_jacobian 3 factors", ("matmul_jacobian",), _matmul_jacobian_check))


def _vec_check(backend, rng):
    X = rng.standard_normal((4, 3))
    v = rng.standard_normal(12)
    return [
        (fastgrad.vec(X), X.T.reshape(-1)), (fastgrad.vec(X, "C"), X.reshape(-1)),
        (fastgrad.unvec(v, (4, 3)), v.reshape(3, 4).T), (fastgrad.unvec(v, (4, 3), "C"), v.reshape(4, 3)),
        (fastgrad.unvec(fastgrad.vec(X), X.shape), X),
    ]


register_check(Check("vec/unvec (4, 3) F and C", ("vec", "unvec"), _vec_check))


def _kron_operator_check(backend, rng):
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((2, 5))
    K = fastgrad.KronOperator(A, B, backend=backend)
    ref = np.kron(A, B)
    x, y, X = rng.standard_normal(20), rng.standard_normal(6), rng.standard_normal((20, 3))
    return [(K.shape, ref.shape), (K @ x, ref @ x), (K.T @ y, ref.T @ y), (K @ X, ref @ X),
            (K.todense(), ref), (K.T.todense(), ref.T)]


register_check(Check("KronOperator (3, 4)x(2, 5) matvec, rmatvec, matmat, todense", ("KronOperator",),
                     _kron_operator_check))
