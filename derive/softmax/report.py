"""Reports: two documents in LaTeX (PDF where a TeX engine exists) and Markdown, from the
proofs, the generated code and the verification run.

What the documents say -- sections, texts, which derivations, figures and tables, the
worked example's inputs -- is data (:mod:`derive.documents`); this module renders it.
Every formula is printed from the checked derivation objects (:mod:`derive.printing`),
every number is read from the verification results (``reports/verification.json``) or
computed here from the generated code and checked against mpmath: nothing is typed by
hand. The same inputs give the same bytes (no timestamps; figures without metadata).
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

from .. import engine
from ..printing import (  # repeated_steps: re-exported for the tests and users
    _derivation_md,
    _derivation_tex,
    _escape_tex,
    _mathify,
    repeated_steps,
    why_tex,
)
from . import catalogue, documents, verify
from . import definitions as D
from . import kernels as SK
from .documents import Block, Display, Document, Figure, Proof, Text

ROOT = Path(__file__).resolve().parent.parent.parent
REPORTS = ROOT / "reports"
NAME = documents.LEARNER.name
DEV_NAME = documents.DEVELOPERS.name
TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended latexmk"
FIGURE_SEED = 7

# --------------------------------------------------------------------------- content


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
        rows.append(("loss of [0, -745], true class 1", _num(shift["cross_entropy"](b, c0)[0]),
                     _num(ours["cross_entropy"](b, c0)[0]),
                     mpmath.nstr(verify.reference_row(b[0], 0).loss_index, 3)))
        c = np.array([[0.3, -700.123456789]])
        ref = verify.reference_row(c[0]).softmax[1]
        plain, mine = shift["softmax"](c)[0, 1], ours["softmax"](c)[0, 1]
        rows.append(("$S_2$ of [0.3, -700.123456789]",
                     f"{plain:.6e} ({verify.ulp_error(plain, ref):.0f} ULP off)",
                     f"{mine:.6e} ({verify.ulp_error(mine, ref):.1f} ULP)", mpmath.nstr(ref, 7)))
    return rows


def _num(x) -> str:
    arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    parts = ["nan" if np.isnan(v) else ("0" if v == 0 else f"{v:.3g}") for v in arr]
    return parts[0] if arr.size == 1 and np.ndim(x) == 0 else "[" + ", ".join(parts) + "]"


# --------------------------------------------------------------------------- figures
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def figure_neg_log(path: Path, ctx: dict) -> None:
    """-log p over (0, 1] with the loss examples of the catalogue marked."""
    plt = _pyplot()
    p = np.linspace(0.005, 1.0, 400)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=130)
    ax.plot(p, -np.log(p), color="black", linewidth=1.4, label="$-\\log p_c$")
    for pc, loss in ctx["loss_examples"]:
        ax.plot([pc], [loss], "o", markersize=7)
        ax.annotate(f"$p_c = {pc:g}$: $-\\log {pc:g} \\approx {loss:.3f}$", (pc, loss),
                    xytext=(12, 6), textcoords="offset points", fontsize=9)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 5.4)
    ax.set_xlabel("probability of the true class $p_c$")
    ax.set_ylabel("loss $L = -\\log p_c$")
    ax.grid(True, linewidth=0.3)
    _save(plt, fig, path)


def figure_softmax_sweep(path: Path, ctx: dict) -> None:
    """softmax([a_1, 2, 3]) from the generated code as a_1 moves, the others fixed."""
    import numeric
    plt = _pyplot()
    base = np.array(documents.SWEEP_LOGITS)
    moving = np.linspace(-4.0, 8.0, 241)
    rows = np.repeat(base[None, :], moving.size, axis=0)
    rows[:, 0] = moving
    probs = numeric.softmax(rows)
    at_example = numeric.softmax(base)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=130)
    for col, style in zip(range(base.size), ("-", "--", ":")):
        label = f"$S_{col + 1}$" + ("" if col == 0 else f" ($a_{col + 1} = {base[col]:g}$ fixed)")
        line, = ax.plot(moving, probs[:, col], style, linewidth=1.6, label=label)
        ax.plot([base[0]], [at_example[col]], "o", color=line.get_color(), markersize=6)
    ax.axvline(base[0], color="gray", linewidth=0.6)
    ax.set_xlabel("$a_1$ (the other logits fixed)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=9, loc="center left")
    _save(plt, fig, path)


_ERROR_NAMES = [("naive", "naive $e^{a}/\\sum e^{a}$"), ("max-shift", "max-shift (SciPy, PyTorch, JAX)"),
                ("numeric", "generated (softmax-derive)")]


def figure_error_vs_spread(path: Path, ctx: dict) -> None:
    """Worst softmax error in ULPs against the spread of the logits."""
    impls = verify.implementations()
    rng = np.random.default_rng(FIGURE_SEED)
    spreads = np.geomspace(1, 3000, 14)
    errors = {name: [] for name, _ in _ERROR_NAMES}
    for spread in spreads:
        # spread over [-spread/2, spread/2]: past a spread of ~1420 the naive e^a overflows
        rows = spread / 2 - rng.uniform(0, spread, size=(3, 12))
        rows[:, 0] = spread / 2 + rng.uniform(0, 1, 3)
        refs = [verify.reference_row(row) for row in rows]
        for name, _ in _ERROR_NAMES:
            with np.errstate(all="ignore"):
                vals = impls[name]["softmax"](rows)
            errors[name].append(max(verify._errors(v, r.softmax, np.float64) for v, r in zip(vals, refs)))
    _plot(path, spreads, errors, "logit spread (max - min)", "softmax: worst error (ULP)", logx=True)


def figure_error_vs_margin(path: Path, ctx: dict) -> None:
    """Worst loss error in ULPs against the true-class margin."""
    impls = verify.implementations()
    rng = np.random.default_rng(FIGURE_SEED + 1)
    margins = np.linspace(0, 740, 16)
    errors = {name: [] for name, _ in _ERROR_NAMES}
    for margin in margins:
        rows = rng.normal(0, 1, size=(3, 8))
        rows[:, 0] = rows.max(axis=1) + margin
        target = np.zeros(3, dtype=np.int64)
        refs = [verify.reference_row(row, 0) for row in rows]
        for name, _ in _ERROR_NAMES:
            with np.errstate(all="ignore"):
                vals = impls[name]["cross_entropy"](rows, target)
            errors[name].append(max(verify.ulp_error(v, r.loss_index) for v, r in zip(vals, refs)))
    _plot(path, margins, errors, "true-class margin $a_c - \\max_{j \\ne c} a_j$", "loss: worst error (ULP)")


def _plot(path, xs, errors, xlabel, ylabel, logx=False):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=130)
    cap = 1e18
    for (name, label), marker in zip(_ERROR_NAMES, ("x", "s", "o")):
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
    _save(plt, fig, path)


#: figure key -> the function that draws it into a path (the documents choose which)
FIGURES = {
    "neg_log": figure_neg_log,
    "softmax_sweep": figure_softmax_sweep,
    "error_vs_spread": figure_error_vs_spread,
    "error_vs_margin": figure_error_vs_margin,
}


def figures(out_dir: Path, docs, ctx) -> list[str]:
    """Draw every figure the documents use, once each; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(item.key for doc in docs for item in _items(doc) if isinstance(item, Figure)))
    for key in keys:
        FIGURES[key](out_dir / f"{key}.png", ctx)
    return [f"figures/{key}.png" for key in keys]


# --------------------------------------------------------------------------- the worked example
@dataclass
class Quantity:
    name: str  # LaTeX
    values: np.ndarray  # from the generated code (or NumPy for the logits)
    exact: list  # mpmath values of the definitions at the same inputs
    ulp: float  # the largest error in ULPs


def worked_example(inputs: dict) -> list[Quantity]:
    """x, W, b, c -> logits, softmax, loss and every gradient, from the generated code,
    each checked against the definitions evaluated by mpmath from the same float inputs.

    The reference differentiates the definition L(W, x, b) = -sum_j y_j log S_j(W x + b)
    with SymPy for the concrete sizes and evaluates it at 50 digits; the softmax and the
    loss of the computed logits come from :func:`verify.reference_row`.
    """
    import numeric
    x, W, b = (np.array(inputs[k], dtype=np.float64) for k in ("x", "W", "b"))
    c = int(inputs["c"])
    T, N = W.shape
    a = W @ x + b
    S = numeric.softmax(a)
    loss, grad = numeric.cross_entropy_with_grad(a[None, :], np.array([c - 1]))
    loss2, dx, dW, db = numeric.linear_cross_entropy(x[None, :], W, b, np.array([c - 1]))

    values = {D.x[n + 1]: x[n] for n in range(N)}
    values.update({D.W[p + 1, q + 1]: W[p, q] for p in range(T) for q in range(N)})
    values.update({D.b[p + 1]: b[p] for p in range(T)})
    values.update({D.y[j + 1]: float(j + 1 == c) for j in range(T)})
    sizes = {D.T: T, D.N: N}
    exact_loss_expr = D.softmax_loss(D.y, D.fc_logit).subs(sizes).doit()
    digits = verify.MIN_DIGITS

    def at(expr):
        with mpmath.workdps(digits):
            return sp.Float(expr.xreplace({k: sp.Float(v, digits + 10) for k, v in values.items()})
                            .evalf(digits + 10), digits)._to_mpmath(mpmath.mp.prec)

    with mpmath.workdps(digits):
        a_ref = [at(D.fc_logit(p + 1).subs(sizes).doit()) for p in range(T)]
        row = verify.reference_row(a, c - 1)
        dW_ref = [at(sp.diff(exact_loss_expr, D.W[p + 1, q + 1])) for p in range(T) for q in range(N)]
        db_ref = [at(sp.diff(exact_loss_expr, D.b[p + 1])) for p in range(T)]
        dx_ref = [at(sp.diff(exact_loss_expr, D.x[q + 1])) for q in range(N)]
        loss_ref = at(exact_loss_expr)

    def quantity(name, got, exact, scales=None):
        got = np.atleast_1d(np.asarray(got, dtype=np.float64)).ravel()
        scales = scales or [None] * len(got)
        return Quantity(name, got, list(exact), max(verify.ulp_error(g, e, scale=s)
                                                    for g, e, s in zip(got, exact, scales)))

    # dx_n = sum_j G_j W_jn is a dot product that may cancel (here dx_4 = 0.017 from terms
    # near 0.1): its error is measured in ULPs of sum_j |G_j W_jn|, the bound that holds
    # for any correctly rounded G (one rounding of G_1 either way moved dx_4 by 8 ULP of itself)
    with mpmath.workdps(digits):
        dx_scale = [mpmath.fsum(abs(db_ref[p] * mpmath.mpf(W[p, q])) for p in range(T)) for q in range(N)]

    return [
        quantity("a = W x + b", a, a_ref),
        quantity(r"S = \operatorname{softmax}(a)", S, row.softmax),
        quantity(r"L = -\log S_c", loss, [row.loss_index]),
        quantity(r"\partial L / \partial a = S - y", grad[0], row.grad_index),
        quantity(r"L \text{ from } (x, W, b)", loss2, [loss_ref]),
        quantity(r"\partial L / \partial W = (S - y)\, x^\top", dW[0] if dW.ndim == 3 else dW, dW_ref),
        quantity(r"\partial L / \partial b = S - y", db[0] if db.ndim == 2 else db, db_ref),
        quantity(r"\partial L / \partial x = W^\top (S - y)", dx[0], dx_ref, dx_scale),
    ]


def _vec(values, digits=4) -> str:
    return r"\begin{bmatrix} " + r" \\ ".join(f"{v:.{digits}f}" for v in values) + r" \end{bmatrix}"


def _mat(rows, digits=4) -> str:
    return (r"\begin{bmatrix} " + r" \\ ".join(" & ".join(f"{v:.{digits}f}" for v in row) for row in rows)
            + r" \end{bmatrix}")


def worked_values(inputs: dict, worked: list[Quantity]) -> dict[str, str]:
    """The LaTeX of every number the worked example shows, by the @name@ the documents use."""
    a, S, L, g, _, dW, db, dx = worked
    T, N = np.array(inputs["W"]).shape
    c = int(inputs["c"])
    top = int(np.argmax(a.values)) + 1
    return {"c": str(c), "x": _vec(inputs["x"], 1), "W": _mat(inputs["W"], 1), "b": _vec(inputs["b"], 1),
            "y": _vec([float(j + 1 == c) for j in range(T)], 0), "a": _vec(a.values), "S": _vec(S.values),
            "top": str(top), "top_is_true": " (the true class)" if top == c else f" (not the true class {c})",
            "S_c": f"{S.values[c - 1]:.4f}", "L": f"{L.values[0]:.4f}", "grad": _vec(g.values),
            "dW": _mat(np.reshape(dW.values, (T, N))), "db": _vec(db.values), "dx": _vec(dx.values)}


def _fill(text: str, ctx) -> str:
    """Replace the @name@ placeholders of a document text by the computed values."""
    def value(match):
        if match.group(1) not in ctx["values"]:
            raise KeyError(f"a document text uses @{match.group(1)}@, which is not a computed value; "
                           f"known: {', '.join(sorted(ctx['values']))}")
        return ctx["values"][match.group(1)]
    return re.sub(r"@(\w+)@", value, text)


def _worked_rows(ctx) -> list[tuple[str, str, str, str]]:
    """(quantity, its first component from the code and from mpmath, the worst ULP error)."""
    rows = []
    for item in ctx["worked"]:
        rows.append((item.name, repr(float(item.values[0])), mpmath.nstr(item.exact[0], 20),
                     verify._fmt(item.ulp)))
    return rows


def _loss_examples(derivations) -> list[tuple[str, float, float]]:
    """(p written out, p_c, -log p_c) of the catalogue's loss examples, in document order."""
    out = []
    for d in derivations:
        given = [h for h in d.assumptions if isinstance(h, D.Values)]
        if given and d.steps[-1].rel == "~":
            probs = given[0].values
            out.append(("[" + ", ".join(probs) + "]", float(probs[3]), float(d.steps[-1].expr)))
    return out


# --------------------------------------------------------------------------- the documents
def _items(doc: Document):
    yield from doc.intro
    for section in doc.sections:
        yield from section.items


def _context(docs=documents.DOCUMENTS, data_path: Path = REPORTS / "verification.json") -> dict:
    data = json.loads(data_path.read_text())
    derivations = catalogue.by_key()
    kernels = list(SK._proofs().values())
    used = [item.key for doc in docs for item in _items(doc) if isinstance(item, Proof)]
    unknown = [key for key in used if key not in derivations]
    if unknown:
        raise KeyError(f"the documents name derivations the catalogue does not have: {', '.join(unknown)}")
    shown = [derivations[key] for key in dict.fromkeys(used)]
    ctx = {"data": data, "derivations": derivations, "kernels": kernels, "versions": _versions(),
           "naive": _naive_failures(), "worked": worked_example(documents.WORKED_EXAMPLE),
           "loss_example_rows": _loss_examples(shown)}
    ctx["values"] = worked_values(documents.WORKED_EXAMPLE, ctx["worked"])
    ctx["loss_examples"] = [(pc, loss) for _, pc, loss in ctx["loss_example_rows"]]
    return ctx


def _assumptions(doc: Document, ctx) -> list[str]:
    """Every assumption the document's general derivations make, once, in order of first use."""
    ds = [ctx["derivations"][item.key] for item in _items(doc) if isinstance(item, Proof)]
    return list(dict.fromkeys(a.text for d in ds if not d.concrete for a in d.assumptions))


def _listing(name: str) -> str:
    text = SK.TARGET.read_text()
    start = text.index(f"def {name}(")
    end = text.index("\n\n\n", start)
    body = text[start:end]
    # drop the docstring's long expression lines, keep the code
    return "\n".join(line for line in body.splitlines() if "Expression:" not in line)


def _helpers_listing() -> str:
    text = SK.TARGET.read_text()
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
    """Every row of the generated code's verification, with the max-shift's error beside it."""
    index = _ver_rows(data)
    out = []
    for ours in data["results"]:
        if ours["implementation"] != "numeric":
            continue
        shift = index.get(("max-shift", ours["function"], ours["category"]))
        out.append((ours["function"], ours["category"], ours["inputs"], _fmt_ulp(ours["max_ulp"]),
                    _fmt_ulp(shift["max_ulp"]) if shift else "-",
                    verify._fmt(ours["bound"]), "yes" if ours["passed"] else "NO"))
    return out


def _sci(value: float) -> str:
    mant, exp = f"{value:.2e}".split("e")
    return rf"{mant} \times 10^{{{int(exp)}}}"


def _about(ctx) -> str:
    v = ctx["versions"]
    return (f"Generated by python -m derive report from softmax-derive's derivations, generated code and "
            f"verification results. SymPy {v['SymPy']}, NumPy {v['NumPy']}, mpmath {v['mpmath']}; "
            f"proof instances at {engine.DIGITS} digits with seed {engine.DEFAULT_SEED}; "
            f"verification at $\\ge {verify.MIN_DIGITS}$ digits with seed {verify.SEED}; "
            f"figures with seed {FIGURE_SEED}.")


def _doc_names(text: str, link) -> str:
    """Write the name of a generated document as a link (``link(name)``), in one pass."""
    names = "|".join(sorted((doc.name for doc in documents.DOCUMENTS), key=len, reverse=True))
    return re.sub(rf"(?<![\w/])({names})(?!\w|\.\w)", lambda m: link(m.group(1)), text)


# --------------------------------------------------------------------------- LaTeX
TEX_PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[a4paper,margin=2.2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{graphicx}
\usepackage{booktabs}
\usepackage{longtable}
\usepackage{listings}
\usepackage[hidelinks]{hyperref}
\allowdisplaybreaks
\setlength{\parskip}{0.4em}
\setlength{\parindent}{0pt}
\lstset{basicstyle=\ttfamily\footnotesize,breaklines=true,columns=fullflexible}
"""


def build_tex(doc: Document, ctx) -> str:
    title = why_tex(doc.title).replace(": ", r":\\ ", 1)
    out = [TEX_PREAMBLE + rf"\title{{{title}}}" + "\n" + r"\author{softmax-derive}" + "\n" + r"\date{}",
           r"\begin{document}", r"\maketitle"]
    for item in doc.intro:
        out += _item_tex(item, doc, ctx)
    for section in doc.sections:
        out.append(rf"\section*{{{why_tex(section.title)}}}\label{{sec:{section.label}}}")
        out.append(rf"\addcontentsline{{toc}}{{section}}{{{why_tex(section.title)}}}")
        for item in section.items:
            out += _item_tex(item, doc, ctx)
    out += [r"\section*{About this document}", why_tex(_about(ctx)), r"\end{document}"]
    return "\n".join(out) + "\n"


def _text_tex(text: str) -> str:
    return why_tex(_doc_names(text, lambda name: f"\\texttt{{{name}.pdf}}"))


def _item_tex(item, doc, ctx) -> list[str]:
    if isinstance(item, Text):
        return ["", _text_tex(_fill(item.body, ctx)), ""]
    if isinstance(item, Display):
        return [r"\[" + _fill(item.latex, ctx) + r"\]"]
    if isinstance(item, Proof):
        return _derivation_tex(ctx["derivations"][item.key])
    if isinstance(item, Figure):
        return [r"\begin{figure}[htbp]\centering",
                rf"\includegraphics[width=0.8\textwidth]{{figures/{item.key}.png}}",
                rf"\caption{{{why_tex(item.caption)}}}\label{{fig:{item.key}}}", r"\end{figure}"]
    if isinstance(item, Block):
        return BLOCKS[item.key][0](doc, ctx)
    raise TypeError(f"a document item must be Text, Display, Proof, Figure or Block, not {item!r}")


def _table_tex(header, rows, spec, math_columns=()) -> list[str]:
    def cell(k, value):
        text = f"${value}$" if k in math_columns else why_tex(str(value))
        return "{}" + text if text.startswith("[") else text  # not an optional argument of \\ or \midrule
    out = [rf"\begin{{center}}\begin{{tabular}}{{{spec}}}\toprule",
           " & ".join(why_tex(h) for h in header) + r" \\ \midrule"]
    out += [" & ".join(cell(k, v) for k, v in enumerate(row)) + r" \\" for row in rows]
    out.append(r"\bottomrule\end{tabular}\end{center}")
    return out


def _notation_tex(doc, ctx):
    out = [r"\begin{center}\begin{tabular}{llp{0.55\textwidth}}\toprule",
           r"symbol & shape & meaning \\ \midrule"]
    for sym, shape, meaning in documents.NOTATION:
        out.append(f"${sym}$ & {'$' + shape + '$' if shape else ''} & {why_tex(meaning)} \\\\")
    return out + [r"\bottomrule\end{tabular}\end{center}"]


def _assumptions_tex(doc, ctx):
    out = ["Assumptions, each stated where a derivation uses it; the proof engine uses each one both "
           "as a symbolic rewrite and to draw concrete instances:", r"\begin{itemize}"]
    return out + [rf"\item {why_tex(_mathify(text))}" for text in _assumptions(doc, ctx)] + [r"\end{itemize}"]


def _loss_examples_tex(doc, ctx):
    rows = [(p, f"{pc:g}", rf"-\log {pc:g} \approx {loss:.3f}") for p, pc, loss in ctx["loss_example_rows"]]
    return _table_tex(("prediction $p$ (true class 4)", "$p_4$", "loss"), rows, "lll", math_columns=(2,))


def _worked_table_tex(doc, ctx):
    return _table_tex(("quantity", "first component: generated", "mpmath", "max error (ULP)"),
                      _worked_rows(ctx), "llll", math_columns=(0,))


def _naive_table_tex(doc, ctx):
    return _table_tex(("input", "naive or max-shift", "generated", "exact"), ctx["naive"], "llll")


def _kernels_tex(doc, ctx):
    out = []
    for d in ctx["kernels"]:
        out += _derivation_tex(d)
    return out + [r"\begin{lstlisting}[language=Python]", _listing("nll_index_with_grad"),
                  _helpers_listing(), r"\end{lstlisting}"]


def _verification_tex(doc, ctx):
    data = ctx["data"]
    out = [why_tex("The generated functions against the definitions, evaluated with mpmath from the "
                   f"exact float inputs (at least {data['mpmath_min_digits']} digits, more where a row "
                   "needs it), from python -m derive verify. Errors are in ULPs of the correctly rounded "
                   "result with an absolute floor at the smallest normal number; the max-shift column is "
                   "the plain shift by the maximum measured in the same run."),
           r"{\small\setlength{\tabcolsep}{4pt}\begin{longtable}{llrrrrl}\toprule",
           r"function & inputs & values & max ULP & max-shift & bound & pass \\ \midrule\endhead"]
    for row in _verification_rows(data):
        out.append(" & ".join(_escape_tex(str(c)) for c in row) + r" \\")
    out += [r"\bottomrule\end{longtable}}", r"\subsection*{Finite differences and other checks}",
            r"\begin{itemize}"]
    for name, value in data["checks"].items():
        shown = ("passed" if value else "FAILED") if isinstance(value, bool) else f"${_sci(value)}$"
        out.append(rf"\item {_escape_tex(name)}: {shown}")
    return out + [r"\end{itemize}"]


# --------------------------------------------------------------------------- Markdown
def build_md(doc: Document, ctx) -> str:
    out = [f"# {doc.title}", "", "*Generated by `python -m derive report`; do not edit.*", ""]
    for item in doc.intro:
        out += _item_md(item, doc, ctx)
    for section in doc.sections:
        out += ["", f"## {section.title}", ""]
        for item in section.items:
            out += _item_md(item, doc, ctx)
    out += ["", "---", "", _about(ctx).replace("$\\ge ", "≥ ").replace("$", "")]
    text = "\n".join(out) + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


def _text_md(text: str) -> str:
    """A paragraph for Markdown: LaTeX's -- is an en dash, document names are links."""
    return _doc_names(text.replace(" -- ", " – "), lambda name: f"[{name}]({name}.md)")


def _item_md(item, doc, ctx) -> list[str]:
    if isinstance(item, Text):
        return ["", _text_md(_fill(item.body, ctx)), ""]
    if isinstance(item, Display):
        return ["", "```math", _fill(item.latex, ctx), "```", ""]
    if isinstance(item, Proof):
        return _derivation_md(ctx["derivations"][item.key])
    if isinstance(item, Figure):
        return ["", f"![{_plain_caption(item.caption)}](figures/{item.key}.png)", "", f"*{item.caption}*", ""]
    if isinstance(item, Block):
        return ["", *BLOCKS[item.key][1](doc, ctx), ""]
    raise TypeError(f"a document item must be Text, Display, Proof, Figure or Block, not {item!r}")


def _plain_caption(caption: str) -> str:
    """Alt text: the caption without its math markup."""
    return engine.plain(caption).replace("\\", "").replace("{", "").replace("}", "")


def _table_md(header, rows, align=None, math_columns=()) -> list[str]:
    def cell(k, value):
        return f"${value}$" if k in math_columns else str(value)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align or ["---"] * len(header)) + "|"]
    return out + ["| " + " | ".join(cell(k, v) for k, v in enumerate(row)) + " |" for row in rows]


def _notation_md(doc, ctx):
    return _table_md(("symbol", "shape", "meaning"),
                     [(f"${sym}$", f"${shape}$" if shape else "", meaning)
                      for sym, shape, meaning in documents.NOTATION])


def _assumptions_md(doc, ctx):
    return (["Assumptions, each stated where a derivation uses it; the proof engine uses each one both "
             "as a symbolic rewrite and to draw concrete instances:", ""]
            + [f"- {_mathify(text)}" for text in _assumptions(doc, ctx)])


def _loss_examples_md(doc, ctx):
    rows = [(p, f"{pc:g}", rf"-\log {pc:g} \approx {loss:.3f}") for p, pc, loss in ctx["loss_example_rows"]]
    return _table_md(("prediction $p$ (true class 4)", "$p_4$", "loss"), rows, math_columns=(2,))


def _worked_table_md(doc, ctx):
    return _table_md(("quantity", "first component: generated", "mpmath", "max error (ULP)"),
                     _worked_rows(ctx), ["---", "---", "---", "---:"], math_columns=(0,))


def _naive_table_md(doc, ctx):
    return _table_md(("input", "naive or max-shift", "generated", "exact"), ctx["naive"])


def _kernels_md(doc, ctx):
    out = []
    for d in ctx["kernels"]:
        out += _derivation_md(d)
    return out + ["", "```python", _listing("nll_index_with_grad"), "", _helpers_listing(), "```"]


def _verification_md(doc, ctx):
    data = ctx["data"]
    out = ["The generated functions against the definitions evaluated with mpmath from the exact "
           f"float inputs (at least {data['mpmath_min_digits']} digits, more where a row needs it), "
           "from `python -m derive verify`. Errors in ULPs of the correctly rounded result, with an "
           "absolute floor at the smallest normal number; the max-shift column is the plain shift "
           "by the maximum, measured in the same run.", ""]
    out += _table_md(("function", "inputs", "values", "max ULP", "max-shift", "bound", "pass"),
                     _verification_rows(data), ["---", "---", "---:", "---:", "---:", "---:", "---"])
    out += ["", "### Finite differences and other checks", ""]
    for name, value in data["checks"].items():
        shown = ("passed" if value else "FAILED") if isinstance(value, bool) else f"{value:.2e}"
        out.append(f"- {name}: {shown}")
    return out


#: block key -> (LaTeX renderer, Markdown renderer); each takes (document, context)
BLOCKS = {
    "notation": (_notation_tex, _notation_md),
    "assumptions": (_assumptions_tex, _assumptions_md),
    "loss_examples": (_loss_examples_tex, _loss_examples_md),
    "worked_table": (_worked_table_tex, _worked_table_md),
    "naive_table": (_naive_table_tex, _naive_table_md),
    "kernels": (_kernels_tex, _kernels_md),
    "verification": (_verification_tex, _verification_md),
}


# --------------------------------------------------------------------------- PDF and driver


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
    rep = verify.VerificationTable(results=[verify.Result(r["implementation"], r["function"], r["category"],
                                               r["inputs"], math.inf if r["max_ulp"] is None else r["max_ulp"],
                                               r["bound"]) for r in data["results"]])
    new = text[:text.index(start) + len(start)] + "\n" + verify.table(rep) + "\n" + text[text.index(end):]
    if new != text:
        readme.write_text(new)
    return new != text


def report(pdf: bool | None = None, out_dir: Path = REPORTS, readme: bool | None = None,
           docs=documents.DOCUMENTS, data: Path | None = None) -> list[str]:
    """Write each document's .tex and .md and their figures (and the PDFs when a TeX engine
    exists, or when ``pdf`` is True, in which case a missing engine is an error) into
    ``out_dir``, from the verification results ``data`` (default: the source checkout's
    ``reports/verification.json``). Without matplotlib there are no figures. Returns the
    lines to print."""
    lines = []
    data = REPORTS / "verification.json" if data is None else data
    if not data.exists():
        raise FileNotFoundError(f"{data} is missing: run `python -m derive verify` first")
    ctx = _context(docs, data)
    shown = [ctx["derivations"][item.key] for doc in docs for item in _items(doc) if isinstance(item, Proof)]
    lines += [f"warning: {problem}" for problem in repeated_steps(shown + ctx["kernels"])]
    try:
        lines += [f"wrote {out_dir.name}/{p}" for p in figures(out_dir / "figures", docs, ctx)]
        drawn = True
    except ImportError:
        drawn = False
        lines.append("matplotlib is not installed: the figures were not drawn "
                     "(pip install 'softmax-derive[report]' for them)")
    tex_paths = []
    for doc in docs:
        tex_path = out_dir / f"{doc.name}.tex"
        tex_path.write_text(build_tex(doc, ctx))
        (out_dir / f"{doc.name}.md").write_text(build_md(doc, ctx))
        tex_paths.append(tex_path)
        lines += [f"wrote {out_dir.name}/{doc.name}.tex", f"wrote {out_dir.name}/{doc.name}.md"]
    if (out_dir == REPORTS if readme is None else readme) and update_readme(ctx["data"]):
        lines.append("updated the verification table in README.md")
    if tex_engine() is None:
        if pdf:
            raise LatexError(f"--pdf: no TeX engine found; install the Debian packages {TEX_PACKAGES}")
        lines.append("no TeX engine found: the .tex files were written but not compiled "
                     f"(install the Debian packages {TEX_PACKAGES} to get the PDFs)")
        return lines
    if pdf is False:
        return lines
    if not drawn:
        if pdf:
            raise LatexError("--pdf: the PDFs need the figures, and the figures need matplotlib "
                             "(pip install 'softmax-derive[report]')")
        lines.append("the PDFs were not compiled: they need the figures (matplotlib)")
        return lines
    for tex_path in tex_paths:
        path = compile_pdf(tex_path)
        lines.append(f"wrote {out_dir.name}/{path.name}")
    return lines
