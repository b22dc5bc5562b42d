"""The comparisons registry shared by ``benchmarks/`` (pytest-benchmark) and ``fastgrad bench``.

A :class:`Case` is one kernel at one shape: a deterministic ``setup()`` building
the data, and :class:`Contender` s timed on it in the same process — fastgrad's
backends, the numpy/scipy expression they replace (``role='baseline'``) and,
where there is one, the memory-bandwidth floor (``role='floor'``).  ``targets``
states SPEC section 8's requirements: for a baseline contender, the minimum
speed-up of the fastgrad contender named in ``target_of``; for a floor, the
maximum ratio fastgrad-time / floor-time.

Each family registers its cases in its own module (``fastgrad/_bench/<family>.py``),
listed in ``FAMILIES``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Contender", "Case", "CASES", "register", "all_cases", "FAMILIES"]

FAMILIES = ("mse", "numdiff", "kron", "nn")


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

    @property
    def group(self) -> str:
        return f"{self.kernel}|{self.label}"


CASES: list[Case] = []


def register(case: Case) -> Case:
    """Add ``case`` to the registry; its family is the registering module's name."""
    case.family = case.family or sys._getframe(1).f_globals["__name__"].rsplit(".", 1)[-1]
    CASES.append(case)
    return case


def all_cases(kernel: str | None = None, quick: bool = False, family: str | None = None) -> list[Case]:
    """Every registered case (importing each family's module), optionally filtered."""
    for fam in FAMILIES if family is None else (family,):
        try:
            importlib.import_module(f"fastgrad._bench.{fam}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fastgrad._bench.{fam}":
                raise
    return [
        c for c in CASES
        if (kernel is None or c.kernel == kernel) and (not quick or c.quick)
        and (family is None or c.family == family)
    ]
