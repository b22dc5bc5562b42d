"""Ratio table from a pytest-benchmark JSON file.

    pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python benchmarks/report.py bench.json
"""

import sys

from fastgrad._bench.report import format_table, groups_from_pytest_benchmark, rows_from_medians

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(format_table(rows_from_medians(groups_from_pytest_benchmark(sys.argv[1]))))
