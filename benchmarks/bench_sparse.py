"""Benchmarks of evaluating any f (Python f, vectorized f, sparse Jacobians):
``pytest benchmarks/bench_sparse.py --benchmark-enable``."""

import pytest
from _harness import agree_params, bench_params, run_agreement, run_benchmark


@pytest.mark.parametrize("case,contender", bench_params("sparse"))
def test_bench(benchmark, case, contender):
    run_benchmark(benchmark, case, contender)


@pytest.mark.parametrize("case", agree_params("sparse"))
def test_agree(case):
    run_agreement(case)
