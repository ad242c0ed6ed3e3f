"""Verification results: one row per implementation, function and input category, and
the tables that show them (plain Markdown for a terminal or a README, and the report's
LaTeX and Markdown blocks with the tested code's worst error beside a baseline's).

Every catalogue's verification writes this one format, so every report gets the same
table.

Examples
--------
>>> from derive.results import Result, VerificationTable, table
>>> run = VerificationTable([Result("generated", "loss", "moderate", 12, 0.5, 4.0),
...                          Result("naive", "loss", "moderate", 12, 3e16, 4.0)])
>>> print(table(run, ("loss",), ("generated", "naive"), tested="generated"))
| function | inputs | checked | generated max ULP | naive max ULP | bound | pass |
|---|---|---|---|---|---|---|
| loss | moderate | 12 | 0.50 | 3.0e+16 | 4.00 | yes |
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .latex import long_table_tex
from .markdown import table_md


@dataclass
class Result:
    """The worst error of one implementation of one function on one input category."""

    implementation: str
    function: str
    category: str
    inputs: int
    max_ulp: float
    bound: float

    @property
    def passed(self) -> bool:
        return self.max_ulp <= self.bound


@dataclass
class VerificationTable:
    """A verification's outcome: a :class:`Result` per implementation, function and input
    category, the extra checks (name -> bool, or a relative difference that must stay
    below 1e-6) and the time taken. The contract applies to the ``tested`` implementation."""

    results: list[Result] = field(default_factory=list)
    checks: dict = field(default_factory=dict)
    seconds: float = 0.0
    tested: str = "numeric"

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.implementation == self.tested and not r.passed]

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, value in self.checks.items()
                if (value is False) or (not isinstance(value, bool) and not value < 1e-6)]


def fmt(value: float) -> str:
    """A ULP error for a table: two decimals, none past 100, exponent form past a million."""
    if math.isinf(value):
        return "inf"
    if value >= 1e6:
        return f"{value:.1e}"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def fmt_value(x) -> str:
    """A value or a vector of values for a table: three significant digits, "0" and "nan"
    written as such, a vector in brackets."""
    arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    parts = ["nan" if np.isnan(v) else ("0" if v == 0 else f"{v:.3g}") for v in arr]
    return parts[0] if arr.size == 1 and np.ndim(x) == 0 else "[" + ", ".join(parts) + "]"


def table(report: VerificationTable, functions, implementations_shown, tested: str = "numeric") -> str:
    """Markdown: function x category -> max ULP of each implementation, bound, pass."""
    shown = [name for name in implementations_shown
             if any(r.implementation == name for r in report.results)]
    index = {(r.implementation, r.function, r.category): r for r in report.results}
    head = ["function", "inputs", "checked"] + [f"{name} max ULP" for name in shown] + ["bound", "pass"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    categories = list(dict.fromkeys(r.category for r in report.results))
    for function in functions:
        for category in categories:
            ours = index.get((tested, function, category))
            if ours is None:
                continue
            cells = [function, category, str(ours.inputs)]
            cells += [fmt(index[(name, function, category)].max_ulp) if (name, function, category) in index
                      else "-" for name in shown]
            cells += [fmt(ours.bound), "yes" if ours.passed else "**NO**"]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def to_json(report: VerificationTable, min_digits: int, extra: dict | None = None) -> str:
    """The results as JSON (sorted keys: the same results give the same bytes)."""
    data = {
        "results": [dict(implementation=r.implementation, function=r.function, category=r.category,
                         inputs=r.inputs, max_ulp=(None if math.isinf(r.max_ulp) else round(r.max_ulp, 3)),
                         bound=r.bound, passed=r.passed) for r in report.results],
        "checks": {k: (v if isinstance(v, bool) else float(f"{v:.3e}")) for k, v in report.checks.items()},
        "mpmath_min_digits": min_digits,
        **(extra or {}),
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def from_json(data: dict, tested: str = "numeric") -> VerificationTable:
    """The :class:`VerificationTable` of results read back from :func:`to_json`."""
    results = [Result(r["implementation"], r["function"], r["category"], r["inputs"],
                      math.inf if r["max_ulp"] is None else r["max_ulp"], r["bound"]) for r in data["results"]]
    return VerificationTable(results, dict(data["checks"]), tested=tested)


# --------------------------------------------------------------------------- report blocks
def _fmt_ulp(value):
    return "inf" if value is None else fmt(value)


def sci(value: float) -> str:
    """``value`` as LaTeX scientific notation, three digits."""
    mant, exp = f"{value:.2e}".split("e")
    return rf"{mant} \times 10^{{{int(exp)}}}"


def verification_rows(data: dict, tested: str = "numeric", baseline: str = "max-shift") -> list[tuple]:
    """Every row of the tested code's verification, with the baseline's error beside it."""
    index = {(r["implementation"], r["function"], r["category"]): r for r in data["results"]}
    out = []
    for ours in data["results"]:
        if ours["implementation"] != tested:
            continue
        other = index.get((baseline, ours["function"], ours["category"]))
        out.append((ours["function"], ours["category"], ours["inputs"], _fmt_ulp(ours["max_ulp"]),
                    _fmt_ulp(other["max_ulp"]) if other else "-",
                    fmt(ours["bound"]), "yes" if ours["passed"] else "NO"))
    return out


def verification_tex(data: dict, intro: str, tested: str = "numeric", baseline: str = "max-shift") -> list[str]:
    """The verification table and the other checks, in LaTeX (``intro``: LaTeX, before it)."""
    from .printing import _escape_tex

    out = [intro]
    out += long_table_tex(("function", "inputs", "values", "max ULP", baseline, "bound", "pass"),
                          verification_rows(data, tested, baseline), "llrrrrl")
    if not data["checks"]:
        return out
    out += [r"\subsection*{Finite differences and other checks}", r"\begin{itemize}"]
    for name, value in data["checks"].items():
        shown = ("passed" if value else "FAILED") if isinstance(value, bool) else f"${sci(value)}$"
        out.append(rf"\item {_escape_tex(name)}: {shown}")
    return out + [r"\end{itemize}"]


def verification_md(data: dict, intro: str, tested: str = "numeric", baseline: str = "max-shift") -> list[str]:
    """The verification table and the other checks, in Markdown (``intro`` before it)."""
    out = [intro, ""]
    out += table_md(("function", "inputs", "values", "max ULP", baseline, "bound", "pass"),
                    verification_rows(data, tested, baseline), ["---", "---", "---:", "---:", "---:", "---:", "---"])
    if not data["checks"]:
        return out
    out += ["", "### Finite differences and other checks", ""]
    for name, value in data["checks"].items():
        shown = ("passed" if value else "FAILED") if isinstance(value, bool) else f"{value:.2e}"
        out.append(f"- {name}: {shown}")
    return out
