"""Documents to LaTeX, and LaTeX to PDF where a TeX engine exists.

:func:`build_tex` renders a :class:`derive.document.Document`; derivations of any
length break across pages (``\\allowdisplaybreaks``; tables are ``longtable``), so no
step is lost off a page. :func:`compile_pdf` runs latexmk (or pdflatex twice) and turns
a failure into a :class:`LatexError` that quotes the offending line.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .document import (
    Block,
    Display,
    Document,
    Figure,
    Proof,
    Rendering,
    Text,
    around_urls,
    fill,
    link_names,
    result_boxes,
    unknown_item,
)
from .printing import _escape_tex, _mathify, _visible, render_derivation
from .printing import why_tex as _why_tex

#: the Debian packages that bring latexmk and the LaTeX packages the preamble loads
TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended latexmk"

TEX_PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[a4paper,margin=2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{graphicx}
\usepackage{booktabs}
\usepackage{longtable}
\usepackage{listings}
\usepackage[hidelinks]{hyperref}
% a web address may break after any letter or digit, not only at / . - (a long one ran into the margin)
\expandafter\def\expandafter\UrlBreaks\expandafter{\UrlBreaks\do\a\do\b\do\c\do\d\do\e\do\f\do\g\do\h\do\i\do\j\do\k\do\l\do\m\do\n\do\o\do\p\do\q\do\r\do\s\do\t\do\u\do\v\do\w\do\x\do\y\do\z\do\A\do\B\do\C\do\D\do\E\do\F\do\G\do\H\do\I\do\J\do\K\do\L\do\M\do\N\do\O\do\P\do\Q\do\R\do\S\do\T\do\U\do\V\do\W\do\X\do\Y\do\Z\do\0\do\1\do\2\do\3\do\4\do\5\do\6\do\7\do\8\do\9}
\allowdisplaybreaks
\setlength{\parskip}{0.4em}
\setlength{\parindent}{0pt}
\lstset{basicstyle=\ttfamily\footnotesize,breaklines=true,columns=fullflexible,keepspaces=true}
% a figure set where it stands (never floated past the colophon)
\makeatletter
\newenvironment{placedfigure}{\par\medskip\noindent\begin{minipage}{\linewidth}\centering\def\@captype{figure}}%
  {\end{minipage}\par\medskip}
\makeatother
"""

#: the width of the reasons column of a derivation
REASONS_WIDTH = r"0.36\textwidth"
#: a derivation of at most this many lines is kept on one page with its result
UNBROKEN_LINES = 14

#: ASCII relations in text, as LaTeX math (in text mode > and < print as inverted ! and ?)
_RELATIONS = {">=": r"$\ge$", "<=": r"$\le$", "!=": r"$\ne$", ">": "$>$", "<": "$<$"}


def relations_as_math(text: str) -> str:
    """Set the ASCII relations of the text-mode parts of ``text`` (outside ``$...$``) as math."""
    parts = text.split("$")
    for k in range(0, len(parts), 2):
        parts[k] = re.sub(r">=|<=|!=|>|<", lambda m: _RELATIONS[m.group(0)], parts[k])
    return "$".join(parts).replace("$$", "")


def why_tex(text: str) -> str:
    """Text with ``$...$`` math (a title, a reason, a caption) for LaTeX text mode: specials
    escaped, ASCII relations set as math."""
    return relations_as_math(_why_tex(text))



def build_tex(doc: Document, rendering: Rendering) -> str:
    """The LaTeX source of ``doc``."""
    title = why_tex(doc.title).replace(": ", r":\\ ", 1)
    out = [TEX_PREAMBLE + rf"\title{{{title}}}" + "\n" + r"\author{softmax-derive}" + "\n" + r"\date{}",
           r"\begin{document}", r"\maketitle"]
    for item in doc.intro:
        out += item_tex(item, doc, rendering)
    for section in doc.sections:
        out.append(rf"\section*{{{why_tex(section.title)}}}\label{{sec:{section.label}}}")
        out.append(rf"\addcontentsline{{toc}}{{section}}{{{why_tex(section.title)}}}")
        for item in section.items:
            out += item_tex(item, doc, rendering)
    out += [r"\section*{About this document}", why_tex(rendering.about), r"\end{document}"]
    return "\n".join(out) + "\n"


def text_tex(text: str, rendering: Rendering) -> str:
    """A paragraph: **bold** as bold, "quotes" as quotes, document names as file names, web
    addresses as ``\\url`` (which breaks them at a slash rather than run into the margin)."""
    return around_urls(text, lambda part: _paragraph_tex(part, rendering), lambda url: rf"\url{{{url}}}")


def _paragraph_tex(text: str, rendering: Rendering) -> str:
    out = why_tex(link_names(text, rendering.names, lambda name: f"\\texttt{{{name}.pdf}}"))
    out = re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", out)
    # a file name may break after an underscore rather than run into the margin
    out = re.sub(r"\\texttt\{[^{}]*\}", lambda m: m.group(0).replace("\\_", "\\_\\allowbreak{}"), out)
    return re.sub(r'"([^"]+)"', r"``\1''", out)


def plain_reason(why: str) -> str:
    """A reason written without math markup (an automatic rule's) with its formulas set as
    math, as the assumptions' texts are; a reason with ``$...$`` is kept as written."""
    return why if "$" in why else _mathify(why)


#: a step whose formula shows more characters than this gets a line of its own, shrunk to
#: the page if it is wider, with its reason below it: beside it, both would run off the page
OVERWIDE = 60


def _width(latex: str) -> int:
    """Roughly how wide a formula shows: the widest of its rows (the cases of a
    ``cases`` stack one above the other)."""
    return max(len(_visible(row)) for row in latex.split("\\\\"))


def _fit(latex: str, width: str = r"0.95\linewidth") -> str:
    """Display math scaled down to ``width`` when wider, as it is otherwise."""
    return (rf"\resizebox{{\ifdim\width>{width}{width}\else\width\fi}}{{!}}"
            rf"{{$\displaystyle {latex}$}}")


def _overwide_rows(r) -> list[str]:
    rows, narrower = [rf"& {_fit(r.start)} \notag"], r"0.9\linewidth"
    for rel, rhs, why in r.lines:
        rows.append(rf"&{rel} {_fit(rhs, narrower)}")
        rows.append(rf"& \qquad \parbox[t]{{0.8\linewidth}}{{\small\raggedright {why_tex(plain_reason(why))}}} \notag")
    return rows


def _rows(r) -> list[str]:
    """One aligned row per step, its reason beside it (the start on a row of its own when wide)."""
    rows = []
    wide = max(len(_visible(r.start)) + len(_visible(rhs)) for _, rhs, _ in r.lines) > 34
    if wide:
        rows.append(rf"& {r.start} \notag")
    for k, (rel, rhs, why) in enumerate(r.lines):
        left = r.start if (k == 0 and not wide) else ""
        reason = why_tex(plain_reason(why))
        rows.append(rf"{left} &{rel} {rhs} && \parbox[t]{{{REASONS_WIDTH}}}{{\raggedright {reason}}}")
    return rows


def derivation_tex(d) -> list[str]:
    """A checked derivation: its title, assumptions, one aligned line per step with its reason
    beside it, and its result boxed once (:func:`derive.document.result_boxes`); one of at
    most :data:`UNBROKEN_LINES` lines stays on one page with its result."""
    r = render_derivation(d)
    out = [rf"\paragraph{{{why_tex(r.title)}}}\label{{d:{r.key}}}"]
    if r.assumptions and not d.concrete:  # reality is assumed throughout
        out.append("Assumptions: " + "; ".join(why_tex(_mathify(a)) for a in r.assumptions) + ".")
    rows = _overwide_rows(r) if max(_width(rhs) for _, rhs, _ in r.lines) > OVERWIDE else _rows(r)
    out += [r"\begin{align}", " \\\\\n".join(rows), r"\end{align}"]
    out += [r"\[\boxed{" + box + r"}\]" for box in result_boxes(r)]
    if len(r.lines) <= UNBROKEN_LINES:
        out = [r"\par\medskip\noindent\begin{minipage}{\linewidth}"] + out + [r"\end{minipage}\par\smallskip"]
    return out


def item_tex(item, doc: Document, rendering: Rendering) -> list[str]:
    if isinstance(item, Text):
        return ["", text_tex(fill(item.body, rendering), rendering), ""]
    if isinstance(item, Display):
        return [r"\[" + fill(item.latex, rendering) + r"\]"]
    if isinstance(item, Proof):
        return derivation_tex(rendering.derivations[item.key])
    if isinstance(item, Figure):
        return [r"\begin{placedfigure}",
                rf"\includegraphics[width={item.width:g}\textwidth]{{figures/{item.key}.png}}",
                rf"\caption{{{why_tex(item.caption)}}}\label{{fig:{item.key}}}", r"\end{placedfigure}"]
    if isinstance(item, Block):
        return rendering.blocks[item.key][0](doc, rendering)
    raise unknown_item(item)


def table_tex(header, rows, spec, math_columns=()) -> list[str]:
    """A booktabs table; the cells of ``math_columns`` are set as math."""
    def cell(k, value):
        text = f"${value}$" if k in math_columns else why_tex(str(value))
        return "{}" + text if text.startswith("[") else text  # not an optional argument of \\ or \midrule
    out = [rf"\begin{{center}}\begin{{tabular}}{{{spec}}}\toprule",
           " & ".join(why_tex(h) for h in header) + r" \\ \midrule"]
    out += [" & ".join(cell(k, v) for k, v in enumerate(row)) + r" \\" for row in rows]
    out.append(r"\bottomrule\end{tabular}\end{center}")
    return out


def bmatrix(values, digits: int = 4) -> str:
    """A vector (as a column) or a matrix (a list of rows) of numbers as a LaTeX bmatrix,
    each entry with ``digits`` decimals.

    Examples
    --------
    >>> from derive.latex import bmatrix
    >>> print(bmatrix([1, 2], 1))
    \\begin{bmatrix} 1.0 \\\\ 2.0 \\end{bmatrix}
    >>> print(bmatrix([[1, 2]], 0))
    \\begin{bmatrix} 1 & 2 \\end{bmatrix}
    """
    rows = values if np.ndim(values) == 2 else [[v] for v in values]
    return (r"\begin{bmatrix} " + r" \\ ".join(" & ".join(f"{v:.{digits}f}" for v in row) for row in rows)
            + r" \end{bmatrix}")


def long_table_tex(header, rows, spec) -> list[str]:
    """A table that breaks across pages (cells escaped as plain text)."""
    out = [rf"{{\small\setlength{{\tabcolsep}}{{4pt}}\begin{{longtable}}{{{spec}}}\toprule",
           " & ".join(header) + r" \\ \midrule\endhead"]
    out += [" & ".join(relations_as_math(_escape_tex(str(c))) for c in row) + r" \\" for row in rows]
    return out + [r"\bottomrule\end{longtable}}"]


# --------------------------------------------------------------------------- PDF
def tex_engine() -> list[str] | None:
    """The command that compiles a .tex file here (latexmk, else pdflatex), or None."""
    if shutil.which("latexmk"):
        return ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if shutil.which("pdflatex"):
        return ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    return None


class LatexError(RuntimeError):
    """A PDF could not be made: no TeX engine, or LaTeX failed (the message quotes the line)."""


def compile_pdf(tex_path: Path) -> Path:
    """Compile with latexmk (or pdflatex twice); raise LatexError with the offending line."""
    tex_path = Path(tex_path).resolve()
    command = tex_engine()
    if command is None:
        raise LatexError(f"no TeX engine (latexmk or pdflatex) found; install the Debian packages {TEX_PACKAGES}")
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
