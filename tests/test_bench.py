"""``fastgrad bench`` and the regression guard, with injected slow contenders."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from fastgrad import cli
from fastgrad._bench import CASES, Case, Contender, all_cases, guard, runner
from fastgrad._bench.report import rows_from_medians


def _sleeper(seconds):
    return lambda data: (lambda: time.sleep(seconds))


def _case(fast_s, slow_s=0.004):
    return Case("fake_kernel", "(1,)", lambda: {}, [
        Contender("fastgrad-numba", "fastgrad", _sleeper(fast_s)),
        Contender("numpy", "baseline", _sleeper(slow_s)),
    ], targets={"numpy": 1.5})


@pytest.fixture
def fake_case():
    case = _case(0.001)
    CASES.append(case)
    yield case
    CASES.remove(case)


def test_registry_has_every_family_and_targets():
    cases = all_cases()
    assert {c.family for c in cases} >= {"mse"}
    for c in cases:
        assert c.contenders and all(c.role in ("fastgrad", "baseline", "floor") for c in c.contenders)
        names = {x.name for x in c.contenders}
        assert set(c.targets) <= names, c.group
        assert c.target_of in names, c.group


def test_ratio_rows_and_targets():
    groups = [runner.time_case(_case(0.001), rounds=3, target_s=0.002)]
    (row,) = rows_from_medians(groups)
    assert row.role == "baseline" and row.target == 1.5
    assert 2.0 < row.ratio < 6.0  # 4 ms / 1 ms, give or take the sleep granularity
    assert row.ok


def test_runner_lets_blas_threads_park_after_a_blas_contender(monkeypatch):
    order = []
    monkeypatch.setattr(runner.time, "sleep", lambda s: order.append(("sleep", s)))
    case = Case("fake_kernel", "(1,)", lambda: {}, [
        Contender("fastgrad-numba", "fastgrad", lambda d: (lambda: order.append("fastgrad"))),
        Contender("numpy", "baseline", lambda d: (lambda: order.append("numpy")), blas=True),
    ])
    runner.time_case(case, rounds=2, target_s=0.0)
    settle = ("sleep", runner.BLAS_SETTLE_S)
    # warm-up and calibration (one call each, untimed), then two timed rounds of one call each
    assert order == ["fastgrad", "numpy"] * 2 + ["fastgrad", "numpy", settle] * 2


def test_blas_contenders_are_marked():
    marked = {(c.group, x.name) for c in all_cases() for x in c.contenders if x.blas}
    for c in all_cases():
        if c.kernel in ("mse_grad", "dense_backward", "mlp2_loss_and_grad"):
            assert (c.group, "numpy") in marked, c.group


def test_bench_cli_json_and_unknown_kernel(fake_case, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert cli.main(["bench", "--kernel", "fake_kernel", "--json", str(out), "--rounds", "3"]) == 0
    doc = json.loads(out.read_text())
    assert doc["rows"][0]["key"] == "fake_kernel|(1,)|fastgrad-numba|numpy"
    assert "fake_kernel" in capsys.readouterr().out
    assert cli.main(["bench", "--kernel", "no_such_kernel"]) == 2


def test_guard_fails_when_a_kernel_gets_slower(fake_case, tmp_path):
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location(
        "guard_script", pathlib.Path(__file__).parents[1] / "benchmarks" / "guard.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    base = tmp_path / "baseline.json"
    assert script.main(["--kernel", "fake_kernel", "--update", "--baseline", str(base)]) == 0
    # same speed: passes
    assert script.main(["--kernel", "fake_kernel", "--baseline", str(base)]) == 0
    # the fastgrad contender made 3x slower: ratio 4 -> 1.33, far more than 20% down
    CASES[CASES.index(fake_case)] = slowed = _case(0.003)
    try:
        assert script.main(["--kernel", "fake_kernel", "--baseline", str(base)]) == 1
    finally:
        CASES[CASES.index(slowed)] = fake_case


def test_guard_compare_directions():
    base = {"a": {"role": "baseline", "ratio": 3.0}, "b": {"role": "floor", "ratio": 1.1}}
    ok = {"a": {"role": "baseline", "ratio": 2.5}, "b": {"role": "floor", "ratio": 1.3}}
    bad, verdicts, missing = guard.compare(base, ok)
    assert not bad and len(verdicts) == 2 and not missing
    worse = {"a": {"role": "baseline", "ratio": 2.3}, "b": {"role": "floor", "ratio": 1.5}}
    bad, _, _ = guard.compare(base, worse)
    assert [v.key for v in bad] == ["a", "b"]
    assert np.isclose(bad[0].change, 2.3 / 3 - 1)


def test_committed_baseline_matches_the_registry():
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "baseline.json"
    if not path.exists():
        pytest.skip("no baseline committed yet")
    rows = guard.load_rows(str(path))
    keys = {f"{c.group}|{x.name}" for c in all_cases() for x in c.contenders if x.role == "fastgrad"}
    for key in rows:
        assert key.rsplit("|", 1)[0] in keys, f"baseline row {key} has no registered case"
