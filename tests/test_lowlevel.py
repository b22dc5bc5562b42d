"""The low-level API for other tools: Numba kernels inside user @njit code, Cython kernels by cimport."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_user_extension
from numba import njit

import fastgrad
from fastgrad._numba import mse as nb


@njit(cache=False)
def user_gradient_descent(A, Y, WT, lr, steps):
    """A user's own compiled training loop calling fastgrad's kernel."""
    D, K = WT.shape[1], WT.shape[0]
    g = np.empty((D, K))
    loss = 0.0
    for _ in range(steps):
        loss = nb.mse_loss_grad(A, Y, WT, 1.0 / (A.shape[0] * K), g)
        for k in range(K):
            for j in range(D):
                WT[k, j] -= lr * g[j, k]
    return loss


def test_numba_kernel_inside_user_njit():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 4))
    w_true = np.array([1.0, -2.0, 0.5, 3.0])
    Y = (A @ w_true).reshape(-1, 1)
    WT = np.zeros((1, 4))
    loss = user_gradient_descent(A, Y, WT, 0.1, 500)
    assert loss < 1e-20
    np.testing.assert_allclose(WT[0], w_true, rtol=1e-9)
    # and the parallel kernel too, against the wrapper
    out = np.empty((4, 1))
    l2 = nb.mse_loss_grad_parallel(A, Y, np.zeros((1, 4)), 1 / 200, out)
    l_ref, g_ref = fastgrad.mse_loss_and_grad(A, Y[:, 0], np.zeros(4))
    assert l2 == pytest.approx(l_ref) and np.allclose(out[:, 0], g_ref)


PYX = """
# cython: language_level=3, boundscheck=False, wraparound=False
from fastgrad._cython.mse cimport mse_partials, mse_combine
import numpy as np

def user_loss_grad(const double[:, ::1] A, const double[:, ::1] Y, const double[:, ::1] WT, double scale):
    cdef Py_ssize_t N = A.shape[0], D = A.shape[1], K = Y.shape[1]
    cdef Py_ssize_t rows = 256
    cdef Py_ssize_t nb = (N + rows - 1) // rows
    G_arr = np.zeros((nb, K, D)); SQ_arr = np.zeros(nb); out_arr = np.empty((D, K))
    cdef double[:, :, ::1] G = G_arr
    cdef double[::1] SQ = SQ_arr
    cdef double[:, ::1] out = out_arr
    cdef double loss
    with nogil:
        mse_partials(A, Y, WT, rows, G, SQ, 1)
        loss = mse_combine(G, SQ, scale, out)
    return loss, out_arr
"""



@pytest.mark.slow
@pytest.mark.cython
def test_cython_kernel_cimported_by_another_extension(tmp_path):
    run_user_extension(tmp_path, "userext", PYX, "mse.pxd", """
        import numpy as np, fastgrad, userext
        rng = np.random.default_rng(1)
        A = rng.standard_normal((1000, 7)); y = rng.standard_normal(1000); w = rng.standard_normal(7)
        loss, g = userext.user_loss_grad(A, y.reshape(-1, 1), w.reshape(1, -1), 1 / 1000)
        ref_loss, ref_g = fastgrad.mse_loss_and_grad(A, y, w, backend="numpy")
        assert abs(loss - ref_loss) < 1e-12 * abs(ref_loss), (loss, ref_loss)
        assert np.allclose(g[:, 0], ref_g, rtol=1e-12), (g, ref_g)
        print("ok")
    """)
