"""The comparisons registry: what ``fastgrad check``, the tests and the benchmarks all run.

Two kinds of entries, registered by one module per family (``fastgrad/_bench/<family>.py``,
listed in ``FAMILIES``):

* a :class:`Check` is a correctness check on small random data: ``run(backend, rng)``
  returns ``(result, reference)`` pairs that must agree (``np.allclose`` with the
  check's ``rtol``/``atol``).  ``fastgrad check`` and ``tests/test_registry.py`` run
  every check on every available backend.  ``functions`` names the public
  functions (``fastgrad.__all__``) the check exercises.
* a :class:`Case` is one kernel at one shape for the benchmarks: a deterministic
  ``setup()`` building the data, and :class:`Contender` s timed on it in the same
  process — fastgrad's backends, the numpy/scipy expression they replace
  (``role='baseline'``) and, where there is one, the memory-bandwidth floor
  (``role='floor'``).  ``targets`` states the performance targets: for a
  baseline contender, the minimum speed-up of the fastgrad contender named in
  ``target_of``; for a floor, the maximum ratio fastgrad-time / floor-time.
  ``fastgrad bench`` and ``benchmarks/`` (pytest-benchmark) time them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Contender", "Case", "CASES", "register", "all_cases",
    "Check", "CHECKS", "register_check", "all_checks", "compare", "run_check", "CheckOutcome",
    "covered_functions", "FAMILIES",
]

FAMILIES = ("mse", "numdiff", "kron", "identities", "nn", "hessian", "sparse")


@dataclass(frozen=True)
class Contender:
    """One way of computing a case: ``make(data)`` returns the zero-argument callable to time."""

    name: str
    role: str  # 'fastgrad' | 'baseline' | 'floor'
    make: Callable[[dict], Callable[[], Any]]
    #: The callable runs multithreaded BLAS (OpenBLAS).  OpenBLAS's workers spin
    #: for about 0.1 s after a call; on a 2-core machine that halves the speed of
    #: whatever runs next (measured: the floor went from 7.8 to 16.7 ms right
    #: after a numpy matmul).  The runner lets them park before timing the next
    #: contender, so no contender is timed in another's wake.
    blas: bool = False


@dataclass
class Case:
    kernel: str
    label: str
    setup: Callable[[], dict]
    contenders: list[Contender]
    targets: dict[str, float] = field(default_factory=dict)
    target_of: str = "fastgrad-numba"
    quick: bool = False
    check: Callable[[dict, dict[str, Any]], None] | None = None
    family: str = ""
    #: The public functions (names in ``fastgrad.__all__``) the fastgrad contenders
    #: call; empty means ``(kernel,)``.
    functions: tuple[str, ...] = ()
    #: Seconds each contender is called before the timing (at least once): the
    #: steady state of a call whose first calls run another way, e.g. numgrad of
    #: a small @njit f, which runs f from Python while its compiled loop is not
    #: built (the first-contact benchmark times those first calls).
    warmup_s: float = 0.0

    @property
    def group(self) -> str:
        return f"{self.kernel}|{self.label}"

    @property
    def public_functions(self) -> tuple[str, ...]:
        return self.functions or (self.kernel,)


@dataclass
class Check:
    """A correctness check on small random data.

    ``run(backend, rng)`` computes with the public API on ``backend`` and returns
    ``(result, reference)`` pairs (arrays, floats, tuples of numbers) from data
    drawn from ``rng``; each pair must satisfy ``np.allclose(result, reference,
    rtol, atol)`` with the same shape.  ``functions`` are the public names it exercises.
    """

    name: str
    functions: tuple[str, ...]
    run: Callable[[str, np.random.Generator], list[tuple[Any, Any]]]
    rtol: float = 1e-6
    atol: float = 1e-8
    family: str = ""


CASES: list[Case] = []
CHECKS: list[Check] = []


def _family_of_caller(depth: int = 2) -> str:
    return sys._getframe(depth).f_globals["__name__"].rsplit(".", 1)[-1]


def register(case: Case) -> Case:
    """Add the benchmark ``case`` to the registry; its family is the registering module's name."""
    case.family = case.family or _family_of_caller()
    CASES.append(case)
    return case


def register_check(check: Check) -> Check:
    """Add ``check`` to the registry; its family is the registering module's name."""
    check.family = check.family or _family_of_caller()
    CHECKS.append(check)
    return check


def _load(family: str | None) -> None:
    for fam in FAMILIES if family is None else (family,):
        try:
            importlib.import_module(f"fastgrad._bench.{fam}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fastgrad._bench.{fam}":
                raise


def all_cases(kernel: str | None = None, quick: bool = False, family: str | None = None) -> list[Case]:
    """Every registered benchmark case (importing each family's module), optionally filtered."""
    _load(family)
    return [
        c for c in CASES
        if (kernel is None or c.kernel == kernel) and (not quick or c.quick)
        and (family is None or c.family == family)
    ]


def all_checks(family: str | None = None) -> list[Check]:
    """Every registered check (importing each family's module), optionally of one family."""
    _load(family)
    return [c for c in CHECKS if family is None or c.family == family]


def covered_functions() -> dict[str, list[str]]:
    """Public name -> the registry entries naming it (check names, case groups)."""
    out: dict[str, list[str]] = {}
    for chk in all_checks():
        for name in chk.functions:
            out.setdefault(name, []).append(chk.name)
    for case in all_cases():
        for name in case.public_functions:
            out.setdefault(name, []).append(case.group)
    return out


def compare(pairs: list[tuple[Any, Any]], rtol: float = 1e-6, atol: float = 1e-8) -> tuple[float, bool]:
    """(max relative error ``|got - ref| / (1 + |ref|)`` over the pairs, whether every pair agrees)."""
    if not pairs:
        raise ValueError("a check must return at least one (result, reference) pair")
    err, ok = 0.0, True
    for got, ref in pairs:
        g = np.asarray(got, dtype=np.float64)
        r = np.asarray(ref, dtype=np.float64)
        if g.shape != r.shape:
            return float("inf"), False
        if g.size:
            err = max(err, float(np.max(np.abs(g - r) / (1.0 + np.abs(r)))))
            ok &= bool(np.allclose(g, r, rtol=rtol, atol=atol))
    return err, ok


@dataclass
class CheckOutcome:
    err: float
    ok: bool
    status: str  # 'ok', 'MISMATCH' or 'ERROR <type>: <message>'


def run_check(check: Check, backend: str, seed: int = 0) -> CheckOutcome:
    """Run ``check`` on ``backend`` with ``np.random.default_rng(seed)``; exceptions become an ERROR status."""
    try:
        err, ok = compare(check.run(backend, np.random.default_rng(seed)), check.rtol, check.atol)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return CheckOutcome(float("nan"), False, f"ERROR {type(exc).__name__}: {exc}")
    return CheckOutcome(err, ok, "ok" if ok else "MISMATCH")
