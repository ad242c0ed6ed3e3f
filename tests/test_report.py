"""Reports: deterministic, complete, and (where TeX exists) a PDF that compiles cleanly."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from derive import cli, latex, results
from derive import measure as M
from derive.softmax import catalogue, documents, report

pytest.importorskip("matplotlib")

#: one worker runs this module's tests (and test_printed_steps' that reads the documents),
#: so that the reports are written once for all of them, not once on each worker
pytestmark = pytest.mark.xdist_group("report")
needs_tex = pytest.mark.skipif(report.tex_engine() is None,
                               reason="no TeX engine (apt-get install " + report.TEX_PACKAGES + ")")


@pytest.fixture(scope="module")
def written(written_reports):
    return written_reports  # conftest: written once, also read by test_printed_steps


def _outputs(out):
    names = [f"{doc.name}.{ext}" for doc in documents.DOCUMENTS for ext in ("tex", "md")]
    return names + sorted(str(p.relative_to(out)) for p in (out / "figures").glob("*.png"))


def test_report_is_deterministic_and_needs_a_tex_engine_only_when_asked(written, tmp_path, monkeypatch):
    # written again, on a machine without TeX this time: the same bytes (the fixture's
    # run skipped the PDFs, this one finds no engine), and a line that says what to install
    monkeypatch.setattr(latex, "tex_engine", lambda: None)
    lines = report.report(out_dir=tmp_path, readme=False)
    names = _outputs(written)
    assert len(names) == 4 + len(report.FIGURES) and _outputs(tmp_path) == names
    for name in names:
        assert (tmp_path / name).read_bytes() == (written / name).read_bytes(), name
    assert any("no TeX engine found" in line and report.TEX_PACKAGES in line for line in lines)
    assert not list(tmp_path.glob("*.pdf"))
    with pytest.raises(report.LatexError, match="--pdf: no TeX engine found"):
        report.report(pdf=True, out_dir=tmp_path, readme=False)


def test_every_derivation_is_in_one_of_the_documents(written):
    keys = [item.key for doc in documents.DOCUMENTS for section in doc.sections
            for item in section.items if isinstance(item, documents.Proof)]
    assert sorted(set(keys)) == sorted(d.key for d in catalogue.build())
    tex = "".join((written / f"{doc.name}.tex").read_text() for doc in documents.DOCUMENTS)
    md = "".join((written / f"{doc.name}.md").read_text() for doc in documents.DOCUMENTS)
    for d in catalogue.build():
        assert rf"\label{{d:{d.key}}}" in tex
        assert f"**{d.title}**" in md


def test_the_learner_document_follows_the_source_in_order(written):
    for text in ((written / f"{report.NAME}.md").read_text(), (written / f"{report.NAME}.tex").read_text()):
        marks = ["natural (base $e$)", "N = 100 \\cdot 4 \\cdot 4 = 1600", "W x + b", "pipeline.png",
                 "arg\\max_j a_j",                                                      # 1. the FC layer
                 "softmax}([1, 2, 3])_j", "0.0900", "0.6652", "softmax_sweep.png",
                 "without overflow", "[1001, 1002, 1003]",                             # 2. softmax
                 "0.05, 0.6, 0.1]", "2.303", "1.204", "confidently wrong costs most", "0.3 < 0.6",
                 "neg_log.png", "check before training",                               # 3. the loss
                 "H(y, S) = H(y) + \\mathrm{KL}", "negative log-likelihood",             # 4.
                 "Softmax Jacobian, case $i = j$", "Softmax Jacobian, case $i \\ne j$",
                 "of the softmax derivative", "What $S - y$ says", "d:fc_grad_W" if "\\label" in text
                 else "Gradient through the FC layer",                                  # 5.
                 "One example end to end", "One gradient-descent step", "def forward_backward",  # 6.
                 "Bendersky", "CS231n"]                                                   # 7.
        where = [text.find(mark) for mark in marks]
        assert -1 not in where, [m for m, w in zip(marks, where) if w == -1]
        assert where == sorted(where), [m for m, w, s in zip(marks, where, sorted(where)) if w != s]
        assert "def nll_index_with_grad" not in text and "| max-shift | bound |" not in text  # developer material
        assert "ULP" not in text and "automatic" not in text and "error_vs_spread" not in text
        assert r"\begin{longtable}" not in text
        assert "softmax_cross_entropy_developers" in text.replace("\\_", "_").replace("\\allowbreak{}", "")


@needs_tex
def test_the_learner_pdf_has_at_most_8_pages(written):
    if shutil.which("pdfinfo") is None:
        pytest.skip("pdfinfo (poppler-utils) not installed")
    pdf = report.compile_pdf(written / f"{report.NAME}.tex")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"Pages:\s+(\d+)", info).group(1)) <= 8


def test_the_developer_document_has_the_code_and_the_full_table(written):
    tex = (written / f"{report.DEV_NAME}.tex").read_text()
    md = (written / f"{report.DEV_NAME}.md").read_text()
    data = json.loads((report.REPORTS / "verification.json").read_text())
    ours = [r for r in data["results"] if r["implementation"] == "numeric"]
    for r in ours:
        assert f"| {r['function']} | {r['category']} | {r['inputs']} | {results.fmt(r['max_ulp'])} |" in md
    assert "def nll_index_with_grad(A, C," in tex and "def nll_index_with_grad(A, C," in md
    for formula in (r"\frac{\partial L}{\partial W} = (S - Y)^\top X", r"\operatorname{log1p}"):
        assert formula in tex and formula in md
    assert "SymPy" in tex and "mpmath" in md and "seed" in md
    assert "figures/error_vs_spread.png" in tex and "figures/error_vs_margin.png" in md


def test_worked_example_is_the_generated_code_checked_against_mpmath():
    quantities = report.worked_example(documents.WORKED_EXAMPLE)
    assert [q.values.size for q in quantities] == [3, 3, 1, 3, 1, 12, 3, 4]
    assert all(q.ulp <= 4 for q in quantities), [(q.name, q.ulp) for q in quantities]
    S = quantities[1].values
    assert abs(S.sum() - 1) < 1e-15 and int(np.argmax(S)) + 1 == documents.WORKED_EXAMPLE["c"]
    # the check can fail: one logit off by 1e-12 (all of them would not do: a shift changes
    # nothing) moves S by thousands of ULPs
    import numeric
    x, W, b = (np.array(documents.WORKED_EXAMPLE[k]) for k in ("x", "W", "b"))
    moved = numeric.softmax(W @ x + b + np.array([1e-12, 0.0, 0.0]))
    assert max(M.ulp_error(m, e) for m, e in zip(moved, quantities[1].exact)) > 100


def test_markdown_uses_github_math_only(written):
    for doc in documents.DOCUMENTS:
        md = (written / f"{doc.name}.md").read_text()
        assert "\\begin{align}" not in md and "\\[" not in md and "\\paragraph" not in md
        assert md.count("```math") == md.count("```math\n")
        assert md.count("```") % 2 == 0


def test_pdf_asked_without_a_tex_engine_fails_before_any_stage(monkeypatch, tmp_path, capsys):
    # the report is the last stage: `all --pdf` says what is missing before the first
    monkeypatch.setattr(latex, "tex_engine", lambda: None)
    assert cli.main(["all", "--pdf", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "--pdf: no TeX engine found" in out and report.TEX_PACKAGES in out
    assert "== prove" not in out and not any(tmp_path.iterdir())


@needs_tex
@pytest.mark.parametrize("doc", documents.DOCUMENTS, ids=lambda d: d.name)
def test_pdf_compiles_without_errors_or_overfull_boxes_and_is_not_blank(written, doc):
    pdf = report.compile_pdf(written / f"{doc.name}.tex")  # raises on errors and undefined refs
    log = (written / "_build" / f"{doc.name}.log").read_text(errors="replace")
    assert "undefined" not in log.lower()
    assert "Overfull" not in log, re.findall(r"Overfull.*\n.*", log)[:3]
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) not installed")
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf),
                    str(written / f"page-{doc.name}")], check=True)
    from matplotlib import image
    pixels = image.imread(next(written.glob(f"page-{doc.name}*.png")))
    ink = (pixels[..., :3].mean(axis=-1) < 0.5).mean()
    assert 0.005 < ink < 0.5, f"first page has {ink:.2%} dark pixels"


@needs_tex
def test_latex_errors_name_the_offending_line(tmp_path):
    bad = tmp_path / "bad.tex"
    bad.write_text("\\documentclass{article}\n\\begin{document}\nfine\n\\undefinedmacro\n\\end{document}\n")
    with pytest.raises(report.LatexError, match=r"bad.tex:4: \\undefinedmacro"):
        report.compile_pdf(bad)


def test_a_derivation_is_rendered_once_while_documents_are_written():
    """write_documents renders each derivation for the repeated-steps check, the LaTeX
    and the Markdown: once, inside its scope only (two writes render afresh, which the
    determinism test above compares)."""
    from derive import printing

    d = catalogue.by_key()["softmax_positive"]
    assert printing.render_derivation(d) is not printing.render_derivation(d)
    with printing.renderings_remembered():
        first = printing.render_derivation(d)
        assert printing.render_derivation(d) is first and first == printing._render_derivation(d)
    assert printing._RENDERED[0] is None
