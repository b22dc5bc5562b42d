"""First contact: what a new user waits for, measured in fresh processes.

    python benchmarks/first_contact.py [--json benchmarks/first_contact.json] [--repeat 3]

Rows (medians over ``--repeat`` fresh processes, wall-clock seconds):

* the README tour (every Python block of its "A short tour" section but the
  dask one, which starts a cluster of worker processes, in one process) with an
  empty Numba cache and with a warm one;
* the first call of each public function in a fresh process, per backend, cold
  (empty Numba cache) and warm (the cache the cold run wrote), the import of
  fastgrad excluded and reported separately;
* ``numgrad`` over a user's ``@njit`` f in a second process: the first call's time
  minus the time Numba takes to compile the user's f alone;
* a small parallel call while another process keeps one core busy: ``numgrad`` of
  an ``@njit`` f on 2 elements, default settings against ``parallel=False``.

Each process gets its own ``NUMBA_CACHE_DIR`` so nothing else's cache is used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CALLS = {
    "mse_grad (1000, 8) float64": (
        "A = rng.standard_normal((1000, 8)); y = rng.standard_normal(1000); w = np.zeros(8)",
        "fastgrad.mse_grad(A, y, w, backend=B)"),
    "mse_grad (1000, 8) float32": (
        "A = rng.standard_normal((1000, 8)).astype('f4'); y = A[:, 0].copy(); w = np.zeros(8, 'f4')",
        "fastgrad.mse_grad(A, y, w, backend=B)"),
    "mse_grad (200000, 8) parallel": (
        "A = rng.standard_normal((200000, 8)); y = rng.standard_normal(200000); w = np.zeros(8)",
        "fastgrad.mse_grad(A, y, w, backend=B)"),
    "mse_numgrad (1000, 8)": (
        "A = rng.standard_normal((1000, 8)); y = rng.standard_normal(1000); w = np.zeros(8)",
        "fastgrad.mse_numgrad(A, y, w, backend=B)"),
    "kron (30, 30) x (30, 30)": (
        "P = rng.standard_normal((30, 30))", "fastgrad.kron(P, P, backend=B)"),
    "jacobian_Wx (50,), n=40": ("x = rng.standard_normal(50)", "fastgrad.jacobian_Wx(x, 40, backend=B)"),
    "dense_backward (1000, 32, 4)": (
        "X = rng.standard_normal((1000, 32)); W = rng.standard_normal((32, 4)); dZ = rng.standard_normal((1000, 4))",
        "fastgrad.dense_backward(X, W, dZ, backend=B)"),
    "mlp2_loss_and_grad (1000, 32, 64, 10)": (
        "X = rng.standard_normal((1000, 32)); yl = rng.integers(0, 10, 1000); W1 = rng.standard_normal((32, 64)); "
        "b1 = np.zeros(64); W2 = rng.standard_normal((64, 10)); b2 = np.zeros(10)",
        "fastgrad.mlp2_loss_and_grad(X, yl, W1, b1, W2, b2, backend=B)"),
}

NJIT_F = """
from numba import njit
@njit
def f(x):
    s = 0.0
    for i in range(x.size):
        s += x[i] * x[i] + np.sin(x[i])
    return s
"""


def _run(code: str, cache: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def first_call(name: str, backend: str, cache: str) -> dict:
    setup, call = CALLS[name]
    code = textwrap.dedent(f"""
        import json, time
        t0 = time.perf_counter()
        import numpy as np, fastgrad
        t_import = time.perf_counter() - t0
        rng = np.random.default_rng(0); B = {backend!r}
        {setup}
        t0 = time.perf_counter(); {call}; t1 = time.perf_counter() - t0
        t0 = time.perf_counter(); {call}; t2 = time.perf_counter() - t0
        print(json.dumps({{"import": t_import, "first": t1, "second": t2}}))
    """)
    return _run(code, cache)


def tour_code() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    # the dask example starts a local cluster of worker processes: an optional extra, timed apart
    body = "\n".join(b for b in blocks if "dask" not in b)
    return ("import time, json\nt0 = time.perf_counter()\nimport contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n" + textwrap.indent(body, "    ")
            + "\nprint(json.dumps({'tour': time.perf_counter() - t0}))\n")


def user_njit_second_process(cache: str) -> dict:
    code = "import json, time\nimport numpy as np\n" + NJIT_F + textwrap.dedent("""
        x = np.linspace(-1, 1, 50)
        t0 = time.perf_counter(); f.compile("float64(float64[::1])"); t_f = time.perf_counter() - t0
        import fastgrad
        t0 = time.perf_counter(); fastgrad.numgrad(f, x); t_first = time.perf_counter() - t0
        t0 = time.perf_counter(); fastgrad.numgrad(f, x); t_second = time.perf_counter() - t0
        print(json.dumps({"compile_f": t_f, "first": t_first, "second": t_second}))
    """)
    _run(code, cache)  # the first process fills the cache
    return _run(code, cache)


def small_parallel_with_busy_core(cache: str) -> dict:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        code = "import json, time\nimport numpy as np, fastgrad\n" + NJIT_F + textwrap.dedent("""
            x = np.array([0.3, -0.7])
            fastgrad.numgrad(f, x); fastgrad.numgrad(f, x, parallel=False)
            def med(fn, n=200):
                ts = []
                for _ in range(n):
                    t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
                ts.sort(); return ts[n // 2]
            print(json.dumps({"default": med(lambda: fastgrad.numgrad(f, x)),
                              "serial": med(lambda: fastgrad.numgrad(f, x, parallel=False))}))
        """)
        return _run(code, cache)
    finally:
        busy.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    import fastgrad

    rows: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                              "fastgrad": fastgrad.__version__}}
    med = statistics.median
    tours_cold, tours_warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            tours_cold.append(_run(tour_code(), cache)["tour"])
            tours_warm.append(_run(tour_code(), cache)["tour"])
    rows["README tour"] = {"cold": med(tours_cold), "warm": med(tours_warm), "target_cold": 2.5}
    print(f"README tour: cold {med(tours_cold):.2f} s, warm {med(tours_warm):.2f} s (target cold <= 2.5 s)")
    first = {}
    for backend in fastgrad.available_backends():
        if backend == "numpy":
            continue
        for name in CALLS:
            cold, warm, imp = [], [], []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as cache:
                    c = first_call(name, backend, cache)
                    w = first_call(name, backend, cache)
                cold.append(c["first"])
                warm.append(w["first"])
                imp.append(w["import"])
            first[f"{name} | {backend}"] = {"cold": med(cold), "warm": med(warm), "import": med(imp)}
            print(f"first call {name:40s} {backend:7s} cold {med(cold) * 1e3:8.1f} ms  warm "
                  f"{med(warm) * 1e3:7.1f} ms  (import {med(imp) * 1e3:.0f} ms)")
    rows["first call"] = first
    extra = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            r = user_njit_second_process(cache)
        extra.append(r["first"] - r["compile_f"])
    rows["numgrad over a user @njit f, second process"] = {"beyond_user_compile": med(extra), "target": 0.1}
    print(f"numgrad over a user @njit f, 2nd process: {med(extra) * 1e3:.0f} ms beyond compiling f "
          f"(target <= 100 ms)")
    with tempfile.TemporaryDirectory() as cache:
        r = small_parallel_with_busy_core(cache)
    rows["small parallel call, one core busy"] = {**r, "ratio": r["default"] / r["serial"], "target": 2.0}
    print(f"numgrad of an @njit f on 2 elements with a core busy: default {r['default'] * 1e6:.0f} us, "
          f"serial {r['serial'] * 1e6:.0f} us, ratio {r['default'] / r['serial']:.2f} (target <= 2)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
