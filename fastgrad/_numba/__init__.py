"""Numba kernels: the low-level API and the ``'numba'`` backend.

The modules hold ``@numba.njit`` functions that can be called from Python or
from a user's own ``@njit`` code.  They assume validated, C-contiguous inputs
(see ``fastgrad._validate``); checking them is the caller's duty here.  Each
family module also exports the backend protocol (see ``docs/architecture.md``):
plain functions taking the inputs, ``out`` and ``n_threads``.
"""


def probe() -> None:
    """Raise ImportError when this backend cannot run here."""
    import numba  # noqa: F401
