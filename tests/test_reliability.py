"""Robustness in the user's process: refused inputs, forked children, environment, NUMBA_DISABLE_JIT."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import COMPILED

import fastgrad


def _run(code: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


# ---------------------------------------------------------------------------
# Inputs that would silently lose meaning are refused

MASKED = np.ma.masked_array([[1.0, 2.0], [3.0, 1e9]], mask=[[0, 0], [0, 1]])

REFUSERS = {
    "mse_grad A": lambda X: fastgrad.mse_grad(X, np.ones(2), np.ones(2)),
    "mse_grad y": lambda X: fastgrad.mse_grad(np.ones((2, 2)), X[:, 0], np.ones(2)),
    "mse_loss w": lambda X: fastgrad.mse_loss(np.ones((2, 2)), np.ones(2), X[0]),
    "mse_numgrad A": lambda X: fastgrad.mse_numgrad(X, np.ones(2), np.ones(2)),
    "MSEObjective A": lambda X: fastgrad.MSEObjective(X, np.ones(2)),
    "kron A": lambda X: fastgrad.kron(X, np.eye(2)),
    "jacobian_AXB B": lambda X: fastgrad.jacobian_AXB(np.eye(2), X),
    "jacobian_Wx x": lambda X: fastgrad.jacobian_Wx(X[0], 2),
    "grad_logdet X": lambda X: fastgrad.grad_logdet(X),
    "dense_forward X": lambda X: fastgrad.dense_forward(X, np.ones((2, 3)), np.ones(3)),
    "dense_backward dZ": lambda X: fastgrad.dense_backward(np.ones((2, 2)), np.ones((2, 2)), X),
    "mlp2 X": lambda X: fastgrad.mlp2_loss_and_grad(X, np.array([0, 1]), np.ones((2, 3)), np.ones(3),
                                                   np.ones((3, 2)), np.ones(2)),
    "numgrad x": lambda X: fastgrad.numgrad(lambda x: float(np.sum(x)), X),
    "numjac x": lambda X: fastgrad.numjac(lambda x: x, X),
    "fit_linear A": lambda X: fastgrad.fit_linear(X, np.ones(2), lr=0.1, epochs=1),
}


@pytest.mark.parametrize("call", REFUSERS, ids=str)
def test_masked_arrays_are_refused(call):
    with pytest.raises(TypeError, match="masked arrays are not supported"):
        REFUSERS[call](MASKED)


#: the MSE family reads a scipy.sparse A as it is (tests/test_mse_sparse.py)
SPARSE_ACCEPTED = {"mse_grad A", "MSEObjective A"}


@pytest.mark.parametrize("call", [c for c in REFUSERS if "x" not in c.split()[-1] and c not in SPARSE_ACCEPTED],
                         ids=str)
def test_sparse_input_is_refused_with_a_pointer(call):
    with pytest.raises(TypeError, match=r"scipy.sparse .*dense arrays only.*format='csr'"):
        REFUSERS[call](sp.csr_array(np.array([[1.0, 2.0], [3.0, 4.0]])))


def test_ragged_sequence_names_the_argument():
    with pytest.raises(ValueError, match="^A could not be read as an array"):
        fastgrad.mse_grad([[1.0, 2.0], [3.0]], np.ones(2), np.ones(2))


def test_empty_sample_axis_message_matches_the_reduction():
    with pytest.raises(ValueError, match="empty sample axis leaves nothing to fit"):
        fastgrad.mse_grad(np.ones((0, 2)), np.ones(0), np.ones(2), reduction="sum")
    with pytest.raises(ValueError, match="the mean over an empty sample axis is undefined"):
        fastgrad.mse_grad(np.ones((0, 2)), np.ones(0), np.ones(2))


# ---------------------------------------------------------------------------
# Environment variables are validated at import, naming the variable


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5"])
def test_invalid_num_threads_fails_at_import(value):
    r = _run("import fastgrad", FASTGRAD_NUM_THREADS=value)
    assert r.returncode != 0
    assert "FASTGRAD_NUM_THREADS" in r.stderr and repr(value) in r.stderr


def test_invalid_backend_fails_at_import_naming_the_variable():
    r = _run("import fastgrad", FASTGRAD_BACKEND="bogus")
    assert r.returncode != 0
    assert "FASTGRAD_BACKEND='bogus'" in r.stderr and "unknown backend 'bogus'" in r.stderr


# ---------------------------------------------------------------------------
# Forked children (multiprocessing's default start method on Linux)

FORK = """
import concurrent.futures, multiprocessing as mp, sys
import numpy as np, fastgrad
be, threads = sys.argv[1], int(sys.argv[2])
fastgrad.set_num_threads(threads)
rng = np.random.default_rng(0)
A = rng.standard_normal((100_000, 16)); y = rng.standard_normal(100_000); w = np.zeros(16)
X = rng.standard_normal((300_000, 8)); W = rng.standard_normal((8, 4)); dZ = rng.standard_normal((300_000, 4))
g0 = fastgrad.mse_grad(A, y, w, backend=be)          # a parallel kernel ran in the parent
b0 = fastgrad.dense_backward(X, W, dZ, backend=be)[2]
S = np.asfortranarray(A[:, ::-1])[:, ::-1]  # neither C nor F: Numba runs its parallel target, one thread included
s0 = fastgrad.mse_grad(S, y, w, backend=be)

def work(i):
    g = fastgrad.mse_grad(A, y, w, backend=be)
    b = fastgrad.dense_backward(X, W, dZ, backend=be)[2]
    s = fastgrad.mse_grad(S, y, w, backend=be)  # the child runs it serially (no parallel runtime after a fork)
    same = np.array_equal(g, g0) and np.array_equal(b, b0) and np.allclose(s, s0, rtol=1e-12, atol=0)
    return same, fastgrad.get_num_threads()

with concurrent.futures.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
    res = list(ex.map(work, range(3)))
assert all(same for same, _ in res), res
print("children ran on", sorted({n for _, n in res}), "thread(s)")
"""


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", COMPILED)
def test_forked_child_after_a_parallel_call(backend, threads, tmp_path):
    # with Numba the child used to be killed ("fork() called from a process already using
    # GNU OpenMP"), with Cython the pool hung forever: the child must run, serially
    script = tmp_path / "fork.py"
    script.write_text(FORK)
    r = subprocess.run([sys.executable, str(script), backend, str(threads)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "children ran on [1] thread(s)" in r.stdout


# ---------------------------------------------------------------------------
# NUMBA_DISABLE_JIT=1 (what a user sets to debug their own @njit loss)

DISABLE_JIT = """
import numpy as np, fastgrad
from numba import njit
rng = np.random.default_rng(0)
A = rng.standard_normal((3000, 6)); y = rng.standard_normal(3000); w = rng.standard_normal(6)
fastgrad.set_num_threads(2)
for be in fastgrad.available_backends():
    g = fastgrad.mse_grad(A, y, w, backend=be)
    assert np.allclose(g, fastgrad.mse_grad(A, y, w, backend="numpy")), be
    fastgrad.mse_numgrad(A, y, w, backend=be)
    fastgrad.kron(np.ones((2, 3)), np.ones((3, 2)), backend=be)
    fastgrad.jacobian_Wx(np.ones(3), 2, backend=be)
    X = rng.standard_normal((50, 4)); W = rng.standard_normal((4, 3))
    fastgrad.dense_forward(X, W, np.ones(3), backend=be)
    fastgrad.dense_backward(X, W, np.ones((50, 3)), backend=be)
    fastgrad.mlp2_loss_and_grad(X, rng.integers(0, 3, 50), W, np.ones(3), np.ones((3, 3)), np.ones(3),
                                backend=be)

@njit
def f(x):
    return np.sum(x ** 2)

x = np.arange(5.0)
for fn in (f, lambda x: float(np.sum(x ** 2))):
    assert np.allclose(fastgrad.numgrad(fn, x), 2 * x)
    assert np.allclose(fastgrad.numjac(lambda x: x ** 2, x), np.diag(2 * x))
    assert np.allclose(fastgrad.approx_fprime(x, fn), 2 * x, atol=1e-5)
    assert fastgrad.check_grad(fn, lambda x: 2 * x, x) < 1e-5
    assert fastgrad.gradcheck(fn, lambda x: 2 * x, x).ok
print("ok")
"""


def test_numba_disable_jit_works():
    r = _run(DISABLE_JIT, NUMBA_DISABLE_JIT="1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")


def test_numba_disable_jit_every_public_function():
    # `fastgrad check` runs every registry check, which together name every public function
    r = _run("from fastgrad.cli import main; raise SystemExit(main(['check']))", NUMBA_DISABLE_JIT="1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "all passed" in r.stdout


# ---------------------------------------------------------------------------
# fit_linear


def test_fit_linear_callback_returning_numpy_true_stops():
    A = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = A @ np.array([3.0, -1.0])
    res = fastgrad.fit_linear(A, y, lr=0.1, epochs=50, callback=lambda k, w, loss: np.bool_(k == 3))
    assert len(res.losses) == 4
    res = fastgrad.fit_linear(A, y, lr=0.1, epochs=5, callback=lambda k, w, loss: np.False_)
    assert len(res.losses) == 6


def test_fit_linear_divergence_warns_naming_lr():
    A = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = A @ np.array([3.0, -1.0])
    with pytest.warns(RuntimeWarning, match=r"diverged.*lr=100 is too large"), np.errstate(all="ignore"):
        res = fastgrad.fit_linear(A, y, lr=100.0, epochs=2000)
    assert not np.isfinite(res.losses[-1])


def test_fit_linear_check_finite():
    A = np.array([[1.0, np.nan], [0.0, 2.0]])
    with pytest.raises(ValueError, match="A contains NaN or Inf"):
        fastgrad.fit_linear(A, np.ones(2), check_finite=True)


# ---------------------------------------------------------------------------
# check_finite everywhere; NaN propagation in the identities

FINITE_CALLS = {
    "kron": lambda X: fastgrad.kron(X, np.eye(2), check_finite=True),
    "grad_logdet": lambda X: fastgrad.grad_logdet(X, check_finite=True),
    "grad_det": lambda X: fastgrad.grad_det(X, check_finite=True),
    "grad_trace_AXB": lambda X: fastgrad.grad_trace_AXB(X, np.eye(2), check_finite=True),
    "grad_sq_norm_affine": lambda X: fastgrad.grad_sq_norm_affine(X, np.ones(2), np.ones(2), check_finite=True),
    "dinv": lambda X: fastgrad.dinv(np.eye(2), X, check_finite=True),
    "jacobian_inv": lambda X: fastgrad.jacobian_inv(X, check_finite=True),
    "fit_linear": lambda X: fastgrad.fit_linear(X, np.ones(2), check_finite=True),
}


@pytest.mark.parametrize("call", FINITE_CALLS, ids=str)
def test_check_finite_refuses_nan(call):
    X = np.array([[2.0, np.nan], [0.0, 4.0]])
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        FINITE_CALLS[call](X)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_grad_det_propagates_nan(bad):
    G = fastgrad.grad_det(np.array([[1.0, bad], [2.0, 3.0]]))
    assert G.shape == (2, 2) and np.isnan(G).all()


# ---------------------------------------------------------------------------
# The reference backend's cross-entropy indexes the label's log-probability


@pytest.mark.parametrize("backend", fastgrad.available_backends())
def test_cross_entropy_with_a_minus_inf_logit(backend):
    # an impossible class (logit -inf) that is not the label: probability 0, no NaN
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 3))
    W1, b1 = rng.standard_normal((3, 4)), np.zeros(4)
    W2 = rng.standard_normal((4, 3))
    b2 = np.array([0.0, 0.0, -np.inf])
    y = np.array([0, 1, 0, 1, 1, 0])
    loss, grads = fastgrad.mlp2_loss_and_grad(X, y, W1, b1, W2, b2, backend=backend)
    ref, _ = fastgrad.mlp2_loss_and_grad(X, y, W1, b1, W2, np.array([0.0, 0.0, -1e300]), backend=backend)
    assert np.isfinite(loss) and loss == pytest.approx(ref, rel=1e-12)
    assert all(np.isfinite(g).all() for g in grads[:2])
