"""Performance regression guard: current ratios against ``benchmarks/baseline.json``.

    python benchmarks/guard.py            # re-measure (full), compare with benchmarks/baseline.json
    python benchmarks/guard.py --quick    # only the quick cases
    python benchmarks/guard.py --from run.json   # compare a `fastgrad bench --json` file
    python benchmarks/guard.py --update   # re-measure and write the baseline

A comparison regresses when its ratio is more than ``--tolerance`` (20%) worse
than the baseline's: a speed-up below 0.8x its baseline value, or a floor ratio
above its baseline value / 0.8.  Ratios, not absolute times, so the guard
survives a noisy machine as long as both contenders slow down alike.

Exit status 1, with the offending rows, when a ratio regresses; 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass

from fastgrad._bench import runner

HERE = os.path.dirname(os.path.abspath(__file__))


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
    """The ``rows`` of a ``fastgrad bench --json`` file (or the baseline), by key."""
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default=os.path.join(HERE, "baseline.json"))
    p.add_argument("--from", dest="from_json", metavar="FILE", help="a `fastgrad bench --json` file")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--kernel")
    p.add_argument("--tolerance", type=float, default=0.2)
    p.add_argument("--update", action="store_true", help="write the measured ratios as the new baseline")
    args = p.parse_args(argv)

    path = args.from_json
    if path is None:
        path = args.baseline if args.update else os.path.join(tempfile.mkdtemp(), "current.json")
        rc = runner.main(quick=args.quick, kernel=args.kernel, json_path=path)
        if rc:
            return rc
        if args.update:
            print(f"baseline written to {path}")
            return 0
    bad, verdicts, missing = compare(load_rows(args.baseline), load_rows(path), args.tolerance)
    print("\n" + format_verdicts(verdicts))
    if missing and not (args.quick or args.kernel):
        print(f"\nnote: {len(missing)} baseline rows not measured in this run")
    if bad:
        print(f"\nREGRESSION: {len(bad)} ratio(s) more than {args.tolerance:.0%} below the baseline:")
        print(format_verdicts(bad))
        return 1
    print(f"\nno regression: {len(verdicts)} ratios within {args.tolerance:.0%} of the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
