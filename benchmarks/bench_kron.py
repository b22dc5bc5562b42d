"""Benchmarks of the Kronecker / vec-Jacobian kernels: ``pytest benchmarks/bench_kron.py --benchmark-enable``."""

import pytest
from _harness import agree_params, bench_params, run_agreement, run_benchmark


@pytest.mark.parametrize("case,contender", bench_params("kron"))
def test_bench(benchmark, case, contender):
    run_benchmark(benchmark, case, contender)


@pytest.mark.parametrize("case", agree_params("kron"))
def test_agree(case):
    run_agreement(case)
