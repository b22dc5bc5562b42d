r"""Second order of the linear-model MSE: the Hessian-vector product and the Hessian.

The MSE of a linear model, ``L(w) = scale sum_ik s_i (y_ik - sum_l a_il w_lk)^2
+ alpha sum w^2``, is quadratic in w, so its Hessian is constant: it does not
depend on w or on y.  For every output k the same (D, D) block::

    H = 2 scale A^T S A + 2 alpha I

with ``S = diag(s)`` (the identity without sample weights), ``scale = 1/(N K)``
for ``reduction='mean'`` (``1/(K sum_i s_i)`` with sample weights) and 1 for
``'sum'``; across outputs H is block-diagonal (no coupling between outputs).

``mse_hessp`` forms ``H v`` in one pass over A without forming H (each row's
``t_ik = s_i sum_l a_il v_lk`` at once accumulated into ``a_ij t_ik``); this is
what Newton-CG and trust-region methods need.  ``mse_hessian`` forms H with one
BLAS product.  A dense A is read in place whatever its order or strides; a
``scipy.sparse`` CSR/CSC A is read entry by entry (its nonzeros once per pass),
never densified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _config, _validate

__all__ = ["mse_hessp", "mse_hessian"]


def mse_hessp(
    A: Any,
    v: Any,
    *,
    sample_weight: Any = None,
    alpha: float = 0.0,
    reduction: str = "mean",
    check_finite: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    r"""Hessian-vector product ``H v`` of the linear-model MSE, in one pass over A.

    Per output k (the columns of v)::

        (H v)_jk = 2 scale sum_i a_ij s_i sum_l a_il v_lk + 2 alpha v_jk

    i.e. ``H v = 2 scale A^T S (A v) + 2 alpha v``.  The Hessian of the MSE
    does not depend on the weights w or the targets y (the loss is quadratic in
    w), so neither is an argument.

    Parameters
    ----------
    A : array_like of shape (N, D), or scipy.sparse CSR/CSC matrix or array
        Inputs.  A dense A is read in place whatever its order or strides (C or
        Fortran order, slices, read-only, ``np.memmap``); a sparse A is read
        entry by entry without densifying (unsorted indices, explicit zeros and
        duplicate entries are read as the matrix they describe).  Never written.
    v : array_like of shape (D,) or (D, K)
        The direction, shaped like the weights w.
    sample_weight : array_like of shape (N,), optional
        Non-negative weight ``s_i`` of each row.
    alpha : float
        Ridge coefficient (the loss's ``+ alpha sum w^2``), >= 0.
    reduction : {'mean', 'sum'}
        ``'mean'``: ``scale = 1/(N K)`` (``1/(K sum_i s_i)`` with weights);
        ``'sum'``: ``scale = 1``.
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf.
    backend : {'numba', 'cython', 'numpy'}, optional
        Overrides the current backend (see ``fastgrad.use_backend``).

    Returns
    -------
    ndarray shaped like v
        ``H v``; float32 only when A, v (and the weights) are float32 (the sums
        run in float64 in every case).

    Notes
    -----
    The rows are split into a fixed partition that depends only on N and the
    partial sums are combined in partition order: the result is bitwise
    identical for every thread count.  Extra memory is O(D K) per row block;
    a CSC A needs O(N K) more (``A v`` is formed column by column first).
    Where the products themselves overflow, the backends may differ between
    ``Inf`` and ``NaN`` (a fused multiply-add can absorb what the plain
    formula's ``Inf - Inf`` makes NaN); finite results never depend on it.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> fastgrad.mse_hessp(A, np.array([1.0, 0.0])).tolist()      # (2/N) A^T A e_0
    [10.0, 14.0]

    Newton-type optimisers take it as it is:

    >>> from scipy.optimize import minimize
    >>> y = np.array([1.0, 2.0])
    >>> res = minimize(lambda w: fastgrad.mse_loss_and_grad(A, y, w), np.zeros(2), jac=True,
    ...                hessp=lambda w, p: fastgrad.mse_hessp(A, p), method="trust-ncg")
    >>> np.round(res.x, 6).tolist() == [0.0, 0.5]
    True
    """
    h = _validate.mse_hessp_inputs(A, v, sample_weight, alpha, reduction, check_finite)
    N, D = h.A.shape
    K = h.VT.shape[0]
    out = np.empty((D, K))
    if isinstance(h.A, _validate.SparseA):
        sp = h.A
        k = _config.kernels("mse_sparse", backend)
        run = k.csr_hessp if sp.fmt == "csr" else k.csc_hessp
        run(sp.indptr, sp.indices, sp.data, N, h.V, h.s, h.scale, h.alpha, out,
            _config.sparse_threads(sp.data.shape[0], N, K))
    else:
        _config.kernels("mse_hessp", backend).hessp(
            h.A, h.VT, h.s, h.scale, h.alpha, out, _config.threads_for(N * D * K))
    out = out.reshape(h.v_shape)
    return out if out.dtype == h.dtype else out.astype(h.dtype)


def mse_hessian(
    A: Any,
    *,
    sample_weight: Any = None,
    alpha: float = 0.0,
    reduction: str = "mean",
    check_finite: bool = False,
) -> np.ndarray:
    r"""The (D, D) Hessian of the linear-model MSE for one output, by one BLAS product.

    ``H = 2 scale A^T S A + 2 alpha I`` with ``scale = 1/N`` for the mean
    (``1/sum_i s_i`` with sample weights) and 1 for the sum.  It does not depend
    on the weights w or the targets y: the loss is quadratic in w.  With K
    outputs the Hessian is block-diagonal, one block per output, each equal to
    this matrix for ``'sum'`` and to ``2 A^T S A / (N K) + 2 alpha I`` for ``'mean'``
    (the mean also divides by K).

    Parameters
    ----------
    A : array_like of shape (N, D), or scipy.sparse CSR/CSC matrix or array
        Inputs, never written.  A dense float64 A without weights goes to BLAS
        as it is (``A.T @ A``); with weights the product is of ``sqrt(s) A``
        (one scaled copy of A); float32 and other dtypes are converted to
        float64 first (a copy), so the sums run in float64.  A sparse A is
        multiplied by scipy.sparse (its entries in float64) and the result
        densified.
    sample_weight : array_like of shape (N,), optional
        Non-negative weight ``s_i`` of each row.
    alpha : float
        Ridge coefficient, >= 0.
    reduction : {'mean', 'sum'}
        ``'mean'`` divides by N (by ``sum_i s_i`` with weights), ``'sum'`` does not.
    check_finite : bool
        Raise ``ValueError`` if an input holds NaN or Inf.

    Returns
    -------
    ndarray of shape (D, D)
        Symmetric; float32 only when A (and the weights) are float32.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> A = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> fastgrad.mse_hessian(A).tolist()                      # (2/N) A^T A
    [[10.0, 14.0], [14.0, 20.0]]
    >>> fastgrad.mse_hessian(A, alpha=0.5, reduction="sum").tolist()
    [[21.0, 28.0], [28.0, 41.0]]
    """
    A, s, scale, alpha, dtype = _validate.mse_hessian_inputs(A, sample_weight, alpha, reduction, check_finite)
    if _validate.is_sparse(A):
        if A.dtype != np.float64:  # the sums in float64: a float64 copy of the entries
            A = A.astype(np.float64)
        B = A if s is None else A.multiply(s[:, None]).tocsr()
        H = np.asarray((A.T @ B).toarray(), dtype=np.float64)
    else:
        A64 = A.astype(np.float64, copy=False)
        B = A64 if s is None else np.sqrt(s)[:, None] * A64
        H = B.T @ B
    H *= 2.0 * scale
    if alpha:
        H[np.diag_indices_from(H)] += 2.0 * alpha
    return H if H.dtype == dtype else H.astype(dtype)
