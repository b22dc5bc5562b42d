"""Turn benchmark medians into the ratio table of ``fastgrad bench`` (also used by benchmarks/report.py).

Reading pytest-benchmark JSON files is the benchmark suite's business: see benchmarks/report.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    """One comparison: the fastgrad contender against a baseline or a floor."""

    kernel: str
    label: str
    contender: str  # the fastgrad contender
    versus: str  # the baseline/floor contender
    role: str  # 'baseline' or 'floor'
    ratio: float  # baseline: speed-up (versus / fastgrad); floor: fastgrad / floor
    target: float | None  # baseline: minimum speed-up; floor: maximum ratio
    fastgrad_ms: float
    versus_ms: float

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.role == "baseline" else self.ratio <= self.target

    @property
    def key(self) -> str:
        return f"{self.kernel}|{self.label}|{self.contender}|{self.versus}"


def rows_from_medians(groups: list[dict]) -> list[Row]:
    """``groups``: dicts with kernel, label, targets, target_of and medians {contender: (role, seconds)}."""
    rows = []
    for g in groups:
        med = g["medians"]
        for name, (role, t) in med.items():
            if role != "fastgrad":
                continue
            for other, (orole, ot) in med.items():
                if orole == "fastgrad":
                    continue
                ratio = ot / t if orole == "baseline" else t / ot
                target = g["targets"].get(other) if name == g["target_of"] else None
                rows.append(Row(g["kernel"], g["label"], name, other, orole, ratio, target, t * 1e3, ot * 1e3))
    return rows


def _factor(x: float) -> str:
    """``x`` to about two significant figures (three just above 1, where 1.0 would hide the difference)."""
    if x < 1.095:
        return f"{x:.2f}"
    return f"{x:.1f}" if x < 9.95 else f"{x:.0f}"


def ratio_words(ratio: float, role: str) -> str:
    """How a table or plot words a ratio.

    ``role`` 'baseline': ``ratio`` is the speed-up of fastgrad (baseline time / fastgrad time);
    at least 1 reads "2.5× faster", below 1 reads as the slow-down, so 0.43 reads "2.3× slower"
    (never "0.43× faster").  ``role`` 'floor': ``ratio`` is fastgrad time / floor time and reads
    "1.08× the floor".
    """
    if role == "floor":
        return f"{ratio:.2f}× the floor"
    if ratio >= 1.0:
        return f"{_factor(ratio)}× faster"
    if ratio <= 0.0:  # a zero or negative timing: nothing sensible to say
        return f"{ratio:.2f}× (invalid)"
    return f"{_factor(1.0 / ratio)}× slower"


#: The table's columns: header, alignment ('<' text, '>' numbers).
_COLUMNS = (("kernel", "<"), ("shape", "<"), ("fastgrad", "<"), ("vs", "<"), ("fastgrad ms", ">"),
            ("vs ms", ">"), ("ratio", ">"), ("target", "<"), ("ok", "<"))


def _cells(r: Row, markdown: bool) -> list[str]:
    sign = "≥" if r.role == "baseline" else "≤"
    target = f"{sign} {r.target:g}×" if r.target else ""
    ok = {True: "yes", False: "**no**" if markdown else "NO", None: ""}[r.ok]
    return [r.kernel, r.label, r.contender, r.versus, f"{r.fastgrad_ms:.4g}", f"{r.versus_ms:.4g}",
            ratio_words(r.ratio, r.role), target, ok]


def format_table(rows: list[Row], markdown: bool = True) -> str:
    """The rows as a Markdown table (the default; benchmarks/report.py) or as aligned plain text.

    Plain text (``markdown=False``, what ``fastgrad bench`` prints in a terminal): columns padded
    to their widest cell, two spaces apart, under a rule of dashes; no pipes.
    """
    head = [h for h, _ in _COLUMNS]
    body = [_cells(r, markdown) for r in rows]
    if markdown:
        rule = ["---:" if a == ">" else "---" for _, a in _COLUMNS]
        return "\n".join("| " + " | ".join(c) + " |" for c in [head, rule, *body])
    widths = [max(len(c[i]) for c in [head, *body]) for i in range(len(head))]
    rule = ["-" * w for w in widths]
    lines = []
    for cells in [head, rule, *body]:
        padded = [f"{c:{a}{w}}" for c, (_, a), w in zip(cells, _COLUMNS, widths, strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
