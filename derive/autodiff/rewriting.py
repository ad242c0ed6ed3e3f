"""The rewrite machinery of automatic gradients: a :class:`Rule` (a name, a
justification, a pattern and a replacement), the rules that need more than one
pattern (:class:`ByAssumptions`, :class:`Differentiate`, :class:`Protected`), the
named quantities (:class:`Define`) and their definitions as one assumption
(:class:`Definitions`). It knows no rule set and no content: those are
:mod:`derive.autodiff.rules` and a content's own modules.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp
from sympy import Derivative, Indexed, IndexedBase, exp

from .. import engine, symbols
from ..symbols import Assumption

Matcher = Callable[[sp.Basic], bool]

# --------------------------------------------------------------------------- machinery
@dataclass(frozen=True)
class Context:
    """What a rule may consult: the variable, the assumptions and the named quantities."""

    wrt: sp.Expr
    assumptions: tuple
    defines: tuple = ()  # the Define rules of the rule set, in order
    key: str = "gradient"
    check: bool = True
    min_classes: int = 1
    parts: list = field(default_factory=list)  # derivations the rules derived on the way

    @property
    def names(self) -> tuple:
        return tuple(define.base for define in self.defines)


def _is_callable(obj) -> bool:
    return callable(obj) and not isinstance(obj, sp.Basic)


def _rewrite(expr, one, context, inside_derivatives):
    """Bottom-up rewrite of ``expr`` with ``one(e, context)`` (None: leave e)."""
    if isinstance(expr, Indexed):  # a component is rewritten whole, never its indices
        replaced = one(expr, context)
        return expr if replaced is None else replaced
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    if isinstance(expr, Derivative) and not inside_derivatives:
        return expr
    args = [_rewrite(arg, one, context, inside_derivatives) for arg in expr.args]
    new = expr if all(x is y for x, y in zip(args, expr.args)) else expr.func(*args)
    replaced = one(new, context)
    return new if replaced is None else replaced


@dataclass(frozen=True)
class Rule:
    """A named rewrite: every subexpression matching ``pattern`` becomes ``replacement``.

    ``pattern`` is a SymPy expression with ``Wild`` s or a callable ``matcher(e) ->
    bool``; ``replacement`` is an expression in the same wilds, or a callable
    ``(e, context) -> new`` (given a matcher) or ``(e, context, wilds) -> new`` (given
    a pattern). The rewrite goes bottom-up over the whole expression.
    ``inside_derivatives=False`` leaves the bodies of unevaluated derivatives alone (a
    rule that introduces a *named* quantity must: the numeric check of a derivative
    moves the variable, not the name). ``why`` is the step's justification (LaTeX
    allowed); the step says ``[rule NAME]`` after it.

    A rule must be true: the checker rejects the step it produces otherwise, naming
    the rule.

    Examples
    --------
    A user's rule by a pattern -- the log of a product with a class weight splits
    (w_c > 0) -- put before the softmax content's rules; it fires first and its step
    is checked like any other:

    >>> import sympy as sp
    >>> from derive import Rule, gradient
    >>> from derive.softmax import definitions as D, rules as R
    >>> u = sp.Wild("u")
    >>> split = Rule("log_of_weighted", r"$\\log (w_c u) = \\log w_c + \\log u$",
    ...              sp.log(D.w[D.c] * u), sp.log(D.w[D.c]) + sp.log(u))
    >>> d = gradient(-sp.log(D.w[D.c] * D.softmax(D.c)), D.a[D.i], (D.REAL_LOGITS,),
    ...              (split,) + R.RULES)
    >>> d.rules[0], d.result
    ('log_of_weighted', -KroneckerDelta(c, i) + S[i])
    """

    name: str
    why: str
    pattern: sp.Basic | Callable | None = None
    replacement: sp.Basic | Callable | None = None
    inside_derivatives: bool = True

    def apply(self, expr: sp.Expr, context: Context) -> sp.Expr:
        """``expr`` with every match rewritten (``expr`` itself when none matches)."""
        return _rewrite(expr, self._one, context, self.inside_derivatives)

    def justification(self, before: sp.Expr, after: sp.Expr, context: Context) -> str:
        return self.why

    def _one(self, e, context):
        if _is_callable(self.pattern):
            return self.replacement(e, context) if self.pattern(e) else None
        found = e.match(self.pattern)
        if found is None:
            return None
        if _is_callable(self.replacement):
            return self.replacement(e, context, found)
        return self.replacement.xreplace(found)


@dataclass(frozen=True)
class ByAssumptions(Rule):
    """What the assumptions state, each by its own sound rewrite (sum_j y_j = 1,
    y_j = delta_jc), one step per assumption, justified by the assumption's text."""

    name: str = "assumptions"
    why: str = "what the assumptions state"

    def _first(self, expr, context):
        for assumption in context.assumptions:
            if isinstance(assumption, Definitions):
                continue  # unfolding the names is the opposite of closing the form
            new = assumption.rewrite(expr)
            if new != expr:
                return assumption, new
        return None, expr

    def apply(self, expr, context):
        return self._first(expr, context)[1]

    def justification(self, before, after, context):
        assumption, _ = self._first(before, context)
        return assumption.text if assumption is not None else self.why


@dataclass(frozen=True)
class Differentiate(Rule):
    """SymPy's ``diff`` for every derivative left, bound variables renamed first
    (:func:`engine.canonical_bound`) so that a summation index is never confused with
    a free index of the same name, range conditions resolved after
    (:func:`engine.refine_ranges`)."""

    name: str = "diff"
    why: str = "differentiate (SymPy's diff)"

    def apply(self, expr, context):
        def one(e, _context):
            if not isinstance(e, Derivative):
                return None
            body = engine.canonical_bound(e.expr)
            for var, count in e.variable_count:
                body = sp.diff(body, var, count)
            return engine.refine_ranges(body)
        return _rewrite(expr, one, context, True)


def _factors(product) -> list:
    """[(base, exponent)] of a product, exponentials kept whole (never merged)."""
    out = []
    for f in sp.Mul.make_args(product):
        if isinstance(f, exp):  # e^{u + v} = e^u e^v, e^{n u} = (e^u)^n: SymPy merges them
            for term in sp.Add.make_args(f.args[0]):
                count, rest = term.as_coeff_Mul()
                if count.is_Integer and count > 1:
                    out.append((exp(rest), count))
                else:
                    out.append((exp(term), sp.Integer(1)))
        elif isinstance(f, sp.Pow) and f.exp.is_Integer:
            out.append((f.base, f.exp))
        else:
            out.append((f, sp.Integer(1)))
    return out


@dataclass(frozen=True)
class Define(Rule):
    """A named quantity ``base[u] = body(u)``.

    As a rule it folds ``body(u)`` into ``base[u]`` outside derivatives, also inside
    products (``e^{a_i} x_q / Z^2 e^{a_c} -> S_i S_c x_q``). Every Define of a rule set
    is an assumption of the derivation (:class:`Definitions`), so a result stated in
    the name is checked against the definition. A definition may use the names defined
    before it in the rule set. ``size`` is the range of the name's index (1..size: the
    classes by default). ``is_open(define, expr)``, if given, says whether ``expr``
    still holds what the name stands for written out (for the softmax S: an
    exponential, or a logit outside ``log Z``); a form is closed only when no Define
    of the rule set finds it open (:func:`is_closed`).

    Examples
    --------
    The user's own quantity, the residual P_j = S_j - y_j, folded into its name after
    the softmax content's rules have closed the form:

    >>> import sympy as sp
    >>> from derive import Define, gradient
    >>> from derive.softmax import definitions as D, rules as R
    >>> P = sp.IndexedBase("P", real=True)
    >>> residual = Define("residual", r"definition of $P_j = S_j - y_j$", base=P,
    ...                   body=lambda u: R.S[u] - D.y[u])
    >>> gradient(D.softmax_loss(), D.a[D.i], (D.REAL_LOGITS, D.SOFT_LABEL),
    ...          R.RULES + (residual,)).result
    P[i]
    """

    inside_derivatives: bool = False
    base: IndexedBase | None = None
    body: Callable | None = None
    size: sp.Expr = symbols.CLASSES
    is_open: Callable | None = None

    @property
    def template(self) -> sp.Expr:
        return engine.canonical_bound(self.body(SLOT))

    def apply(self, expr, context):
        return self.fold(expr, context, self.inside_derivatives)

    def fold(self, expr, context=None, inside_derivatives=False):
        """``expr`` with every instance of the definition folded into the name."""
        wild = sp.Wild("u_", properties=[lambda e: e.is_Symbol or e.is_Integer])
        pattern = self.template.xreplace({SLOT: wild})
        parts = _factors(pattern) if isinstance(pattern, sp.Mul) else None

        def one(e, _context):
            found = e.match(pattern)
            if found is not None and wild in found:
                return self.base[found[wild]]
            if isinstance(pattern, sp.Add) and isinstance(e, sp.Add):
                return _fold_terms(e, pattern, wild, self.base)
            if parts is None or not isinstance(e, sp.Mul):
                return None
            return _fold_product(e, parts, wild, self.base)
        canonical = engine.canonical_bound(expr)
        new = _rewrite(canonical, one, context, inside_derivatives)
        return expr if new == canonical else new

    def unfold(self, expr):
        """``expr`` with the name replaced by its definition."""
        return expr.replace(lambda e: isinstance(e, Indexed) and e.base == self.base,
                            lambda e: self.body(e.indices[0]))


@dataclass(frozen=True)
class Protected(Rule):
    """``rule`` applied with the instances of ``define`` held together: folded into the
    name first (inside derivatives too) and unfolded after, so that, e.g., linearity
    does not split a_j = sum_n W_jn x_n + b_j apart and the chain rule can still see it."""

    rule: Rule | None = None
    define: Define | None = None

    def apply(self, expr, context):
        folded = self.define.fold(expr, context, inside_derivatives=True)
        if folded == expr:
            return self.rule.apply(expr, context)
        new = self.rule.apply(folded, context)
        return expr if new == folded else self.define.unfold(new)

    def justification(self, before, after, context):
        return self.rule.why


SLOT = sp.Symbol("slot_", integer=True, positive=True)  # the index a template is written in


def _fold_terms(total, pattern, wild, base):
    """Fold every instance of the template's terms (all of them, with one sign) inside
    the sum ``total`` into ``base[u]``: b_s + sum_n W_sn x_n - log Z -> a_s - log Z."""
    terms = list(sp.Add.make_args(total))
    wanted = list(sp.Add.make_args(pattern))
    folded = []
    for sign_ in (1, -1):
        for term in list(terms):
            found = (sign_ * term).match(wanted[0])
            if found is None or wild not in found:
                continue
            need = [sign_ * w.xreplace(found) for w in wanted]
            if all(n in terms for n in need):
                for n in need:
                    terms.remove(n)
                folded.append(sign_ * base[found[wild]])
    return sp.Add(*terms, *folded) if folded else None


def _fold_product(product, parts, wild, base):
    """Fold every instance of the template factors ``parts`` (which carry ``wild``)
    inside ``product`` into ``base[u]``; None if there is none."""
    have = {}
    for b_, e_ in _factors(product):
        have[b_] = have.get(b_, 0) + e_
    keyed = [(pb, pe) for pb, pe in parts if pb.has(wild)]
    if len(keyed) != 1:
        return None
    (kb, _), = keyed
    folded = []
    for b_ in list(have):
        found = b_.match(kb)
        if found is None or wild not in found:
            continue
        need = [(pb.xreplace(found), pe) for pb, pe in parts]
        while all(_takes(have.get(nb, 0), ne) for nb, ne in need):
            for nb, ne in need:
                have[nb] -= ne
            folded.append(base[found[wild]])
    if not folded:
        return None
    return sp.Mul(*folded) * sp.Mul(*(b_ ** e_ for b_, e_ in have.items() if e_ != 0))


def _takes(available, needed) -> bool:
    """``needed`` (a power) can be taken from ``available`` without flipping its sign."""
    return available != 0 and (available * needed > 0) and abs(available) >= abs(needed)


@dataclass(frozen=True, repr=False)
class Definitions(Assumption):
    """The definitions of a rule set's named quantities, as one assumption.

    Its rewrite unfolds every name (the latest definition first, so that names defined
    in terms of earlier ones unfold completely); its sampler computes each name's values
    from the instance, in the order of definition (after every other assumption has
    drawn its values: :func:`gradient` puts it last)."""

    defines: tuple = ()

    def __repr__(self):
        # the engine keys its cache of proved links by repr: the definitions' content,
        # never a lambda's address (which a later, different lambda may reuse)
        shown = ", ".join(f"{d.name}: {d.base}[u] = {sp.sstr(d.template)}" for d in self.defines)
        return f"Definitions({self.text!r}; {shown})"

    def rewrite(self, expr):
        for define in reversed(self.defines):
            expr = expr.replace(lambda e, d=define: isinstance(e, Indexed) and e.base == d.base,
                                lambda e, d=define: d.body(e.indices[0]))
        return expr

    def sample(self, env):
        for define in self.defines:
            for sym in sorted(define.body(SLOT).free_symbols, key=sp.default_sort_key):
                # a scalar of the definition (a temperature) is drawn now, by the sampler
                # it was declared with, as the engine draws any other (it keeps this value)
                if isinstance(sym, sp.Symbol) and not sym.is_integer and sym not in env:
                    symbols.draw_declared(env, [sym], env.rng)
            shared = engine.evaluator(env)  # the sums every component holds, once
            for idx in range(1, env.T + 1):
                env[define.base[idx]] = engine.evaluate(define.body(sp.Integer(idx)), env, shared)
