"""The one validation layer every public wrapper calls.

It turns arbitrary array-likes into checked, dtype-resolved, contiguous arrays
and raises, before any work is done, errors that name the offending argument
and the shapes involved.  Kernels assume its post-conditions and say so.

Rules (SPEC section 1):

* float64 and float32 are native; other real inputs (bool, int, uint, float16,
  longdouble) are converted to float64; complex, object, string, datetime
  inputs raise ``TypeError``.
* The result dtype is float32 only when every array input is float32.
* Any strides, C or Fortran order, read-only arrays and ``np.memmap`` are
  accepted; inputs are never written.  A copy is made only when a kernel needs
  contiguity.
* Shape errors are ``ValueError`` naming the argument and both shapes.
* ``check_finite=True`` raises ``ValueError`` on NaN/Inf; otherwise NaN/Inf
  propagate into the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "as_real",
    "as_contiguous",
    "result_dtype",
    "check_choice",
    "check_finite",
    "check_ndim",
    "check_out",
    "check_step",
    "check_positive_int",
    "mse_inputs",
    "MSEInputs",
]

_NATIVE = ("f", "d")  # dtype.char of float32, float64


def as_real(x: Any, name: str) -> np.ndarray:
    """``x`` as an ndarray of float32 or float64 (no copy when it already is).

    Raises ``TypeError`` for complex, object, string and other non-real data.
    """
    arr = np.asarray(x)
    char = arr.dtype.char
    if char in _NATIVE:
        return arr
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64)
    if kind == "c":
        raise TypeError(f"{name} is complex ({arr.dtype}); fastgrad works on real data only")
    raise TypeError(f"{name} has dtype {arr.dtype}, which is not a real number type")


def as_contiguous(arr: np.ndarray) -> np.ndarray:
    """C-contiguous version of ``arr`` (a copy only if it is not already)."""
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def result_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 when every array is float32, else float64."""
    for a in arrays:
        if a.dtype.char != "f":
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def check_ndim(arr: np.ndarray, name: str, ndims: Sequence[int], what: str) -> None:
    """Raise ``ValueError`` unless ``arr.ndim`` is in ``ndims``; ``what`` describes the shape."""
    if arr.ndim not in ndims:
        raise ValueError(f"{name} must be {what}, got an array of shape {arr.shape}")


def check_choice(value: Any, name: str, allowed: Iterable[str]) -> str:
    """Raise ``ValueError`` listing the allowed values unless ``value`` is one of them."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_finite(**arrays: np.ndarray) -> None:
    """Raise ``ValueError`` naming the first argument that holds NaN or Inf."""
    for name, arr in arrays.items():
        if arr is not None and not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or Inf (check_finite=True)")


def check_step(h: Any, name: str = "h") -> None:
    """Raise ``ValueError`` unless every step in ``h`` is finite and > 0."""
    harr = np.asarray(h)
    if harr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real number or array of real numbers, got {harr.dtype}")
    if harr.size == 0 or not (np.isfinite(harr).all() and (harr > 0).all()):
        raise ValueError(f"{name} must be finite and > 0, got {h!r}")


def check_positive_int(n: Any, name: str, *, minimum: int = 1) -> int:
    """``n`` as an int, raising ``ValueError``/``TypeError`` unless it is an integer >= minimum."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Check an ``out=`` array: an ndarray of the result's shape and dtype, writeable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape} but the result has shape {shape}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype} but the result has dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


# ---------------------------------------------------------------------------
# Linear-model MSE: A (N, D), y (N,) or (N, K), w (D,) or (D, K).


class MSEInputs(NamedTuple):
    """Validated inputs of the MSE kernels.

    A : (N, D) C-contiguous float32/float64, never written.
    Y : (N, K) C-contiguous float32/float64 (a view of y), never written.
    WT : (K, D) C-contiguous float64 (a transposed copy of w).
    w_shape : the shape of the gradient.
    dtype : the result dtype.
    scale : 1/(N*K) for reduction='mean', 1 for 'sum'.
    """

    A: np.ndarray
    Y: np.ndarray
    WT: np.ndarray
    w_shape: tuple[int, ...]
    dtype: np.dtype
    scale: float


_REDUCTIONS = ("mean", "sum")


def mse_inputs(A: Any, y: Any, w: Any, reduction: str, check_finite_: bool = False) -> MSEInputs:
    """Validate ``(A, y, w)`` for the MSE functions; see :class:`MSEInputs`."""
    check_choice(reduction, "reduction", _REDUCTIONS)
    A = as_real(A, "A")
    y = as_real(y, "y")
    w = as_real(w, "w")
    check_ndim(A, "A", (2,), "2-D (N, D)")
    check_ndim(w, "w", (1, 2), "1-D (D,) or 2-D (D, K)")
    N, D = A.shape
    if w.shape[0] != D:
        raise ValueError(f"A has {D} columns but w has {w.shape[0]} rows (A {A.shape}, w {w.shape})")
    if y.ndim != w.ndim:
        want = "1-D (N,)" if w.ndim == 1 else "2-D (N, K)"
        raise ValueError(f"w has shape {w.shape}, so y must be {want}; got y with shape {y.shape}")
    if y.shape[0] != N:
        raise ValueError(f"A has {N} rows but y has {y.shape[0]} (A {A.shape}, y {y.shape})")
    if w.ndim == 2 and y.shape[1] != w.shape[1]:
        raise ValueError(f"w has {w.shape[1]} columns but y has {y.shape[1]} (w {w.shape}, y {y.shape})")
    if N == 0:
        raise ValueError(f"A has 0 rows (shape {A.shape}): the mean over an empty sample axis is undefined")
    K = 1 if w.ndim == 1 else w.shape[1]
    if K == 0 and reduction == "mean":
        raise ValueError(f"w has 0 columns (shape {w.shape}): the mean over zero outputs is undefined")
    if check_finite_:
        check_finite(A=A, y=y, w=w)
    dtype = result_dtype(A, y, w)
    Y = as_contiguous(y.reshape(N, K) if y.ndim == 1 else y)
    if w.ndim == 1:
        WT = np.array(w, dtype=np.float64, order="C").reshape(1, D)
    else:
        WT = np.array(w.T, dtype=np.float64, order="C")
    scale = 1.0 / (N * K) if reduction == "mean" else 1.0
    return MSEInputs(as_contiguous(A), Y, WT, w.shape, dtype, scale)
