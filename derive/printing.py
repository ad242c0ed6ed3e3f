"""Printing math for the reports: SymPy expressions to LaTeX in the notation of the
documents.

The derivations build their steps as SymPy expressions, sometimes unevaluated
(``evaluate=False``) so that a step shows the change its justification names. Nothing
here evaluates them again: :func:`display` applies the content's abbreviations and
renames summation indices with evaluation off, and :class:`MathPrinter` negates and
orders factors without re-evaluating.

What is notation of a particular content -- that a sum of exponentials reads Z, which
assumption goes without saying -- is not written here: content adds it to
:data:`NOTATION` with :func:`extend_notation` (tuples extended by concatenation,
tables merged), as the built-in :mod:`derive.softmax` does.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sympy as sp
from sympy import KroneckerDelta, Sum
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from . import engine, notation
from . import symbols as sym
from .symbols import CLASSES, FEATURES

# --------------------------------------------------------------------------- printing math
# How a formula is printed is decided here and nowhere else. The derivations build their
# steps as SymPy expressions, sometimes unevaluated (``evaluate=False``) so that a step
# shows the change its justification names; everything below keeps such forms as they
# were written: the abbreviations are applied with evaluation off, and the printer
# negates and orders factors without re-evaluating them.


@dataclass
class ReportNotation:
    """The notation of the reports beyond SymPy's LaTeX, as data that content extends
    (into its :class:`derive.Notation`, by :func:`extend_notation`).

    * ``abbreviations`` -- functions ``expr -> expr`` that :func:`display` applies in
      order (after writing out short concrete sums, before naming summation indices);
      each must rebuild with evaluation off (:func:`walk` does);
    * ``names`` -- the same, for abbreviations that fold a defined quantity into its
      name (e^{a_u}/Z -> S_u), applied after ``abbreviations``; skipped for a
      derivation that folds the name by a step of its own (``folds_names``);
    * ``index_names`` -- what a summation index over a range (``T``, ``N``, ...) is
      called, in order of preference; a sum over 1..T prints as ``\\sum_j``;
    * ``kept_names`` -- names a derivation may choose for a summation index and keep;
    * ``delta_order`` -- which index of ``delta_{..}`` prints first (the running one);
    * ``late_bases`` -- IndexedBases whose components print after other scalars in a
      product (``y_j a_j``: weights and labels before logits and outputs);
    * ``unstated`` -- assumptions true throughout, which reports do not list;
    * ``phrases`` -- ``(plain, latex)`` replacements that set the formulas in assumption
      texts as math, applied in order.
    """

    abbreviations: tuple = ()
    names: tuple = ()
    index_names: dict = field(default_factory=dict)
    kept_names: tuple = ()
    delta_order: tuple = ()
    late_bases: tuple = ()
    unstated: tuple = ()
    phrases: tuple = ()

    def extend(self, **parts) -> None:
        """Concatenate to the tuples (an entry already there is not added twice) and
        merge into the table named by ``parts``."""
        for name, value in parts.items():
            if name not in self.__dataclass_fields__:
                raise TypeError(f"the report notation has no part {name!r}; the parts are "
                                f"{', '.join(self.__dataclass_fields__)}")
            current = getattr(self, name)
            if isinstance(current, dict):
                setattr(self, name, {**current, **value})
            else:
                setattr(self, name, current + tuple(item for item in value if item not in current))


#: the machinery's own report notation: its index names; content extends it
BASE = ReportNotation(index_names={CLASSES: (sym.j, sym.k, sym.i, sym.l, sym.r, sym.s),
                                   FEATURES: (sym.n, sym.q)},
                      kept_names=(sym.i, sym.j, sym.k, sym.l, sym.n),
                      delta_order=(sym.i, sym.j, sym.l, sym.k, sym.r, sym.s))
#: notation -> (the parts it saw, the report notation made of them)
_MADE: dict = {}


def report_notation() -> ReportNotation:
    """The report notation in force: :data:`BASE` extended by the parts the active
    :class:`derive.Notation` sees (its catalogue's, and those of the notations it uses)."""
    active = notation.current()
    parts = active.printing
    made = _MADE.get(id(active))
    if made is None or made[0] is not parts:
        extended = dataclasses.replace(BASE, index_names=dict(BASE.index_names))
        extended.extend(**parts)
        made = _MADE[id(active)] = (parts, extended, active)
    return made[1]


def extend_notation(into: notation.Notation | None = None, **parts) -> None:
    """Add to the notation of the reports (see :class:`ReportNotation` for the parts) of
    the :class:`derive.Notation` ``into`` (default: the active one, a catalogue's while it
    is built): tuples are extended by concatenation, ``index_names`` merged.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Notation, extend_notation
    >>> from derive.printing import tex
    >>> H = sp.Symbol("H", integer=True, positive=True)  # a number of heads
    >>> h, t = sp.symbols("h t", integer=True, positive=True)
    >>> g = sp.IndexedBase("g")
    >>> heads = Notation("heads")
    >>> with heads.active():
    ...     print(tex(sp.Sum(g[t], (t, 1, H))))
    ...     extend_notation(index_names={H: (h,)})  # a sum over the heads runs over h
    ...     print(tex(sp.Sum(g[t], (t, 1, H))))
    \\sum_{t=1}^{H} g_{t}
    \\sum_{h} g_{h}
    >>> print(tex(sp.Sum(g[t], (t, 1, H))))  # outside it, as before
    \\sum_{t=1}^{H} g_{t}
    """
    unknown = [name for name in parts if name not in ReportNotation.__dataclass_fields__]
    if unknown:
        raise TypeError(f"the report notation has no part {unknown[0]!r}; the parts are "
                        f"{', '.join(ReportNotation.__dataclass_fields__)}")
    (into or notation.current()).extend_printing(**parts)


def _neg(term: sp.Expr) -> sp.Expr:
    """-term without evaluating (an unevaluated product keeps its factors)."""
    if isinstance(term, sp.Mul) and term.args and term.args[0].is_Number and term.args[0].is_negative:
        coeff, rest = -term.args[0], list(term.args[1:])
        factors = rest if coeff == 1 else [coeff] + rest
        return factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)
    return -term


def _textbook_rank(factor: sp.Expr) -> float:
    """Where a factor goes in a product: numbers, scalars (a_j, S_j, Z^2, delta_ij),
    sums, parenthesized sums of terms, then functions (y_j log S_j, w_c e^{a_c})."""
    if factor.is_Number:
        return 0
    if isinstance(factor, sp.Mul):  # a product kept as written (y_j / S_j) leads, as a coefficient
        return 0.5
    if isinstance(factor, sp.Pow) and not factor.exp.is_negative:
        return _textbook_rank(factor.base)
    if isinstance(factor, sp.Indexed) and factor.base.label in tuple(b.label for b in report_notation().late_bases):
        return 1.5  # y_j a_j, v_j S_j: weights and labels before logits and outputs
    if isinstance(factor, (sp.Symbol, sp.Indexed, KroneckerDelta)) or isinstance(factor, sp.Pow):
        return 1
    if isinstance(factor, Sum):
        return 2
    if isinstance(factor, sp.Add):
        return 3
    return 4


class MathPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the notation of the report.

    Products print their factors in textbook order (``y_j \\log S_j``, ``S_i (1 - S_i)``)
    and are never re-evaluated, so an unevaluated step prints as written; sums that
    leave one index out (``Sum(f (1 - delta_{j,k}))``) print as ``\\sum_{j \\ne k} f``;
    Indexed objects as ``a_{j}``; ``log`` of a symbol without parentheses; log1p as
    ``\\operatorname{log1p}``; a derivative of a short expression as
    ``\\frac{\\partial S_j}{\\partial a_i}``.
    """

    def __init__(self):
        super().__init__({"long_frac_ratio": 3, "mul_symbol": None, "order": "none"})

    def _print_Add(self, expr, order=None):
        if _is_unevaluated(expr):
            terms = list(expr.args)
        else:  # a_k - a_c + log1p(s'): single symbols first, subtracted ones after added ones
            terms = sorted(expr.as_ordered_terms(), key=lambda t: (
                not isinstance(_neg(t) if t.could_extract_minus_sign() else t, (sp.Symbol, sp.Indexed)),
                t.could_extract_minus_sign()))
            if terms[0].could_extract_minus_sign():  # log Z - a_c, not -a_c + log Z
                terms = sorted(terms, key=lambda t: t.could_extract_minus_sign())
        out = ""
        for k, term in enumerate(terms):
            if k and term.could_extract_minus_sign():
                out += " - "
                term = _neg(term)
            elif k:
                out += " + "
            text = self._print(term)
            out += r"\left(%s\right)" % text if self._needs_add_brackets(term) else text
        return out

    def _print_Mul(self, expr):
        if not isinstance(expr, sp.Mul):  # SymPy prints x**-1 through here
            return super()._print_Mul(expr)
        factors = list(expr.args)
        if factors and factors[0].is_Number and factors[0].is_negative:
            inner = _neg(expr)
            text = self._print(inner)
            return "- " + (r"\left(%s\right)" % text if isinstance(inner, sp.Add) else text)
        written = _is_unevaluated(expr)  # a fraction as the derivation wrote it stays one
        ordered = sorted(factors, key=_textbook_rank)
        if ordered != factors:
            expr = sp.Mul(*ordered, evaluate=False)
        ratio = self._settings["long_frac_ratio"]
        self._settings["long_frac_ratio"] = None if written else ratio
        try:
            return super()._print_Mul(expr)
        finally:
            self._settings["long_frac_ratio"] = ratio

    def _print_Sum(self, expr):
        if len(expr.limits) == 1:
            var, lo, hi = expr.limits[0]
            body = expr.function
            for factor in sp.Mul.make_args(body):
                if (isinstance(factor, sp.Add) and len(factor.args) == 2 and 1 in factor.args):
                    other = factor.args[0] if factor.args[1] == 1 else factor.args[1]
                    if isinstance(_neg(other), KroneckerDelta) and var in _neg(other).args:
                        skip = [x for x in _neg(other).args if x != var][0]
                        kept = [f for f in sp.Mul.make_args(body) if f is not factor]
                        rest = sp.Integer(1) if not kept else product(kept)
                        return (r"\sum_{%s \ne %s} %s" % (self._print(var), self._print(skip),
                                                           self.parenthesize(rest, PRECEDENCE["Mul"], strict=True)))
            if lo == 1 and hi in report_notation().index_names:
                return r"\sum_{%s} %s" % (self._print(var), self.parenthesize(body, PRECEDENCE["Mul"], strict=True))
        if all(lo == 1 and hi in report_notation().index_names for _, lo, hi in expr.limits):  # nested sums
            signs = " ".join(r"\sum_{%s}" % self._print(var) for var, _, _ in reversed(expr.limits))
            return r"%s %s" % (signs, self.parenthesize(expr.function, PRECEDENCE["Mul"], strict=True))
        return super()._print_Sum(expr)

    def _print_KroneckerDelta(self, expr, exp=None):
        """delta_{jc}: the running index first, as the justifications write it."""
        first, second = sorted(expr.args, key=_delta_rank)
        tex = r"\delta_{%s %s}" % (self._print(first), self._print(second))
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)

    def _print_Indexed(self, expr):
        base = self._print(expr.base.label)
        idx = " ".join(self._print(i) for i in expr.indices)
        return f"{base}_{{{idx}}}"

    def _print_log(self, expr, exp=None):
        arg = expr.args[0]
        if isinstance(arg, (sp.Symbol, sp.Indexed)) and exp is None:
            return r"\log %s" % self._print(arg)
        if isinstance(arg, sp.Rational) and exp is None and _decimal(arg):
            return r"\log %s" % _decimal(arg)
        return super()._print_log(expr, exp)

    def _print_log1p(self, expr, exp=None):
        return r"\operatorname{log1p}\left(%s\right)" % self._print(expr.args[0])

    def _print_Derivative(self, expr):
        inner = expr.expr
        if isinstance(inner, (sp.Symbol, sp.Indexed)):
            if len(expr.variable_count) == 1 and expr.variable_count[0][1] == 1:
                return r"\frac{\partial %s}{\partial %s}" % (self._print(inner), self._print(expr.variables[0]))
            return super()._print_Derivative(expr)
        order = sum(count for _, count in expr.variable_count)
        below = "".join(r"\partial %s" % self._print(var) + ("" if count == 1 else "^{%d}" % count)
                        for var, count in reversed(expr.variable_count))
        above = r"\partial" if order == 1 else r"\partial^{%d}" % order
        return r"\frac{%s}{%s} \left(%s\right)" % (above, below, self._print(inner))


def _decimal(number: sp.Rational) -> str:
    """0.6 for 3/5: a rational with a short terminating decimal, else ''."""
    den = int(number.q)
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    text = format(float(number), ".6g")
    return text if den == 1 and sp.Rational(text) == number else ""


def _delta_rank(index):
    order = report_notation().delta_order
    return order.index(index) if index in order else len(order) + (1 if index.is_Number else 0)


def _is_unevaluated(expr: sp.Basic) -> bool:
    """True for an Add or Mul built with ``evaluate=False`` (evaluating would change it)."""
    with sp.evaluate(True):
        return expr.func(*expr.args) != expr


def display(expr: sp.Expr, taken: frozenset = frozenset(), names: bool = True) -> sp.Expr:
    """Abbreviate for reading, without evaluating: the content's abbreviations
    (:attr:`Notation.abbreviations`; the built-in ones write a_u for the FC logit and
    Z for the partition function), then its names (:attr:`Notation.names`; the
    built-in ones write S_u for e^{a_u}/Z) unless ``names`` is False (a derivation
    that folds the names itself, step by step, shows them where it folds them); then
    give each summation index the notation table's
    name (j first), avoiding ``taken``."""
    # a sum over a handful of concrete terms (the two classes of the binary loss) reads
    # better written out
    expr = expr.replace(lambda e: isinstance(e, Sum) and len(e.limits) == 1 and all(
        lim[1].is_Integer and lim[2].is_Integer and lim[2] - lim[1] < 5 for lim in e.limits)
        and e.has(sp.Piecewise), _write_out)
    for abbreviate in report_notation().abbreviations + (report_notation().names if names else ()):
        expr = abbreviate(expr)
    return rename_bound(expr, frozenset(taken) | expr.free_symbols)


_Exp = sp.Function("EXP")


def _write_out(total: Sum) -> sp.Expr:
    """sum_{u=1}^{2} f(u) -> f(1) + f(2), keeping e^0 as e^0 (so that the next step can
    say e^0 = 1)."""
    var, lo, hi = total.limits[0]
    body = total.function.replace(sp.exp, _Exp)
    terms = [body.xreplace({var: sp.Integer(u)}) for u in range(int(lo), int(hi) + 1)]
    terms = [walk(t, lambda e: sp.exp(e.args[0], evaluate=False) if isinstance(e, _Exp) else None)
             for t in terms]
    return sp.Add(*terms, evaluate=False)


def walk(expr: sp.Expr, rule: Callable) -> sp.Expr:
    """Apply ``rule`` bottom-up (it returns a replacement or None); rebuild the tree with
    evaluation off, so that unevaluated steps keep their form."""
    if isinstance(expr, sp.Basic) and expr.args and (not expr.is_Atom or isinstance(expr, sp.Indexed)):
        args = [walk(arg, rule) for arg in expr.args]
        if args != list(expr.args):
            expr = _rebuild(expr, args)
    new = rule(expr)
    return expr if new is None else new


def _rebuild(expr: sp.Basic, args: list) -> sp.Basic:
    if isinstance(expr, (sp.Add, sp.Mul, sp.Pow)):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def rename_bound(expr: sp.Expr, taken: frozenset) -> sp.Expr:
    """Give every summation index the first name of ``report_notation().index_names`` not in ``taken``
    (nor bound by an enclosing sum); the tree is rebuilt with evaluation off."""
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    if isinstance(expr, Sum):
        body, limits = expr.function, []
        for var, lo, hi in reversed(expr.limits):  # outermost first
            names = report_notation().index_names.get(CLASSES if hi.is_Integer else hi, (var,))
            free = body.free_symbols - {var}
            if var in report_notation().kept_names and var in names and var not in taken and var not in free:
                name = var  # the derivation chose a name of the notation table: keep it
            else:
                name = next((n for n in names if n not in taken and n not in free), var)
            body = walk(body, lambda e, var=var, name=name: name if e == var else None)
            taken = taken | {name}
            limits.insert(0, (name, lo, hi))
        return Sum(rename_bound(body, taken), *limits)
    args = [rename_bound(arg, taken) for arg in expr.args]
    return _rebuild(expr, args) if args != list(expr.args) else expr


def product(factors: list) -> sp.Expr:
    """The product of ``factors`` as written (unevaluated; one factor is itself)."""
    return factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)


_PRINTER = MathPrinter()


def tex(expr: sp.Expr, taken: frozenset = frozenset(), names: bool = True) -> str:
    """The LaTeX of ``expr`` as the reports print it (see :func:`display`)."""
    return _PRINTER.doprint(display(expr, taken, names))


def why_tex(text: str) -> str:
    """A justification or title (text with $...$ math) for LaTeX text mode."""
    parts = text.split("$")
    return "".join(_escape_tex(part) if k % 2 == 0 else f"${part}$" for k, part in enumerate(parts))


def _escape_tex(text: str) -> str:
    """Escape LaTeX specials in plain text (an escaped \\_ stays as it is)."""
    text = text.replace(r"\_", "_")
    return (text.replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")
            .replace("_", r"\_").replace("^", r"\textasciicircum{}"))


# --------------------------------------------------------------------------- derivations
@dataclass
class Rendered:
    title: str
    key: str
    lines: list[tuple[str, str, str]]  # (relation, rhs, why)
    start: str
    boxed_index: str
    boxed_matrix: str
    assumptions: list[str]


REL_TEX = {"=": "=", ">": ">", ">=": r"\ge", "<": "<", "<=": r"\le", "~": r"\approx"}


#: while documents are written (:func:`renderings_remembered`): id(derivation) ->
#: (derivation, its Rendered); None otherwise
_RENDERED: list = [None]


@contextlib.contextmanager
def renderings_remembered():
    """Within: each derivation rendered once (the repeated-steps check, the LaTeX and the
    Markdown of a document set all render it; a Rendered is only read). The outermost
    use forgets them."""
    owner = _RENDERED[0] is None
    if owner:
        _RENDERED[0] = {}
    try:
        yield
    finally:
        if owner:
            _RENDERED[0] = None


def render_derivation(d: engine.Derivation) -> Rendered:
    """The LaTeX of every step of ``d`` (:class:`Rendered`), once per derivation inside
    :func:`renderings_remembered`."""
    memo = _RENDERED[0]
    if memo is None:
        return _render_derivation(d)
    hit = memo.get(id(d))
    if hit is None or hit[0] is not d:
        hit = memo[id(d)] = (d, _render_derivation(d))
    return hit[1]


def _render_derivation(d: engine.Derivation) -> Rendered:
    # a summation index never takes the name of an index free anywhere in the derivation
    taken = frozenset().union(*(step.expr.free_symbols for step in d.steps))
    # a derivation that folds e^{a_j}/Z into S_j by a step of its own (derive.gradient's)
    # says so (folds_names): abbreviated before it, that step would print its line again
    names = not getattr(d, "folds_names", False)
    lines = []
    for step in d.steps[1:]:
        rhs = tex(step.expr, taken, names) if step.rel != "~" else f"{float(step.expr):.{step.decimals}f}"
        lines.append((REL_TEX[step.rel], rhs, step.why))
    start = tex(d.start, taken, names)
    last = d.steps[-1]
    result = lines[-1][1]
    rel = REL_TEX[last.rel] if all(s.rel in ("=", last.rel) for s in d.steps[1:]) else lines[-1][0]
    boxed_index = f"{start} {rel} {result}" if len(start) + len(result) < 160 else f"{result}"
    return Rendered(d.title, d.key, lines, start, boxed_index, d.matrix,
                    [a.latex or a.text for a in d.assumptions
                     if not any(a is unstated for unstated in report_notation().unstated)])


def _mathify(text):
    """Assumption texts are plain: set the formulas in them as math."""
    text = " " + text
    for old, new in report_notation().phrases:
        text = text.replace(old, new)
    return text.strip()


def _visible(latex: str) -> str:
    """Roughly what a formula shows: its LaTeX without commands and braces."""
    latex = re.sub(r"\\(left|right|frac|operatorname|mathrm|text|textstyle|big|Big)\b", "", latex)
    return re.sub(r"[{}^_ ]", "", re.sub(r"\\[a-zA-Z]+", "x", latex))


def repeated_steps(derivations: Iterable[engine.Derivation]) -> list[str]:
    """Every place where a printed step equals the line before it (nothing visibly
    happens), as "key: step n prints ... again"; empty when every step shows a change.

    Works on any list of derivations (the catalogue, the kernels' proofs, a user's)."""
    found = []
    for d in derivations:
        r = render_derivation(d)
        printed = [r.start] + [rhs for _, rhs, _ in r.lines]
        for number in range(1, len(printed)):
            if printed[number] == printed[number - 1]:
                found.append(f"{d.key}: step {number} ({engine.plain(r.lines[number - 1][2])}) "
                             f"prints {printed[number]} again")
    return found
