"""Where Numba caches fastgrad's compiled kernels: never inside the installed package.

Numba's default is a ``__pycache__`` folder beside the source file when it is
writable, which for an installed package means writing into ``site-packages``
(files ``pip uninstall`` leaves behind).  fastgrad registers a cache locator of
its own for its own source files, ahead of Numba's, that puts their cache in

* ``$NUMBA_CACHE_DIR/fastgrad`` when ``NUMBA_CACHE_DIR`` is set, else
* ``$XDG_CACHE_HOME/fastgrad`` (default ``~/.cache/fastgrad``),

one sub-folder per source folder.  When that folder cannot be created or written
(a read-only container with no writable home), fastgrad compiles without an
on-disk cache and says so once with a warning; it never crashes.  Users' own
cached Numba functions keep Numba's usual behaviour.
"""

from __future__ import annotations

import os
import tempfile
import warnings

__all__ = ["CACHE_DIR", "CACHE_OFF_REASON", "install_locator", "warn_if_off"]  # noqa: F822 (module __getattr__)

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _root() -> tuple[str | None, str]:
    """(cache root, '') if usable, else (None, why not)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return None, "numba is not installed"
    if numba.config.DISABLE_JIT:
        return None, "NUMBA_DISABLE_JIT=1 (nothing is compiled)"
    if numba.config.CACHE_DIR:
        root = os.path.join(numba.config.CACHE_DIR, "fastgrad")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "fastgrad")
    if not os.path.isabs(root):
        return None, f"no home directory to cache in ({root!r} is not an absolute path)"
    try:
        os.makedirs(root, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()
    except OSError as exc:
        return None, f"{root} is not writable ({exc.strerror or exc})"
    return root, ""


_state: tuple[str | None, str] | None = None


def __getattr__(name: str) -> str | None:
    """``CACHE_DIR`` (the cache root, or None when caching is off) and ``CACHE_OFF_REASON``
    (why it is off, else ''), found on first use: finding them imports Numba, which
    ``import fastgrad`` does not do (a user of the Cython or numpy backend never needs it)."""
    global _state
    if name in ("CACHE_DIR", "CACHE_OFF_REASON"):
        if _state is None:
            _state = _root()
        return _state[0] if name == "CACHE_DIR" else _state[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def install_locator(tag: str = "") -> None:
    """Put fastgrad's cache locator first in Numba's list (idempotent).

    ``tag`` (the compile flags) names a sub-folder: Numba's cache index is keyed on
    the source file and the signature, not on the flags, so code compiled under
    other flags must live elsewhere.
    """
    cache_dir = __getattr__("CACHE_DIR")
    if cache_dir is None:
        return
    import hashlib

    import numba
    from numba.core import caching

    flavour = "flags-" + hashlib.sha1(f"{tag}|numba {numba.__version__}".encode()).hexdigest()[:12]

    class FastgradCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
        """Numba cache of fastgrad's own kernels, in ``CACHE_DIR`` (never beside the sources)."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(cache_dir, flavour, self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(PACKAGE_DIR + os.sep):
                return None  # not fastgrad's: Numba's own locators decide
            return super().from_function(py_func, py_file)

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.61
    classes = impl._locator_classes
    if not any(c.__name__ == "FastgradCacheLocator" for c in classes):
        classes.insert(0, FastgradCacheLocator)


def warn_if_off() -> None:
    """One warning when fastgrad's kernels cannot be cached on disk (called when Numba is first set up)."""
    cache_dir, why = __getattr__("CACHE_DIR"), __getattr__("CACHE_OFF_REASON")
    if cache_dir is None and not why.startswith(("NUMBA_DISABLE_JIT", "numba is not")):
        warnings.warn(
            f"fastgrad: Numba's on-disk cache is off ({why}); kernels compile in every new "
            f"process. Set NUMBA_CACHE_DIR to a writable folder to cache them.",
            RuntimeWarning, stacklevel=3,
        )
