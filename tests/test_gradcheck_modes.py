"""gradcheck: tolerances that follow x's dtype, the failure message, and mode='fast' (one direction first)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import fastgrad
from fastgrad import gradient_checks


def logistic_problem(dtype, n_samples=400, n_features=300, seed=0):
    """Mean logistic loss of weights w and its gradient, computed in ``dtype``."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_samples, n_features)).astype(dtype)
    y = (rng.random(n_samples) < 0.5).astype(dtype)
    w = (0.1 * rng.standard_normal(n_features)).astype(dtype)

    def loss(w):
        z = A @ w
        return np.mean(np.logaddexp(dtype(0), z) - y * z)

    def grad(w):
        z = A @ w
        p = 1 / (1 + np.exp(-z))
        return (A.T @ (p - y) / dtype(n_samples)).astype(dtype)

    return loss, grad, w


class Counter:
    """f with a count of its evaluations."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, x, *args):
        self.calls += 1
        return self.f(x, *args)


# -- defaults by dtype -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("sum_loss", [False, True], ids=["mean", "sum"])
def test_float32_logistic_gradient_passes_with_defaults(mode, sum_loss):
    loss, grad, w = logistic_problem(np.float32)
    if sum_loss:  # |f| in the hundreds: the atol follows max(1, |f(x)|)
        f, g = (lambda w: np.float32(400) * loss(w)), (lambda w: np.float32(400) * grad(w))
    else:
        f, g = loss, grad
    r = fastgrad.gradcheck(f, g, w, mode=mode)
    assert r.ok


def test_float32_defaults_are_needed():
    loss, grad, w = logistic_problem(np.float32)
    r = fastgrad.gradcheck(loss, grad, w, rtol=1e-5, atol=1e-8, raise_exception=False)
    assert not r.ok  # float64's tolerances are too tight for a float32 quotient


def test_default_tolerance_values():
    assert gradient_checks._default_tolerances(np.dtype(np.float64), "central", None, None) == (1e-5, 1e-8, False)
    rtol, atol, scaled = gradient_checks._default_tolerances(np.dtype(np.float32), "central", None, None)
    eps = float(np.finfo(np.float32).eps)
    assert rtol == 1e-3 and scaled
    np.testing.assert_allclose(atol, 20 * eps ** (2 / 3), rtol=1e-12)
    _, atol_fwd, _ = gradient_checks._default_tolerances(np.dtype(np.float32), "forward", None, None)
    np.testing.assert_allclose(atol_fwd, 20 * eps ** 0.5, rtol=1e-12)
    # a tolerance given is used as it is
    assert gradient_checks._default_tolerances(np.dtype(np.float32), "central", 0.5, 0.25) == (0.5, 0.25, False)


def test_float64_defaults_catch_a_small_error():
    x = np.linspace(-1, 1, 7)
    f = lambda z: float(np.sum(np.sin(z)))  # noqa: E731
    assert fastgrad.gradcheck(f, np.cos, x).ok
    r = fastgrad.gradcheck(f, lambda z: np.cos(z) * (1 + 1e-4), x, raise_exception=False)
    assert not r.ok


# -- wrong gradients fail in both modes ------------------------------------------------------

WRONG = {
    "sign": lambda g, h: -g,
    "scale": lambda g, h: 2.0 * g,
    "h^2 slip": lambda g, h: (h * h) * g,  # `/ 2*h`: divides by 2, multiplies by h
    "one entry": None,
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("kind", list(WRONG))
def test_wrong_gradients_fail(kind, mode, dtype):
    loss, grad, w = logistic_problem(dtype, n_samples=200, n_features=40)
    h = float(np.finfo(dtype).eps) ** (1 / 3)
    if kind == "one entry":
        def wrong(w):
            g = grad(w).copy()
            g[17] += dtype(0.5) * np.max(np.abs(g))
            return g
    else:
        def wrong(w):
            return WRONG[kind](grad(w), dtype(h)).astype(dtype)

    r = fastgrad.gradcheck(loss, wrong, w, mode=mode, raise_exception=False)
    assert not r.ok
    assert r.analytic.shape == r.numeric.shape == w.shape  # the full check named the entries
    if kind == "one entry":
        assert r.worst_index == (17,)
    with pytest.raises(fastgrad.GradientMismatchError) as info:
        fastgrad.gradcheck(loss, wrong, w, mode=mode)
    message = str(info.value)
    assert f"{np.dtype(dtype).name} x" in message
    if dtype == np.float32:
        assert "rtol=0.001, atol=0.000484436 max(1, |f(x)|) = " in message
    else:
        assert "rtol=1e-05, atol=1e-08," in message


def test_message_text():
    x = np.array([0.5, -1.0, 2.0])

    def wrong(z):
        return np.cos(z) + [0.0, 1e-3, 0.0]

    with pytest.raises(fastgrad.GradientMismatchError) as info:
        fastgrad.gradcheck(lambda z: float(np.sum(np.sin(z))), wrong, x)
    first = str(info.value).splitlines()[0]
    assert first == ("gradient check failed: 1 of 3 entries differ (|analytic - numeric| > atol + rtol |numeric|, "
                     "float64 x, rtol=1e-05, atol=1e-08, method='central'); worst at index (1,):")
    with pytest.raises(fastgrad.GradientMismatchError) as info:
        fastgrad.gradcheck(lambda z: np.sum(np.sin(z)), lambda z: np.cos(z) + np.float32(0.5) * (z > 0),
                           x.astype(np.float32), atol=1e-3)
    assert "float32 x, rtol=0.001, atol=0.001, method='central')" in str(info.value).splitlines()[0]


# -- mode='fast' -----------------------------------------------------------------------------


def test_fast_mode_costs_at_most_three_evaluations():
    x = np.random.default_rng(1).uniform(-1, 1, 10_000)
    f = Counter(lambda z: float(np.sum(np.sin(z) * z)))
    grads = Counter(lambda z: np.cos(z) * z + np.sin(z))
    r = fastgrad.gradcheck(f, grads, x, mode="fast")
    assert r.ok and f.calls <= 3 and grads.calls == 1
    assert r.worst_index == () and np.ndim(r.analytic) == np.ndim(r.numeric) == 0
    assert r.max_abs_err <= 1e-8
    f32 = Counter(lambda z: np.sum(np.sin(z) * z))
    assert fastgrad.gradcheck(f32, lambda z: np.cos(z) * z + np.sin(z), x.astype(np.float32), mode="fast").ok
    assert f32.calls == 3  # f(x) for the atol, and the two points along the direction


def test_fast_mode_falls_back_to_the_full_check():
    x = np.random.default_rng(2).uniform(-1, 1, 50)
    f = Counter(lambda z: float(np.sum(np.sin(z) * z)))

    def wrong(z):
        g = np.cos(z) * z + np.sin(z)
        g[31] += 0.5
        return g

    r = fastgrad.gradcheck(f, wrong, x, mode="fast", raise_exception=False)
    assert not r.ok and r.worst_index == (31,)
    assert f.calls == 2 + 2 * x.size + 1  # the direction, then every entry
    np.testing.assert_allclose(r.numeric, np.cos(x) * x + np.sin(x), rtol=1e-7, atol=1e-8)


def test_fast_mode_is_deterministic_and_njit():
    @njit
    def f(z):
        return np.sum(z ** 3)

    x = np.random.default_rng(3).uniform(-1, 1, (20, 5))
    r1 = fastgrad.gradcheck(f, lambda z: 3 * z ** 2, x, mode="fast")
    r2 = fastgrad.gradcheck(f, lambda z: 3 * z ** 2, x, mode="fast")
    assert r1.ok and r1 == r2


def test_fast_mode_given_step_and_args():
    x = np.linspace(0.1, 2.0, 30)
    f = lambda z, c: float(c * np.sum(np.log(z)))  # noqa: E731
    assert fastgrad.gradcheck(f, lambda z, c: c / z, x, args=(3.0,), mode="fast", h=1e-4).ok
    assert not fastgrad.gradcheck(f, lambda z, c: 1 / z, x, args=(3.0,), mode="fast", raise_exception=False).ok


def test_bad_mode_and_tolerances_refused_before_any_work():
    f = Counter(lambda z: float(np.sum(z ** 2)))
    with pytest.raises(ValueError, match="mode must be one of 'full', 'fast'; got 'quick'"):
        fastgrad.gradcheck(f, lambda z: 2 * z, np.ones(3), mode="quick")
    with pytest.raises(TypeError, match="rtol must be a real number"):
        fastgrad.gradcheck(f, lambda z: 2 * z, np.ones(3), rtol="1e-5", mode="fast")
    with pytest.raises(ValueError, match="h must be finite and > 0"):
        fastgrad.gradcheck(f, lambda z: 2 * z, np.ones(3), h=0.0, mode="fast")
    assert f.calls == 0
    with pytest.raises(ValueError, match=r"grad returned an array of shape \(2,\) but x has shape \(3,\)"):
        fastgrad.gradcheck(f, lambda z: z[:2], np.ones(3), mode="fast")


def test_empty_x():
    r = fastgrad.gradcheck(lambda z: 0.0, lambda z: np.zeros(0), np.zeros(0), mode="fast")
    assert r.ok and r.worst_index == ()


def test_adaptive_method_in_gradcheck():
    x = np.linspace(-1, 1, 5)
    r = fastgrad.gradcheck(lambda z: float(np.sum(np.exp(z))), np.exp, x, method="adaptive", rtol=1e-10, atol=0)
    assert r.ok and r.max_rel_err < 1e-11
