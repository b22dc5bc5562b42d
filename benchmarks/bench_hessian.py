"""Benchmarks of the second derivatives (numhess): ``pytest benchmarks/bench_hessian.py --benchmark-enable``."""

import pytest
from _harness import agree_params, bench_params, run_agreement, run_benchmark


@pytest.mark.parametrize("case,contender", bench_params("hessian"))
def test_bench(benchmark, case, contender):
    run_benchmark(benchmark, case, contender)


@pytest.mark.parametrize("case", agree_params("hessian"))
def test_agree(case):
    run_agreement(case)
