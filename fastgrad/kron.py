r"""Kronecker products, vec, and the closed-form Jacobians of matrix functions.

The math is in docs/derivations.md, "Kronecker and vec Jacobians".

Vectorisation order: ``order='F'`` is the textbook vec (column
stacking), ``order='C'`` numpy's row-major ravel.  With them:

* ``kron(A, B)``: ``(A ⊗ B)[i mB + k, j nB + l] = a_ij b_kl`` (== ``np.kron``),
  written straight into ``out``, each element once, in parallel over output rows.
* ``jacobian_Wx(x, n)``: ∂(W x)/∂vec(W) for W (n, m) — ``xᵀ ⊗ I_n`` (F),
  ``I_n ⊗ xᵀ`` (C), since for ``f = W x``, ∂f_i/∂W_ab = δ_ia x_b.
* ``jacobian_AXB(A, B)``: ∂vec(A X B)/∂vec(X) — ``Bᵀ ⊗ A`` (F), ``A ⊗ Bᵀ`` (C).
* ``KronOperator(A, B)``: ``A ⊗ B`` as a ``scipy.sparse.linalg.LinearOperator``
  applied by the vec trick, never formed.
* ``matmul_jacobian(*mats, wrt)``: ``J[i, j, a, b] = ∂P_ij/∂(M_wrt)_ab = L_ia R_bj``
  for ``P = M_0 M_1 … M_{k-1}`` (an index slip in an earlier draft of the notes
  corrected; see docs/derivations.md, "Slips in the original notes").
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import _config, _validate

__all__ = [
    "kron",
    "vec",
    "unvec",
    "jacobian_Wx",
    "jacobian_AXB",
    "KronOperator",  # noqa: F822 (module __getattr__)
    "matmul_jacobian",
]

ORDERS = ("F", "C")
FORMATS = ("dense", "csr", "operator")


# ---------------------------------------------------------------------------
# kron


def _fill_threads(size: int) -> int:
    """Threads for a fill of ``size`` output elements (serial below ``_config.FILL_PARALLEL_MIN``)."""
    return _config.threads_for(size, _config.FILL_PARALLEL_MIN)


def _kron_into(A: np.ndarray, B: np.ndarray, out: np.ndarray, k) -> None:
    """``out[...] = A ⊗ B`` by kernel module ``k``; A, B C-contiguous 2-D of out's dtype, out 2-D writeable."""
    k.kron(A, B, out, _fill_threads(out.size))


def _kron_operands(A: Any, B: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], np.dtype]:
    a = _validate.as_real(A, "A")
    b = _validate.as_real(B, "B")
    _validate.check_ndim(a, "A", (1, 2), "1-D or 2-D")
    _validate.check_ndim(b, "B", (1, 2), "1-D or 2-D")
    dtype = _validate.result_dtype(a, b)
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(1, -1) if b.ndim == 1 else b
    if a.ndim == 1 and b.ndim == 1:
        shape: tuple[int, ...] = (a.size * b.size,)
    else:
        shape = (a2.shape[0] * b2.shape[0], a2.shape[1] * b2.shape[1])
    # The operands are small next to the output: one contiguous copy in the result
    # dtype (when needed) spares the kernel strided reads and mixed-type code.
    a2 = np.ascontiguousarray(a2, dtype=dtype)
    b2 = np.ascontiguousarray(b2, dtype=dtype)
    return a2, b2, shape, dtype


def kron(A: Any, B: Any, *, out: np.ndarray | None = None, check_finite: bool = False,
         backend: str | None = None) -> np.ndarray:
    r"""Kronecker product ``A ⊗ B``, equal to ``np.kron(A, B)`` for 1-D and 2-D inputs.

    ``(A ⊗ B)[i mB + k, j nB + l] = a_ij b_kl``; a 1-D operand is a (1, n) row, and
    two 1-D operands give a 1-D result (as ``np.kron``).  Every output element is
    written once, row by row, straight into ``out``; large outputs are filled in
    parallel over output rows (bitwise identical for every thread count).

    Parameters
    ----------
    A : array_like of shape (mA, nA) or (nA,)
    B : array_like of shape (mB, nB) or (nB,)
        Any strides or order; a non-contiguous (e.g. transposed) or other-dtype
        operand is copied to a contiguous array of the result dtype first (they
        are small next to the output).  Never written.
    out : ndarray of shape (mA mB, nA nB), optional
        Written in place (any strides); its dtype must be the result dtype.  It
        may overlap A or B (they are copied first then).
    check_finite : bool
        Raise ``ValueError`` if A or B holds NaN or Inf (otherwise they propagate
        as ``np.kron``'s products do).
    backend : {'numba', 'cython', 'numpy'}, optional

    Returns
    -------
    ndarray of shape (mA mB, nA nB) (``(nA nB,)`` for two 1-D inputs)
        float32 only when A and B both are; ``out`` if given.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> fastgrad.kron([[1., 2.]], [[1.], [10.]]).tolist()
    [[1.0, 2.0], [10.0, 20.0]]
    >>> A = np.arange(6.).reshape(2, 3); B = np.ones((2, 2))
    >>> bool(np.array_equal(fastgrad.kron(A.T, B), np.kron(A.T, B)))
    True
    """
    a2, b2, shape, dtype = _kron_operands(A, B)
    if _validate.check_flag(check_finite, "check_finite"):
        _validate.check_finite(A=a2, B=b2)
    k = _config.kernels("kron", backend)
    if out is None:
        out = np.empty(shape, dtype)
    else:
        _validate.check_out(out, shape, dtype)
        if np.may_share_memory(out, a2) or np.may_share_memory(out, b2):
            a2, b2 = a2.copy(), b2.copy()
    _kron_into(a2, b2, out.reshape(a2.shape[0] * b2.shape[0], -1) if out.ndim == 1 else out, k)
    return out


# ---------------------------------------------------------------------------
# vec / unvec


def vec(X: Any, order: str = "F") -> np.ndarray:
    r"""The vectorisation of X: its elements as a 1-D array, ``order='F'`` (column stacking) or ``'C'``.

    ``vec(X)[a + b m] = X[a, b]`` for order F (X of shape (m, n)), ``X[a, b]`` at
    ``a n + b`` for order C (numpy's ravel).  A view when the layout allows
    (as ``np.ravel``), otherwise a copy; any ndim.

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.vec([[1., 2.], [3., 4.]]).tolist()
    [1.0, 3.0, 2.0, 4.0]
    >>> fastgrad.vec([[1., 2.], [3., 4.]], order="C").tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    _validate.check_choice(order, "order", ORDERS)
    return np.ravel(_validate.as_real(X, "X"), order=order)


def unvec(v: Any, shape: Any, order: str = "F") -> np.ndarray:
    r"""The inverse of :func:`vec`: the 1-D ``v`` reshaped to ``shape`` in ``order`` (default 'F').

    Raises ``ValueError`` if ``v`` does not have ``prod(shape)`` elements.

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.unvec([1., 3., 2., 4.], (2, 2)).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    _validate.check_choice(order, "order", ORDERS)
    arr = _validate.as_real(v, "v")
    _validate.check_ndim(arr, "v", (1,), "1-D")
    try:
        shp = (operator.index(shape),) if np.ndim(shape) == 0 else tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shp):
        raise ValueError(f"shape must have non-negative entries, got {shp}")
    need = int(np.prod(shp, dtype=np.int64))
    if arr.size != need:
        raise ValueError(f"v has length {arr.size} but shape {shp} needs {need} elements")
    return arr.reshape(shp, order=order)


# ---------------------------------------------------------------------------
# CSR building blocks


def _csr_parts(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of the nonzeros of a dense 2-D M (NaN counts as nonzero)."""
    rows, cols = np.nonzero(M)
    indptr = np.zeros(M.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=M.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int64, copy=False), np.ascontiguousarray(M[rows, cols])


def _eye_parts(n: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.arange(n + 1, dtype=np.int64)
    return idx, idx[:n], np.ones(n, dtype)


def _row_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR parts of the (1, m) row xᵀ (its nonzeros)."""
    cols = np.flatnonzero(x)
    return np.array([0, cols.size], dtype=np.int64), cols, np.ascontiguousarray(x[cols])


def _kron_csr(P, Pshape, Q, Qshape, dtype: np.dtype, k) -> Any:
    """CSR of ``P ⊗ Q`` from the factors' CSR parts, only the structural nonzeros, no dense step."""
    (mP, nP), (mQ, nQ) = Pshape, Qshape
    shape = (mP * mQ, nP * nQ)
    cntP = np.diff(P[0])
    cntQ = np.diff(Q[0])
    nnz = int(cntP.sum()) * int(cntQ.sum())
    idx = np.int32 if max(nnz, shape[1]) < 2**31 - 1 else np.int64
    Pp, Pi = P[0].astype(idx), P[1].astype(idx)
    Qp, Qi = Q[0].astype(idx), Q[1].astype(idx)
    Pd, Qd = P[2].astype(dtype, copy=False), Q[2].astype(dtype, copy=False)
    indptr = np.empty(shape[0] + 1, dtype=idx)
    indices = np.empty(nnz, dtype=idx)
    data = np.empty(nnz, dtype=dtype)
    k.kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, _fill_threads(nnz))
    import scipy.sparse as sp

    out = sp.csr_array((data, indices, indptr), shape=shape, copy=False)
    out.has_sorted_indices = True
    return out


def _check_format(fmt: str) -> str:
    return _validate.check_choice(fmt, "format", FORMATS)


# ---------------------------------------------------------------------------
# Jacobians


def jacobian_Wx(x: Any, n: int, *, order: str = "F", format: str = "dense",
                backend: str | None = None):
    r"""∂(W x)/∂vec(W) for W of shape (n, m): ``xᵀ ⊗ I_n`` (order F) or ``I_n ⊗ xᵀ`` (order C).

    For ``f = W x``, ``∂f_i/∂W_ab = δ_ia x_b``, so
    ``J[i, a + b n] = δ_ia x_b`` for the column-stacking vec (F) and
    ``J[i, a m + b] = δ_ia x_b`` for numpy's row-major ravel (C).

    Parameters
    ----------
    x : array_like of shape (m,) or (m, 1)
    n : int
        Number of rows of W (and of W x).
    order : {'F', 'C'}
        How vec(W) is ordered; default 'F' (the textbook form).
    format : {'dense', 'csr', 'operator'}
        ``'dense'``: ndarray (n, n m), each element written once, no identity
        built; ``'csr'``: ``scipy.sparse.csr_array`` holding only the structural
        nonzeros (n · nnz(x) entries, n m for a dense x), built directly;
        ``'operator'``: a :class:`KronOperator` (never formed).  The entries off
        the identity's support are exact zeros in 'dense' and 'csr' (W_ab does
        not enter f_i for a != i), even where x holds NaN or Inf; the operator's
        ``todense()`` multiplies them out, so NaN x 0 is NaN there.
    backend : {'numba', 'cython', 'numpy'}, optional

    Returns
    -------
    ndarray, csr_array or KronOperator of shape (n, n m); float32 only for float32 x.

    Examples
    --------
    >>> import fastgrad
    >>> fastgrad.jacobian_Wx([1., 2.], 2).tolist()
    [[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 2.0]]
    >>> fastgrad.jacobian_Wx([1., 2.], 2, order="C", format="csr").nnz
    4
    """
    _validate.check_choice(order, "order", ORDERS)
    _check_format(format)
    xa = _validate.as_real(x, "x")
    if xa.ndim == 2 and xa.shape[1] == 1:
        xa = xa[:, 0]
    _validate.check_ndim(xa, "x", (1,), "1-D (m,) or a column (m, 1)")
    n = _validate.check_positive_int(n, "n")
    k = _config.kernels("kron", backend)
    dtype = xa.dtype
    m = xa.shape[0]
    order_c = order == "C"
    if format == "operator":
        import scipy.sparse as sp

        from ._kron_operator import KronOperator

        row = xa.reshape(1, m)
        eye = sp.identity(n, dtype=dtype, format="csr")
        return KronOperator(eye, row, backend=backend) if order_c else KronOperator(row, eye, backend=backend)
    xc = np.ascontiguousarray(xa)
    if format == "csr":
        xp, ep = _row_parts(xc), _eye_parts(n, dtype)
        if order_c:
            return _kron_csr(ep, (n, n), xp, (1, m), dtype, k)
        return _kron_csr(xp, (1, m), ep, (n, n), dtype, k)
    out = np.empty((n, n * m), dtype)
    k.jacobian_wx(xc, order_c, out, _fill_threads(out.size))
    return out


def _kron_any(P: np.ndarray, Q: np.ndarray, dtype: np.dtype, fmt: str, k, backend):
    """``P ⊗ Q`` (2-D real arrays, any layout) in format ``fmt``."""
    if fmt == "operator":
        from ._kron_operator import KronOperator

        return KronOperator(P, Q, backend=backend)
    P = np.ascontiguousarray(P, dtype=dtype)
    Q = np.ascontiguousarray(Q, dtype=dtype)
    if fmt == "csr":
        return _kron_csr(_csr_parts(P), P.shape, _csr_parts(Q), Q.shape, dtype, k)
    out = np.empty((P.shape[0] * Q.shape[0], P.shape[1] * Q.shape[1]), dtype)
    _kron_into(P, Q, out, k)
    return out


def jacobian_AXB(A: Any, B: Any, *, order: str = "F", format: str = "dense",
                 backend: str | None = None):
    r"""∂vec(A X B)/∂vec(X): ``Bᵀ ⊗ A`` (order F) or ``A ⊗ Bᵀ`` (order C).

    With A (p, m), X (m, n), B (n, q): ``∂(A X B)_ic/∂X_ab = a_ia b_bc``, laid out
    as ``J[i + c p, a + b m]`` (F, the textbook ``vec(AXB) = (Bᵀ ⊗ A) vec(X)``) or
    ``J[i q + c, a n + b]`` (C).  The dense form is a :func:`kron` of the
    (small, copied contiguous) factors — no strided reads of ``B.T``.

    Parameters
    ----------
    A : array_like of shape (p, m)
    B : array_like of shape (n, q)
    order : {'F', 'C'}
        Vectorisation order of X and of A X B; default 'F'.
    format : {'dense', 'csr', 'operator'}
        ``'csr'`` stores only the structural nonzeros (nnz(A) · nnz(B) entries),
        built directly from the factors; ``'operator'`` returns a
        :class:`KronOperator`.  'dense' multiplies every pair of entries, as
        ``np.kron`` does, so a NaN or Inf in one factor makes NaN against the
        other's zeros; 'csr' forms only the products of stored entries, so those
        stay structural zeros.
    backend : {'numba', 'cython', 'numpy'}, optional

    Returns
    -------
    ndarray, csr_array or KronOperator of shape (p q, m n)

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> rng = np.random.default_rng(0)
    >>> A, X, B = rng.random((2, 3)), rng.random((3, 4)), rng.random((4, 5))
    >>> J = fastgrad.jacobian_AXB(A, B)
    >>> J.shape
    (10, 12)
    >>> bool(np.allclose(J @ fastgrad.vec(X), fastgrad.vec(A @ X @ B)))
    True
    """
    _validate.check_choice(order, "order", ORDERS)
    _check_format(format)
    Aa = _validate.as_matrix(A, "A")
    Ba = _validate.as_matrix(B, "B")
    k = _config.kernels("kron", backend)
    dtype = _validate.result_dtype(Aa, Ba)
    if order == "F":
        return _kron_any(Ba.T, Aa, dtype, format, k, backend)
    return _kron_any(Aa, Ba.T, dtype, format, k, backend)


# ---------------------------------------------------------------------------
# matmul_jacobian


def matmul_jacobian(*mats: Any, wrt: int, flatten: bool = False, order: str = "F",
                    backend: str | None = None) -> np.ndarray:
    r"""Jacobian of the matrix product ``P = M_0 M_1 … M_{k-1}`` wrt the factor ``mats[wrt]``.

    ``J[i, j, a, b] = ∂P_ij/∂(M_wrt)_ab = L_ia R_bj`` with L the product of the
    factors before ``wrt`` and R of those after (the identity where there are
    none).  The derivative of ``L2 = w1 (w0 L0)`` wrt w0 is
    ``matmul_jacobian(w1, w0, L0, wrt=1)``.  An earlier draft of the notes had an
    index slip here — the correct entry for ``Q = x y P`` wrt x is
    ``δ_ia (yP)_bj``, not ``Σ_t y_bt p_tb`` (docs/derivations.md, "Slips in the
    original notes").

    Parameters
    ----------
    *mats : array_like, 2-D
        The factors; consecutive shapes must chain.
    wrt : int
        0-based index into ``mats`` (negative counts from the end).
    flatten : bool
        False: the 4-D tensor of shape ``P.shape + mats[wrt].shape``.  True: the
        2-D Jacobian ∂vec(P)/∂vec(M_wrt) of shape (P.size, M_wrt.size) in ``order``:
        ``L ⊗ Rᵀ`` for 'C' (equal to the 4-D tensor reshaped), ``Rᵀ ⊗ L`` for 'F'.
    order : {'F', 'C'}
        Vectorisation order when ``flatten``: 'F' (default) the textbook vec that
        stacks columns, as every fastgrad function that flattens; 'C' numpy's
        row-major ravel.
    backend : {'numba', 'cython', 'numpy'}, optional
        Backend of the Kronecker kernel that writes the result.

    Returns
    -------
    ndarray; float32 only when every factor is float32 (the products L and R
    accumulate in float64).

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> w1, w0, L0 = np.ones((4, 5)), np.ones((5, 3)), np.ones((3, 1))
    >>> fastgrad.matmul_jacobian(w1, w0, L0, wrt=1).shape
    (4, 1, 5, 3)
    >>> fastgrad.matmul_jacobian(w1, w0, L0, wrt=1, flatten=True).shape
    (4, 15)
    """
    _validate.check_choice(order, "order", ORDERS)
    if not mats:
        raise ValueError("matmul_jacobian needs at least one matrix")
    flatten = _validate.check_flag(flatten, "flatten")
    names = [f"mats[{t}]" for t in range(len(mats))]
    Ms = [_validate.as_matrix(M, nm) for M, nm in zip(mats, names, strict=True)]
    _validate.check_chain(Ms, names)
    k = len(Ms)
    if isinstance(wrt, bool) or not isinstance(wrt, int | np.integer):
        raise TypeError(f"wrt must be an integer, got {type(wrt).__name__}")
    if not -k <= wrt < k:
        raise ValueError(f"wrt must be in [{-k}, {k - 1}] for {k} matrices, got {wrt}")
    w = int(wrt) % k
    kern = _config.kernels("kron", backend)
    dtype = _validate.result_dtype(*Ms)
    r, s = Ms[w].shape

    def product(factors, size):
        if not factors:
            return np.eye(size, dtype=dtype)
        f64 = [f.astype(np.float64, copy=False) for f in factors]
        P = np.linalg.multi_dot(f64) if len(f64) > 1 else f64[0]
        return np.ascontiguousarray(P, dtype=dtype)

    L = product(Ms[:w], r)  # (p, r)
    R = product(Ms[w + 1:], s)  # (s, q)
    p, q = L.shape[0], R.shape[1]
    RT = np.ascontiguousarray(R.T)
    if flatten and order == "F":
        out = np.empty((q * p, s * r), dtype)
        _kron_into(RT, L, out, kern)
        return out
    out = np.empty((p * q, r * s), dtype)
    _kron_into(L, RT, out, kern)  # [i q + j, a s + b] = L_ia R_bj
    return out if flatten else out.reshape(p, q, r, s)


def __getattr__(name: str) -> Any:
    """``KronOperator``, defined on first use (fastgrad/_kron_operator.py): it subclasses
    scipy's ``LinearOperator``, and importing ``scipy.sparse.linalg`` costs ``import fastgrad``
    0.1-0.3 s that only its users need."""
    if name == "KronOperator":
        from ._kron_operator import KronOperator

        return KronOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
