"""The ``'numpy'`` backend: the kernel protocol over plain numpy expressions.

Each family module exports the same kernel names with the same arguments as the
compiled backends, computed by :mod:`fastgrad.reference` (the test oracle);
``n_threads`` is accepted and ignored (numpy/BLAS choose their own threads).
"""


def probe() -> None:
    """The numpy backend is always available."""
