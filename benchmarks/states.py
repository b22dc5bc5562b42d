"""Floor ratios by memory state, from the rounds of a ``fastgrad bench --json`` file.

This machine's memory runs in states that change within seconds (the same
512 MB read takes 8.6 ms or 14-16 ms).  The table of ``fastgrad bench`` takes
each contender's median over the rounds and divides medians, so a ratio can
pair a kernel's rounds in one state with the floor's in another.  A round times
every contender of a case within a fraction of a second, so here each round's
time is divided by the floor's time *in that round*, and the rounds of each
case are split by the floor's time: the third of the rounds where the floor was
fastest (the fast state, when the case saw it) and the third where it was
slowest.

    fastgrad bench --json run.json
    python benchmarks/states.py run.json [--kernel NAME]

Prints, for every fastgrad contender of a case with a floor: the floor's
median time and the median per-round ratio in the fastest and the slowest
third, the median per-round ratio over all rounds, and the table's ratio of
medians (with its target, if any).
"""

from __future__ import annotations

import json
import statistics
import sys


def state_rows(doc: dict, kernel: str | None = None) -> list[dict]:
    """One dict per (case, fastgrad contender) with a floor and per-round times in ``doc``."""
    out = []
    for g in doc["groups"]:
        if kernel is not None and g["kernel"] != kernel:
            continue
        rounds = g.get("rounds")
        roles = {name: role for name, (role, _) in g["medians"].items()}
        floors = [name for name, role in roles.items() if role == "floor"]
        if not rounds or not floors:
            continue
        floor = rounds[floors[0]]
        order = sorted(range(len(floor)), key=floor.__getitem__)
        third = max(1, len(order) // 3)
        fast, slow = order[:third], order[-third:]
        for name, role in roles.items():
            if role != "fastgrad":
                continue
            per_round = [t / f for t, f in zip(rounds[name], floor, strict=True)]
            target = g["targets"].get(floors[0]) if g.get("target_of") == name else None
            out.append({
                "kernel": g["kernel"], "label": g["label"], "contender": name,
                "floor_fast_ms": 1e3 * statistics.median(floor[i] for i in fast),
                "floor_slow_ms": 1e3 * statistics.median(floor[i] for i in slow),
                "fast": statistics.median(per_round[i] for i in fast),
                "slow": statistics.median(per_round[i] for i in slow),
                "all": statistics.median(per_round),
                "of_medians": g["medians"][name][1] / g["medians"][floors[0]][1],
                "target": target,
            })
    return out


def format_states(rows: list[dict]) -> str:
    head = ("kernel", "shape", "contender", "floor ms fast/slow", "fast", "slow", "all", "of medians", "target")
    lines = [head]
    for r in rows:
        lines.append((r["kernel"], r["label"], r["contender"],
                      f"{r['floor_fast_ms']:.3g} / {r['floor_slow_ms']:.3g}",
                      f"{r['fast']:.2f}×", f"{r['slow']:.2f}×", f"{r['all']:.2f}×", f"{r['of_medians']:.2f}×",
                      "" if r["target"] is None else f"≤ {r['target']:g}×"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Floor ratios by memory state, from the rounds of a "
                                                 "`fastgrad bench --json` file.")
    parser.add_argument("file")
    parser.add_argument("--kernel", help="only this kernel's cases")
    args = parser.parse_args(argv)
    with open(args.file) as fh:
        rows = state_rows(json.load(fh), args.kernel)
    if not rows:
        print("no case with a floor and per-round times in this file (written before the rounds were kept?)",
              file=sys.stderr)
        return 1
    print(format_states(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
