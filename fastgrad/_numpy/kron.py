"""The numpy backend of the Kronecker family: the kernel protocol over :mod:`fastgrad.reference`.

The protocol of the ``kron`` family, the same names and arguments in
``fastgrad._numba.kron``, ``fastgrad._cython.kron`` and here (inputs, then the
arrays written in place, then ``n_threads``; the caller validates: operands
C-contiguous of the output's dtype, float32 or float64):

* ``kron(A, B, out, n_threads)``: ``out[...] = A ⊗ B`` for 2-D A, B; ``out`` 2-D,
  writeable, any strides;
* ``jacobian_wx(x, order_c, out, n_threads)``: ``out`` (n, n m) ``= xᵀ ⊗ I_n``
  (``order_c`` False) or ``I_n ⊗ xᵀ`` (True), x 1-D of length m;
* ``kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, n_threads)``: the
  CSR arrays of ``P ⊗ Q`` from the CSR arrays of P and Q (sorted indices, Q has
  nQ columns): the row pointer into ``indptr`` (length mP mQ + 1), the sorted
  column indices and the values into ``indices`` and ``data`` (length
  nnz(P) nnz(Q)); one index dtype (int32 or int64) for all index arrays.

Here ``n_threads`` is ignored (numpy and scipy choose their own threads).
"""

from __future__ import annotations

import scipy.sparse as sp

from .. import reference

__all__ = ["kron", "jacobian_wx", "kron_csr"]


def kron(A, B, out, n_threads):
    """Protocol: ``out[...] = A ⊗ B`` (``np.kron``)."""
    out[...] = reference.kron(A, B)


def jacobian_wx(x, order_c, out, n_threads):
    """Protocol: ``xᵀ ⊗ I_n`` (``order_c`` False) or ``I_n ⊗ xᵀ`` into ``out`` (n, n m)."""
    out[...] = reference.jacobian_wx(x, out.shape[0], order_c)


def kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, nQ, indptr, indices, data, n_threads):
    """Protocol: the CSR arrays of ``P ⊗ Q`` (``scipy.sparse.kron``) into indptr, indices, data.

    P's column count does not enter the result (the columns of ``P ⊗ Q`` are
    ``j nQ + l``), so P is given the fewest columns that hold its indices.
    """
    nP = int(Pi.max()) + 1 if Pi.size else 0
    P = sp.csr_array((Pd, Pi, Pp), shape=(Pp.shape[0] - 1, nP))
    Q = sp.csr_array((Qd, Qi, Qp), shape=(Qp.shape[0] - 1, int(nQ)))
    res = reference.kron_csr(P, Q)
    if res.nnz != data.shape[0]:  # pragma: no cover - scipy kept every product so far
        raise RuntimeError(f"scipy.sparse.kron stored {res.nnz} entries, expected {data.shape[0]}")
    indptr[...] = res.indptr
    indices[...] = res.indices
    data[...] = res.data
