"""``fastgrad bench``: time every registered case in-process and report ratios.

Each case's contenders are timed interleaved (round-robin), so slow drifts of a
noisy machine hit every contender alike; the figure kept is the median over
rounds of the per-call time.  Ratios, never absolute times, are what the table
and the regression guard compare.  The JSON file keeps every round's times as
well (``groups[i]["rounds"]``), for ``benchmarks/states.py``.
"""

from __future__ import annotations

import gc
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import Case, all_cases
from .report import Row, format_table, rows_from_medians


def _calibrate(fn: Callable[[], Any], target_s: float) -> int:
    """Calls per measurement so that one measurement lasts about ``target_s``."""
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return max(1, min(10_000, int(target_s / max(dt, 1e-7))))


#: Seconds to wait after timing a BLAS contender: OpenBLAS's spin-wait
#: (2**28 cycles by default, about 0.1 s) is over by then.
BLAS_SETTLE_S = 0.15


def time_case(case: Case, rounds: int, target_s: float) -> dict:
    """Medians (seconds per call) of every contender of ``case``, interleaved over ``rounds``."""
    data = case.setup()
    # a contender whose ``make`` returns None cannot run here (an optional peer is not installed)
    made = {c.name: (c.role, c.make(data)) for c in case.contenders}
    fns = {n: (role, f) for n, (role, f) in made.items() if f is not None}
    blas = {c.name for c in case.contenders if c.blas}
    if case.check is not None:  # the contenders must compute the same thing
        case.check(data, {n: f() for n, (role, f) in fns.items() if role != "floor"})
    for _, f in fns.values():  # warm-up (and JIT compilation) outside the timing
        t0 = time.perf_counter()
        f()
        while time.perf_counter() - t0 < case.warmup_s:
            f()
    number = {n: _calibrate(f, target_s) for n, (_, f) in fns.items()}
    samples: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(rounds):
        for n, (_, f) in fns.items():
            k = number[n]
            t0 = time.perf_counter()
            for _ in range(k):
                f()
            samples[n].append((time.perf_counter() - t0) / k)
            if n in blas:
                time.sleep(BLAS_SETTLE_S)
    del data
    gc.collect()
    med = {n: (fns[n][0], sorted(s)[len(s) // 2]) for n, s in samples.items()}
    # the per-round times too: a round times every contender within a fraction of a second, so
    # the rounds pair a contender with the floor in one memory state (benchmarks/states.py)
    return {"kernel": case.kernel, "label": case.label, "targets": case.targets,
            "target_of": case.target_of, "medians": med, "rounds": samples}


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, unit="case", desc="fastgrad bench", leave=False)


def run(cases: Sequence[Case], rounds: int, target_s: float) -> list[dict]:
    bar = _progress(len(cases))
    groups = []
    for i, case in enumerate(cases):
        if bar is not None:
            bar.set_postfix_str(case.group)
        else:
            print(f"[{i + 1}/{len(cases)}] {case.group}", file=sys.stderr, flush=True)
        groups.append(time_case(case, rounds, target_s))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return groups


def machine() -> dict:
    import os

    import numba
    import numpy as np

    from .. import __version__, _config
    from ..cli import _cpu_name

    return {"fastgrad": __version__, "numpy": np.__version__, "numba": numba.__version__,
            "python": platform.python_version(), "threads": _config.get_num_threads(),
            "machine": platform.machine(), "cpu": _cpu_name(), "cores": os.cpu_count(),
            "backends": _config.available_backends()}


def machine_line(info: dict) -> str:
    """One line naming the machine and the versions, for the plot."""
    cpu = info.get("cpu") or info.get("machine") or "unknown CPU"
    parts = [f"{cpu} ({info.get('cores', '?')} cores, {info.get('threads', '?')} threads used)"]
    parts += [f"{k} {info[k]}" for k in ("fastgrad", "numpy", "numba", "python") if info.get(k)]
    return " · ".join(parts)


def write_json(path: str, groups: list[dict], rows: list[Row], quick: bool) -> None:
    doc = {"machine": machine(), "quick": quick, "groups": groups,
           "rows": [{"key": r.key, "kernel": r.kernel, "label": r.label, "contender": r.contender,
                     "versus": r.versus, "role": r.role, "ratio": r.ratio, "target": r.target,
                     "ok": r.ok, "fastgrad_ms": r.fastgrad_ms, "versus_ms": r.versus_ms} for r in rows]}
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)


def figure(rows: list[Row], info: dict | None = None):
    """The bar chart of the speed-ups (floor ratios if no baseline row) as a matplotlib Figure.

    Titled, with a line naming the machine and versions; the figure is sized from the longest
    label and laid out tight, so no label is clipped.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install 'fastgrad[plot]'") from exc
    info = machine() if info is None else info
    baseline = [r for r in rows if r.role == "baseline"]
    shown = [r for r in baseline if r.contender == "fastgrad-numba"] or baseline or rows
    speedups = bool(baseline)
    who = ", ".join(sorted({r.contender for r in shown}))
    labels = [f"{r.kernel} {r.label} vs {r.versus}" for r in shown]
    fontsize = 7
    # about 0.6 em per character: the labels' width in inches, plus a plot area of 6.5 inches
    label_in = 0.6 * fontsize / 72 * max((len(s) for s in labels), default=10)
    fig, ax = plt.subplots(figsize=(max(8.0, label_in + 6.5), 0.3 * len(shown) + 2.0))
    # red: slower than the contender, or a missed target
    colors = ["tab:red" if (r.role == "baseline" and r.ratio < 1) or r.ok is False else "tab:blue" for r in shown]
    # bars grow from 1 (as fast as the contender): right = faster, left = slower
    ax.barh(range(len(shown)), [r.ratio - 1.0 for r in shown], left=1.0, color=colors)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(shown)), labels, fontsize=fontsize)
    ax.invert_yaxis()
    ax.set_xscale("log")
    if speedups:
        ax.set_xlabel("speed-up of fastgrad over the contender (×, log scale; right of 1 = faster)")
        title = f"fastgrad bench: speed-up of {who} over numpy/scipy"
    else:
        ax.set_xlabel("fastgrad time / floor time (×, log scale; 1 = at the floor)")
        title = f"fastgrad bench: time of {who} relative to the bandwidth floors"
    fig.suptitle(title, fontsize=11, fontweight="bold")
    ax.set_title(machine_line(info), fontsize=7, color="0.3")
    fig.tight_layout()
    return fig


def plot(path: str, rows: list[Row], info: dict | None = None) -> None:
    """Write :func:`figure` of ``rows`` to ``path`` (PNG or whatever the suffix says; needs matplotlib)."""
    fig = figure(rows, info)  # raises the helpful ImportError without matplotlib
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(quick: bool = False, kernel: str | None = None, json_path: str | None = None,
         plot_path: str | None = None, rounds: int | None = None, markdown: bool = False) -> int:
    """Time, print the ratio table (aligned plain text, or Markdown with ``markdown``), write files."""
    cases = all_cases(kernel=kernel, quick=quick)
    if not cases:
        known = sorted({c.kernel for c in all_cases()})
        print(f"no benchmark case for kernel {kernel!r}; known kernels: {', '.join(known)}", file=sys.stderr)
        return 2
    rounds = rounds or (5 if quick else 15)
    groups = run(cases, rounds=rounds, target_s=0.01 if quick else 0.05)
    rows = rows_from_medians(groups)
    print(format_table(rows, markdown=markdown))
    missed = [r for r in rows if r.ok is False]
    print(f"\n{len(rows)} comparisons, {len(missed)} below target "
          f"({'quick' if quick else 'full'} run, {rounds} interleaved rounds, medians)")
    if json_path:
        write_json(json_path, groups, rows, quick)
        print(f"wrote {json_path}")
    if plot_path:
        plot(plot_path, rows)
        print(f"wrote {plot_path}")
    return 0
