"""What a report says, as data: the vocabulary of documents.

A :class:`Document` is a title, an introduction and sections of items: a paragraph
(:class:`Text`, ``$...$`` for math, the subset that both LaTeX and GitHub's Markdown
render), a displayed equation (:class:`Display`), a checked derivation named by key
(:class:`Proof`), a figure or a computed table named by key (:class:`Figure`,
:class:`Block`). Content decides what is said and in which order; :mod:`derive.latex`
and :mod:`derive.markdown` decide how it looks, from the same :class:`Rendering`.

Examples
--------
>>> from derive.document import Document, Proof, Section, Text, items
>>> doc = Document("toy", "A toy", (Text("Why it holds."),), (Section("Proof", "proof", (Proof("square"),)),))
>>> [type(item).__name__ for item in items(doc)]
['Text', 'Proof']
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Text:
    """A paragraph (``$...$`` for math; ``@name@`` for a computed value)."""

    body: str


@dataclass(frozen=True)
class Display:
    """A displayed equation (LaTeX math, no delimiters)."""

    latex: str


@dataclass(frozen=True)
class Proof:
    """The derivation of the catalogue with this key, every step and its justification."""

    key: str


@dataclass(frozen=True)
class Figure:
    """A figure the report stage draws (the key names a function of the rendering's figures)."""

    key: str
    caption: str
    width: float = 0.56  # of the text width, in the PDF


@dataclass(frozen=True)
class Block:
    """A table or listing the report stage computes (the key names a pair of renderers)."""

    key: str


@dataclass(frozen=True)
class Section:
    title: str
    label: str
    items: tuple


@dataclass(frozen=True)
class Document:
    name: str  # the file stem of the .tex, .md and .pdf
    title: str
    intro: tuple  # items before the first section
    sections: tuple


@dataclass
class Rendering:
    """Everything the renderers need beyond the documents themselves.

    ``derivations`` maps the keys of :class:`Proof` items to derivations; ``values`` the
    ``@name@`` placeholders of texts to their LaTeX; ``blocks`` maps a :class:`Block` key
    to ``(latex, markdown)`` renderers, each ``f(doc, rendering) -> list of lines``;
    ``figures`` maps a :class:`Figure` key to ``draw(path, rendering)``; ``about`` is the
    closing paragraph; ``names`` are the document names that texts link to; ``extra``
    holds whatever the content's own blocks and figures computed."""

    derivations: dict
    about: str = ""
    values: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    names: tuple = ()
    extra: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        """The content's own computed data (``rendering["worked"]``)."""
        return self.extra[key]


def items(doc: Document) -> Iterator:
    """Every item of ``doc``, the introduction's first."""
    yield from doc.intro
    for section in doc.sections:
        yield from section.items


def proofs(docs) -> list[str]:
    """The derivation keys the documents show, once each, in order."""
    return list(dict.fromkeys(item.key for doc in docs for item in items(doc) if isinstance(item, Proof)))


def figure_keys(docs) -> list[str]:
    """The figure keys the documents use, once each, in order."""
    return list(dict.fromkeys(item.key for doc in docs for item in items(doc) if isinstance(item, Figure)))


def fill(text: str, rendering: Rendering) -> str:
    """Replace the ``@name@`` placeholders of a document text by the computed values."""
    def value(match):
        if match.group(1) not in rendering.values:
            raise KeyError(f"a document text uses @{match.group(1)}@, which is not a computed value; "
                           f"known: {', '.join(sorted(rendering.values))}")
        return rendering.values[match.group(1)]
    return re.sub(r"@(\w+)@", value, text)


#: a web address written in a text, up to a space or a closing bracket (a final full stop,
#: comma or semicolon ends the sentence, not the address)
URL = re.compile(r"https?://[^\s<>()\[\]{}\"']*[^\s<>()\[\]{}\"'.,;:]")


def around_urls(text: str, plain: Callable[[str], str], url: Callable[[str], str]) -> str:
    """``text`` with its web addresses written by ``url`` and the text between them by
    ``plain``: an address must not pass through the text's escaping (its ``_``, ``~`` and
    ``%`` are the address's own) nor through the setting of ASCII relations as math."""
    out, last = [], 0
    for m in URL.finditer(text):
        out += [plain(text[last:m.start()]), url(m.group(0))]
        last = m.end()
    return "".join(out + [plain(text[last:])])


def link_names(text: str, names, link: Callable[[str], str]) -> str:
    """Write each of the document ``names`` in ``text`` as ``link(name)``, in one pass."""
    if not names:
        return text
    pattern = "|".join(sorted(names, key=len, reverse=True))
    return re.sub(rf"(?<![\w/])({pattern})(?!\w|\.\w)", lambda m: link(m.group(1)), text)


def _same(left: str, right: str) -> bool:
    return re.sub(r"\s+|\\[,;!]|\\(left|right|textstyle)\b", "", left) == \
        re.sub(r"\s+|\\[,;!]|\\(left|right|textstyle)\b", "", right)


def result_boxes(rendered) -> list[str]:
    """What a rendered derivation boxes as its result, once: the matrix form when it has one
    (unless it only repeats the chain's own first and last line), else the first line and the
    last; nothing when the chain is a single line, which the box would only repeat."""
    index, matrix = rendered.boxed_index, rendered.boxed_matrix
    if matrix and not _same(matrix, index):
        return [matrix]
    return [index] if len(rendered.lines) > 1 else []


def unknown_item(item) -> TypeError:
    return TypeError(f"a document item must be Text, Display, Proof, Figure or Block, not {item!r}")
