r"""Finite-difference methods and their steps (shared by every numerical derivative).

A difference quotient of order p with step h has truncation error O(h^p) and
rounding error O(eps/h); the default step ``c * max(1, |x_i|)`` with
``c = eps^(1/(p+1))`` balances the two (docs/derivations.md, "Limits and finite
differences").  The complex step ``Im f(x + i h e_j) / h`` has no subtraction,
so h can be tiny (1e-20).

``'adaptive'`` is no stencil of its own: Richardson extrapolation over a
geometric sequence of central differences (``fastgrad._adaptive``), offered by
numgrad, numjac and numhess (``check_method(method, adaptive=True)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validate
from ._config import METHOD_CODES, METHOD_ORDER

__all__ = ["METHODS", "ADAPTIVE", "ADAPTIVE_METHODS", "METHOD_CODES",
           "METHOD_ORDER", "check_method", "default_step", "default_steps"]

METHODS = tuple(METHOD_CODES)  # the stencils of the kernels, in the order of their codes
ADAPTIVE = "adaptive"
ADAPTIVE_METHODS = METHODS + (ADAPTIVE,)
_EXPONENT = {"forward": 1 / 2, "backward": 1 / 2, "central": 1 / 3, "five-point": 1 / 5}
_COMPLEX_STEP = 1e-20


def check_method(method: Any, adaptive: bool = False) -> str:
    """method, if it is one of ``METHODS`` (or ``'adaptive'`` when allowed), else ``ValueError`` listing them."""
    return _validate.check_choice(method, "method", ADAPTIVE_METHODS if adaptive else METHODS)


def default_step(dtype: np.dtype, method: str) -> float:
    """c of the default step ``c * max(1, |x_i|)``: eps^(1/2), eps^(1/3), eps^(1/5) or 1e-20."""
    if method == "complex":
        return _COMPLEX_STEP
    return float(np.finfo(dtype).eps) ** _EXPONENT[method]


def default_steps(x: np.ndarray, h: Any, method: str, full: bool, name: str = "h", xname: str = "x") -> np.ndarray:
    """Validated nominal steps: a C-contiguous float64 array of x.size (errors name h ``name``, x ``xname``)."""
    xf = x.reshape(-1)
    if h is None:
        steps = np.abs(xf, dtype=np.float64)
        np.maximum(steps, 1.0, out=steps)
        steps *= default_step(x.dtype, method)
    else:
        _validate.check_step(h, name)
        harr = np.asarray(h, dtype=np.float64)
        try:
            steps = np.broadcast_to(harr, x.shape)
        except ValueError:
            raise ValueError(
                f"{name} has shape {harr.shape} but {xname} has shape {x.shape}; give a scalar or an "
                f"array of {xname}'s shape"
            ) from None
        steps = np.array(steps, dtype=np.float64, order="C").reshape(-1)
    # The default steps c max(1, |x_i|) (c >= eps^(1/2) of x's dtype) are at least eps^(-1/2)
    # units in the last place of x_i (2^26 in float64, ~2^11 in float32), so only given steps
    # can vanish: x + h == x is checked for those only.
    if method != "complex" and h is not None:
        for s in (steps, 0.5 * steps) if full else (steps,):
            moved = xf - s if method == "backward" else xf + s
            if x.dtype != np.float64:
                moved = moved.astype(x.dtype)
            same = moved == xf
            if same.any():  # (x + h) - x == 0 somewhere: an error unless x is NaN or Inf there
                vanish = same & np.isfinite(xf)
                if vanish.any():
                    j = int(np.argmax(vanish))
                    idx = np.unravel_index(j, x.shape)
                    raise ValueError(
                        f"{name} = {s[j]:g} vanishes at {xname}[{', '.join(map(str, idx))}] = {xf[j]!r} in "
                        f"{x.dtype}: ({xname} + h) - {xname} == 0; use a larger step"
                    )
    return steps
