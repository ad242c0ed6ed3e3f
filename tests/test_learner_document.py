"""The learner's document: every formula's symbols defined, one box per result, no ASCII
relation in text mode, math that GitHub's MathJax takes, and every number of the worked
gradient step, the overflow example and the initial-loss check from ``numeric``, checked
against mpmath."""
from __future__ import annotations

import re
from collections import Counter

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive import latex, markdown
from derive import measure as M
from derive.document import Proof, items, result_boxes
from derive.printing import render_derivation
from derive.softmax import catalogue, documents, report

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.xdist_group("report")

GREEK = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau "
         "phi chi psi omega").split()


@pytest.fixture(scope="module")
def written(written_reports):
    return written_reports


# --------------------------------------------------------------------------- formulas and symbols
def symbols(latex_math: str) -> set[str]:
    """The names a formula uses: its Latin letters and Greek letters, without the words of
    \\text, \\operatorname, \\mathrm (softmax, diag, KL) or \\mathbb{R}, and without macro names."""
    latex_math = re.sub(r"\\(text|operatorname|mathrm|begin|end|mathbb)\{[^{}]*\}", " ", latex_math)
    found = set(re.findall(r"\\(" + "|".join(GREEK) + r")(?![a-zA-Z])", latex_math))
    latex_math = re.sub(r"\\[a-zA-Z]+", " ", latex_math)
    return found | set(re.findall(r"[A-Za-z]", latex_math))


def math_of_markdown(md: str) -> list[str]:
    """Every formula of a Markdown document: the ```math blocks and the inline $...$."""
    blocks = re.findall(r"```math\n(.*?)```", md, re.S)
    rest = re.sub(r"```.*?```", "", md, flags=re.S)
    return blocks + re.findall(r"(?<![\\$])\$([^$\n]+?)\$", rest)


def test_symbols_are_found_in_formulas():
    assert symbols(r"\frac{\partial L}{\partial W_{pq}} = \delta_{jp} x_q") == {"L", "W", "p", "q", "delta", "j", "x"}
    assert symbols(r"\operatorname{softmax}(a) \in \mathbb{R}^{T}, \ \mathrm{KL}(y \,\|\, S)") == {"a", "T", "y", "S"}


def test_every_symbol_in_a_formula_of_the_learners_document_is_in_its_symbol_table(written):
    md = (written / f"{documents.LEARNER.name}.md").read_text()
    table = set().union(*(symbols(symbol) for symbol, _, _ in documents.NOTATION))
    formulas = math_of_markdown(md)
    assert len(formulas) > 200  # the check reads the whole document
    undefined = {}
    for formula in formulas:
        for name in symbols(formula) - table:
            undefined.setdefault(name, formula.strip()[:80])
    assert not undefined, f"symbols used but not in the symbol table: {undefined}"
    # the table comes first: every symbol is defined before its first use
    assert md.index("| symbol | shape | meaning |") < md.index("## 1.")


def test_the_symbol_check_can_fail(written):
    md = (written / f"{documents.LEARNER.name}.md").read_text()
    table = set().union(*(symbols(symbol) for symbol, _, _ in documents.NOTATION if symbol != "\\eta"))
    assert "eta" in set().union(*(symbols(f) for f in math_of_markdown(md))) - table


# --------------------------------------------------------------------------- boxes
def _learner_rendered():
    derivations = catalogue.by_key()
    return [render_derivation(derivations[item.key]) for item in items(documents.LEARNER) if isinstance(item, Proof)]


def test_no_result_is_boxed_twice_and_no_box_repeats_the_line_above(written):
    boxes = []
    for r in _learner_rendered():
        shown = result_boxes(r)
        assert len(shown) <= 1, r.key
        if len(r.lines) == 1 and not r.boxed_matrix:
            assert shown == [], f"{r.key}: a one-line chain boxed again"
        boxes += shown
    repeated = {box: n for box, n in Counter(boxes).items() if n > 1}
    # S - y is reached by two routes (the chain rule through the Jacobian, and the soft form):
    # boxed once per route, nowhere else
    assert repeated == {r"\frac{\partial L}{\partial a} = S - y": 2}, repeated
    tex = (written / f"{documents.LEARNER.name}.tex").read_text()
    assert tex.count(r"\boxed{") == len(boxes)
    md = (written / f"{documents.LEARNER.name}.md").read_text()
    assert md.count(r"\boxed{") == len(boxes)


def test_the_box_rule_drops_a_box_that_repeats_the_only_line():
    class R:  # a rendered one-line chain, with and without a matrix form
        lines = [("=", "S_{j}", "why")]
        boxed_index = r"x = S_{j}"
        boxed_matrix = ""
    assert result_boxes(R) == []
    R.boxed_matrix = r"x = S_j"
    assert result_boxes(R) == [r"x = S_j"]
    R.lines = R.lines * 2
    R.boxed_matrix = r"x =  S_{j}"  # the same as the first and last line
    assert result_boxes(R) == [r"x = S_{j}"]


# --------------------------------------------------------------------------- text mode
def text_mode(tex: str) -> str:
    """The text-mode parts of a LaTeX document: without $...$, \\[...\\], math environments and
    listings, but with the text inside math (\\parbox, \\text) put back."""
    tex = re.sub(r"\\begin\{lstlisting\}.*?\\end\{lstlisting\}", " ", tex, flags=re.S)
    kept = []

    def keep_text(math: str) -> str:
        for match in re.finditer(r"\\(?:parbox(?:\[[a-z]\])?\{[^{}]*\}|text)\{((?:[^{}]|\{[^{}]*\})*)\}", math):
            kept.append(match.group(1))
        return " "
    tex = re.sub(r"\\begin\{(align|gather\*|equation)\}.*?\\end\{\1\}", lambda m: keep_text(m.group(0)), tex,
                 flags=re.S)
    tex = re.sub(r"\\\[.*?\\\]", lambda m: keep_text(m.group(0)), tex, flags=re.S)
    tex = re.sub(r"\$[^$]*\$", lambda m: keep_text(m.group(0)), tex)
    out = tex + "\n" + "\n".join(kept)
    return re.sub(r"\$[^$]*\$", " ", out)


@pytest.mark.parametrize("doc", documents.DOCUMENTS, ids=lambda d: d.name)
def test_no_ascii_relation_reaches_text_mode(written, doc):
    tex = (written / f"{doc.name}.tex").read_text()
    body = text_mode(tex[tex.index(r"\begin{document}"):])
    found = [body[max(0, m.start() - 40):m.end() + 20] for m in re.finditer(r"[<>]", body)]
    assert not found, found[:5]


def test_the_text_mode_check_can_fail():
    assert "b > 0" in text_mode(r"\begin{document} $x$ and b > 0")
    assert "y_j >= 0" in text_mode(r"\begin{align} x && \parbox[t]{3cm}{\raggedright y_j >= 0} \end{align}")
    assert latex.relations_as_math("b > 0, $a > 1$ and y >= 0") == r"b $>$ 0, $a > 1$ and y $\ge$ 0"
    assert markdown.relations_as_text("y_j >= 0, $a >= 1$") == "y_j ≥ 0, $a >= 1$"


# --------------------------------------------------------------------------- GitHub's math
#: the TeX macros the documents may use in Markdown math: all in MathJax's default TeX
#: input (GitHub renders $...$ and ```math with MathJax)
MATHJAX_MACROS = set("""approx arg begin beta big boxed cdot delta dots end epsilon eta exp frac gamma ge iff in
infty le left leftarrow log lvert mathbb mathbf mathrm max mu ne operatorname partial qquad quad rho right
rvert sigma succ sum text textstyle tfrac times to top zeta""".split())


def _balanced(formula: str) -> bool:
    depth = 0
    for char in re.sub(r"\\[{}]", "", formula):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("doc", documents.DOCUMENTS, ids=lambda d: d.name)
def test_markdown_math_is_what_githubs_mathjax_renders(written, doc):
    md = (written / f"{doc.name}.md").read_text()
    for formula in math_of_markdown(md):
        assert _balanced(formula), formula
        assert set(re.findall(r"\\([a-zA-Z]+)", formula)) <= MATHJAX_MACROS, formula
        assert "\\_" not in formula and r"\operatorname*" not in formula, formula
        assert not re.search(r"(?<!\\operatorname\{)log1p", formula), formula  # one word, upright
    for line in md.splitlines():  # a | inside a table's math would split the cell
        if line.startswith("| "):
            assert all(r"\|" not in cell for cell in line.split("$")[1::2]), line


# --------------------------------------------------------------------------- numbers
def _exact_loss(W, b, x, c):
    """-log S_c of (W x + b) at the working precision, from mpmath numbers."""
    a = [mpmath.fsum(W[p][q] * x[q] for q in range(len(x))) + b[p] for p in range(len(b))]
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a)) - a[c]


def test_the_gradient_step_comes_from_numeric_and_matches_mpmath():
    inputs, eta = documents.WORKED_EXAMPLE, documents.LEARNING_RATE
    step = report.gradient_step(inputs, eta)
    c = inputs["c"] - 1
    with mpmath.workdps(50):
        W = [[mpmath.mpf(v) for v in row] for row in inputs["W"]]
        b, x = [mpmath.mpf(v) for v in inputs["b"]], [mpmath.mpf(v) for v in inputs["x"]]
        loss = _exact_loss(W, b, x, c)
        # the exact step: dL/dW = (S - y) x^T, dL/db = S - y at 50 digits
        a = [mpmath.fsum(W[p][q] * x[q] for q in range(4)) + b[p] for p in range(3)]
        Z = mpmath.fsum(mpmath.exp(v) for v in a)
        g = [mpmath.exp(a[p]) / Z - (p == c) for p in range(3)]
        W2 = [[W[p][q] - mpmath.mpf(eta) * g[p] * x[q] for q in range(4)] for p in range(3)]
        b2 = [b[p] - mpmath.mpf(eta) * g[p] for p in range(3)]
        loss_step = _exact_loss(W2, b2, x, c)
        # numeric's loss at the float weights it stepped to, exactly
        at_floats = _exact_loss([[mpmath.mpf(v) for v in row] for row in step["W"]],
                                [mpmath.mpf(v) for v in step["b"]], x, c)
    assert M.ulp_error(step["loss"], loss) <= 4
    assert M.ulp_error(step["loss_step"], at_floats) <= 4
    assert abs(step["loss_step"] - float(loss_step)) < 1e-14
    # the numbers the document shows
    assert f"{step['loss']:.4f}" == "0.4843" and f"{step['loss_step']:.4f}" == "0.3365"
    assert step["S"][c] > report.worked_example(inputs)[1].values[c]
    # a step the wrong way raises the loss: the check can tell
    wrong = report.gradient_step(inputs, -eta)
    assert wrong["loss_step"] > step["loss"]


def test_the_learner_shows_the_step_numbers(written):
    md = (written / f"{documents.LEARNER.name}.md").read_text()
    assert "the loss falls from 0.4843 to 0.3365" in md and r"\eta = 0.1" in md


def test_the_numpy_pass_is_the_generated_code_on_the_worked_example():
    import numeric
    namespace: dict = {}
    exec(documents.NUMPY_PASS, namespace)  # noqa: S102 -- the document's own listing
    inputs = documents.WORKED_EXAMPLE
    x, W, b = (np.array(inputs[k]) for k in ("x", "W", "b"))
    c = inputs["c"] - 1
    L, dW, db, dx = namespace["forward_backward"](x, W, b, c)
    loss, dx2, dW2, db2 = numeric.linear_cross_entropy(x[None, :], W, b, np.array([c]))
    np.testing.assert_allclose([L], [loss], rtol=1e-14)
    for mine, theirs in ((dW, dW2), (db, db2), (dx, dx2[0])):
        np.testing.assert_allclose(mine, np.reshape(theirs, mine.shape), rtol=1e-13, atol=1e-15)


def test_the_softmax_table_is_the_derivation_evaluated():
    values = report.softmax_example()
    last = catalogue.by_key()["example_softmax"].steps[-1].expr
    j = [s for s in last.free_symbols if s.name == "j"][0]
    with mpmath.workdps(50):
        for k, v in enumerate(values, start=1):
            exact = sp.N(last.subs(j, k), 50)
            assert M.ulp_error(v, mpmath.mpf(str(exact))) <= 4
    assert [f"{v:.2f}" for v in values] == list(report.SOURCE_ROUNDED)


def test_the_overflow_example_fails_naively_and_is_softmax_of_1_2_3_once_shifted():
    naive, shifted = report.overflow_example(documents.BIG_LOGITS)
    assert np.isnan(naive).all()
    # the same to rounding (each within 4 ULP of its exact value), the same to every printed digit
    np.testing.assert_allclose(shifted, report.softmax_example(), rtol=4e-16, atol=0)
    assert [f"{v:.4f}" for v in shifted] == [f"{v:.4f}" for v in report.softmax_example()]


def test_the_initial_loss_is_close_to_log_T():
    init = documents.INITIAL_LOSS
    loss = report.initial_loss(**init)
    assert abs(loss - np.log(init["T"])) < 0.01
    # large weights are far from it: the check tells a bad start
    assert abs(report.initial_loss(**{**init, "scale": 1.0}) - np.log(init["T"])) > 1


# --------------------------------------------------------------------------- layout
def test_figures_stand_before_the_colophon_and_do_not_float(written):
    for doc in documents.DOCUMENTS:
        tex = (written / f"{doc.name}.tex").read_text()
        assert r"\begin{figure}" not in tex
        assert tex.rindex(r"\includegraphics") < tex.index("About this document")


def test_the_machine_is_in_the_developers_document(written):
    learner = (written / f"{documents.LEARNER.name}.md").read_text()
    developers = (written / f"{documents.DEVELOPERS.name}.md").read_text()
    for moved in ("(automatic)", "max error (ULP)", "| max-shift |", "error_vs_spread.png", "[rule ",
                  "40 digits on random inputs"):
        assert moved not in learner, moved
    for kept in ("(automatic)", "max error (ULP)", "error_vs_spread.png", "40 digits on random inputs",
                 "Cross entropy of the label and the softmax is the softmax loss", "5 classes, true class 4"):
        assert kept in developers, kept
    assert "softmax_cross_entropy_developers.md" in learner  # the one sentence and its link


# --------------------------------------------------------------------------- the source
POST = "https://blog.csdn.net/u014380165/article/details/77284921"
REFERENCE = "https://eli.thegreenplace.net/2016/the-softmax-function-and-its-derivative/"


def test_the_source_post_and_its_reference_are_cited_with_their_addresses(written):
    """The post the document follows (AI Zhi Lu, CSDN, 17 August 2017) and its reference 1
    (Bendersky's post, where its pipeline figure comes from): linked in both versions."""
    tex = (written / "softmax_cross_entropy.tex").read_text()
    md = (written / "softmax_cross_entropy.md").read_text()
    for address in (POST, REFERENCE):
        assert rf"\url{{{address}}}" in tex
        assert f"<{address}>" in md
    assert "17 August 2017" in tex and "AI Zhi Lu" in md and "follow-up" in md


def test_an_address_is_neither_escaped_nor_set_as_math_and_ends_before_the_full_stop():
    from derive.document import around_urls

    text = "see https://x.org/a_b~c%20d. and a_b > 0"
    tex = latex.why_tex("a_b > 0")
    assert tex == r"a\_b $>$ 0"
    out = around_urls(text, latex.why_tex, lambda url: rf"\url{{{url}}}")
    assert out == r"see \url{https://x.org/a_b~c%20d}. and a\_b $>$ 0"
    assert around_urls("(https://x.org/p), then", str.upper, lambda u: f"<{u}>") == "(<https://x.org/p>), THEN"
