"""The numpy backend of the numerical-differentiation family: the kernel protocol over
:mod:`fastgrad.reference`."""

from __future__ import annotations

from .. import reference
from .._steps import METHODS

__all__ = ["mse_numgrad_into"]


def mse_numgrad_into(A, Y, WT, HH, method, scale, out, n_threads):
    """Protocol: the numerical MSE gradient into ``out`` (D, K) with numpy (``method`` a code)."""
    out[...] = reference.mse_numgrad(A, Y, WT, HH, METHODS[method], scale)
