r"""Numba kernels of the linear-model MSE with a scipy.sparse A (CSR or CSC).

A is given by its index arrays: CSR row i holds the entries ``data_p`` at
columns ``indices_p`` for ``indptr[i] <= p < indptr[i+1]`` (CSC the same by
columns).  With W (D, K), targets Y (N, K), sample weights ``s_i`` (1 when
absent) and intercept ``b_k`` (0 when absent)::

    r_ik   = y_ik - b_k - sum_p data_p w[indices_p, k]          (the entries p of row i)
    loss   = scale sum_ik s_i r_ik^2
    g_jk   = -2 scale sum_i s_i a_ij r_ik                        (out, D x K)
    gb_k   = -2 scale sum_i s_i r_ik                             (the intercept's gradient)
    (H v)_jk = 2 scale sum_i a_ij s_i sum_l a_il v_lk + 2 alpha v_jk

CSR: one fused pass over the rows, each entry read twice from cache and once
from memory: per row, r_ik from its entries, then ``G[indices_p, k] += data_p
s_i r_ik``.  The rows are split by ``sparse_row_blocks(N, D, K)`` (a function of the shape
only: ``row_blocks(N)``, with larger blocks for wide A), each block into its own
partial G[b] (D, K), and the partials are combined in block order: bitwise
identical for every thread count.  Extra memory O(D K) per block, at most
``SPARSE_PARTIALS_BYTES`` in all (beyond one block).

CSC: the entries come by columns, so the pass is split in two.  First the
residual (or ``t = S A v``) is formed column by column into an (N, K) array
(serial: columns scatter into every row; O(N K) extra memory), then every
column's gradient entry ``sum_p data_p s_i r_ik`` is one independent dot
product, the columns spread over threads; no partials, the same bits for
every thread count.

Duplicate entries add and explicit zeros contribute nothing, as in scipy;
unsorted indices are read as they are.

Compiled without fast-math (``NUMBA_EXACT_FLAGS``): every sum runs in the
order written, whatever the compiler does in one context or another (serial or
parallel target, freshly compiled or loaded from the cache).  The exception is
the CSR row loop of one output (``csr_rows_k1``, ``csr_hessp_rows_k1``, the
common case), compiled with the fast-math flags (re-association, FMA
contraction): a CSR A runs the parallel target at every thread count, so one
machine code gives the same bits at every count.

Preconditions (the caller's duty, done by ``fastgrad._validate.sparse_inputs``
and ``mse_sparse_inputs``): indptr/indices 1-D C-contiguous int32 or int64,
indptr nondecreasing from 0, every index in range (a CSR A's column indices
excepted where ``fastgrad._config.sparse_checks_in_pass``: the row loops then
check each one as they read it, and the protocol raises
``fastgrad._validate.sparse_index_error``); data 1-D float32/float64;
Y (N, K) C-contiguous float32/float64; W and V (D, K) C-contiguous float64;
s None or float64 (N,); b None or float64 (K,); out (D, K) float64 writeable;
gb None or (K,) float64 writeable.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import _config
from .._config import NUMBA_EXACT_FLAGS, NUMBA_FLAGS
from .._validate import sparse_index_error
from ._targets import jit_targets, launch, launch_one_target, variant
from .mse import row_blocks

#: Rows per block of a CSR A: ``fastgrad._config.sparse_row_blocks`` compiled.
sparse_row_blocks = njit(**NUMBA_FLAGS)(_config.sparse_row_blocks)
#: Whether the CSR row loops check the column indices: ``fastgrad._config.sparse_checks_in_pass`` compiled.
sparse_checks_in_pass = njit(**NUMBA_FLAGS)(_config.sparse_checks_in_pass)

__all__ = [
    # the backend protocol (see docs/architecture.md)
    "csr_loss_grad",
    "csc_loss_grad",
    "csr_hessp",
    "csc_hessp",
    # the low-level API: @njit kernels usable in a user's own @njit code
    "csr_block",
    "csr_hessp_block",
    "row_dot",
    "row_dot_checked",
    "row_scatter",
    "csr_rows_k1",
    "csr_rows_k1_checked",
    "csr_hessp_rows_k1",
    "csr_hessp_rows_k1_checked",
    "mse_csr",
    "mse_csr_parallel",
    "mse_csc",
    "mse_csc_parallel",
    "hessp_csr",
    "hessp_csr_parallel",
    "hessp_csc",
    "hessp_csc_parallel",
]


@njit(**NUMBA_EXACT_FLAGS)
def _weight(s, i):
    """``s_i``, or 1 without sample weights (the None branch is compiled away)."""
    if s is None:
        return 1.0
    return s[i]


@njit(**NUMBA_EXACT_FLAGS)
def _offset(b, k):
    """``b_k``, or 0 without an intercept."""
    if b is None:
        return 0.0
    return b[k]


@njit(**NUMBA_FLAGS)
def row_dot(indices, data, w, p0, p1):
    r"""``sum_p data_p w[indices_p]`` over one row's entries ``p0 <= p < p1``; returns it and 0 (see
    :func:`row_dot_checked`)."""
    d = 0.0
    for p in range(p0, p1):
        d += data[p] * w[np.uint64(indices[p])]
    return d, np.uint64(0)


@njit(**NUMBA_FLAGS)
def row_dot_checked(indices, data, w, p0, p1):
    r"""As :func:`row_dot`, each index also checked: returns the sum and the row's largest index
    (read as unsigned, so a negative one is larger than any valid one), the reads of w clamped to
    its last entry."""
    last = np.uint64(w.shape[0] - 1)
    largest = np.uint64(0)
    d = 0.0
    for p in range(p0, p1):
        j = np.uint64(indices[p])
        largest = max(largest, j)
        d += data[p] * w[min(j, last)]
    return d, largest


@njit(**NUMBA_FLAGS)
def row_scatter(indices, data, q, p0, p1, g):
    r"""``g[indices_p] += data_p q`` over one row's entries ``p0 <= p < p1``."""
    for p in range(p0, p1):
        g[np.uint64(indices[p])] += data[p] * q


# The K = 1 row loops below come in two variants of one body: with ``row_dot`` (the column
# indices were checked by validation; its largest index is 0 and the test on it folds away)
# and, as ``*_checked`` (fastgrad._config.sparse_checks_in_pass), with ``row_dot_checked``.


def _csr_rows_k1(indptr, indices, data, Y, w, s, b0, start, stop, g, gb, bad):
    r"""One output (K = 1), rows ``start <= i < stop`` two at a time: ``g[j] += s_i a_ij r_i``, ``gb += s_i r_i``.

    ``r_i = y_i - b0 - sum_p data_p w[indices_p]``; returns ``sum_i s_i r_i^2``.
    The two rows' dot products are independent chains in flight together (a row
    of ~100 entries has one chain of FMA latencies otherwise), and each loop
    runs over a row's entries once, with no remainder loops: at ~10 entries a
    row the mispredicted exits of the loops cost more than the entries.  Positions
    and indices unsigned: no negative-index wraparound code per entry.  A row
    pair with a column index outside [0, D) (found by ``row_dot_checked``) sets
    ``bad[0]`` and ends the block before its scatter.  Compiled with fastgrad's
    fast-math flags (re-association and FMA contraction).
    """
    last = np.uint64(w.shape[0] - 1)
    sq = 0.0
    acc_b = 0.0
    i = start
    while i + 2 <= stop:
        p0 = np.uint64(indptr[i])
        p1 = np.uint64(indptr[i + 1])
        p2 = np.uint64(indptr[i + 2])
        d0, m0 = row_dot(indices, data, w, p0, p1)
        d1, m1 = row_dot(indices, data, w, p1, p2)
        if max(m0, m1) > last:
            bad[0] = 1
            return sq
        r0 = Y[i, 0] - b0 - d0
        r1 = Y[i + 1, 0] - b0 - d1
        q0 = _weight(s, i) * r0
        q1 = _weight(s, i + 1) * r1
        sq += q0 * r0 + q1 * r1
        acc_b += q0 + q1
        row_scatter(indices, data, q0, p0, p1, g)
        row_scatter(indices, data, q1, p1, p2, g)
        i += 2
    if i < stop:
        p0 = np.uint64(indptr[i])
        p1 = np.uint64(indptr[i + 1])
        d0, m0 = row_dot(indices, data, w, p0, p1)
        if m0 > last:
            bad[0] = 1
            return sq
        r0 = Y[i, 0] - b0 - d0
        q0 = _weight(s, i) * r0
        sq += q0 * r0
        acc_b += q0
        row_scatter(indices, data, q0, p0, p1, g)
    gb[0] += acc_b
    return sq


csr_rows_k1 = njit(**NUMBA_FLAGS)(_csr_rows_k1)
csr_rows_k1_checked = njit(**NUMBA_FLAGS)(variant(_csr_rows_k1, "checked", row_dot=row_dot_checked))


def _csr_hessp_rows_k1(indptr, indices, data, v, s, start, stop, g, bad):
    r"""One output (K = 1), rows two at a time: ``t_i = s_i sum_p data_p v[indices_p]``, ``g[j] += a_ij t_i``
    (as :func:`csr_rows_k1`, the column indices checked the same way in the checked variant)."""
    last = np.uint64(v.shape[0] - 1)
    i = start
    while i + 2 <= stop:
        p0 = np.uint64(indptr[i])
        p1 = np.uint64(indptr[i + 1])
        p2 = np.uint64(indptr[i + 2])
        d0, m0 = row_dot(indices, data, v, p0, p1)
        d1, m1 = row_dot(indices, data, v, p1, p2)
        if max(m0, m1) > last:
            bad[0] = 1
            return
        t0 = d0 * _weight(s, i)
        t1 = d1 * _weight(s, i + 1)
        row_scatter(indices, data, t0, p0, p1, g)
        row_scatter(indices, data, t1, p1, p2, g)
        i += 2
    if i < stop:
        p0 = np.uint64(indptr[i])
        p1 = np.uint64(indptr[i + 1])
        d0, m0 = row_dot(indices, data, v, p0, p1)
        if m0 > last:
            bad[0] = 1
            return
        row_scatter(indices, data, d0 * _weight(s, i), p0, p1, g)


csr_hessp_rows_k1 = njit(**NUMBA_FLAGS)(_csr_hessp_rows_k1)
csr_hessp_rows_k1_checked = njit(**NUMBA_FLAGS)(variant(_csr_hessp_rows_k1, "checked", row_dot=row_dot_checked))


@njit(**NUMBA_EXACT_FLAGS)
def csr_block(indptr, indices, data, Y, W, s, b, start, stop, G, gb, check, bad):
    r"""Rows ``start <= i < stop`` of a CSR A: ``G[j, k] += s_i a_ij r_ik``, ``gb[k] += s_i r_ik``.

    ``r_ik = y_ik - b_k - sum_p data_p w[indices_p, k]``; returns ``sum_ik s_i r_ik^2``.
    G (D, K) and gb (K,) float64 are the block's partials (un-scaled, sign-flipped).
    ``check`` (K = 1 only): the column indices are checked in the pass (``csr_rows_k1_checked``).
    """
    K = Y.shape[1]
    sq = 0.0
    if K == 1:
        if check:
            return csr_rows_k1_checked(indptr, indices, data, Y, W.reshape(W.shape[0]), s, _offset(b, 0),
                                       start, stop, G.reshape(G.shape[0]), gb, bad)
        return csr_rows_k1(indptr, indices, data, Y, W.reshape(W.shape[0]), s, _offset(b, 0),
                           start, stop, G.reshape(G.shape[0]), gb, bad)
    r = np.empty(K)
    for i in range(start, stop):
        p0 = indptr[i]
        p1 = indptr[i + 1]
        for k in range(K):
            r[k] = Y[i, k] - _offset(b, k)
        for p in range(p0, p1):
            a = data[p]
            w_j = W[indices[p]]
            for k in range(K):
                r[k] -= a * w_j[k]
        s_i = _weight(s, i)
        for k in range(K):
            sr = s_i * r[k]
            sq += sr * r[k]
            gb[k] += sr
            r[k] = sr
        for p in range(p0, p1):
            a = data[p]
            g_j = G[indices[p]]
            for k in range(K):
                g_j[k] += a * r[k]
    return sq


@njit(**NUMBA_EXACT_FLAGS)
def _combine(G, GB, SQ, scale, out, gb):
    r"""``out = -2 scale sum_b G[b]``, ``gb = -2 scale sum_b GB[b]``, loss ``scale sum_b SQ[b]``, in block order."""
    nb, D, K = G.shape
    for j in range(D):
        for k in range(K):
            acc = 0.0
            for q in range(nb):
                acc += G[q, j, k]
            out[j, k] = -2.0 * scale * acc
    if gb is not None:
        for k in range(K):
            acc = 0.0
            for q in range(nb):
                acc += GB[q, k]
            gb[k] = -2.0 * scale * acc
    sq = 0.0
    for q in range(nb):
        sq += SQ[q]
    return scale * sq


def _mse_csr(indptr, indices, data, Y, W, s, b, scale, out, gb):
    r"""Loss and gradients of the MSE with a CSR A; writes ``out`` (and ``gb``), returns ``(loss, True)``.

    Every row block's partials (``prange``), then combined in block order.  A
    column index outside [0, D) found in the pass returns ``(nan, False)`` with
    nothing written.
    Compiled twice: ``mse_csr`` (serial) and ``mse_csr_parallel``.
    """
    N, K = Y.shape
    D = W.shape[0]
    rows = sparse_row_blocks(N, D, K)
    nb = (N + rows - 1) // rows
    G = np.zeros((nb, D, K))
    GB = np.zeros((nb, K))
    SQ = np.zeros(nb)
    BAD = np.zeros(nb, np.int32)
    check = sparse_checks_in_pass(indptr[N], N, K) and D > 0
    for q in prange(nb):
        start = q * rows
        SQ[q] = csr_block(indptr, indices, data, Y, W, s, b, start, min(start + rows, N), G[q], GB[q], check,
                          BAD[q:q + 1])
    if BAD.any():  # out and gb untouched
        return np.nan, False
    return _combine(G, GB, SQ, scale, out, gb), True


mse_csr, mse_csr_parallel = jit_targets(_mse_csr, NUMBA_EXACT_FLAGS)


@njit(**NUMBA_EXACT_FLAGS)
def _csc_product(indptr, indices, data, V, R, sign):
    r"""``R[i, k] += sign sum_j a_ij v_jk``, column by column in column order (serial)."""
    D, K = V.shape
    for j in range(D):
        v_j = V[j]
        for p in range(indptr[j], indptr[j + 1]):
            a = sign * data[p]
            r_i = R[indices[p]]
            for k in range(K):
                r_i[k] += a * v_j[k]


@njit(**NUMBA_EXACT_FLAGS)
def _csc_columns(indptr, indices, data, T, factor, V, addend, out, j):
    r"""``out[j, k] = factor sum_p data_p T[indices_p, k] + addend v_jk`` for one column j."""
    K = T.shape[1]
    for k in range(K):
        acc = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            acc += data[p] * T[indices[p], k]
        out[j, k] = factor * acc + addend * V[j, k]


def _mse_csc(indptr, indices, data, Y, W, s, b, scale, out, gb):
    r"""Loss and gradients of the MSE with a CSC A; writes ``out`` (and ``gb``), returns the loss.

    ``R = Y - b - A W`` column by column (serial, O(N K) memory), the loss and
    ``S R`` by row blocks in block order, then one dot product per column
    (``prange`` over the columns).  Compiled twice: ``mse_csc`` and ``mse_csc_parallel``.
    """
    N, K = Y.shape
    D = W.shape[0]
    R = np.empty((N, K))
    for i in range(N):
        for k in range(K):
            R[i, k] = Y[i, k] - _offset(b, k)
    _csc_product(indptr, indices, data, W, R, -1.0)
    rows = row_blocks(N)
    nb = (N + rows - 1) // rows
    SQ = np.zeros(nb)
    GB = np.zeros((nb, K))
    for q in prange(nb):
        sq = 0.0
        for i in range(q * rows, min((q + 1) * rows, N)):
            s_i = _weight(s, i)
            for k in range(K):
                sr = s_i * R[i, k]
                sq += sr * R[i, k]
                GB[q, k] += sr
                R[i, k] = sr
        SQ[q] = sq
    for j in prange(D):
        _csc_columns(indptr, indices, data, R, -2.0 * scale, W, 0.0, out, j)
    if gb is not None:
        for k in range(K):
            acc = 0.0
            for q in range(nb):
                acc += GB[q, k]
            gb[k] = -2.0 * scale * acc
    sq = 0.0
    for q in range(nb):
        sq += SQ[q]
    return scale * sq


mse_csc, mse_csc_parallel = jit_targets(_mse_csc, NUMBA_EXACT_FLAGS)


@njit(**NUMBA_EXACT_FLAGS)
def csr_hessp_block(indptr, indices, data, V, s, start, stop, G, check, bad):
    r"""Rows ``start <= i < stop`` of a CSR A: ``G[j, k] += a_ij s_i sum_l a_il v_lk`` (G (D, K));
    ``check`` as in :func:`csr_block`."""
    K = V.shape[1]
    if K == 1:
        if check:
            csr_hessp_rows_k1_checked(indptr, indices, data, V.reshape(V.shape[0]), s, start, stop,
                                      G.reshape(G.shape[0]), bad)
        else:
            csr_hessp_rows_k1(indptr, indices, data, V.reshape(V.shape[0]), s, start, stop, G.reshape(G.shape[0]),
                              bad)
        return
    t = np.empty(K)
    for i in range(start, stop):
        p0 = indptr[i]
        p1 = indptr[i + 1]
        t[:] = 0.0
        for p in range(p0, p1):
            a = data[p]
            v_l = V[indices[p]]
            for k in range(K):
                t[k] += a * v_l[k]
        s_i = _weight(s, i)
        for k in range(K):
            t[k] *= s_i
        for p in range(p0, p1):
            a = data[p]
            g_j = G[indices[p]]
            for k in range(K):
                g_j[k] += a * t[k]


def _hessp_csr(indptr, indices, data, V, s, scale, alpha, out):
    r"""``out = 2 scale A^T S A v + 2 alpha v`` with a CSR A: block partials, combined in block order.

    Returns False, with nothing written, when the pass finds a column index outside [0, D).
    """
    D, K = V.shape
    N = indptr.shape[0] - 1
    rows = sparse_row_blocks(N, D, K)
    nb = (N + rows - 1) // rows
    G = np.zeros((nb, D, K))
    BAD = np.zeros(nb, np.int32)
    check = sparse_checks_in_pass(indptr[N], N, K) and D > 0
    for q in prange(nb):
        start = q * rows
        csr_hessp_block(indptr, indices, data, V, s, start, min(start + rows, N), G[q], check, BAD[q:q + 1])
    if BAD.any():  # out untouched
        return False
    for j in range(D):
        for k in range(K):
            acc = 0.0
            for q in range(nb):
                acc += G[q, j, k]
            out[j, k] = 2.0 * scale * acc + 2.0 * alpha * V[j, k]
    return True


hessp_csr, hessp_csr_parallel = jit_targets(_hessp_csr, NUMBA_EXACT_FLAGS)


def _hessp_csc(indptr, indices, data, V, s, scale, alpha, N, out):
    r"""``out = 2 scale A^T S A v + 2 alpha v`` with a CSC A: ``T = S A v`` by columns (serial,
    O(N K)), then one dot product per column (``prange``)."""
    D, K = V.shape
    T = np.zeros((N, K))
    _csc_product(indptr, indices, data, V, T, 1.0)
    if s is not None:
        for i in range(N):
            for k in range(K):
                T[i, k] *= s[i]
    for j in prange(D):
        _csc_columns(indptr, indices, data, T, 2.0 * scale, V, 2.0 * alpha, out, j)


hessp_csc, hessp_csc_parallel = jit_targets(_hessp_csc, NUMBA_EXACT_FLAGS)


# ---------------------------------------------------------------------------
# The backend protocol


def csr_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads):
    """Protocol: loss and gradients with a CSR A into ``out`` (D, K) and ``gb`` (K,) or None; returns the loss.

    Raises ``sparse_index_error`` (nothing written) when the pass finds a column index outside [0, D).
    """
    loss, ok = launch_one_target(mse_csr, mse_csr_parallel, n_threads, indptr, indices, data, Y, W, s, b, scale,
                                 out, gb)
    if not ok:
        raise sparse_index_error("A", "csr", W.shape[0])
    return loss


def csc_loss_grad(indptr, indices, data, Y, W, s, b, scale, out, gb, n_threads):
    """Protocol: loss and gradients with a CSC A into ``out`` (D, K) and ``gb`` (K,) or None; returns the loss."""
    return launch(mse_csc, mse_csc_parallel, n_threads, indptr, indices, data, Y, W, s, b, scale, out, gb)


def csr_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads):
    """Protocol: ``H v`` with a CSR A of N rows into ``out`` (D, K); raises ``sparse_index_error``
    (nothing written) when the pass finds a column index outside [0, D)."""
    if not launch_one_target(hessp_csr, hessp_csr_parallel, n_threads, indptr, indices, data, V, s, scale, alpha,
                             out):
        raise sparse_index_error("A", "csr", V.shape[0])


def csc_hessp(indptr, indices, data, N, V, s, scale, alpha, out, n_threads):
    """Protocol: ``H v`` with a CSC A of N rows into ``out`` (D, K)."""
    launch(hessp_csc, hessp_csc_parallel, n_threads, indptr, indices, data, V, s, scale, alpha, N, out)
