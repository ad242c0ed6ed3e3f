"""Reports: LaTeX (PDF where a TeX engine exists) and Markdown, from the proofs and the
verification run.

Every formula is printed from the checked derivation objects, every number is read
from the verification results (``reports/verification.json``) or computed here from
the generated code: nothing is typed by hand. The same inputs give the same bytes (no
timestamps; figures without metadata).
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp
from sympy import KroneckerDelta, Sum
from sympy.printing.latex import LatexPrinter

from . import codegen, engine, verify
from .softmax import catalogue
from .softmax import definitions as D

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
NAME = "softmax_cross_entropy"
TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended latexmk"

SECTIONS = [
    ("probability", "Softmax is a probability vector"),
    ("jacobian", "The softmax Jacobian"),
    ("losses", "The softmax loss and cross entropy"),
    ("gradient", "The gradient of the loss"),
    ("fc", "Through the fully connected layer"),
    ("stable", "Stable forms"),
    ("hessian", "Hessian and convexity"),
    ("options", "Class weights, ignored targets, label smoothing and reductions"),
    ("binary", "Binary cross entropy with logits"),
    ("fcbatch", "The FC layer and the loss in one call"),
    ("examples", "Worked examples"),
]

# --------------------------------------------------------------------------- printing math
_Zsym = sp.Symbol("Z")
_U = sp.Wild("u")


class MathPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the notation of the report.

    Sums that leave one index out (``Sum(f (1 - delta_{s,k}))``) print as
    ``\\sum_{s \\ne k} f``; Indexed objects as ``a_{j}``; a log1p as ``\\operatorname{log1p}``.
    """

    def __init__(self):
        super().__init__({"long_frac_ratio": 3, "mul_symbol": None})

    def _print_Sum(self, expr):
        if len(expr.limits) == 1:
            var, lo, hi = expr.limits[0]
            body = expr.function
            for factor in sp.Mul.make_args(body):
                if (isinstance(factor, sp.Add) and len(factor.args) == 2 and 1 in factor.args):
                    other = factor.args[0] if factor.args[1] == 1 else factor.args[1]
                    if isinstance(-other, KroneckerDelta) and var in (-other).args:
                        skip = [x for x in (-other).args if x != var][0]
                        rest = sp.Mul(*[f for f in sp.Mul.make_args(body) if f is not factor])
                        return (r"\sum_{%s \ne %s} %s" % (self._print(var), self._print(skip),
                                                           self.parenthesize(rest, 51)))
            if (lo, hi) in ((1, D.T), (1, D.N)):
                return r"\sum_{%s} %s" % (self._print(var), self.parenthesize(body, 51))
        return super()._print_Sum(expr)

    def _print_Indexed(self, expr):
        base = self._print(expr.base.label)
        idx = " ".join(self._print(i) for i in expr.indices)
        return f"{base}_{{{idx}}}"

    def _print_log1p(self, expr, exp=None):
        return r"\operatorname{log1p}\left(%s\right)" % self._print(expr.args[0])


def display(expr: sp.Expr) -> sp.Expr:
    """Abbreviate for reading: Z for the partition function, S_u for e^{a_u}/Z, a_u for
    the FC logit sum_n W_un x_n + b_u."""
    u = sp.Wild("u", properties=[lambda e: e.is_Symbol or e.is_Integer])
    expr = expr.replace(D.fc_logit(u), D.a[u]) if expr.has(D.W) else expr
    if expr.has(D.X):  # a batch: a_{beta r}, Z_beta, S_{beta r}
        v = sp.Wild("v", properties=[lambda e: e.is_Symbol or e.is_Integer])
        expr = expr.replace(D.batch_logit(v, u), D.a[v, u])
        expr = canonical_rows(expr)
    # a sum over a handful of concrete terms (the two classes of the binary loss) reads
    # better written out
    expr = expr.replace(lambda e: isinstance(e, Sum) and all(
        lim[1].is_Integer and lim[2].is_Integer and lim[2] - lim[1] < 5 for lim in e.limits)
        and e.has(sp.Piecewise), lambda e: e.doit())
    expr = expr.xreplace({D.partition(): _Zsym})
    return expr.replace(lambda e: isinstance(e, sp.Mul), _abbreviate_softmax)


_ZB = sp.IndexedBase("Z")


def canonical_rows(expr):
    """Sum_r e^{a_{v r}} -> Z_v and e^{a_{v u}} / Z_v -> S_{v u} for a batch."""
    def is_batch_partition(e):
        return (isinstance(e, Sum) and isinstance(e.function, sp.exp)
                and isinstance(e.function.args[0], sp.Indexed) and e.function.args[0].base == D.a
                and len(e.function.args[0].indices) == 2 and e.function.args[0].indices[1] == e.limits[0][0])
    expr = expr.replace(is_batch_partition, lambda e: _ZB[e.function.args[0].indices[0]])

    def fold(product):
        factors = list(product.args)
        for f in factors:
            if isinstance(f, sp.exp) and isinstance(f.args[0], sp.Indexed) and len(f.args[0].indices) == 2:
                row, col = f.args[0].indices
                if _ZB[row] ** -1 in factors:
                    factors.remove(f)
                    factors.remove(_ZB[row] ** -1)
                    return sp.Mul(*factors) * _S[row, col]
        return product
    return expr.replace(lambda e: isinstance(e, sp.Mul), fold)


_S = sp.IndexedBase("S")


def _abbreviate_softmax(product: sp.Mul) -> sp.Expr:
    """In a product, e^{a_u} Z^{-1} -> S_u (once)."""
    factors = list(product.args)
    if _Zsym ** -1 not in factors:
        return product
    for f in factors:
        if isinstance(f, sp.exp) and isinstance(f.args[0], sp.Indexed) and f.args[0].base == D.a:
            factors.remove(f)
            factors.remove(_Zsym ** -1)
            return sp.Mul(*factors) * _S[f.args[0].indices[0]]
    return product


_PRINTER = MathPrinter()


def tex(expr: sp.Expr) -> str:
    return _PRINTER.doprint(display(expr))


def why_tex(text: str) -> str:
    """A justification or title (text with $...$ math) for LaTeX text mode."""
    parts = text.split("$")
    return "".join(_escape_tex(part) if k % 2 == 0 else f"${part}$" for k, part in enumerate(parts))


def _escape_tex(text: str) -> str:
    """Escape LaTeX specials in plain text (an escaped \\_ stays as it is)."""
    text = text.replace(r"\_", "_")
    return (text.replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")
            .replace("_", r"\_"))


# --------------------------------------------------------------------------- content
@dataclass
class Rendered:
    title: str
    key: str
    lines: list[tuple[str, str, str]]  # (relation, rhs, why)
    start: str
    boxed_index: str
    boxed_matrix: str
    assumptions: list[str]


REL_TEX = {"=": "=", ">": ">", ">=": r"\ge", "<": "<", "<=": r"\le", "~": r"\approx"}


def render_derivation(d: engine.Derivation) -> Rendered:
    lines = []
    for step in d.steps[1:]:
        rhs = tex(step.expr) if step.rel != "~" else f"{float(step.expr):.{step.decimals}f}"
        lines.append((REL_TEX[step.rel], rhs, step.why))
    start = tex(d.start)
    last = d.steps[-1]
    result = lines[-1][1]
    rel = REL_TEX[last.rel] if all(s.rel in ("=", last.rel) for s in d.steps[1:]) else lines[-1][0]
    boxed_index = f"{start} {rel} {result}" if len(start) + len(result) < 160 else f"{result}"
    return Rendered(d.title, d.key, lines, start, boxed_index, d.matrix,
                    [a.text for a in d.assumptions if a is not D.REAL_LOGITS])


def _versions() -> dict:
    return {"SymPy": sp.__version__, "NumPy": np.__version__, "mpmath": mpmath.__version__}


def _naive_failures() -> list[tuple[str, str, str, str]]:
    """(input, naive or max-shift value, generated value, exact) for the stable-forms
    section: the baselines are verify's, the exact values the mpmath reference."""
    impls = verify.implementations()
    naive, shift, ours = impls["naive"], impls["max-shift"], impls["numeric"]
    rows = []
    with np.errstate(all="ignore"):
        a = np.array([[1000.0, 0.0]])
        exact = verify.reference_row(a[0]).softmax
        rows.append(("softmax([1000, 0])", _num(naive["softmax"](a)[0]), _num(ours["softmax"](a)[0]),
                     "[" + ", ".join(mpmath.nstr(v, 2) for v in exact) + "]"))
        b, c0 = np.array([[0.0, -745.0]]), np.array([0])
        rows.append(("loss of [0, -745], true class 0", _num(shift["cross_entropy"](b, c0)[0]),
                     _num(ours["cross_entropy"](b, c0)[0]),
                     mpmath.nstr(verify.reference_row(b[0], 0).loss_index, 3)))
        c = np.array([[0.3, -700.123456789]])
        ref = verify.reference_row(c[0]).softmax[1]
        plain, mine = shift["softmax"](c)[0, 1], ours["softmax"](c)[0, 1]
        rows.append(("S_2 of [0.3, -700.123456789]",
                     f"{plain:.6e} ({verify.ulp_error(plain, ref):.0f} ULP off)",
                     f"{mine:.6e} ({verify.ulp_error(mine, ref):.1f} ULP)", mpmath.nstr(ref, 7)))
    return rows


def _num(x) -> str:
    arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    parts = ["nan" if np.isnan(v) else ("0" if v == 0 else f"{v:.3g}") for v in arr]
    return parts[0] if arr.size == 1 and np.ndim(x) == 0 else "[" + ", ".join(parts) + "]"


# --------------------------------------------------------------------------- figures
def figures(out_dir: Path) -> list[tuple[str, str]]:
    """Error in ULPs against logit spread and against the true-class margin for the naive
    formula, the plain max-shift and the generated code. Returns (file, caption)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = verify.implementations()
    names = [("naive", "naive $e^{a}/\\sum e^{a}$"), ("max-shift", "max-shift (SciPy, PyTorch, JAX)"),
             ("numeric", "generated (softmax-derive)")]
    rng = np.random.default_rng(FIGURE_SEED)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []

    spreads = np.geomspace(1, 3000, 14)
    errors = {name: [] for name, _ in names}
    for spread in spreads:
        # spread over [-spread/2, spread/2]: past a spread of ~1420 the naive e^a overflows
        rows = spread / 2 - rng.uniform(0, spread, size=(3, 12))
        rows[:, 0] = spread / 2 + rng.uniform(0, 1, 3)
        refs = [verify.reference_row(row) for row in rows]
        for name, _ in names:
            with np.errstate(all="ignore"):
                vals = impls[name]["softmax"](rows)
            errors[name].append(max(verify._errors(v, r.softmax, np.float64) for v, r in zip(vals, refs)))
    made.append(_plot(plt, out_dir / "error_vs_spread.png", spreads, errors, names,
                      "logit spread (max - min)", "softmax: worst error (ULP)", logx=True))

    margins = np.linspace(0, 740, 16)
    errors = {name: [] for name, _ in names}
    for margin in margins:
        rows = rng.normal(0, 1, size=(3, 8))
        rows[:, 0] = rows.max(axis=1) + margin
        target = np.zeros(3, dtype=np.int64)
        refs = [verify.reference_row(row, 0) for row in rows]
        for name, _ in names:
            with np.errstate(all="ignore"):
                vals = impls[name]["cross_entropy"](rows, target)
            errors[name].append(max(verify.ulp_error(v, r.loss_index) for v, r in zip(vals, refs)))
    made.append(_plot(plt, out_dir / "error_vs_margin.png", margins, errors, names,
                      "true-class margin $a_c - \\max_{j \\ne c} a_j$", "loss: worst error (ULP)"))
    return [("figures/error_vs_spread.png",
             "Softmax error against the spread of the logits. The max-shift loses the rounding "
             "error of $a_j - m$, amplified by exp; the naive formula overflows past 709."),
            ("figures/error_vs_margin.png",
             "Loss error against the true-class margin. Past a margin of about 37 the exact loss "
             "is below $10^{-16}$ and the max-shift returns 0 (an error of $10^{16}$ ULP and more).")]


def _plot(plt, path, xs, errors, names, xlabel, ylabel, logx=False):
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=130)
    cap = 1e18
    for (name, label), marker in zip(names, ("x", "s", "o")):
        ys = np.array([min(e, cap) if math.isfinite(e) else cap for e in errors[name]])
        ax.plot(xs, np.maximum(ys, 1e-2), marker=marker, label=label, linewidth=1.4, markersize=5)
    ax.axhline(4, color="gray", linestyle="--", linewidth=0.8)
    ax.text(xs[0], 6, "contract: 4 ULP", fontsize=9, color="gray")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_ylim(1e-2, cap * 10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", linewidth=0.3)
    ax.legend(fontsize=9, loc="center left")
    ax.set_title("infinite or NaN results are plotted at $10^{18}$", fontsize=9, color="gray", loc="right")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def why_md(text: str) -> str:
    """A justification or title for Markdown: its $...$ math is GitHub's inline math."""
    return text


# --------------------------------------------------------------------------- the documents
NOTATION = [
    ("x", r"N", "features (e.g. 100 maps of 4x4 flattened: $N = 1600$)"),
    ("W", r"T \times N", "weights of the fully connected layer"),
    ("b", r"T", "biases"),
    ("a = W x + b", r"T", "logits, $a_i = \\sum_n W_{in} x_n + b_i$"),
    ("Z = \\sum_k e^{a_k}", r"1", "partition function"),
    ("S = \\operatorname{softmax}(a)", r"T", "probabilities, $S_j = e^{a_j} / Z$"),
    ("y", r"T", "label: one-hot $y_j = \\delta_{jc}$ or a probability vector"),
    ("c", r"1", "the true class, $1 \\le c \\le T$"),
    ("L", r"1", "softmax loss $-\\sum_j y_j \\log S_j$"),
    ("m = a_k", r"1", "the largest logit, at index $k$"),
    ("s'", r"1", "$\\sum_{j \\ne k} e^{a_j - m}$, the tail of $Z e^{-m}$"),
]

INTRO = (
    "A fully connected layer maps a feature vector $x$ to logits $a = W x + b$; softmax turns "
    "them into probabilities and the softmax loss scores the true class. Every equation below "
    "is a step of a derivation checked by softmax-derive's proof engine: SymPy shows each step "
    "equal to the previous one (or the stated inequality) for a symbolic number of classes $T$, "
    "and both sides are evaluated with mpmath at 40 digits on random instances with "
    "$T = 1, 2, 3, 5, 8$, the smallest $T$ the statement needs and the next, and one random "
    "$T$ up to 12 (derivatives by numerical differentiation, not by SymPy). The justification "
    "of each step is printed beside it.")

STABLE_TEXT = (
    "The definitions overflow as written ($e^{a_j}$ is infinite past $a_j \\approx 709.8$), and "
    "the usual fix -- subtract the maximum -- still loses accuracy in two places. First, "
    "$1 - S_c$ and a loss below $10^{-16}$ vanish when $\\log \\sum_j e^{a_j - m}$ is formed as "
    "$\\log(1 + \\text{tiny})$; summing the tail $s'$ without the term $k$ and taking "
    "$\\operatorname{log1p}(s')$ keeps every digit. Second, $a_j - m$ is rounded, and $e^x$ turns an "
    "absolute error $\\epsilon$ of its argument into a relative error $\\epsilon$ of its value: for "
    "$|a_j - m| \\approx 700$ that is hundreds of ULPs. The generated code carries the rounding "
    "error of $a_j - m$ exactly (TwoSum) and multiplies $e^{\\mathrm{fl}(a_j - m)}$ by one plus "
    "that error; where every logit lies in $[-708, 709]$ it forms $e^{a_j} e^{-m}$ instead, two "
    "exponentials within 0.7 ULP each and no cancellation at all.")


def _context(data_path: Path):
    data = json.loads(data_path.read_text())
    derivations = catalogue.build()
    kernels = list(codegen._proofs().values())
    listing = _listing("nll_index_with_grad")
    # every assumption the general derivations make, once, in order of first use
    assumptions = list(dict.fromkeys(a.text for d in derivations if d.section != "examples"
                                     for a in d.assumptions))
    return dict(data=data, derivations=derivations, kernels=kernels, listing=listing,
                naive=_naive_failures(), versions=_versions(), assumptions=assumptions)


def _listing(name: str) -> str:
    text = codegen.TARGET.read_text()
    start = text.index(f"def {name}(")
    end = text.index("\n\n\n", start)
    body = text[start:end]
    # drop the docstring's long expression lines, keep the code
    return "\n".join(line for line in body.splitlines() if "Expression:" not in line)


def _helpers_listing() -> str:
    text = codegen.TARGET.read_text()
    out = []
    for name in ("_difference_error", "_exp_difference", "_sum_except"):
        start = text.index(f"def {name}(")
        out.append(text[start:text.index("\n\n\n", start)])
    return "\n\n".join(out)


def _ver_rows(data):
    rows = {}
    for r in data["results"]:
        rows[(r["implementation"], r["function"], r["category"])] = r
    return rows


def _fmt_ulp(value):
    if value is None:
        return "inf"
    return verify._fmt(value)


def _verification_rows(data):
    index = _ver_rows(data)
    out = []
    for function in verify.FUNCTIONS:
        for category in verify.SUITE:
            ours = index.get(("numeric", function, category))
            if ours is None:
                continue
            shift = index.get(("max-shift", function, category))
            out.append((function, category, ours["inputs"], _fmt_ulp(ours["max_ulp"]),
                        _fmt_ulp(shift["max_ulp"]) if shift else "-",
                        verify._fmt(ours["bound"]), "yes" if ours["passed"] else "NO"))
    return out


def build_tex(ctx) -> str:
    out = [r"""\documentclass[10pt]{article}
\usepackage[a4paper,margin=2.2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{graphicx}
\usepackage{booktabs}
\usepackage{longtable}
\usepackage{listings}
\usepackage[hidelinks]{hyperref}
\allowdisplaybreaks
\lstset{basicstyle=\ttfamily\footnotesize,breaklines=true,columns=fullflexible}
\title{Softmax, the softmax loss and cross entropy:\\ machine-checked derivations and verified code}
\author{softmax-derive}
\date{}
\begin{document}
\maketitle
""" + why_tex(INTRO).replace("--", "--") + "\n",
           r"\section{Notation}", r"\begin{center}\begin{tabular}{lll}\toprule",
           r"symbol & shape & meaning \\ \midrule"]
    for sym, shape, meaning in NOTATION:
        out.append(f"${sym}$ & ${shape}$ & {why_tex(meaning)} \\\\")
    out += [r"\bottomrule\end{tabular}\end{center}", r"\section{Assumptions}",
            "Each derivation states which of these it uses; the proof engine uses each one both "
            "as a symbolic rewrite and to draw concrete instances.", r"\begin{itemize}"]
    out += [rf"\item {why_tex(_mathify(text))}" for text in ctx["assumptions"]] + [r"\end{itemize}"]
    out.append(why_tex("The first holds throughout and is not repeated below."))
    for section, title in SECTIONS:
        out.append(rf"\section{{{title}}}\label{{sec:{section}}}")
        if section == "stable":
            out.append(why_tex(STABLE_TEXT))
            out += _naive_table_tex(ctx["naive"])
        for d in ctx["derivations"]:
            if d.section == section:
                out += _derivation_tex(d)
    out.append(r"\section{From the proofs to the code}\label{sec:kernels}")
    out.append(why_tex(
        "Each generated kernel is itself proved equal to the definition: its index form is the "
        "last step of a derivation that cites the stable forms above as lemmas. The kernels "
        "are printed by SymPy's NumPy printer into numeric/\\_kernels.py; the loss and gradient "
        "kernel and the helpers it calls are listed here."))
    for d in ctx["kernels"]:
        out += _derivation_tex(d)
    out += [r"\begin{lstlisting}[language=Python]", ctx["listing"], _helpers_listing(),
            r"\end{lstlisting}"]
    out += _verification_tex(ctx)
    out += _footer_tex(ctx)
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def _mathify(text):
    """Assumption texts are plain: set the formulas in them as math."""
    replacements = [("y_j >= 0 and sum_j y_j = 1", r"$y_j \ge 0$ and $\sum_j y_j = 1$"),
                    ("p_j >= 0 and sum_j p_j = 1", r"$p_j \ge 0$ and $\sum_j p_j = 1$"),
                    ("y_j = delta_jc", r"$y_j = \delta_{jc}$"), ("i != j", r"$i \ne j$"),
                    ("a_k = max_j a_j", r"$a_k = \max_j a_j$"),
                    ("a_j > a_k, written a_j = a_k + delta with delta > 0",
                     r"$a_j > a_k$, written $a_j = a_k + \delta$ with $\delta > 0$"),
                    ("a_j, features x_n, weights W_pq and biases b_p",
                     r"$a_j$, features $x_n$, weights $W_{pq}$ and biases $b_p$"),
                    ("1..T", r"$1..T$"), ("1..N", r"$1..N$"), (" y is", " $y$ is"), (" p is", " $p$ is"),
                    (" c:", " $c$:"), ("(k is", "($k$ is")]
    text = " " + text
    for old, new in replacements:
        text = text.replace(old, new)
    return text.strip()


def _derivation_tex(d) -> list[str]:
    r = render_derivation(d)
    out = [rf"\paragraph{{{why_tex(r.title)}}}\label{{d:{r.key}}}"]
    if r.assumptions and d.section != "examples":  # reality is assumed throughout (section 2)
        out.append("Assumptions: " + "; ".join(why_tex(_mathify(a)) for a in r.assumptions) + ".")
    out.append(r"\begin{align}")
    rows = []
    wide = max(len(_visible(r.start)) + len(_visible(rhs)) for _, rhs, _ in r.lines) > 38
    if wide:  # the start on a line of its own, every step below it
        rows.append(rf"& {r.start} \notag")
    for k, (rel, rhs, why) in enumerate(r.lines):
        left = r.start if (k == 0 and not wide) else ""
        rows.append(rf"{left} &{rel} {rhs} && \parbox[t]{{0.28\textwidth}}{{\raggedright {why_tex(why)}}}")
    out.append(" \\\\\n".join(rows))
    out.append(r"\end{align}")
    boxes = [rf"\boxed{{{r.boxed_index}}}"]
    if r.boxed_matrix:
        boxes.append(rf"\boxed{{{r.boxed_matrix}}}")
    out.append(r"\[" + r"\qquad".join(boxes) + r"\]")
    return out


def _visible(latex: str) -> str:
    """Roughly what a formula shows: its LaTeX without commands and braces."""
    return re.sub(r"\\[a-zA-Z]+|[{}^_ ]", "", latex)


def _naive_table_tex(rows):
    out = [r"\begin{center}\begin{tabular}{llll}\toprule",
           r"input & naive or max-shift & generated & exact \\ \midrule"]
    for what, naive, ours, exact in rows:
        out.append(f"{_escape_tex(what)} & {_escape_tex(naive)} & {_escape_tex(ours)} & {_escape_tex(exact)} \\\\")
    out.append(r"\bottomrule\end{tabular}\end{center}")
    return out


def _verification_tex(ctx):
    data = ctx["data"]
    out = [r"\section{Verification}\label{sec:verification}",
           why_tex("The generated functions against the definitions, evaluated with mpmath from the "
                   f"exact float inputs (at least {data['mpmath_min_digits']} digits, more where a row "
                   "needs it), from python -m derive verify. Errors are in ULPs of the correctly rounded "
                   "result with an absolute floor at the smallest normal number; the max-shift column is "
                   "the plain shift by the maximum measured in the same run. Figures "
                   r"\ref{fig:spread} and \ref{fig:margin} show the same comparison as curves."),
           r"\begin{longtable}{llrrrrl}\toprule",
           r"function & inputs & values & max ULP & max-shift & bound & pass \\ \midrule\endhead"]
    for row in _verification_rows(data):
        out.append(" & ".join(_escape_tex(str(c)) for c in row) + r" \\")
    out += [r"\bottomrule\end{longtable}", r"\subsection*{Finite differences and other checks}",
            r"\begin{itemize}"]
    for name, value in data["checks"].items():
        shown = ("passed" if value else "FAILED") if isinstance(value, bool) else f"${_sci(value)}$"
        out.append(rf"\item {_escape_tex(name)}: {shown}")
    out.append(r"\end{itemize}")
    for (path, caption), label in zip(ctx["figures"], ("fig:spread", "fig:margin")):
        out += [r"\begin{figure}[htbp]\centering",
                rf"\includegraphics[width=0.85\textwidth]{{{path}}}",
                rf"\caption{{{why_tex(caption)}}}\label{{{label}}}", r"\end{figure}"]
    return out


def _sci(value: float) -> str:
    mant, exp = f"{value:.2e}".split("e")
    return rf"{mant} \times 10^{{{int(exp)}}}"


def _footer_tex(ctx):
    v = ctx["versions"]
    return [r"\section*{About this document}",
            why_tex(f"Generated by python -m derive report from softmax-derive's derivations and "
                    f"verification results. SymPy {v['SymPy']}, NumPy {v['NumPy']}, mpmath {v['mpmath']}; "
                    f"proof instances at {engine.DIGITS} digits with seed {engine.DEFAULT_SEED}; "
                    f"verification at $\\ge {verify.MIN_DIGITS}$ digits with seed {verify.SEED}; "
                    f"figures with seed {FIGURE_SEED}.")]


def build_md(ctx) -> str:
    out = ["# Softmax, the softmax loss and cross entropy: machine-checked derivations and verified code",
           "", "*Generated by `python -m derive report`; do not edit.*", "", INTRO, "",
           "## Notation", "", "| symbol | shape | meaning |", "|---|---|---|"]
    for sym, shape, meaning in NOTATION:
        out.append(f"| ${sym}$ | ${shape}$ | {meaning} |")
    out += ["", "## Assumptions", ""]
    out += [f"- {_mathify(text)}" for text in ctx["assumptions"]]
    out += ["", "The first holds throughout and is not repeated below."]
    for section, title in SECTIONS:
        out += ["", f"## {title}", ""]
        if section == "stable":
            out += [STABLE_TEXT, "", "| input | naive or max-shift | generated | exact |", "|---|---|---|---|"]
            out += [f"| {w} | {n} | {o} | {e} |" for w, n, o, e in ctx["naive"]]
        for d in ctx["derivations"]:
            if d.section == section:
                out += _derivation_md(d)
    out += ["", "## From the proofs to the code", "",
            "Each generated kernel is proved equal to the definition by a derivation that cites the "
            "stable forms above as lemmas, then printed by SymPy's NumPy printer into "
            "`numeric/_kernels.py`."]
    for d in ctx["kernels"]:
        out += _derivation_md(d)
    out += ["", "```python", ctx["listing"], "", _helpers_listing(), "```"]
    data = ctx["data"]
    out += ["", "## Verification", "",
            "The generated functions against the definitions evaluated with mpmath from the exact "
            f"float inputs (at least {data['mpmath_min_digits']} digits, more where a row needs it), "
            "from `python -m derive verify`. Errors in ULPs of the correctly rounded result, with an "
            "absolute floor at the smallest normal number; the max-shift column is the plain shift "
            "by the maximum, measured in the same run.", "",
            "| function | inputs | values | max ULP | max-shift | bound | pass |",
            "|---|---|---:|---:|---:|---:|---|"]
    for row in _verification_rows(data):
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    out += ["", "### Finite differences and other checks", ""]
    for name, value in data["checks"].items():
        shown = ("passed" if value else "FAILED") if isinstance(value, bool) else f"{value:.2e}"
        out.append(f"- {name}: {shown}")
    for path, caption in ctx["figures"]:
        out += ["", f"![{caption}]({path})", "", f"*{caption}*"]
    v = ctx["versions"]
    out += ["", "---", "",
            f"SymPy {v['SymPy']}, NumPy {v['NumPy']}, mpmath {v['mpmath']}; proof instances at "
            f"{engine.DIGITS} digits with seed {engine.DEFAULT_SEED}; verification at ≥ "
            f"{verify.MIN_DIGITS} digits with seed {verify.SEED}; figures with seed {FIGURE_SEED}."]
    return "\n".join(out) + "\n"


def _derivation_md(d) -> list[str]:
    r = render_derivation(d)
    out = ["", f"**{why_md(r.title)}**", ""]
    if r.assumptions:
        out += ["Assumptions: " + "; ".join(_mathify(a) for a in r.assumptions) + ".", ""]
    rows = [f"{r.start} & {rel} {rhs} && \\text{{({k})}}" if k == 1 else f"& {rel} {rhs} && \\text{{({k})}}"
            for k, (rel, rhs, _) in enumerate(r.lines, start=1)]
    out += ["```math", "\\begin{aligned}", " \\\\\n".join(rows), "\\end{aligned}", "```", ""]
    out += [f"{k}. {why_md(why)}" for k, (_, _, why) in enumerate(r.lines, start=1)]
    boxes = [f"\\boxed{{{r.boxed_index}}}"] + ([f"\\boxed{{{r.boxed_matrix}}}"] if r.boxed_matrix else [])
    out += ["", "```math", " \\qquad ".join(boxes), "```"]
    return out


# --------------------------------------------------------------------------- PDF and driver
FIGURE_SEED = 7


def tex_engine() -> list[str] | None:
    if shutil.which("latexmk"):
        return ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if shutil.which("pdflatex"):
        return ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    return None


class LatexError(RuntimeError):
    pass


def compile_pdf(tex_path: Path) -> Path:
    """Compile with latexmk (or pdflatex twice); raise LatexError with the offending line."""
    command = tex_engine()
    if command is None:
        raise LatexError("no TeX engine (latexmk or pdflatex) found")
    build = tex_path.parent / "_build"
    build.mkdir(exist_ok=True)
    runs = 1 if command[0] == "latexmk" else 2
    for _ in range(runs):
        proc = subprocess.run(command + [f"-output-directory={build}", tex_path.name],
                              cwd=tex_path.parent, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LatexError(_latex_problem(build / (tex_path.stem + ".log"), tex_path, proc.stdout))
    log = (build / (tex_path.stem + ".log")).read_text(errors="replace")
    undefined = re.findall(r"LaTeX Warning: (?:Reference|Citation) `([^']+)' .*undefined", log)
    if undefined:
        raise LatexError(f"undefined references in {tex_path.name}: {', '.join(sorted(set(undefined)))}")
    pdf = tex_path.with_suffix(".pdf")
    shutil.copyfile(build / pdf.name, pdf)
    return pdf


def _latex_problem(log_path: Path, tex_path: Path, stdout: str) -> str:
    log = log_path.read_text(errors="replace") if log_path.exists() else stdout
    match = re.search(r"^(?:.*?:(\d+): |! )(.*)$", log, re.M)
    message = match.group(2) if match else "LaTeX failed (see the log)"
    line_no = int(match.group(1)) if match and match.group(1) else None
    if line_no is None:
        found = re.search(r"^l\.(\d+)", log, re.M)
        line_no = int(found.group(1)) if found else None
    where = ""
    if line_no:
        lines = tex_path.read_text().splitlines()
        where = f"\n  {tex_path.name}:{line_no}: {lines[line_no - 1] if line_no <= len(lines) else ''}"
    return f"LaTeX error: {message}{where}\n  log: {log_path}"


README_MARK = ("<!-- verification-table:start -->", "<!-- verification-table:end -->")


def update_readme(data) -> bool:
    """Refresh the README's verification table from the results; True if it changed."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = README_MARK
    if start not in text or end not in text:
        return False
    rep = verify.Report(results=[verify.Result(r["implementation"], r["function"], r["category"],
                                               r["inputs"], math.inf if r["max_ulp"] is None else r["max_ulp"],
                                               r["bound"]) for r in data["results"]])
    new = text[:text.index(start) + len(start)] + "\n" + verify.table(rep) + "\n" + text[text.index(end):]
    if new != text:
        readme.write_text(new)
    return new != text


def report(pdf: bool | None = None, out_dir: Path = REPORTS, readme: bool | None = None,
           data: Path | None = None) -> list[str]:
    """Write the .tex, .md and figures (and the PDF when a TeX engine exists, or when
    ``pdf`` is True, in which case a missing engine is an error) into ``out_dir``, from
    the verification results ``data`` (default: ``out_dir/verification.json``). Without
    matplotlib the report has no figures. Returns the lines to print."""
    lines = []
    data = out_dir / "verification.json" if data is None else data
    if not data.exists():
        raise FileNotFoundError(f"{data} is missing: run `python -m derive verify` first")
    ctx = _context(data)
    try:
        ctx["figures"] = figures(out_dir / "figures")
    except ImportError:
        ctx["figures"] = []
        lines.append("matplotlib is not installed: the report has no figures "
                     "(pip install 'softmax-derive[report]' for them)")
    lines += [f"wrote {out_dir.name}/{p}" for p, _ in ctx["figures"]]
    tex_path = out_dir / f"{NAME}.tex"
    tex_path.write_text(build_tex(ctx))
    (out_dir / f"{NAME}.md").write_text(build_md(ctx))
    lines += [f"wrote {out_dir.name}/{NAME}.tex", f"wrote {out_dir.name}/{NAME}.md"]
    if (out_dir == REPORTS if readme is None else readme) and update_readme(ctx["data"]):
        lines.append("updated the verification table in README.md")
    if tex_engine() is None:
        if pdf:
            raise LatexError(f"--pdf: no TeX engine found; install the Debian packages {TEX_PACKAGES}")
        lines.append(f"no TeX engine found: {out_dir.name}/{NAME}.tex was written but not compiled "
                     f"(install the Debian packages {TEX_PACKAGES} to get the PDF)")
        return lines
    if pdf is False:
        return lines
    path = compile_pdf(tex_path)
    lines.append(f"wrote {out_dir.name}/{path.name}")
    return lines
