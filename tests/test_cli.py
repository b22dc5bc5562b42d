"""The command line: ``fastgrad info``, ``fastgrad check`` (and ``python -m fastgrad``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastgrad
from fastgrad import cli


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("fastgrad", "numpy", "numba", "cython build", "backends", "threads", "cpu", "blas",
                "numba cache dir"):
        assert any(line.startswith(key) for line in out.splitlines()), key
    assert fastgrad.__version__ in out


def test_check_passes_and_covers_every_backend(capsys):
    from fastgrad._bench import all_checks

    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert "all passed" in out
    for backend in fastgrad.available_backends():
        assert f"  {backend}  " in out
    assert "mse_loss_and_grad" in out
    n = len(all_checks()) * len(fastgrad.available_backends())
    assert f"\n{n} checks, all passed" in out  # every registered check on every backend


@pytest.fixture
def extra_check(monkeypatch):
    """Register one more check for the duration of a test."""
    from fastgrad import _bench

    checks = list(_bench.all_checks())
    monkeypatch.setattr(_bench, "CHECKS", checks)

    def add(name, run):
        checks.append(_bench.Check(name, ("mse_grad",), run, family="test"))

    return add


def test_check_fails_on_a_mismatch(capsys, extra_check):
    extra_check("broken kernel", lambda backend, rng: [(np.ones(3), np.zeros(3))])
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "FAILED" in out and "broken kernel" in out


def test_check_fails_on_a_shape_mismatch(capsys, extra_check):
    extra_check("wrong shape", lambda backend, rng: [(np.zeros(3), np.zeros(4))])
    assert cli.main(["check"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_check_reports_a_crashing_kernel(capsys, extra_check):
    def crash(backend, rng):
        raise RuntimeError("boom")

    extra_check("crashing kernel", crash)
    assert cli.main(["check"]) == 1
    assert "ERROR RuntimeError: boom" in capsys.readouterr().out


def test_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2


@pytest.mark.parametrize("seed", ["-1", "-7", "x"])
def test_check_rejects_a_bad_seed(capsys, seed):
    # a negative seed used to reach numpy.random.default_rng and turn all 138 checks into ERRORs
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--seed", seed])
    assert exc.value.code == 2
    assert "argument --seed" in capsys.readouterr().err


@pytest.fixture
def fake_bench(monkeypatch):
    """Replace the benchmark runner: the keyword arguments the CLI passes, and no benchmark runs."""
    from fastgrad._bench import runner

    calls = []
    monkeypatch.setattr(runner, "main", lambda **kwargs: calls.append(kwargs) or 0)
    return calls


@pytest.mark.parametrize("rounds", ["0", "-1", "x"])
def test_bench_rejects_bad_rounds_before_any_work(capsys, fake_bench, rounds):
    # -1 used to crash (median of no rounds) after every case's set-up; 0 silently meant the default
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--quick", "--rounds", rounds])
    assert exc.value.code == 2
    assert "argument --rounds" in capsys.readouterr().err
    assert fake_bench == []


def test_bench_passes_rounds_on(fake_bench):
    assert cli.main(["bench", "--quick", "--rounds", "1"]) == 0
    assert cli.main(["bench", "--quick"]) == 0
    assert [c["rounds"] for c in fake_bench] == [1, None]


def test_python_dash_m_is_the_console_script():
    r = subprocess.run([sys.executable, "-m", "fastgrad", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"fastgrad {fastgrad.__version__}"
