"""The one place for backends, threads and compile flags.

Every other module asks this one which backend a call should use, how many
threads a kernel may run on, and which flags a Numba kernel is compiled with.

Backend selection, in order of precedence:

1. the ``backend=`` keyword of a call;
2. ``with fastgrad.use_backend(name):`` (context-local);
3. ``fastgrad.set_backend(name)`` (process-wide);
4. the environment variable ``FASTGRAD_BACKEND`` (validated at import);
5. ``'cython'`` where its extension is built, else ``'numba'``.

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
import sys
import threading
from collections.abc import Iterator
from typing import Any

from . import _cache

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
    "NUMBA_FLAGS",  # noqa: F822 (built on first use: module __getattr__)
    "NUMBA_PARALLEL",
    "NUMBA_PARALLEL_OPTIONS",  # noqa: F822 (built on first use: module __getattr__)
    "NUMBA_PARALLEL_FLAGS",  # noqa: F822 (built on first use: module __getattr__)
    "NUMBA_USER_FLAGS",  # noqa: F822 (built on first use: module __getattr__)
    "PARALLEL_MIN_WORK",
    "SPARSE_ENTRY_WORK",
    "USER_PARALLEL_MIN_NS",
    "USER_PYTHON_CALL_S",
    "USER_PYTHON_TOTAL_S",
    "USER_PYTHON_OVERHEAD_S",
    "USER_PYTHON_EVAL_S",
    "USER_WORKERS_MIN_S",
    "STREAM_PARALLEL_MIN",
    "FILL_PARALLEL_MIN",
    "MAX_ROW_BLOCKS",
    "MIN_ROWS_PER_BLOCK",
    "row_blocks",
    "sparse_row_blocks",
    "sparse_checks_in_pass",
    "SPARSE_CHECK_MIN_ENTRIES",
    "SPARSE_PARTIALS_BYTES",
    "threads_for",
    "sparse_threads",
    "kernels",
    "user_function_kernels",
    "BACKEND_PACKAGES",
    "FAMILIES",
    "METHOD_CODES",
    "METHOD_ORDER",
    "ACTIVATION_CODES",
    "LOSS_CODES",
]

# The registry: one line per backend, naming the package that holds its kernel
# modules.  Every package has one module per family (``FAMILIES``), and every
# module of a family exports the same kernel names with the same arguments
# (inputs, then ``out``, then ``n_threads``), writing into ``out``.  Adding a
# backend is adding a package and a line here.
BACKEND_PACKAGES = {
    "cython": "fastgrad._cython",
    "numba": "fastgrad._numba",
    "numpy": "fastgrad._numpy",
}
FAMILIES = ("mse", "numdiff", "kron", "nn", "mse_hessp", "mse_sparse", "sparsity")
BACKENDS = tuple(BACKEND_PACKAGES)  # in order of preference

# The default: the compiled backend with no compile wait, Cython where its
# extension is built, else Numba (which compiles each kernel on its first call).
_DEFAULT_ORDER = ("cython", "numba")


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that is not built or cannot be imported here."""


# ---------------------------------------------------------------------------
# Compile flags: every @njit in fastgrad takes its options from here.
# fastmath allows re-association and FMA contraction (so reductions vectorise)
# but never the no-NaN/no-Inf flags: NaN and Inf in the data must propagate.
# No 'arcp' (reciprocal approximation) either: together with 'reassoc' it made
# the softmax cross-entropy kernel loaded from Numba's on-disk cache give other
# bits than the same kernel freshly compiled; the kernels' speed was unchanged
# (no division sits in a hot loop).  (Freshly compiled Numba code can still
# differ in the last bit from cached code for some kernels, depending on what
# was compiled before it in the process; see benchmarks/README.md.)
FASTMATH = frozenset({"reassoc", "contract", "nsz"})
# The parallel target runs only the kernels' explicit ``prange`` loops in parallel.
# With ``parallel=True`` Numba also turns every ``np.zeros`` and array expression of
# the kernel into a parallel region of its own, each a launch of the thread team:
# the MSE kernel's two scratch allocations were two launches before its block loop
# ((10^4, 16) float64, 2 threads: 62 -> 54 us per call with prange only).
NUMBA_PARALLEL = {"prange": True, "numpy": False, "comprehension": False, "reduction": False,
                  "inplace_binop": False, "setitem": False, "stencil": False, "fusion": True}

# The Numba flag sets below are built on first use, which also sets Numba up for
# fastgrad (its cache locator, the one warning when caching is off, the threading
# layer): ``import fastgrad`` does not import Numba (0.6-1 s), which a user of the
# Cython or numpy backend never needs.  The first fastgrad module compiled by
# Numba reads them when it is imported, before any kernel of its is compiled.
_NUMBA_SETTINGS = ("NUMBA_FLAGS", "NUMBA_PARALLEL_OPTIONS", "NUMBA_PARALLEL_FLAGS", "NUMBA_USER_FLAGS",
                   "NUMBA_USER_PARALLEL_FLAGS", "NUMBA_EXACT_FLAGS")
_numba_settings: dict[str, Any] | None = None
_numba_settings_lock = threading.Lock()


def _numba_setup() -> dict[str, Any]:
    """Set Numba up for fastgrad (once) and return the flag sets its decorators take."""
    global _numba_settings
    with _numba_settings_lock:
        if _numba_settings is not None:
            return _numba_settings
        from numba.core.cpu_options import ParallelOptions

        _configure_numba_threading_layer()
        # The on-disk cache lives outside the package (fastgrad/_cache.py), or is off
        # (one warning) where no writable folder exists.
        flags = {"cache": _cache.CACHE_DIR is not None, "nogil": True, "fastmath": set(FASTMATH),
                 "error_model": "numpy"}
        # What the decorators get: Numba reads a dict of options by popping its keys at every
        # compile, so a shared dict is empty after the first one and later compiles fall back to
        # every option on; an options object is read without being changed.
        parallel = ParallelOptions(dict(NUMBA_PARALLEL))
        # Numba keys its cache on the source file, not on these flags: the cache folder
        # is tagged with them, so changing a flag can never load code compiled without it.
        _cache.install_locator(tag=repr(sorted((k, sorted(v) if isinstance(v, set) else v) for k, v in flags.items()))
                               + repr(sorted(NUMBA_PARALLEL.items())))
        _cache.warn_if_off()
        # Kernels taking a user's function as an argument (numgrad/numjac over an @njit f):
        # compiled once per user function and not cached (a dispatcher argument defeats
        # Numba's cache), without fastmath so the compiled path is bitwise equal to the
        # Python path over the same f.
        user = dict(flags, cache=False, fastmath=False)
        _numba_settings = {
            "NUMBA_FLAGS": flags,
            "NUMBA_PARALLEL_OPTIONS": parallel,
            "NUMBA_PARALLEL_FLAGS": dict(flags, parallel=parallel),
            "NUMBA_USER_FLAGS": user,
            "NUMBA_USER_PARALLEL_FLAGS": dict(user, parallel=parallel),  # the benchmarks' evaluation floors
            # compiled functions that must agree bit for bit with their Python twin (no fastmath), cached
            "NUMBA_EXACT_FLAGS": dict(flags, fastmath=False),
        }
        return _numba_settings


def __getattr__(name: str) -> Any:
    """The Numba flag sets (``NUMBA_FLAGS`` and the others of ``_NUMBA_SETTINGS``), built on first use."""
    if name in _NUMBA_SETTINGS:
        return _numba_setup()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Reductions over rows use a fixed partition of the rows into blocks that depends
# only on the data's shape, never on the thread count: bitwise-identical results
# for every number of threads.  At most MAX_ROW_BLOCKS blocks (the extra memory
# is O(D*K*MAX_ROW_BLOCKS), never O(N)), each at least MIN_ROWS_PER_BLOCK rows.
MAX_ROW_BLOCKS = 64
MIN_ROWS_PER_BLOCK = 256

# Below this many multiply-adds a call takes the serial path: starting the
# thread pool costs more than the work.
PARALLEL_MIN_WORK = 1 << 17
# One stored entry of a sparse A counts as this many multiply-adds of a dense
# one: its gather, scatter and share of the row loop cost ~4 ns serially here,
# a dense element ~0.3-0.5 ns (CSR (10^4, 100) at 5%, 5*10^4 entries: 0.17-0.21 ms
# on one thread, 0.09-0.11 ms on two; counted as dense work it ran serially).
SPARSE_ENTRY_WORK = 8

# numgrad/numjac over a user's @njit f run its evaluations in parallel only when
# (evaluations) x (seconds per evaluation, timed on f(x)) reaches this many
# nanoseconds.  Measured on the 2-core development machine (central differences
# of sum(x**2), serial vs parallel kernel): with both cores free the parallel
# launch costs ~20 us more (22 vs 45 us at n = 2), breaks even near 70 us of
# work and saves 45% at 600 us (814 -> 440 us); with another process on the
# second core one launch can cost milliseconds (8 ms against 0.02 ms serially
# for n = 2).  Below 200 us of work the pool cannot win much, and may lose a lot.
USER_PARALLEL_MIN_NS = 200_000

# numgrad/numjac over a user's @njit f run compiled through a driver that is
# compiled once per machine (about 1.5 s, then loaded from Numba's cache in
# ~0.05 s).  While that driver is in no cache, a call that would cost less than
# USER_PYTHON_CALL_S through f's dispatcher from Python runs that way instead,
# with the same arithmetic and the same bits: USER_PYTHON_OVERHEAD_S per call
# (the Python-side setup: ~0.1 ms against ~0.07 ms compiled, at n = 2) plus, per
# evaluation, f's own time and USER_PYTHON_EVAL_S (copying x, setting one
# element, the call: 3-8 us), as measured on the development machine.  Once
# such calls have cost USER_PYTHON_TOTAL_S in a process, compiling pays and the
# next call compiles.
USER_PYTHON_CALL_S = 0.02
USER_PYTHON_TOTAL_S = 0.25
USER_PYTHON_OVERHEAD_S = 1e-4
USER_PYTHON_EVAL_S = 5e-6

# numgrad/numjac of a Python f with workers=n (threads) use the pool only when
# the evaluations together take at least this long (timed on f(x)): starting a
# pool and handing out its tasks costs ~1 ms, more than a small problem takes.
USER_WORKERS_MIN_S = 0.005

# Elementwise passes of the network kernels (bias + activation, loss, o sigma')
# are memory-bound and sit between BLAS calls whose own thread pool is still
# spinning: on a 2-core machine a parallel launch there lost more
# (oversubscription) than it gained.  They go parallel from this many elements.
STREAM_PARALLEL_MIN = 1 << 22

# The kron/Jacobian fills only write (one multiply per element, no reduction), so
# they are bound by memory bandwidth, which one core nearly saturates: on the 2-core
# development machine a serial fill of a 3000 x 3000 float64 output streams ~25 GB/s
# (2.3 ms), two threads at best 1.8 ms, while waking the OpenMP team there costs
# 4-16 ms whenever another process holds the second core.  Outputs below this many
# elements (128 MB of float64) take the serial path.
FILL_PARALLEL_MIN = 1 << 24


def row_blocks(N):
    """Rows per block of the fixed partition of N rows into at most MAX_ROW_BLOCKS blocks.

    The one statement of the partition: the Numba kernels compile this very
    function, the Cython kernels and the wrappers call it.  It depends on N only,
    never on the thread count, which makes every row reduction bitwise identical
    for every number of threads.
    """
    rows = (N + MAX_ROW_BLOCKS - 1) // MAX_ROW_BLOCKS
    return max(rows, MIN_ROWS_PER_BLOCK)


# A sparse A (CSR) may be wide (D in the millions): every row block keeps its own
# (D, K) gradient partial, so for wide data the blocks are made larger until the
# partials together stay under this many bytes (still a function of the shape only).
SPARSE_PARTIALS_BYTES = 1 << 25


# A CSR A's column indices must be in range before a kernel gathers and scatters
# through them.  With one output and rows of SPARSE_CHECK_MIN_ENTRIES entries or
# more on average, the kernels' row loops check each index as they read it (the
# row's largest, read as unsigned), free on a pass bound by memory, where a
# separate pass over the indices cost a quarter of the call (2*10**7 entries,
# 100 a row).  Shorter rows, and K > 1, get that separate pass in validation: at
# 5-10 entries a row the compares cost 10-25% of the row loops, the pass 5%.
SPARSE_CHECK_MIN_ENTRIES = 32


def sparse_checks_in_pass(entries, N, K):
    """True when the CSR kernels check the column indices of a pass over ``entries`` stored entries
    in N rows with K outputs themselves (else validation does; see SPARSE_CHECK_MIN_ENTRIES)."""
    return K == 1 and N > 0 and entries >= SPARSE_CHECK_MIN_ENTRIES * N


def sparse_row_blocks(N, D, K):
    """Rows per block of a CSR A's row partition: ``row_blocks(N)``, or more rows when the
    blocks' (D, K) float64 partials would pass SPARSE_PARTIALS_BYTES.  Depends on the shape only.

    The Numba kernels compile this very function (``row_blocks``'s rule is written
    out here, as a compiled function cannot call a Python one).
    """
    rows = max((N + MAX_ROW_BLOCKS - 1) // MAX_ROW_BLOCKS, MIN_ROWS_PER_BLOCK)  # row_blocks(N)
    cap = max(1, SPARSE_PARTIALS_BYTES // max(8 * D * K, 1))
    return max(rows, (N + cap - 1) // cap)


def sparse_threads(nnz: int, N: int, K: int) -> int:
    """Threads for a pass over a sparse A with ``nnz`` stored entries, N rows and K outputs."""
    return threads_for(max(nnz * SPARSE_ENTRY_WORK, N) * K)


def threads_for(work: int, min_work: int = PARALLEL_MIN_WORK) -> int:
    """Threads a kernel call with ``work`` units of work runs on: 1 below ``min_work``."""
    global _threads_started
    if work < min_work:
        return 1
    n = get_num_threads()
    if n > 1:
        _threads_started = True
    return n


# ---------------------------------------------------------------------------
# Codes the compiled kernels take for names (said once; the Cython .pxd enums
# are tested against these).

#: finite-difference methods of numgrad/numjac/mse_numgrad
METHOD_CODES = {"forward": 0, "backward": 1, "central": 2, "five-point": 3, "complex": 4}
#: truncation order p of each method, indexed by its code
METHOD_ORDER = (1, 1, 2, 4, 2)
#: activations of the network kernels
ACTIVATION_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3}
#: losses of the network kernels
LOSS_CODES = {"mse": 0, "softmax_cross_entropy": 1}


# ---------------------------------------------------------------------------
# Backends
#

_BUILD_HINT = {
    "numba": "install it with: pip install numba",
    "cython": (
        "the optional Cython extensions are not built; install a C compiler (e.g. gcc) and reinstall "
        "fastgrad from its source folder: pip install --force-reinstall --no-deps . "
        "(pip install -e . for a development checkout)"
    ),
}

_availability: dict[str, str | None] = {}  # name -> None if usable, else the reason
_lock = threading.Lock()


def _probe(name: str) -> str | None:
    """Return None if backend ``name`` imports, else why not."""
    try:
        importlib.import_module(BACKEND_PACKAGES[name]).probe()
    except ImportError as exc:  # pragma: no cover - depends on the install
        return f"{exc}"
    return None


def _reason(name: str) -> str | None:
    with _lock:
        if name not in _availability:
            _availability[name] = _probe(name)
        return _availability[name]


def cython_build() -> str:
    """One line on the Cython extension: built (with or without OpenMP), or why not and how to get it."""
    why = _reason("cython")
    if why is None:
        from ._cython import mse

        return f"compiled, OpenMP {'on' if mse.has_openmp() else 'OFF (serial)'}"
    return f"not built ({why}); {_BUILD_HINT['cython']}"


def numba_cache_description() -> str:
    """Where Numba caches fastgrad's kernels, truthfully (or why it does not)."""
    if _cache.CACHE_DIR is None:
        return f"off: {_cache.CACHE_OFF_REASON}"
    return _cache.CACHE_DIR


def available_backends() -> list[str]:
    """The backends usable in this installation, in order of preference."""
    return [b for b in BACKENDS if _reason(b) is None]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in BACKEND_PACKAGES:
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


_kernel_modules: dict[tuple[str, str], Any] = {}


def kernels(family: str, backend: str | None = None) -> Any:
    """The kernel module of ``family`` for the backend a call with ``backend=`` uses.

    The one dispatcher: wrappers call ``kernels('mse', backend).loss_grad(...)``
    and never name a backend.  An unknown family or backend raises.
    """
    name = resolve_backend(backend)
    mod = _kernel_modules.get((name, family))
    if mod is None:
        if family not in FAMILIES:
            raise ValueError(f"unknown kernel family {family!r}; one of {FAMILIES}")
        mod = importlib.import_module(f"{BACKEND_PACKAGES[name]}.{family}")
        _kernel_modules[(name, family)] = mod
    return mod


USER_FUNCTION_FAMILIES = ("numdiff", "hessian")


def user_function_kernels(family: str = "numdiff") -> Any:
    """The kernels that evaluate a user's ``@njit`` f (numgrad/numjac, numhess): Numba by nature.

    They take the compiled f as an argument, whatever backend is selected.
    """
    if family not in USER_FUNCTION_FAMILIES:
        raise ValueError(f"unknown user-function kernel family {family!r}; one of {USER_FUNCTION_FAMILIES}")
    mod = _kernel_modules.get(("numba", family))
    if mod is None:
        mod = _kernel_modules[("numba", family)] = importlib.import_module(f"{BACKEND_PACKAGES['numba']}.{family}")
    return mod


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


def _env_backend() -> str | None:
    """``FASTGRAD_BACKEND``, validated (a known name) when fastgrad is imported."""
    env = os.environ.get("FASTGRAD_BACKEND", "").strip().lower()
    if not env:
        return None
    if env not in BACKEND_PACKAGES:
        raise ValueError(
            f"environment variable FASTGRAD_BACKEND={os.environ['FASTGRAD_BACKEND']!r} is not a "
            f"backend: unknown backend {env!r}; choose one of {', '.join(map(repr, BACKENDS))} or unset it"
        )
    return env


_ENV_BACKEND = _env_backend()
_env_default: str | None = None


def default_backend_and_reason() -> tuple[str, str]:
    """The backend used when nothing selects one, and why (for ``fastgrad info``)."""
    if _ENV_BACKEND is not None:
        return _ENV_BACKEND, "set by the environment variable FASTGRAD_BACKEND"
    for name in _DEFAULT_ORDER:
        if _reason(name) is None:
            if name == "cython":
                return name, "the Cython extension is built: compiled kernels with no compile wait"
            return name, f"the Cython extension is not available ({_reason('cython')}); Numba compiles " \
                         f"each kernel on its first call and caches it on disk"
    return "numpy", "no compiled backend is available"  # pragma: no cover - numba is a dependency


def _default_backend() -> str:
    """``FASTGRAD_BACKEND`` if set, else the default (availability checked at the first call)."""
    global _env_default
    if _env_default is None:
        if _ENV_BACKEND is None:
            _env_default = _require(default_backend_and_reason()[0])
        else:
            try:
                _env_default = _require(_ENV_BACKEND)
            except BackendUnavailableError as exc:
                raise BackendUnavailableError(f"FASTGRAD_BACKEND={_ENV_BACKEND!r}: {exc}") from None
    return _env_default


# ---------------------------------------------------------------------------
# Threads


def _max_threads() -> int:
    """The threads Numba starts with: ``NUMBA_NUM_THREADS``, by default every core this process
    may run on (Numba's own rule, read without importing Numba when it is not imported yet)."""
    numba = sys.modules.get("numba")
    if numba is not None:
        return int(numba.config.NUMBA_NUM_THREADS)
    try:
        n = int(os.environ["NUMBA_NUM_THREADS"])
    except (KeyError, ValueError):
        n = 0
    if n < 1:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            n = os.cpu_count() or 1
    return max(1, n)


def _env_threads() -> int | None:
    """``FASTGRAD_NUM_THREADS``, validated (a positive integer) when fastgrad is imported."""
    env = os.environ.get("FASTGRAD_NUM_THREADS", "").strip()
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(
            f"environment variable FASTGRAD_NUM_THREADS={os.environ['FASTGRAD_NUM_THREADS']!r} must be "
            f"a positive integer (FASTGRAD_NUM_THREADS must be a positive integer); unset it to use every core"
        )
    return n


_ENV_THREADS = _env_threads()
_num_threads: int | None = None
_threads_started = False  # a parallel kernel was launched in this process
_forked_child = False  # this process was forked after a parallel launch (see _after_fork)


def get_num_threads() -> int:
    """Number of threads the Numba and Cython/OpenMP kernels run on.

    In a process forked from one that had run a parallel kernel (e.g. a
    ``multiprocessing`` or ``ProcessPoolExecutor`` worker under the 'fork' start
    method) this is 1: an OpenMP runtime cannot be used again after a fork, so
    the child runs every kernel serially.
    """
    global _num_threads
    if _forked_child:
        return 1
    if _num_threads is None:
        top = _max_threads()
        _num_threads = top if _ENV_THREADS is None else min(_ENV_THREADS, top)
    return _num_threads


def parallel_runtime_usable() -> bool:
    """Whether a parallel kernel may be launched (on any thread count, one included) here.

    False in a child forked after a parallel launch (see :func:`get_num_threads`);
    else True, and a later fork is then treated as one after a parallel launch.
    """
    global _threads_started
    if _forked_child:
        return False
    _threads_started = True
    return True


def _after_fork() -> None:
    global _forked_child
    _forked_child = _forked_child or _threads_started


os.register_at_fork(after_in_child=_after_fork)


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


def numba_threads(n: int | None = None) -> int:
    """Apply the thread count (``n``, default ``get_num_threads()``) to Numba in the calling thread.

    ``numba.set_num_threads`` is thread-local, so it is applied right before
    every parallel Numba launch.  Returns the count.
    """
    global _threads_started
    n = get_num_threads() if n is None else n
    _threads_started = _threads_started or n > 1
    if _numba_thread_count() != n:
        import numba

        numba.set_num_threads(n)
    return n


def _numba_thread_count() -> int:
    """``numba.get_num_threads()``, read without its start-up locks once the pool runs.

    The public function takes two locks on every call to see whether the pool
    has started (2.2 us here, paid before every parallel launch); once it has,
    the count is one call into Numba's threading library (0.4 us).
    """
    from numba.np.ufunc import parallel

    read = getattr(parallel, "_get_num_threads", None)
    if read is not None and getattr(parallel, "_is_initialized", False):
        return int(read())
    import numba

    return numba.get_num_threads()


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


def parallel_guard() -> contextlib.AbstractContextManager:
    """A lock around parallel Numba launches when only 'workqueue' is available.

    With the OpenMP or TBB layer this is a no-op context manager.
    """
    global _guard
    if _guard is None:
        import numba

        safe = numba.config.THREADING_LAYER in ("omp", "tbb", "threadsafe", "safe")
        _guard = contextlib.nullcontext() if safe else _workqueue_lock
    return _guard


_guard: contextlib.AbstractContextManager | None = None  # parallel_guard's answer, found once


_workqueue_lock = threading.Lock()
