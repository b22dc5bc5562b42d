"""Benchmarks of the neural-network kernels: ``pytest benchmarks/bench_nn.py --benchmark-enable``."""

import pytest
from _harness import agree_params, bench_params, run_agreement, run_benchmark


@pytest.mark.parametrize("case,contender", bench_params("nn"))
def test_bench(benchmark, case, contender):
    run_benchmark(benchmark, case, contender)


@pytest.mark.parametrize("case", agree_params("nn"))
def test_agree(case):
    run_agreement(case)
