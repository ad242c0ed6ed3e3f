"""The symbolic half's normal forms: canonical names for summation variables, the ranges
of indices (a free index lies in 1..its size, a summation variable in its limits), SymPy's
``doit`` with the values of sums remembered, successively stronger normal forms of a
difference (:func:`normal_forms`) and a small sound sign prover (:func:`sign`)."""
from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable

import sympy as sp
from sympy import Derivative, Piecewise, Sum
from sympy.codegen.cfunctions import log1p
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.operations import AssocOp

from .. import notation, symbols
from .memo import memo_read, memo_write, read_srepr
from .summation import sum_value

# integers and nothing more: a summation variable is bounded by its own limits only
_BOUND = [sp.Symbol(f"_k{height}", integer=True) for height in range(12)]
_BOUND_SET = set(_BOUND)


def _height(expr) -> int:
    """How many summations are nested in ``expr`` (0 for none)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return 0
    inner = max((_height(arg) for arg in expr.args), default=0)
    return inner + len(expr.limits) if isinstance(expr, ExprWithLimits) else inner


def canonical_bound(expr: sp.Expr) -> sp.Expr:
    """Rename summation variables so alpha-equivalent sums coincide.

    A sum's variable is named after its height (how many sums it contains), so a sum
    gets the same name wherever it is nested and never captures an inner binder. The
    new names are integers with no other assumption (not positive: a sum may run over
    0 or negative indices). An expression that already holds canonical names (an
    assumption's rewrite put a sum inside a canonical one) first has every binder
    renamed to a fresh name of its own, so that an inner binder renamed to ``_k0``
    cannot capture an outer ``_k0``.
    """
    if isinstance(expr, sp.Basic) and not expr.is_Atom and expr.atoms(sp.Symbol) & _BOUND_SET:
        expr = _fresh_bound(expr, itertools.count())
    return _canonical(expr)


def _fresh_bound(expr, counter):
    """Every binder renamed to a name used nowhere else (outermost first)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    if isinstance(expr, ExprWithLimits):
        body, limits = expr.function, [list(limit) for limit in expr.limits]
        for k in reversed(range(len(limits))):  # outermost first; inner limits may use it
            fresh = sp.Symbol(f"_f{next(counter)}", integer=True)
            body = body.xreplace({limits[k][0]: fresh})
            for inner in limits[:k]:
                inner[1:] = [bound.xreplace({limits[k][0]: fresh}) for bound in inner[1:]]
            limits[k][0] = fresh
        limits = [(var, _fresh_bound(lo, counter), _fresh_bound(hi, counter)) for var, lo, hi in limits]
        return expr.func(_fresh_bound(body, counter), *limits)
    args = [_fresh_bound(arg, counter) for arg in expr.args]
    return expr.func(*args) if args else expr


def _canonical(expr):
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    args = [_canonical(arg) for arg in expr.args]
    if isinstance(expr, ExprWithLimits):
        body, height, limits = args[0], _height(args[0]), []
        for var, lo, hi in expr.limits:  # innermost first
            name = _BOUND[height]
            body = body.xreplace({var: name})
            limits.append((name, lo, hi))
            height += 1
        return expr.func(body, *limits)
    return expr.func(*args) if args else expr


def _range_facts(sym, lo, hi) -> dict:
    """Relations that hold because the integer ``sym`` lies in lo..hi."""
    facts = {}
    for rel in (hi >= sym, sym <= hi, sym >= lo, lo <= sym, sp.Le(lo, sym), sp.Ge(hi, sym)):
        facts[rel] = sp.true
    for rel in (hi < sym, sym > hi, sym < lo, lo > sym):
        facts[rel] = sp.false
    return {rel: value for rel, value in facts.items() if not isinstance(rel, sp.logic.boolalg.BooleanAtom)}


def _free_index_facts(expr: sp.Expr) -> dict:
    facts = {}
    ranges = notation.current().index_ranges
    for sym in expr.free_symbols & set(ranges):
        facts.update(_range_facts(sym, 1, ranges[sym]))
    return facts


def _refine(expr, facts: dict):
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    if expr in facts:
        return facts[expr]
    if isinstance(expr, ExprWithLimits):
        inner = dict(facts)
        limits = []
        for var, lo, hi in expr.limits:
            # a binder shadows whatever was known about a symbol of the same name
            inner = {rel: val for rel, val in inner.items() if var not in rel.free_symbols}
            limits.append((var, _refine(lo, facts), _refine(hi, facts)))
        for var, lo, hi in limits:
            inner.update(_range_facts(var, lo, hi))
        return expr.func(_refine(expr.function, inner), *limits)
    args = [_refine(arg, facts) for arg in expr.args]
    if all(new is old for new, old in zip(args, expr.args)):
        return expr
    return expr.func(*args)


def refine_ranges(expr: sp.Expr) -> sp.Expr:
    """Resolve Piecewise conditions like ``T >= i`` that hold for indices in range.

    A free index lies in its range everywhere; a summation variable lies in its limits
    inside its own sum's body only.
    """
    for _ in range(6):
        new = _refine(expr, _free_index_facts(expr))
        new = new.replace(lambda e: isinstance(e, Piecewise), lambda e: sp.piecewise_fold(e))
        if new == expr:
            return new
        expr = new
    return expr


def _elementary(expr):
    """log1p(u) -> log(1 + u): the definition of the codegen functions."""
    return expr.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0]))


@functools.lru_cache(maxsize=4096)
def _sum_doit(total: Sum) -> sp.Expr:
    """``total.doit()`` (:func:`derive.engine.summation.sum_value`), remembered: the same
    sums recur in every step of a derivation and in every derivation of a layer. With
    :data:`MEMO_VARIABLE` set, also in the processes that share it (as SymPy's printed
    form: a value that does not read back the same is not used)."""
    key = sp.srepr(total) if _only_sympy(total) else None
    text = memo_read("sum", key, lambda value: isinstance(value, str)) if key is not None else None
    if text is not None:
        try:
            value = read_srepr(text)  # data: SymPy's classes and literals only, never run
        except Exception:  # noqa: BLE001 - not a form read back here: worked out again
            value = None
        if isinstance(value, sp.Basic) and sp.srepr(value) == text:
            return value
    value = sum_value(total, _doit_remembering_sums)
    if key is not None and not value.atoms(sp.Dummy):
        memo_write("sum", key, sp.srepr(value))
    return value


def _only_sympy(expr) -> bool:
    """Every node of ``expr`` is of a SymPy class: then so is its value, and its printed
    form reads back with SymPy's names alone (a class of a content's own, which could
    share a name with one of SymPy's, is never written or read)."""
    return all(type(node).__module__.startswith("sympy.") for node in sp.preorder_traversal(expr))


def _doit_remembering_sums(expr):
    """``expr.doit()``: the same recursion as SymPy's (each node's own ``doit`` where it
    has one), with the value of every sum outside such a node from :func:`_sum_doit`."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    if isinstance(expr, Sum):
        return _sum_doit(expr)
    own = type(expr).doit
    if own is sp.Basic.doit:
        return expr.func(*[_doit_remembering_sums(arg) for arg in expr.args])
    if own is AssocOp.doit:
        return expr.func(*[_doit_remembering_sums(arg) for arg in expr.args], evaluate=True)
    if own is Derivative.doit:  # SymPy's Derivative.doit, its body's sums remembered
        done = expr.func(_doit_remembering_sums(expr.expr), *expr.variable_count, evaluate=True)
        return done.doit(evaluate=True) if done != expr and done.has(Derivative) else done
    if own is Piecewise.doit:  # SymPy's Piecewise.doit, each piece's sums remembered
        pieces = []
        for piece, condition in expr.args:
            done = _doit_remembering_sums(piece)
            pieces.append((piece if done == expr else done, _doit_remembering_sums(condition)))
        return expr.func(*pieces)
    return expr.doit()  # a Product...: as SymPy does it


def _doit(expr):
    # renaming bound variables first keeps SymPy from confusing a summation index
    # with a free index of the same name (diff(Sum(a[j]**2, (j, 1, T)), a[j]))
    expr = canonical_bound(_elementary(expr))
    for _ in range(4):
        new = refine_ranges(_doit_remembering_sums(expr))
        if new == expr:
            break
        expr = new
    return expr


def _split_sums(expr):
    """Linearity: sum_j (f + g) = sum_j f + sum_j g, and constants move out."""
    from sympy.simplify.simplify import factor_sum

    def split(e):
        body = sp.expand(e.function)
        terms = sp.Add.make_args(body)
        return sp.Add(*[factor_sum(Sum(term, *e.limits)) for term in terms])

    for _ in range(4):
        new = expr.replace(lambda e: isinstance(e, Sum), split)
        if new == expr:
            break
        expr = new
    return expr


def _expand_log(expr, min_classes: int = 1):
    """log(u v) = log u + log v and log u^w = w log u, only where u, v are provably
    positive (for every T >= min_classes); elsewhere SymPy's own, assumption-aware rules."""
    def positive(e):
        factors = sp.Mul.make_args(e)
        return all(sign(f, min_classes) == "pos" or (
            isinstance(f, sp.Pow) and sign(f.base, min_classes) == "pos" and f.exp.is_real)
            for f in factors)

    def expand(e):
        arg = e.args[0]
        if positive(arg):
            return sp.expand_log(e, force=True)
        return sp.expand_log(e)
    return expr.replace(lambda e: isinstance(e, sp.log), expand)


def _apply(assumptions):
    def apply(expr):
        for assumption in assumptions:
            expr = assumption.rewrite(expr)
        return expr
    return apply


def normal_forms(expr: sp.Expr, assumptions, min_classes: int = 1) -> Iterable[tuple[str, sp.Expr]]:
    """Successively stronger normal forms of ``expr`` (each a sound equality).

    A stage that SymPy itself fails on (simplify has internal errors on some nested
    sums) is skipped: skipping can only make the check weaker, never unsound.
    """
    return ((name, form) for name, form in _ladder(expr, assumptions, min_classes) if form is not None)


#: the last normal form before SymPy's simplify: the forms up to here are rewrites and
#: expansion (well under a second on a kernel's form); simplify can take minutes on a
#: large expression that branches on indices, which a case split makes small
LAST_QUICK_FORM = "expand"


def _ladder(expr: sp.Expr, assumptions, min_classes: int = 1):
    """Every stage of :func:`normal_forms`: (name, form), form None where SymPy failed."""
    use = _apply(assumptions)
    stages = [
        ("evaluate", lambda e: canonical_bound(use(_doit(e)))),
        ("linearity of sums, log rules",
         lambda e: sp.expand(_doit(canonical_bound(use(_split_sums(_expand_log(e, min_classes))))))),
        (LAST_QUICK_FORM, lambda e: sp.expand(canonical_bound(
            use(_split_sums(sp.expand(sp.powsimp(sp.expand(e), combine="exp"))))))),
        ("simplify", lambda e: canonical_bound(use(sp.simplify(e)))),
        ("simplify after assumptions", lambda e: _simplify_after_assumptions(e, use)),
    ]
    for name, stage in stages:
        try:
            expr = stage(expr)
        except Exception:  # noqa: S112, BLE001 - a SymPy failure only skips this (optional) stage
            yield name, None
            continue
        yield name, expr


def _simplify_after_assumptions(expr, use):
    """SymPy's simplify once more, on ``expr`` (simplify's own result) factored and
    rewritten by the assumptions; where neither changes it, ``expr`` itself: simplify
    again on its own result would only repeat it (seconds on a step that is false)."""
    prepared = use(sp.factor_terms(expr))
    return expr if prepared == expr else canonical_bound(use(sp.simplify(prepared)))


def _is_zero(expr) -> bool:
    return expr == 0 or expr.is_zero is True


def _nonempty(lo, hi, min_classes: int, at_least: int) -> bool:
    """hi - lo + 1 >= at_least for every T >= min_classes (and every N, B >= 1)."""
    shifted = sp.Symbol("T_extra", integer=True, nonnegative=True)
    count = (hi - lo + 1 - at_least).xreplace({symbols.CLASSES: shifted + max(1, min_classes)})
    return count == 0 or count.is_nonnegative is True


def sign(expr: sp.Expr, min_classes: int = 1) -> str | None:
    """A small sound sign prover: 'pos', 'nonneg' or None (unknown).

    Besides SymPy's own assumptions it knows that a sum of positive terms is positive
    when it is provably non-empty for every T >= ``min_classes`` (and non-negative
    when it may be empty), that the square of a base SymPy shows real is non-negative
    and that e^u - 1 > 0 for u > 0 (exp is increasing).
    """
    if isinstance(expr, Sum):
        inner = sign(expr.function, min_classes)
        if inner is None:
            return None
        if inner == "pos" and all(_nonempty(lo, hi, min_classes, 1) for _, lo, hi in expr.limits):
            return "pos"
        if all(_nonempty(lo, hi, min_classes, 0) for _, lo, hi in expr.limits):
            return "nonneg"
        return None
    if expr.is_positive:
        return "pos"
    if isinstance(expr, sp.Pow) and expr.exp.is_even and expr.base.is_extended_real is True:
        # a square is >= 0 only for a base shown real (log(13 - T)^2 may be negative)
        return "pos" if sign(expr.base, min_classes) == "pos" else "nonneg"
    if isinstance(expr, sp.exp) and expr.args[0].is_real:
        return "pos"
    if isinstance(expr, sp.Add):
        terms = expr.args
        # e^u - 1 with u > 0
        if len(terms) == 2 and -1 in terms:
            other = terms[0] if terms[1] == -1 else terms[1]
            if isinstance(other, sp.exp) and sign(other.args[0], min_classes) == "pos":
                return "pos"
        signs = [sign(term, min_classes) for term in terms]
        if all(sg == "pos" for sg in signs):
            return "pos"
        if all(sg in ("pos", "nonneg") for sg in signs):
            return "pos" if "pos" in signs else "nonneg"
        return None
    if isinstance(expr, sp.Mul):
        signs = [sign(f, min_classes) for f in expr.args]
        if all(sg == "pos" for sg in signs):
            return "pos"
        if all(sg in ("pos", "nonneg") for sg in signs):
            return "nonneg"
        return None
    if isinstance(expr, sp.Pow) and sign(expr.base, min_classes) == "pos" and expr.exp.is_real:
        return "pos"
    if expr.is_nonnegative:
        return "nonneg"
    return None
