"""Benchmarks of the numerical-differentiation kernels: ``pytest benchmarks/bench_numdiff.py --benchmark-enable``."""

import numpy as np
import pytest
from _harness import agree_params, bench_params, run_agreement, run_benchmark


@pytest.mark.parametrize("case,contender", bench_params("numdiff"))
def test_bench(benchmark, case, contender):
    run_benchmark(benchmark, case, contender)


@pytest.mark.parametrize("case", agree_params("numdiff"))
def test_agree(case):
    run_agreement(case)


# -- accuracy of numgrad(method='adaptive') vs numdifftools on its example functions ------------------

def adaptive_accuracy_table():
    """``[(name, x0, central error, adaptive error, numdifftools error)]``: relative errors of f'(x0).

    numdifftools' example functions at its test point 0.5, plus tan near its
    pole, 1/x, x^3, exp(10) and the Rosenbrock gradient; the error is
    ``|estimate - f'| / max(1, |f'|)`` against the closed form.
    """
    import warnings

    import numdifftools as nd
    from numdifftools.example_functions import function_names, get_function

    import fastgrad

    cases = []
    for name in function_names:
        fn, dfn = get_function(name, 1)
        if dfn is not None:
            cases.append((name, fn, dfn, 0.5))
    def dtan(x):
        return 1 / np.cos(x) ** 2

    cases += [("tan", np.tan, dtan, 1.5), ("tan", np.tan, dtan, 1.55),
              ("1/x", lambda x: 1 / x, lambda x: -1 / x ** 2, 0.1),
              ("x^3", lambda x: x ** 3, lambda x: 3 * x ** 2, 2.0), ("exp", np.exp, np.exp, 10.0)]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn, dfn, x0 in cases:
            truth = float(dfn(x0))

            def f(z, fn=fn):
                return float(fn(z[0]))

            def err(g, truth=truth):
                return abs(float(np.ravel(g)[0]) - truth) / max(1.0, abs(truth))

            x = np.array([x0])
            rows.append((name, x0, err(fastgrad.numgrad(f, x)), err(fastgrad.numgrad(f, x, method="adaptive")),
                         err(nd.Derivative(fn)(x0))))
        rx = np.array([0.3, -0.7, 1.2, 0.9, -0.2, 0.5])
        from fastgrad._bench.hessian import sin_chain, sin_chain_grad

        truth = sin_chain_grad(rx)

        def vec_err(g):
            return float(np.max(np.abs(g - truth) / np.maximum(1.0, np.abs(truth))))

        rows.append(("sin chain grad (6,)", 0.0, vec_err(fastgrad.numgrad(sin_chain, rx)),
                     vec_err(fastgrad.numgrad(sin_chain, rx, method="adaptive")),
                     vec_err(nd.Gradient(sin_chain)(rx))))
    return rows


def test_adaptive_accuracy_vs_numdifftools():
    """method='adaptive' within 10x of numdifftools' error on every example (errors below 1e-14 count as 1e-14)."""
    pytest.importorskip("numdifftools")
    for name, x0, central, adaptive, peer in adaptive_accuracy_table():
        assert adaptive <= 10 * max(peer, 1e-14), (name, x0, adaptive, peer)
        assert adaptive <= max(central, 1e-14), (name, x0, adaptive, central)


if __name__ == "__main__":  # the table of the report: python benchmarks/bench_numdiff.py
    print(f"{'function':>20} {'x':>6} {'central':>9} {'adaptive':>9} {'numdifftools':>12}")
    for row in adaptive_accuracy_table():
        print(f"{row[0]:>20} {row[1]:>6g} {row[2]:>9.1e} {row[3]:>9.1e} {row[4]:>12.1e}")
