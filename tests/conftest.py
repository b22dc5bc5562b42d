"""Shared fixtures: the backends to cross, thread counts, hostile array variants."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

import fastgrad

# Hypothesis: deterministic in CI, no deadline (the first call of a kernel compiles it).
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

BACKENDS = fastgrad.available_backends()
COMPILED = [b for b in BACKENDS if b != "numpy"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every available backend, the numpy reference included."""
    return request.param


@pytest.fixture(params=COMPILED)
def compiled_backend(request):
    """The compiled backends (numba, cython)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restore the thread count after a test changes it."""
    before = fastgrad.get_num_threads()
    yield
    fastgrad.set_num_threads(before)


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads={n}")
def n_threads(request):
    """Run the test at 1 and at 2 threads (restored afterwards); the value is the count."""
    before = fastgrad.get_num_threads()
    n = min(request.param, _max_threads())
    fastgrad.set_num_threads(n)
    yield n
    fastgrad.set_num_threads(before)


def _max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def variants(arr: np.ndarray, tmp_path=None):
    """Yield (label, array) views/copies of ``arr`` with hostile layouts, all equal to arr."""
    yield "C", np.ascontiguousarray(arr)
    yield "F", np.asfortranarray(arr)
    ro = np.array(arr)
    ro.flags.writeable = False
    yield "readonly", ro
    if arr.ndim >= 1:
        big = np.zeros((arr.shape[0] * 2,) + arr.shape[1:], dtype=arr.dtype)
        big[::2] = arr
        yield "strided", big[::2]
    if tmp_path is not None:
        mm = np.lib.format.open_memmap(tmp_path / f"mm{arr.ndim}_{arr.size}.npy", mode="w+",
                                       dtype=arr.dtype, shape=arr.shape)
        mm[...] = arr
        mm.flush()
        yield "memmap", np.load(tmp_path / f"mm{arr.ndim}_{arr.size}.npy", mmap_mode="r")


_USER_SETUP = """
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
setup(name={name!r}, ext_modules=cythonize(
    [Extension({name!r}, [{name!r} + ".pyx"], include_dirs=[np.get_include()])],
    include_path=[{root!r}], language_level=3), script_args=["build_ext", "--inplace", "-q"])
"""


def run_user_extension(tmp_path, name: str, pyx: str, pxd: str, check: str) -> None:
    """Cythonize ``pyx`` (which cimports fastgrad's ``pxd``) as module ``name`` in tmp_path,
    then run the Python code ``check`` there; it must print ``ok``.  Skips if Cython is not built."""
    import pathlib
    import subprocess
    import sys
    import textwrap

    if "cython" not in fastgrad.available_backends():
        pytest.skip("Cython backend not built")
    pytest.importorskip("Cython")
    pkg = pathlib.Path(fastgrad.__file__).parent
    assert (pkg / "_cython" / pxd).exists(), f"{pxd} is not shipped"
    (tmp_path / f"{name}.pyx").write_text(pyx)
    (tmp_path / "setup.py").write_text(_USER_SETUP.format(name=name, root=str(pkg.parent)))
    r = subprocess.run([sys.executable, "setup.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(check)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
