"""Paired benchmark runs of two versions of fastgrad: has any row fallen?

    python benchmarks/paired.py OLD_TREE --out DIR [--repeat 4] [--rounds 7] [--kernel NAME ...]
    python benchmarks/paired.py --summary DIR

``OLD_TREE`` is a checkout of the other version with its extensions built in
place (``git worktree add ../old REV && (cd ../old && python setup.py build_ext
--inplace)``); the new version is this tree.  For every kernel both trees
have, ``fastgrad bench --kernel NAME --json`` runs in fresh processes,
alternating the versions in the order AB BA AB BA ... (``--repeat`` runs of
each), so that a drift of the machine's speed during the runs falls on both
sides alike.  Each run of the old version is paired with the run of the new
one next to it.

For each row (kernel, shape, contender, versus) the summary gives the speed
of the new version over the old, per pair, from the row's own ratio (against
numpy/scipy or the floor timed in the same process, which cancels most of the
machine's changes between processes), and from the contender's own time.
A ratio below 1 is slower.  Rows whose median ratio is below 0.95 are listed
last, with the count of pairs in which the new version was the slower one.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

NEW_TREE = Path(__file__).resolve().parents[1]


def kernels_of(tree: Path) -> list[str]:
    code = "import fastgrad._bench as b; print('\\n'.join(sorted({c.kernel for c in b.all_cases()})))"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def run_one(tree: Path, kernel: str, rounds: int | None, path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "fastgrad", "bench", "--kernel", kernel, "--json", str(path)]
    if rounds:
        cmd += ["--rounds", str(rounds)]
    r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if r.returncode not in (0, 1):  # 1: a target missed, still a measurement
        raise RuntimeError(f"{tree} {kernel}: {r.stderr[-2000:]}")


def order(repeat: int) -> list[str]:
    """AB BA AB ...: each version runs ``repeat`` times, first and last places shared out evenly."""
    seq = []
    for i in range(repeat):
        seq += ["old", "new"] if i % 2 == 0 else ["new", "old"]
    return seq


def _rows(path: str) -> dict:
    return {r["key"]: r for r in json.loads(Path(path).read_text())["rows"]}


def summary(out: Path) -> list[tuple]:
    """Per row: (key, median speed ratio, per-pair ratios, per-pair time ratios)."""
    ratios: dict = {}
    times: dict = {}
    for new_path in sorted(glob.glob(str(out / "*__new_*.json"))):
        old_path = new_path.replace("__new_", "__old_")
        if not Path(old_path).exists():
            continue
        old, new = _rows(old_path), _rows(new_path)
        for key in new.keys() & old.keys():
            n, o = new[key], old[key]
            # the floor rows hold time / floor (lower is better), the others a speed-up
            speed = o["ratio"] / n["ratio"] if n["role"] == "floor" else n["ratio"] / o["ratio"]
            ratios.setdefault(key, []).append(speed)
            times.setdefault(key, []).append(o["fastgrad_ms"] / n["fastgrad_ms"])
    rows = [(k, statistics.median(v), v, times[k]) for k, v in ratios.items()]
    rows.sort(key=lambda r: r[1])
    return rows


def print_summary(out: Path) -> None:
    rows = summary(out)
    fmt = "{:>6}  {:>11}  {:>6}  {:>11}  {}"
    print(fmt.format("ratio", "range", "time", "range", "row (kernel | shape | contender | versus)"))
    for key, med, v, t in rows:
        print(fmt.format(f"{med:.3f}", f"{min(v):.2f}-{max(v):.2f}", f"{statistics.median(t):.3f}",
                         f"{min(t):.2f}-{max(t):.2f}", key))
    slow = [(key, med, v) for key, med, v, _ in rows if med < 0.95]
    print(f"\n{len(rows)} rows, {len(slow)} with a median below 0.95:")
    for key, med, v in slow:
        print(f"  {med:.3f}  slower in {sum(x < 1 for x in v)} of {len(v)} pairs  {key}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old_tree", nargs="?")
    p.add_argument("--out", required=False)
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--kernel", action="append")
    p.add_argument("--summary", metavar="DIR")
    args = p.parse_args(argv)
    if args.summary:
        print_summary(Path(args.summary))
        return 0
    if not args.old_tree or not args.out:
        p.error("OLD_TREE and --out are needed to run")
    old_tree = Path(args.old_tree).resolve()
    out = Path(args.out).resolve()  # the runs write from inside each tree
    out.mkdir(parents=True, exist_ok=True)
    kernels = args.kernel or sorted(set(kernels_of(old_tree)) & set(kernels_of(NEW_TREE)))
    trees = {"old": old_tree, "new": NEW_TREE}
    for kernel in kernels:
        counts = {"old": 0, "new": 0}
        for side in order(args.repeat):
            counts[side] += 1
            path = out / f"{kernel}__{side}_{counts[side]}.json"
            if not path.exists():  # a rerun resumes where it stopped
                run_one(trees[side], kernel, args.rounds, path)
        print(f"{kernel}: done", flush=True)
    print_summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
