"""One kernel body, two compile targets: serial and parallel.

A Numba kernel that spreads its work with ``prange`` is written once and
compiled twice: for the serial target (``prange`` runs as ``range``, no thread
pool is touched, cheap for small inputs) and for the parallel target.  The
parallel dispatcher is built from a copy of the function with its own
``__qualname__`` (``<name>_parallel``): Numba's on-disk cache names its files
after the qualified name and does not key them on the ``parallel`` option, so
two dispatchers of one function object would overwrite each other's cache.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from numba import njit

from .. import _config

__all__ = ["jit_targets", "variant", "launch", "launch_one_target"]


def jit_targets(fn: Callable, flags: dict | None = None) -> tuple[Any, Any]:
    """``(serial, parallel)`` dispatchers compiled from the one body ``fn``."""
    flags = _config.NUMBA_FLAGS if flags is None else flags
    serial = njit(**flags)(fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    twin.__doc__ = f"The parallel target of :func:`{fn.__name__}` (same body, blocks over threads)."
    twin.__module__ = fn.__module__
    parallel = njit(**dict(flags, parallel=_config.NUMBA_PARALLEL_OPTIONS))(twin)
    return serial, parallel


def variant(fn: Callable, suffix: str, **constants: Any) -> Callable:
    """A copy of ``fn`` whose module globals named in ``constants`` take the given values.

    Numba compiles a global as a constant (a value, or a compiled function the
    body calls), so ``njit`` of the copy is another specialisation of the one
    body: its branches on those values folded away, or other functions called.
    The copy has its own ``__qualname__`` (``<name>_<suffix>``) for Numba's
    on-disk cache.  The globals are copied when this is called: define ``fn``
    after everything it calls.
    """
    twin = types.FunctionType(fn.__code__, dict(fn.__globals__, **constants), fn.__name__ + "_" + suffix,
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_" + suffix
    twin.__doc__ = fn.__doc__
    twin.__module__ = fn.__module__
    return twin


def launch(serial: Any, parallel: Any, n_threads: int, *args: Any) -> Any:
    """Run ``serial(*args)`` for one thread, else ``parallel(*args)`` on ``n_threads`` threads."""
    if n_threads <= 1:
        return serial(*args)
    _config.numba_threads(n_threads)
    with _config.parallel_guard():
        return parallel(*args)


def launch_one_target(serial: Any, parallel: Any, n_threads: int, *args: Any) -> Any:
    """Run ``parallel(*args)`` on ``n_threads`` threads, one thread included.

    For kernels whose bits must not depend on which target ran them where the
    two targets' machine code can differ (see ``fastgrad._numba.mse.loss_grad``).
    In a child forked after a parallel launch, where no parallel runtime may
    start again, ``serial(*args)`` (every call there runs on one thread).
    """
    if not _config.parallel_runtime_usable():
        return serial(*args)
    _config.numba_threads(max(1, n_threads))
    with _config.parallel_guard():
        return parallel(*args)
