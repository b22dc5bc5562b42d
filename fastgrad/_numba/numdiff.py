r"""Numba kernels of numerical differentiation (docs/derivations.md, "Limits and finite differences").

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

(``dw_j = lim (loss(w_j + h) - loss(w_j - h)) / 2h`` -- with the ``2h`` in the
denominator, not ``/ 2*h``).  The steps actually used are the
representable ones: the perturbed entry is stored in x's dtype and the
denominator is formed from the stored values (``(x_j + h) - x_j``), so float32 x
gets exact secants.  After every evaluation the whole private copy is restored
from x, so an f that writes into its argument cannot shift the later points.
Each element's quotient depends only on f and that element, never on the
chunking, so the result is bitwise identical for every thread count.  A
plain-Python f is differenced by ``fastgrad.numdiff`` with whole-column numpy
operations (``stencil``, ``numerators``) that do this arithmetic element by
element, so both paths give the same bits.
``grad``/``grad_parallel`` (and ``cgrad``, ``jac``, ``cjac``) are one body over
fixed chunks (:func:`chunk_count`) compiled for the serial and the parallel
target (``jit_targets``); ``grad_into`` & co. are the protocol (inputs, ``out``,
``n_threads``) that ``fastgrad.numdiff`` calls: the parallel target on several
threads, the chunk kernel over all elements on one.

Exceptions.  Numba does not carry an exception raised inside a ``prange`` body
back to the caller (numba#2811): the iteration simply stops.  So every parallel
body takes ``status`` (one byte per chunk, set to 1 by the caller) and clears
its chunk's byte only after the chunk's last evaluation; the protocol then runs
every chunk whose byte is still set serially, where f's own exception surfaces
with its message (:func:`_run_user`).

First contact.  A kernel that takes the user's dispatcher as an argument is
specialised on that dispatcher: it cannot be cached and is recompiled in every
process (1-2 s for numgrad, 3 s for numjac).  For the common call -- no extra
args, float32/float64 x of one or two dimensions, f returning a float (numgrad)
or a C-contiguous array (numjac) -- the protocol instead passes f as a Numba
first-class function (``numba.types.FunctionType`` of f's own compiled
signature) to drivers compiled for that signature with ``cache=True``
(:func:`_first_class`): a new process then compiles only the user's f.  The
drivers are the same bodies as the chunk and parallel kernels, called through
f's native entry point (exceptions propagate), with the same flags: the bits are
those of the per-f kernels.

With ``full`` the quotient is also formed at ``h/2`` and ``err[j]`` is the
Richardson estimate ``|D(h) - D(h/2)| 2^p / (2^p - 1)`` (p the method's order)
plus the rounding bound ``eps sum_k |c_k f_k| / h`` (formed only with ``full``).

**The MSE's own numerical gradient** (``mse_numgrad``): with ``r = y - A w``
(N, K), the loss at ``w + o h e_jk`` is really evaluated, reusing the residual::

    L(w + o h e_jk) = scale * ( sum_{k' != k} sum_i r_ik'^2  +  sum_i (r_ik - o h a_ij)^2 )

an O(N) sum per perturbation, O(N D K) for the whole gradient (not O(N D^2 K)).
Every row's perturbed squared residuals ``(r_ik - o h a_ij)^2`` are formed and
their weighted difference (the method's numerator, e.g. ``L(w + h e_jk) -
L(w - h e_jk)`` for central differences) is summed row by row: the common part
of the perturbed losses cancels exactly and the difference is never taken of
two large rounded sums, so the error does not grow with N (it stays below that
of differencing two separately summed losses, as scipy's 3-point rule does).

Preconditions (the caller's duty, done by ``fastgrad.numdiff``): x is a
C-contiguous float32/float64 array owned by fastgrad; ``h`` a float64 array of
x.size finite positive steps whose ``x + h`` differs from x in x's dtype;
``out``/``err`` float64 arrays of x.size (or (m, x.size) for the Jacobian).
For the MSE kernels: A (N, D), Y (N, K) C-contiguous float32/float64, WT (K, D)
and H (K, D) float64, ``out`` (D, K) float64.

Compile flags: the kernels that take a user's function as a dispatcher are
compiled with ``cache=False`` (Numba cannot cache a kernel specialised on a
dispatcher: it would recompile and rewrite the cache on every run); all of them
without fastmath, so that the few flops of each difference quotient are
IEEE-exact and the compiled path agrees bit for bit with the Python path.
"""

from __future__ import annotations

import threading
import time
import types as _pytypes
import weakref

import numpy as np
from numba import njit, prange
from numba import types as nbt
from numba.core import cgutils
from numba.core.typing import signature as nb_signature
from numba.extending import intrinsic, overload
from numba.np.numpy_support import from_dtype as _numba_dtype

from .. import _config
from .._config import NUMBA_EXACT_FLAGS, NUMBA_FLAGS, NUMBA_USER_FLAGS
from ._targets import jit_targets, launch

__all__ = [
    "FORWARD",
    "BACKWARD",
    "CENTRAL",
    "FIVE_POINT",
    "COMPLEX",
    "METHOD_CODES",
    "ORDER",
    "grad_chunk",
    "grad",
    "grad_parallel",
    "grad_into",
    "agrad_chunk",
    "agrad",
    "agrad_parallel",
    "agrad_into",
    "cgrad_chunk",
    "cgrad",
    "cgrad_parallel",
    "cgrad_into",
    "jac_chunk",
    "jac",
    "jac_parallel",
    "jac_into",
    "cjac_chunk",
    "cjac",
    "cjac_parallel",
    "cjac_into",
    "sjac_chunk",
    "sjac",
    "sjac_parallel",
    "sjac_into",
    "chunk_count",
    "driver_ready",
    "timed_call",
    "mse_numgrad_combine",
    "mse_numgrad",
    "mse_numgrad_parallel",
    "mse_numgrad_into",
    "COL_CHUNK",
]

METHOD_CODES = _config.METHOD_CODES
FORWARD, BACKWARD, CENTRAL, FIVE_POINT, COMPLEX = (METHOD_CODES[m] for m in
                                                   ("forward", "backward", "central", "five-point", "complex"))
ORDER = _config.METHOD_ORDER  # truncation order p of each method


# ---------------------------------------------------------------------------
# Array copies of the chunk kernels: numpy in their Python path, loops compiled
#
# A slice assignment (``a[:] = b``) costs Numba ~2 s of compile time per site;
# these helpers are a numpy expression when a chunk kernel runs as Python (its
# ``py_func``, for a plain-Python f) and a plain loop when it is compiled.


def _assign(dst, src):
    """``dst[...] = src`` for 1-D arrays of one size (the value converted to dst's dtype)."""
    dst[...] = src


def _imag_over(dst, v, hh):
    """``dst[...] = Im(v) / hh`` in float64, v a 1-D complex array; NaN where ``Re(v)`` is NaN
    (f returned NaN there: ``NaN + 0j`` has a finite imaginary part)."""
    dst[...] = np.where(np.isnan(v.real), np.nan, v.imag.astype(np.float64) / hh)


@overload(_assign, jit_options={"nogil": True})
def _assign_compiled(dst, src):
    def impl(dst, src):
        for i in range(dst.size):
            dst[i] = src[i]

    return impl


@overload(_imag_over, jit_options={"nogil": True})
def _imag_over_compiled(dst, v, hh):
    def impl(dst, v, hh):
        for i in range(dst.size):
            d = np.float64(v[i].imag) / hh
            dst[i] = d if v[i].real == v[i].real else np.nan

    return impl


# ---------------------------------------------------------------------------
# Gradient of a scalar f


@njit(**NUMBA_USER_FLAGS)
def grad_chunk(f, x, h, method, f0, args, lo, hi, full, eps, out, err):
    r"""Difference quotients ``out[j] ~ df/dx_j`` for ``lo <= j < hi`` on a private copy of x.

    ``method`` is FORWARD, BACKWARD, CENTRAL or FIVE_POINT; ``f0 = f(x)`` (used by
    forward/backward).  With ``full`` also ``err[j]`` (Richardson + rounding).
    The stencil's points are visited in one loop (one call of f, one restore of
    the private copy: small compiled code); each is derived from the first
    stored point ``v0 = x_j + h`` (``x_j - h`` backward), so the steps are the
    representable ones.
    """
    xc = x.copy()  # the only array f sees: private to this chunk
    flat = xc.reshape(xc.size)
    xflat = x.reshape(x.size)
    p = 1.0
    points = 1
    if method == CENTRAL:
        p = 2.0
        points = 2
    elif method == FIVE_POINT:
        p = 4.0
        points = 4
    rich = 2.0**p / (2.0**p - 1.0)
    fv = np.zeros(4)  # f at the stencil's points
    for j in range(lo, hi):
        x_j = np.float64(xflat[j])
        d_h = 0.0
        a_h = 0.0
        for rep in range(2 if full else 1):
            h_j = h[j] if rep == 0 else 0.5 * h[j]
            v0 = 0.0
            v1 = 0.0
            for k in range(points):
                if k == 0:
                    flat[j] = x_j - h_j if method == BACKWARD else x_j + h_j
                    v0 = np.float64(flat[j])
                elif k == 1:
                    flat[j] = x_j - (v0 - x_j)
                    v1 = np.float64(flat[j])
                elif k == 2:
                    flat[j] = x_j + 2.0 * (v0 - x_j)
                else:
                    flat[j] = x_j - 2.0 * (v0 - x_j)
                fv[k] = np.float64(f(xc, *args))
                _assign(flat, xflat)  # f may have written into its argument
            bound = full and rep == 0  # the rounding term of err: only with full (it may overflow)
            if method == FORWARD:
                dx = v0 - x_j
                d = (fv[0] - f0) / dx
                if bound:
                    a_h = (abs(fv[0]) + abs(f0)) / dx
            elif method == BACKWARD:
                dx = x_j - v0
                d = (f0 - fv[0]) / dx
                if bound:
                    a_h = (abs(f0) + abs(fv[0])) / dx
            elif method == CENTRAL:
                d = (fv[0] - fv[1]) / (v0 - v1)
                if bound:
                    a_h = (abs(fv[0]) + abs(fv[1])) / (v0 - v1)
            else:  # FIVE_POINT: x +- hh, x +- 2hh with hh = v0 - x_j representable
                hh = v0 - x_j
                d = ((fv[3] - fv[2]) + 8.0 * (fv[0] - fv[1])) / (12.0 * hh)
                if bound:
                    a_h = ((abs(fv[3]) + abs(fv[2])) + 8.0 * (abs(fv[0]) + abs(fv[1]))) / (12.0 * hh)
            if rep == 0:
                d_h = d
            else:
                err[j] = abs(d_h - d) * rich + eps * a_h
        out[j] = d_h


def _grad(f, x, h, method, f0, args, n_chunks, full, eps, out, err, status):
    """:func:`grad_chunk` over ``n_chunks`` fixed chunks (``prange``: by target); ``status[c] = 0`` when c is done."""
    n = x.size
    for c in prange(n_chunks):
        grad_chunk(f, x, h, method, f0, args, c * n // n_chunks, (c + 1) * n // n_chunks,
                   full, eps, out, err)
        status[c] = 0


grad, grad_parallel = jit_targets(_grad, NUMBA_USER_FLAGS)


@njit(**NUMBA_USER_FLAGS)
def cgrad_chunk(f, xz, h, args, lo, hi, full, eps, out, err):
    r"""Complex step ``out[j] = Im f(x + i h_j e_j) / h_j`` for ``lo <= j < hi``.

    ``xz`` is x as a complex array (complex64 for float32 x); a private copy is
    perturbed (and restored after every evaluation).  With ``full`` also
    ``err[j]`` (Richardson + rounding).
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
            _assign(flat, xflat)  # f may have written into its argument
            d = np.float64(v.imag) / hh
            if v.real != v.real:  # f returned NaN (NaN + 0j has a finite imaginary part)
                d = np.nan
            if rep == 0:
                d_h = d
                a_h = abs(d)
            else:
                err[j] = abs(d_h - d) * (4.0 / 3.0) + eps * a_h
        out[j] = d_h


def _cgrad(f, xz, h, args, n_chunks, full, eps, out, err, status):
    """:func:`cgrad_chunk` over ``n_chunks`` fixed chunks (``prange``: by target); ``status[c] = 0`` when done."""
    n = xz.size
    for c in prange(n_chunks):
        cgrad_chunk(f, xz, h, args, c * n // n_chunks, (c + 1) * n // n_chunks, full, eps, out, err)
        status[c] = 0


cgrad, cgrad_parallel = jit_targets(_cgrad, NUMBA_USER_FLAGS)


# ---------------------------------------------------------------------------
# Jacobian of an array-valued f: out (m, n), out[:, j] = d vec(f) / dx_j


@njit(**NUMBA_USER_FLAGS)
def jac_chunk(f, x, h, method, f0, args, lo, hi, out):
    r"""Columns ``lo <= j < hi`` of the Jacobian ``out[:, j] ~ d ravel(f) / dx_j``.

    ``f0`` is ``ravel(f(x))`` as float64 (used by forward/backward); f must
    return an array of ``out.shape[0]`` elements at every point.  The stencil's
    points as in :func:`grad_chunk`; each result is copied into ``fv`` before
    the private copy of x is restored, so an f that returns (a view of) its
    argument is differentiated correctly.
    """
    m = out.shape[0]
    xc = x.copy()
    flat = xc.reshape(xc.size)
    xflat = x.reshape(x.size)
    points = 1
    if method == CENTRAL:
        points = 2
    elif method == FIVE_POINT:
        points = 4
    fv = np.zeros((4, m))  # ravel f at the stencil's points
    for j in range(lo, hi):
        x_j = np.float64(xflat[j])
        h_j = h[j]
        v0 = 0.0
        v1 = 0.0
        for k in range(points):
            if k == 0:
                flat[j] = x_j - h_j if method == BACKWARD else x_j + h_j
                v0 = np.float64(flat[j])
            elif k == 1:
                flat[j] = x_j - (v0 - x_j)
                v1 = np.float64(flat[j])
            elif k == 2:
                flat[j] = x_j + 2.0 * (v0 - x_j)
            else:
                flat[j] = x_j - 2.0 * (v0 - x_j)
            value = np.ravel(f(xc, *args))
            if value.size != m:
                raise ValueError("f returned arrays of different sizes at different points")
            _assign(fv[k], value)
            _assign(flat, xflat)  # f may have written into its argument
        if method == FORWARD:
            col = (fv[0] - f0) / (v0 - x_j)
        elif method == BACKWARD:
            col = (f0 - fv[0]) / (x_j - v0)
        elif method == CENTRAL:
            col = (fv[0] - fv[1]) / (v0 - v1)
        else:
            hh = v0 - x_j
            col = ((fv[3] - fv[2]) + 8.0 * (fv[0] - fv[1])) / (12.0 * hh)
        _assign(out[:, j], col)


def _jac(f, x, h, method, f0, args, n_chunks, out, status):
    """:func:`jac_chunk` over ``n_chunks`` fixed chunks (``prange``: by target); ``status[c] = 0`` when done."""
    n = x.size
    for c in prange(n_chunks):
        jac_chunk(f, x, h, method, f0, args, c * n // n_chunks, (c + 1) * n // n_chunks, out)
        status[c] = 0


jac, jac_parallel = jit_targets(_jac, NUMBA_USER_FLAGS)


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
        _imag_over(out[:, j], v, hh)  # before the restore: v may be a view of xc
        _assign(flat, xflat)  # f may have written into its argument


def _cjac(f, xz, h, args, n_chunks, out, status):
    """:func:`cjac_chunk` over ``n_chunks`` fixed chunks (``prange``: by target); ``status[c] = 0`` when done."""
    n = xz.size
    for c in prange(n_chunks):
        cjac_chunk(f, xz, h, args, c * n // n_chunks, (c + 1) * n // n_chunks, out)
        status[c] = 0


cjac, cjac_parallel = jit_targets(_cjac, NUMBA_USER_FLAGS)


@njit(**NUMBA_USER_FLAGS)
def agrad_chunk(f, x, H, args, lo, hi, rounding, stop_factor, out, err):
    r"""Adaptive gradient ``out[j] ~ df/dx_j`` and its error bound ``err[j]`` for ``lo <= j < hi``.

    For each element, the central quotients ``D_k`` at the steps ``H[k, j]``
    (k = 0, 1, ...; :func:`grad_chunk`'s arithmetic) feed the Richardson
    tableau ``T[k, m] = T[k, m-1] + (T[k, m-1] - T[k-1, m-1]) / (4^m - 1)``
    row by row, with the error estimate ``max(|T[k, m] - T[k, m-1]|,
    |T[k, m] - T[k-1, m-1]|) + A_m rounding / H[k, j]`` (``A_m`` the product
    of ``(4^i + 1) / (4^i - 1)``, i <= m; a NaN error counts as infinite);
    the entry of least error so far is kept, and the element stops after row
    k >= 2 once that row's least error exceeds ``stop_factor`` times it: the
    later steps are never evaluated.  The arithmetic of
    ``fastgrad._adaptive.extrapolate`` (q = 2), element by element.  No finite
    error estimate: the last quotient, error NaN.
    """
    K = H.shape[0]
    xc = x.copy()  # the only array f sees: private to this chunk
    flat = xc.reshape(xc.size)
    xflat = x.reshape(x.size)
    prev = np.empty(K)
    row = np.empty(K)
    for j in range(lo, hi):
        x_j = np.float64(xflat[j])
        best = np.nan
        best_err = np.inf
        d = 0.0
        for k in range(K):
            h_j = H[k, j]
            flat[j] = x_j + h_j
            v0 = np.float64(flat[j])
            f_plus = np.float64(f(xc, *args))
            _assign(flat, xflat)  # f may have written into its argument
            flat[j] = x_j - (v0 - x_j)
            v1 = np.float64(flat[j])
            f_minus = np.float64(f(xc, *args))
            _assign(flat, xflat)
            d = (f_plus - f_minus) / (v0 - v1)
            row[0] = d
            if k == 0:
                prev[0] = d
                continue
            noise = rounding / h_j
            amplify = 1.0
            fac = 1.0
            least = np.inf
            for m in range(1, k + 1):
                fac = fac * 4.0
                amplify *= (fac + 1.0) / (fac - 1.0)
                t = row[m - 1] + (row[m - 1] - prev[m - 1]) / (fac - 1.0)
                e1 = abs(t - row[m - 1])
                e2 = abs(t - prev[m - 1])
                e = np.inf
                if e1 == e1 and e2 == e2:
                    e = (e1 if e1 >= e2 else e2) + amplify * noise
                    if e != e:
                        e = np.inf
                if e < best_err:
                    best = t
                    best_err = e
                if e < least:
                    least = e
                row[m] = t
            if k >= 2 and least > stop_factor * best_err:
                break
            for m in range(k + 1):
                prev[m] = row[m]
        if not np.isfinite(best_err):
            best = d  # never stopped: the last step's quotient
            best_err = np.nan
        out[j] = best
        err[j] = best_err


def _agrad(f, x, H, args, n_chunks, rounding, stop_factor, out, err, status):
    """:func:`agrad_chunk` over ``n_chunks`` fixed chunks (``prange``: by target); ``status[c] = 0`` when done."""
    n = x.size
    for c in prange(n_chunks):
        agrad_chunk(f, x, H, args, c * n // n_chunks, (c + 1) * n // n_chunks, rounding, stop_factor, out, err)
        status[c] = 0


agrad, agrad_parallel = jit_targets(_agrad, NUMBA_USER_FLAGS)


# ---------------------------------------------------------------------------
# First-class drivers: the same chunk bodies, f passed by address, cached
#
# A driver takes f as (its FunctionType, the address of its compiled entry
# point, the address of its C wrapper) and rebuilds the first-class function
# value inside (``_function_value``); the addresses are looked up once per f
# (``_first_class``), so a call costs what a call of the per-f kernel costs.
# Calls go through the entry point (Numba's calling convention): f's exceptions
# propagate as from a direct call.


def _chunk_twin(chunk):
    """A private dispatcher of a chunk kernel's body for the drivers below.

    The drivers must not call the chunk kernels themselves: once a dispatcher
    holds an overload for a first-class function type, Numba types every later
    call with a user's dispatcher against it by compiling that f for the
    function type's signature (an error for an f with extra args).
    """
    fn = getattr(chunk, "py_func", chunk)
    twin = _pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_fc", fn.__defaults__,
                                 fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_fc"
    twin.__module__ = fn.__module__
    twin.__doc__ = fn.__doc__
    return njit(**NUMBA_USER_FLAGS)(twin)


_grad_chunk_fc = _chunk_twin(grad_chunk)
_cgrad_chunk_fc = _chunk_twin(cgrad_chunk)
_jac_chunk_fc = _chunk_twin(jac_chunk)
_cjac_chunk_fc = _chunk_twin(cjac_chunk)
_agrad_chunk_fc = _chunk_twin(agrad_chunk)


@intrinsic
def _function_value(typingctx, fty_ref, jit_addr, c_addr):
    """The first-class function value of type ``fty_ref`` at the given addresses (never boxed)."""
    fty = fty_ref.instance_type

    def codegen(context, builder, signature, args):
        ptr = context.get_value_type(nbt.voidptr)
        value = cgutils.create_struct_proxy(fty)(context, builder)
        value.jit_addr = builder.inttoptr(args[1], ptr)
        value.c_addr = builder.inttoptr(args[2], ptr)
        return value._getvalue()

    return nb_signature(fty, fty_ref, jit_addr, c_addr), codegen


def _grad_fc(fty, jit_addr, c_addr, x, h, method, f0, args, lo, hi, full, eps, out, err):
    """First-class serial driver: :func:`grad_chunk` over ``[lo, hi)``."""
    _grad_chunk_fc(_function_value(fty, jit_addr, c_addr), x, h, method, f0, args, lo, hi, full, eps, out, err)


def _grad_fc_parallel(fty, jit_addr, c_addr, x, h, method, f0, args, n_chunks, full, eps, out, err, status):
    """First-class parallel driver: :func:`_grad`'s loop."""
    f = _function_value(fty, jit_addr, c_addr)
    n = x.size
    for c in prange(n_chunks):
        _grad_chunk_fc(f, x, h, method, f0, args, c * n // n_chunks, (c + 1) * n // n_chunks,
                   full, eps, out, err)
        status[c] = 0


def _cgrad_fc(fty, jit_addr, c_addr, xz, h, args, lo, hi, full, eps, out, err):
    """First-class serial driver: :func:`cgrad_chunk` over ``[lo, hi)``."""
    _cgrad_chunk_fc(_function_value(fty, jit_addr, c_addr), xz, h, args, lo, hi, full, eps, out, err)


def _cgrad_fc_parallel(fty, jit_addr, c_addr, xz, h, args, n_chunks, full, eps, out, err, status):
    """First-class parallel driver: :func:`_cgrad`'s loop."""
    f = _function_value(fty, jit_addr, c_addr)
    n = xz.size
    for c in prange(n_chunks):
        _cgrad_chunk_fc(f, xz, h, args, c * n // n_chunks, (c + 1) * n // n_chunks, full, eps, out, err)
        status[c] = 0


def _jac_fc(fty, jit_addr, c_addr, x, h, method, f0, args, lo, hi, out):
    """First-class serial driver: :func:`jac_chunk` over ``[lo, hi)``."""
    _jac_chunk_fc(_function_value(fty, jit_addr, c_addr), x, h, method, f0, args, lo, hi, out)


def _jac_fc_parallel(fty, jit_addr, c_addr, x, h, method, f0, args, n_chunks, out, status):
    """First-class parallel driver: :func:`_jac`'s loop."""
    f = _function_value(fty, jit_addr, c_addr)
    n = x.size
    for c in prange(n_chunks):
        _jac_chunk_fc(f, x, h, method, f0, args, c * n // n_chunks, (c + 1) * n // n_chunks, out)
        status[c] = 0


def _cjac_fc(fty, jit_addr, c_addr, xz, h, args, lo, hi, out):
    """First-class serial driver: :func:`cjac_chunk` over ``[lo, hi)``."""
    _cjac_chunk_fc(_function_value(fty, jit_addr, c_addr), xz, h, args, lo, hi, out)


def _cjac_fc_parallel(fty, jit_addr, c_addr, xz, h, args, n_chunks, out, status):
    """First-class parallel driver: :func:`_cjac`'s loop."""
    f = _function_value(fty, jit_addr, c_addr)
    n = xz.size
    for c in prange(n_chunks):
        _cjac_chunk_fc(f, xz, h, args, c * n // n_chunks, (c + 1) * n // n_chunks, out)
        status[c] = 0


def _agrad_fc(fty, jit_addr, c_addr, x, H, args, lo, hi, rounding, stop_factor, out, err):
    """First-class serial driver: :func:`agrad_chunk` over ``[lo, hi)``."""
    _agrad_chunk_fc(_function_value(fty, jit_addr, c_addr), x, H, args, lo, hi, rounding, stop_factor, out, err)


def _agrad_fc_parallel(fty, jit_addr, c_addr, x, H, args, n_chunks, rounding, stop_factor, out, err, status):
    """First-class parallel driver: :func:`_agrad`'s loop."""
    f = _function_value(fty, jit_addr, c_addr)
    n = x.size
    for c in prange(n_chunks):
        _agrad_chunk_fc(f, x, H, args, c * n // n_chunks, (c + 1) * n // n_chunks, rounding, stop_factor,
                        out, err)
        status[c] = 0


_F8 = nbt.Array(nbt.float64, 1, "C")
_F8_2D = nbt.Array(nbt.float64, 2, "C")
_STATUS = nbt.Array(nbt.uint8, 1, "C")
_NO_ARGS = nbt.Tuple(())
_I8, _B1, _R8 = nbt.int64, nbt.boolean, nbt.float64
_X_DTYPES = {"grad": (np.float64, np.float32), "agrad": (np.float64, np.float32), "jac": (np.float64, np.float32),
             "cgrad": (np.complex128, np.complex64), "cjac": (np.complex128, np.complex64)}
_F_SCALARS = {"grad": (nbt.float64, nbt.float32), "agrad": (nbt.float64, nbt.float32),
               "cgrad": (nbt.complex128, nbt.complex64)}
_F_ARRAYS = {"jac": (nbt.float64, nbt.float32), "cjac": (nbt.complex128, nbt.complex64)}
_BODIES = {"grad": (_grad_fc, _grad_fc_parallel), "agrad": (_agrad_fc, _agrad_fc_parallel),
           "cgrad": (_cgrad_fc, _cgrad_fc_parallel),
           "jac": (_jac_fc, _jac_fc_parallel), "cjac": (_cjac_fc, _cjac_fc_parallel)}

_drivers: dict = {}
_drivers_lock = threading.Lock()


def _signature(kind, parallel, fty, xty):
    """The explicit signature of a first-class driver (serial: lo, hi; parallel: n_chunks, status)."""
    head = (nbt.TypeRef(fty), _I8, _I8, xty, _F8)
    span = (_I8,) if parallel else (_I8, _I8)  # n_chunks, or lo, hi
    status = (_STATUS,) if parallel else ()
    if kind == "grad":
        args = head + (_I8, _R8, _NO_ARGS) + span + (_B1, _R8, _F8, _F8) + status
    elif kind == "agrad":  # H (K, n) in head's place of h
        args = head[:4] + (_F8_2D, _NO_ARGS) + span + (_R8, _R8, _F8, _F8) + status
    elif kind == "cgrad":
        args = head + (_NO_ARGS,) + span + (_B1, _R8, _F8, _F8) + status
    elif kind == "jac":
        args = head + (_I8, _F8, _NO_ARGS) + span + (_F8_2D,) + status
    else:
        args = head + (_NO_ARGS,) + span + (_F8_2D,) + status
    return nbt.void(*args)


def _type_name(t):
    return f"{t.dtype}_{t.ndim}d" if isinstance(t, nbt.Array) else str(t)


def _driver_dispatcher(kind, parallel, fty, xty, rty):
    """``(dispatcher, signature)`` of the driver of ``kind`` for one type of f, not yet compiled.

    Its own qualified name, so its own cache files.
    """
    body = _BODIES[kind][1 if parallel else 0]
    suffix = f"_{_type_name(xty)}_to_{_type_name(rty)}"
    twin = _pytypes.FunctionType(body.__code__, body.__globals__, body.__name__ + suffix,
                                 body.__defaults__, body.__closure__)
    twin.__qualname__ = body.__qualname__ + suffix
    twin.__module__ = body.__module__
    twin.__doc__ = body.__doc__
    flags = dict(NUMBA_EXACT_FLAGS, parallel=_config.NUMBA_PARALLEL_OPTIONS) if parallel else dict(NUMBA_EXACT_FLAGS)
    return njit(**flags)(twin), _signature(kind, parallel, fty, xty)


def _load_cached(disp, sig):
    """Load ``disp``'s overload for ``sig`` from Numba's on-disk cache, never compiling; True if it was there.

    What ``Dispatcher.compile`` does on a cache hit (an absent or disabled
    cache, or another Numba version's internals: False).
    """
    try:
        cres = disp._cache.load_overload(sig, disp.targetctx)
        if cres is None:
            return False
        if not cres.objectmode:
            disp.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        disp.add_overload(cres)
        disp._cache_hits[sig] += 1  # as Numba counts it (``dispatcher.stats``)
    except Exception:  # noqa: BLE001 - the caller compiles instead
        return False
    return True


_unbuilt: dict = {}  # key -> (dispatcher, signature) of a driver found in no cache, not compiled yet


def _driver(kind, parallel, fty, xty, rty, compile=True):
    """The driver of ``kind`` for f's type, None if it cannot be built.

    Loaded from the on-disk cache or compiled once per process; with
    ``compile=False`` only loaded (None when no cache holds it; the cache is
    read once per process for each driver).
    """
    key = (kind, parallel, xty, rty)
    driver = _drivers.get(key, False)
    if driver is not False:
        return driver
    if not compile and key in _unbuilt:  # in no cache when this process looked (once: reading it costs)
        return None
    with _drivers_lock:
        if key in _drivers:
            return _drivers[key]
        try:
            unbuilt = _unbuilt.pop(key, None)
            disp, sig = unbuilt or _driver_dispatcher(kind, parallel, fty, xty, rty)
            if unbuilt is not None or not _load_cached(disp, sig):
                if not compile:
                    _unbuilt[key] = (disp, sig)
                    return None
                disp.compile(sig)
            disp.disable_compile()  # as a dispatcher built with its signature: no other types
            _drivers[key] = disp
        except Exception:  # noqa: BLE001 - never fatal: the per-f kernels do the same work
            _drivers[key] = None
        return _drivers[key]


def driver_ready(kind, f, x, args, *arrays, parallel=False):
    """True when this call of ``kind`` ('grad', 'jac') needs no compile beyond f's own.

    That is, the call qualifies for a first-class driver (:func:`_first_class`)
    and the serial (``parallel``: the parallel) driver for f's type is in this
    process or in the on-disk cache (loaded here if so); or it does not
    qualify and its per-f kernel has already run in this process for the
    same types of f, x and args.  Otherwise the compiled route would compile
    a driver (a second or more) or a per-f kernel first.
    """
    fc = _first_class(kind, f, x, args, *arrays)
    if fc is None:
        record = _about(f)
        return record is not None and _per_f_key(kind, parallel, x, args) in record["kernels"]
    fty, _, _, xty, rty = fc
    return _driver(kind, parallel, fty, xty, rty, compile=False) is not None


# id(f) -> (weak reference to f, what this process knows of f: {"kernels": keys of the per-f
# kernels compiled for it, "seconds": one evaluation's cost by argument types and shapes}); by id
# because hashing a Numba dispatcher builds its Numba type (~8 us)
_known_f: dict = {}


def _about(f, create=False):
    """What this process knows of f (the dict above), None if nothing (or f is not weakly referable)."""
    ident = id(f)
    entry = _known_f.get(ident)
    if entry is not None and entry[0]() is f:
        return entry[1]
    if not create:
        return None
    try:
        ref = weakref.ref(f, lambda _, ident=ident: _known_f.pop(ident, None))
    except TypeError:
        return None
    record = {"kernels": set(), "seconds": {}}
    _known_f[ident] = (ref, record)
    return record


_LAYOUT_FLAGS = 0x0001 | 0x0002 | 0x0100 | 0x0400  # numpy's C/F-contiguous, aligned, writeable bits


def _fingerprint(a, shapes=False):
    """What Numba's type of an argument depends on, read cheaply (``numba.typeof`` costs ~20 us an
    array); with ``shapes`` also the shapes and scalar values an evaluation's cost depends on."""
    if type(a) is np.ndarray:
        return a.dtype, (a.shape if shapes else a.ndim), a.flags.num & _LAYOUT_FLAGS
    if type(a) is tuple:
        return tuple(_fingerprint(b, shapes) for b in a)
    if shapes and type(a) in (int, float, bool, complex):
        return type(a), a
    return type(a)


def _per_f_key(kind, parallel, x, args):
    """The key under which a call's per-f kernel (``kind``, serial or ``parallel``) is known to be compiled."""
    return kind, parallel, _fingerprint(x), _fingerprint(args)


def _mark_per_f(kind, parallel, f, x, args):
    """Record that the per-f kernel ran for this call's types: later such calls need no compile."""
    record = _about(f, create=True)
    if record is not None:
        record["kernels"].add(_per_f_key(kind, parallel, x, args))


def _owned(a, dtype):
    return (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
            and a.flags.aligned)


_x_types: dict = {}  # (dtype, ndim) -> Numba type of the owned C-contiguous x
_f_addresses: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # f -> {x type: (cres, fc)}


def _first_class(kind, f, x, args, *arrays):
    """``(fty, jit_addr, c_addr, x type, f's return type)`` if this call can use the drivers, else None.

    The call qualifies when args is empty, x is an owned C-contiguous array of
    one or two dimensions of a supported dtype, f is compiled for exactly x's
    type (``timed_call`` compiled it) and returns a float (grad), a complex
    (cgrad) or a C-contiguous 1-D/2-D array of a supported dtype (jac, cjac),
    and ``arrays`` (steps, out, ...) are owned float64 arrays.  f's addresses
    are looked up once per compiled signature (and kept with it).
    """
    if type(args) is not tuple or args or x.ndim not in (1, 2) or x.dtype not in _X_DTYPES[kind]:
        return None
    if not _owned(x, x.dtype) or not all(_owned(a, np.float64) for a in arrays):
        return None
    xkey = (x.dtype, x.ndim)
    xty = _x_types.get(xkey)
    if xty is None:
        xty = _x_types.setdefault(xkey, nbt.Array(_numba_dtype(x.dtype), x.ndim, "C"))
    try:
        cres = f.overloads.get((xty,))
        known = _f_addresses.get(f)
    except (AttributeError, TypeError):
        return None
    if cres is None:
        return None
    if known is not None and xty in known and known[xty][0] is cres:
        fc = known[xty][1]
    else:
        fc = _addresses(f, cres, xty)
        _f_addresses.setdefault(f, {})[xty] = (cres, fc)
    if fc is None:
        return None
    rty = fc[4]
    if kind in _F_SCALARS:
        return fc if rty in _F_SCALARS[kind] else None
    if isinstance(rty, nbt.Array) and rty.dtype in _F_ARRAYS[kind]:
        return fc
    return None


def _addresses(f, cres, xty):
    """``(fty, jit_addr, c_addr, xty, rty)`` of f's compiled signature for x, None if unsupported."""
    rty = cres.signature.return_type
    if not (rty in _F_SCALARS["grad"] or rty in _F_SCALARS["cgrad"]
            or (isinstance(rty, nbt.Array) and rty.ndim in (1, 2)
                and rty == nbt.Array(rty.dtype, rty.ndim, "C"))):
        return None
    fty = nbt.FunctionType(nb_signature(rty, xty))
    try:
        from numba.experimental import function_type

        jit_addr = function_type._get_jit_address(f, fty.signature)
        c_addr = function_type._get_wrapper_address(f, fty.signature)
    except Exception:  # noqa: BLE001 - another Numba version: the per-f kernels
        return None
    if not (isinstance(jit_addr, int) and jit_addr > 0 and isinstance(c_addr, int) and c_addr > 0):
        return None
    return fty, jit_addr, c_addr, xty, rty


def _kernels(kind, f, x, args, arrays, chunk, parallel):
    """``(serial, parallel)`` callables of a call: the cached first-class drivers where the call qualifies.

    ``serial(f, *rest)`` and ``parallel(f, *rest)`` take the per-f kernels'
    arguments.  Each driver is compiled (or loaded from the cache) on its first
    use, so a serial call never builds the parallel one; a driver that cannot
    be built falls back to the per-f kernel (same arithmetic, same bits).  A
    call that does not qualify runs the per-f kernels and records that they
    are compiled for its types (:func:`driver_ready`).
    """
    fc = _first_class(kind, f, x, args, *arrays)
    if fc is None:
        # recorded when the call added a compiled signature (compiled, or loaded from a cache)
        def serial_pf(f, *rest):
            compiled = len(chunk.overloads)
            chunk(f, *rest)
            if len(chunk.overloads) != compiled:
                _mark_per_f(kind, False, f, x, args)

        def parallel_pf(f, *rest):
            compiled = len(parallel.overloads)
            parallel(f, *rest)
            if len(parallel.overloads) != compiled:
                _mark_per_f(kind, True, f, x, args)

        return serial_pf, parallel_pf
    fty, jit_addr, c_addr, xty, rty = fc

    def serial_fc(f, *rest):
        driver = _driver(kind, False, fty, xty, rty)
        return chunk(f, *rest) if driver is None else driver(fty, jit_addr, c_addr, *rest)

    def parallel_fc(f, *rest):
        driver = _driver(kind, True, fty, xty, rty)
        return parallel(f, *rest) if driver is None else driver(fty, jit_addr, c_addr, *rest)

    return serial_fc, parallel_fc


# ---------------------------------------------------------------------------
# Protocol of the user-function kernels: validated inputs, out (and err), n_threads


def chunk_count(n, n_threads):
    """Fixed chunks of n elements for ``n_threads`` threads: 4 per thread (balance), 1 serially.

    Each element's quotient depends only on f and that element, never on the
    chunks: every count gives the same bits.
    """
    return 1 if n_threads <= 1 else max(1, min(n, 4 * n_threads))


def _run_user(serial, parallel, n, n_threads):
    """Run a kernel over a user's f: ``serial(lo, hi)`` on one thread, else ``parallel(n_chunks, status)``.

    ``status`` starts at 1 for every chunk and a chunk clears its byte when its
    last evaluation is done.  An exception raised by f in a parallel region is
    lost on the way out (numba#2811) and ends its chunk early: every chunk still
    marked is run again serially, where f's own exception propagates.  If the
    parallel launch itself raised (a compile error, or a Numba version that
    does report the failure as an opaque error), the unfinished chunks are run
    serially the same way, and that error is re-raised if they pass.
    """
    if n_threads <= 1:
        serial(0, n)
        return
    nc = chunk_count(n, n_threads)
    buffers = getattr(_status, "buffers", None)
    if buffers is None:
        buffers = _status.buffers = {}
    # this thread's status bytes for nc chunks, taken out while in use: a fresh array costs ~10 us
    # after a kernel has run (numpy's allocation path is no longer in the caches)
    status = buffers.pop(nc, None)
    if status is None:
        status = np.empty(nc, dtype=np.uint8)
    status.fill(1)
    failure = None
    try:
        launch(None, parallel, n_threads, nc, status)
    except Exception as exc:  # noqa: BLE001 - re-raised below unless the serial run raises f's own
        failure = exc
    if failure is not None or status.any():
        for c in np.flatnonzero(status):
            serial(int(c) * n // nc, (int(c) + 1) * n // nc)
    buffers[nc] = status
    if failure is not None:
        raise failure


_status = threading.local()  # ``buffers``: this thread's status bytes, by chunk count


# Serial runs call the chunk kernel over [0, n), the serial target's one chunk bit for bit: that target
# costs an extra compile per user f (cache=False), measured ~0.5 s a new f on the 2-core dev machine.


def grad_into(f, x, h, method, f0, args, full, eps, out, err, n_threads):
    """Protocol: :func:`grad_chunk` over every element of x into ``out``/``err``, ``n_threads`` threads."""
    serial, parallel = _kernels("grad", f, x, args, (h, out, err), grad_chunk, grad_parallel)
    f0 = float(f0)
    _run_user(lambda lo, hi: serial(f, x, h, method, f0, args, lo, hi, full, eps, out, err),
              lambda nc, status: parallel(f, x, h, method, f0, args, nc, full, eps, out, err, status),
              x.size, n_threads)


def agrad_into(f, x, H, args, rounding, stop_factor, out, err, n_threads):
    """Protocol: the adaptive gradient (:func:`agrad_chunk`) of every element of x into ``out``/``err``."""
    serial, parallel = _kernels("agrad", f, x, args, (H, out, err), agrad_chunk, agrad_parallel)
    rounding = float(rounding)
    stop_factor = float(stop_factor)
    _run_user(lambda lo, hi: serial(f, x, H, args, lo, hi, rounding, stop_factor, out, err),
              lambda nc, status: parallel(f, x, H, args, nc, rounding, stop_factor, out, err, status),
              x.size, n_threads)


def cgrad_into(f, xz, h, args, full, eps, out, err, n_threads):
    """Protocol: :func:`cgrad_chunk` over every element of ``xz`` into ``out``/``err``."""
    serial, parallel = _kernels("cgrad", f, xz, args, (h, out, err), cgrad_chunk, cgrad_parallel)
    _run_user(lambda lo, hi: serial(f, xz, h, args, lo, hi, full, eps, out, err),
              lambda nc, status: parallel(f, xz, h, args, nc, full, eps, out, err, status),
              xz.size, n_threads)


def jac_into(f, x, h, method, f0, args, out, n_threads):
    """Protocol: every column of the Jacobian (:func:`jac_chunk`) into ``out`` (m, x.size)."""
    serial, parallel = _kernels("jac", f, x, args, (h, f0, out), jac_chunk, jac_parallel)
    _run_user(lambda lo, hi: serial(f, x, h, method, f0, args, lo, hi, out),
              lambda nc, status: parallel(f, x, h, method, f0, args, nc, out, status),
              x.size, n_threads)


def cjac_into(f, xz, h, args, out, n_threads):
    """Protocol: every column of the complex-step Jacobian (:func:`cjac_chunk`) into ``out``."""
    serial, parallel = _kernels("cjac", f, xz, args, (h, out), cjac_chunk, cjac_parallel)
    _run_user(lambda lo, hi: serial(f, xz, h, args, lo, hi, out),
              lambda nc, status: parallel(f, xz, h, args, nc, out, status),
              xz.size, n_threads)


# ---------------------------------------------------------------------------
# How long one evaluation of an @njit f takes (serial or parallel?)


@njit(**NUMBA_FLAGS)
def _noop(x):
    return 0.0


@njit(**NUMBA_FLAGS)
def _noop_array(x):
    return x[:1]


_call_overhead: dict = {}  # returns an array? -> seconds of a Python call of a compiled function


def _overhead(array):
    """What calling a compiled function from Python costs (returning a float or a new array), measured once."""
    if array not in _call_overhead:
        fn = _noop_array if array else _noop
        x = np.zeros(1)
        fn(x)
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            fn(x)
            best = min(best, time.perf_counter() - t0)
        _call_overhead[array] = best
    return _call_overhead[array]


def timed_call(f, x, args, need_value=True, cheap=_config.USER_PARALLEL_MIN_NS * 1e-9):
    """``(f(copy of x, *args), seconds)``: one evaluation of an ``@njit`` f and its compiled cost.

    The seconds exclude the cost of calling a compiled function from Python.  A
    call that compiled f is timed again; so is a call cheaper than ``cheap``
    (the smaller of two times: one evaluation that a context switch made slow
    must not send a small problem to the thread pool).  An f timed before on
    arguments of the same types and shapes (so its result type is the same)
    is not evaluated without ``need_value`` (the value is then None), and is
    evaluated once, not twice, with it; the seconds are the smallest seen.
    """
    record = _about(f)
    key = (_fingerprint(x, True), _fingerprint(args, True))
    known = record["seconds"].get(key) if record is not None else None
    if known is not None and not need_value:
        return None, known
    overloads = len(getattr(f, "overloads", ()))
    xc = x.copy()
    t0 = time.perf_counter()
    value = f(xc, *args)
    seconds = time.perf_counter() - t0
    compiled = len(getattr(f, "overloads", ())) != overloads
    if compiled or (known is None and seconds < cheap):
        xc = x.copy()
        t0 = time.perf_counter()
        f(xc, *args)
        again = time.perf_counter() - t0
        seconds = again if compiled else min(seconds, again)
    seconds = max(0.0, seconds - _overhead(isinstance(value, np.ndarray)))
    if known is not None:
        seconds = min(known, seconds)
    record = record if record is not None else _about(f, create=True)
    if record is not None:
        record["seconds"][key] = seconds
    return value, seconds


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


# Rows per partial sum of the differences: each weight's sum over the rows is
# formed in chunks of ROW_CHUNK rows, the chunk sums added in row order, so the
# rounding of the running sum grows with ROW_CHUNK + N / ROW_CHUNK, not with N.
ROW_CHUNK = 256


@njit(**NUMBA_FLAGS)
def _coefficients(method):
    """Weights c_m of the losses ``L(w + o_m h e_jk)`` in the method's numerator, and its denominator.

    forward ``L_+ - L_0``, backward ``L_0 - L_-``, central ``(L_+ - L_-) / 2``,
    five-point ``(L_-2 - 8 L_-1 + 8 L_+1 - L_+2) / 12`` (offsets as :func:`_stencil`).
    """
    if method == FIVE_POINT:
        return np.array([1.0, -8.0, 8.0, -1.0]), 12.0
    if method == CENTRAL:
        return np.array([-1.0, 1.0]), 2.0
    return np.array([-1.0, 1.0]), 1.0


@njit(**NUMBA_FLAGS)
def _band_diff(A, R, hh, offs, coefs, k, ju, t):
    r"""``t[j] += sum_i sum_m c_m (r_ik - o_m hh_j a_i,ju+j)^2`` over every row i.

    Each row's perturbed squared residuals are formed and their weighted
    difference taken at once (for two offsets ``u_1^2 - u_0^2``), then summed
    over the rows in chunks of ROW_CHUNK: the difference of the two perturbed
    losses is accumulated directly, never as the difference of two large sums
    (whose cancellation cost digits growing with N).  ``ju`` is the band's first
    column as an unsigned integer (no wraparound code on the loads of A).
    """
    N = A.shape[0]
    n = t.size
    M = offs.size
    part = np.empty(n)
    for i0 in range(0, N, ROW_CHUNK):
        part[:] = 0.0
        for i in range(i0, min(i0 + ROW_CHUNK, N)):
            r_ik = R[i, k]
            if M == 2:
                o0 = offs[0]
                o1 = offs[1]
                for j in range(n):
                    d = hh[j] * A[i, ju + np.uint64(j)]
                    u0 = r_ik - o0 * d
                    u1 = r_ik - o1 * d
                    part[j] += u1 * u1 - u0 * u0
            else:
                for j in range(n):
                    d = hh[j] * A[i, ju + np.uint64(j)]
                    acc = 0.0
                    for m in range(M):
                        u = r_ik - offs[m] * d
                        acc += coefs[m] * (u * u)
                    part[j] += acc
        for j in range(n):
            t[j] += part[j]


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
def _column_band(A, R, HH, method, j0, j1, T):
    r"""``T[0, k, j] = sum_i sum_m c_m (r_ik - o_m hh_kj a_ij)^2`` for ``j0 <= j < j1``.

    The c_m are the method's weights (:func:`_coefficients`): T holds the
    numerator of the difference quotient, accumulated row by row.  For the
    complex step ``T[0, k, j] = Im sum_i (r_ik - i hh_kj a_ij)^2
    = -2 sum_i r_ik hh_kj a_ij``.  One pass over the band's rows per output k;
    every weight's sum is formed by one thread in row order.
    """
    K = R.shape[1]
    ju = np.uint64(j0)
    offs = _stencil(method)
    coefs, _ = _coefficients(method)
    for k in range(K):
        hh = HH[k, j0:j1]
        if method == COMPLEX:
            _band_im(A, R, hh, k, ju, T[0, k, j0:j1])
        else:
            _band_diff(A, R, hh, offs, coefs, k, ju, T[0, k, j0:j1])


@njit(**NUMBA_FLAGS)
def mse_numgrad_combine(R, T, HH, method, scale, out):
    r"""The difference quotients: ``out[j, k] = scale T[0, k, j] / (q h_kj)``.

    ``T[0, k, j]`` is the numerator ``sum_m c_m (L(w + o_m h e_jk) - rest) / scale``
    accumulated row by row (the losses' common part ``rest``, the other outputs'
    and rows' squared residuals, cancels exactly and is not re-added); q the
    method's denominator: forward/backward 1, central 2, five-point 12; complex
    ``scale Im T / h``.  R (the residual) is not read.
    """
    K = T.shape[1]
    D = HH.shape[1]
    _, q = _coefficients(method)
    if method == COMPLEX:
        q = 1.0
    for k in range(K):
        for j in range(D):
            out[j, k] = scale * T[0, k, j] / (q * HH[k, j])


def _mse_numgrad(A, Y, WT, HH, method, scale, out):
    r"""Numerical MSE gradient ``out[j, k] ~ dL/dw_jk`` (D, K), residual reused.

    ``HH`` (K, D) are the representable steps ``(w + h) - w``.  The residual
    ``R[i, k] = y_ik - sum_l a_il w_lk`` row by row, then every column band of
    :func:`_column_band` (``prange``: serial or parallel by target; each
    weight's sums are formed by one thread, in row order), then the difference
    quotients.  Compiled twice below: ``mse_numgrad`` (serial, callable from a
    user's ``@njit`` code with validated inputs) and ``mse_numgrad_parallel``.
    """
    N, D = A.shape
    K = Y.shape[1]
    R = np.empty((N, K))
    for i in prange(N):
        _residual_row(A, Y, WT, R, i)
    T = np.zeros((1, K, D))
    n_bands = (D + COL_CHUNK - 1) // COL_CHUNK
    for b in prange(n_bands):
        _column_band(A, R, HH, method, b * COL_CHUNK, min((b + 1) * COL_CHUNK, D), T)
    mse_numgrad_combine(R, T, HH, method, scale, out)


mse_numgrad, mse_numgrad_parallel = jit_targets(_mse_numgrad)


def mse_numgrad_into(A, Y, WT, HH, method, scale, out, n_threads):
    """Protocol: the numerical MSE gradient into ``out`` (D, K) on ``n_threads`` threads."""
    launch(mse_numgrad, mse_numgrad_parallel, n_threads, A, Y, WT, HH, method, scale, out)


# ---------------------------------------------------------------------------
# Sparse Jacobians: f at the points of whole groups of columns
#
# Group g's point at stencil position k sets every column j of the group,
# ``changed[p]`` for ``gptr[g] <= p < gptr[g+1]``, to ``V[k, j]`` (the values
# of ``fastgrad.numdiff.stencil``, in x's dtype); ``F[k G + g] = ravel f(point)``.
# The difference quotients are formed from F by ``fastgrad.sparsity`` (the
# same arithmetic as for a Python f).  Groups are split into fixed chunks
# over the threads, each on its own private copy of x: every row of F depends
# only on its group, never on the chunking, so every thread count gives the
# same bits.


@njit(**NUMBA_USER_FLAGS)
def sjac_chunk(f, x, V, gptr, changed, args, lo, hi, F):
    r"""``F[k G + g] = ravel f(x + sum_{j in group g} (V[k, j] - x_j) e_j)`` for groups ``lo <= g < hi``.

    On a private copy of x, restored after every evaluation (f may write its
    argument; the result is copied into F before the restore, so f may also
    return a view of its argument).
    """
    G = gptr.size - 1
    K = V.shape[0]
    m = F.shape[1]
    xc = x.copy()
    flat = xc.reshape(xc.size)
    xflat = x.reshape(x.size)
    for g in range(lo, hi):
        for k in range(K):
            for p in range(gptr[g], gptr[g + 1]):
                j = changed[p]
                flat[j] = V[k, j]
            value = np.ravel(f(xc, *args))
            if value.size != m:
                raise ValueError("f returned arrays of different sizes at different points")
            _assign(F[k * G + g], value)
            _assign(flat, xflat)  # f may have written into its argument


def _sjac(f, x, V, gptr, changed, args, n_chunks, F, status):
    """:func:`sjac_chunk` over ``n_chunks`` fixed chunks of groups (``prange``: by target); ``status[c] = 0``."""
    G = gptr.size - 1
    for c in prange(n_chunks):
        sjac_chunk(f, x, V, gptr, changed, args, c * G // n_chunks, (c + 1) * G // n_chunks, F)
        status[c] = 0


sjac, sjac_parallel = jit_targets(_sjac, NUMBA_USER_FLAGS)

_sjac_chunk_fc = _chunk_twin(sjac_chunk)


def _sjac_fc(fty, jit_addr, c_addr, x, V, gptr, changed, args, lo, hi, F):
    """First-class serial driver: :func:`sjac_chunk` over groups ``[lo, hi)``."""
    _sjac_chunk_fc(_function_value(fty, jit_addr, c_addr), x, V, gptr, changed, args, lo, hi, F)


def _sjac_fc_parallel(fty, jit_addr, c_addr, x, V, gptr, changed, args, n_chunks, F, status):
    """First-class parallel driver: :func:`_sjac`'s loop."""
    f = _function_value(fty, jit_addr, c_addr)
    G = gptr.size - 1
    for c in prange(n_chunks):
        _sjac_chunk_fc(f, x, V, gptr, changed, args, c * G // n_chunks, (c + 1) * G // n_chunks, F)
        status[c] = 0


_I8_1D = nbt.Array(nbt.int64, 1, "C")
_sjac_drivers: dict = {}


def _sjac_driver(parallel, fty, xty, rty, fdtype):
    """The cached first-class driver of :func:`sjac_chunk` for f's type, None if it cannot be built."""
    key = (parallel, xty, rty)
    with _drivers_lock:
        if key not in _sjac_drivers:
            body = _sjac_fc_parallel if parallel else _sjac_fc
            suffix = f"_{_type_name(xty)}_to_{_type_name(rty)}"
            twin = _pytypes.FunctionType(body.__code__, body.__globals__, body.__name__ + suffix,
                                         body.__defaults__, body.__closure__)
            twin.__qualname__ = body.__qualname__ + suffix
            twin.__module__ = body.__module__
            twin.__doc__ = body.__doc__
            span = (_I8,) if parallel else (_I8, _I8)
            sig = nbt.void(nbt.TypeRef(fty), _I8, _I8, xty, nbt.Array(xty.dtype, 2, "C"), _I8_1D, _I8_1D,
                           _NO_ARGS, *span, nbt.Array(fdtype, 2, "C"), *((_STATUS,) if parallel else ()))
            flags = dict(NUMBA_EXACT_FLAGS)
            if parallel:
                flags["parallel"] = _config.NUMBA_PARALLEL_OPTIONS
            try:
                _sjac_drivers[key] = njit(sig, **flags)(twin)
            except Exception:  # noqa: BLE001 - never fatal: the per-f kernels do the same work
                _sjac_drivers[key] = None
        return _sjac_drivers[key]


def sjac_into(f, x, V, gptr, changed, args, F, n_threads):
    """Protocol: f at every group's points into ``F`` (K G, m), groups over ``n_threads`` threads.

    ``x`` (float or, for the complex step, complex) C-contiguous and owned,
    ``V`` (K, x.size) C-contiguous of x's dtype, ``gptr``/``changed`` int64,
    ``F`` float64 (complex128 for complex x) C-contiguous.
    """
    serial, parallel = sjac_chunk, sjac_parallel
    kind = "cjac" if np.iscomplexobj(x) else "jac"
    fc = _first_class(kind, f, x, args)
    if fc is not None:
        fty, jit_addr, c_addr, xty, rty = fc
        fdtype = nbt.complex128 if kind == "cjac" else nbt.float64

        def serial(f, *rest):  # noqa: F811 - the cached driver where it builds
            driver = _sjac_driver(False, fty, xty, rty, fdtype)
            return sjac_chunk(f, *rest) if driver is None else driver(fty, jit_addr, c_addr, *rest)

        def parallel(f, *rest):  # noqa: F811
            driver = _sjac_driver(True, fty, xty, rty, fdtype)
            return sjac_parallel(f, *rest) if driver is None else driver(fty, jit_addr, c_addr, *rest)

    _run_user(lambda lo, hi: serial(f, x, V, gptr, changed, args, lo, hi, F),
              lambda nc, status: parallel(f, x, V, gptr, changed, args, nc, F, status),
              gptr.size - 1, n_threads)
