"""The numpy backend of the dense MSE Hessian-vector product: the protocol over :mod:`fastgrad.reference`."""

from __future__ import annotations

from .. import reference

__all__ = ["hessp"]


def hessp(A, VT, s, scale, alpha, out, n_threads):
    """Protocol: ``H v = 2 scale A^T S (A v) + 2 alpha v`` into ``out`` (D, K) with numpy/BLAS."""
    out[...] = reference.mse_hessp(A, VT, s, scale, alpha)
