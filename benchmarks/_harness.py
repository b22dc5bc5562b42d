"""pytest-benchmark harness over the comparisons registry in ``fastgrad._bench``.

With ``--benchmark-disable`` (the default in pyproject's addopts) every contender
runs once as a plain test; ``pytest benchmarks --benchmark-enable`` times them.
"""

from __future__ import annotations

import gc

import pytest

from fastgrad._bench import all_cases

_cache: dict[str, dict] = {}


def case_data(case) -> dict:
    """The case's data, built once and kept until another case needs memory."""
    if case.group not in _cache:
        _cache.clear()
        gc.collect()
        _cache[case.group] = case.setup()
    return _cache[case.group]


def bench_params(family: str):
    """(case, contender) pairs of one family, ids ``kernel|shape|contender``."""
    return [
        pytest.param(case, c, id=f"{case.group}|{c.name}")
        for case in all_cases(family=family)
        for c in case.contenders
    ]


def agree_params(family: str):
    return [pytest.param(case, id=case.group) for case in all_cases(family=family) if case.check]


def run_benchmark(benchmark, case, contender):
    fn = contender.make(case_data(case))
    fn()  # compile / warm up outside the timing
    benchmark.group = case.group
    benchmark.extra_info.update(
        kernel=case.kernel, label=case.label, contender=contender.name, role=contender.role,
        targets=case.targets, target_of=case.target_of,
    )
    benchmark(fn)


def run_agreement(case):
    """Every non-floor contender computes the same thing (the setup is not measuring nonsense)."""
    data = case_data(case)
    results = {c.name: c.make(data)() for c in case.contenders if c.role != "floor"}
    case.check(data, results)
