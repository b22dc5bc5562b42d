"""The low-level Kronecker kernels: Numba kernels inside a user's @njit code, Cython ones by cimport."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_user_extension
from numba import njit

from fastgrad._numba import kron as nbk


@njit(cache=False)
def user_jacobians(A, B, x, n):
    """A user's compiled code building Bᵀ ⊗ A and xᵀ ⊗ I_n with fastgrad's kernels."""
    BT = np.ascontiguousarray(B.T)
    J = np.empty((BT.shape[0] * A.shape[0], BT.shape[1] * A.shape[1]))
    nbk.kron(BT, A, J)
    Jw = np.empty((n, n * x.shape[0]))
    nbk.jacobian_wx(x, False, Jw)
    return J, Jw


def test_numba_kernels_inside_user_njit():
    rng = np.random.default_rng(0)
    A, B, x = rng.standard_normal((3, 4)), rng.standard_normal((5, 2)), rng.standard_normal(6)
    J, Jw = user_jacobians(A, B, x, 4)
    np.testing.assert_array_equal(J, np.kron(B.T, A))
    np.testing.assert_array_equal(Jw, np.kron(x[None], np.eye(4)))
    out = np.empty_like(J)
    nbk.kron_parallel(np.ascontiguousarray(B.T), A, out)
    np.testing.assert_array_equal(out, J)


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
