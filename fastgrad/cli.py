"""The ``fastgrad`` command line (also ``python -m fastgrad``).

    fastgrad info     versions, backends, threads, CPU, BLAS, Numba cache dir
    fastgrad check    every registered check (fastgrad/_bench) on every backend
    fastgrad demo     a least-squares fit by gradient descent, done right (loss trace, PNG)
    fastgrad bench    the benchmark comparisons, as a ratio table
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence

import numpy as np

from . import __version__, _config


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - best effort, numpy's config format varies
        return "unknown"


def info() -> int:
    import numba

    lines = [("fastgrad", __version__), ("python", platform.python_version()),
             ("numpy", np.__version__), ("numba", numba.__version__)]
    try:
        import scipy

        lines.append(("scipy", scipy.__version__))
    except ImportError:
        lines.append(("scipy", "not installed"))
    backends = _config.available_backends()
    lines.append(("cython build", _config.cython_build()))
    default, why = _config.default_backend_and_reason()
    lines += [
        ("backends", ", ".join(backends)),
        ("default backend", f"{default} ({why})"),
        ("threads", f"{_config.get_num_threads()} (of {numba.config.NUMBA_NUM_THREADS})"),
        ("numba threading layer", str(numba.config.THREADING_LAYER)),
        ("cpu", f"{_cpu_name()} ({os.cpu_count()} logical cores)"),
        ("blas", _blas()),
        ("numba cache dir", _config.numba_cache_description()),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    return 0


def check(seed: int = 0) -> int:
    """Run every registered check (``fastgrad._bench``) on every backend; table; 1 on a mismatch."""
    from ._bench import all_checks, run_check

    backends = _config.available_backends()
    rows = []
    failed = False
    for chk in all_checks():
        for backend in backends:
            res = run_check(chk, backend, seed)
            failed |= not res.ok
            rows.append((chk.name, backend, f"{res.err:.1e}", res.status))
    head = ("kernel", "backend", "max rel err", "status")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"\n{len(rows)} checks, {'FAILED' if failed else 'all passed'} "
          f"(backends: {', '.join(backends)}; reference: numpy)")
    return 1 if failed else 0


def _int_at_least(minimum: int, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if n < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {n}")
    return n


def _nonnegative_int(value: str) -> int:
    """argparse type: an int >= 0 (a negative one is a usage error, exit code 2)."""
    return _int_at_least(0, value)


def _positive_int(value: str) -> int:
    """argparse type: an int >= 1 (zero or a negative one is a usage error, exit code 2)."""
    return _int_at_least(1, value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastgrad", description="Fast, correct gradient kernels.")
    p.add_argument("--version", action="version", version=f"fastgrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, backends, threads, CPU, BLAS, Numba cache dir")
    c = sub.add_parser("check", help="check every kernel of every backend against numpy")
    c.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seed of numpy.random.default_rng for the checks' inputs (an int >= 0; default 0)")
    from . import demo

    demo.add_arguments(
        sub.add_parser("demo", help="a least-squares fit by gradient descent, done right (loss trace, PNG)")
    )
    b = sub.add_parser("bench", help="time fastgrad against numpy/scipy and the bandwidth floors")
    b.add_argument("--quick", action="store_true", help="only the quick cases (under a minute)")
    b.add_argument("--kernel", metavar="NAME", help="only this kernel (e.g. mse_grad)")
    b.add_argument("--json", metavar="FILE", help="write the medians and ratios as JSON")
    b.add_argument("--plot", metavar="FILE", help="write a bar chart PNG (needs matplotlib)")
    b.add_argument("--rounds", type=_positive_int,
                   help="interleaved timing rounds, >= 1 (default 5 quick, 15 full)")
    b.add_argument("--markdown", action="store_true",
                   help="print the table as Markdown (default: aligned plain text for a terminal)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "info":
        return info()
    if args.command == "check":
        return check(args.seed)
    if args.command == "demo":
        from . import demo

        return demo.run(args)
    if args.command == "bench":
        from ._bench import runner

        return runner.main(quick=args.quick, kernel=args.kernel, json_path=args.json,
                           plot_path=args.plot, rounds=args.rounds, markdown=args.markdown)
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects others


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
