# cython: language_level=3
r"""Cython kernels of the neural-network gradients (docs/derivations.md,
"Backpropagation through dense layers").

Same algorithms, same block partition and same summation order as
fastgrad/_numba/nn.py (read its docstring for the formulas):

* ``dw_db``               ``dW_jk = sum_i x_ij dz_ik``, ``db_k = sum_i dz_ik`` in one pass;
* ``bias_grad``           ``db_k = sum_i dz_ik``;
* ``bias_activation``     ``Z <- sigma(Z + b)`` in place;
* ``loss_labels``         softmax cross-entropy with integer labels, Z -> dL/dZ, db, returns the loss;
* ``loss_targets``        MSE / cross-entropy with dense targets, Z -> dL/dZ, db, returns the loss;
* ``activation_backward`` ``dA <- dA o sigma'(A)`` in place, db;
* ``dense_forward``, ``dense_backward``, ``mlp2``: the whole operations (BLAS
  products and the passes above; the same composition as fastgrad/_numba/nn.py).

These ``def`` functions are the backend protocol of the ``nn`` family (stated in
fastgrad/_numpy/nn.py): the inputs, the outputs, ``n_threads`` last (one thread:
no OpenMP team).  The ``cdef`` block kernels (nn.pxd) are the low-level API.

Reductions over rows: blocks of ``fastgrad._config.row_blocks(N)`` rows (a
function of N only), one slot per block, slots combined in block order —
bitwise identical for every thread count; float64 accumulation.  All arrays
share one dtype (float32 or float64), C-contiguous; labels are intp.
Activation and loss codes: the enum below, equal to
``fastgrad._config.ACTIVATION_CODES`` / ``LOSS_CODES`` (tested).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log, tanh, INFINITY

import numpy as np

from fastgrad import _config, _validate
from fastgrad._config import row_blocks

cdef enum:
    PAD = 8          # float64 padding per block partial row: no cache line shared by two blocks
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LOSS_MSE = 0
    LOSS_XENT = 1

#: The codes of the enum above, for the test that they equal fastgrad._config's.
ACTIVATION_CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}
LOSS_CODES = {"mse": LOSS_MSE, "softmax_cross_entropy": LOSS_XENT}


cdef inline double sigmoid(double z) noexcept nogil:
    """Overflow-safe ``1 / (1 + exp(-z))``."""
    cdef double e
    if z >= 0.0:
        return 1.0 / (1.0 + exp(-z))
    e = exp(z)
    return e / (1.0 + e)


cdef inline double activate(double z, int act) noexcept nogil:
    """``sigma(z)`` for activation code ``act``; NaN propagates."""
    if act == SIGMOID:
        return sigmoid(z)
    if act == TANH:
        return tanh(z)
    if act == RELU:
        return 0.0 if z <= 0.0 else z
    return z


cdef inline double activation_derivative(double a, int act) noexcept nogil:
    """``sigma'(z)`` from ``a = sigma(z)``: 1, ``a (1 - a)``, ``1 - a**2``, ``[a > 0]``."""
    if act == SIGMOID:
        return a * (1.0 - a)
    if act == TANH:
        return 1.0 - a * a
    if act == RELU:
        return 1.0 if a > 0.0 else 0.0
    return 1.0


cdef inline Py_ssize_t _n_blocks(Py_ssize_t N, Py_ssize_t rows) noexcept nogil:
    return (N + rows - 1) // rows


cdef void _combine_bias(const double[:, ::1] B, floating[::1] db) noexcept nogil:
    """``db[k] = sum_b B[b, k]`` in block order (B may be padded: C = db.shape[0])."""
    cdef Py_ssize_t nb = B.shape[0], C = db.shape[0], b, k
    cdef double acc
    for k in range(C):
        acc = 0.0
        for b in range(nb):
            acc = acc + B[b, k]
        db[k] = <floating>acc


# ---------------------------------------------------------------------------
# dW and db in one pass


cdef void dw_db_block(const floating* X, const floating* dZ, Py_ssize_t D, Py_ssize_t C,
                      Py_ssize_t ldg, Py_ssize_t start, Py_ssize_t stop, double* G,
                      double* B) noexcept nogil:
    """``G[k, j] += sum_i x_ij dz_ik`` (G is (C, ldg), ldg >= D), ``B[k] += sum_i dz_ik``, start <= i < stop."""
    cdef Py_ssize_t i = start, j, k
    cdef double d0, d1, d2, d3, dz_ik
    cdef const floating* x0
    cdef const floating* x1
    cdef const floating* x2
    cdef const floating* x3
    cdef double* g
    while i + 4 <= stop:
        x0 = X + i * D
        x1 = x0 + D
        x2 = x1 + D
        x3 = x2 + D
        for k in range(C):
            d0 = dZ[i * C + k]
            d1 = dZ[(i + 1) * C + k]
            d2 = dZ[(i + 2) * C + k]
            d3 = dZ[(i + 3) * C + k]
            B[k] = B[k] + ((d0 + d1) + (d2 + d3))
            g = G + k * ldg
            for j in range(D):
                g[j] = g[j] + ((x0[j] * d0 + x1[j] * d1) + (x2[j] * d2 + x3[j] * d3))
        i = i + 4
    while i < stop:
        x0 = X + i * D
        for k in range(C):
            dz_ik = dZ[i * C + k]
            B[k] = B[k] + dz_ik
            g = G + k * ldg
            for j in range(D):
                g[j] = g[j] + x0[j] * dz_ik
        i = i + 1


def dw_db(const floating[:, ::1] X, const floating[:, ::1] dZ, floating[:, ::1] dW, floating[::1] db,
          int n_threads):
    """Protocol: fused ``dW = X^T dZ`` (D, C) and ``db = sum_i dZ_i`` (C,), written into dW and db."""
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], C = dZ.shape[1]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = _n_blocks(N, rows), b, j, k, start, stop
    cdef double[:, :, ::1] G = np.zeros((nb, C, D + PAD))
    cdef double[:, ::1] B = np.zeros((nb, C + PAD))
    cdef double acc
    if N == 0:
        dW[:, :] = 0
        db[:] = 0
        return
    with nogil:
        for b in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            start = b * rows
            stop = start + rows
            if stop > N:
                stop = N
            dw_db_block(&X[0, 0], &dZ[0, 0], D, C, D + PAD, start, stop, &G[b, 0, 0], &B[b, 0])
        _combine_bias(B, db)
        for k in range(C):
            for j in range(D):
                acc = 0.0
                for b in range(nb):
                    acc = acc + G[b, k, j]
                dW[j, k] = <floating>acc


# ---------------------------------------------------------------------------
# db alone


cdef void bias_block(const floating* dZ, Py_ssize_t C, Py_ssize_t start, Py_ssize_t stop,
                     double* B) noexcept nogil:
    """``B[k] += sum_i dz_ik`` for start <= i < stop (four rows at a time, as the Numba kernel)."""
    cdef Py_ssize_t i = start, k
    cdef const floating* z
    while i + 4 <= stop:
        z = dZ + i * C
        for k in range(C):
            B[k] = B[k] + ((<double>z[k] + <double>z[C + k]) + (<double>z[2 * C + k] + <double>z[3 * C + k]))
        i = i + 4
    while i < stop:
        for k in range(C):
            B[k] = B[k] + dZ[i * C + k]
        i = i + 1


def bias_grad(const floating[:, ::1] dZ, floating[::1] db, int n_threads):
    """Protocol: ``db_k = sum_i dz_ik`` written into db (C,)."""
    cdef Py_ssize_t N = dZ.shape[0], C = dZ.shape[1]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = _n_blocks(N, rows), b, start, stop
    cdef double[:, ::1] B = np.zeros((nb, C + PAD))
    if N == 0:
        db[:] = 0
        return
    with nogil:
        for b in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            start = b * rows
            stop = start + rows
            if stop > N:
                stop = N
            bias_block(&dZ[0, 0], C, start, stop, &B[b, 0])
        _combine_bias(B, db)


# ---------------------------------------------------------------------------
# Forward: Z <- sigma(Z + b)


cdef void bias_activation_row(floating* z, const floating* b, Py_ssize_t C, int act) noexcept nogil:
    """One row: ``z_k <- sigma(z_k + b_k)``."""
    cdef Py_ssize_t k
    cdef floating v
    if act == IDENTITY:
        for k in range(C):
            z[k] = z[k] + b[k]
    elif act == RELU:
        for k in range(C):
            v = z[k] + b[k]
            z[k] = 0 if v <= 0 else v
    else:
        for k in range(C):
            z[k] = <floating>activate(<double>z[k] + b[k], act)


def bias_activation(floating[:, ::1] Z, const floating[::1] b, int act, int n_threads):
    """Protocol: in-place ``Z <- sigma(Z + b)``, rows over threads."""
    cdef Py_ssize_t N = Z.shape[0], C = Z.shape[1], i
    if N == 0 or C == 0:
        return
    with nogil:
        for i in prange(N, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            bias_activation_row(&Z[i, 0], &b[0], C, act)


# ---------------------------------------------------------------------------
# Losses: Z (N, C) holds X W (without the bias); on return it holds dL/dZ.


cdef double xent_labels_block(floating* Z, const floating* b, const Py_ssize_t* labels,
                              Py_ssize_t C, double scale, Py_ssize_t start, Py_ssize_t stop,
                              double* B) noexcept nogil:
    """Softmax cross-entropy with labels, rows start <= i < stop; return ``sum_i (lse_i - z_{i,y_i})``."""
    cdef Py_ssize_t i, k, y_i
    cdef floating z
    cdef floating* zi
    cdef double m, s, e, r, d, total = 0.0
    for i in range(start, stop):
        zi = Z + i * C
        m = -INFINITY
        for k in range(C):
            z = zi[k] + b[k]
            zi[k] = z
            if z > m:
                m = z
        y_i = labels[i]
        total = total + (m - <double>zi[y_i])
        s = 0.0
        for k in range(C):
            e = exp(<double>zi[k] - m)
            zi[k] = <floating>e
            s = s + e
        total = total + log(s)
        r = scale / s
        for k in range(C):
            d = r * zi[k]
            if k == y_i:
                d = d - scale
            zi[k] = <floating>d
            B[k] = B[k] + zi[k]
    return total


cdef double targets_block(floating* Z, const floating* b, const floating* Y, Py_ssize_t C,
                          int kind, double scale, Py_ssize_t start, Py_ssize_t stop,
                          double* B) noexcept nogil:
    """MSE or cross-entropy with dense targets, rows start <= i < stop; return the loss sum."""
    cdef Py_ssize_t i, k
    cdef floating zf
    cdef floating* zi
    cdef const floating* yi
    cdef double m, s, sy, e, r, d, z, y, total = 0.0
    if kind == LOSS_MSE:
        for i in range(start, stop):
            zi = Z + i * C
            yi = Y + i * C
            for k in range(C):
                d = <double>zi[k] + b[k] - yi[k]
                total = total + d * d
                zi[k] = <floating>(2.0 * scale * d)
                B[k] = B[k] + zi[k]
        return total
    for i in range(start, stop):
        zi = Z + i * C
        yi = Y + i * C
        m = -INFINITY
        for k in range(C):
            zf = zi[k] + b[k]
            zi[k] = zf
            if zf > m:
                m = zf
        s = 0.0
        sy = 0.0
        for k in range(C):
            z = zi[k]
            y = yi[k]
            if y != 0.0:  # a zero target adds nothing, also where z_ik = -inf (0 * inf is NaN)
                total = total + y * (m - z)
            sy = sy + y
            e = exp(z - m)
            zi[k] = <floating>e
            s = s + e
        total = total + sy * log(s)
        r = scale * sy / s
        for k in range(C):
            zi[k] = <floating>(r * zi[k] - scale * yi[k])
            B[k] = B[k] + zi[k]
    return total


def loss_labels(floating[:, ::1] Z, const floating[::1] b, const Py_ssize_t[::1] labels,
                double scale, floating[::1] db, int n_threads):
    """Protocol: softmax cross-entropy with integer labels; Z becomes dL/dZ, db receives sum_i dz_i;
    returns the loss."""
    cdef Py_ssize_t N = Z.shape[0], C = Z.shape[1]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = _n_blocks(N, rows), blk, start, stop
    cdef double[::1] L = np.zeros(nb)
    cdef double[:, ::1] B = np.zeros((nb, C + PAD))
    cdef double total = 0.0
    with nogil:
        for blk in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            start = blk * rows
            stop = start + rows
            if stop > N:
                stop = N
            L[blk] = xent_labels_block(&Z[0, 0], &b[0], &labels[0], C, scale, start, stop, &B[blk, 0])
        for blk in range(nb):
            total = total + L[blk]
        _combine_bias(B, db)
    return scale * total


def loss_targets(floating[:, ::1] Z, const floating[::1] b, const floating[:, ::1] Y, int kind,
                 double scale, floating[::1] db, int n_threads):
    """Protocol: MSE (kind 0) or cross-entropy with dense targets (kind 1); Z becomes dL/dZ, db
    receives sum_i dz_i; returns the loss."""
    cdef Py_ssize_t N = Z.shape[0], C = Z.shape[1]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = _n_blocks(N, rows), blk, start, stop
    cdef double[::1] L = np.zeros(nb)
    cdef double[:, ::1] B = np.zeros((nb, C + PAD))
    cdef double total = 0.0
    with nogil:
        for blk in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            start = blk * rows
            stop = start + rows
            if stop > N:
                stop = N
            L[blk] = targets_block(&Z[0, 0], &b[0], &Y[0, 0], C, kind, scale, start, stop, &B[blk, 0])
        for blk in range(nb):
            total = total + L[blk]
        _combine_bias(B, db)
    return scale * total


# ---------------------------------------------------------------------------
# Backward through the activation


cdef void act_backward_block(floating* dA, const floating* A, Py_ssize_t H, int act,
                             Py_ssize_t start, Py_ssize_t stop, double* B) noexcept nogil:
    """Rows start <= i < stop: ``da_ik <- da_ik sigma'(a_ik)``; ``B[k] += da_ik``."""
    cdef Py_ssize_t i, k
    cdef floating* da
    cdef const floating* a
    cdef floating d
    for i in range(start, stop):
        da = dA + i * H
        a = A + i * H
        if act == RELU:
            # da * [a > 0] as IEEE multiplication: a NaN or infinite da stays NaN where a <= 0
            # (NaN * 0, inf * 0), as in the Numba and numpy kernels.  Not written as a product:
            # under -fno-signed-zeros -fno-trapping-math GCC folds x * [a > 0] (and x * 0.0)
            # into a select that drops the NaN; d - d is 0 for finite d (as before) and NaN else.
            for k in range(H):
                d = da[k]
                da[k] = d if a[k] > 0 else d - d
                B[k] = B[k] + da[k]
        else:
            for k in range(H):
                da[k] = <floating>(da[k] * activation_derivative(<double>a[k], act))
                B[k] = B[k] + da[k]


def activation_backward(floating[:, ::1] dA, const floating[:, ::1] A, int act, floating[::1] db,
                        int n_threads):
    """Protocol: in-place ``dA <- dA o sigma'(A)``; db receives ``sum_i dz_i``."""
    cdef Py_ssize_t N = dA.shape[0], H = dA.shape[1]
    cdef Py_ssize_t rows = row_blocks(N)
    cdef Py_ssize_t nb = _n_blocks(N, rows), blk, start, stop
    cdef double[:, ::1] B = np.zeros((nb, H + PAD))
    if N == 0 or H == 0:
        db[:] = 0
        return
    with nogil:
        for blk in prange(nb, schedule='static', num_threads=n_threads, use_threads_if=n_threads > 1):
            start = blk * rows
            stop = start + rows
            if stop > N:
                stop = N
            act_backward_block(&dA[0, 0], &A[0, 0], H, act, start, stop, &B[blk, 0])
        _combine_bias(B, db)


# ---------------------------------------------------------------------------
# Whole operations: BLAS products and the streaming passes above.  The same
# composition as in fastgrad/_numba/nn.py, over the Cython kernels.

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
