"""Turn benchmark medians into the ratio table (used by benchmarks/report.py and ``fastgrad bench``)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Row:
    """One comparison: the fastgrad contender against a baseline or a floor."""

    kernel: str
    label: str
    contender: str  # the fastgrad contender
    versus: str  # the baseline/floor contender
    role: str  # 'baseline' or 'floor'
    ratio: float  # baseline: speed-up (versus / fastgrad); floor: fastgrad / floor
    target: float | None  # baseline: minimum speed-up; floor: maximum ratio
    fastgrad_ms: float
    versus_ms: float

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.role == "baseline" else self.ratio <= self.target

    @property
    def key(self) -> str:
        return f"{self.kernel}|{self.label}|{self.contender}|{self.versus}"


def rows_from_medians(groups: list[dict]) -> list[Row]:
    """``groups``: dicts with kernel, label, targets, target_of and medians {contender: (role, seconds)}."""
    rows = []
    for g in groups:
        med = g["medians"]
        for name, (role, t) in med.items():
            if role != "fastgrad":
                continue
            for other, (orole, ot) in med.items():
                if orole == "fastgrad":
                    continue
                ratio = ot / t if orole == "baseline" else t / ot
                target = g["targets"].get(other) if name == g["target_of"] else None
                rows.append(Row(g["kernel"], g["label"], name, other, orole, ratio, target, t * 1e3, ot * 1e3))
    return rows


def groups_from_pytest_benchmark(path: str) -> list[dict]:
    """Read a ``pytest --benchmark-json`` file written by the benchmarks/ suite."""
    with open(path) as fh:
        data = json.load(fh)
    groups: dict[str, dict] = {}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        g = groups.setdefault(b["group"], {
            "kernel": info["kernel"], "label": info["label"], "targets": info["targets"],
            "target_of": info["target_of"], "medians": {},
        })
        g["medians"][info["contender"]] = (info["role"], b["stats"]["median"])
    return list(groups.values())


def format_table(rows: list[Row]) -> str:
    """A Markdown table of the rows."""
    out = [
        "| kernel | shape | fastgrad | vs | fastgrad ms | vs ms | ratio | target | ok |",
        "|---|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        if r.role == "baseline":
            ratio, target = f"{r.ratio:.2f}× faster", (f"≥ {r.target:g}×" if r.target else "")
        else:
            ratio, target = f"{r.ratio:.2f}× floor", (f"≤ {r.target:g}×" if r.target else "")
        ok = {True: "yes", False: "**no**", None: ""}[r.ok]
        out.append(f"| {r.kernel} | {r.label} | {r.contender} | {r.versus} | {r.fastgrad_ms:.4g} | "
                   f"{r.versus_ms:.4g} | {ratio} | {target} | {ok} |")
    return "\n".join(out)
