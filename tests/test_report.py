"""Reports: deterministic, complete, and (where TeX exists) a PDF that compiles cleanly."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from derive import report, verify
from derive.softmax import catalogue

pytest.importorskip("matplotlib")
needs_tex = pytest.mark.skipif(report.tex_engine() is None,
                               reason="no TeX engine (apt-get install " + report.TEX_PACKAGES + ")")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    report.report(pdf=False, out_dir=out, readme=False)
    return out


def test_report_is_deterministic(written, tmp_path):
    report.report(pdf=False, out_dir=tmp_path, readme=False)
    for name in (f"{report.NAME}.tex", f"{report.NAME}.md", "figures/error_vs_spread.png",
                 "figures/error_vs_margin.png"):
        assert (tmp_path / name).read_bytes() == (written / name).read_bytes(), name


def test_report_contains_every_derivation_and_the_numbers(written):
    tex = (written / f"{report.NAME}.tex").read_text()
    md = (written / f"{report.NAME}.md").read_text()
    for d in catalogue.build():
        assert rf"\label{{d:{d.key}}}" in tex
        assert f"**{d.title}**" in md
    assert tex.count(r"\begin{align}") >= len(catalogue.build())
    assert tex.count(r"\boxed{") >= len(catalogue.build())
    for formula in (r"\frac{\partial L}{\partial a} = S - y", r"(S - y)\, x^\top",
                    r"W^\top (S - y)", r"\operatorname{diag}(S) - S S^\top"):
        assert formula in tex and formula in md
    data = json.loads((report.REPORTS / "verification.json").read_text())
    ours = [r for r in data["results"] if r["implementation"] == "numeric"]
    for r in ours[:5]:
        assert f"| {r['function']} | {r['category']} | {r['inputs']} | {verify._fmt(r['max_ulp'])} |" in md
    assert "def nll_index_with_grad(A, C," in tex and "def nll_index_with_grad(A, C," in md
    assert "SymPy" in tex and "mpmath" in md and "seed" in md
    assert "figures/error_vs_spread.png" in tex and "figures/error_vs_margin.png" in md


def test_markdown_uses_github_math_only(written):
    md = (written / f"{report.NAME}.md").read_text()
    assert "\\begin{align}" not in md and "\\[" not in md
    assert md.count("```math") == md.count("```math\n")
    assert md.count("```") % 2 == 0


def test_no_tex_engine_is_not_an_error_unless_asked(monkeypatch, tmp_path):
    monkeypatch.setattr(report, "tex_engine", lambda: None)
    lines = report.report(out_dir=tmp_path, readme=False)
    assert any("no TeX engine found" in line and report.TEX_PACKAGES in line for line in lines)
    assert (tmp_path / f"{report.NAME}.tex").exists() and not (tmp_path / f"{report.NAME}.pdf").exists()
    with pytest.raises(report.LatexError, match="--pdf: no TeX engine found"):
        report.report(pdf=True, out_dir=tmp_path, readme=False)


@needs_tex
def test_pdf_compiles_without_errors_and_is_not_blank(written):
    pdf = report.compile_pdf(written / f"{report.NAME}.tex")  # raises on errors and undefined refs
    log = (written / "_build" / f"{report.NAME}.log").read_text(errors="replace")
    assert "undefined" not in log.lower()
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) not installed")
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf),
                    str(written / "page")], check=True)
    from matplotlib import image
    pixels = image.imread(next(written.glob("page*.png")))
    ink = (pixels[..., :3].mean(axis=-1) < 0.5).mean()
    assert 0.005 < ink < 0.5, f"first page has {ink:.2%} dark pixels"


@needs_tex
def test_latex_errors_name_the_offending_line(tmp_path):
    bad = tmp_path / "bad.tex"
    bad.write_text("\\documentclass{article}\n\\begin{document}\nfine\n\\undefinedmacro\n\\end{document}\n")
    with pytest.raises(report.LatexError, match=r"bad.tex:4: \\undefinedmacro"):
        report.compile_pdf(bad)
