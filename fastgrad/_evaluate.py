r"""Evaluating a user's f at many perturbed points: one by one, stacked, or on workers.

Numerical differentiation evaluates f at points that differ from x in a few
entries: point p is x with ``x.flat[idx[k]] = vals[k]`` for
``ptr[p] <= k < ptr[p+1]`` (one entry for a dense Jacobian column, every column
of a group for a sparse Jacobian).  :func:`evaluate` returns the results as
rows of a float64 (or complex) array ``F[p] = ravel f(point p)``; the caller
forms the difference quotients from whole rows of F with numpy.

Every evaluation gets a fresh copy of x with its entries changed: an f that
keeps or writes its argument cannot shift another point (what scipy's
``approx_derivative`` does too: it forms ``x + h e_j`` anew for every point).

How f is called:

* serially, one point per call (the default);
* ``vectorized=True``: f takes a stack of points, shape ``(B,) + x.shape``, and
  returns ``(B,)`` or ``(B,) + f.shape``: ``B`` points per call, at most
  ``chunk_size`` (default: as many as fit in :data:`STACK_BYTES`);
* ``workers``: an int (a pool of that many threads, useful only when f
  releases the GIL), a ``concurrent.futures.Executor``, or a map-like callable
  ``workers(func, iterable)`` (scipy's convention), each task a contiguous
  chunk of points.  The rows of F do not depend on how the points are split:
  every strategy gives the same bits.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _config

__all__ = ["Points", "evaluate", "block_columns", "STACK_BYTES", "ArrayCheck", "Stopped", "timed_python"]

#: memory of the stacked points of one call of a vectorized f (default chunk_size)
STACK_BYTES = 64 * 2**20

#: memory of the results of one block of points evaluated one at a time, serially: the block's
#: differences are taken while its results are in cache, and the allocator hands the same small
#: buffers back block after block instead of fresh pages from the OS.  Measured on numjac of a
#: Python f with m = 2000, n = 50: 64 MiB blocks 7.7 ms, 1 MiB blocks ~400 page faults and 1-1.7 ms
#: of system time per call, 256 KiB none (6.3 ms; scipy's approx_derivative 6.3-9.4 ms).
SERIAL_BLOCK_BYTES = 256 * 2**10


def block_columns(points_per_column: int, m: int, workers: Any = None, vectorized: bool = False,
                  **_: Any) -> int:
    """Columns of x per :func:`evaluate` call when each column has ``points_per_column`` points of m results.

    The results of a block (16 bytes each, room for complex) stay within
    :data:`SERIAL_BLOCK_BYTES` when points are evaluated one at a time, within
    :data:`STACK_BYTES` when they are stacked or sent to workers (fewer,
    larger calls).  Takes ``evaluate``'s keyword arguments.
    """
    serial = workers is None and not vectorized
    budget = SERIAL_BLOCK_BYTES if serial else STACK_BYTES
    return max(1, budget // (16 * points_per_column * max(m, 1)))


class Stopped(Exception):
    """A worker was told to stop: Ctrl-C, or f raised in another worker."""


class Points:
    """Perturbed points of x: point p sets ``x.flat[idx[k]] = vals[k]`` for ``ptr[p] <= k < ptr[p+1]``."""

    __slots__ = ("ptr", "idx", "vals", "single")

    def __init__(self, ptr: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> None:
        self.ptr = ptr
        self.idx = idx
        self.vals = vals
        self.single = bool(ptr.size - 1 == idx.size)  # one changed entry per point

    def __len__(self) -> int:
        return self.ptr.size - 1

    def part(self, lo: int, hi: int) -> Points:
        """Points ``lo <= p < hi`` (their own arrays: a task sent to another process carries only them)."""
        a, b = self.ptr[lo], self.ptr[hi]
        return Points(self.ptr[lo:hi + 1] - a, self.idx[a:b], self.vals[a:b])


class ArrayCheck:
    """One result of an array-valued f: numbers of dtype kind in ``kinds`` and shape ``shape``, else an error.

    A class, not a closure, so that a task carrying it can be pickled for a
    process pool.
    """

    def __init__(self, kinds: str, shape: tuple) -> None:
        self.kinds = kinds
        self.shape = shape

    def __call__(self, value: Any) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind not in self.kinds:
            what = "real numbers" if "c" not in self.kinds else "numbers"
            raise TypeError(f"f must return {what}, got {type(value).__name__} of dtype {arr.dtype}")
        if arr.shape != self.shape:
            raise ValueError(f"f returned shape {arr.shape} at x + h e_j but {self.shape} at x")
        return arr


def timed_python(f: Callable, x: np.ndarray, args: tuple, vectorized: bool = False) -> tuple[Any, float]:
    """``(f(copy of x, *args), seconds)`` of a Python f; vectorized: f at the stack of the one point x."""
    xc = x.copy()[None] if vectorized else x.copy()
    t0 = time.perf_counter()
    value = f(xc, *args)
    return value, time.perf_counter() - t0


class _Task:
    """Evaluate f at a chunk of points (picklable when f, args and check are): returns the rows of F."""

    def __init__(self, f, x, args, check, m, dtype, vectorized, chunk_size, stop=None):
        self.f, self.x, self.args, self.check = f, x, args, check
        self.m, self.dtype, self.vectorized, self.chunk_size = m, dtype, vectorized, chunk_size
        self.stop = stop

    def __getstate__(self):
        state = dict(self.__dict__)
        state["stop"] = None  # another process cannot see this one's event
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __call__(self, points: Points) -> np.ndarray:
        F = np.empty((len(points), self.m), self.dtype)
        if self.vectorized:
            for lo in range(0, len(points), self.chunk_size):
                hi = min(lo + self.chunk_size, len(points))
                self._stacked(points, lo, hi, F)
        else:
            self._serial(points, F)
        return F

    def _serial(self, points: Points, F: np.ndarray) -> None:
        f, x, args, check, stop = self.f, self.x, self.args, self.check, self.stop
        ptr, idx, vals = points.ptr, points.idx, points.vals
        for p in range(len(points)):
            if stop is not None and stop.is_set():
                raise Stopped
            xp = x.copy()
            flat = xp.reshape(-1)
            if points.single:
                flat[idx[p]] = vals[p]
            else:
                flat[idx[ptr[p]:ptr[p + 1]]] = vals[ptr[p]:ptr[p + 1]]
            F[p] = np.ravel(check(f(xp, *args)))

    def _stacked(self, points: Points, lo: int, hi: int, F: np.ndarray) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Stopped
        x, B = self.x, hi - lo
        X = np.empty((B,) + x.shape, x.dtype)
        X[...] = x
        flat = X.reshape(B, -1)
        a, b = points.ptr[lo], points.ptr[hi]
        rows = np.repeat(np.arange(B), np.diff(points.ptr[lo:hi + 1]))
        flat[rows, points.idx[a:b]] = points.vals[a:b]
        value = self.f(X, *self.args)
        arr = np.asarray(value)
        shape = (B,) + getattr(self.check, "shape", ())
        if arr.shape != shape:
            raise ValueError(
                f"f (vectorized=True) must return shape {shape} for a stack of {B} points of shape "
                f"{x.shape}, but returned shape {arr.shape}")
        if arr.dtype.kind not in getattr(self.check, "kinds", "iuf"):
            self.check(arr.reshape(-1)[0] if arr.ndim == 1 else arr[0])  # raises f's TypeError
        F[lo:hi] = arr.reshape(B, self.m)


def _pool_size(workers: Any) -> int:
    if isinstance(workers, int):
        return workers
    size = getattr(workers, "_max_workers", None)
    return int(size) if isinstance(size, int) and size > 0 else max(1, _config.get_num_threads())


def evaluate(f: Callable, x: np.ndarray, args: tuple, points: Points, check: Callable, m: int,
             dtype: Any = np.float64, *, vectorized: bool = False, chunk_size: int | None = None,
             workers: Any = None, seconds: float | None = None) -> np.ndarray:
    """``F[p] = ravel check(f(point p, *args))`` for every point: an array (len(points), m) of ``dtype``.

    ``workers`` None (serial), an int >= 1, an Executor or a map-like callable;
    ``seconds`` the time of one evaluation of f (or of one stacked call) if
    known: an int pool is used only when the evaluations together take at
    least ``_config.USER_WORKERS_MIN_S`` and there are at least two points per
    thread (a pool costs more than it saves on a tiny problem).
    """
    P = len(points)
    if chunk_size is None:
        chunk_size = max(1, STACK_BYTES // max(1, x.nbytes))
    if vectorized:
        chunk_size = max(1, min(chunk_size, P))
    if P == 0:
        return np.empty((0, m), dtype)
    if isinstance(workers, int) and workers > 1:
        calls = (P + chunk_size - 1) // chunk_size if vectorized else P
        cheap = seconds is not None and seconds * calls < _config.USER_WORKERS_MIN_S
        if cheap or calls < 2 * workers:
            workers = None
    elif isinstance(workers, int):
        workers = None
    stop = threading.Event() if workers is not None else None  # dropped when a task is pickled
    task = _Task(f, x, args, check, m, dtype, vectorized, chunk_size, stop)
    if workers is None:
        return task(points)
    size = _pool_size(workers)
    stacks = (P + chunk_size - 1) // chunk_size if vectorized else P
    n_chunks = min(P, max(stacks if vectorized else 1, 4 * size))
    bounds = [(c * P // n_chunks, (c + 1) * P // n_chunks) for c in range(n_chunks)]
    parts = [points.part(lo, hi) for lo, hi in bounds]
    F = np.empty((P, m), dtype)
    if isinstance(workers, int):
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, n_chunks))
        try:
            _on_executor(pool, task, parts, bounds, F, stop)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    elif isinstance(workers, concurrent.futures.Executor):
        _on_executor(workers, task, parts, bounds, F, stop)
    else:
        try:
            results = workers(task, parts)
            for (lo, hi), rows in zip(bounds, results, strict=True):
                F[lo:hi] = rows
        except BaseException:
            if stop is not None:
                stop.set()
            raise
    return F


def _on_executor(pool: concurrent.futures.Executor, task: _Task, parts: list, bounds: list, F: np.ndarray,
                 stop: threading.Event | None) -> None:
    """Run the tasks on an Executor; the first exception (f's or Ctrl-C) stops and cancels the rest."""
    futures: list = []
    try:
        futures = [pool.submit(task, part) for part in parts]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for fut in futures:  # the first chunk (in order) that failed
            if fut.done() and not fut.cancelled() and fut.exception() is not None:
                raise fut.exception()
        for (lo, hi), fut in zip(bounds, futures, strict=True):
            F[lo:hi] = fut.result()
    except BaseException:
        if stop is not None:
            stop.set()
        for fut in futures:
            fut.cancel()
        raise
