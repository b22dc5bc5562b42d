"""Every bad-input rule of SPEC section 1 for the MSE functions: exact type and message."""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastgrad
from fastgrad import _validate

A = np.zeros((3, 2))
y = np.zeros(3)
w = np.zeros(2)

SHAPE_ERRORS = [
    (np.zeros(3), y, w, "A must be 2-D (N, D), got an array of shape (3,)"),
    (np.zeros((3, 2, 1)), y, w, "A must be 2-D (N, D), got an array of shape (3, 2, 1)"),
    (A, y, np.zeros((2, 1, 1)), "w must be 1-D (D,) or 2-D (D, K), got an array of shape (2, 1, 1)"),
    (A, y, np.zeros(4), "A has 2 columns but w has 4 rows (A (3, 2), w (4,))"),
    (A, np.zeros(4), w, "A has 3 rows but y has 4 (A (3, 2), y (4,))"),
    (A, np.zeros((4, 2)), np.zeros((2, 2)), "A has 3 rows but y has 4 (A (3, 2), y (4, 2))"),
    (A, np.zeros((3, 1)), w, "w has shape (2,), so y must be 1-D (N,); got y with shape (3, 1)"),
    (A, y, np.zeros((2, 1)), "w has shape (2, 1), so y must be 2-D (N, K); got y with shape (3,)"),
    (A, np.zeros((3, 3)), np.zeros((2, 2)), "w has 2 columns but y has 3 (w (2, 2), y (3, 3))"),
    (np.zeros((0, 2)), np.zeros(0), w, "A has 0 rows (shape (0, 2)): the mean over an empty sample axis"),
    (A, np.zeros((3, 0)), np.zeros((2, 0)), "w has 0 columns (shape (2, 0)): the mean over zero outputs"),
]


@pytest.mark.parametrize("fn", [fastgrad.mse_loss, fastgrad.mse_grad, fastgrad.mse_loss_and_grad])
@pytest.mark.parametrize("A_, y_, w_, msg", SHAPE_ERRORS)
def test_shape_errors(fn, A_, y_, w_, msg, backend):
    with pytest.raises(ValueError, match=re.escape(msg)):
        fn(A_, y_, w_, backend=backend)


def test_empty_sample_axis_is_an_error_for_sum_too():
    with pytest.raises(ValueError, match="empty sample axis"):
        fastgrad.mse_grad(np.zeros((0, 2)), np.zeros(0), w, reduction="sum")
    # zero outputs with reduction='sum' are a well-defined empty gradient
    assert fastgrad.mse_grad(A, np.zeros((3, 0)), np.zeros((2, 0)), reduction="sum").shape == (2, 0)


@pytest.mark.parametrize("bad, name", [
    (np.zeros((3, 2), dtype=complex), "A"),
    (np.array([["a", "b"]] * 3), "A"),
    (np.array([[object(), 1]] * 3, dtype=object), "A"),
    (np.zeros((3, 2), dtype="datetime64[s]"), "A"),
])
def test_non_real_dtypes_raise_typeerror(bad, name, backend):
    with pytest.raises(TypeError, match=f"^{name} (is complex|has dtype)"):
        fastgrad.mse_grad(bad, y, w, backend=backend)
    with pytest.raises(TypeError, match="^w is complex"):
        fastgrad.mse_grad(A, y, w.astype(complex), backend=backend)
    with pytest.raises(TypeError, match="^y is complex"):
        fastgrad.mse_grad(A, y.astype(complex), w, backend=backend)


def test_reduction_must_be_known():
    with pytest.raises(ValueError, match=re.escape("reduction must be one of 'mean', 'sum'; got 'avg'")):
        fastgrad.mse_loss(A, y, w, reduction="avg")
    with pytest.raises(ValueError, match="reduction must be one of"):
        fastgrad.mse_grad(A, y, w, reduction=None)


def test_out_errors():
    with pytest.raises(ValueError, match=re.escape("out has shape (3,) but the result has shape (2,)")):
        fastgrad.mse_grad(A, y, w, out=np.zeros(3))
    with pytest.raises(TypeError, match="out has dtype float32 but the result has dtype float64"):
        fastgrad.mse_grad(A, y, w, out=np.zeros(2, dtype=np.float32))
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fastgrad.mse_grad(A, y, w, out=ro)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray, got list"):
        fastgrad.mse_grad(A, y, w, out=[0.0, 0.0])


@pytest.mark.parametrize("which", ["A", "y", "w"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite(which, bad):
    args = {"A": A.copy(), "y": y.copy(), "w": w.copy()}
    args[which].flat[0] = bad
    with pytest.raises(ValueError, match=f"^{which} contains NaN or Inf \\(check_finite=True\\)$"):
        fastgrad.mse_loss_and_grad(args["A"], args["y"], args["w"], check_finite=True)
    fastgrad.mse_loss_and_grad(args["A"], args["y"], args["w"])  # propagates, no error


def test_errors_raised_before_any_work(monkeypatch):
    # the kernels must never see invalid input: make them explode if called
    import fastgrad.mse as m

    monkeypatch.setattr(m, "_dispatch", lambda *a, **k: pytest.fail("kernel called on bad input"))
    with pytest.raises(ValueError):
        fastgrad.mse_grad(A, np.zeros(4), w)
    with pytest.raises(TypeError):
        fastgrad.mse_grad(A, y, w, out=np.zeros(2, dtype=np.float32))


def test_check_step():
    for good in (1e-3, np.array([1e-3, 2.0]), 1):
        _validate.check_step(good)
    for bad in (0.0, -1.0, np.nan, np.inf, np.array([1e-3, 0.0]), np.array([])):
        with pytest.raises(ValueError, match="h must be finite and > 0"):
            _validate.check_step(bad)
    with pytest.raises(TypeError, match="h must be a real number"):
        _validate.check_step("0.1")


def test_check_positive_int():
    assert _validate.check_positive_int(np.int64(3), "n") == 3
    with pytest.raises(ValueError, match="epochs must be >= 0, got -1"):
        _validate.check_positive_int(-1, "epochs", minimum=0)
    with pytest.raises(TypeError, match="n must be an integer, got float"):
        _validate.check_positive_int(2.0, "n")
    with pytest.raises(TypeError, match="n must be an integer, got bool"):
        _validate.check_positive_int(True, "n")


def test_unknown_backend_rejected_before_work():
    with pytest.raises(ValueError, match=re.escape("unknown backend 'cuda'; choose one of 'cython', 'numba', 'numpy'")):
        fastgrad.mse_grad(A, y, w, backend="cuda")
