r"""Numba kernels of numerical differentiation (seed 004).

Two families live here.

**Finite differences of a user's function** ``f(x, *args)`` (``numgrad``/``numjac``
over an ``@njit`` f).  For element j of x with nominal step ``h_j`` the kernels
form, on a *private copy* ``xc`` of x (f never sees x itself, no two threads
share a copy)::

    forward    (f(x + h e_j) - f(x)) / h
    backward   (f(x) - f(x - h e_j)) / h
    central    (f(x + h e_j) - f(x - h e_j)) / (2 h)
    five-point (f(x - 2h e_j) - 8 f(x - h e_j) + 8 f(x + h e_j) - f(x + 2h e_j)) / (12 h)
    complex    Im f(x + i h e_j) / h

(seed 004: ``dw_j = lim (loss(w_j + h) - loss(w_j - h)) / 2h`` -- with the ``2h``
in the denominator, not the seed's ``/ 2*h``).  The steps actually used are the
representable ones: the perturbed entry is stored in x's dtype and the
denominator is formed from the stored values (``(x_j + h) - x_j``), so float32 x
gets exact secants.  Each element's quotient depends only on f and that element,
never on the chunking, so the result is bitwise identical for every thread
count.  The chunk functions hold the whole computation; their ``py_func`` is
what fastgrad runs for plain-Python f, so both paths do the same arithmetic.

With ``full`` the quotient is also formed at ``h/2`` and ``err[j]`` is the
Richardson estimate ``|D(h) - D(h/2)| 2^p / (2^p - 1)`` (p the method's order)
plus the rounding bound ``eps sum_k |c_k f_k| / h``.

**The MSE's own numerical gradient** (``mse_numgrad``): with ``r = y - A w``
(N, K), the loss at ``w + o h e_jk`` is really evaluated, reusing the residual::

    L(w + o h e_jk) = scale * ( sum_{k' != k} sum_i r_ik'^2  +  sum_i (r_ik - o h a_ij)^2 )

an O(N) sum per perturbation, O(N D K) for the whole gradient (not O(N D^2 K)).

Preconditions (the caller's duty, done by ``fastgrad.numdiff``): x is a
C-contiguous float32/float64 array owned by fastgrad; ``h`` a float64 array of
x.size finite positive steps whose ``x + h`` differs from x in x's dtype;
``out``/``err`` float64 arrays of x.size (or (m, x.size) for the Jacobian).
For the MSE kernels: A (N, D), Y (N, K) C-contiguous float32/float64, WT (K, D)
and H (K, D) float64, ``out`` (D, K) float64.

Compile flags: the kernels that take a user's function are compiled with
``cache=False`` (Numba cannot cache a kernel specialised on a dispatcher: it
would recompile and rewrite the cache on every run) and without fastmath, so
that the few flops of each difference quotient are IEEE-exact and the compiled
path agrees bit for bit with the Python path.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import NUMBA_FLAGS, NUMBA_PARALLEL_FLAGS, NUMBA_USER_FLAGS, NUMBA_USER_PARALLEL_FLAGS

__all__ = [
    "FORWARD",
    "BACKWARD",
    "CENTRAL",
    "FIVE_POINT",
    "COMPLEX",
    "METHOD_CODES",
    "ORDER",
    "grad_chunk",
    "grad_parallel",
    "cgrad_chunk",
    "cgrad_parallel",
    "jac_chunk",
    "jac_parallel",
    "cjac_chunk",
    "cjac_parallel",
    "mse_residual",
    "mse_residual_parallel",
    "mse_stencil_sums",
    "mse_stencil_sums_parallel",
    "mse_numgrad_combine",
    "mse_numgrad",
    "mse_numgrad_parallel",
    "COL_CHUNK",
]

FORWARD, BACKWARD, CENTRAL, FIVE_POINT, COMPLEX = 0, 1, 2, 3, 4
METHOD_CODES = {"forward": FORWARD, "backward": BACKWARD, "central": CENTRAL,
                "five-point": FIVE_POINT, "complex": COMPLEX}
ORDER = (1, 1, 2, 4, 2)  # truncation order p of each method



# ---------------------------------------------------------------------------
# Gradient of a scalar f


@njit(**NUMBA_USER_FLAGS)
def grad_chunk(f, x, h, method, f0, args, lo, hi, full, eps, out, err):
    r"""Difference quotients ``out[j] ~ df/dx_j`` for ``lo <= j < hi`` on a private copy of x.

    ``method`` is FORWARD, BACKWARD, CENTRAL or FIVE_POINT; ``f0 = f(x)`` (used by
    forward/backward).  With ``full`` also ``err[j]`` (Richardson + rounding).
    """
    xc = x.copy()  # the only array f sees: private to this chunk
    flat = xc.reshape(xc.size)
    xflat = x.reshape(x.size)
    p = 1.0
    if method == CENTRAL:
        p = 2.0
    elif method == FIVE_POINT:
        p = 4.0
    rich = 2.0**p / (2.0**p - 1.0)
    for j in range(lo, hi):
        x_j = np.float64(xflat[j])
        d_h = 0.0
        a_h = 0.0
        for rep in range(2 if full else 1):
            h_j = h[j] if rep == 0 else 0.5 * h[j]
            if method == FORWARD:
                flat[j] = x_j + h_j
                dx = np.float64(flat[j]) - x_j
                f_p = np.float64(f(xc, *args))
                d = (f_p - f0) / dx
                a = (abs(f_p) + abs(f0)) / dx
            elif method == BACKWARD:
                flat[j] = x_j - h_j
                dx = x_j - np.float64(flat[j])
                f_m = np.float64(f(xc, *args))
                d = (f0 - f_m) / dx
                a = (abs(f0) + abs(f_m)) / dx
            elif method == CENTRAL:
                flat[j] = x_j + h_j
                v_p = np.float64(flat[j])
                f_p = np.float64(f(xc, *args))
                flat[j] = x_j - (v_p - x_j)
                v_m = np.float64(flat[j])
                f_m = np.float64(f(xc, *args))
                d = (f_p - f_m) / (v_p - v_m)
                a = (abs(f_p) + abs(f_m)) / (v_p - v_m)
            else:  # FIVE_POINT: the stencil x +- hh, x +- 2hh with hh representable
                flat[j] = x_j + h_j
                hh = np.float64(flat[j]) - x_j
                f_p1 = np.float64(f(xc, *args))
                flat[j] = x_j - hh
                f_m1 = np.float64(f(xc, *args))
                flat[j] = x_j + 2.0 * hh
                f_p2 = np.float64(f(xc, *args))
                flat[j] = x_j - 2.0 * hh
                f_m2 = np.float64(f(xc, *args))
                d = ((f_m2 - f_p2) + 8.0 * (f_p1 - f_m1)) / (12.0 * hh)
                a = ((abs(f_m2) + abs(f_p2)) + 8.0 * (abs(f_p1) + abs(f_m1))) / (12.0 * hh)
            flat[j] = xflat[j]
            if rep == 0:
                d_h = d
                a_h = a
            else:
                err[j] = abs(d_h - d) * rich + eps * a_h
        out[j] = d_h


@njit(**NUMBA_USER_PARALLEL_FLAGS)
def grad_parallel(f, x, h, method, f0, args, n_chunks, full, eps, out, err):
    """:func:`grad_chunk` over ``n_chunks`` fixed chunks of the elements, in parallel."""
    n = x.size
    for c in prange(n_chunks):
        grad_chunk(f, x, h, method, f0, args, c * n // n_chunks, (c + 1) * n // n_chunks,
                   full, eps, out, err)


@njit(**NUMBA_USER_FLAGS)
def cgrad_chunk(f, xz, h, args, lo, hi, full, eps, out, err):
    r"""Complex step ``out[j] = Im f(x + i h_j e_j) / h_j`` for ``lo <= j < hi``.

    ``xz`` is x as a complex array (complex64 for float32 x); a private copy is
    perturbed.  With ``full`` also ``err[j]`` (Richardson + rounding).
    """
    xc = xz.copy()
    flat = xc.reshape(xc.size)
    xflat = xz.reshape(xz.size)
    for j in range(lo, hi):
        x_j = xflat[j]
        d_h = 0.0
        a_h = 0.0
        for rep in range(2 if full else 1):
            h_j = h[j] if rep == 0 else 0.5 * h[j]
            flat[j] = x_j + 1j * h_j
            hh = np.float64(flat[j].imag)
            v = f(xc, *args)
            d = np.float64(v.imag) / hh
            a = abs(d)
            if rep == 0:
                d_h = d
                a_h = a
            else:
                err[j] = abs(d_h - d) * (4.0 / 3.0) + eps * a_h
        flat[j] = x_j
        out[j] = d_h


@njit(**NUMBA_USER_PARALLEL_FLAGS)
def cgrad_parallel(f, xz, h, args, n_chunks, full, eps, out, err):
    """:func:`cgrad_chunk` over ``n_chunks`` fixed chunks, in parallel."""
    n = xz.size
    for c in prange(n_chunks):
        cgrad_chunk(f, xz, h, args, c * n // n_chunks, (c + 1) * n // n_chunks, full, eps, out, err)


# ---------------------------------------------------------------------------
# Jacobian of an array-valued f: out (m, n), out[:, j] = d vec(f) / dx_j


@njit(**NUMBA_USER_FLAGS)
def jac_chunk(f, x, h, method, f0, args, lo, hi, out):
    r"""Columns ``lo <= j < hi`` of the Jacobian ``out[:, j] ~ d ravel(f) / dx_j``.

    ``f0`` is ``ravel(f(x))`` as float64 (used by forward/backward); f must
    return an array of ``out.shape[0]`` elements at every point.
    """
    m = out.shape[0]
    xc = x.copy()
    flat = xc.reshape(xc.size)
    xflat = x.reshape(x.size)
    for j in range(lo, hi):
        x_j = np.float64(xflat[j])
        h_j = h[j]
        if method == FORWARD:
            flat[j] = x_j + h_j
            dx = np.float64(flat[j]) - x_j
            f_p = np.ravel(f(xc, *args)).astype(np.float64)
            if f_p.size != m:
                raise ValueError("f returned arrays of different sizes at different points")
            col = (f_p - f0) / dx
        elif method == BACKWARD:
            flat[j] = x_j - h_j
            dx = x_j - np.float64(flat[j])
            f_m = np.ravel(f(xc, *args)).astype(np.float64)
            if f_m.size != m:
                raise ValueError("f returned arrays of different sizes at different points")
            col = (f0 - f_m) / dx
        elif method == CENTRAL:
            flat[j] = x_j + h_j
            v_p = np.float64(flat[j])
            f_p = np.ravel(f(xc, *args)).astype(np.float64)
            flat[j] = x_j - (v_p - x_j)
            v_m = np.float64(flat[j])
            f_m = np.ravel(f(xc, *args)).astype(np.float64)
            if f_p.size != m or f_m.size != m:
                raise ValueError("f returned arrays of different sizes at different points")
            col = (f_p - f_m) / (v_p - v_m)
        else:
            flat[j] = x_j + h_j
            hh = np.float64(flat[j]) - x_j
            f_p1 = np.ravel(f(xc, *args)).astype(np.float64)
            flat[j] = x_j - hh
            f_m1 = np.ravel(f(xc, *args)).astype(np.float64)
            flat[j] = x_j + 2.0 * hh
            f_p2 = np.ravel(f(xc, *args)).astype(np.float64)
            flat[j] = x_j - 2.0 * hh
            f_m2 = np.ravel(f(xc, *args)).astype(np.float64)
            if f_p1.size != m or f_m1.size != m or f_p2.size != m or f_m2.size != m:
                raise ValueError("f returned arrays of different sizes at different points")
            col = ((f_m2 - f_p2) + 8.0 * (f_p1 - f_m1)) / (12.0 * hh)
        flat[j] = xflat[j]
        for i in range(m):
            out[i, j] = col[i]


@njit(**NUMBA_USER_PARALLEL_FLAGS)
def jac_parallel(f, x, h, method, f0, args, n_chunks, out):
    """:func:`jac_chunk` over ``n_chunks`` fixed chunks of the columns, in parallel."""
    n = x.size
    for c in prange(n_chunks):
        jac_chunk(f, x, h, method, f0, args, c * n // n_chunks, (c + 1) * n // n_chunks, out)


@njit(**NUMBA_USER_FLAGS)
def cjac_chunk(f, xz, h, args, lo, hi, out):
    """Complex-step Jacobian columns: ``out[:, j] = Im ravel(f(x + i h_j e_j)) / h_j``."""
    m = out.shape[0]
    xc = xz.copy()
    flat = xc.reshape(xc.size)
    xflat = xz.reshape(xz.size)
    for j in range(lo, hi):
        x_j = xflat[j]
        flat[j] = x_j + 1j * h[j]
        hh = np.float64(flat[j].imag)
        v = np.ravel(f(xc, *args))
        if v.size != m:
            raise ValueError("f returned arrays of different sizes at different points")
        flat[j] = x_j
        for i in range(m):
            out[i, j] = np.float64(v[i].imag) / hh


@njit(**NUMBA_USER_PARALLEL_FLAGS)
def cjac_parallel(f, xz, h, args, n_chunks, out):
    """:func:`cjac_chunk` over ``n_chunks`` fixed chunks of the columns, in parallel."""
    n = xz.size
    for c in prange(n_chunks):
        cjac_chunk(f, xz, h, args, c * n // n_chunks, (c + 1) * n // n_chunks, out)


# ---------------------------------------------------------------------------
# mse_numgrad: perturbed MSE losses from the reused residual

COL_CHUNK = 64  # columns of A per parallel task (independent of the thread count)


@njit(**NUMBA_FLAGS)
def _residual_row(A, Y, WT, R, i):
    r"""Row i of the residual: ``R[i, k] = y_ik - sum_l a_il w_lk`` (float64)."""
    D = A.shape[1]
    for k in range(Y.shape[1]):
        s = 0.0
        for l in range(D):
            s += A[i, l] * WT[k, l]
        R[i, k] = Y[i, k] - s


@njit(**NUMBA_FLAGS)
def mse_residual(A, Y, WT, R):
    r"""``R[i, k] = y_ik - sum_l a_il w_lk`` (float64), serial."""
    for i in range(A.shape[0]):
        _residual_row(A, Y, WT, R, i)


@njit(**NUMBA_PARALLEL_FLAGS)
def mse_residual_parallel(A, Y, WT, R):
    """:func:`mse_residual`, rows spread over the threads (same values bit for bit)."""
    for i in prange(A.shape[0]):
        _residual_row(A, Y, WT, R, i)


@njit(**NUMBA_FLAGS)
def _stencil(method):
    """Offsets o_m of the loss evaluations ``L(w + o_m h e_jk)`` of a method."""
    if method == FORWARD:
        return np.array([0.0, 1.0])
    if method == BACKWARD:
        return np.array([-1.0, 0.0])
    if method == CENTRAL:
        return np.array([-1.0, 1.0])
    if method == FIVE_POINT:
        return np.array([-2.0, -1.0, 1.0, 2.0])
    return np.array([1.0])  # COMPLEX: one evaluation at w + i h e_jk


@njit(**NUMBA_FLAGS)
def _band_sq(A, R, hh, o, k, ju, t):
    r"""``t[j] += sum_i (r_ik - o (hh_j a_i,ju+j))^2`` over every row i, in row order.

    ``ju`` is the band's first column as an unsigned integer: unsigned indices
    skip Numba's negative-index wraparound, so the loads of A are contiguous
    vector loads (not gathers).  Rows go in blocks of 4 so that each t[j] is
    loaded and stored once per block; the additions stay in row order.
    """
    N = A.shape[0]
    n = t.size
    i = 0
    while i + 4 <= N:
        r0 = R[i, k]
        r1 = R[i + 1, k]
        r2 = R[i + 2, k]
        r3 = R[i + 3, k]
        for j in range(n):
            h_j = hh[j]
            c = ju + np.uint64(j)
            u = r0 - o * (h_j * A[i, c])
            s = t[j] + u * u
            u = r1 - o * (h_j * A[i + 1, c])
            s += u * u
            u = r2 - o * (h_j * A[i + 2, c])
            s += u * u
            u = r3 - o * (h_j * A[i + 3, c])
            t[j] = s + u * u
        i += 4
    while i < N:
        r_ik = R[i, k]
        for j in range(n):
            u = r_ik - o * (hh[j] * A[i, ju + np.uint64(j)])
            t[j] += u * u
        i += 1


@njit(**NUMBA_FLAGS)
def _band_sq2(A, R, hh, o0, o1, k, ju, t0, t1):
    """:func:`_band_sq` for two offsets at once (one pass over the band for both sums)."""
    N = A.shape[0]
    n = t0.size
    i = 0
    while i + 4 <= N:
        r0 = R[i, k]
        r1 = R[i + 1, k]
        r2 = R[i + 2, k]
        r3 = R[i + 3, k]
        for j in range(n):
            h_j = hh[j]
            c = ju + np.uint64(j)
            d = h_j * A[i, c]
            u0 = r0 - o0 * d
            u1 = r0 - o1 * d
            s0 = t0[j] + u0 * u0
            s1 = t1[j] + u1 * u1
            d = h_j * A[i + 1, c]
            u0 = r1 - o0 * d
            u1 = r1 - o1 * d
            s0 += u0 * u0
            s1 += u1 * u1
            d = h_j * A[i + 2, c]
            u0 = r2 - o0 * d
            u1 = r2 - o1 * d
            s0 += u0 * u0
            s1 += u1 * u1
            d = h_j * A[i + 3, c]
            u0 = r3 - o0 * d
            u1 = r3 - o1 * d
            t0[j] = s0 + u0 * u0
            t1[j] = s1 + u1 * u1
        i += 4
    while i < N:
        r_ik = R[i, k]
        for j in range(n):
            d = hh[j] * A[i, ju + np.uint64(j)]
            u0 = r_ik - o0 * d
            u1 = r_ik - o1 * d
            t0[j] += u0 * u0
            t1[j] += u1 * u1
        i += 1


@njit(**NUMBA_FLAGS)
def _band_im(A, R, hh, k, ju, t):
    """Complex step: ``t[j] += sum_i -2 r_ik (hh_j a_ij)`` (``Im (r - i hh a)^2``), in row order."""
    N = A.shape[0]
    n = t.size
    for i in range(N):
        r2 = -2.0 * R[i, k]
        for j in range(n):
            t[j] += r2 * (hh[j] * A[i, ju + np.uint64(j)])


@njit(**NUMBA_FLAGS)
def _column_band(A, R, HH, offs, is_complex, j0, j1, T):
    r"""``T[m, k, j] = sum_i (r_ik - o_m hh_kj a_ij)^2`` for ``j0 <= j < j1``.

    For the complex step (``is_complex``) ``T[0, k, j] = Im sum_i (r_ik - i hh_kj a_ij)^2
    = -2 sum_i r_ik hh_kj a_ij``.  Per output k, passes over the rows of A's column
    band (one pass for two offsets), each sum formed in row order i = 0..N-1.
    The band's views are made once (not per row); A is indexed in place.
    """
    K = R.shape[1]
    M = offs.size
    ju = np.uint64(j0)
    for k in range(K):
        hh = HH[k, j0:j1]
        if is_complex:
            _band_im(A, R, hh, k, ju, T[0, k, j0:j1])
        elif M == 2:
            _band_sq2(A, R, hh, offs[0], offs[1], k, ju, T[0, k, j0:j1], T[1, k, j0:j1])
        else:
            for m in range(M):
                _band_sq(A, R, hh, offs[m], k, ju, T[m, k, j0:j1])


@njit(**NUMBA_FLAGS)
def mse_stencil_sums(A, R, HH, method, T):
    """Serial: every column band of :func:`_column_band` (T zero-initialised, (M, K, D))."""
    D = A.shape[1]
    offs = _stencil(method)
    n_bands = (D + COL_CHUNK - 1) // COL_CHUNK
    for b in range(n_bands):
        _column_band(A, R, HH, offs, method == COMPLEX, b * COL_CHUNK, min((b + 1) * COL_CHUNK, D), T)


@njit(**NUMBA_PARALLEL_FLAGS)
def mse_stencil_sums_parallel(A, R, HH, method, T):
    """Parallel over the column bands (each weight's sums are formed by one thread)."""
    D = A.shape[1]
    offs = _stencil(method)
    n_bands = (D + COL_CHUNK - 1) // COL_CHUNK
    for b in prange(n_bands):
        _column_band(A, R, HH, offs, method == COMPLEX, b * COL_CHUNK, min((b + 1) * COL_CHUNK, D), T)


@njit(**NUMBA_FLAGS)
def mse_numgrad_combine(R, T, HH, method, scale, out):
    r"""Form the perturbed losses and their difference quotients: ``out[j, k]``.

    ``L_m = scale (sum_{k' != k} S_k' + T[m, k, j])`` with ``S_k = sum_i r_ik^2``;
    forward ``(L_+ - L_0)/h``, backward ``(L_0 - L_-)/h``, central
    ``(L_+ - L_-)/(2h)``, five-point ``(L_-2 - 8 L_-1 + 8 L_+1 - L_+2)/(12 h)``,
    complex ``scale Im T / h``.
    """
    N, K = R.shape
    D = HH.shape[1]
    S = np.zeros(K)
    for i in range(N):
        for k in range(K):
            S[k] += R[i, k] * R[i, k]
    for k in range(K):
        rest = 0.0  # sum over the other outputs, really summed (no subtraction)
        for q in range(K):
            if q != k:
                rest += S[q]
        L0 = scale * (rest + S[k])
        for j in range(D):
            h = HH[k, j]
            if method == FORWARD:
                g = (scale * (rest + T[1, k, j]) - L0) / h
            elif method == BACKWARD:
                g = (L0 - scale * (rest + T[0, k, j])) / h
            elif method == CENTRAL:
                g = (scale * (rest + T[1, k, j]) - scale * (rest + T[0, k, j])) / (2.0 * h)
            elif method == FIVE_POINT:
                Lm2 = scale * (rest + T[0, k, j])
                Lm1 = scale * (rest + T[1, k, j])
                Lp1 = scale * (rest + T[2, k, j])
                Lp2 = scale * (rest + T[3, k, j])
                g = ((Lm2 - Lp2) + 8.0 * (Lp1 - Lm1)) / (12.0 * h)
            else:
                g = scale * T[0, k, j] / h
            out[j, k] = g


@njit(**NUMBA_FLAGS)
def mse_numgrad(A, Y, WT, HH, method, scale, out):
    r"""Serial numerical MSE gradient ``out[j, k] ~ dL/dw_jk`` (D, K), residual reused.

    ``HH`` (K, D) are the representable steps ``(w + h) - w``.  Callable from a
    user's ``@njit`` code (validated inputs, see the module docstring).
    """
    N, D = A.shape
    K = Y.shape[1]
    R = np.empty((N, K))
    mse_residual(A, Y, WT, R)
    T = np.zeros((_stencil(method).size, K, D))
    mse_stencil_sums(A, R, HH, method, T)
    mse_numgrad_combine(R, T, HH, method, scale, out)


@njit(**NUMBA_FLAGS)
def mse_numgrad_parallel(A, Y, WT, HH, method, scale, out):
    """As :func:`mse_numgrad`, rows then column bands spread over Numba's threads."""
    N, D = A.shape
    K = Y.shape[1]
    R = np.empty((N, K))
    mse_residual_parallel(A, Y, WT, R)
    T = np.zeros((_stencil(method).size, K, D))
    mse_stencil_sums_parallel(A, R, HH, method, T)
    mse_numgrad_combine(R, T, HH, method, scale, out)
