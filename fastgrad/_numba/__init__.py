"""Numba kernels: the low-level API.

These are ``@numba.njit`` functions that can be called from Python or from a
user's own ``@njit`` code.  They assume validated, C-contiguous inputs (see
``fastgrad._validate``); checking them is the caller's duty here.
"""
