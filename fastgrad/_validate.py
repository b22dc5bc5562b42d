"""The one validation layer every public wrapper calls.

It turns arbitrary array-likes into checked, dtype-resolved, contiguous arrays
and raises, before any work is done, errors that name the offending argument
and the shapes involved.  Kernels assume its post-conditions and say so.

Rules (shared by every public function):

* float64 and float32 are native; other real inputs (bool, int, uint, float16,
  longdouble) are converted to float64; complex, object, string, datetime
  inputs raise ``TypeError``.
* The result dtype is float32 only when every array input is float32 (a Python
  int or float scalar, such as an ``intercept=0.5``, takes the arrays' dtype).
* Any strides, C or Fortran order, read-only arrays and ``np.memmap`` are
  accepted; inputs are never written.  A copy is made only when a kernel needs
  contiguity.
* Shape errors are ``ValueError`` naming the argument and both shapes.
* ``check_finite=True`` raises ``ValueError`` on NaN/Inf; otherwise NaN/Inf
  propagate into the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _config

__all__ = [
    "as_real",
    "as_contiguous",
    "result_dtype",
    "typed_or_none",
    "check_choice",
    "check_finite",
    "check_ndim",
    "check_out",
    "check_step",
    "check_positive_int",
    "check_alpha",
    "check_sample_weight_shape",
    "check_sample_weight_values",
    "check_flag",
    "mean_weights",
    "check_intercept_shape",
    "SparseA",
    "is_sparse",
    "sparse_inputs",
    "sparse_index_error",
    "check_sparse_indices",
    "check_sparse_indices_unless_in_pass",
    "MSEHesspInputs",
    "mse_hessp_inputs",
    "mse_hessian_inputs",
    "SparseMSEInputs",
    "mse_sparse_inputs",
    "mse_inputs",
    "mse_shapes",
    "is_plain_vector_problem",
    "MSEInputs",
    "as_array",
]

_NATIVE = ("f", "d")  # dtype.char of float32, float64


def as_real(x: Any, name: str) -> np.ndarray:
    """``x`` as an ndarray of float32 or float64 (no copy when it already is).

    Raises ``TypeError`` for complex, object, string and other non-real data,
    for masked arrays (their mask would be silently dropped) and for
    ``scipy.sparse`` input; ``ValueError`` naming ``name`` for ragged sequences.
    """
    arr = x if type(x) is np.ndarray else as_array(x, name)
    if arr.dtype.char in _NATIVE:
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr.astype(np.float64)
    if kind == "c":
        raise TypeError(f"{name} is complex ({arr.dtype}); fastgrad works on real data only")
    raise TypeError(f"{name} has dtype {arr.dtype}, which is not a real number type")


def as_array(x: Any, name: str) -> np.ndarray:
    """``np.asarray(x)``, refusing what would silently lose meaning, with errors naming ``name``."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array; masked arrays are not supported (the mask would be ignored): "
            f"pass {name}.filled(value) or drop the masked rows first"
        )
    if _is_sparse(x):
        raise TypeError(
            f"{name} is a scipy.sparse {type(x).__name__}; this function takes dense arrays only "
            f"(pass {name}.toarray()); the MSE functions (mse_loss, mse_grad, mse_loss_and_grad, "
            f"MSEObjective, mse_hessp, mse_hessian) take a scipy.sparse CSR/CSC A, and "
            f"the Kronecker/Jacobian builders can return sparse results with format='csr'"
        )
    try:
        arr = np.asarray(x)
    except ValueError as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype.kind == "O" and _numeric_frame(x):
        # a pandas DataFrame of nullable extension dtypes (Float64, Int64, boolean) reads as
        # objects; its missing values (pd.NA) become NaN
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    return arr


def _numeric_frame(x: Any) -> bool:
    """x is a pandas DataFrame or Series whose every column has a numeric or boolean dtype."""
    if not hasattr(x, "to_numpy"):
        return False
    dtypes = getattr(x, "dtypes", None)
    if dtypes is None:
        return False
    kinds = [getattr(dt, "kind", "O") for dt in (dtypes if hasattr(dtypes, "__iter__") else [dtypes])]
    return bool(kinds) and all(k in "biuf" for k in kinds)


def _is_sparse(x: Any) -> bool:
    if type(x) is np.ndarray:
        return False
    mod = type(x).__module__
    if not mod.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(x)


def as_contiguous(arr: np.ndarray) -> np.ndarray:
    """C-contiguous version of ``arr`` (a copy only if it is not already)."""
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)


def typed_or_none(value: Any, arr: np.ndarray | None) -> np.ndarray | None:
    """``arr`` (the array made of ``value``), or None when ``value`` is a Python int or float:
    a scalar without a dtype of its own, which takes the other inputs' (as numpy's own
    promotion rules treat Python scalars), so a float32 problem stays float32."""
    if arr is None or (isinstance(value, (int, float)) and not isinstance(value, np.generic)):
        return None
    return arr


def result_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 when every array is float32, else float64."""
    for a in arrays:
        if a.dtype.char != "f":
            return _F64
    return _F32


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
    harr = as_array(h, name)
    if harr.dtype.kind not in "iuf":  # a bool step (h=True) is a mistake, not 1.0
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

    A : (N, D) float32/float64 of any strides (C, Fortran, sliced, negative,
        zero), never written; copied only when its dtype or byte order needs
        converting or it is not aligned (strides in whole elements).
    Y : (N, K) C-contiguous float32/float64 (a view of y when y is contiguous,
        else an O(N K) copy), never written.
    WT : (K, D) C-contiguous float64 (a transposed copy of w).
    w_shape : the shape of the gradient.
    dtype : the result dtype.
    scale : 1/(N*K) for reduction='mean' (1/(K sum_i s_i) with sample weights),
        1 for 'sum'.
    s : (N,) C-contiguous float64 sample weights (finite, >= 0, not all 0), or None.
    b : (K,) C-contiguous float64 intercept (a scalar repeated K times), or None.
    b_shape : the shape of the intercept's gradient: () for a scalar, (K,), or None.
    alpha : the ridge coefficient, a finite float >= 0.
    """

    A: np.ndarray
    Y: np.ndarray
    WT: np.ndarray
    w_shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    s: np.ndarray | None = None
    b: np.ndarray | None = None
    b_shape: tuple[int, ...] | None = None
    alpha: float = 0.0


_REDUCTIONS = ("mean", "sum")


def mse_shapes(A: Any, y: Any, w: Any, reduction: str) -> tuple[int, int, int]:
    """The shape rules of the MSE functions, on anything with ``.ndim``/``.shape``; return (N, D, K).

    Used by :func:`mse_inputs` and by ``fastgrad.dask`` (on dask arrays, without computing them).
    """
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
        why = ("the mean over an empty sample axis is undefined" if reduction == "mean"
               else "an empty sample axis leaves nothing to fit")
        raise ValueError(f"A has 0 rows (shape {A.shape}): {why}")
    K = 1 if w.ndim == 1 else w.shape[1]
    if K == 0 and reduction == "mean":
        raise ValueError(f"w has 0 columns (shape {w.shape}): the mean over zero outputs is undefined")
    return N, D, K


def is_plain_vector_problem(A: Any, y: Any, w: Any, reduction: str, check_finite_: bool) -> bool:
    """True for the commonest MSE call, valid as it stands and needing no conversion.

    C-contiguous float64 ndarrays A (N, D) with N > 0, y (N,), w (D,),
    reduction 'mean', no ``check_finite``.  Such calls skip every copy (tiny
    calls must cost no more than the numpy expression); any other call goes
    through the full rules of :func:`mse_inputs`.
    """
    if (
        type(A) is np.ndarray and type(y) is np.ndarray and type(w) is np.ndarray
        and reduction == "mean" and check_finite_ is False
        and A.dtype is _F64 and y.dtype is _F64 and w.dtype is _F64
        and A.ndim == 2 and y.ndim == 1 and w.ndim == 1
        and A.flags.c_contiguous and y.flags.c_contiguous and w.flags.c_contiguous
    ):
        N, D = A.shape
        return N > 0 and y.shape[0] == N and w.shape[0] == D
    return False


def mse_inputs(A: Any, y: Any, w: Any, reduction: str, check_finite_: bool = False, *,
               sample_weight: Any = None, intercept: Any = None, alpha: Any = 0.0) -> MSEInputs:
    """Validate ``(A, y, w)`` and the model's keywords for the MSE functions; see :class:`MSEInputs`."""
    plain = sample_weight is None and intercept is None and type(alpha) is float and alpha == 0.0
    if plain and is_plain_vector_problem(A, y, w, reduction, check_finite_):
        N, D = A.shape
        return MSEInputs(A, y.reshape(N, 1), w.reshape(1, D), w.shape, _F64, 1.0 / N)
    if reduction not in _REDUCTIONS:
        check_choice(reduction, "reduction", _REDUCTIONS)
    A = as_real(A, "A")
    y = as_real(y, "y")
    w = as_real(w, "w")
    N, D, K = mse_shapes(A, y, w, reduction)
    alpha = check_alpha(alpha)
    s = None if sample_weight is None else as_real(sample_weight, "sample_weight")
    b = None if intercept is None else as_real(intercept, "intercept")
    if s is not None:
        check_sample_weight_shape(s, N, A.shape)
    if b is not None:
        check_intercept_shape(b, K, w.shape)
    if check_flag(check_finite_, "check_finite"):
        check_finite(A=A, y=y, w=w, sample_weight=s, intercept=b)
    total = 0.0
    if s is not None:
        total = check_sample_weight_values(s, reduction)
    dtype = result_dtype(A, y, w, *(x for x in (s, typed_or_none(intercept, b)) if x is not None))
    if s is not None and reduction == "mean":
        s, total = mean_weights(s, total)
    Y = as_contiguous(y.reshape(N, K) if y.ndim == 1 else y)
    WT = w.reshape(1, D).astype(np.float64) if w.ndim == 1 else np.array(w.T, dtype=np.float64, order="C")
    if reduction == "mean":
        scale = 1.0 / (K * total) if s is not None else 1.0 / (N * K)
    else:
        scale = 1.0
    if not A.flags.aligned:  # packed records, odd byte offsets: the kernels need whole-element strides
        A = np.array(A, order="K")
    s64 = None if s is None else np.ascontiguousarray(s, dtype=np.float64)
    b64 = None if b is None else np.ascontiguousarray(np.broadcast_to(np.asarray(b, dtype=np.float64), (K,)))
    b_shape = None if b is None else b.shape
    # A in place, whatever its strides
    return MSEInputs(A, Y, WT, w.shape, dtype, scale, s64, b64, b_shape, alpha)


_BOOLS = (bool, np.bool_)
_REALS = (int, float, np.integer, np.floating)


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """The ridge coefficient as a float; ``TypeError``/``ValueError`` unless it is a finite real >= 0."""
    if type(alpha) is not float and (isinstance(alpha, _BOOLS) or not isinstance(alpha, _REALS)):
        raise TypeError(f"{name} must be a real number >= 0, got {type(alpha).__name__}")
    value = float(alpha)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be finite and >= 0, got {alpha!r}")
    return value


def check_sample_weight_shape(s: Any, N: int, a_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless the sample weights ``s`` have shape (N,), one per row of A."""
    check_ndim(s, "sample_weight", (1,), "1-D (N,)")
    if s.shape[0] != N:
        raise ValueError(f"A has {N} rows but sample_weight has {s.shape[0]} entries "
                         f"(A {a_shape}, sample_weight {s.shape})")


def check_sample_weight_values(s: np.ndarray, reduction: str) -> float:
    """Raise ``ValueError`` unless every weight is finite and >= 0 and they are not all 0; return their sum.

    Two reductions (the sum and the minimum: a NaN or an infinite weight makes
    the sum non-finite) and no temporaries; the offending entry is searched
    for only when there is one.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.sum(s, dtype=np.float64))
    if not (np.isfinite(total) and (s.size == 0 or s.min() >= 0)):
        bad = np.flatnonzero(~(np.isfinite(s) & (s >= 0)))
        if bad.size:
            raise ValueError(f"sample_weight must be finite and >= 0; sample_weight[{bad[0]}] is "
                             f"{float(s[bad[0]])!r}")
        raise ValueError(f"sample_weight sums to {total!r}: the weights are finite but their sum overflows "
                         "float64; scale them down")
    if total == 0.0:
        why = ("the weighted mean divides by their sum" if reduction == "mean"
               else "a fit with every weight 0 leaves nothing to fit")
        raise ValueError(f"sample_weight is 0 for every row: {why}")
    return total


# Below this sum of the weights (only subnormal float64 weights get there), 1/sum could overflow.
_TINY_WEIGHT_SUM = 2.0 ** -1000


def mean_weights(s: np.ndarray, total: float) -> tuple[np.ndarray, float]:
    """The weights and their sum for the weighted mean: as given, or, when the sum is so small
    (subnormal weights) that ``1/sum`` would overflow, all scaled by one power of two (exactly),
    which leaves the weighted mean unchanged."""
    if total >= _TINY_WEIGHT_SUM:
        return s, total
    s = np.ldexp(np.asarray(s, dtype=np.float64), -int(np.frexp(np.max(s))[1]))  # the largest in [0.5, 1)
    return s, float(np.sum(s))


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool; ``TypeError`` naming ``name`` unless it is True or False (a string
    such as 'no' would otherwise read as True)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_intercept_shape(b: Any, K: int, w_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless the intercept is a scalar or has shape (K,), one per output."""
    check_ndim(b, "intercept", (0, 1), "a scalar or 1-D (K,)")
    if b.ndim == 1 and b.shape[0] != K:
        raise ValueError(f"w has {K} output{'s' if K != 1 else ''} but intercept has {b.shape[0]} entries "
                         f"(w {w_shape}, intercept {b.shape})")


# ---------------------------------------------------------------------------
# Kronecker/vec Jacobians and identities (kron.py, identities.py).


def as_matrix(x: Any, name: str, *, allow_1d: bool = False) -> np.ndarray:
    """``x`` as a real 2-D array (a 1-D one as a (1, n) row when ``allow_1d``); ``ValueError`` otherwise."""
    arr = as_real(x, name)
    if allow_1d:
        check_ndim(arr, name, (1, 2), "1-D or 2-D")
        return arr.reshape(1, -1) if arr.ndim == 1 else arr
    check_ndim(arr, name, (2,), "2-D")
    return arr


def check_square(arr: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless ``arr`` is a square 2-D matrix."""
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")


def check_chain(mats: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming both shapes unless the matrices can be multiplied in order."""
    for t in range(len(mats) - 1):
        a, na, b, nb = mats[t], names[t], mats[t + 1], names[t + 1]
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"{na} has {a.shape[1]} columns but {nb} has {b.shape[0]} rows "
                             f"({na} {a.shape}, {nb} {b.shape})")


# ---------------------------------------------------------------------------
# Neural-network gradients and training (nn.py, train.py).
# Row-major batches (one sample per row): X (N, D), W (D, C), b (C,), Z = X W + b.

NN_ACTIVATIONS = tuple(_config.ACTIVATION_CODES)  # the kernels take the codes
NN_LOSSES = tuple(_config.LOSS_CODES)


def _nn_array(x: Any, name: str, ndim: int, what: str) -> np.ndarray:
    arr = as_real(x, name)
    check_ndim(arr, name, (ndim,), what)
    return arr


def _nn_cast(dtype: np.dtype, *arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays in ``dtype`` (no copy when they already are; order kept)."""
    return [a if a.dtype == dtype else a.astype(dtype) for a in arrays]


def _check_layer(X: np.ndarray, W: np.ndarray, xname: str, wname: str) -> None:
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"{xname} has {X.shape[1]} columns but {wname} has {W.shape[0]} rows "
                         f"({xname} {X.shape}, {wname} {W.shape})")


def _check_bias(b: np.ndarray, W: np.ndarray, bname: str, wname: str) -> None:
    if b.shape[0] != W.shape[1]:
        raise ValueError(f"{bname} has {b.shape[0]} entries but {wname} has {W.shape[1]} columns "
                         f"({bname} {b.shape}, {wname} {W.shape})")


def _check_rows(X: np.ndarray, name: str) -> None:
    if X.shape[0] == 0:
        raise ValueError(f"{name} has 0 rows (shape {X.shape}): the mean over an empty sample axis "
                         "is undefined")


class DenseInputs(NamedTuple):
    """Validated inputs of ``dense_forward``/``dense_backward``: arrays of one dtype, any layout.

    X : (N, D); W : (D, C); b : (C,) or None; dZ : (N, C) or None; dtype : the result dtype.
    """

    X: np.ndarray
    W: np.ndarray
    b: np.ndarray | None
    dZ: np.ndarray | None
    dtype: np.dtype


def dense_inputs(X: Any, W: Any, b: Any = None, dZ: Any = None, *, check_finite_: bool = False,
                 need_b: bool = False, need_dZ: bool = False) -> DenseInputs:
    """Validate a dense layer's ``(X, W[, b][, dZ])``; errors name both shapes."""
    X = _nn_array(X, "X", 2, "2-D (N, D)")
    W = _nn_array(W, "W", 2, "2-D (D, C)")
    _check_layer(X, W, "X", "W")
    arrays = [X, W]
    if need_b:
        b = _nn_array(b, "b", 1, "1-D (C,)")
        _check_bias(b, W, "b", "W")
        arrays.append(b)
    if need_dZ:
        dZ = _nn_array(dZ, "dZ", 2, "2-D (N, C)")
        want = (X.shape[0], W.shape[1])
        if dZ.shape != want:
            raise ValueError(f"dZ has shape {dZ.shape} but Z = X W has shape {want} "
                             f"(X {X.shape}, W {W.shape})")
        arrays.append(dZ)
    if check_flag(check_finite_, "check_finite"):
        check_finite(X=X, W=W, b=b if need_b else None, dZ=dZ if need_dZ else None)
    dtype = result_dtype(*arrays)
    arrays = _nn_cast(dtype, *arrays)
    X, W = arrays[0], arrays[1]
    b = arrays[2] if need_b else None
    dZ = arrays[-1] if need_dZ else None
    return DenseInputs(X, W, b, dZ, dtype)


class MLP2Inputs(NamedTuple):
    """Validated inputs of ``mlp2_loss_and_grad``.

    X (N, D), W1 (D, H), b1 (H,), W2 (H, C), b2 (C,): one dtype (``dtype``), C-contiguous.
    Y: (N, C) targets of that dtype, C-contiguous, or (N,) intp labels in [0, C)
    when ``labels`` is True.  ``act``: activation code (index in NN_ACTIVATIONS);
    ``loss``: the loss name.
    """

    X: np.ndarray
    Y: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    act: int
    loss: str
    labels: bool
    dtype: np.dtype


def check_labels(y: Any, N: int, C: int, name: str = "Y") -> np.ndarray:
    """Integer class labels (N,) in [0, C) as intp; ``ValueError`` naming the first bad label."""
    arr = as_array(y, name)
    if arr.dtype.kind == "c" or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} labels must be integers, got dtype {arr.dtype}")
    if arr.shape[0] != N:
        raise ValueError(f"X has {N} rows but {name} has {arr.shape[0]} labels (Y {arr.shape})")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~(np.isfinite(arr) & (arr == np.round(arr))))
        if bad.size:
            raise ValueError(f"{name} labels must be integers: label {float(arr[bad[0]])!r} at index "
                             f"{bad[0]} is not")
    bad = np.flatnonzero((arr < 0) | (arr >= C))
    if bad.size:
        raise ValueError(f"{name} has label {int(arr[bad[0]])} at index {bad[0]}, outside [0, {C}) "
                         f"for {C} classes")
    return np.ascontiguousarray(arr, dtype=np.intp)


def mlp2_inputs(X: Any, Y: Any, W1: Any, b1: Any, W2: Any, b2: Any, activation: str, loss: str,
                check_finite_: bool = False) -> MLP2Inputs:
    """Validate the inputs of the 2-layer MLP loss; see :class:`MLP2Inputs`."""
    check_choice(activation, "activation", NN_ACTIVATIONS)
    check_choice(loss, "loss", NN_LOSSES)
    X = _nn_array(X, "X", 2, "2-D (N, D)")
    W1 = _nn_array(W1, "W1", 2, "2-D (D, H)")
    b1 = _nn_array(b1, "b1", 1, "1-D (H,)")
    W2 = _nn_array(W2, "W2", 2, "2-D (H, C)")
    b2 = _nn_array(b2, "b2", 1, "1-D (C,)")
    _check_layer(X, W1, "X", "W1")
    _check_bias(b1, W1, "b1", "W1")
    if W1.shape[1] != W2.shape[0]:
        raise ValueError(f"W1 has {W1.shape[1]} columns but W2 has {W2.shape[0]} rows "
                         f"(W1 {W1.shape}, W2 {W2.shape})")
    _check_bias(b2, W2, "b2", "W2")
    _check_rows(X, "X")
    N, C = X.shape[0], W2.shape[1]
    if C == 0:
        raise ValueError(f"W2 has 0 columns (shape {W2.shape}): the loss over zero outputs is undefined")
    Yarr = as_array(Y, "Y")
    labels = loss == "softmax_cross_entropy" and Yarr.ndim == 1
    if labels:
        Yv = check_labels(Yarr, N, C)
        floats = [X, W1, b1, W2, b2]
    else:
        Yv = as_real(Yarr, "Y")
        if loss == "mse" and Yv.ndim == 1 and C == 1 and Yv.shape[0] == N:
            Yv = Yv.reshape(N, 1)
        if Yv.shape != (N, C):
            what = "one-hot Y" if loss == "softmax_cross_entropy" else "Y"
            raise ValueError(f"{what} has shape {Yv.shape} but the network's output (logits) has shape "
                             f"{(N, C)} (X {X.shape}, W2 {W2.shape})")
        floats = [X, W1, b1, W2, b2, Yv]
    if check_flag(check_finite_, "check_finite"):
        check_finite(X=X, W1=W1, b1=b1, W2=W2, b2=b2, Y=None if labels else Yv)
    dtype = result_dtype(*floats)
    X, W1, b1, W2, b2 = (np.ascontiguousarray(a, dtype=dtype) for a in (X, W1, b1, W2, b2))
    if not labels:
        Yv = np.ascontiguousarray(Yv, dtype=dtype)
    return MLP2Inputs(X, Yv, W1, b1, W2, b2, _config.ACTIVATION_CODES[activation], loss, labels, dtype)


def check_learning_rate(lr: Any, name: str = "lr") -> float:
    """``lr`` as a float; ``ValueError`` unless it is a finite real number > 0."""
    if isinstance(lr, bool) or not isinstance(lr, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(lr).__name__}")
    lr = float(lr)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"{name} must be finite and > 0, got {lr!r}")
    return lr


# ---------------------------------------------------------------------------
# Results of a user's f (numerical differentiation)


def f_scalar(value: Any, name: str = "f") -> float:
    """A user f's result as a float; ``TypeError`` naming ``name`` unless it is one real number.

    None, strings, booleans, complex numbers and other objects are refused
    (``float("1.5")`` would read a string, a complex result would lose its
    imaginary part); real scalars and arrays of one element (0-D or 1-D) pass.
    """
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must return a real number, got {type(value).__name__} {value!r}")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - an object numpy cannot read
        raise TypeError(f"{name} must return a real number, got {type(value).__name__}") from None
    if arr.dtype.kind not in "iuf":
        hint = " (complex: differentiate its real and imaginary parts separately)" if arr.dtype.kind == "c" else ""
        raise TypeError(f"{name} must return a real number, got {type(value).__name__} of dtype {arr.dtype}{hint}")
    if arr.size != 1 or arr.ndim > 1:
        raise ValueError(f"{name} must return a scalar, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


# ---------------------------------------------------------------------------
# MSE second order (mse_hessp, mse_hessian) and a scipy.sparse A.


class SparseA(NamedTuple):
    """A validated scipy.sparse CSR or CSC matrix, as the sparse kernels take it.

    fmt : ``'csr'`` (row i holds entries ``indptr[i] <= p < indptr[i+1]``) or
        ``'csc'`` (the same by columns).
    indptr, indices : 1-D C-contiguous arrays of one integer dtype (int32 or
        int64), the user's own arrays (never written); ``indptr`` nondecreasing
        from 0, every index in range.
    data : 1-D C-contiguous float32/float64 (the user's array, or a float64 copy
        of other real data).
    shape : (N, D).

    Unsorted indices, explicit zeros and duplicate entries are accepted as they
    are, without a copy: the kernels form ``sum_p data_p x[indices_p]`` and
    scatter ``data_p t`` entry by entry, which is the matrix the entries
    describe (duplicates add, as scipy reads them).
    """

    fmt: str
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]


def is_sparse(x: Any) -> bool:
    """True for a ``scipy.sparse`` matrix or array (without importing scipy otherwise)."""
    return _is_sparse(x)


def sparse_index_error(name: str, fmt: str, minor: int) -> ValueError:
    """The error of a sparse ``name`` with an index outside ``[0, minor)`` (raised here or by a CSR kernel)."""
    return ValueError(f"{name} is a malformed {fmt.upper()} matrix: an index lies outside [0, {minor}) "
                      f"(A.check_format() tells more)")


def check_sparse_indices(A: SparseA, name: str = "A") -> None:
    """Raise :func:`sparse_index_error` unless the index of every entry in use (``p < indptr[-1]``,
    the entries a kernel reads) lies in range.

    One pass over the indices: their largest value read as unsigned (a negative
    index read so is above every valid one).
    """
    indices = A.indices[:A.indptr[-1]]
    minor = A.shape[1] if A.fmt == "csr" else A.shape[0]
    if indices.shape[0] and int(indices.view(np.uint32 if indices.dtype.itemsize == 4 else np.uint64).max()) >= minor:
        raise sparse_index_error(name, A.fmt, minor)


def sparse_inputs(A: Any, name: str = "A", *, check_indices: bool = True) -> SparseA:
    """Validate a scipy.sparse CSR/CSC ``A`` (matrix or array type); see :class:`SparseA`.

    Other sparse formats raise ``TypeError`` naming the conversion; malformed
    index arrays (indices out of range, ``indptr`` not nondecreasing from 0)
    raise ``ValueError``.  Costs one pass over the indices (:func:`check_sparse_indices`),
    no copy.

    ``check_indices=False`` leaves that pass to the caller: the sparse MSE
    functions call :func:`check_sparse_indices` unless the CSR kernels check the
    indices in their own pass (``fastgrad._config.sparse_checks_in_pass``; their
    protocol then raises :func:`sparse_index_error`).
    """
    fmt = getattr(A, "format", None)
    if fmt not in ("csr", "csc"):
        raise TypeError(f"{name} is a scipy.sparse {type(A).__name__} in {fmt!r} format; the MSE "
                        f"functions take CSR or CSC: pass {name}.tocsr()")
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got a sparse array of shape {A.shape}")
    N, D = A.shape
    major, minor = (N, D) if fmt == "csr" else (D, N)
    indptr, indices = np.asarray(A.indptr), np.asarray(A.indices)
    if indptr.dtype != indices.dtype or indptr.dtype.kind != "i" or indptr.dtype.itemsize not in (4, 8):
        itype = np.int64 if max(indptr.dtype.itemsize, indices.dtype.itemsize) > 4 else np.int32
        indptr, indices = indptr.astype(itype), indices.astype(itype)
    indptr, indices = as_contiguous(indptr), as_contiguous(indices)
    data = as_real(A.data, f"{name}.data")
    data = as_contiguous(data)
    nnz = indices.shape[0]
    if indptr.ndim != 1 or indptr.shape[0] != major + 1 or data.shape != (nnz,):
        raise ValueError(f"{name} is a malformed {fmt.upper()} matrix: indptr has {indptr.shape[0]} entries "
                         f"for {major} {'rows' if fmt == 'csr' else 'columns'}, indices {nnz}, data "
                         f"{data.shape[0]}")
    if indptr[0] != 0 or indptr[-1] > nnz or (major and np.any(indptr[1:] < indptr[:-1])):
        raise ValueError(f"{name} is a malformed {fmt.upper()} matrix: indptr must rise from 0 to at most "
                         f"nnz = {nnz} (A.check_format() tells more)")
    checked = SparseA(fmt, indptr, indices, data, (N, D))
    if check_indices:
        check_sparse_indices(checked, name)
    return checked


def check_sparse_indices_unless_in_pass(A: SparseA, K: int) -> None:
    """:func:`check_sparse_indices`, unless the CSR kernels of a pass with K outputs check them."""
    if not (A.fmt == "csr" and A.shape[1] > 0 and _config.sparse_checks_in_pass(int(A.indptr[-1]), A.shape[0], K)):
        check_sparse_indices(A)


def _weights_and_scale(sample_weight: Any, N: int, K: int, a_shape: tuple[int, ...], reduction: str,
                       check_finite_: bool) -> tuple[np.ndarray | None, float]:
    """The sample weights as float64 (N,) (or None) and the reduction's scale (``1/(N K)``,
    ``1/(K sum s)`` or 1)."""
    if sample_weight is None:
        return None, (1.0 / (N * K) if reduction == "mean" else 1.0)
    s = as_real(sample_weight, "sample_weight")
    check_sample_weight_shape(s, N, a_shape)
    if check_flag(check_finite_, "check_finite"):
        check_finite(sample_weight=s)
    total = check_sample_weight_values(s, reduction)
    if reduction == "mean":
        s, total = mean_weights(s, total)
    s = np.ascontiguousarray(s, dtype=np.float64)
    return s, (1.0 / (K * total) if reduction == "mean" else 1.0)


def _matrix_input(A: Any, check_indices: bool = True) -> np.ndarray | SparseA:
    """A dense A (any strides, in place; aligned) or a validated sparse one (see :func:`sparse_inputs`)."""
    if _is_sparse(A):
        return sparse_inputs(A, check_indices=check_indices)
    A = as_real(A, "A")
    check_ndim(A, "A", (2,), "2-D (N, D)")
    if not A.flags.aligned:
        A = np.array(A, order="K")
    return A


def _no_rows(A_shape: tuple[int, ...], reduction: str) -> None:
    if A_shape[0] == 0:
        why = ("the mean over an empty sample axis is undefined" if reduction == "mean"
               else "an empty sample axis leaves nothing to fit")
        raise ValueError(f"A has 0 rows (shape {A_shape}): {why}")


class MSEHesspInputs(NamedTuple):
    """Validated inputs of ``mse_hessp``.

    A : dense (N, D) float32/float64 of any strides (never written), or a :class:`SparseA`.
    VT : (K, D) C-contiguous float64, the direction transposed (dense A).
    V : (D, K) C-contiguous float64, the direction (sparse A).
    s : (N,) C-contiguous float64 sample weights, or None.
    scale, alpha : floats (see ``mse_hessp``).
    v_shape : the shape of the result; dtype : the result dtype.
    """

    A: Any
    VT: np.ndarray
    V: np.ndarray
    s: np.ndarray | None
    scale: float
    alpha: float
    v_shape: tuple[int, ...]
    dtype: np.dtype


def mse_hessp_inputs(A: Any, v: Any, sample_weight: Any, alpha: Any, reduction: str,
                     check_finite_: bool = False) -> MSEHesspInputs:
    """Validate ``mse_hessp(A, v, ...)``; see :class:`MSEHesspInputs`.

    The commonest call (C-contiguous float64 ndarrays A (N, D), N > 0, and v
    (D,), no weights, alpha 0.0, 'mean', no ``check_finite``) is valid as it
    stands and is returned without a conversion: 1.5 of the 4.7 us this
    validation took on a ~30 us call at (10^4, 16).
    """
    if (
        type(A) is np.ndarray and type(v) is np.ndarray and sample_weight is None
        and type(alpha) is float and alpha == 0.0 and reduction == "mean" and check_finite_ is False
        and A.dtype is _F64 and v.dtype is _F64 and A.ndim == 2 and v.ndim == 1
        and A.flags.c_contiguous and v.flags.c_contiguous and A.shape[0] > 0 and v.shape[0] == A.shape[1]
    ):
        D = v.shape[0]
        return MSEHesspInputs(A, v.reshape(1, D), v.reshape(D, 1), None, 1.0 / A.shape[0], alpha, v.shape, _F64)
    check_choice(reduction, "reduction", _REDUCTIONS)
    A = _matrix_input(A, check_indices=False)  # a sparse A's indices: checked below, or by the kernel's pass
    v = as_real(v, "v")
    check_ndim(v, "v", (1, 2), "1-D (D,) or 2-D (D, K), shaped like w")
    N, D = A.shape
    if v.shape[0] != D:
        raise ValueError(f"A has {D} columns but v has {v.shape[0]} rows (A {A.shape}, v {v.shape})")
    _no_rows(A.shape, reduction)
    K = 1 if v.ndim == 1 else v.shape[1]
    if K == 0 and reduction == "mean":
        raise ValueError(f"v has 0 columns (shape {v.shape}): the mean over zero outputs is undefined")
    if isinstance(A, SparseA):
        check_sparse_indices_unless_in_pass(A, K)
    alpha = check_alpha(alpha)
    if check_flag(check_finite_, "check_finite"):
        check_finite(A=A.data if isinstance(A, SparseA) else A, v=v)
    s, scale = _weights_and_scale(sample_weight, N, K, A.shape, reduction, check_finite_)
    a_dtype = A.data.dtype if isinstance(A, SparseA) else A.dtype
    dtype = _F32 if a_dtype.char == "f" and v.dtype.char == "f" and (
        sample_weight is None or np.asarray(sample_weight).dtype.char == "f") else _F64
    V = np.ascontiguousarray(v.reshape(D, K), dtype=np.float64)
    VT = np.ascontiguousarray(V.T)
    return MSEHesspInputs(A, VT, V, s, scale, alpha, v.shape, dtype)


def mse_hessian_inputs(A: Any, sample_weight: Any, alpha: Any, reduction: str,
                       check_finite_: bool = False) -> tuple[Any, np.ndarray | None, float, float, np.dtype]:
    """Validate ``mse_hessian(A, ...)``: ``(A, s, scale, alpha, dtype)``, A dense (any strides) or
    scipy.sparse CSR/CSC as given; scale ``1/N`` (``1/sum s``) for the mean, per output."""
    check_choice(reduction, "reduction", _REDUCTIONS)
    sparse = _is_sparse(A)
    Av = _matrix_input(A)
    N = Av.shape[0]
    _no_rows(Av.shape, reduction)
    alpha = check_alpha(alpha)
    if check_flag(check_finite_, "check_finite"):
        check_finite(A=Av.data if sparse else Av)
    s, scale = _weights_and_scale(sample_weight, N, 1, Av.shape, reduction, check_finite_)
    a_dtype = Av.data.dtype if sparse else Av.dtype
    dtype = _F32 if a_dtype.char == "f" and (
        sample_weight is None or np.asarray(sample_weight).dtype.char == "f") else _F64
    return (A if sparse else Av), s, scale, alpha, dtype


class SparseMSEInputs(NamedTuple):
    """Validated inputs of the MSE loss/gradient with a scipy.sparse A.

    A : :class:`SparseA`; Y : (N, K) C-contiguous float32/float64; W : (D, K)
    C-contiguous float64 (the weights); s, b : float64 (N,) / (K,) or None;
    the other fields as in :class:`MSEInputs`.
    """

    A: SparseA
    Y: np.ndarray
    W: np.ndarray
    w_shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    s: np.ndarray | None
    b: np.ndarray | None
    b_shape: tuple[int, ...] | None
    alpha: float


def mse_sparse_inputs(A: Any, y: Any, w: Any, reduction: str, check_finite_: bool = False, *,
                      sample_weight: Any = None, intercept: Any = None, alpha: Any = 0.0) -> SparseMSEInputs:
    """Validate ``(A, y, w)`` with a scipy.sparse CSR/CSC ``A``; see :class:`SparseMSEInputs`."""
    check_choice(reduction, "reduction", _REDUCTIONS)
    Asp = sparse_inputs(A, check_indices=False)  # its indices: checked below, or by the kernel's pass
    y = as_real(y, "y")
    w = as_real(w, "w")
    N, D, K = mse_shapes(A, y, w, reduction)
    check_sparse_indices_unless_in_pass(Asp, K)
    alpha = check_alpha(alpha)
    b = None if intercept is None else as_real(intercept, "intercept")
    if b is not None:
        check_intercept_shape(b, K, w.shape)
    if check_flag(check_finite_, "check_finite"):
        check_finite(A=Asp.data, y=y, w=w, intercept=b)
    s, scale = _weights_and_scale(sample_weight, N, K, A.shape, reduction, check_finite_)
    floats = [Asp.data, y, w] + [np.asarray(x) for x in (sample_weight, typed_or_none(intercept, b))
                                 if x is not None]
    dtype = result_dtype(*floats)
    Y = as_contiguous(y.reshape(N, K) if y.ndim == 1 else y)
    W = np.ascontiguousarray(w.reshape(D, K), dtype=np.float64)
    b64 = None if b is None else np.ascontiguousarray(np.broadcast_to(np.asarray(b, dtype=np.float64), (K,)))
    return SparseMSEInputs(Asp, Y, W, w.shape, dtype, scale, s, b64, None if b is None else b.shape, alpha)


# ---------------------------------------------------------------------------
# Evaluating a user's f: workers, sparsity structures


def check_workers(workers: Any) -> Any:
    """``workers=`` of numgrad/numjac: None, an int >= 1, a ``concurrent.futures.Executor`` or a map-like callable."""
    if workers is None:
        return None
    if isinstance(workers, (int, np.integer)) and not isinstance(workers, (bool, np.bool_)):
        return check_positive_int(workers, "workers")
    import concurrent.futures

    if isinstance(workers, concurrent.futures.Executor) or callable(workers):
        return workers
    raise TypeError(
        "workers must be an int (threads), a concurrent.futures.Executor or a map-like callable "
        f"workers(func, iterable), got {type(workers).__name__}")


def sparsity_structure(S: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The structure ``S`` of numjac(sparsity=) as the CSR pattern ``(indptr, indices)`` (int64) of ``shape``.

    ``S`` is array_like or scipy.sparse of shape (f.size, x.size); its nonzero
    entries are the structurally nonzero ones (explicit zeros of a sparse S
    are not; duplicates are summed first).  Booleans or real numbers only.
    Column indices come sorted within each row.
    """
    import scipy.sparse as sp

    if sp.issparse(S):
        if S.ndim != 2 or S.shape != shape:
            raise ValueError(f"sparsity has shape {S.shape} but the Jacobian has shape {shape} "
                             "(f.size, x.size)")
        if S.dtype.kind not in "biuf":
            raise ValueError(f"sparsity must hold booleans or real numbers, got dtype {S.dtype}")
        csr = sp.csr_array(S)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        if not np.all(csr.data != 0):
            csr = csr.copy()
            csr.eliminate_zeros()
    else:
        try:
            arr = np.asarray(S)
        except Exception as exc:  # noqa: BLE001 - an object numpy cannot read
            raise ValueError(f"sparsity must be array_like or scipy.sparse, got {type(S).__name__}") from exc
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"sparsity must hold booleans or real numbers, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"sparsity has shape {arr.shape} but the Jacobian has shape {shape} "
                             "(f.size, x.size)")
        csr = sp.csr_array(arr != 0)
    return csr.indptr.astype(np.int64, copy=False), csr.indices.astype(np.int64, copy=False)


def sparsity_groups(groups: Any, n: int) -> np.ndarray:
    """Column groups of numjac(sparsity=(S, groups)): n non-negative integers."""
    try:
        g = np.asarray(groups)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"sparsity groups must be integers, got {type(groups).__name__}") from exc
    if g.dtype.kind not in "iu":
        raise ValueError(f"sparsity groups must be integers, got dtype {g.dtype}")
    if g.shape != (n,):
        raise ValueError(f"sparsity groups have shape {g.shape} but x has {n} elements: one group per column")
    if n and g.min() < 0:
        raise ValueError("sparsity groups must be non-negative")
    if n:  # any labels (gaps included): numbered 0 .. n_groups - 1 in their order
        g = np.unique(g, return_inverse=True)[1].reshape(n)
    return g.astype(np.intp)
