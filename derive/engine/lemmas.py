"""Cited lemmas as rewrites: a checked chain of equalities replaces every instance of
its start expression by its result (:func:`apply_lemma`), its free indices matching any
distinct indices of the same range."""
from __future__ import annotations

import dataclasses
import functools

import sympy as sp
from sympy import Indexed
from sympy.concrete.expr_with_limits import ExprWithLimits

from .. import notation
from .forms import canonical_bound
from .steps import Derivation, LemmaRefused


def _assumption_symbols(assumptions) -> set:
    """The symbols that assumptions name (an index fixed by 'k is the argmax', ...)."""
    names = set()
    for assumption in assumptions:
        for f in dataclasses.fields(assumption):
            value = getattr(assumption, f.name)
            if isinstance(value, sp.Symbol):
                names.add(value)
    return names


def _only_equalities(lemma: Derivation) -> None:
    bad = [n for n, step in enumerate(lemma.steps[1:], 1) if step.rel != "="]
    if bad:
        raise LemmaRefused(
            f"the lemma {lemma.key!r} is not a chain of equalities (step {bad[0]} is "
            f"'{lemma.steps[bad[0]].rel}'): only an equality can be used as a rewrite")


def _provably_nonnegative(expr) -> bool:
    return expr == 0 or expr.is_nonnegative is True


@functools.lru_cache(maxsize=1 << 16)
def _heads(expr) -> frozenset:
    """The vectors (IndexedBase) and the kinds of node other than sums, products and
    powers (Sum, exp, log, KroneckerDelta, ...) that ``expr`` holds: a pattern matches
    only an expression that holds all of its own (a Wild holds none)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return frozenset()
    found = {expr.base} if isinstance(expr, Indexed) else (
        set() if isinstance(expr, (sp.Add, sp.Mul, sp.Pow)) else {type(expr)})
    for arg in expr.args:
        found |= _heads(arg)
    return frozenset(found)


def apply_lemma(expr: sp.Expr, lemma: Derivation) -> sp.Expr:
    """Replace every instance of the lemma's start expression by its result.

    Only a chain of equalities rewrites. The lemma holds for every value of its free
    indices that its assumptions do not name, within their ranges, so those become
    wildcards. A wildcard matches a free index of the same range, or a summation
    variable whose limits lie in that range (anything else is left alone: the lemma
    says nothing there). Distinct wildcards must match distinct symbols, none of them
    an index the lemma fixes (a lemma about i and j says nothing about i = j), or the
    lemma is refused. Bound variables are first given canonical names so that
    alpha-equivalent forms match.
    """
    _only_equalities(lemma)
    return canonical_bound(_Rewrite(lemma)(canonical_bound(expr), {}))


class _Rewrite:
    """The rewrite of :func:`apply_lemma`: the lemma's start with a wildcard for each of
    its free indices (the pattern) becomes its result with the same wildcards."""

    def __init__(self, lemma: Derivation):
        start, result = canonical_bound(lemma.start), canonical_bound(lemma.result)
        fixed = _assumption_symbols(lemma.assumptions)
        self.key, self.ranges = lemma.key, notation.current().index_ranges
        # every index of the start (also those a Derivative binds, d/da_i)
        self.indices = start.atoms(sp.Symbol) & set(self.ranges)
        free = sorted(self.indices - fixed, key=sp.default_sort_key)
        self.literal = self.indices & fixed
        self.wilds = {sym: sp.Wild(f"{sym.name}_", properties=[lambda e: e.is_Symbol and e.is_integer])
                      for sym in free}
        self.pattern, self.template = start.xreplace(self.wilds), result.xreplace(self.wilds)
        self.needed = _heads(self.pattern)
        self.rigid = not isinstance(self.pattern, (sp.Add, sp.Mul, sp.Pow, sp.Wild))

    def __call__(self, e, scope: dict):
        """``e`` with every instance rewritten, innermost first; ``scope`` maps the
        summation variables around ``e`` to their limits."""
        if not isinstance(e, sp.Basic) or e.is_Atom:
            return e
        if isinstance(e, ExprWithLimits):
            inner = {**scope, **{var: (lo, hi) for var, lo, hi in e.limits}}
            new = e.func(self(e.function, inner),
                         *[(var, self(lo, scope), self(hi, scope)) for var, lo, hi in e.limits])
        else:
            args = [self(arg, scope) for arg in e.args]
            new = e if all(x is y for x, y in zip(args, e.args)) else e.func(*args)
        replaced = self.instance(new, scope)
        return new if replaced is None else replaced

    def in_range(self, value, top, scope) -> bool:
        """Whether the index ``value`` lies in 1..``top`` for every T."""
        if value in self.ranges:
            return self.ranges[value] == top
        if value in scope:
            lo, hi = scope[value]
            return _provably_nonnegative(lo - 1) and _provably_nonnegative(top - hi)
        return False

    def instance(self, e, scope):
        """The result for ``e`` if ``e`` is an instance of the start, else None."""
        # what SymPy's match could never pair with the pattern (a sum of other vectors,
        # a log where the start is a sum) is not asked of it: match is slow, and it is
        # asked at every node of both sides
        if (self.rigid and type(e) is not type(self.pattern)) or not self.needed <= _heads(e):
            return None
        found = e.match(self.pattern)
        if found is None:
            return None
        values = [found[w] for w in self.wilds.values() if w in found]
        if len(set(values)) < len(values) or set(values) & self.literal:
            names = ", ".join(str(sym) for sym in sorted(self.indices, key=sp.default_sort_key))
            raise LemmaRefused(f"the lemma {self.key!r} would match its distinct indices "
                               f"{names} to the same index in {sp.sstr(e)}")
        if not all(self.in_range(found[w], self.ranges[sym], scope)
                   for sym, w in self.wilds.items() if w in found):
            return None
        return self.template.xreplace(found)


def _apply_lemmas(expr, lemmas):
    for lemma in lemmas:
        expr = apply_lemma(expr, lemma)
    return expr
