"""Reports: documents written as ``.tex`` and ``.md``, their figures, and the PDF where a
TeX engine exists (:func:`write_documents`); and a one-call report from given
derivations and verification results (:func:`build_report`).
"""
from __future__ import annotations

from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from . import engine, latex
from .document import Proof, Rendering, figure_keys, items
from .figures import draw
from .latex import TEX_PACKAGES, LatexError, build_tex, compile_pdf
from .markdown import build_md
from .printing import _derivation_md, _derivation_tex, repeated_steps, why_tex


def write_documents(docs, rendering: Rendering, out_dir: Path, pdf: bool | None = None,
                    also_checked=()) -> list[str]:
    """Write each document's .tex and .md and their figures into ``out_dir``, and the
    PDFs when a TeX engine exists; ``pdf=True`` makes a missing engine (or missing
    figures) an error, ``pdf=False`` skips the PDFs. Without matplotlib there are no
    figures. ``also_checked`` are derivations shown outside a :class:`Proof` item (a
    kernel block's) that the repeated-steps warning covers too. Returns the lines to print.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    shown = [rendering.derivations[item.key] for doc in docs for item in items(doc) if isinstance(item, Proof)]
    lines += [f"warning: {problem}" for problem in repeated_steps(shown + list(also_checked))]
    try:
        lines += [f"wrote {out_dir.name}/{p}" for p in draw(out_dir / "figures", docs, rendering)]
        drawn = True
    except ImportError:
        drawn = False
        lines.append("matplotlib is not installed: the figures were not drawn "
                     "(pip install 'softmax-derive[report]' for them)")
    tex_paths = []
    for doc in docs:
        tex_path = out_dir / f"{doc.name}.tex"
        tex_path.write_text(build_tex(doc, rendering))
        (out_dir / f"{doc.name}.md").write_text(build_md(doc, rendering))
        tex_paths.append(tex_path)
        lines += [f"wrote {out_dir.name}/{doc.name}.tex", f"wrote {out_dir.name}/{doc.name}.md"]
    if latex.tex_engine() is None:  # looked up on the module: tests replace it
        if pdf:
            raise LatexError(f"--pdf: no TeX engine found; install the Debian packages {TEX_PACKAGES}")
        lines.append("no TeX engine found: the .tex files were written but not compiled "
                     f"(install the Debian packages {TEX_PACKAGES} to get the PDFs)")
        return lines
    if pdf is False:
        return lines
    if not drawn and figure_keys(docs):
        if pdf:
            raise LatexError("--pdf: the PDFs need the figures, and the figures need matplotlib "
                             "(pip install 'softmax-derive[report]')")
        lines.append("the PDFs were not compiled: they need the figures (matplotlib)")
        return lines
    for tex_path in tex_paths:
        path = compile_pdf(tex_path)
        lines.append(f"wrote {out_dir.name}/{path.name}")
    return lines


def _versions() -> str:
    return f"SymPy {sp.__version__}, NumPy {np.__version__}, mpmath {mpmath.__version__}"


def _table_md(results) -> list[str]:
    out = ["| function | values | worst error (ULP) | bound (ULP) | finite differences | passed |",
           "|---|---|---|---|---|---|"]
    for r in results:
        fd = ("—" if r.fd_function is None else
              f"reference {r.fd_reference:.1e}, float64 {r.fd_function:.1e}")
        out.append(f"| `{r.name}` | {r.values} | {r.max_ulp:.2f} | {r.bound:g} | {fd} | "
                   f"{'yes' if r.passed else 'NO'} |")
    return out


def _table_tex(results) -> list[str]:
    out = [r"\begin{center}\begin{tabular}{lrrrll}\hline",
           r"function & values & worst (ULP) & bound & finite differences & passed \\ \hline"]
    for r in results:
        fd = ("--" if r.fd_function is None else
              f"{r.fd_reference:.1e} / {r.fd_function:.1e}")
        name = r.name.replace("_", r"\_")
        out.append(f"\\texttt{{{name}}} & {r.values} & {r.max_ulp:.2f} & {r.bound:g} & {fd} & "
                   f"{'yes' if r.passed else 'NO'} \\\\")
    out += [r"\hline\end{tabular}\end{center}"]
    return out


def build_report(title: str, derivations, results=(), out_dir=".", name: str = "report",
                 sections=(), intro: str = "") -> list[Path]:
    """Write ``out_dir/name.md`` and ``out_dir/name.tex``: ``intro``, the ``sections``
    ((heading, Markdown text) pairs), every derivation as a chain with one
    justification per step, and a table of verification ``results``
    (:class:`derive.verification.Result`). Returns the paths written.

    Examples
    --------
    >>> import tempfile
    >>> from derive import Step, Derivation, build_report, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> d = Derivation("square", "A square", (), [Step((x + 1) ** 2, "definition"),
    ...                                           Step(x ** 2 + 2 * x + 1, "expand")])
    >>> [p.suffix for p in build_report("Toy", [d], out_dir=tempfile.mkdtemp())]
    ['.md', '.tex']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    derivations, results = list(derivations), list(results)
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.tex"]
    paths[0].write_text("\n".join(_markdown(title, derivations, results, sections, intro)) + "\n")
    paths[1].write_text("\n".join(_latex(title, derivations, results, sections, intro)) + "\n")
    return paths


def _markdown(title: str, derivations: list, results: list, sections, intro: str) -> list[str]:
    """The lines of the Markdown report (see :func:`build_report`)."""
    md = [f"# {title}", ""]
    if intro:
        md += [intro, ""]
    for heading, text in sections:
        md += [f"## {heading}", "", text, ""]
    md += ["## Derivations", "",
           f"Every step below was checked by `derive.check`: SymPy shows it for symbolic T "
           f"under the stated assumptions, and it holds on random concrete instances at "
           f"{engine.DIGITS} digits (seed {engine.DEFAULT_SEED})."]
    for d in derivations:
        md += _derivation_md(d)
    if results:
        md += ["", "## Verification", "",
               "Each function against the mpmath reference of its definition; finite "
               "differences: the gradient's reference against central differences of the "
               "loss's reference (high precision), and the function against float64 "
               "directional differences of the loss function (relative).", ""]
        md += _table_md(results)
    return md + ["", f"Versions: {_versions()}."]


def _latex(title: str, derivations: list, results: list, sections, intro: str) -> list[str]:
    """The lines of the LaTeX report (see :func:`build_report`)."""
    tex = [r"\documentclass{article}", r"\usepackage{amsmath,amssymb}",
           r"\usepackage[margin=2cm]{geometry}", rf"\title{{{why_tex(title)}}}", r"\date{}",
           r"\begin{document}", r"\maketitle"]
    if intro:
        tex += [why_tex(intro)]
    for heading, text in sections:
        tex += [rf"\section*{{{why_tex(heading)}}}", why_tex(text)]
    tex += [r"\section*{Derivations}"]
    for d in derivations:
        tex += _derivation_tex(d)
    if results:
        tex += [r"\section*{Verification}"] + _table_tex(results)
    return tex + [why_tex(f"Versions: {_versions()}."), r"\end{document}"]
