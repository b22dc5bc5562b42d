"""Correctness checks of the matrix-differential identities; no benchmark cases.

These are small dense linear-algebra calls, so each is checked against an
independent numpy formula on a well-conditioned random X.
"""

from __future__ import annotations

import numpy as np

import fastgrad

from . import Check, register_check


def _identities_check(backend, rng):
    n = 5
    X = rng.standard_normal((n, n)) + n * np.eye(n)
    A, B = rng.standard_normal((3, n)), rng.standard_normal((n, 3))
    W, x, b = rng.standard_normal((4, n)), rng.standard_normal(n), rng.standard_normal(4)
    dX = rng.standard_normal((n, n))
    Xi = np.linalg.inv(X)
    return [
        (fastgrad.grad_logdet(X, signed=True), Xi.T),
        (fastgrad.grad_det(X), np.linalg.det(X) * Xi.T),
        (fastgrad.grad_trace_AXB(A, B), A.T @ B.T),
        (fastgrad.grad_sq_norm_affine(W, x, b), 2 * np.outer(W @ x + b, x)),
        (fastgrad.dinv(X, dX), -Xi @ dX @ Xi),
        (fastgrad.jacobian_inv(X, backend=backend), -np.kron(Xi.T, Xi)),
        (fastgrad.jacobian_inv(X, "C", backend=backend), -np.kron(Xi, Xi.T)),
    ]


register_check(Check(
    "matrix-differential identities n=5",
    ("grad_logdet", "grad_det", "grad_trace_AXB", "grad_sq_norm_affine", "dinv", "jacobian_inv"),
    _identities_check,
))
