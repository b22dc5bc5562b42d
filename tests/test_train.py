"""fit_linear: gradient descent on the linear-model MSE (seed 004)."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
from naive import mse_loss_grad as naive_mse_loss_grad

import fastgrad
from fastgrad.demo import SEED004_TRACE, SEED004_W, seed004_problem


def gd_twin(A, y, w0, lr, epochs):
    """Plain loop twin: losses[k] after k updates w <- w - lr g (naive loss and gradient)."""
    w = np.array(w0, dtype=np.float64)
    losses = [naive_mse_loss_grad(A, y, w)[0]]
    for _ in range(epochs):
        w = w - lr * naive_mse_loss_grad(A, y, w)[1]
        losses.append(naive_mse_loss_grad(A, y, w)[0])
    return w, np.array(losses)


@pytest.fixture
def problem(rng):
    A = rng.standard_normal((20, 3))
    y = A @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.standard_normal(20)
    return A, y


@pytest.mark.parametrize("grad", ["analytic", "central"])
def test_fit_linear_matches_loop_twin(backend, problem, grad):
    A, y = problem
    w0 = np.array([0.3, 0.1, -0.2])
    res = fastgrad.fit_linear(A, y, lr=0.05, epochs=30, grad=grad, w0=w0, backend=backend)
    w, losses = gd_twin(A, y, w0, 0.05, 30)
    assert isinstance(res, fastgrad.FitResult) and res.losses.dtype == np.float64
    assert len(res.losses) == 31
    np.testing.assert_allclose(res.losses, losses, rtol=1e-9)
    np.testing.assert_allclose(res.w, w, rtol=1e-9)
    assert res.losses[0] == pytest.approx(fastgrad.mse_loss(A, y, w0))


def test_fit_linear_converges_and_defaults(problem):
    A, y = problem
    res = fastgrad.fit_linear(A, y, lr=0.1, epochs=400)
    np.testing.assert_allclose(res.w, np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-6)
    assert res.losses[0] == pytest.approx(np.mean(y**2))  # w0 defaults to zeros
    assert np.all(np.diff(res.losses) <= 1e-15)  # monotone up to rounding at the minimum


def test_fit_linear_2d_targets_and_dtypes(rng):
    A = rng.standard_normal((15, 4)).astype(np.float32)
    Y = rng.standard_normal((15, 2)).astype(np.float32)
    res = fastgrad.fit_linear(A, Y, lr=0.05, epochs=5)
    assert res.w.shape == (4, 2) and res.w.dtype == np.float32
    w, losses = gd_twin(A, Y, np.zeros((4, 2)), 0.05, 5)
    np.testing.assert_allclose(res.losses, losses, rtol=1e-5)
    assert fastgrad.fit_linear(A, Y.astype(np.float64), epochs=1).w.dtype == np.float64


@pytest.mark.parametrize("grad", ["analytic", "central"])
def test_seed004_trace_reproduced(backend, grad):
    """Seed 004's printed trace at lr = h**2 = 0.01, to the printed digits."""
    A, Y, W0 = seed004_problem()
    res = fastgrad.fit_linear(A, Y, lr=0.01, epochs=1000, grad=grad, h=0.1 if grad == "central" else None,
                              w0=W0, backend=backend)
    assert len(res.losses) == 1001
    for k, printed in SEED004_TRACE.items():
        assert res.losses[k] == pytest.approx(printed, rel=1e-9), k
    np.testing.assert_allclose(res.w.ravel(), SEED004_W, atol=5e-9)


def test_seed004_slip_is_lr_h_squared():
    """The seed's step (L(w+h) - L(w-h)) / 2*h equals h**2 times the central difference quotient."""
    A, Y, W0 = seed004_problem()
    h = 0.1

    def loss(W):
        return ((Y - A @ W) ** 2).mean()

    seed_step = np.array([(loss(W0 + h * e[:, None]) - loss(W0 - h * e[:, None])) / 2 * h for e in np.eye(3)])
    g = fastgrad.mse_grad(A, Y, W0).ravel()
    np.testing.assert_allclose(seed_step, h**2 * g, rtol=1e-10)


def test_fit_linear_callback_and_early_stop(problem):
    A, y = problem
    seen = []

    def cb(epoch, w, loss):
        seen.append((epoch, w, loss))
        w[:] = 1e9  # a copy: the run is unaffected
        return epoch == 4

    res = fastgrad.fit_linear(A, y, lr=0.05, epochs=10, callback=cb)
    full = fastgrad.fit_linear(A, y, lr=0.05, epochs=4)
    assert [e for e, _, _ in seen] == [1, 2, 3, 4]
    assert len(res.losses) == 5
    np.testing.assert_array_equal(res.losses, full.losses)
    np.testing.assert_array_equal(res.w, full.w)
    assert seen[-1][2] == res.losses[4]
    assert fastgrad.fit_linear(A, y, epochs=3, callback=lambda *a: None).losses.shape == (4,)


def test_fit_linear_zero_epochs_and_w0_untouched(problem):
    A, y = problem
    w0 = np.array([1.0, 2.0, 3.0])
    w0.flags.writeable = False
    res = fastgrad.fit_linear(A, y, epochs=0, w0=w0)
    assert res.losses.shape == (1,) and np.array_equal(res.w, w0) and not np.shares_memory(res.w, w0)
    res = fastgrad.fit_linear(A, y, epochs=2, w0=w0)
    assert np.array_equal(w0, [1.0, 2.0, 3.0])


def test_fit_linear_progress_bar(problem, capsys):
    A, y = problem
    res = fastgrad.fit_linear(A, y, epochs=60, progress=True)
    err = capsys.readouterr().err
    assert "fit_linear" in err and "60/60" in err
    assert len(res.losses) == 61


def test_fit_linear_progress_without_tqdm(problem, monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("No module named 'tqdm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with pytest.raises(ImportError, match=r"pip install fastgrad\[progress\]"):
        fastgrad.fit_linear(*problem, epochs=2, progress=True)


def test_fit_linear_bad_input(problem):
    A, y = problem
    for lr in (0, -0.1, np.nan, np.inf):
        with pytest.raises(ValueError, match="lr must be finite and > 0"):
            fastgrad.fit_linear(A, y, lr=lr)
    with pytest.raises(TypeError, match="lr must be a real number"):
        fastgrad.fit_linear(A, y, lr="0.1")
    with pytest.raises(ValueError, match="epochs must be >= 0, got -1"):
        fastgrad.fit_linear(A, y, epochs=-1)
    with pytest.raises(TypeError, match="epochs must be an integer"):
        fastgrad.fit_linear(A, y, epochs=2.5)
    with pytest.raises(ValueError, match="grad must be one of 'analytic', 'central'; got 'forward'"):
        fastgrad.fit_linear(A, y, grad="forward")
    with pytest.raises(ValueError, match="needs grad='central'"):
        fastgrad.fit_linear(A, y, h=0.1)
    with pytest.raises(ValueError, match="h must be finite and > 0"):
        fastgrad.fit_linear(A, y, grad="central", h=-1.0)
    with pytest.raises(ValueError, match=r"w0 has shape \(2,\) but A \(20, 3\) and y \(20,\) need weights of "
                                         r"shape \(3,\)"):
        fastgrad.fit_linear(A, y, w0=np.zeros(2))
    with pytest.raises(ValueError, match=r"A has 20 rows but y has 19"):
        fastgrad.fit_linear(A, y[:19])
    with pytest.raises(TypeError, match="callback must be callable"):
        fastgrad.fit_linear(A, y, callback=3)


def test_fit_linear_divergence_propagates(problem):
    A, y = problem
    with np.errstate(over="ignore", invalid="ignore"), pytest.warns(RuntimeWarning, match="diverged.*lr=10"):
        res = fastgrad.fit_linear(A * 1e3, y, lr=10.0, epochs=200)
    assert not np.isfinite(res.losses[-1]) and len(res.losses) == 201
