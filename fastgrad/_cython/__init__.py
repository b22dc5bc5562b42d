"""Cython kernels: the low-level API.

The extension modules ship ``.pxd`` files so another Cython module can
``cimport fastgrad._cython.mse`` and call the ``nogil`` kernels directly.  They
assume validated, C-contiguous inputs (see ``fastgrad._validate``).
"""
