"""The one place for backends, threads and compile flags.

Every other module asks this one which backend a call should use, how many
threads a kernel may run on, and which flags a Numba kernel is compiled with.

Backend selection, in order of precedence:

1. the ``backend=`` keyword of a call;
2. ``with fastgrad.use_backend(name):`` (context-local);
3. ``fastgrad.set_backend(name)`` (process-wide);
4. the environment variable ``FASTGRAD_BACKEND`` (read once, at the first call);
5. ``'numba'``.

Threads: ``set_num_threads(n)`` / ``get_num_threads()`` govern both the Numba
kernels and the Cython/OpenMP kernels; ``FASTGRAD_NUM_THREADS`` sets the start
value (default: every core Numba sees).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import numbers
import os
import threading
from collections.abc import Iterator

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "resolve_backend",
    "get_num_threads",
    "set_num_threads",
    "NUMBA_FLAGS",
    "NUMBA_PARALLEL_FLAGS",
    "NUMBA_USER_FLAGS",
    "NUMBA_USER_PARALLEL_FLAGS",
    "PARALLEL_MIN_WORK",
    "MAX_ROW_BLOCKS",
    "MIN_ROWS_PER_BLOCK",
]

BACKENDS = ("numba", "cython", "numpy")
_DEFAULT_BACKEND = "numba"


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that is not built or cannot be imported here."""


# ---------------------------------------------------------------------------
# Compile flags: every @njit in fastgrad takes its options from here.
# fastmath allows re-association and FMA contraction (so reductions vectorise)
# but never the no-NaN/no-Inf flags: NaN and Inf in the data must propagate.
FASTMATH = frozenset({"reassoc", "contract", "nsz", "arcp"})
NUMBA_FLAGS = {"cache": True, "nogil": True, "fastmath": set(FASTMATH), "error_model": "numpy"}
NUMBA_PARALLEL_FLAGS = dict(NUMBA_FLAGS, parallel=True)
# Kernels taking a user's function as an argument (numgrad/numjac over an @njit f):
# compiled once per user function and not cached (a dispatcher argument defeats
# Numba's cache), without fastmath so the compiled path is bitwise equal to the
# Python path over the same f.
NUMBA_USER_FLAGS = dict(NUMBA_FLAGS, cache=False, fastmath=False)
NUMBA_USER_PARALLEL_FLAGS = dict(NUMBA_PARALLEL_FLAGS, cache=False, fastmath=False)

# Reductions over rows use a fixed partition of the rows into blocks that depends
# only on the data's shape, never on the thread count: bitwise-identical results
# for every number of threads.  At most MAX_ROW_BLOCKS blocks (the extra memory
# is O(D*K*MAX_ROW_BLOCKS), never O(N)), each at least MIN_ROWS_PER_BLOCK rows.
MAX_ROW_BLOCKS = 64
MIN_ROWS_PER_BLOCK = 256

# Below this many multiply-adds a call takes the serial path: starting the
# thread pool costs more than the work.
PARALLEL_MIN_WORK = 1 << 17


# ---------------------------------------------------------------------------
# Backends

_BUILD_HINT = {
    "numba": "install it with: pip install numba",
    "cython": (
        "the compiled Cython extensions are missing; build them with a C compiler: "
        "pip install -e . (from a source checkout) or pip install --no-binary fastgrad fastgrad"
    ),
}

_availability: dict[str, str | None] = {}  # name -> None if usable, else the reason
_lock = threading.Lock()


def _probe(name: str) -> str | None:
    """Return None if backend ``name`` imports, else why not."""
    if name == "numpy":
        return None
    module = {"numba": "numba", "cython": "fastgrad._cython.mse"}[name]
    try:
        importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the install
        return f"{exc}"
    return None


def _reason(name: str) -> str | None:
    with _lock:
        if name not in _availability:
            _availability[name] = _probe(name)
        return _availability[name]


def available_backends() -> list[str]:
    """The backends usable in this installation, in order of preference."""
    return [b for b in BACKENDS if _reason(b) is None]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(map(repr, BACKENDS))}")
    return name


_usable: set[str] = set()  # fast path: backends already known to be available


def _require(name: str) -> str:
    if name in _usable:
        return name
    name = _check_name(name)
    why = _reason(name)
    if why is not None:
        raise BackendUnavailableError(
            f"backend {name!r} is not available ({why}); {_BUILD_HINT.get(name, '')}".rstrip("; ")
        )
    _usable.add(name)
    return name


_global_backend: str | None = None
_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastgrad_backend", default=None
)


def set_backend(name: str | None) -> None:
    """Set the process-wide default backend (``None`` restores the default).

    Raises
    ------
    ValueError
        ``name`` is not one of ``'numba'``, ``'cython'``, ``'numpy'``.
    BackendUnavailableError
        the backend is not built in this installation.
    """
    global _global_backend
    _global_backend = None if name is None else _require(name)


def get_backend() -> str:
    """The backend a call without ``backend=`` uses right now."""
    return resolve_backend(None)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager selecting the backend for calls made inside it.

    Examples
    --------
    >>> import fastgrad
    >>> with fastgrad.use_backend("numpy"):
    ...     fastgrad.get_backend()
    'numpy'
    """
    token = _context_backend.set(_require(name))
    try:
        yield name
    finally:
        _context_backend.reset(token)


def resolve_backend(backend: str | None) -> str:
    """The backend a call with keyword ``backend`` uses (validated, available)."""
    if backend is not None:
        return _require(backend)
    name = _context_backend.get()
    if name is not None:
        return name
    if _global_backend is not None:
        return _global_backend
    return _default_backend()


_env_default: str | None = None


def _default_backend() -> str:
    """``FASTGRAD_BACKEND`` (read once, at the first call) if set, else 'numba'."""
    global _env_default
    if _env_default is None:
        env = os.environ.get("FASTGRAD_BACKEND", "").strip().lower()
        _env_default = _require(env) if env else _require(_DEFAULT_BACKEND)
    return _env_default


# ---------------------------------------------------------------------------
# Threads


def _max_threads() -> int:
    try:
        import numba

        return int(numba.config.NUMBA_NUM_THREADS)
    except ImportError:  # pragma: no cover
        return os.cpu_count() or 1


def _initial_threads() -> int:
    env = os.environ.get("FASTGRAD_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"FASTGRAD_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"FASTGRAD_NUM_THREADS must be a positive integer, got {env!r}")
        return min(n, _max_threads())
    return _max_threads()


_num_threads: int | None = None


def get_num_threads() -> int:
    """Number of threads the Numba and Cython/OpenMP kernels run on."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _initial_threads()
    return _num_threads


def set_num_threads(n: int) -> None:
    """Set the number of threads for the Numba and Cython/OpenMP kernels.

    ``n`` must be between 1 and the number of threads Numba was started with
    (``NUMBA_NUM_THREADS``, by default the number of cores).
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    top = _max_threads()
    if not 1 <= int(n) <= top:
        raise ValueError(f"n must be between 1 and {top} (NUMBA_NUM_THREADS), got {n}")
    _num_threads = int(n)


def numba_threads() -> int:
    """Apply the thread count to Numba in the calling thread and return it.

    ``numba.set_num_threads`` is thread-local, so every wrapper calls this right
    before it launches a parallel Numba kernel.
    """
    import numba

    n = get_num_threads()
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


def _configure_numba_threading_layer() -> None:
    """Prefer a thread-safe threading layer (OpenMP or TBB) over 'workqueue'.

    The 'workqueue' layer aborts the process when two Python threads launch
    parallel kernels at once; fastgrad promises concurrent calls work.  A user's
    explicit ``NUMBA_THREADING_LAYER`` is respected.
    """
    try:
        import numba
    except ImportError:  # pragma: no cover
        return
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        for layer in ("omp", "tbb"):
            try:
                importlib.import_module(f"numba.np.ufunc.{layer}pool")
            except ImportError:
                continue
            numba.config.THREADING_LAYER = layer
            return


_configure_numba_threading_layer()


def parallel_guard() -> contextlib.AbstractContextManager:
    """A lock around parallel Numba launches when only 'workqueue' is available.

    With the OpenMP or TBB layer this is a no-op context manager.
    """
    import numba

    if numba.config.THREADING_LAYER in ("omp", "tbb", "threadsafe", "safe"):
        return contextlib.nullcontext()
    return _workqueue_lock


_workqueue_lock = threading.Lock()
