"""Memory-bandwidth floors: the time a parallel Numba loop takes to read an array once."""

from __future__ import annotations

from numba import njit, prange

from .._config import NUMBA_FLAGS


@njit(parallel=True, fastmath=True, cache=NUMBA_FLAGS["cache"])
def read_once_floor(a):
    """Sum of a 1-D array with prange and fastmath: the read-once memory-bandwidth floor.

    (fastmath here is deliberate and harmless: it only lets the sum vectorise so the
    loop is bound by memory, which is what a floor must measure.)
    """
    s = 0.0
    for t in prange(a.size):
        s += a[t]
    return s
