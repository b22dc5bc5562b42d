"""The performance regression guard: current ratios against ``benchmarks/baseline.json``.

A comparison regresses when its ratio is more than ``tolerance`` (20%) worse
than the baseline's: a speed-up below 0.8× its baseline value, or a floor ratio
above its baseline value / 0.8.  Ratios, not absolute times, so the guard
survives a noisy machine as long as both contenders slow down alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Verdict:
    key: str
    role: str
    baseline: float
    current: float

    @property
    def change(self) -> float:
        """Relative change in the good direction (+ better, - worse)."""
        if self.role == "baseline":
            return self.current / self.baseline - 1.0
        return self.baseline / self.current - 1.0


def load_rows(path: str) -> dict[str, dict]:
    with open(path) as fh:
        doc = json.load(fh)
    return {r["key"]: r for r in doc["rows"]}


def compare(baseline: dict[str, dict], current: dict[str, dict], tolerance: float = 0.2
            ) -> tuple[list[Verdict], list[Verdict], list[str]]:
    """(regressions, all verdicts, keys of the baseline missing from the current run)."""
    verdicts, bad = [], []
    for key, cur in current.items():
        base = baseline.get(key)
        if base is None:
            continue
        v = Verdict(key, cur["role"], base["ratio"], cur["ratio"])
        verdicts.append(v)
        if v.change < -tolerance:
            bad.append(v)
    missing = [k for k in baseline if k not in current]
    return bad, verdicts, missing


def format_verdicts(verdicts: list[Verdict]) -> str:
    lines = ["| comparison | baseline | current | change |", "|---|---:|---:|---:|"]
    for v in verdicts:
        lines.append(f"| {v.key} | {v.baseline:.3g} | {v.current:.3g} | {v.change:+.0%} |")
    return "\n".join(lines)
