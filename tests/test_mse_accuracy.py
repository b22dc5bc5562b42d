"""Accuracy of the MSE loss and gradient against extended precision, compared with numpy's expression.

The kernels sum each chunk of rows from zero and add the chunk partials, and the
block partials, with compensated summation; the loss is compensated group by
group.  Their rounding error must be no larger than that of numpy's
``mean((A w - y)**2)`` (pairwise summation) and ``(2/N) A^T (A w - y)`` (BLAS) at
every N, up to a floor of a few units in the last place where both are exact to
rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from conftest import BACKENDS, COMPILED

import fastgrad

EPS = np.finfo(np.float64).eps
# Below this relative error both results are correct to a few roundings: the
# comparison with numpy stops there (e.g. N = 100, where the last bit of one
# gradient entry can go either way).
FLOOR = 4 * EPS


def exact(A, y, w, s=None, b=0.0):
    """Loss and gradient in long double (80-bit here): the yardstick."""
    A, y, w = (np.asarray(x, dtype=np.longdouble) for x in (A, y, w))
    s = np.ones(len(y), dtype=np.longdouble) if s is None else np.asarray(s, dtype=np.longdouble)
    r = y - A @ w - np.longdouble(b)
    c = 1 / np.sum(s)
    return c * np.sum(s * r * r), -2 * c * (A.T @ (s * r))


def numpy_expression(A, y, w):
    r = A @ w - y
    return float(np.mean(r * r)), (2.0 / len(y)) * (A.T @ r)


def rel_errors(loss, grad, ref_loss, ref_grad):
    gscale = float(np.max(np.abs(ref_grad)))
    return (abs(float(np.longdouble(loss) - ref_loss)) / abs(float(ref_loss)),
            float(np.max(np.abs(np.asarray(grad, dtype=np.longdouble) - ref_grad))) / gscale)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= EPS, reason="long double is float64 on this platform")
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("N", [10, 100, 1000, 10_000, 100_000, 1_000_000])
@pytest.mark.parametrize("case", ["fit", "offset"])
def test_at_least_as_accurate_as_numpy(backend, N, case):
    rng = np.random.default_rng(N)
    D = 4
    A = rng.standard_normal((N, D)) + 100.0  # columns far from zero: the gradient's sum cancels
    if case == "fit":  # near a solution: small residuals formed from large terms
        w_true = rng.standard_normal(D)
        y = A @ w_true + 1e-3 * rng.standard_normal(N) + 50.0
        w = w_true + 1e-7 * rng.standard_normal(D)
    else:  # w = 0: the residual is y itself, the error is all in the sums
        y = 1e3 + rng.standard_normal(N)
        w = np.zeros(D)
    ref_loss, ref_grad = exact(A, y, w)
    np_loss_err, np_grad_err = rel_errors(*numpy_expression(A, y, w), ref_loss, ref_grad)
    for layout in (A, np.asfortranarray(A)):
        loss_err, grad_err = rel_errors(*fastgrad.mse_loss_and_grad(layout, y, w, backend=backend),
                                        ref_loss, ref_grad)
        assert loss_err <= max(np_loss_err, FLOOR), (loss_err, np_loss_err)
        assert grad_err <= max(np_grad_err, FLOOR), (grad_err, np_grad_err)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= EPS, reason="long double is float64 on this platform")
@pytest.mark.parametrize("backend", COMPILED)
def test_weighted_with_intercept_accurate(backend):
    rng = np.random.default_rng(7)
    N, D = 300_000, 3
    A = rng.standard_normal((N, D)) + 10.0
    s = rng.random(N)
    y = A @ np.ones(D) + 2.0 + rng.standard_normal(N)
    w = np.ones(D)
    ref_loss, ref_grad = exact(A, y, w, s, 2.0)
    loss, (gw, _) = fastgrad.mse_loss_and_grad(A, y, w, sample_weight=s, intercept=2.0, backend=backend)
    # numpy's weighted expression, for comparison
    r = A @ w + 2.0 - y
    np_loss = float(np.sum(s * r * r) / np.sum(s))
    np_grad = 2.0 * (A.T @ (s * r)) / np.sum(s)
    np_errs = rel_errors(np_loss, np_grad, ref_loss, ref_grad)
    errs = rel_errors(loss, gw, ref_loss, ref_grad)
    assert errs[0] <= max(np_errs[0], FLOOR)
    assert errs[1] <= max(np_errs[1], FLOOR)


@pytest.mark.parametrize("backend", COMPILED)
def test_compensation_keeps_terms_a_running_sum_loses(backend):
    # per-row gradient terms 1e16, 1, -1e16: a running sum gives 0 (1e16 + 1 rounds
    # back to 1e16), a compensated one the exact 1.  In three row blocks (N = 768),
    # and in three chunks of one block (N = 64 * 3 * chunk, with D = 2 a chunk is
    # CHUNK_MAX_ROWS rows).
    from fastgrad._numba.mse import chunk_rows_for

    chunk = chunk_rows_for(2, 1)
    for N, apart in ((768, 256), (64 * 3 * chunk, chunk)):
        A = np.zeros((N, 2))
        y = np.zeros(N)
        A[0, 0], y[0] = 1e8, 1e8
        A[apart, 0], y[apart] = 1.0, 1.0
        A[2 * apart, 0], y[2 * apart] = -1e8, 1e8
        layouts = (A, np.asfortranarray(A)) if N == 768 else (A,)
        for layout in layouts:
            _, g = fastgrad.mse_loss_and_grad(layout, y, np.zeros(2), reduction="sum", backend=backend)
            assert g.tolist() == [-2.0, 0.0]
            _, (g, gb) = fastgrad.mse_loss_and_grad(layout, y, np.zeros(2), intercept=[0.0],
                                                    reduction="sum", backend=backend)
            assert g.tolist() == [-2.0, 0.0]
            assert gb.tolist() == [-2.0 * (1e8 + 1.0 + 1e8)]
    # the loss: squared residuals 1e16, 1, 1 in three runs of 16 rows sum to 1e16 + 2 exactly
    y = np.zeros(48)
    y[0], y[16], y[32] = 1e8, 1.0, 1.0
    loss = fastgrad.mse_loss(np.zeros((48, 1)), y, np.zeros(1), reduction="sum", backend=backend)
    assert loss == 1e16 + 2.0
    # the same in a Fortran-order A, in runs of 64 rows of a tile
    y = np.zeros(192)
    y[0], y[64], y[128] = 1e8, 1.0, 1.0
    loss = fastgrad.mse_loss(np.zeros((192, 2), order="F"), y, np.zeros(2), reduction="sum", backend=backend)
    assert loss == 1e16 + 2.0


def _precision_loss_exits(make_fg):
    """Runs of CG with gtol 1e-10 that stop on "precision loss", over 60 random (200, 6) problems."""
    count = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((200, 6)) + 5.0
        y = A @ rng.standard_normal(6) + rng.standard_normal(200)
        res = scipy.optimize.minimize(make_fg(A, y), np.zeros(6), jac=True, method="CG",
                                      options={"gtol": 1e-10})
        count += res.status == 2  # "Desired error not necessarily achieved due to precision loss."
    return count


def test_cg_precision_loss_no_more_often_than_numpy():
    def numpy_fg(A, y):
        return lambda w: numpy_expression(A, y, w)

    reference = _precision_loss_exits(numpy_fg)
    for backend in COMPILED:
        count = _precision_loss_exits(lambda A, y, b=backend: fastgrad.MSEObjective(A, y, backend=b).loss_and_grad)
        assert count <= reference, (backend, count, reference)


# (Numba's strided kernels share their sums' code with its C-order ones and would compile
# their weighted, intercept variants for this test alone: about 40 s each with an empty cache)
OVERFLOW_LAYOUTS = [(b, layout) for b in BACKENDS for layout in ("C", "F", "strided")
                    if not (b == "numba" and layout == "strided")]


@pytest.mark.parametrize(("backend", "layout"), OVERFLOW_LAYOUTS)
@pytest.mark.parametrize("K", [0, 3])
@pytest.mark.parametrize("N", [2, 3000])
def test_overflowing_or_infinite_residual_gives_inf_not_nan(backend, layout, K, N):
    """A residual whose square overflows (or that is Inf) makes the compensated sums' running total
    Inf; its error term is then NaN (Inf - Inf), and the finished sum must be the total, Inf, as
    numpy's plain sum gives it, not NaN: the loss, the gradient and the intercept's gradient."""
    A = np.zeros((N, 2))
    A[:, 0] = 1.0
    A[:, 1] = np.linspace(0.5, 1.5, N)
    A = {"C": A, "F": np.asfortranarray(A), "strided": np.repeat(A, 2, axis=1)[:, ::2]}[layout]
    w = np.zeros((2, K) if K else 2)
    for big in (1e160, np.inf):
        y = np.ones((N, K) if K else N)
        y[N // 2] = big  # in a middle row block and chunk for N = 3000
        for kw in ({}, {"intercept": np.full(K, 0.5) if K else 0.5, "sample_weight": np.full(N, 2.0)}):
            with np.errstate(over="ignore", invalid="ignore"):
                got = fastgrad.mse_loss_and_grad(A, y, w, backend=backend, **kw)
                want = fastgrad.mse_loss_and_grad(np.ascontiguousarray(A), y, w, backend="numpy", **kw)
                loss = fastgrad.mse_loss(A, y, w, backend=backend, **kw)
            assert loss == np.inf and got[0] == np.inf and want[0] == np.inf
            for g, r in zip(got[1] if kw else (got[1],), want[1] if kw else (want[1],), strict=True):
                assert not np.isnan(g).any(), g
                np.testing.assert_allclose(g, r, rtol=1e-12)  # -inf / the finite sums where numpy has them
