"""Benchmark cases of the Kronecker / vec-Jacobian kernels (SPEC section 8, kron and jacobian bullets)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import fastgrad

from . import Case, Contender, register

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
