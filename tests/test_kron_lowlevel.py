"""The low-level Kronecker kernels: Numba kernels inside a user's @njit code, Cython ones by cimport;
the backend protocol of the family."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import BACKENDS, run_user_extension
from numba import njit

from fastgrad import _config
from fastgrad._numba import kron as nbk


@njit(cache=False)
def user_jacobians(A, B, x, n):
    """A user's compiled code building Bᵀ ⊗ A and xᵀ ⊗ I_n with fastgrad's kernels."""
    BT = np.ascontiguousarray(B.T)
    J = np.empty((BT.shape[0] * A.shape[0], BT.shape[1] * A.shape[1]))
    nbk.kron_fill(BT, A, J)
    Jw = np.empty((n, n * x.shape[0]))
    nbk.jacobian_wx_fill(x, False, Jw)
    return J, Jw


def test_numba_kernels_inside_user_njit():
    rng = np.random.default_rng(0)
    A, B, x = rng.standard_normal((3, 4)), rng.standard_normal((5, 2)), rng.standard_normal(6)
    J, Jw = user_jacobians(A, B, x, 4)
    np.testing.assert_array_equal(J, np.kron(B.T, A))
    np.testing.assert_array_equal(Jw, np.kron(x[None], np.eye(4)))
    out = np.empty_like(J)
    nbk.kron_fill_parallel(np.ascontiguousarray(B.T), A, out)
    np.testing.assert_array_equal(out, J)


PROTOCOL = {
    "kron": ["A", "B", "out", "n_threads"],
    "jacobian_wx": ["x", "order_c", "out", "n_threads"],
    "kron_csr": ["Pp", "Pi", "Pd", "Qp", "Qi", "Qd", "nQ", "indptr", "indices", "data", "n_threads"],
}


@pytest.mark.parametrize("name", sorted(PROTOCOL))
@pytest.mark.parametrize("backend", BACKENDS)
def test_kron_protocol_same_names_and_arguments(backend, name):
    fn = getattr(_config.kernels("kron", backend), name)
    assert list(inspect.signature(fn).parameters) == PROTOCOL[name]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_kron_protocol_writes_into_out(backend, n_threads):
    k = _config.kernels("kron", backend)
    rng = np.random.default_rng(3)
    A, B, x = rng.standard_normal((3, 4)), rng.standard_normal((2, 5)), rng.standard_normal(4)
    x[1] = 0.0
    out = np.full((6, 20), np.nan)
    assert k.kron(A, B, out, n_threads) is None
    np.testing.assert_array_equal(out, np.kron(A, B))
    out = np.full((3, 12), np.nan)
    k.jacobian_wx(x, True, out, n_threads)
    np.testing.assert_array_equal(out, np.kron(np.eye(3), x[None]))
    # CSR of x^T (1, 4) ⊗ I_3: row pointer, sorted columns and values written by the kernel
    Pp, Pi, Pd = np.array([0, 3], np.int32), np.array([0, 2, 3], np.int32), x[[0, 2, 3]].copy()
    Qp, Qi, Qd = np.arange(4, dtype=np.int32), np.arange(3, dtype=np.int32), np.ones(3)
    indptr, indices, data = np.full(4, -1, np.int32), np.full(9, -1, np.int32), np.full(9, np.nan)
    k.kron_csr(Pp, Pi, Pd, Qp, Qi, Qd, 3, indptr, indices, data, n_threads)
    np.testing.assert_array_equal(indptr, [0, 3, 6, 9])
    np.testing.assert_array_equal(indices, [0, 6, 9, 1, 7, 10, 2, 8, 11])
    np.testing.assert_array_equal(data, np.tile(Pd, 3))


PYX = """
# cython: language_level=3, boundscheck=False, wraparound=False
from fastgrad._cython.kron cimport kron_into
import numpy as np

def user_kron(const double[:, ::1] A, const double[:, ::1] B):
    out_arr = np.empty((A.shape[0] * B.shape[0], A.shape[1] * B.shape[1]))
    cdef double[:, ::1] out = out_arr
    with nogil:
        kron_into(A, B, &out[0, 0], out.shape[1], 1, 1)
    return out_arr
"""



@pytest.mark.slow
@pytest.mark.cython
def test_cython_kron_cimported_by_another_extension(tmp_path):
    run_user_extension(tmp_path, "userkron", PYX, "kron.pxd", """
        import numpy as np, userkron
        rng = np.random.default_rng(1)
        A, B = rng.standard_normal((4, 3)), rng.standard_normal((2, 5))
        assert np.array_equal(userkron.user_kron(A, B), np.kron(A, B))
        print("ok")
    """)
