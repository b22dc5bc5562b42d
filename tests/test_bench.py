"""``fastgrad bench``, the regression guard and the report reader, with injected slow contenders."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import sys
import time

import numpy as np
import pytest

from fastgrad import cli
from fastgrad._bench import CASES, Case, Contender, all_cases, runner
from fastgrad._bench.report import rows_from_medians

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"


def _benchmarks_script(name):
    """Import ``benchmarks/<name>.py`` (the benchmark suite's tooling, not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


guard = _benchmarks_script("guard")
report = _benchmarks_script("report")


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
    script = guard
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
    path = BENCHMARKS / "baseline.json"
    if not path.exists():
        pytest.skip("no baseline committed yet")
    rows = guard.load_rows(str(path))
    keys = {f"{c.group}|{x.name}" for c in all_cases() for x in c.contenders if x.role == "fastgrad"}
    for key in rows:
        assert key.rsplit("|", 1)[0] in keys, f"baseline row {key} has no registered case"


def test_report_reads_pytest_benchmark_and_fastgrad_bench_json(fake_case, tmp_path):
    info = {"kernel": "fake_kernel", "label": "(1,)", "targets": {"numpy": 1.5}, "target_of": "fastgrad-numba"}
    pb = {"benchmarks": [
        {"group": "fake_kernel|(1,)", "stats": {"median": t},
         "extra_info": {**info, "contender": name, "role": role}}
        for name, role, t in (("fastgrad-numba", "fastgrad", 0.001), ("numpy", "baseline", 0.004))
    ]}
    (tmp_path / "pb.json").write_text(json.dumps(pb))
    (row,) = report.load_rows(str(tmp_path / "pb.json"))
    assert row.key == "fake_kernel|(1,)|fastgrad-numba|numpy" and np.isclose(row.ratio, 4.0) and row.ok
    assert cli.main(["bench", "--kernel", "fake_kernel", "--json", str(tmp_path / "b.json"), "--rounds", "1"]) == 0
    (row,) = report.load_rows(str(tmp_path / "b.json"))
    assert row.key == "fake_kernel|(1,)|fastgrad-numba|numpy"


def test_benchmark_only_tooling_is_not_in_the_package():
    import fastgrad._bench as bench
    import fastgrad._bench.report as package_report

    assert not (pathlib.Path(bench.__file__).parent / "guard.py").exists()
    assert not hasattr(package_report, "groups_from_pytest_benchmark")


def test_ratio_words_says_slower_below_one():
    from fastgrad._bench.report import ratio_words

    assert ratio_words(0.43, "baseline") == "2.3× slower"
    assert ratio_words(1.0, "baseline") == "1.00× faster"
    assert ratio_words(2.5, "baseline") == "2.5× faster"
    assert ratio_words(1.08, "floor") == "1.08× the floor"
    assert "faster" not in ratio_words(0.43, "baseline")


def _fake_rows():
    from fastgrad._bench.report import Row

    return [
        Row("mse_grad", "(1000, 10)", "fastgrad-numba", "numpy", "baseline", 0.43, 1.5, 2.3, 1.0),
        Row("mse_grad", "(1000000,)", "fastgrad-numba", "read floor", "floor", 1.08, 1.2, 1.08, 1.0),
        Row("kron_matvec", "(300, 300) x (300, 300)", "fastgrad-cython", "scipy", "baseline",
            12.3, None, 0.1, 1.23),
    ]


def _assert_aligned(table):
    lines = table.splitlines()
    assert "|" not in table
    rule = lines[1]
    assert set(rule) <= {"-", " "} and rule.startswith("-")
    spans = [m.span() for m in re.finditer(r"-+", rule)]
    assert len(spans) >= 9
    for line in lines:
        assert len(line) <= len(rule)
        # the gaps between the rule's dash runs are blank on every line: the columns line up
        for (_, end), (start, _) in zip(spans[:-1], spans[1:], strict=True):
            assert line[end:start].strip() == "", (line, end, start)
        assert not line[0].isspace()
    return lines


def test_plain_text_table_is_aligned_and_markdown_is_markdown():
    from fastgrad._bench.report import format_table

    rows = _fake_rows()
    lines = _assert_aligned(format_table(rows, markdown=False))
    assert lines[0].split()[:2] == ["kernel", "shape"] and len(lines) == 2 + len(rows)
    assert "2.3× slower" in lines[2] and "NO" in lines[2] and "0.43" not in lines[2]
    md = format_table(rows).splitlines()  # the default, which benchmarks/report.py prints
    assert all(line.startswith("| ") and line.endswith(" |") for line in md)
    assert set(md[1].replace("|", "").split()) <= {"---", "---:"}
    assert "2.3× slower" in md[2] and "**no**" in md[2]
    assert "1.08× the floor" in md[3] and "12× faster" in md[4]


def test_bench_cli_prints_plain_text_or_markdown(tmp_path, capsys):
    slow = Case("fake_kernel", "(1,)", lambda: {}, [  # fastgrad about 2.5x slower than numpy
        Contender("fastgrad-numba", "fastgrad", _sleeper(0.005)),
        Contender("numpy", "baseline", _sleeper(0.002)),
    ], targets={"numpy": 1.5})
    CASES.append(slow)
    try:
        assert cli.main(["bench", "--kernel", "fake_kernel", "--rounds", "1"]) == 0
        out = capsys.readouterr().out
        table = out.split("\n\n")[0]
        _assert_aligned(table)
        assert "× slower" in table and "× faster" not in table
        assert cli.main(["bench", "--kernel", "fake_kernel", "--rounds", "1", "--markdown"]) == 0
        md = capsys.readouterr().out.split("\n\n")[0].splitlines()
        assert md[0].startswith("| kernel |") and md[1].startswith("| ---")
        assert "× slower" in md[2]
    finally:
        CASES.remove(slow)


def test_plot_has_a_title_and_does_not_clip_long_labels(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from fastgrad._bench.report import Row

    long_label = "(" + ", ".join(["123456"] * 20) + ")"
    rows = [*_fake_rows(), Row("numdiff_jacobian", long_label, "fastgrad-numba", "scipy-sparse-finite-diff",
                                "baseline", 3.0, 1.5, 1.0, 3.0)]
    info = {"cpu": "Fake CPU 9000", "cores": 64, "threads": 8, "fastgrad": "9.9", "numpy": "8.8",
            "numba": "7.7"}
    fig = runner.figure(rows, info)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        figbox = fig.bbox
        ax = fig.axes[0]
        labels = [t for t in ax.get_yticklabels() if t.get_text()]
        assert any(long_label in t.get_text() for t in labels)
        texts = [*labels, ax.title, ax.xaxis.label, fig._suptitle]
        for t in texts:
            box = t.get_window_extent(renderer)
            assert box.x0 >= figbox.x0 - 1 and box.x1 <= figbox.x1 + 1, t.get_text()
            assert box.y0 >= figbox.y0 - 1 and box.y1 <= figbox.y1 + 1, t.get_text()
        assert "fastgrad bench" in fig._suptitle.get_text()
        machine_line = ax.get_title()
        for word in ("Fake CPU 9000", "64 cores", "fastgrad 9.9", "numpy 8.8", "numba 7.7"):
            assert word in machine_line
    finally:
        plt.close(fig)
    png = tmp_path / "bench.png"
    runner.plot(str(png), rows, info)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "cpu" in runner.machine() and "cores" in runner.machine()


def test_the_json_keeps_every_round_and_states_pairs_them_with_the_floor(tmp_path):
    # a floor that alternates between a fast (1 ms) and a slow (2 ms) state, round by round, and a
    # kernel that takes 1.5 ms whatever the state: 1.5x the floor in fast rounds, 0.75x in slow ones
    floor_times = [0.001, 0.002] * 3
    case = Case("fake_kernel", "(1,)", lambda: {}, [
        Contender("fastgrad-numba", "fastgrad", lambda d: (lambda: None)),
        Contender("floor", "floor", lambda d: (lambda: None)),
    ], targets={"floor": 1.25})
    group = runner.time_case(case, rounds=6, target_s=0.0)
    assert set(group["rounds"]) == {"fastgrad-numba", "floor"}
    assert all(len(v) == 6 for v in group["rounds"].values())
    group["rounds"] = {"fastgrad-numba": [0.0015] * 6, "floor": floor_times}
    group["medians"] = {"fastgrad-numba": ("fastgrad", 0.0015), "floor": ("floor", 0.0015)}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"groups": [group]}))
    states = _benchmarks_script("states")
    (row,) = states.state_rows(json.loads(path.read_text()))
    assert row["floor_fast_ms"] == pytest.approx(1.0) and row["floor_slow_ms"] == pytest.approx(2.0)
    assert row["fast"] == pytest.approx(1.5) and row["slow"] == pytest.approx(0.75)
    assert row["of_medians"] == pytest.approx(1.0) and row["target"] == 1.25
    assert states.main([str(path)]) == 0
    old = tmp_path / "old.json"  # a file written before the rounds were kept: says so, exit 1
    del group["rounds"]
    old.write_text(json.dumps({"groups": [group]}))
    assert states.main([str(old)]) == 1
