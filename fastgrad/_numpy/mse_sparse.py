"""The numpy backend of the sparse MSE family: the protocol over scipy.sparse products (:mod:`fastgrad.reference`)."""

from __future__ import annotations

import scipy.sparse

from .. import _config, _validate, reference

__all__ = ["csr_loss_grad", "csc_loss_grad", "csr_hessp", "csc_hessp"]


def _matrix(fmt, indptr, indices, data, shape, K):
    if fmt == "csr" and shape[1] > 0 and _config.sparse_checks_in_pass(int(indptr[-1]), shape[0], K):
        # validation left the column indices to the CSR protocol (see _validate.sparse_inputs)
        _validate.check_sparse_indices(_validate.SparseA(fmt, indptr, indices, data, shape))
    cls = scipy.sparse.csr_array if fmt == "csr" else scipy.sparse.csc_array
    return cls((data, indices, indptr), shape=shape)


def _loss_grad(fmt, indptr, indices, data, Y, W, s, b, scale, out, gb):
    A = _matrix(fmt, indptr, indices, data, (Y.shape[0], W.shape[0]), Y.shape[1])
    loss, G, GB = reference.mse_loss_grad_sparse(A, Y, W, s, b, scale)
    out[...] = G
    if gb is not None:
        gb[...] = GB
    return loss


def csr_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads):
    """Protocol: loss and gradients with a CSR A into ``out`` (D, K) and ``gb`` (K,) or None; returns the loss."""
    return _loss_grad("csr", indptr, indices, data, Y, W, s, b, scale, out, gb)


def csc_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads):
    """Protocol: loss and gradients with a CSC A into ``out`` (D, K) and ``gb`` (K,) or None; returns the loss."""
    return _loss_grad("csc", indptr, indices, data, Y, W, s, b, scale, out, gb)


def csr_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads):
    """Protocol: ``H v`` with a CSR A of N rows into ``out`` (D, K)."""
    A = _matrix("csr", indptr, indices, data, (N, V.shape[0]), V.shape[1])
    out[...] = reference.mse_hessp(A, V.T, s, scale, alpha)


def csc_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads):
    """Protocol: ``H v`` with a CSC A of N rows into ``out`` (D, K)."""
    A = _matrix("csc", indptr, indices, data, (N, V.shape[0]), V.shape[1])
    out[...] = reference.mse_hessp(A, V.T, s, scale, alpha)
