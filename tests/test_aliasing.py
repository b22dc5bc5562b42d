"""``out=`` may share memory with any input: the result equals the call without ``out``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS

import fastgrad


def _alias(shapes: dict[str, tuple], out_shape: tuple, target: str, rng) -> tuple[dict, np.ndarray]:
    """Inputs of the given shapes; ``out`` a view overlapping input ``target`` (same memory)."""
    arrays = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    size = max(arrays[target].size, int(np.prod(out_shape)))
    buf = rng.standard_normal(size + 3)
    view = buf[: arrays[target].size].reshape(arrays[target].shape)
    view[...] = arrays[target]
    arrays[target] = view
    out = buf[1: 1 + int(np.prod(out_shape))].reshape(out_shape)  # overlaps target, offset by one element
    return arrays, out


CASES = {
    # name: (function(arrays, out, backend), input shapes, out shape)
    "mse_grad": (lambda a, out, be: fastgrad.mse_grad(a["A"], a["y"], a["w"], out=out, backend=be),
                 {"A": (40, 3), "y": (40,), "w": (3,)}, (3,)),
    "mse_grad K=2": (lambda a, out, be: fastgrad.mse_grad(a["A"], a["y"], a["w"], out=out, backend=be),
                     {"A": (40, 3), "y": (40, 2), "w": (3, 2)}, (3, 2)),
    "mse_loss_and_grad": (lambda a, out, be: fastgrad.mse_loss_and_grad(a["A"], a["y"], a["w"], out=out,
                                                                        backend=be)[1],
                          {"A": (40, 3), "y": (40,), "w": (3,)}, (3,)),
    "mse_numgrad": (lambda a, out, be: fastgrad.mse_numgrad(a["A"], a["y"], a["w"], out=out, backend=be),
                    {"A": (40, 3), "y": (40,), "w": (3,)}, (3,)),
    "kron": (lambda a, out, be: fastgrad.kron(a["A"], a["B"], out=out, backend=be),
             {"A": (3, 4), "B": (2, 3)}, (6, 12)),
    "dense_forward": (lambda a, out, be: fastgrad.dense_forward(a["X"], a["W"], a["b"], out=out, backend=be),
                      {"X": (4, 3), "W": (3, 3), "b": (3,)}, (4, 3)),
}

PAIRS = [(case, name) for case, (_, shapes, _) in CASES.items() for name in shapes]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case, target", PAIRS, ids=[f"{c}-out~{t}" for c, t in PAIRS])
def test_out_aliasing_an_input(case, target, backend):
    fn, shapes, out_shape = CASES[case]
    arrays, out = _alias(shapes, out_shape, target, np.random.default_rng(7))
    expected = fn({k: v.copy() for k, v in arrays.items()}, None, backend)
    got = fn(arrays, out, backend)
    assert got is out or np.shares_memory(got, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("be", BACKENDS)
def test_dense_forward_bias_row_of_out(be):
    # the reported case: b is row 0 of out
    out = np.zeros((2, 3))
    out[0] = [1.0, 2.0, 3.0]
    got = fastgrad.dense_forward(np.eye(2), np.ones((2, 3)), out[0], out=out, backend=be)
    assert got.tolist() == [[2.0, 3.0, 4.0], [2.0, 3.0, 4.0]]
