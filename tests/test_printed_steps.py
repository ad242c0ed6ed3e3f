"""What the reader sees: every printed step shows a change, in the notation of the table."""
from __future__ import annotations

import re

import pytest
import sympy as sp

from derive import engine, printing
from derive.engine import Derivation, Step
from derive.softmax import catalogue, report
from derive.softmax import definitions as D
from derive.softmax import kernels as SK


@pytest.fixture(scope="module")
def every_derivation():
    return catalogue.build() + list(SK._proofs().values())


def test_no_two_consecutive_printed_steps_are_equal(every_derivation):
    assert report.repeated_steps(every_derivation) == []


def test_repeated_steps_names_a_step_that_shows_nothing():
    # e^{a_j}/Z is abbreviated to S_j when printed: the step is true but shows nothing
    toy = Derivation("toy", "A step that prints its own start", (D.REAL_LOGITS,), [
        Step(D.softmax(D.j), "definition"),
        Step(sp.exp(D.a[D.j]) / D.partition(), "write out the definition"),
        Step(sp.Mul(sp.exp(D.a[D.j]), sp.Pow(D.partition(), -1), evaluate=False) * 1, "again"),
    ])
    found = report.repeated_steps([toy])
    assert len(found) == 2 and found[0].startswith("toy: step 1 (write out the definition) prints S_{j}")


def _md_rows(md: str) -> list[list[str]]:
    """The printed lines of every derivation in the Markdown: [start, rhs 1, rhs 2, ...]."""
    chains = []
    for block in re.findall(r"```math\n\\begin\{aligned\}\n(.*?)\n\\end\{aligned\}\n```", md, re.S):
        lines = block.split(" \\\\\n")
        first_lhs, first_rhs = lines[0].split(" & ", 1)
        rhs = [re.sub(r"^& ?", "", line.split(" && ")[0]) for line in lines]
        rhs[0] = first_rhs.split(" && ")[0]
        chains.append([first_lhs] + [re.sub(r"^\S+ ", "", r, count=1) for r in rhs])
    return chains


def _tex_rows(tex: str) -> list[list[str]]:
    chains = []
    for block in re.findall(r"\\begin\{align\}\n(.*?)\n\\end\{align\}", tex, re.S):
        rows = block.split(" \\\\\n")
        if rows[0].endswith(r"\notag"):  # the start on a line of its own
            start = rows.pop(0)[2:-len(r" \notag")]
            rhs = [row.split(" && ")[0].split("&", 1)[1] for row in rows]
        else:
            start = rows[0].split(" &", 1)[0]
            rhs = [row.split(" && ")[0].split("&", 1)[1] for row in rows]
        chains.append([start.strip()] + [re.sub(r"^\S+ ", "", r.strip(), count=1) for r in rhs])
    return chains


@pytest.mark.xdist_group("report")  # with test_report: the documents are written once
def test_the_written_documents_have_no_repeated_lines(written_reports):
    for name, parse in ((f"{report.NAME}.md", _md_rows), (f"{report.NAME}.tex", _tex_rows),
                        (f"{report.DEV_NAME}.md", _md_rows), (f"{report.DEV_NAME}.tex", _tex_rows)):
        chains = parse((written_reports / name).read_text())
        assert len(chains) > 10, name
        for chain in chains:
            for before, after in zip(chain, chain[1:]):
                assert before != after, f"{name}: {before} printed twice in a row"


@pytest.mark.parametrize("key, start, result", [
    ("jacobian_offdiagonal", r"\frac{\partial S_{j}}{\partial a_{i}}", r"- S_{i} S_{j}"),
    ("softmax_ratio", r"\frac{S_{j}}{S_{k}}", r"e^{a_{j} - a_{k}}"),
    ("cross_entropy_is_loss", r"- \sum_{j} y_{j} \log q_{j}", r"- \sum_{j} y_{j} \log S_{j}"),
    ("loss_one_hot", r"- \sum_{j} y_{j} \log S_{j}", r"\log Z - a_{c}"),
    ("jacobian_diagonal", r"\frac{\partial S_{i}}{\partial a_{i}}", r"S_{i} \left(1 - S_{i}\right)"),
])
def test_results_match_their_titles(key, start, result):
    r = printing.render_derivation(catalogue.by_key()[key])
    assert r.start == start and r.lines[-1][1] == result


def test_ratio_starts_from_the_outputs_and_the_cross_entropy_substitutes_q():
    ratio = printing.render_derivation(catalogue.by_key()["softmax_ratio"])
    assert "$Z$ cancels" in ratio.lines[0][2] and "Z" in ratio.lines[0][2].split(":")[0]
    ce = catalogue.by_key()["cross_entropy_is_loss"]
    assert D.Q_IS_SOFTMAX in ce.assumptions
    # without q = S the substitution is false, and the engine says so
    unjustified = Derivation(ce.key, ce.title, (D.REAL_LOGITS,), ce.steps)
    with pytest.raises(engine.StepRejected, match="step 1"):
        engine.check(unjustified)


def test_notation_sums_over_j_and_textbook_order(every_derivation):
    printed = []
    for d in every_derivation:
        r = printing.render_derivation(d)
        printed += [r.start] + [rhs for _, rhs, _ in r.lines]
    text = "\n".join(printed)
    assert r"\sum_{s}" not in text and r"\sum_{r}" not in text and "_{s}" not in text
    assert r"\log{\left(S_" not in text and r"\log S_{j}\right) y_" not in text
    assert r"y_{j} \log S_{j}" in text and r"\delta_{j c}" in text


def test_loss_examples_print_decimals_and_the_ordering():
    by_key = catalogue.by_key()
    for key, tail in (("example_loss_01_015_005_06_01", (r"- \log 0.6", "0.511")),
                      ("example_loss_015_02_04_01_015", (r"- \log 0.1", "2.303")),
                      ("example_loss_005_015_04_03_01", (r"- \log 0.3", "1.204"))):
        r = printing.render_derivation(by_key[key])
        assert [rhs for _, rhs, _ in r.lines[-2:]] == list(tail)
    order = printing.render_derivation(by_key["example_order"])
    assert [order.start] + [rhs for _, rhs, _ in order.lines] == [r"- \log 0.6", r"- \log 0.3", r"- \log 0.1"]


def test_a_users_proof_style_tests_fail_on_a_step_that_shows_nothing():
    # derive.testing.derivation_tests (the one-line helper for a user's catalogue) fails a
    # derivation whose printed step repeats the line before it, naming the step
    import pytest as _pytest

    from derive import scalar
    from derive.testing import derivation_tests

    x = scalar("x_twice", lambda rng: rng.normal(0, 2))
    shown_twice = Derivation("twice", "Twice", (), [
        Step(sp.Mul(2, x, evaluate=False), "definition"),
        Step(x + x, "the same, as a sum"),  # SymPy folds x + x to 2x: prints as before
    ])
    test = derivation_tests([shown_twice])
    with _pytest.raises(_pytest.fail.Exception, match="twice: step 1 .* again"):
        test(shown_twice)
    # the same chain written so that the change shows passes
    shows = Derivation("shows", "Shows", (), [
        Step(sp.Mul(2, x, evaluate=False), "definition"),
        Step(sp.Add(x, x, evaluate=False), "the same, as a sum"),
    ])
    derivation_tests([shows])(shows)


def test_automatic_derivations_print_every_step_as_a_change():
    # the step that folds e^{a_i}/Z into S_i printed S_i - y_i twice while the printer
    # abbreviated e^{a_i}/Z to S_i before the fold; automatic chains and the checks that
    # they agree with the hand-written ones are held to the same rule as any other
    from derive.softmax import automatic, catalogue

    hand = {d.key: d for d in catalogue.hand_written()}
    built = automatic.build(hand, check=False)
    agreements = [automatic.agreement(key, d, hand[key]) for key, d in built.items()]
    assert report.repeated_steps(list(built.values()) + agreements) == []
    fold = printing.render_derivation(built["loss_gradient"]).lines
    assert fold[-1][1] == "S_{i} - y_{i}" and fold[-2][1] == r"\frac{e^{a_{i}}}{Z} - y_{i}"
