"""Backend selection and its precedence, availability errors, environment variables."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastgrad
from fastgrad import _config


@pytest.fixture
def clean_backend():
    yield
    fastgrad.set_backend(None)


def test_default_and_available():
    assert fastgrad.available_backends()[0] == "numba"
    assert "numpy" in fastgrad.available_backends()
    assert fastgrad.get_backend() == "numba"


def test_precedence(clean_backend, monkeypatch):
    calls = []
    import fastgrad.mse as m

    real = m._dispatch
    monkeypatch.setattr(m, "_dispatch", lambda v, b: calls.append(_config.resolve_backend(b)) or real(v, b))
    A, y, w = np.ones((4, 2)), np.ones((4, 1)), np.ones((2, 1))  # 2-D: always through _dispatch
    fastgrad.set_backend("numpy")
    fastgrad.mse_grad(A, y, w)
    with fastgrad.use_backend("numba"):
        fastgrad.mse_grad(A, y, w)
        fastgrad.mse_grad(A, y, w, backend="numpy")
        with fastgrad.use_backend("numpy"):
            fastgrad.mse_grad(A, y, w)
        fastgrad.mse_grad(A, y, w)
    fastgrad.mse_grad(A, y, w)
    fastgrad.set_backend(None)
    fastgrad.mse_grad(A, y, w)
    assert calls == ["numpy", "numba", "numpy", "numpy", "numba", "numpy", "numba"]


def test_use_backend_restores_on_error(clean_backend):
    with pytest.raises(KeyError), fastgrad.use_backend("numpy"):
        raise KeyError
    assert fastgrad.get_backend() == "numba"


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        fastgrad.set_backend("torch")
    with pytest.raises(ValueError, match="unknown backend"), fastgrad.use_backend("jax"):
        pass


def test_unavailable_backend_says_how_to_build(monkeypatch, clean_backend):
    monkeypatch.setitem(_config._availability, "cython", "No module named 'fastgrad._cython.mse'")
    monkeypatch.setattr(_config, "_usable", set())
    assert "cython" not in fastgrad.available_backends()
    for call in (lambda: fastgrad.set_backend("cython"),
                 lambda: fastgrad.mse_grad(np.ones((2, 1)), np.ones(2), np.ones(1), backend="cython")):
        with pytest.raises(fastgrad.BackendUnavailableError, match="pip install -e .") as exc:
            call()
        assert isinstance(exc.value, RuntimeError)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_environment_variables():
    r = _run("import fastgrad; print(fastgrad.get_backend(), fastgrad.get_num_threads())",
             FASTGRAD_BACKEND="numpy", FASTGRAD_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["numpy", "1"]
    r = _run("import fastgrad; fastgrad.get_backend()", FASTGRAD_BACKEND="cuda")
    assert r.returncode != 0 and "unknown backend 'cuda'" in r.stderr
    r = _run("import fastgrad; fastgrad.get_num_threads()", FASTGRAD_NUM_THREADS="zero")
    assert r.returncode != 0 and "FASTGRAD_NUM_THREADS must be a positive integer" in r.stderr


def test_threading_layer_is_thread_safe():
    import numba

    assert numba.config.THREADING_LAYER in ("omp", "tbb") or "NUMBA_THREADING_LAYER" in os.environ


def test_no_stray_compile_flags():
    # every @njit takes its options from _config; none may use the no-NaN/no-Inf fast-math flags
    import pathlib
    import re

    root = pathlib.Path(fastgrad.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"@(?:numba\.)?(?:njit|jit)\s*$", text, re.M), (path, "bare @njit")
        assert not re.search(r"['\"](nnan|ninf)['\"]", text), path
        for m in re.finditer(r"@(?:numba\.)?njit\(([^)]*)\)", text):
            args = m.group(1)
            if path.name == "floors.py":  # the bandwidth floor of the benchmarks, not a kernel
                continue
            # only the flag sets defined in _config (imported from it, or as _config.NAME)
            assert re.fullmatch(r"\*\*(?:_config\.)?NUMBA_\w*FLAGS", args.strip()), (path, args)
            assert "NUMBA_FLAGS =" not in text or path.name == "_config.py", path
    for pyx in root.rglob("*.pyx"):
        assert "ffast-math" not in pyx.read_text()
    assert _config.FASTMATH.isdisjoint({"nnan", "ninf", "fast"})


def test_cython_built_with_openmp():
    if "cython" not in fastgrad.available_backends():
        pytest.skip("Cython backend not built")
    from fastgrad._cython import mse

    # setup.py builds with OpenMP whenever the compiler accepts -fopenmp (gcc here),
    # unless FASTGRAD_NO_OPENMP=1 asked for the serial build
    assert mse.has_openmp() == (os.environ.get("FASTGRAD_NO_OPENMP") != "1")
