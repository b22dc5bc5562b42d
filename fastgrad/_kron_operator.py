"""``KronOperator``: ``A ⊗ B`` as a scipy ``LinearOperator``, applied by the vec trick.

Kept apart from fastgrad/kron.py so that ``import fastgrad`` does not import
``scipy.sparse.linalg``; ``fastgrad.KronOperator`` and ``fastgrad.kron.KronOperator``
import this module on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from . import _config, _validate
from .kron import kron

__all__ = ["KronOperator"]


def _operator_factor(M: Any, name: str):
    if sp.issparse(M):
        if M.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {M.shape}")
        if M.dtype.kind == "c":
            raise TypeError(f"{name} is complex ({M.dtype}); fastgrad works on real data only")
        if M.dtype.char not in "fd":
            M = M.astype(np.float64)
        return sp.csr_array(M)
    return _validate.as_matrix(M, name)


def _mm(M, D: np.ndarray) -> np.ndarray:
    """``M @ D`` for a dense or sparse M, as an ndarray."""
    r = M @ D
    return np.asarray(r)


class KronOperator(LinearOperator):
    r"""``A ⊗ B`` as a ``scipy.sparse.linalg.LinearOperator``, applied by the vec trick, never formed.

    With numpy's row-major ravel, ``x = X.ravel()`` for X of shape (nA, nB) gives
    ``(A ⊗ B) x = (A X Bᵀ).ravel()`` (the column-stacking form of the same
    identity is ``(A ⊗ B) vec(X) = vec(B X Aᵀ)``), and the adjoint
    ``(A ⊗ B)ᵀ y = (Aᵀ Y B).ravel()``.  A product costs
    O(mB nB nA + mA nA mB) per column and O(size of A, B, x) memory — it works
    where ``A ⊗ B`` would not fit in memory.

    Parameters
    ----------
    A : array_like of shape (mA, nA) or scipy sparse matrix/array
    B : array_like of shape (mB, nB) or scipy sparse matrix/array
    backend : str, optional
        Backend of :meth:`todense` (which calls :func:`kron`).

    Attributes
    ----------
    A, B : the factors (arrays as given, sparse ones as csr_array).
    shape : (mA mB, nA nB)
    dtype : float32 when both factors are float32, else float64.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1., 2.], [3., 4.]]); B = np.array([[0., 1.], [1., 0.], [1., 1.]])
    >>> K = fastgrad.KronOperator(A, B)
    >>> K.shape
    (6, 4)
    >>> x = np.arange(4.)
    >>> bool(np.allclose(K @ x, np.kron(A, B) @ x))
    True
    >>> bool(np.array_equal(K.T.todense(), np.kron(A, B).T))
    True
    """

    def __init__(self, A: Any, B: Any, *, backend: str | None = None):
        self.A = _operator_factor(A, "A")
        self.B = _operator_factor(B, "B")
        if backend is not None:
            _config.resolve_backend(backend)
        self.backend = backend
        dtype = np.dtype(np.float32 if self.A.dtype.char == "f" and self.B.dtype.char == "f"
                         else np.float64)
        (mA, nA), (mB, nB) = self.A.shape, self.B.shape
        super().__init__(dtype=dtype, shape=(mA * mB, nA * nB))

    # y = (A X Bᵀ).ravel() with X = x.reshape(nA, nB):  (A ⊗ B)[i mB + k, j nB + l] x[j nB + l]
    def _matvec(self, x):
        nA, nB = self.A.shape[1], self.B.shape[1]
        X = np.asarray(x).reshape(nA, nB)
        T = _mm(self.B, X.T)  # (mB, nA) = B Xᵀ
        return _mm(self.A, T.T).ravel()  # (mA, mB) = A X Bᵀ

    def _rmatvec(self, x):
        mA, mB = self.A.shape[0], self.B.shape[0]
        Y = np.asarray(x).reshape(mA, mB)
        T = _mm(self.B.T, Y.T)  # (nB, mA) = Bᵀ Yᵀ
        return _mm(self.A.T, T.T).ravel()  # (nA, nB) = Aᵀ Y B

    def _matmat(self, X):
        # Y[i, k, c] = sum_j a_ij sum_l b_kl X[j, l, c]
        (mA, nA), (mB, nB) = self.A.shape, self.B.shape
        X = np.asarray(X)
        K = X.shape[1]
        X3 = X.reshape(nA, nB, K)
        T = _mm(self.B, X3.transpose(1, 0, 2).reshape(nB, nA * K))  # (mB, nA K): T[k, j, c]
        T = T.reshape(mB, nA, K).transpose(1, 0, 2).reshape(nA, mB * K)
        return _mm(self.A, T).reshape(mA * mB, K)

    def _rmatmat(self, X):
        return self._adjoint()._matmat(X)

    def _adjoint(self):
        return KronOperator(self.A.T, self.B.T, backend=self.backend)

    _transpose = _adjoint

    def todense(self) -> np.ndarray:
        """The dense ``A ⊗ B`` (through :func:`kron`); only for operators that fit in memory."""
        A = self.A.toarray() if sp.issparse(self.A) else self.A
        B = self.B.toarray() if sp.issparse(self.B) else self.B
        return kron(A, B, backend=self.backend)

    toarray = todense

    def __repr__(self) -> str:
        return (f"<KronOperator {self.shape[0]}x{self.shape[1]} = A{self.A.shape} ⊗ B{self.B.shape}, "
                f"dtype={self.dtype}>")


KronOperator.__module__ = "fastgrad.kron"  # where users find it (and pickle finds it)
