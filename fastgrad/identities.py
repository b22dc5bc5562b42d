r"""Matrix-differential identities, as functions returning the gradient.

The derivations work in differentials (docs/derivations.md, "Matrix differentials"):
``dy = tr(G_num dX)`` defines the numerator-layout derivative ``G_num``; fastgrad's
default is the gradient layout, an array shaped like X, which is ``G_num``
transposed.  Every function returning a gradient takes
``layout='gradient'|'numerator'``.

=====================================  ====================================  ==========================
function                               gradient layout                       differential
=====================================  ====================================  ==========================
``grad_logdet(X)``                     ``X^{-T}``                            d ln|X| = tr(X⁻¹ dX)
``grad_det(X)``                        ``adj(X)ᵀ`` (singular X too)          d|X| = tr(adj(X) dX)
``grad_trace_AXB(A, B)``               ``Aᵀ Bᵀ`` (numerator: ``B A``)        d tr(AXB) = tr(BA dX)
``grad_sq_norm_affine(W, x, b)``       ``2 (W x + b) xᵀ``                    d‖Wx+b‖² = tr(2x(Wx+b)ᵀ dW)
``dinv(X, dX)``                        ``−X⁻¹ dX X⁻¹`` (a differential)      d(X⁻¹) = −X⁻¹ dX X⁻¹
``jacobian_inv(X)``                    ``−X^{-T} ⊗ X⁻¹`` (order F)           d(X⁻¹), vectorised
=====================================  ====================================  ==========================

These are small dense linear-algebra calls (numpy/LAPACK), not hot loops; they
compute in float64 and return float32 only when every input is float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validate
from .kron import kron

__all__ = [
    "grad_logdet",
    "grad_det",
    "grad_trace_AXB",
    "grad_sq_norm_affine",
    "dinv",
    "jacobian_inv",
]

LAYOUTS = ("gradient", "numerator")


def _layout(layout: str) -> str:
    return _validate.check_choice(layout, "layout", LAYOUTS)


def _square(X: Any, name: str, check_finite: bool = False) -> np.ndarray:
    Xa = _validate.as_matrix(X, name)
    _validate.check_square(Xa, name)
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(**{name: Xa})
    return Xa


def _finish(G: np.ndarray, dtype: np.dtype, layout: str) -> np.ndarray:
    G = G.T if layout == "numerator" else G
    return np.ascontiguousarray(G, dtype=dtype)


def _inv(X64: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(X64).all():  # NaN/Inf propagate (LAPACK may call such an X singular)
        return np.full(X64.shape, np.nan)
    try:
        return np.linalg.inv(X64)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(f"{name} is singular: it has no inverse") from None


def grad_logdet(X: Any, *, signed: bool = False, layout: str = "gradient", check_finite: bool = False) -> np.ndarray:
    r"""Gradient of ``log det X``: ``X^{-T}`` (from d ln|X| = tr(X⁻¹ dX)).

    Parameters
    ----------
    X : array_like of shape (n, n)
    signed : bool
        False: ``log det X`` needs det X > 0 (``ValueError`` otherwise).
        True: the gradient of ``log |det X|``, the same ``X^{-T}``, for either sign.
    layout : {'gradient', 'numerator'}
        ``'gradient'`` (default): ``X^{-T}``, shaped like X; ``'numerator'``: ``X⁻¹``.
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf (otherwise NaN
        propagates into the result).

    Raises
    ------
    numpy.linalg.LinAlgError
        X is singular.
    ValueError
        det X < 0 and not ``signed``; X not square.

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.grad_logdet([[2., 1.], [0., 4.]]).tolist()
    [[0.5, 0.0], [-0.125, 0.25]]
    """
    _layout(layout)
    signed = _validate.check_flag(signed, "signed")
    Xa = _square(X, "X", check_finite)
    X64 = Xa.astype(np.float64, copy=False)
    if not np.isfinite(X64).all():  # NaN/Inf propagate (slogdet may call such an X singular)
        return _finish(np.full(X64.shape, np.nan), Xa.dtype, layout)
    sign, _ = np.linalg.slogdet(X64)
    if sign == 0:
        raise np.linalg.LinAlgError("X is singular (det X = 0): log det X is undefined")
    if sign < 0 and not signed:
        raise ValueError("det X < 0: log det X is undefined; pass signed=True for the gradient of log|det X|")
    return _finish(_inv(X64, "X").T, Xa.dtype, layout)


def grad_det(X: Any, *, layout: str = "gradient", check_finite: bool = False) -> np.ndarray:
    r"""Gradient of ``det X``: the cofactor matrix ``adj(X)ᵀ``, defined for singular X too.

    The differential ``d|X| = tr(adj(X) dX)`` (Jacobi's formula; docs/derivations.md,
    "Matrix differentials").  The adjugate is computed from the SVD ``X = U S Vᵀ``:
    ``adj(X)ᵀ = det(U) det(V) U diag(∏_{j≠i} s_j) Vᵀ`` — no division by det X, so
    rank-deficient X (rank n−1: a nonzero gradient; rank ≤ n−2: zero) is exact to
    rounding, unlike ``det(X) X^{-T}``.

    Parameters
    ----------
    X : array_like of shape (n, n)
    layout : {'gradient', 'numerator'}
        ``'numerator'`` returns ``adj(X)``.
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf (otherwise NaN
        propagates into the result).

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> np.round(fastgrad.grad_det([[1., 2.], [2., 4.]]), 12).tolist()  # singular
    [[4.0, -2.0], [-2.0, 1.0]]
    """
    _layout(layout)
    Xa = _square(X, "X", check_finite)
    n = Xa.shape[0]
    if n == 0:
        return np.zeros((0, 0), Xa.dtype)
    if not np.isfinite(Xa).all():
        # NaN/Inf propagate (the SVD would not converge): every cofactor depends on them
        return _finish(np.full((n, n), np.nan), Xa.dtype, layout)
    U, s, Vt = np.linalg.svd(Xa.astype(np.float64, copy=False))
    p = _products_but_one(s)
    d = np.linalg.slogdet(U)[0] * np.linalg.slogdet(Vt)[0]
    finite = np.isfinite(p)
    G = (U[:, finite] * p[finite]) @ Vt[finite]
    for i in np.flatnonzero(~finite):  # p_i overflows: +-inf where u_i v_i^T is nonzero
        outer = np.outer(U[:, i], Vt[i])
        with np.errstate(invalid="ignore"):
            G = G + np.where(outer == 0.0, 0.0, outer * np.inf)
    return _finish(d * G, Xa.dtype, layout)


def _products_but_one(s: np.ndarray) -> np.ndarray:
    r"""``p_i = prod_{j != i} s_j`` for s >= 0, from prefix and suffix products (no division).

    The running products are kept as mantissa and exponent (``np.frexp``), so a
    product that is representable comes out right even where the running
    products would overflow or underflow on the way (s = (1e160, 1e160,
    1e-160, 1e-160)); a p_i beyond float64's range is inf or 0.
    """
    n = s.shape[0]
    m, e = np.frexp(s)
    pre_m, pre_e = np.ones(n), np.zeros(n, dtype=np.int64)
    suf_m, suf_e = np.ones(n), np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        pm, pe = np.frexp(pre_m[i - 1] * m[i - 1])
        pre_m[i], pre_e[i] = pm, pre_e[i - 1] + e[i - 1] + pe
        j = n - 1 - i
        sm, se = np.frexp(suf_m[j + 1] * m[j + 1])
        suf_m[j], suf_e[j] = sm, suf_e[j + 1] + e[j + 1] + se
    pm, pe = np.frexp(pre_m * suf_m)
    exponent = np.clip(pre_e + suf_e + pe, -2200, 2200)  # beyond float64 either way; keeps ldexp in int range
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(pm, exponent.astype(np.int32))


def grad_trace_AXB(A: Any, B: Any, *, layout: str = "gradient", check_finite: bool = False) -> np.ndarray:
    r"""Gradient of ``tr(A X B)`` wrt X: ``Aᵀ Bᵀ`` (numerator layout: ``B A``).

    From the differential ``d tr(AXB) = tr(A dX B) = tr(BA dX)``.

    Parameters
    ----------
    A : array_like of shape (p, m)
    B : array_like of shape (n, p)
        X is (m, n); ``A X B`` must be square (A's rows = B's columns).
    layout : {'gradient', 'numerator'}
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf (otherwise NaN
        propagates into the result).

    Returns
    -------
    ndarray of shape (m, n) (``'numerator'``: (n, m))

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 2.]]); B = np.array([[3.], [4.], [5.]])
    >>> fastgrad.grad_trace_AXB(A, B).tolist()
    [[3.0, 4.0, 5.0], [6.0, 8.0, 10.0]]
    """
    _layout(layout)
    Aa = _validate.as_matrix(A, "A")
    Ba = _validate.as_matrix(B, "B")
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(A=Aa, B=Ba)
    if Aa.shape[0] != Ba.shape[1]:
        raise ValueError(f"A has {Aa.shape[0]} rows but B has {Ba.shape[1]} columns, so A X B is not "
                         f"square and has no trace (A {Aa.shape}, B {Ba.shape})")
    G = Aa.astype(np.float64, copy=False).T @ Ba.astype(np.float64, copy=False).T
    return _finish(G, _validate.result_dtype(Aa, Ba), layout)


def grad_sq_norm_affine(W: Any, x: Any, b: Any, *, layout: str = "gradient",
                        check_finite: bool = False) -> np.ndarray:
    r"""Gradient of ``‖W x + b‖²`` wrt W: ``2 (W x + b) xᵀ``.

    From the differential ``d‖Wx + b‖² = 2(Wx + b)ᵀ dW x = tr(2 x (Wx + b)ᵀ dW)``, whose
    numerator form ``2 x (Wx + b)ᵀ`` is returned for ``layout='numerator'``.

    Parameters
    ----------
    W : array_like of shape (n, m)
    x : array_like of shape (m,)
    b : array_like of shape (n,)
    layout : {'gradient', 'numerator'}
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf (otherwise NaN
        propagates into the result).

    Returns
    -------
    ndarray of shape (n, m) (``'numerator'``: (m, n))

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.grad_sq_norm_affine([[1., 0.], [0., 1.]], [1., 2.], [0., 1.]).tolist()
    [[2.0, 4.0], [6.0, 12.0]]
    """
    _layout(layout)
    Wa = _validate.as_matrix(W, "W")
    xa = _validate.as_real(x, "x")
    ba = _validate.as_real(b, "b")
    _validate.check_ndim(xa, "x", (1,), "1-D (m,)")
    _validate.check_ndim(ba, "b", (1,), "1-D (n,)")
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(W=Wa, x=xa, b=ba)
    if Wa.shape[1] != xa.shape[0]:
        raise ValueError(f"W has {Wa.shape[1]} columns but x has {xa.shape[0]} elements "
                         f"(W {Wa.shape}, x {xa.shape})")
    if Wa.shape[0] != ba.shape[0]:
        raise ValueError(f"W has {Wa.shape[0]} rows but b has {ba.shape[0]} elements "
                         f"(W {Wa.shape}, b {ba.shape})")
    x64 = xa.astype(np.float64, copy=False)
    y = Wa.astype(np.float64, copy=False) @ x64 + ba
    return _finish(2.0 * np.outer(y, x64), _validate.result_dtype(Wa, xa, ba), layout)


def dinv(X: Any, dX: Any, *, check_finite: bool = False) -> np.ndarray:
    r"""Differential of the inverse: ``d(X⁻¹) = −X⁻¹ dX X⁻¹``.

    From ``d(X⁻¹ X) = d(X⁻¹) X + X⁻¹ dX = 0``.  The first-order change of ``inv(X)``
    in the direction dX.

    Parameters
    ----------
    X : array_like of shape (n, n)
        Invertible (``numpy.linalg.LinAlgError`` if singular).
    dX : array_like of shape (n, n)
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf (otherwise NaN
        propagates into the result).

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.dinv([[2., 0.], [0., 4.]], [[1., 1.], [1., 1.]]).tolist()
    [[-0.25, -0.125], [-0.125, -0.0625]]
    """
    Xa = _square(X, "X")
    dXa = _validate.as_matrix(dX, "dX")
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(X=Xa, dX=dXa)
    if dXa.shape != Xa.shape:
        raise ValueError(f"dX has shape {dXa.shape} but X has shape {Xa.shape}")
    Xi = _inv(Xa.astype(np.float64, copy=False), "X")
    return np.ascontiguousarray(-(Xi @ dXa.astype(np.float64, copy=False) @ Xi),
                                dtype=_validate.result_dtype(Xa, dXa))


def jacobian_inv(X: Any, order: str = "F", *, check_finite: bool = False,
                 backend: str | None = None) -> np.ndarray:
    r"""∂vec(X⁻¹)/∂vec(X): ``−X^{-T} ⊗ X⁻¹`` (order F) or ``−X⁻¹ ⊗ X^{-T}`` (order C).

    The differential ``d(X⁻¹) = −X⁻¹ dX X⁻¹``, vectorised with
    ``vec(A X B) = (Bᵀ ⊗ A) vec(X)``: ``vec(−X⁻¹ dX X⁻¹) = −(X^{-T} ⊗ X⁻¹) vec(dX)``
    for the column-stacking vec; with numpy's row-major ravel the entry
    ``∂(X⁻¹)_ij/∂X_ab = −(X⁻¹)_ia (X⁻¹)_bj`` sits at ``[i n + j, a n + b]``, which is
    ``−X⁻¹ ⊗ X^{-T}``.

    Parameters
    ----------
    X : array_like of shape (n, n)
        Invertible (``numpy.linalg.LinAlgError`` if singular).
    order : {'F', 'C'}
    backend : str, optional
        Backend of the Kronecker kernel.
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf (otherwise NaN
        propagates into the result).

    Returns
    -------
    ndarray of shape (n², n²)

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.jacobian_inv([[2., 0.], [0., 4.]]).diagonal().tolist()
    [-0.25, -0.125, -0.125, -0.0625]
    """
    _validate.check_choice(order, "order", ("F", "C"))
    Xa = _square(X, "X", check_finite)
    Xi = _inv(Xa.astype(np.float64, copy=False), "X").astype(Xa.dtype, copy=False)
    if order == "F":
        return kron(-Xi.T, Xi, backend=backend)
    return kron(-Xi, Xi.T, backend=backend)
