"""Performance regression guard.

    python benchmarks/guard.py            # re-measure (full), compare with benchmarks/baseline.json
    python benchmarks/guard.py --quick    # only the quick cases
    python benchmarks/guard.py --from run.json   # compare a `fastgrad bench --json` file
    python benchmarks/guard.py --update   # re-measure and write the baseline

Exit status 1, with the offending rows, when a ratio falls more than 20% below
its baseline (see fastgrad/_bench/guard.py); 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from fastgrad._bench import guard, runner

HERE = os.path.dirname(os.path.abspath(__file__))


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
    bad, verdicts, missing = guard.compare(guard.load_rows(args.baseline), guard.load_rows(path), args.tolerance)
    print("\n" + guard.format_verdicts(verdicts))
    if missing and not (args.quick or args.kernel):
        print(f"\nnote: {len(missing)} baseline rows not measured in this run")
    if bad:
        print(f"\nREGRESSION: {len(bad)} ratio(s) more than {args.tolerance:.0%} below the baseline:")
        print(guard.format_verdicts(bad))
        return 1
    print(f"\nno regression: {len(verdicts)} ratios within {args.tolerance:.0%} of the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
