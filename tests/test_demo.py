"""``fastgrad demo`` (fastgrad/demo.py): the least-squares example with correct central differences."""

from __future__ import annotations

import argparse
import builtins
import io
import re

import pytest

from fastgrad import demo


def parse(argv):
    return demo.add_arguments(argparse.ArgumentParser()).parse_args(argv)


def run(argv):
    out = io.StringIO()
    code = demo.run(parse(argv), file=out)
    return code, out.getvalue()


def test_demo_prints_seed_trace_and_writes_png(tmp_path):
    png = tmp_path / "curve.png"
    code, text = run(["--out", str(png)])
    assert code == 0
    assert "learning rate h**2 = 0.01" in text
    got = {0: float(re.search(r"^Loss: (\S+)$", text, re.M).group(1))}
    got.update({int(k): float(v) for k, v in re.findall(r"^Loss \((\d+)\): (\S+)$", text, re.M)})
    assert set(got) == set(demo.SEED004_TRACE)
    for k, printed in demo.SEED004_TRACE.items():
        assert got[k] == pytest.approx(printed, rel=1e-9), k
    assert "-> [1.32439537 1.35257131 3.32322317]" in text
    assert "they agree" in text and "reproduce the original example's printed trace" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Loss curve written to {png}" in text


def test_demo_without_matplotlib(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    png = tmp_path / "curve.png"
    code, text = run(["--out", str(png), "--epochs", "20"])
    assert code == 0
    assert "matplotlib is not installed" in text and "pip install fastgrad[plot]" in text
    assert not png.exists()


def test_demo_options(tmp_path, capsys):
    code, text = run(["--epochs", "8", "--no-plot"])
    assert code == 0 and "Loss (8):" in text and "Loss (9)" not in text and "written" not in text
    assert "reproduce the original" not in text  # only claimed for the original settings
    code, text = run(["--lr", "-1", "--no-plot"])
    assert code == 2 and "lr must be finite and > 0" in text
    assert demo.run(parse(["--epochs", "3", "--no-plot"])) == 0  # default: stdout
    assert "Loss (3):" in capsys.readouterr().out
