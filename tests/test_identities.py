"""Matrix-differential identities (docs/derivations.md, "Matrix differentials") against numerical
differentiation and the Matrix Cookbook."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from conftest import variants
from hypothesis import given
from hypothesis import strategies as st

import fastgrad

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 5)


def well_conditioned(rng, n, sign=1.0):
    # strictly diagonally dominant with a positive diagonal: det X > 0, well away from singular
    X = rng.standard_normal((n, n))
    X[np.diag_indices(n)] = np.abs(X).sum(axis=1) + 0.5
    if np.linalg.det(X) * sign < 0:
        X[0] *= -1.0
    return X


# ---------------------------------------------------------------------------
# log det and det


@given(n=sizes, seed=seeds)
def test_grad_logdet_numerical_and_cookbook(n, seed):
    X = well_conditioned(np.random.default_rng(seed), n)
    G = fastgrad.grad_logdet(X)
    num = naive.numgrad(lambda Z: np.linalg.slogdet(Z)[1], X)
    np.testing.assert_allclose(G, num, atol=1e-7)
    np.testing.assert_allclose(G, np.linalg.inv(X).T, rtol=1e-12)  # Cookbook (57): X^{-T}
    np.testing.assert_allclose(fastgrad.grad_logdet(X, layout="numerator"), np.linalg.inv(X), rtol=1e-12)


def test_grad_logdet_signed_and_errors(rng):
    X = well_conditioned(rng, 3, sign=-1.0)
    with pytest.raises(ValueError, match=r"det X < 0: log det X is undefined; pass signed=True"):
        fastgrad.grad_logdet(X)
    G = fastgrad.grad_logdet(X, signed=True)  # gradient of log|det X|
    np.testing.assert_allclose(G, naive.numgrad(lambda Z: np.linalg.slogdet(Z)[1], X), atol=1e-7)
    with pytest.raises(np.linalg.LinAlgError, match="X is singular"):
        fastgrad.grad_logdet([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(np.linalg.LinAlgError, match="X is singular"):
        fastgrad.grad_logdet([[1.0, 2.0], [2.0, 4.0]], signed=True)
    with pytest.raises(ValueError, match=r"X must be a square matrix, got shape \(2, 3\)"):
        fastgrad.grad_logdet(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"layout must be one of 'gradient', 'numerator'; got 'denominator'"):
        fastgrad.grad_logdet(np.eye(2), layout="denominator")
    with pytest.raises(TypeError, match="X is complex"):
        fastgrad.grad_logdet(np.eye(2, dtype=complex))


@given(n=sizes, seed=seeds)
def test_grad_det_numerical_and_cofactors(n, seed):
    X = np.random.default_rng(seed).standard_normal((n, n))
    G = fastgrad.grad_det(X)
    np.testing.assert_allclose(G, naive.numgrad(np.linalg.det, X), atol=1e-7)
    np.testing.assert_allclose(G, naive.adjugate(X).T, atol=1e-12, rtol=1e-10)  # the cofactor matrix
    np.testing.assert_allclose(fastgrad.grad_det(X, layout="numerator"), naive.adjugate(X),
                               atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_grad_det_singular_matrices(rank, rng):
    # rank n-1: nonzero gradient although det X = 0; rank <= n-2: zero gradient
    n = 4
    X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, n))
    G = fastgrad.grad_det(X)
    np.testing.assert_allclose(G, naive.adjugate(X).T, atol=1e-10)
    np.testing.assert_allclose(G, naive.numgrad(np.linalg.det, X), atol=1e-6)
    if rank == n - 1:
        assert np.abs(G).max() > 1e-3
    else:
        np.testing.assert_allclose(G, 0.0, atol=1e-10)


def test_grad_det_hand_example():
    # adj([[a, b], [c, d]]) = [[d, -b], [-c, a]]; gradient = its transpose; det = 0 here
    np.testing.assert_allclose(fastgrad.grad_det([[1.0, 2.0], [2.0, 4.0]]), [[4.0, -2.0], [-2.0, 1.0]],
                               atol=1e-14)
    np.testing.assert_allclose(fastgrad.grad_det([[1.0, 2.0], [3.0, 4.0]]), [[4.0, -3.0], [-2.0, 1.0]],
                               atol=1e-14)
    assert fastgrad.grad_det([[5.0]]).tolist() == [[1.0]]


# ---------------------------------------------------------------------------
# trace, squared norm


@given(p=sizes, m=sizes, n=sizes, seed=seeds)
def test_grad_trace_AXB(p, m, n, seed):
    rng = np.random.default_rng(seed)
    A, X, B = rng.standard_normal((p, m)), rng.standard_normal((m, n)), rng.standard_normal((n, p))
    G = fastgrad.grad_trace_AXB(A, B)
    assert G.shape == X.shape
    np.testing.assert_allclose(G, naive.numgrad(lambda Z: np.trace(A @ Z @ B), X), atol=1e-8)
    np.testing.assert_allclose(fastgrad.grad_trace_AXB(A, B, layout="numerator"), B @ A, rtol=1e-12)


def test_grad_trace_AXB_shape_error():
    with pytest.raises(ValueError, match=r"A has 2 rows but B has 3 columns, so A X B is not square.*"
                                         r"\(A \(2, 4\), B \(5, 3\)\)"):
        fastgrad.grad_trace_AXB(np.ones((2, 4)), np.ones((5, 3)))


@given(n=sizes, m=sizes, seed=seeds)
def test_grad_sq_norm_affine(n, m, seed):
    rng = np.random.default_rng(seed)
    W, x, b = rng.standard_normal((n, m)), rng.standard_normal(m), rng.standard_normal(n)
    G = fastgrad.grad_sq_norm_affine(W, x, b)
    np.testing.assert_allclose(G, naive.numgrad(lambda Z: np.sum((Z @ x + b) ** 2), W), atol=1e-7)
    np.testing.assert_allclose(fastgrad.grad_sq_norm_affine(W, x, b, layout="numerator"),
                               2 * np.outer(x, W @ x + b), rtol=1e-12)  # numerator layout: 2 x (W x + b)^T


def test_grad_sq_norm_affine_shape_errors():
    with pytest.raises(ValueError, match=r"W has 3 columns but x has 2 elements \(W \(2, 3\), x \(2,\)\)"):
        fastgrad.grad_sq_norm_affine(np.ones((2, 3)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"W has 2 rows but b has 3 elements \(W \(2, 3\), b \(3,\)\)"):
        fastgrad.grad_sq_norm_affine(np.ones((2, 3)), np.ones(3), np.ones(3))


# ---------------------------------------------------------------------------
# inverse


@given(n=sizes, seed=seeds)
def test_dinv_is_the_directional_derivative(n, seed):
    rng = np.random.default_rng(seed)
    X, dX = well_conditioned(rng, n), rng.standard_normal((n, n))
    h = 1e-6
    num = (np.linalg.inv(X + h * dX) - np.linalg.inv(X - h * dX)) / (2 * h)
    np.testing.assert_allclose(fastgrad.dinv(X, dX), num, atol=1e-7)


@pytest.mark.parametrize("order", ["F", "C"])
def test_jacobian_inv_numerical(order, rng, backend):
    n = 3
    X = well_conditioned(rng, n)

    def f(v):
        return fastgrad.vec(np.linalg.inv(fastgrad.unvec(v, (n, n), order=order)), order=order)

    num = naive.numjac(f, fastgrad.vec(X, order=order))
    J = fastgrad.jacobian_inv(X, order, backend=backend)
    np.testing.assert_allclose(J, num, atol=1e-7)
    Xi = np.linalg.inv(X)
    cookbook = -np.kron(Xi.T, Xi) if order == "F" else -np.kron(Xi, Xi.T)
    np.testing.assert_allclose(J, cookbook, rtol=1e-12)
    # it also applies dinv: J vec(dX) = vec(d(X^{-1}))
    dX = rng.standard_normal((n, n))
    np.testing.assert_allclose(J @ fastgrad.vec(dX, order=order), fastgrad.vec(fastgrad.dinv(X, dX), order=order),
                               atol=1e-12)


def test_inverse_errors():
    with pytest.raises(np.linalg.LinAlgError, match="X is singular"):
        fastgrad.dinv(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(np.linalg.LinAlgError, match="X is singular"):
        fastgrad.jacobian_inv(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"dX has shape \(3, 3\) but X has shape \(2, 2\)"):
        fastgrad.dinv(np.eye(2), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"X must be a square matrix, got shape \(3, 2\)"):
        fastgrad.jacobian_inv(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"order must be one of 'F', 'C'; got 'G'"):
        fastgrad.jacobian_inv(np.eye(2), "G")


# ---------------------------------------------------------------------------
# dtypes and layouts shared by all


def test_dtypes_layouts_not_mutated(rng, tmp_path):
    n = 3
    X0 = well_conditioned(rng, n)
    for dtype in (np.float64, np.float32):
        Xd = X0.astype(dtype)
        for label, X in variants(Xd, tmp_path):
            before = X.copy()
            for fn in (fastgrad.grad_logdet, fastgrad.grad_det, fastgrad.jacobian_inv):
                got = fn(X)
                assert got.dtype == dtype, (fn.__name__, label)
                np.testing.assert_allclose(got, fn(X0), rtol=1e-4 if dtype == np.float32 else 1e-12)
            assert fastgrad.grad_trace_AXB(X, X).dtype == dtype
            assert fastgrad.dinv(X, X).dtype == dtype
            assert fastgrad.grad_sq_norm_affine(X, X[0], X[1]).dtype == dtype
            np.testing.assert_array_equal(X, before)
    # mixed float32/float64 -> float64; ints -> float64
    assert fastgrad.grad_trace_AXB(X0.astype(np.float32), X0).dtype == np.float64
    assert fastgrad.grad_det(np.array([[2, 1], [1, 2]])).dtype == np.float64


@pytest.mark.skipif(not hasattr(fastgrad, "numgrad"), reason="fastgrad.numgrad not available")
def test_identities_against_fastgrad_numgrad(rng):
    n = 4
    X = well_conditioned(rng, n)
    A, B = rng.standard_normal((3, n)), rng.standard_normal((n, 3))
    W, x, b = rng.standard_normal((2, n)), rng.standard_normal(n), rng.standard_normal(2)
    cases = [
        (fastgrad.grad_logdet(X), lambda Z: np.linalg.slogdet(Z)[1], X),
        (fastgrad.grad_det(X), np.linalg.det, X),
        (fastgrad.grad_trace_AXB(A, B), lambda Z: np.trace(A @ Z @ B), np.ones((n, n))),
        (fastgrad.grad_sq_norm_affine(W, x, b), lambda Z: np.sum((Z @ x + b) ** 2), W),
    ]
    for G, f, at in cases:
        np.testing.assert_allclose(G, fastgrad.numgrad(f, at, method="five-point"), rtol=1e-7, atol=1e-7)
