"""Reports: documents written as ``.tex`` and ``.md``, their figures, and the PDF where a
TeX engine exists (:func:`write_documents`); and a one-call report from given
derivations and verification results (:func:`build_report`).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from . import engine, latex, results
from .document import Block, Document, Figure, Proof, Rendering, Section, Text, figure_keys, items, proofs
from .executors import shown_path
from .figures import draw
from .latex import TEX_PACKAGES, LatexError, build_tex, compile_pdf, why_tex
from .latex import derivation_tex as _derivation_tex
from .markdown import build_md, table_md
from .markdown import derivation_md as _derivation_md
from .printing import _mathify, renderings_remembered, repeated_steps


def write_documents(docs: Iterable[Document], rendering: Rendering, out_dir: Path, pdf: bool | None = None,
                    also_checked: Iterable = ()) -> list[str]:
    """Write each document's .tex and .md and their figures into ``out_dir``, and the
    PDFs when a TeX engine exists; ``pdf=True`` makes a missing engine (or missing
    figures) an error, ``pdf=False`` skips the PDFs. Without matplotlib there are no
    figures. ``also_checked`` are derivations shown outside a :class:`Proof` item (a
    kernel block's) that the repeated-steps warning covers too. Returns the lines to print.
    """
    with renderings_remembered():  # each derivation is rendered for three uses below
        return _write_documents(docs, rendering, Path(out_dir), pdf, also_checked)


def _write_documents(docs, rendering: Rendering, out_dir: Path, pdf: bool | None, also_checked) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    shown = [rendering.derivations[item.key] for doc in docs for item in items(doc) if isinstance(item, Proof)]
    lines += [f"warning: {problem}" for problem in repeated_steps(shown + list(also_checked))]
    try:
        lines += [f"wrote {shown_path(out_dir / p)}" for p in draw(out_dir / "figures", docs, rendering)]
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
        lines += [f"wrote {shown_path(tex_path)}", f"wrote {shown_path(tex_path.with_suffix('.md'))}"]
    if latex.tex_engine() is None:  # looked up on the module: tests replace it
        require_tex(pdf)
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
        lines.append(f"wrote {shown_path(path)}")
    return lines


def require_tex(pdf: bool | None) -> None:
    """With ``pdf=True`` (``--pdf``), a :class:`LatexError` naming the packages to install
    when no TeX engine is found: asked for first, before minutes of work end in it."""
    if pdf and latex.tex_engine() is None:  # looked up on the module: tests replace it
        raise LatexError(f"--pdf: no TeX engine found; install the Debian packages {TEX_PACKAGES}")


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


def build_report(title: str, derivations: Iterable, results: Iterable = (), out_dir: str | Path = ".",
                 name: str = "report", sections: Iterable[tuple[str, str]] = (), intro: str = "") -> list[Path]:
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
    tex = [r"\documentclass{article}", r"\usepackage{amsmath,amssymb,graphicx}",
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


# --------------------------------------------------------------------------- any catalogue's documents
def default_document(catalogue) -> Document:
    """The document of a catalogue that declares none: its introduction and sections,
    every derivation, the proofs of its kernels, the verification table and the errors
    figure."""
    sections = [Section(heading, f"s{k}", (Text(text),)) for k, (heading, text) in enumerate(catalogue.sections)]
    sections.append(Section("Derivations", "derivations", (
        Text(f"Every step below was checked by the proof engine: SymPy shows it for symbolic $T$ under "
             f"the stated assumptions, and it holds on random concrete instances at {engine.DIGITS} "
             f"digits (seed {engine.DEFAULT_SEED})."),
        *(Proof(key) for key in catalogue.keys()))))
    if catalogue.kernels:
        sections.append(Section("Kernels", "kernels", (
            Text("Every output of every generated kernel, proved equal to what it claims to compute "
                 "before it was printed:"),
            Block("kernels"))))
    if catalogue.verifications:
        sections.append(Section("Verification", "verification", (
            Block("verification"),
            Figure("errors", "Worst error in ULPs per input category: the generated code against the "
                             "naive formula (the definition evaluated as written in float64)."))))
    intro = (Text(catalogue.intro),) if catalogue.intro else ()
    return Document(catalogue.name, catalogue.title, intro, tuple(sections))


def _kernels_tex(doc, rendering):
    return [line for proof in rendering["kernels"] for line in _derivation_tex(proof)]


def _kernels_md(doc, rendering):
    return [line for proof in rendering["kernels"] for line in _derivation_md(proof)]


def _verification_intro(data) -> tuple[str, str, str]:
    tested = data.get("tested", "numeric")
    baseline = "naive" if tested != "numeric" else "max-shift"
    text = ("The generated functions against their definitions evaluated with mpmath from the exact float "
            f"inputs (at least {data['mpmath_min_digits']} digits, more where a row needs it), from python -m "
            "derive verify, on every input category of the suite: moderate logits, logits spread over "
            "+-1000, one class dominating, losses far below 1e-16, logits near +-708, ties, a large T and "
            "each declared parameter over its range. Errors are in ULPs of the correctly rounded result, "
            f"with an absolute floor at the smallest normal number; the {baseline} column is the "
            f"{'definition evaluated as written in float64' if baseline == 'naive' else 'plain max-shift'}, "
            "measured in the same run.")
    return text, tested, baseline


def _verification_tex(doc, rendering):
    text, tested, baseline = _verification_intro(rendering["data"])
    return results.verification_tex(rendering["data"], why_tex(text), tested, baseline)


def _verification_md(doc, rendering):
    text, tested, baseline = _verification_intro(rendering["data"])
    return results.verification_md(rendering["data"], text.replace("python -m derive verify",
                                                                   "`python -m derive verify`"), tested, baseline)


def figure_errors(path: Path, rendering: Rendering) -> None:
    """Worst error per input category, the tested code's and the baseline's, per function."""
    from .figures import pyplot, save

    data = rendering["data"]
    _, tested, baseline = _verification_intro(data)
    rows = data["results"]
    categories = list(dict.fromkeys(r["category"] for r in rows))
    functions = list(dict.fromkeys(r["function"] for r in rows if r["implementation"] == tested))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=130)
    cap = 1e18
    for k, function in enumerate(functions):
        for name, style in ((tested, "-o"), (baseline, ":x")):
            found = {r["category"]: r["max_ulp"] for r in rows
                     if r["implementation"] == name and r["function"] == function}
            ys = [min(cap, found[c]) if found.get(c) is not None else cap for c in categories if c in found]
            xs = [i for i, c in enumerate(categories) if c in found]
            if xs:
                ax.plot(xs, [max(y, 1e-2) for y in ys], style, color=f"C{k}", label=f"{function}: {name}",
                        linewidth=1.2, markersize=4)
    ax.set_yscale("log")
    ax.set_ylim(1e-2, cap * 10)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("worst error (ULP)")
    ax.grid(True, which="major", linewidth=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.set_title("infinite or NaN results are plotted at $10^{18}$", fontsize=9, color="gray", loc="right")
    save(plt, fig, path)


def _assumptions(doc: Document, rendering: Rendering) -> list[str]:
    """Every assumption the document's general derivations make, once, in order of first use."""
    ds = [rendering.derivations[item.key] for item in items(doc) if isinstance(item, Proof)]
    return list(dict.fromkeys(a.text for d in ds if not d.concrete for a in d.assumptions))


_ASSUMPTIONS_INTRO = ("Assumptions, each stated where a derivation uses it; the proof engine uses each one both "
                      "as a symbolic rewrite and to draw concrete instances:")


def _assumptions_tex(doc, rendering):
    out = [_ASSUMPTIONS_INTRO, r"\begin{itemize}"]
    return out + [rf"\item {why_tex(_mathify(text))}" for text in _assumptions(doc, rendering)] + [r"\end{itemize}"]


def _assumptions_md(doc, rendering):
    return [_ASSUMPTIONS_INTRO, ""] + [f"- {_mathify(text)}" for text in _assumptions(doc, rendering)]


# --------------------------------------------------------------------------- blocks a catalogue declares
def table_block(header: tuple, rows, tex_columns: str, md_align=None, math_columns: tuple = ()) -> tuple:
    """A block (LaTeX renderer, Markdown renderer) of one table: ``header``, and the rows
    ``rows(rendering)`` computes; ``tex_columns`` is the LaTeX column spec, ``md_align``
    the Markdown alignment row (default: left), ``math_columns`` the columns set as math.

    Examples
    --------
    >>> from derive.publish import table_block
    >>> tex, md = table_block(("x", "x^2"), lambda rendering: [(2, 4)], "rr", math_columns=(1,))
    >>> md(None, None)[-1]
    '| 2 | $4$ |'
    """
    def tex(doc, rendering):
        return latex.table_tex(header, rows(rendering), tex_columns, math_columns=math_columns)

    def md(doc, rendering):
        return table_md(header, rows(rendering), md_align, math_columns=math_columns)
    return tex, md


def code_block(text: str, language: str = "python") -> tuple:
    """A block (LaTeX renderer, Markdown renderer) of a code listing."""
    def tex(doc, rendering):
        return [rf"\begin{{lstlisting}}[language={language.capitalize()}]", text.rstrip("\n"), r"\end{lstlisting}"]

    def md(doc, rendering):
        return [f"```{language}", text.rstrip("\n"), "```"]
    return tex, md


def function_source(text: str, name: str, drop: str | None = None) -> str:
    """The source of the top-level function ``name`` in the module source ``text`` (up to
    the two blank lines that end it), without the lines that contain ``drop``."""
    start = text.index(f"def {name}(")
    body = text[start:text.index("\n\n\n", start)]
    return "\n".join(line for line in body.splitlines() if drop is None or drop not in line)


#: what every catalogue's documents may use: block key -> (LaTeX, Markdown), figure key -> draw
BLOCKS = {"kernels": (_kernels_tex, _kernels_md), "verification": (_verification_tex, _verification_md),
          "assumptions": (_assumptions_tex, _assumptions_md)}
FIGURES = {"errors": figure_errors}


def _about(catalogue, spec) -> str:
    import importlib.metadata

    try:
        version = importlib.metadata.version("softmax-derive")
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    return (f"Generated by softmax-derive {version} from the catalogue {catalogue.name} "
            f"(python -m derive all --catalogue {spec or catalogue.name}). Versions: {_versions()}; "
            f"proof instances at {engine.DIGITS} digits with seed {engine.DEFAULT_SEED}.")


def rendering(catalogue, data: dict, spec: str | None = None) -> tuple[tuple, Rendering]:
    """The documents of ``catalogue`` (its own, or :func:`default_document`) and what
    renders them: its derivations and its kernels' proofs by key, the machinery's blocks
    and figures and its own, and whatever its ``computed`` hook adds."""
    from .codegen import kernel_proofs

    docs = tuple(catalogue.documents) or (default_document(catalogue),)
    derivations = {}
    for cat in _with_uses(catalogue):
        derivations.update({d.key: d for d in cat})
    kernels = kernel_proofs(catalogue.kernels)
    derivations.update({d.key: d for d in kernels})
    out = Rendering(derivations, about=_about(catalogue, spec), blocks={**BLOCKS, **catalogue.blocks},
                    figures={**FIGURES, **catalogue.figures},
                    # texts name a catalogue's own documents by file name; links only between those
                    names=tuple(doc.name for doc in catalogue.documents),
                    extra={"data": data, "kernels": kernels, "catalogue": catalogue})
    missing = [key for key in proofs(docs) if key not in derivations]
    if missing:
        raise KeyError(f"the documents of {catalogue.name!r} name derivations it does not have: "
                       f"{', '.join(missing)}")
    if catalogue.computed is not None:
        catalogue.computed(out)
    return docs, out


def _with_uses(catalogue):
    """The catalogue after the ones it uses, each once (its own keys win)."""
    order, todo, seen = [], [catalogue], set()
    while todo:
        cat = todo.pop()
        if id(cat) not in seen:
            seen.add(id(cat))
            order.append(cat)
            todo += list(cat.uses)
    return reversed(order)


README_MARK = ("<!-- verification-table:start -->", "<!-- verification-table:end -->")


def update_readme(readme: Path, table: str) -> bool:
    """Put ``table`` between the README's verification-table marks; True if it changed."""
    text = readme.read_text()
    start, end = README_MARK
    if start not in text or end not in text:
        return False
    new = text[:text.index(start) + len(start)] + "\n" + table + "\n" + text[text.index(end):]
    if new != text:
        readme.write_text(new)
    return new != text
