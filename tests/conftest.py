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
