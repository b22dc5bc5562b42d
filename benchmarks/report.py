"""Ratio table (Markdown) from a benchmark JSON file.

Accepts either a ``fastgrad bench --json FILE`` file or a pytest-benchmark one:

    fastgrad bench --json bench.json --plot docs/bench.png
    python benchmarks/report.py bench.json            # the README's Performance table

    pytest benchmarks --benchmark-enable --benchmark-json=pb.json
    python benchmarks/report.py pb.json

``--targets`` keeps only the rows that carry a performance target.
"""

import json
import sys

from fastgrad._bench.report import format_table, rows_from_medians


def groups_from_pytest_benchmark(path):
    """Read a ``pytest --benchmark-json`` file written by the benchmarks/ suite (see _harness.py)."""
    with open(path) as fh:
        data = json.load(fh)
    groups = {}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        g = groups.setdefault(b["group"], {
            "kernel": info["kernel"], "label": info["label"], "targets": info["targets"],
            "target_of": info["target_of"], "medians": {},
        })
        g["medians"][info["contender"]] = (info["role"], b["stats"]["median"])
    return list(groups.values())


def load_rows(path):
    with open(path) as fh:
        doc = json.load(fh)
    groups = doc["groups"] if "groups" in doc else groups_from_pytest_benchmark(path)
    for g in groups:  # JSON turns (role, seconds) tuples into lists
        g["medians"] = {k: tuple(v) for k, v in g["medians"].items()}
    return rows_from_medians(groups)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--targets"]
    if len(args) != 1:
        sys.exit(__doc__)
    rows = load_rows(args[0])
    if "--targets" in sys.argv:
        rows = [r for r in rows if r.target is not None]
    print(format_table(rows))
