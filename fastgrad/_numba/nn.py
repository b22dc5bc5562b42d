r"""Numba kernels of the neural-network gradients.

The derivations are in docs/derivations.md, "Backpropagation through dense layers".

Row-major batches: X (N, D), W (D, C), b (C,), ``Z = X W + B``.
The matrix products (``X W``, ``dZ W^T``, ``X^T dZ`` for wide dZ) go through
BLAS; these kernels are the parts that stream over the rows and gain from
fusion:

* :func:`dw_db_kernel`        ``dW_jk = sum_i x_ij dz_ik`` and ``db_k = sum_i dz_ik``
  in one pass over the rows (used when C is small, where a
  streaming pass beats a tall-skinny GEMM);
* :func:`bias_grad_kernel`    ``db_k = sum_i dz_ik`` alone (when dW goes to BLAS);
* :func:`bias_activation_kernel`  ``Z <- sigma(Z + b)`` in place (forward);
* :func:`loss_labels_kernel`  softmax cross-entropy with integer labels;
* :func:`loss_targets_kernel` MSE or softmax cross-entropy with dense (one-hot or
  probability) targets;
* :func:`activation_backward_kernel`  ``dA <- dA o sigma'(A)`` in place with ``db``.

The loss kernels overwrite the logits with ``dL/dZ`` and return the loss; all
three also write the bias gradient ``db_k = sum_i dz_ik`` of the same pass.

Activations and losses are passed as integer codes (``fastgrad._config.ACTIVATION_CODES``,
``LOSS_CODES``); the derivative of an activation is taken from its *value*
``a = sigma(z)``: identity 1, sigmoid ``a (1 - a)``, tanh ``1 - a**2``, relu
``[a > 0]``, so the forward pass needs to keep only ``A``.

Reductions over rows use the fixed partition ``fastgrad._config.row_blocks(N)``
(compiled here as :func:`row_blocks`): each block's partial goes to its own
slot and the slots are combined in block order, so the result is bitwise
identical for every thread count.  Partials accumulate in float64 also for
float32 inputs.

Names.  Each ``*_kernel`` body is written once and compiled for two targets by
:func:`fastgrad._numba._targets.jit_targets`: ``<name>_kernel`` (serial, no
thread pool) and ``<name>_kernel_parallel`` (row blocks over Numba's threads,
same bits).  These ``@njit`` dispatchers are the low-level API, callable from a
user's own Numba code.  The plain names (``dw_db``, ``bias_grad``, ...,
``dense_forward``, ``dense_backward``, ``mlp2``) are the backend protocol of the
``nn`` family (stated in ``fastgrad/_numpy/nn.py``): Python functions taking the
inputs, the outputs and ``n_threads`` last.

Preconditions (the caller's duty, done by ``fastgrad._validate``): every array
C-contiguous float32/float64 of the shapes stated; ``b`` of the dtype of Z;
``labels`` intp in ``[0, C)``; outputs writeable.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .. import _config, _validate
from .._config import NUMBA_EXACT_FLAGS, NUMBA_FLAGS
from ._targets import jit_targets, launch

__all__ = [
    "IDENTITY",
    "SIGMOID",
    "TANH",
    "RELU",
    "LOSS_MSE",
    "LOSS_XENT",
    "FUSED_MAX_C",
    "sigmoid",
    "activate",
    "activation_derivative",
    "row_blocks",
    "n_blocks",
    "dw_db_kernel",
    "dw_db_kernel_parallel",
    "bias_grad_kernel",
    "bias_grad_kernel_parallel",
    "bias_activation_kernel",
    "bias_activation_kernel_parallel",
    "loss_labels_kernel",
    "loss_labels_kernel_parallel",
    "loss_targets_kernel",
    "loss_targets_kernel_parallel",
    "activation_backward_kernel",
    "activation_backward_kernel_parallel",
    # the backend protocol
    "dw_db",
    "bias_grad",
    "bias_activation",
    "loss_labels",
    "loss_targets",
    "activation_backward",
    "dense_forward",
    "dense_backward",
    "mlp2",
]

# Codes of the activations and losses (fastgrad._config says them; compile-time
# constants in the kernels below).
IDENTITY = _config.ACTIVATION_CODES["identity"]
SIGMOID = _config.ACTIVATION_CODES["sigmoid"]
TANH = _config.ACTIVATION_CODES["tanh"]
RELU = _config.ACTIVATION_CODES["relu"]
LOSS_MSE = _config.LOSS_CODES["mse"]
LOSS_XENT = _config.LOSS_CODES["softmax_cross_entropy"]

# Rows handled together in dw_db: each dW partial entry is loaded and stored once
# per GROUP rows instead of once per row.
GROUP = 4

# Block partials are padded by PAD float64 (one cache line) per row so that two
# threads working on neighbouring blocks never write to the same cache line.
PAD = 8

#: Rows per block of the fixed partition of N rows: ``fastgrad._config.row_blocks`` compiled.
row_blocks = njit(**NUMBA_FLAGS)(_config.row_blocks)


@njit(**NUMBA_FLAGS)
def n_blocks(N):
    """Number of row blocks of the fixed partition of N rows."""
    rows = row_blocks(N)
    return (N + rows - 1) // rows


# ---------------------------------------------------------------------------
# Scalar functions


# The elementwise passes (activations, their derivatives, the losses) and the
# combines over blocks are compiled without fast-math (NUMBA_EXACT_FLAGS): with
# it, LLVM re-associated and contracted them differently in the serial and the
# parallel target (the cross-entropy loss and the sigmoid backward 1 ulp apart at
# 1 and 2 threads, depending on the order of compiling and loading from the
# cache).  These passes are bound by memory and exp; mlp2 at (10^5, 32, 64, 10)
# took the same time either way.  dw_db_block keeps fast-math (its sums vectorise).
@njit(**NUMBA_EXACT_FLAGS)
def sigmoid(z):
    """Overflow-safe logistic function ``1 / (1 + exp(-z))`` (exp of a non-positive number only)."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # also NaN for NaN z
    return e / (1.0 + e)


@njit(**NUMBA_EXACT_FLAGS)
def activate(z, act):
    """``sigma(z)`` for activation code ``act``; NaN propagates (relu(NaN) is NaN)."""
    if act == SIGMOID:
        return sigmoid(z)
    if act == TANH:
        return math.tanh(z)
    if act == RELU:
        return 0.0 if z <= 0.0 else z
    return z


@njit(**NUMBA_EXACT_FLAGS)
def activation_derivative(a, act):
    """``sigma'(z)`` from the value ``a = sigma(z)``: 1, ``a (1 - a)``, ``1 - a**2``, ``[a > 0]``."""
    if act == SIGMOID:
        return a * (1.0 - a)
    if act == TANH:
        return 1.0 - a * a
    if act == RELU:
        return 1.0 if a > 0.0 else 0.0
    return 1.0


# ---------------------------------------------------------------------------
# dW and db in one pass: dW_jk = sum_i x_ij dz_ik, db_k = sum_i dz_ik


@njit(**NUMBA_FLAGS)
def dw_db_block(X, dZ, start, stop, G, B):
    r"""One row block: ``G[k, j] += sum_i x_ij dz_ik``, ``B[k] += sum_i dz_ik`` for start <= i < stop.

    G is (C, >= D) float64 (dW transposed, so the inner loop over j is contiguous),
    B is (>= C,) float64.
    """
    D = X.shape[1]
    C = dZ.shape[1]
    i = start
    while i + GROUP <= stop:
        x0 = X[i]
        x1 = X[i + 1]
        x2 = X[i + 2]
        x3 = X[i + 3]
        for k in range(C):
            d0 = np.float64(dZ[i, k])
            d1 = np.float64(dZ[i + 1, k])
            d2 = np.float64(dZ[i + 2, k])
            d3 = np.float64(dZ[i + 3, k])
            B[k] += (d0 + d1) + (d2 + d3)
            g_k = G[k]
            for j in range(D):
                g_k[j] += (x0[j] * d0 + x1[j] * d1) + (x2[j] * d2 + x3[j] * d3)
        i += GROUP
    while i < stop:
        x_i = X[i]
        for k in range(C):
            dz_ik = np.float64(dZ[i, k])
            B[k] += dz_ik
            g_k = G[k]
            for j in range(D):
                g_k[j] += x_i[j] * dz_ik
        i += 1


@njit(**NUMBA_EXACT_FLAGS)
def dw_db_combine(G, B, dW, db):
    """``dW[j, k] = sum_b G[b, k, j]``, ``db[k] = sum_b B[b, k]``, blocks in order."""
    nb = G.shape[0]
    D, C = dW.shape
    for k in range(C):
        acc = 0.0
        for b in range(nb):
            acc += B[b, k]
        db[k] = acc
        for j in range(D):
            acc = 0.0
            for b in range(nb):
                acc += G[b, k, j]
            dW[j, k] = acc


def dw_db_kernel(X, dZ, dW, db):
    r"""Fused ``dW = X^T dZ`` (D, C) and ``db = sum_i dZ_i`` (C,), written into dW, db.

    ``dL/db = sum_i dL_i/dz_i`` (b enters every row); ``dW_jk = sum_i x_ij dz_ik``.
    """
    N = X.shape[0]
    rows = row_blocks(N)
    nb = n_blocks(N)
    G = np.zeros((nb, dZ.shape[1], X.shape[1] + PAD))
    B = np.zeros((nb, dZ.shape[1] + PAD))
    for b in prange(nb):
        start = b * rows
        dw_db_block(X, dZ, start, min(start + rows, N), G[b], B[b])
    dw_db_combine(G, B, dW, db)


dw_db_kernel, dw_db_kernel_parallel = jit_targets(dw_db_kernel)


# ---------------------------------------------------------------------------
# db alone: db_k = sum_i dz_ik


@njit(**NUMBA_FLAGS)
def bias_block(dZ, start, stop, B):
    """``B[k] += sum_i dz_ik`` for start <= i < stop (float64 accumulation, GROUP rows at a time)."""
    C = dZ.shape[1]
    i = start
    while i + GROUP <= stop:
        for k in range(C):
            B[k] += (np.float64(dZ[i, k]) + np.float64(dZ[i + 1, k])) + (
                np.float64(dZ[i + 2, k]) + np.float64(dZ[i + 3, k]))
        i += GROUP
    while i < stop:
        for k in range(C):
            B[k] += dZ[i, k]
        i += 1


@njit(**NUMBA_EXACT_FLAGS)
def combine_bias(B, db):
    """``db[k] = sum_b B[b, k]`` in block order (B may be padded: C = db.shape[0])."""
    nb = B.shape[0]
    C = db.shape[0]
    for k in range(C):
        acc = 0.0
        for b in range(nb):
            acc += B[b, k]
        db[k] = acc


def bias_grad_kernel(dZ, db):
    """``db_k = sum_i dz_ik`` (the column sums of dZ), written into db (C,)."""
    N = dZ.shape[0]
    rows = row_blocks(N)
    nb = n_blocks(N)
    B = np.zeros((nb, dZ.shape[1] + PAD))
    for b in prange(nb):
        start = b * rows
        bias_block(dZ, start, min(start + rows, N), B[b])
    combine_bias(B, db)


bias_grad_kernel, bias_grad_kernel_parallel = jit_targets(bias_grad_kernel)


# ---------------------------------------------------------------------------
# Forward: Z <- sigma(Z + b)


@njit(**NUMBA_EXACT_FLAGS)
def bias_activation_row(Z, b, act, i):
    """Row i: ``z_ik <- sigma(z_ik + b_k)``."""
    C = Z.shape[1]
    if act == IDENTITY:
        for k in range(C):
            Z[i, k] = Z[i, k] + b[k]
    elif act == RELU:
        for k in range(C):
            z = Z[i, k] + b[k]
            Z[i, k] = 0.0 if z <= 0.0 else z
    else:
        for k in range(C):
            Z[i, k] = activate(np.float64(Z[i, k]) + b[k], act)


def bias_activation_kernel(Z, b, act):
    """In-place ``Z <- sigma(Z + b)`` (the bias broadcast to every row)."""
    for i in prange(Z.shape[0]):
        bias_activation_row(Z, b, act, i)


bias_activation_kernel, bias_activation_kernel_parallel = jit_targets(bias_activation_kernel)


# ---------------------------------------------------------------------------
# Losses: Z (N, C) holds X W (without the bias); on return it holds dL/dZ.


@njit(**NUMBA_EXACT_FLAGS)
def xent_labels_block(Z, b, labels, scale, start, stop, B):
    r"""Softmax cross-entropy rows start <= i < stop; return ``sum_i (lse_i - z_{i,y_i})``.

    ``z_i <- z_i + b``, ``lse_i = m_i + log sum_k exp(z_ik - m_i)`` with
    ``m_i = max_k z_ik`` (stable: logits of +-1e3 stay finite), and in place
    ``dz_ik = scale (softmax(z_i)_k - [k = y_i])``; ``B[k] += dz_ik``.
    """
    C = Z.shape[1]
    total = 0.0
    for i in range(start, stop):
        m = -np.inf
        for k in range(C):
            z = Z[i, k] + b[k]
            Z[i, k] = z
            if z > m:
                m = z
        y_i = labels[i]
        total += m - np.float64(Z[i, y_i])
        s = 0.0
        for k in range(C):
            e = math.exp(np.float64(Z[i, k]) - m)
            Z[i, k] = e
            s += e
        total += math.log(s)
        r = scale / s
        for k in range(C):
            d = r * Z[i, k]
            if k == y_i:
                d -= scale
            Z[i, k] = d
            B[k] += Z[i, k]
    return total


@njit(**NUMBA_EXACT_FLAGS)
def targets_block(Z, b, Y, kind, scale, start, stop, B):
    r"""MSE or cross-entropy with dense targets, rows start <= i < stop; return the loss sum.

    MSE (``kind == LOSS_MSE``): ``d_ik = z_ik + b_k - y_ik``, sum ``d_ik**2``,
    ``dz_ik = 2 scale d_ik``.  Cross-entropy (``LOSS_XENT``, targets one-hot or
    probabilities): sum ``sum_k y_ik (lse_i - z_ik)`` (as ``sum_k y_ik (m_i - z_ik) + s_i log sum_k e_ik``),
    ``dz_ik = scale (softmax(z_i)_k sum_l y_il - y_ik)``.  ``B[k] += dz_ik``.
    """
    C = Z.shape[1]
    total = 0.0
    if kind == LOSS_MSE:
        for i in range(start, stop):
            for k in range(C):
                d = np.float64(Z[i, k]) + b[k] - Y[i, k]
                total += d * d
                Z[i, k] = 2.0 * scale * d
                B[k] += Z[i, k]
        return total
    for i in range(start, stop):
        m = -np.inf
        for k in range(C):
            z = Z[i, k] + b[k]
            Z[i, k] = z
            if z > m:
                m = z
        s = 0.0
        sy = 0.0
        for k in range(C):
            z = np.float64(Z[i, k])
            y = np.float64(Y[i, k])
            if y != 0.0:  # a zero target adds nothing, also where z_ik = -inf (0 * inf is NaN)
                total += y * (m - z)
            sy += y
            e = math.exp(z - m)
            Z[i, k] = e
            s += e
        total += sy * math.log(s)
        r = scale * sy / s
        for k in range(C):
            Z[i, k] = r * Z[i, k] - scale * Y[i, k]
            B[k] += Z[i, k]
    return total


@njit(**NUMBA_EXACT_FLAGS)
def _loss_combine(L, B, scale, db):
    total = 0.0
    for blk in range(L.shape[0]):
        total += L[blk]
    combine_bias(B, db)
    return scale * total


def loss_labels_kernel(Z, b, labels, scale, db):
    r"""Softmax cross-entropy with integer labels (N,); Z (N, C) becomes dL/dZ.

    ``loss = scale sum_i (lse(z_i + b) - z_{i, y_i} - b_{y_i})`` (scale = 1/N for
    torch's mean), returned; ``db`` (C,) receives ``sum_i dz_i``.
    """
    N = Z.shape[0]
    rows = row_blocks(N)
    nb = n_blocks(N)
    L = np.zeros(nb)
    B = np.zeros((nb, Z.shape[1] + PAD))
    for blk in prange(nb):
        start = blk * rows
        L[blk] = xent_labels_block(Z, b, labels, scale, start, min(start + rows, N), B[blk])
    return _loss_combine(L, B, scale, db)


loss_labels_kernel, loss_labels_kernel_parallel = jit_targets(loss_labels_kernel)


def loss_targets_kernel(Z, b, Y, kind, scale, db):
    r"""MSE (``kind=LOSS_MSE``, scale = 1/(N C)) or cross-entropy with dense targets
    (``LOSS_XENT``, scale = 1/N); Z (N, C) becomes dL/dZ, db receives ``sum_i dz_i``; returns the loss.
    """
    N = Z.shape[0]
    rows = row_blocks(N)
    nb = n_blocks(N)
    L = np.zeros(nb)
    B = np.zeros((nb, Z.shape[1] + PAD))
    for blk in prange(nb):
        start = blk * rows
        L[blk] = targets_block(Z, b, Y, kind, scale, start, min(start + rows, N), B[blk])
    return _loss_combine(L, B, scale, db)


loss_targets_kernel, loss_targets_kernel_parallel = jit_targets(loss_targets_kernel)


# ---------------------------------------------------------------------------
# Backward through the activation: dZ = dA o sigma'(Z), sigma' from A = sigma(Z)


@njit(**NUMBA_EXACT_FLAGS)
def act_backward_block(dA, A, act, start, stop, B):
    """Rows start <= i < stop: ``da_ik <- da_ik sigma'(a_ik)`` in place; ``B[k] += da_ik``."""
    H = dA.shape[1]
    for i in range(start, stop):
        if act == RELU:
            for k in range(H):
                dA[i, k] = dA[i, k] * (1.0 if A[i, k] > 0.0 else 0.0)
                B[k] += dA[i, k]
        else:
            for k in range(H):
                dA[i, k] = dA[i, k] * activation_derivative(np.float64(A[i, k]), act)
                B[k] += dA[i, k]


def activation_backward_kernel(dA, A, act, db):
    r"""In-place ``dZ = dA o sigma'(A)`` (the hidden layer's ``G_1 = (G_2 W_2^T) o sigma'(Z_1)``).

    dA, A (N, H); db (H,) receives ``sum_i dz_i``.
    """
    N = dA.shape[0]
    rows = row_blocks(N)
    nb = n_blocks(N)
    B = np.zeros((nb, dA.shape[1] + PAD))
    for blk in prange(nb):
        start = blk * rows
        act_backward_block(dA, A, act, start, min(start + rows, N), B[blk])
    combine_bias(B, db)


activation_backward_kernel, activation_backward_kernel_parallel = jit_targets(activation_backward_kernel)


# ---------------------------------------------------------------------------
# The backend protocol of the nn family (fastgrad/_numpy/nn.py states it).
# Streaming passes: the kernels above on n_threads threads (serial for one).


def dw_db(X, dZ, dW, db, n_threads):
    """Protocol: fused ``dW = X^T dZ`` (D, C) and ``db = sum_i dZ_i`` (C,) into dW, db."""
    launch(dw_db_kernel, dw_db_kernel_parallel, n_threads, X, dZ, dW, db)


def bias_grad(dZ, db, n_threads):
    """Protocol: ``db = sum_i dZ_i`` (C,) into db."""
    launch(bias_grad_kernel, bias_grad_kernel_parallel, n_threads, dZ, db)


def bias_activation(Z, b, act, n_threads):
    """Protocol: ``Z <- sigma(Z + b)`` in place (``act`` an activation code)."""
    launch(bias_activation_kernel, bias_activation_kernel_parallel, n_threads, Z, b, act)


def loss_labels(Z, b, labels, scale, db, n_threads):
    """Protocol: softmax cross-entropy with labels; Z (logits without b) becomes dL/dZ, db
    receives ``sum_i dz_i``; returns the loss."""
    return launch(loss_labels_kernel, loss_labels_kernel_parallel, n_threads, Z, b, labels, scale, db)


def loss_targets(Z, b, Y, kind, scale, db, n_threads):
    """Protocol: MSE or cross-entropy with dense targets (``kind`` a loss code); Z becomes dL/dZ,
    db receives ``sum_i dz_i``; returns the loss."""
    return launch(loss_targets_kernel, loss_targets_kernel_parallel, n_threads, Z, b, Y, kind, scale, db)


def activation_backward(dA, A, act, db, n_threads):
    """Protocol: ``dA <- dA o sigma'(A)`` in place; db receives ``sum_i dz_i``."""
    launch(activation_backward_kernel, activation_backward_kernel_parallel, n_threads, dA, A, act, db)


# ---------------------------------------------------------------------------
# Whole operations: BLAS products and the streaming passes above.  The same
# composition is in fastgrad/_cython/nn.pyx over the Cython kernels.

#: dW and db come from one fused streaming pass when dZ has at most this many
#: columns (float32 only: the pass accumulates in float64, sgemm would not);
#: wider dZ makes X^T dZ a compute-bound GEMM that BLAS does better.
FUSED_MAX_C = 16


def _threads(n_threads, work, min_work):
    """``n_threads`` for a pass of ``work`` units; 1 (the serial kernel) below ``min_work``.

    The elementwise passes (bias + activation, loss, o sigma') are memory-bound and
    sit between BLAS calls whose own thread pool is still spinning: they go parallel
    from ``_config.STREAM_PARALLEL_MIN`` elements; dw_db from ``_config.PARALLEL_MIN_WORK``.
    """
    return 1 if work < min_work else n_threads


def dense_forward(X, W, b, out, n_threads):
    """Protocol: ``out = X W + b``: one BLAS product into ``out`` (C-contiguous), then the bias pass."""
    np.matmul(X, W, out=out)
    bias_activation(out, b, IDENTITY, _threads(n_threads, out.size, _config.STREAM_PARALLEL_MIN))


def dense_backward(X, W, dZ, dX, dW, db, n_threads):
    """Protocol: ``dX = dZ W^T``, ``dW = X^T dZ``, ``db = sum_i dZ_i`` into dX, dW, db."""
    (N, D), C = X.shape, dZ.shape[1]
    # The compiled passes run before the BLAS products: OpenBLAS's workers spin for
    # about 0.1 s after a product, and a parallel pass started in that window ran
    # at 0.6x speed (db for N=200 000, C=256: 16.7 ms against 9.9 ms).
    if C <= FUSED_MAX_C and X.dtype == np.float32:
        dw_db(_validate.as_contiguous(X), _validate.as_contiguous(dZ), dW, db,
              _threads(n_threads, N * D * C, _config.PARALLEL_MIN_WORK))
    else:
        bias_grad(_validate.as_contiguous(dZ), db, _threads(n_threads, N * C, _config.STREAM_PARALLEL_MIN))
        np.matmul(X.T, dZ, out=dW)
    np.matmul(dZ, W.T, out=dX)


def mlp2(X, Y, W1, b1, W2, b2, act, kind, dW1, db1, dW2, db2, n_threads):
    """Protocol: loss of the 2-layer MLP (returned) and its gradients into dW1, db1, dW2, db2.

    Y: intp labels (N,) (cross-entropy) or targets (N, C); ``act``, ``kind``: codes.
    """
    N, C = X.shape[0], W2.shape[1]
    stream = _config.STREAM_PARALLEL_MIN
    A1 = np.matmul(X, W1)                    # (N, H)
    heavy = 1 if act in (IDENTITY, RELU) else 8  # tanh/sigmoid: arithmetic-heavy
    bias_activation(A1, b1, act, _threads(n_threads, A1.size * heavy, stream))  # A1 = sigma(X W1 + b1)
    dZ2 = np.matmul(A1, W2)                  # (N, C)
    scale = 1.0 / (N * C) if kind == LOSS_MSE else 1.0 / N
    t = _threads(n_threads, dZ2.size * 8, stream)
    if Y.ndim == 1:                          # Z2 -> dL/dZ2 in place
        val = loss_labels(dZ2, b2, Y, scale, db2, t)
    else:
        val = loss_targets(dZ2, b2, Y, kind, scale, db2, t)
    np.matmul(A1.T, dZ2, out=dW2)
    dZ1 = np.matmul(dZ2, W2.T)               # dL/dA1 (N, H)
    activation_backward(dZ1, A1, act, db1, _threads(n_threads, dZ1.size, stream))  # -> dL/dZ1
    np.matmul(X.T, dZ1, out=dW1)
    return val
