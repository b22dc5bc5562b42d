"""Cython kernels: the low-level API and the ``'cython'`` backend.

The extension modules ship ``.pxd`` files so another Cython module can
``cimport fastgrad._cython.mse`` and call the ``nogil`` kernels directly.  They
assume validated, C-contiguous inputs (see ``fastgrad._validate``).  Each family
module also exports the backend protocol (see ``docs/architecture.md``).
"""


def probe() -> None:
    """Raise ImportError when the compiled extensions are not built."""
    from . import kron, mse, mse_hessp, mse_sparse, nn, numdiff, sparsity  # noqa: F401
