"""A fastgrad kernel right after a multi-threaded numpy product, and the product right after the kernel.

    python benchmarks/after_blas.py [--json FILE] [--repeat 3]

Each row runs in a fresh process (libgomp reads its spin setting once, when it
loads): ``mse_grad`` at (10^6, 16) float64 on 2 threads, alone (0.2 s after
anything else) and right after a 400 x 400 ``M @ M``; and ``M @ M`` right
after the kernel against right after another product.  Once with fastgrad's
GOMP_SPINCOUNT (nothing set by the user), once with libgomp's default
(``GOMP_SPINCOUNT=300000``).  Medians of 20 calls per process; the ratios'
range over ``--repeat`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import fastgrad
be = sys.argv[1]
rng = np.random.default_rng(0)
A = rng.standard_normal((1_000_000, 16)); y = rng.standard_normal(1_000_000); w = rng.standard_normal(16)
M = rng.standard_normal((400, 400))
f = lambda: fastgrad.mse_grad(A, y, w, backend=be)
f(); f(); M @ M


def median_ms(before, timed, n=20):
    ts = []
    for _ in range(n):
        before()
        t0 = time.perf_counter(); timed(); ts.append(time.perf_counter() - t0)
        time.sleep(0.2)  # everyone's threads asleep before the next pair
    return float(np.median(ts) * 1e3)


def product_then_product():
    M @ M
    time.sleep(0.01)  # OpenBLAS's workers still spinning: a warm product


out = {"kernel_alone_ms": median_ms(lambda: None, f), "kernel_after_product_ms": median_ms(lambda: M @ M, f),
       "product_after_kernel_ms": median_ms(f, lambda: M @ M),
       "product_after_product_ms": median_ms(product_then_product, lambda: M @ M)}
print(json.dumps(out))
"""


def run(backend: str, spincount: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if spincount is not None:
        env["GOMP_SPINCOUNT"] = spincount
    r = subprocess.run([sys.executable, "-c", CHILD, backend], capture_output=True, text=True, env=env, check=True)
    m = json.loads(r.stdout.strip().splitlines()[-1])
    m["kernel_after_product_ratio"] = m["kernel_after_product_ms"] / m["kernel_alone_ms"]
    m["product_after_kernel_ratio"] = m["product_after_kernel_ms"] / m["product_after_product_ms"]
    return m


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write every measurement here")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    import fastgrad

    backends = [b for b in ("cython", "numba") if b in fastgrad.available_backends()]
    results = []
    for setting, spin in (("GOMP_SPINCOUNT=3000", "3000"), ("libgomp default (300000)", None)):
        for be in backends:
            runs = [run(be, spin) for _ in range(args.repeat)]
            results.append({"backend": be, "setting": setting, "runs": runs})
            k = sorted(r["kernel_after_product_ratio"] for r in runs)
            q = sorted(r["product_after_kernel_ratio"] for r in runs)
            alone = sorted(r["kernel_alone_ms"] for r in runs)
            print(f"{be:7s} {setting:26s} kernel alone {alone[0]:.1f}-{alone[-1]:.1f} ms; after a product "
                  f"{k[0]:.2f}-{k[-1]:.2f}x its time alone; a product after the kernel "
                  f"{q[0]:.2f}-{q[-1]:.2f}x its time after a product")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": os.uname().machine, "cores": os.cpu_count(), "results": results}, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
