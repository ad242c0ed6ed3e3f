"""What the built-in documents compute: their figures, tables and the worked example.

What the documents say -- sections, texts, which derivations, figures and tables, the
worked example's inputs -- is data (:mod:`derive.softmax.documents`); the machinery
renders it (:mod:`derive.latex`, :mod:`derive.markdown`, :mod:`derive.publish`). Every
formula is printed from the checked derivation objects, every number is read from the
verification results (``reports/verification.json``) or computed here from the
generated code and checked against mpmath: nothing is typed by hand.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from .. import engine, results
from ..document import Rendering, proofs
from ..figures import error_plot, pyplot, save
from ..latex import TEX_PACKAGES, LatexError, bmatrix, compile_pdf, derivation_tex, tex_engine, why_tex
from ..markdown import derivation_md, table_md
from ..printing import repeated_steps
from ..publish import code_block, function_source, table_block
from ..references import worst_ulp
from ..results import fmt_value
from . import definitions as D
from . import documents, verify
from . import kernels as SK

# re-exported: the tests and users reach them here
__all__ = ["LatexError", "TEX_PACKAGES", "compile_pdf", "repeated_steps", "report", "tex_engine"]

ROOT = Path(__file__).resolve().parent.parent.parent
REPORTS = ROOT / "reports"
NAME = documents.LEARNER.name
DEV_NAME = documents.DEVELOPERS.name
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
        rows.append(("softmax([1000, 0])", fmt_value(naive["softmax"](a)[0]), fmt_value(ours["softmax"](a)[0]),
                     "[" + ", ".join(mpmath.nstr(v, 2) for v in exact) + "]"))
        b, c0 = np.array([[0.0, -745.0]]), np.array([0])
        rows.append(("loss of [0, -745], true class 1", fmt_value(shift["cross_entropy"](b, c0)[0]),
                     fmt_value(ours["cross_entropy"](b, c0)[0]),
                     mpmath.nstr(verify.reference_row(b[0], 0).loss_index, 3)))
        c = np.array([[0.3, -700.123456789]])
        ref = verify.reference_row(c[0]).softmax[1]
        plain, mine = shift["softmax"](c)[0, 1], ours["softmax"](c)[0, 1]
        rows.append(("$S_2$ of [0.3, -700.123456789]",
                     f"{plain:.6e} ({verify.ulp_error(plain, ref):.0f} ULP off)",
                     f"{mine:.6e} ({verify.ulp_error(mine, ref):.1f} ULP)", mpmath.nstr(ref, 7)))
    return rows


# --------------------------------------------------------------------------- figures
def figure_neg_log(path: Path, ctx: dict) -> None:
    """-log p over (0, 1] with the loss examples of the catalogue marked."""
    plt = pyplot()
    p = np.linspace(0.005, 1.0, 400)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=130)
    ax.plot(p, -np.log(p), color="black", linewidth=1.4, label="$-\\log S_c$")
    for pc, loss in ctx["loss_examples"]:
        ax.plot([pc], [loss], "o", markersize=7)
        ax.annotate(f"$S_c = {pc:g}$: $-\\log {pc:g} \\approx {loss:.3f}$", (pc, loss),
                    xytext=(12, 6), textcoords="offset points", fontsize=9)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 5.4)
    ax.set_xlabel("probability of the true class $S_c$")
    ax.set_ylabel("loss $L = -\\log S_c$")
    ax.grid(True, linewidth=0.3)
    save(plt, fig, path)


def figure_softmax_sweep(path: Path, ctx: dict) -> None:
    """softmax([a_1, 2, 3]) from the generated code as a_1 moves, the others fixed."""
    import numeric
    plt = pyplot()
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
    save(plt, fig, path)


def figure_pipeline(path: Path, ctx: dict) -> None:
    """The source's picture: features -> FC layer -> logits -> softmax -> probabilities -> loss,
    each box with its shape."""
    plt = pyplot()
    from matplotlib.patches import FancyBboxPatch
    fig, ax = plt.subplots(figsize=(7.6, 1.75), dpi=150)
    boxes = [("features $x$", "$N \\times 1$", "white"),
             ("FC layer\n$a = W x + b$", "$W$: $T \\times N$", "#dde8f5"),
             ("logits $a$", "$T \\times 1$", "white"),
             ("softmax", "$S_j = e^{a_j} / Z$", "#dde8f5"),
             ("probabilities\n$S$", "$T \\times 1$", "white"),
             ("loss $L$", "$-\\sum_j y_j \\log S_j$", "#dde8f5")]
    width, gap = 1.12, 0.26
    for k, (name, shape, colour) in enumerate(boxes):
        left = k * (width + gap)
        ax.add_patch(FancyBboxPatch((left, 0.0), width, 1.0, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=colour, edgecolor="black", linewidth=1.0))
        ax.text(left + width / 2, 0.64, name, ha="center", va="center", fontsize=10)
        ax.text(left + width / 2, 0.2, shape, ha="center", va="center", fontsize=9, color="#333333")
        if k:
            ax.annotate("", xy=(left - 0.03, 0.5), xytext=(left - gap + 0.03, 0.5),
                        arrowprops={"arrowstyle": "->", "linewidth": 1.0})
    loss_left = 5 * (width + gap)
    ax.text(loss_left + width / 2, 1.45, "label $y$ ($T \\times 1$)", ha="center", va="center", fontsize=9.5)
    ax.annotate("", xy=(loss_left + width / 2, 1.03), xytext=(loss_left + width / 2, 1.3),
                arrowprops={"arrowstyle": "->", "linewidth": 1.0})
    ax.set_xlim(-0.05, 6 * width + 5 * gap + 0.05)
    ax.set_ylim(-0.08, 1.6)
    ax.axis("off")
    save(plt, fig, path)


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
            errors[name].append(max(worst_ulp(v, r.softmax, np.float64) for v, r in zip(vals, refs)))
    error_plot(path, spreads, errors, _ERROR_NAMES, "logit spread (max - min)", "softmax: worst error (ULP)",
               logx=True)


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
    error_plot(path, margins, errors, _ERROR_NAMES, "true-class margin $a_c - \\max_{j \\ne c} a_j$",
               "loss: worst error (ULP)")




#: figure key -> the function that draws it into a path (the documents choose which)
FIGURES = {
    "pipeline": figure_pipeline,
    "neg_log": figure_neg_log,
    "softmax_sweep": figure_softmax_sweep,
    "error_vs_spread": figure_error_vs_spread,
    "error_vs_margin": figure_error_vs_margin,
}


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


def worked_values(inputs: dict, worked: list[Quantity]) -> dict[str, str]:
    """The LaTeX of every number the worked example shows, by the @name@ the documents use."""
    a, S, L, g, _, dW, db, dx = worked
    T, N = np.array(inputs["W"]).shape
    c = int(inputs["c"])
    top = int(np.argmax(a.values)) + 1
    return {"c": str(c), "x": bmatrix(inputs["x"], 1), "W": bmatrix(inputs["W"], 1), "b": bmatrix(inputs["b"], 1),
            "y": bmatrix([float(j + 1 == c) for j in range(T)], 0), "a": bmatrix(a.values), "S": bmatrix(S.values),
            "top": str(top), "top_is_true": " (the true class)" if top == c else f" (not the true class {c})",
            "S_c": f"{S.values[c - 1]:.4f}", "L": f"{L.values[0]:.4f}", "grad": bmatrix(g.values),
            "dW": bmatrix(np.reshape(dW.values, (T, N))), "db": bmatrix(db.values), "dx": bmatrix(dx.values)}


def gradient_step(inputs: dict, eta: float) -> dict[str, np.ndarray]:
    """One gradient-descent step on the worked example, by the generated code: W and b move
    by -eta times their gradients (numeric.linear_cross_entropy), then the new logits,
    probabilities and loss (numeric.softmax, numeric.cross_entropy)."""
    import numeric
    x, W, b = (np.array(inputs[k], dtype=np.float64) for k in ("x", "W", "b"))
    c = int(inputs["c"])
    loss, dx, dW, db = numeric.linear_cross_entropy(x[None, :], W, b, np.array([c - 1]))
    W_step, b_step = W - eta * dW, b - eta * db
    a_step = W_step @ x + b_step
    return {"loss": np.float64(loss), "W": W_step, "b": b_step, "a": a_step, "S": numeric.softmax(a_step),
            "loss_step": np.float64(numeric.cross_entropy(a_step[None, :], np.array([c - 1])))}


def overflow_example(logits) -> tuple[np.ndarray, np.ndarray]:
    """softmax of ``logits`` by the formula as written (NumPy, warnings silenced) and by the
    generated code, which shifts by the largest logit."""
    import numeric
    big = np.array(logits, dtype=np.float64)
    with np.errstate(all="ignore"):
        naive = np.exp(big) / np.exp(big).sum()
    return naive, numeric.softmax(big)


def initial_loss(T: int, N: int, B: int, scale: float, seed: int) -> float:
    """The mean loss of B random samples through an FC layer with weights of size ``scale``
    (numeric.cross_entropy): close to log T before any training."""
    import numeric
    rng = np.random.default_rng(seed)
    W = scale * rng.standard_normal((T, N))
    X = rng.standard_normal((B, N))
    return float(numeric.cross_entropy(X @ W.T, rng.integers(0, T, B)))


def _learner_values(inputs: dict, worked: list[Quantity]) -> dict[str, str]:
    """The numbers of the learner's sections 2, 3 and 6 beyond the worked example's own."""
    step = gradient_step(inputs, documents.LEARNING_RATE)
    c = int(inputs["c"])
    naive, shifted = overflow_example(documents.BIG_LOGITS)
    init = documents.INITIAL_LOSS
    return {"eta": f"{documents.LEARNING_RATE:g}", "a_step": bmatrix(step["a"]), "S_step": bmatrix(step["S"]),
            "S_c_step": f"{step['S'][c - 1]:.4f}", "L_step": f"{step['loss_step']:.4f}",
            "big_naive": "$[" + ", ".join(rf"\mathrm{{{fmt_value(v)}}}" if np.isnan(v) else fmt_value(v)
                                          for v in naive) + "]$",
            "big_shifted": "$[" + ", ".join(f"{v:.4f}" for v in shifted) + "]$",
            "init_T": str(init["T"]), "init_N": str(init["N"]), "init_B": str(init["B"]),
            "init_loss": f"{initial_loss(**init):.3f}", "init_logT": f"{np.log(init['T']):.3f}"}


def _worked_rows(ctx) -> list[tuple[str, str, str, str]]:
    """(quantity, its first component from the code and from mpmath, the worst ULP error)."""
    rows = []
    for item in ctx["worked"]:
        rows.append((item.name, repr(float(item.values[0])), mpmath.nstr(item.exact[0], 20),
                     results.fmt(item.ulp)))
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
def computed(rendering: Rendering) -> None:
    """What the built-in documents compute beyond the machinery's: the worked example
    (its @name@ values), the table of naive failures, the loss examples, the kernels'
    proofs as the catalogue states them, the closing paragraph."""
    used = [rendering.derivations[key] for key in proofs(documents.DOCUMENTS)]
    worked = worked_example(documents.WORKED_EXAMPLE)
    loss_example_rows = _loss_examples(used)
    rendering.extra.update({"kernels": list(SK._proofs().values()), "naive": _naive_failures(), "worked": worked,
                            "loss_example_rows": loss_example_rows,
                            "loss_examples": [(pc, loss) for _, pc, loss in loss_example_rows]})
    rendering.values = {**worked_values(documents.WORKED_EXAMPLE, worked),
                        **_learner_values(documents.WORKED_EXAMPLE, worked)}
    rendering.about = _about(_versions())


def _listings() -> tuple[str, str]:
    """The generated fused kernel (the docstring's long expression lines dropped) and the
    helpers it calls, as the report lists them."""
    text = SK.TARGET.read_text()
    helpers = ("_difference_error", "_exp_difference", "_sum_except")
    return (function_source(text, "nll_index_with_grad", drop="Expression:"),
            "\n\n".join(function_source(text, name) for name in helpers))


def _about(v: dict) -> str:
    return (f"Generated by python -m derive report from softmax-derive's derivations, generated code and "
            f"verification results. SymPy {v['SymPy']}, NumPy {v['NumPy']}, mpmath {v['mpmath']}; "
            f"proof instances at {engine.DIGITS} digits with seed {engine.DEFAULT_SEED}; "
            f"verification at $\\ge {verify.MIN_DIGITS}$ digits with seed {verify.SEED}; "
            f"figures with seed {FIGURE_SEED}.")


# --------------------------------------------------------------------------- blocks
def _notation_tex(doc, ctx):
    out = [r"\begin{center}\small\begin{tabular}{llp{0.6\textwidth}}\toprule",
           r"symbol & shape & meaning \\ \midrule"]
    for sym, shape, meaning in documents.NOTATION:
        out.append(f"${sym}$ & {'$' + shape + '$' if shape else ''} & {why_tex(meaning)} \\\\")
    return out + [r"\bottomrule\end{tabular}\end{center}"]


def _notation_md(doc, ctx):
    return table_md(("symbol", "shape", "meaning"),
                    [(f"${sym}$", f"${shape}$" if shape else "", meaning)
                     for sym, shape, meaning in documents.NOTATION])


def _loss_example_rows(ctx):
    return [(p, f"{pc:g}", rf"-\log {pc:g} \approx {loss:.3f}") for p, pc, loss in ctx["loss_example_rows"]]


_LOSS_EXAMPLES_HEADER = ("prediction $S$ (true class $c = 4$)", "$S_4$", "loss $L = -\\log S_4$")
_SOFTMAX_EXAMPLE_HEADER = ("$j$", "$e^{j - 1} / (1 + e + e^2)$", "$S_j$ (generated code)", "the source")
#: the source's rounding of softmax([1, 2, 3])
SOURCE_ROUNDED = ("0.09", "0.24", "0.67")


def softmax_example() -> np.ndarray:
    """softmax([1, 2, 3]) by the generated code (the table of the learner's section 2)."""
    import numeric
    return numeric.softmax(np.array([1.0, 2.0, 3.0]))


def _softmax_example_rows(ctx):
    values = softmax_example()
    return [(str(j), rf"e^{{{j - 1}}} / (1 + e + e^2)", f"{v:.4f}", SOURCE_ROUNDED[j - 1])
            for j, v in enumerate(values, start=1)]


_WORKED_HEADER = ("quantity", "first component: generated", "mpmath", "max error (ULP)")
_NAIVE_HEADER = ("input", "naive or max-shift", "generated", "exact")


def _kernels_tex(doc, ctx):
    out = []
    for d in ctx["kernels"]:
        out += derivation_tex(d)
    return out + [r"\begin{lstlisting}[language=Python]", *_listings(), r"\end{lstlisting}"]


def _kernels_md(doc, ctx):
    out = []
    for d in ctx["kernels"]:
        out += derivation_md(d)
    kernel, helpers = _listings()
    return out + ["", "```python", kernel, "", helpers, "```"]


def _verification_tex(doc, ctx):
    data = ctx["data"]
    intro = why_tex("The generated functions against the definitions, evaluated with mpmath from the "
                    f"exact float inputs (at least {data['mpmath_min_digits']} digits, more where a row "
                    "needs it), from python -m derive verify. Errors are in ULPs of the correctly rounded "
                    "result with an absolute floor at the smallest normal number; the max-shift column is "
                    "the plain shift by the maximum measured in the same run.")
    return results.verification_tex(data, intro)


def _verification_md(doc, ctx):
    data = ctx["data"]
    intro = ("The generated functions against the definitions evaluated with mpmath from the exact "
             f"float inputs (at least {data['mpmath_min_digits']} digits, more where a row needs it), "
             "from `python -m derive verify`. Errors in ULPs of the correctly rounded result, with an "
             "absolute floor at the smallest normal number; the max-shift column is the plain shift "
             "by the maximum, measured in the same run.")
    return results.verification_md(data, intro)


#: block key -> (LaTeX renderer, Markdown renderer); each takes (document, rendering)
BLOCKS = {
    "notation": (_notation_tex, _notation_md),
    "loss_examples": table_block(_LOSS_EXAMPLES_HEADER, _loss_example_rows, "lll", math_columns=(2,)),
    "softmax_example": table_block(_SOFTMAX_EXAMPLE_HEADER, _softmax_example_rows, "cccc", math_columns=(1,)),
    "numpy_pass": code_block(documents.NUMPY_PASS),
    "worked_table": table_block(_WORKED_HEADER, _worked_rows, "llll", ["---", "---", "---", "---:"],
                                math_columns=(0,)),
    "naive_table": table_block(_NAIVE_HEADER, lambda ctx: ctx["naive"], "llll"),
    "kernels": (_kernels_tex, _kernels_md),
    "verification": (_verification_tex, _verification_md),
}


# --------------------------------------------------------------------------- driver
def report(pdf: bool | None = None, out_dir: Path = REPORTS, readme: bool | None = None,
           data: Path | None = None) -> list[str]:
    """The report stage of the built-in catalogue into ``out_dir`` from the verification
    results ``data`` (default: the source checkout's ``reports/verification.json``), as
    ``python -m derive report`` writes it (:func:`derive.stages.write_reports`; ``readme``:
    whether to update README.md's table, by default when ``out_dir`` is the checkout's
    reports); returns the lines to print."""
    from .. import stages
    from . import CATALOGUE

    data = REPORTS / "verification.json" if data is None else data
    if not data.exists():
        raise FileNotFoundError(f"{data} is missing: run `python -m derive verify` first")
    at_home = out_dir == REPORTS if readme is None else readme
    run = stages.Run(CATALOGUE, None, Path(out_dir), at_home=at_home)
    return stages.write_reports(run, json.loads(data.read_text()), pdf)
