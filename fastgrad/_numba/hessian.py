r"""Numba kernels of second derivatives of a user's function (``numhess``, ``numhess_diag``).

For a scalar ``f(x, *args)``, steps ``h`` (float64, x.size, representable:
``(x_i + h_i) - x_i == h_i`` in x's dtype) and ``f0 = f(x)``:

**Hessian** (:func:`hess_tasks`).  Each pair ``i < j`` is computed once, by the
mixed 4-point stencil, and written to both ``(i, j)`` and ``(j, i)``::

    H_ij = (f(x + h_i e_i + h_j e_j) - f(x + h_i e_i - h_j e_j)
            - f(x - h_i e_i + h_j e_j) + f(x - h_i e_i - h_j e_j)) / (4 h_i h_j)

and the diagonal by the matching stencil of spacing ``2 h_i``::

    H_ii = (f(x + 2 h_i e_i) - 2 f(x) + f(x - 2 h_i e_i)) / (4 h_i^2)

(both are the central difference of the central difference with step h).
The denominators are formed from the stored points actually evaluated
(``(p_i - m_i)(p_j - m_j)`` with ``p_i``, ``m_i`` the perturbed entries read back
in x's dtype), so a point that rounds off-centre does not bias the quotient.
That makes the result symmetric by construction (H == H.T bit for bit).

**Diagonal only** (:func:`diag_chunk`): ``(f(x + h e_i) - 2 f(x) + f(x - h e_i)) / h^2``,
2n + 1 evaluations.

With ``full`` every quotient is also formed at ``h/2`` and ``err`` is the
Richardson estimate ``|D(h) - D(h/2)| 4/3`` (order 2) plus the rounding bound
``eps sum_k |c_k f_k|``.

Work and threads.  The Hessian's pairs ``i <= j`` are grouped in tasks: task t
holds rows t and n-1-t of the upper triangle (n + 1 pairs, so every task costs
the same); ``hess_parallel`` spreads the tasks with ``prange``, each task on its
own private copy of x, restored from x after every evaluation (an f that writes
into its argument cannot shift the later points).  Each entry is computed by
the same arithmetic whichever thread runs it: the result is bitwise identical
for every thread count.  ``fastgrad.hessian`` runs a plain-Python f in a
Python loop of the same arithmetic (the same bits; tested).

Exceptions.  Numba does not carry an exception raised inside a ``prange`` body
back to the caller: the iteration stops.  Every parallel body therefore takes
``status`` (one byte per task, 1 on entry) and clears a task's byte after its
last evaluation; :func:`run_user` runs every task still marked again serially,
where f's own exception surfaces.

Preconditions (the caller's duty, done by ``fastgrad.hessian``): x an owned
C-contiguous float32/float64 array; ``h`` float64 of x.size as above; ``out``
(and ``err`` with ``full``, else any float64 array) float64 of shape (n, n)
(Hessian) or (n,) (diagonal).  Compiled with ``NUMBA_USER_FLAGS`` (no fastmath,
not cached: the kernels are specialised on the user's dispatcher).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import NUMBA_USER_FLAGS
from ._targets import jit_targets, launch

__all__ = [
    "hess_tasks",
    "hess",
    "hess_parallel",
    "hess_into",
    "diag_chunk",
    "diag",
    "diag_parallel",
    "diag_into",
    "task_count",
    "run_user",
]

_RICH = 4.0 / 3.0  # Richardson factor 2^p / (2^p - 1) of a second-order quotient


@njit(**NUMBA_USER_FLAGS)
def hess_tasks(f, x, h, f0, args, lo, hi, full, eps, out, err):
    r"""Tasks ``lo <= t < hi`` of the Hessian: rows t and n-1-t of the upper triangle, both halves written.

    ``out[i, j] = out[j, i]`` for every pair ``i <= j`` of those rows, on a private
    copy of x restored after every evaluation of f.  With ``full`` also ``err``.
    """
    n = x.size
    xc = x.copy()  # the only array f sees: private to these tasks
    flat = xc.reshape(n)
    xflat = x.reshape(n)
    fv = np.empty(4)  # f at the stencil's points
    for t in range(lo, hi):
        for side in range(2):
            i = t if side == 0 else n - 1 - t
            if side == 1 and i <= t:
                break
            x_i = np.float64(xflat[i])
            for j in range(i, n):
                x_j = np.float64(xflat[j])
                d_h = 0.0
                b_h = 0.0
                e = 0.0
                for rep in range(2 if full else 1):
                    s_i = h[i] if rep == 0 else 0.5 * h[i]
                    s_j = h[j] if rep == 0 else 0.5 * h[j]
                    diagonal = j == i
                    if diagonal:  # x_i +- 2 s_i
                        s_i = 2.0 * s_i
                    flat[i] = x_i + s_i  # the points as stored in x's dtype
                    p_i = np.float64(flat[i])
                    flat[i] = x_i - s_i
                    m_i = np.float64(flat[i])
                    flat[j] = x_j + s_j
                    p_j = np.float64(flat[j])
                    flat[j] = x_j - s_j
                    m_j = np.float64(flat[j])
                    flat[:] = xflat
                    for k in range(2 if diagonal else 4):
                        flat[i] = p_i if k % 2 == 0 else m_i
                        if not diagonal:
                            flat[j] = p_j if k < 2 else m_j
                        fv[k] = np.float64(f(xc, *args))
                        flat[:] = xflat
                    if diagonal:  # fv = f(x + 2 s e_i), f(x - 2 s e_i)
                        a = p_i - x_i
                        b = x_i - m_i
                        if a == b:
                            d = ((fv[0] - f0) + (fv[1] - f0)) / (a * a)
                        else:  # a point rounded off-centre: the 3-point formula of unequal spacing
                            d = 2.0 * ((fv[0] - f0) / a + (fv[1] - f0) / b) / (a + b)
                        bound = (abs(fv[0]) + 2.0 * abs(f0) + abs(fv[1])) / (a * b)
                    else:  # fv = f(++), f(-+), f(+-), f(--) (signs of the i, j moves)
                        den = (p_i - m_i) * (p_j - m_j)
                        d = ((fv[0] - fv[2]) - (fv[1] - fv[3])) / den
                        bound = (abs(fv[0]) + abs(fv[1]) + abs(fv[2]) + abs(fv[3])) / den
                    if rep == 0:
                        d_h = d
                        b_h = bound
                    else:
                        e = abs(d_h - d) * _RICH + eps * b_h
                out[i, j] = d_h
                out[j, i] = d_h
                if full:
                    err[i, j] = e
                    err[j, i] = e


def _hess(f, x, h, f0, args, n_tasks, full, eps, out, err, status):
    """:func:`hess_tasks`, one task per ``prange`` iteration (by target); ``status[t] = 0`` when task t is done."""
    for t in prange(n_tasks):
        hess_tasks(f, x, h, f0, args, t, t + 1, full, eps, out, err)
        status[t] = 0


hess, hess_parallel = jit_targets(_hess, NUMBA_USER_FLAGS)


@njit(**NUMBA_USER_FLAGS)
def diag_chunk(f, x, h, f0, args, lo, hi, full, eps, out, err):
    r"""``out[i] ~ d^2 f / dx_i^2 = (f(x + h e_i) - 2 f(x) + f(x - h e_i)) / h^2`` for ``lo <= i < hi``."""
    n = x.size
    xc = x.copy()
    flat = xc.reshape(n)
    xflat = x.reshape(n)
    for i in range(lo, hi):
        x_i = np.float64(xflat[i])
        d_h = 0.0
        b_h = 0.0
        for rep in range(2 if full else 1):
            s_i = h[i] if rep == 0 else 0.5 * h[i]
            flat[i] = x_i + s_i
            p = np.float64(flat[i])
            f_p = np.float64(f(xc, *args))
            flat[:] = xflat
            flat[i] = x_i - s_i
            m = np.float64(flat[i])
            f_m = np.float64(f(xc, *args))
            flat[:] = xflat
            a = p - x_i
            b = x_i - m
            if a == b:
                d = ((f_p - f0) + (f_m - f0)) / (a * a)
            else:
                d = 2.0 * ((f_p - f0) / a + (f_m - f0) / b) / (a + b)
            if rep == 0:
                d_h = d
                b_h = (abs(f_p) + 2.0 * abs(f0) + abs(f_m)) / (a * b)
            else:
                err[i] = abs(d_h - d) * _RICH + eps * b_h
        out[i] = d_h


def _diag(f, x, h, f0, args, n_chunks, full, eps, out, err, status):
    """:func:`diag_chunk` over ``n_chunks`` fixed chunks (``prange``: by target); ``status[c] = 0`` when done."""
    n = x.size
    for c in prange(n_chunks):
        diag_chunk(f, x, h, f0, args, c * n // n_chunks, (c + 1) * n // n_chunks, full, eps, out, err)
        status[c] = 0


diag, diag_parallel = jit_targets(_diag, NUMBA_USER_FLAGS)


# ---------------------------------------------------------------------------
# Protocol: validated inputs, out (and err), n_threads


def task_count(n):
    """Tasks of an n x n Hessian: rows t and n-1-t paired, ``ceil(n / 2)`` tasks of n + 1 pairs each."""
    return (n + 1) // 2


def run_user(serial, parallel, n_tasks, n_threads):
    """Run ``serial(lo, hi)`` over all tasks on one thread, else ``parallel(n_tasks, status)``.

    An exception raised by f in a parallel region is lost on the way out and
    ends its task early: every task still marked in ``status`` is run again
    serially, where f's own exception propagates.  If the parallel launch itself
    raised, the unfinished tasks are run the same way and that error re-raised
    if they pass.
    """
    if n_threads <= 1 or n_tasks <= 1:
        serial(0, n_tasks)
        return
    status = np.ones(n_tasks, dtype=np.uint8)
    failure = None
    try:
        launch(None, parallel, n_threads, n_tasks, status)
    except Exception as exc:  # noqa: BLE001 - re-raised below unless the serial run raises f's own
        failure = exc
    for t in np.flatnonzero(status):
        serial(int(t), int(t) + 1)
    if failure is not None:
        raise failure


def hess_into(f, x, h, f0, args, full, eps, out, err, n_threads):
    """Protocol: the whole (n, n) Hessian into ``out`` (and ``err``) on ``n_threads`` threads."""
    f0 = float(f0)
    run_user(lambda lo, hi: hess_tasks(f, x, h, f0, args, lo, hi, full, eps, out, err),
             lambda nt, status: hess_parallel(f, x, h, f0, args, nt, full, eps, out, err, status),
             task_count(x.size), n_threads)


def diag_into(f, x, h, f0, args, full, eps, out, err, n_threads):
    """Protocol: the Hessian's diagonal into ``out`` (and ``err``) on ``n_threads`` threads."""
    f0 = float(f0)
    n = x.size
    n_chunks = 1 if n_threads <= 1 else max(1, min(n, 4 * n_threads))
    run_user(lambda lo, hi: diag_chunk(f, x, h, f0, args, lo * n // n_chunks, hi * n // n_chunks,
                                       full, eps, out, err),
             lambda nc, status: diag_parallel(f, x, h, f0, args, nc, full, eps, out, err, status),
             n_chunks, n_threads)
