"""How the command line's ``gradient`` reads a loss in a content's names: a
:class:`Language` turns the text into a :class:`Question` (the loss, the variable, the
assumptions and the rules).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Question:
    """A gradient to derive, as a :class:`Language` read it from the command line."""

    loss: sp.Expr
    wrt: sp.Expr
    assumptions: tuple
    rules: tuple


@dataclass(frozen=True)
class Language:
    """How ``python -m derive gradient "<loss>" --wrt V --labels L`` reads a loss in a
    content's names: ``read(loss, wrt, labels) -> Question`` (a ValueError, naming the
    bad text, for what it cannot read), ``pretty(expr) -> str`` for the terminal,
    ``names`` (the help text listing the names a loss may use), ``labels`` (the
    ``--labels`` choices, the first the default), the default ``wrt`` and
    ``legend(question) -> str`` (what the printed names mean).

    A catalogue registers its language as ``catalogue.language``; the command uses the
    first it finds in the catalogue and those it uses (the built-in softmax
    catalogue's, :data:`derive.softmax.rules.LANGUAGE`, by default).

    Examples
    --------
    >>> from derive.softmax.rules import LANGUAGE
    >>> question = LANGUAGE.read("L", "a", "soft")
    >>> question.wrt, len(question.assumptions)
    (a[i], 2)
    """

    read: Callable[[str, str, str], Question]
    pretty: Callable[[sp.Expr], str] = sp.sstr
    names: str = ""
    labels: tuple = ("none",)
    wrt: str = ""
    #: what the printed names of a question mean (printed after the question), or ""
    legend: Callable[[Question], str] = lambda _question: ""
