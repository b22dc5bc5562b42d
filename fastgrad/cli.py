"""The ``fastgrad`` command line (also ``python -m fastgrad``).

    fastgrad info     versions, backends, threads, CPU, BLAS, Numba cache dir
    fastgrad check    every kernel of every backend against the numpy reference
    fastgrad demo     seed 004's gradient-descent experiment, done right
    fastgrad bench    the benchmark comparisons of SPEC section 8, as a ratio table
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence

import numpy as np

from . import __version__, _config

# Modules that define ``_self_checks()``: a list of (name, fn), fn(backend, rng)
# returning (result, reference) pairs of arrays/floats for small random data.
CHECK_MODULES = ("mse", "numdiff", "kron", "identities", "nn")


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
    if "cython" in backends:
        from ._cython import mse as cy

        lines.append(("cython build", f"compiled, OpenMP {'on' if cy.has_openmp() else 'OFF (serial)'}"))
    else:
        lines.append(("cython build", "not built (" + (_config._reason("cython") or "") + ")"))
    lines += [
        ("backends", ", ".join(backends)),
        ("default backend", _config.get_backend()),
        ("threads", f"{_config.get_num_threads()} (of {numba.config.NUMBA_NUM_THREADS})"),
        ("numba threading layer", str(numba.config.THREADING_LAYER)),
        ("cpu", f"{_cpu_name()} ({os.cpu_count()} logical cores)"),
        ("blas", _blas()),
        ("numba cache dir", numba.config.CACHE_DIR or "next to the sources (__pycache__)"),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    return 0


def _max_err(got, ref) -> tuple[float, bool]:
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf"), False
    if got.size == 0:
        return 0.0, True
    err = float(np.max(np.abs(got - ref) / (1.0 + np.abs(ref))))
    return err, bool(np.allclose(got, ref, rtol=1e-6, atol=1e-8))


def check(seed: int = 0) -> int:
    """Run every ``_self_checks`` entry on every backend; table; 1 on a mismatch."""
    backends = [b for b in _config.available_backends()]
    rows = []
    failed = False
    for modname in CHECK_MODULES:
        try:
            mod = importlib.import_module(f"fastgrad.{modname}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fastgrad.{modname}":
                continue
            raise
        for name, fn in getattr(mod, "_self_checks", lambda: [])():
            for backend in backends:
                rng = np.random.default_rng(seed)
                try:
                    pairs = fn(backend, rng)
                    errs = [_max_err(g, r) for g, r in pairs]
                    err = max(e for e, _ in errs)
                    ok = all(o for _, o in errs)
                    status = "ok" if ok else "MISMATCH"
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    err, ok, status = float("nan"), False, f"ERROR {type(exc).__name__}: {exc}"
                failed |= not ok
                rows.append((name, backend, f"{err:.1e}", status))
    head = ("kernel", "backend", "max rel err", "status")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"\n{len(rows)} checks, {'FAILED' if failed else 'all passed'} "
          f"(backends: {', '.join(backends)}; reference: numpy)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastgrad", description="Fast, correct gradient kernels.")
    p.add_argument("--version", action="version", version=f"fastgrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, backends, threads, CPU, BLAS, Numba cache dir")
    c = sub.add_parser("check", help="check every kernel of every backend against numpy")
    c.add_argument("--seed", type=int, default=0)
    from . import demo

    demo.add_arguments(sub.add_parser("demo", help="seed 004's experiment done right (loss trace, PNG)"))
    b = sub.add_parser("bench", help="time fastgrad against numpy/scipy and the bandwidth floors")
    b.add_argument("--quick", action="store_true", help="only the quick cases (under a minute)")
    b.add_argument("--kernel", metavar="NAME", help="only this kernel (e.g. mse_grad)")
    b.add_argument("--json", metavar="FILE", help="write the medians and ratios as JSON")
    b.add_argument("--plot", metavar="FILE", help="write a bar chart PNG (needs matplotlib)")
    b.add_argument("--rounds", type=int, help="interleaved timing rounds (default 5 quick, 15 full)")
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
                           plot_path=args.plot, rounds=args.rounds)
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects others


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
