"""``fastgrad demo`` (fastgrad/demo.py): the least-squares example with correct central differences."""

from __future__ import annotations

import argparse
import builtins
import errno
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
    capsys.readouterr()
    code, text = run(["--lr", "-1", "--no-plot"])
    err = capsys.readouterr().err
    assert code == 2 and text == "" and err.startswith("fastgrad demo: lr must be finite and > 0"), err
    assert demo.run(parse(["--epochs", "3", "--no-plot"])) == 0  # default: stdout
    assert "Loss (3):" in capsys.readouterr().out


@pytest.fixture
def no_fit(monkeypatch):
    """Make the fit fail loudly: a bad --out must be caught before it runs."""
    from fastgrad import train

    def fit_linear(*args, **kwargs):
        raise AssertionError("the fit ran before --out was checked")

    monkeypatch.setattr(train, "fit_linear", fit_linear)


@pytest.mark.parametrize("name, reason", [
    ("missing/dir/curve.png", "no such directory: "),
    ("curve.txt", "unsupported format 'txt' (supported: "),
    ("curve.pgf", "unsupported format 'pgf' (supported: "),  # matplotlib needs LaTeX for it
    (".", "it is a directory"),
])
def test_demo_rejects_an_unwritable_out_before_the_fit(tmp_path, capsys, no_fit, name, reason):
    pytest.importorskip("matplotlib")
    path = str(tmp_path / name)
    code, text = run(["--out", path, "--epochs", "0"])
    assert code == 2 and text == ""
    err = capsys.readouterr().err
    assert err.startswith(f"fastgrad demo: cannot write {path}: {reason}"), err
    assert "Traceback" not in err
    assert not (tmp_path / name).is_file()


def test_demo_accepts_any_format_matplotlib_saves(tmp_path):
    pytest.importorskip("matplotlib")
    svg = tmp_path / "curve.SVG"
    code, text = run(["--out", str(svg), "--epochs", "0"])
    assert code == 0 and f"Loss curve written to {svg}" in text
    assert b"<svg" in svg.read_bytes()


def test_demo_without_an_extension_writes_and_names_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    code, text = run(["--out", str(tmp_path / "curve"), "--epochs", "0"])
    png = tmp_path / "curve.png"
    assert code == 0 and f"Loss curve written to {png}\n" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("exc, reason", [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (ValueError("Format 'png' is not supported"), "Format 'png' is not supported"),
    (RuntimeError("latex was not able to process"), "latex was not able to process"),
])
def test_demo_reports_a_failed_save(tmp_path, capsys, monkeypatch, exc, reason):
    pytest.importorskip("matplotlib")

    def failing_plot(*args):
        raise exc

    monkeypatch.setattr(demo, "_plot", failing_plot)
    path = str(tmp_path / "curve.png")
    code, _ = run(["--out", path, "--epochs", "0"])
    assert code == 2
    assert capsys.readouterr().err == f"fastgrad demo: cannot write {path}: {reason}\n"
