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


DEFAULT = "cython" if "cython" in fastgrad.available_backends() else "numba"


def test_default_and_available():
    # the compiled backend with no compile wait: Cython where built, else Numba
    assert fastgrad.available_backends()[0] == DEFAULT
    assert "numpy" in fastgrad.available_backends() and "numba" in fastgrad.available_backends()
    assert fastgrad.get_backend() == DEFAULT
    name, why = _config.default_backend_and_reason()
    assert name == DEFAULT and why


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
    assert calls == ["numpy", "numba", "numpy", "numpy", "numba", "numpy", DEFAULT]


def test_use_backend_restores_on_error(clean_backend):
    with pytest.raises(KeyError), fastgrad.use_backend("numpy"):
        raise KeyError
    assert fastgrad.get_backend() == DEFAULT


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

    _config.NUMBA_FLAGS  # noqa: B018 - sets Numba up for fastgrad, as the first Numba kernel module does
    assert numba.config.THREADING_LAYER in ("omp", "tbb") or "NUMBA_THREADING_LAYER" in os.environ


NO_NUMBA = """
import sys
import numpy as np
import fastgrad
heavy = ("numba", "scipy.sparse.linalg")
assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
assert fastgrad.get_backend() == "cython"
rng = np.random.default_rng(0)
A, y, w = rng.random((50, 3)), rng.random(50), rng.random(3)
fastgrad.mse_loss_and_grad(A, y, w, sample_weight=np.ones(50), intercept=0.5, alpha=0.1)
fastgrad.mse_hessp(A, w)
fastgrad.mse_numgrad(A, y, w)
f = lambda x: float((x ** 2).sum())
fastgrad.numgrad(f, w)
fastgrad.numgrad(f, w, method="adaptive")
fastgrad.numjac(lambda x: np.outer(x, x), w)
fastgrad.numhess(f, w)
fastgrad.check_grad(f, lambda x: 2 * x, w)
fastgrad.kron(A[:3], A[:2])
fastgrad.jacobian_Wx(w, 4, format="csr")
fastgrad.jacobian_AXB(A[:3], A[:4].T)
W = rng.random((3, 2))
fastgrad.dense_backward(A, W, fastgrad.dense_forward(A, W, np.zeros(2)))
fastgrad.mlp2_loss_and_grad(A, y[:, None], rng.random((3, 4)), rng.random(4), rng.random((4, 1)), rng.random(1),
                            loss="mse")
assert "numba" not in sys.modules, "a call imported numba"
K = fastgrad.KronOperator(A[:3], A[:2])  # imports scipy.sparse.linalg now
assert "scipy.sparse.linalg" in sys.modules and "numba" not in sys.modules
assert np.allclose(K @ np.ones(9), np.kron(A[:3], A[:2]) @ np.ones(9))
print("ok")
"""


def test_import_and_the_cython_backend_import_no_numba():
    # import fastgrad takes 0.2-0.3 s, not 1 s: Numba (0.6-1 s) is imported and set up on the first
    # call that needs it, scipy.sparse.linalg when KronOperator is first asked for; the default
    # backend's calls, a Python f's derivatives included, need neither
    if "cython" not in fastgrad.available_backends():
        pytest.skip("Cython backend not built")
    env = {k: v for k, v in os.environ.items() if k != "FASTGRAD_BACKEND"}
    r = subprocess.run([sys.executable, "-c", NO_NUMBA], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


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


PRANGE_ONLY = """
import types
import numba
import numpy as np
from fastgrad import _config
from fastgrad._numba import hessian, kron, mse, mse_hessp, mse_sparse, nn, numdiff

parallel = [obj for mod in (hessian, kron, mse, mse_hessp, mse_sparse, nn, numdiff)
            for obj in vars(mod).values()
            if isinstance(obj, numba.core.registry.CPUDispatcher) and obj.targetoptions.get("parallel")]
assert len(parallel) >= 20, len(parallel)
for disp in parallel:
    assert disp.targetoptions["parallel"] is _config.NUMBA_PARALLEL_OPTIONS, disp.py_func.__qualname__
assert _config.NUMBA_PARALLEL["prange"] and not any(
    v for k, v in _config.NUMBA_PARALLEL.items() if k not in ("prange", "fusion"))
for key, value in _config.NUMBA_PARALLEL.items():
    assert getattr(_config.NUMBA_PARALLEL_OPTIONS, key) == value, key

# the MSE kernel's parallel target compiled afresh (no cache): its scratch arrays
# are allocated serially, one parallel loop (the row blocks; it was three)
fn = mse._model_loss_grad
twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_test", fn.__defaults__, fn.__closure__)
disp = numba.njit(**dict(_config.NUMBA_PARALLEL_FLAGS, cache=False))(twin)
rng = np.random.default_rng(0)
A = rng.standard_normal((600, 3))
# twice, two signatures: Numba once emptied a dict of options at the first compile,
# and the second compile then ran with every option on
for dtype in (np.float64, np.float32):
    disp(A.astype(dtype), rng.standard_normal((600, 1)), rng.standard_normal((1, 3)), None, None, 1.0,
         np.empty((3, 1)), None, False)
assert len(disp.signatures) == 2
for sig in disp.signatures:
    diagnostics = disp.overloads[sig].metadata["parfor_diagnostics"]
    assert len(diagnostics.initial_parfors) == 1, (sig, len(diagnostics.initial_parfors))
assert _config.NUMBA_PARALLEL["prange"] and not _config.NUMBA_PARALLEL["numpy"]
print("ok")
"""


def test_parallel_targets_run_prange_loops_only():
    # Numba's parallel target would make every np.zeros and array expression of a
    # kernel a parallel region of its own (a thread-team launch each); fastgrad's
    # parallel targets parallelise their explicit prange loops only.  In a fresh
    # interpreter: the kernel modules' dispatchers as imported, whatever other tests did.
    r = subprocess.run([sys.executable, "-c", PRANGE_ONLY], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_cython_built_with_openmp():
    if "cython" not in fastgrad.available_backends():
        pytest.skip("Cython backend not built")
    from fastgrad._cython import mse

    # setup.py builds with OpenMP whenever the compiler accepts -fopenmp (gcc here),
    # unless FASTGRAD_NO_OPENMP=1 asked for the serial build
    assert mse.has_openmp() == (os.environ.get("FASTGRAD_NO_OPENMP") != "1")


# ---------------------------------------------------------------------------
# The one dispatcher and the kernel protocol

WRAPPERS = ("mse.py", "numdiff.py", "gradient_checks.py", "kron.py", "nn.py", "identities.py", "train.py",
            "dask.py", "hessian.py", "taylor.py", "sparsity.py")


def test_wrappers_name_no_backend_and_import_no_kernel_module():
    # the wrappers go through _config.kernels(); only it knows the backends' packages
    import pathlib
    import re

    root = pathlib.Path(fastgrad.__file__).parent
    for name in WRAPPERS:
        path = root / name
        if not path.exists():
            continue
        text = path.read_text()
        body = text.split("def _self_checks", 1)[0]  # `fastgrad check` cases may name backends
        assert not re.search(r"""[=!]=\s*['"](numba|cython|numpy)['"]""", body), name
        assert not re.search(r"""['"](numba|cython|numpy)['"]\s*[=!]=""", body), name
        assert not re.search(r"from\s+\.?_(numba|cython|numpy)\b|import\s+fastgrad\._(numba|cython|numpy)", body), name


def test_unknown_backend_or_family_fails_loudly():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        _config.kernels("mse", "jax")
    with pytest.raises(ValueError, match="unknown kernel family 'loss'"):
        _config.kernels("loss", "numpy")


@pytest.mark.parametrize("family", _config.FAMILIES)
def test_every_backend_exports_the_family_protocol(family):
    # the numpy backend's module lists the protocol; every other backend has the same names
    import inspect

    names = _config.kernels(family, "numpy").__all__
    assert names
    for backend in fastgrad.available_backends():
        mod = _config.kernels(family, backend)
        for name in names:
            fn = getattr(mod, name, None)
            assert callable(fn), (backend, family, name)
            try:
                params = list(inspect.signature(fn).parameters)
            except (TypeError, ValueError):  # a Cython def without an embedded signature
                continue
            ref = list(inspect.signature(getattr(_config.kernels(family, "numpy"), name)).parameters)
            assert len(params) == len(ref), (backend, family, name, params, ref)
            if ref and ref[-1] == "n_threads":
                assert params[-1] == "n_threads", (backend, family, name, params)


def test_row_partition_is_said_once():
    # the Numba kernels compile _config.row_blocks itself; the Cython kernels call it
    from fastgrad._numba import mse as nb

    for N in (0, 1, 255, 256, 257, 16383, 16384, 16385, 10**6, 10**9 + 7):
        assert nb.row_blocks(N) == _config.row_blocks(N)
        assert _config.row_blocks(N) >= _config.MIN_ROWS_PER_BLOCK
        assert -(-max(N, 1) // _config.row_blocks(N)) <= _config.MAX_ROW_BLOCKS


def test_cython_codes_equal_the_python_ones():
    if "cython" not in fastgrad.available_backends():
        pytest.skip("Cython backend not built")
    from fastgrad._cython import numdiff

    assert numdiff.METHOD_CODES == _config.METHOD_CODES


def test_cython_mse_constants_equal_the_numba_ones():
    # the row walk, tile rule, chunks and loss runs: one partition of the sums in both backends
    if "cython" not in fastgrad.available_backends():
        pytest.skip("Cython backend not built")
    from fastgrad._cython import mse as cy
    from fastgrad._numba import mse as nb

    assert cy.CONSTANTS == {name: getattr(nb, name) for name in cy.CONSTANTS}
    assert len(cy.CONSTANTS) == 13
    # the chunk rule, written in each backend
    for D in (1, 2, 3, 4, 7, 15, 16, 17, 24, 31, 64, 65, 512, 10_000):
        for K in (1, 2, 3, 5):
            rows = nb.chunk_rows_for(D, K)
            assert cy.chunk_rows_for(D, K) == rows, (D, K)
            assert nb.CHUNK_ROWS <= rows <= nb.CHUNK_MAX_ROWS and rows % nb.GROUP == 0
