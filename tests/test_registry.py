"""The comparisons registry (fastgrad/_bench) covers the whole public API, and every check passes.

``fastgrad check``, these tests and the benchmarks run the same registry; the
naive loop twins in tests/naive.py are the other half of each function's test.
"""

from __future__ import annotations

import naive
import numpy as np
import pytest

import fastgrad
from fastgrad._bench import all_cases, all_checks, compare, covered_functions

#: Configuration, utilities and result types: nothing to compute, so no check and no twin.
EXEMPT = {
    "__version__", "BackendUnavailableError", "available_backends", "get_backend", "set_backend",
    "use_backend", "get_num_threads", "set_num_threads", "GradcheckResult", "GradientMismatchError",
    "FitResult",
}

PUBLIC = sorted(set(fastgrad.__all__) - EXEMPT)


def test_exemptions_are_public_names():
    assert EXEMPT <= set(fastgrad.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_registry_entry_and_a_naive_twin(name):
    assert covered_functions().get(name), f"no Check or Case in fastgrad/_bench names fastgrad.{name}"
    assert name in naive.TWINS, f"tests/naive.py TWINS has no entry for fastgrad.{name}"
    assert callable(getattr(naive, naive.TWINS[name], None)), f"naive.{naive.TWINS[name]} is missing"


def test_registry_and_twins_name_only_public_functions():
    assert set(covered_functions()) <= set(fastgrad.__all__)
    assert set(naive.TWINS) <= set(fastgrad.__all__)


def test_check_names_are_unique_and_every_family_has_checks():
    names = [c.name for c in all_checks()]
    assert len(names) == len(set(names))
    assert {c.family for c in all_checks()} == {"mse", "numdiff", "kron", "identities", "nn", "hessian", "sparse"}
    assert all(c.functions for c in all_checks())
    assert {c.family for c in all_cases()} <= {c.family for c in all_checks()}


def test_compare_is_the_check_criterion():
    assert compare([(1.0, 1.0 + 1e-9), (np.ones(2), np.ones(2))]) == pytest.approx((5e-10, True), abs=1e-12)
    assert compare([(np.ones(3), np.zeros(3))])[1] is False
    assert compare([(np.zeros(3), np.zeros(4))]) == (float("inf"), False)
    assert compare([(1.0, 1.1)], rtol=0.2)[1] is True
    with pytest.raises(ValueError, match="at least one"):
        compare([])


# --- every registered check on every backend ---------------------------------


@pytest.mark.parametrize("check,backend", [
    pytest.param(c, b, id=f"{c.name}|{b}") for c in all_checks() for b in fastgrad.available_backends()
])
def test_check(check, backend):
    pairs = check.run(backend, np.random.default_rng(0))
    for k, (got, ref) in enumerate(pairs):
        err, ok = compare([(got, ref)], check.rtol, check.atol)
        assert ok, f"{check.name} on {backend}: pair {k} differs (max rel err {err:.2e})"


# --- the newly added naive twins agree with the public functions ---------------


def test_twins_mse(rng):
    A, y, w = rng.standard_normal((7, 3)), rng.standard_normal(7), rng.standard_normal(3)
    obj = fastgrad.MSEObjective(A, y)
    assert np.isclose(fastgrad.mse_loss(A, y, w), naive.mse_loss(A, y, w))
    np.testing.assert_allclose(fastgrad.mse_grad(A, y, w), naive.mse_grad(A, y, w))
    loss, g = naive.mse_loss_grad(A, y, w)
    assert np.isclose(obj(w), loss)
    np.testing.assert_allclose(obj.grad(w), g)


def test_twin_fit_linear(rng):
    A, Y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    w0 = rng.standard_normal((3, 2))
    res = fastgrad.fit_linear(A, Y, lr=0.05, epochs=7, w0=w0)
    w, losses = naive.fit_linear(A, Y, 0.05, 7, w0)
    np.testing.assert_allclose(res.w, w, rtol=1e-12)
    np.testing.assert_allclose(res.losses, losses, rtol=1e-12)


def test_twins_approx_fprime_check_grad(rng):
    x = rng.uniform(-1, 1, 4)

    def f(x, c):
        return c * np.sum(x**3)

    def F(x, c):
        return c * np.sin(x)

    eps = np.sqrt(np.finfo(float).eps)
    np.testing.assert_allclose(fastgrad.approx_fprime(x, f, eps, 2.0), naive.approx_fprime(x, f, eps, 2.0),
                               rtol=1e-12)
    np.testing.assert_allclose(fastgrad.approx_fprime(x, F, 1e-6, 2.0), naive.approx_fprime(x, F, 1e-6, 2.0),
                               rtol=1e-12)

    def wrong(x, c):
        return 3 * c * x**2 + 1.0

    assert np.isclose(fastgrad.check_grad(f, wrong, x, 2.0), naive.check_grad(f, wrong, x, 2.0), rtol=1e-12)
    assert np.isclose(naive.check_grad(f, wrong, x, 2.0), 2.0, rtol=1e-6)  # |(1, 1, 1, 1)| = 2


def test_twins_vec_unvec_kron_operator(rng):
    X = rng.standard_normal((3, 4))
    for order in ("F", "C"):
        np.testing.assert_array_equal(fastgrad.vec(X, order), naive.vec(X, order))
        v = naive.vec(X, order)
        np.testing.assert_array_equal(fastgrad.unvec(v, X.shape, order), naive.unvec(v, X.shape, order))
    A, B, x = rng.standard_normal((2, 3)), rng.standard_normal((4, 2)), rng.standard_normal(6)
    np.testing.assert_allclose(fastgrad.KronOperator(A, B) @ x, naive.kron_matvec(A, B, x), rtol=1e-12)


def test_twins_identities(rng):
    n = 4
    X = rng.standard_normal((n, n)) + n * np.eye(n)
    dX = rng.standard_normal((n, n))
    A, B = rng.standard_normal((2, n)), rng.standard_normal((n, 2))
    W, x, b = rng.standard_normal((3, n)), rng.standard_normal(n), rng.standard_normal(3)
    tol = {"rtol": 1e-9, "atol": 1e-12}
    np.testing.assert_allclose(fastgrad.grad_logdet(X, signed=True), naive.grad_logdet(X), **tol)
    np.testing.assert_allclose(fastgrad.grad_det(X), naive.grad_det(X), **tol)
    np.testing.assert_allclose(fastgrad.grad_trace_AXB(A, B), naive.grad_trace_AXB(A, B), **tol)
    np.testing.assert_allclose(fastgrad.grad_sq_norm_affine(W, x, b), naive.grad_sq_norm_affine(W, x, b), **tol)
    np.testing.assert_allclose(fastgrad.dinv(X, dX), naive.dinv(X, dX), **tol)
    for order in ("F", "C"):
        np.testing.assert_allclose(fastgrad.jacobian_inv(X, order), naive.jacobian_inv(X, order), **tol)
    # the twins against the definitions they transcribe: central differences of det, log|det|, inv
    np.testing.assert_allclose(naive.grad_det(X), naive.numgrad(np.linalg.det, X), rtol=1e-6)
    np.testing.assert_allclose(naive.grad_logdet(X), naive.numgrad(lambda Z: np.linalg.slogdet(Z)[1], X),
                               rtol=1e-6, atol=1e-9)
    J = naive.numjac(np.linalg.inv, X).reshape(n * n, n * n)  # row-major: order C
    np.testing.assert_allclose(naive.jacobian_inv(X, "C"), J, rtol=1e-6, atol=1e-9)


def test_twin_dense_forward(rng):
    X, W, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    np.testing.assert_allclose(fastgrad.dense_forward(X, W, b, backend="numpy"), naive.dense_forward(X, W, b),
                               rtol=1e-12)
