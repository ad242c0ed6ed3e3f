"""The symbolic half: SymPy shows ``previous <rel> this`` for symbolic T under the
assumptions (:func:`symbolic_check`), on the whole difference or, where the sides branch
on the equality of free indices, in every case; never on an index expression SymPy is
not trusted on (:func:`untrusted_index`)."""
from __future__ import annotations

import dataclasses
import itertools

import sympy as sp
from sympy import Indexed, KroneckerDelta, Piecewise

from .. import notation, symbols
from .behaviour import Unknowable, _assumptions_behaviour, _depends_on, fingerprint, srepr
from .forms import LAST_QUICK_FORM, _is_zero, _ladder, canonical_bound, refine_ranges, sign
from .lemmas import _apply_lemmas, _assumption_symbols
from .memo import _remember, _remembered
from .remembered import during_checks


def _index_pairs(expr) -> list[tuple]:
    """Pairs of free indices whose equality a side branches on (Eq conditions, deltas)."""
    pairs = set()
    free = set(notation.current().index_ranges)
    for atom in expr.atoms(sp.Eq, sp.Ne, KroneckerDelta):
        x, y = atom.args
        if x in free and y in free and x != y:
            pairs.add(tuple(sorted((x, y), key=sp.default_sort_key)))
    return sorted(pairs, key=sp.default_sort_key)


def _substitute_assumption(assumption, mapping):
    changes = {f.name: getattr(assumption, f.name).xreplace(mapping)
               for f in dataclasses.fields(assumption)
               if isinstance(getattr(assumption, f.name), sp.Basic)}
    return dataclasses.replace(assumption, **changes) if changes else assumption


def _cases(pairs, keep):
    """Every consistent assignment of equal / distinct to the pairs of indices:
    (substitution, facts, description). ``keep`` ranks the symbol that stays."""
    def find(parent, s):
        while parent.get(s, s) != s:
            s = parent[s]
        return s

    for truth in itertools.product((True, False), repeat=len(pairs)):
        parent = {}
        for (x, y), equal in zip(pairs, truth):
            if equal:
                rx, ry = find(parent, x), find(parent, y)
                if rx != ry:
                    first, second = sorted((rx, ry), key=keep)
                    parent[second] = first
        if any(not equal and find(parent, x) == find(parent, y) for (x, y), equal in zip(pairs, truth)):
            continue
        mapping = {s: find(parent, s) for pair in pairs for s in pair if find(parent, s) != s}
        facts = {}
        for (x, y), equal in zip(pairs, truth):
            if not equal:
                rx, ry = find(parent, x), find(parent, y)
                for u, w in ((rx, ry), (ry, rx)):
                    facts[KroneckerDelta(u, w)] = sp.Integer(0)
                    facts[sp.Eq(u, w)] = sp.false
                    facts[sp.Ne(u, w)] = sp.true
        text = ", ".join(f"{x} {'=' if equal else '!='} {y}" for (x, y), equal in zip(pairs, truth))
        yield mapping, facts, text


def _shows(form, rel, min_classes) -> bool:
    """True if the normal form ``form`` of the difference shows ``rel``."""
    if rel == "=":
        return _is_zero(form)
    if rel in (">", "<"):
        return sign(form, min_classes) == "pos"
    return rel in (">=", "<=") and sign(form, min_classes) in ("pos", "nonneg")


def _attempt(diff, rel, assumptions, min_classes):
    """The normal forms of ``diff`` in turn, each as (name, whether it shows ``rel``);
    computed only as far as they are asked for."""
    for name, form in _ladder(diff, assumptions, min_classes):
        yield name, form is not None and _shows(form, rel, min_classes)


def _first_shown(attempt, last: str | None = None) -> str | None:
    """The name of the first form of ``attempt`` that shows the relation, or None;
    with ``last``, no form after the one of that name is computed (the rest of
    ``attempt`` can be asked for later)."""
    for name, shown in attempt:
        if shown:
            return name
        if name == last:
            break
    return None


#: at most this many index equalities are split into cases (2^n cases)
MAX_CASE_PAIRS = 3


@during_checks
def symbolic_check(prev: sp.Expr, this: sp.Expr, rel: str, assumptions,
                   lemma=None, min_classes: int = 1) -> str | None:
    """Name of the normal form that shows ``prev <rel> this``, or None.

    ``lemma``: a cited derivation or a tuple of them (applied in order). Where a side
    branches on the equality of free indices (a Piecewise on ``j = c``, a Kronecker
    delta of two free indices), the step is also tried in every case: equal indices
    are identified, distinct ones make their deltas 0. The order is by cost: the quick
    normal forms of the whole difference (up to :data:`LAST_QUICK_FORM`), then every
    case, then SymPy's simplify on the whole (on a branching kernel form it can spend
    minutes and still fail where each case closes in a fraction of a second).
    """
    if rel == "~":
        return None  # a rounding is checked numerically only
    lemmas = () if lemma is None else (tuple(lemma) if isinstance(lemma, (tuple, list)) else (lemma,))
    try:
        key = (srepr(prev), srepr(this), rel, _assumptions_behaviour(assumptions),
               tuple(fingerprint(lem) for lem in lemmas), min_classes,
               _depends_on([prev, this, *(e for lem in lemmas for e in (lem.start, lem.result))]))
    except Unknowable:  # what an assumption's rewrite does cannot be known: never reused
        key = None
    how = _remembered("shown", key, _SHOWN, lambda value: isinstance(value, str))
    if how is None:
        how = _shown(prev, this, rel, assumptions, lemmas, min_classes)
        if how is not None:
            _remember("shown", key, _SHOWN, how)
    return how


def _simple_index(idx, sizes) -> bool:
    """True for an index expression SymPy's index calculus is trusted on: an integer
    constant (sizes such as T allowed), or +-index + such a constant."""
    loose = {sym for sym in idx.free_symbols if sym not in sizes}
    if not loose:
        return True
    if len(loose) > 1:
        return False
    (var,) = loose
    if not idx.is_polynomial(var):
        return False
    slope = sp.expand(idx).coeff(var, 1)
    return slope in (1, -1) and not (sp.expand(idx) - slope * var).has(var)


def untrusted_index(exprs) -> sp.Expr | None:
    """The first Indexed or Kronecker delta of ``exprs`` whose index is not +-index +
    constant (``a[2 j]``, ``x[13 n]``, ``delta(2 j, i)``), or None. SymPy's summation and
    differentiation get such indices wrong (a derivative of a strided sum); the symbolic
    half does not use them on it.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine import untrusted_index
    >>> from derive.symbols import CLASSES as T, j
    >>> a = sp.IndexedBase("a")
    >>> untrusted_index([a[j] + a[T + 1 - j]]) is None, untrusted_index([a[2 * j]])
    (True, a[2*j])
    """
    sizes = {size for size in notation.current().index_ranges.values() if isinstance(size, sp.Symbol)}
    sizes |= {symbols.CLASSES, symbols.FEATURES}
    for expr in exprs:
        for node in sp.preorder_traversal(expr):
            if isinstance(node, Indexed):
                indices = node.indices
            elif isinstance(node, KroneckerDelta):
                indices = node.args
            else:
                continue
            if not all(_simple_index(idx, sizes) for idx in indices):
                return node
    return None


#: the name of the only form shown for a step SymPy is not trusted on
OPAQUE_FORM = "algebra, index expressions opaque"


def _shown(prev, this, rel, assumptions, lemmas: tuple, min_classes: int) -> str | None:
    """:func:`symbolic_check`, not remembered."""
    prev, this = canonical_bound(prev), canonical_bound(this)
    left, right = _apply_lemmas(prev, lemmas), _apply_lemmas(this, lemmas)
    diff = left - right if rel in ("=", ">", ">=") else right - left
    if untrusted_index([prev, this, left, right,
                        *(e for lem in lemmas for e in (lem.start, lem.result))]) is not None:
        # no summation, no differentiation, no rewrite: the index expressions stay opaque
        return OPAQUE_FORM if _shows(sp.expand(diff), rel, min_classes) else None
    whole = _attempt(diff, rel, assumptions, min_classes)
    how = _first_shown(whole, last=LAST_QUICK_FORM)
    if how is None and (prev.has(Piecewise) or this.has(Piecewise)):
        how = _by_cases(prev, this, rel, assumptions, lemmas, min_classes)
    return how if how is not None else _first_shown(whole)


def _by_cases(prev, this, rel, assumptions, lemmas, min_classes) -> str | None:
    """The text 'by cases (...)' naming the normal form that shows each case; None if a
    case fails, or if the sides branch on no pair of indices or on more than
    :data:`MAX_CASE_PAIRS`."""
    pairs = _index_pairs(prev) + [p for p in _index_pairs(this) if p not in _index_pairs(prev)]
    if not pairs or len(pairs) > MAX_CASE_PAIRS:
        return None
    lemma_names = _assumption_symbols([h for lem in lemmas for h in lem.assumptions])
    named = _assumption_symbols(assumptions)

    def keep(sym):  # the symbol an assumption names stays, the other is replaced
        return (sym not in lemma_names, sym not in named, sym.name)
    names = []
    for mapping, facts, text in _cases(pairs, keep):
        try:
            case_assumptions = [_substitute_assumption(h, mapping) for h in assumptions]
        except ValueError:  # it identifies two indices an assumption keeps distinct
            names.append(f"{text}: excluded by the assumptions")
            continue
        # indices distinct in this case stay distinct after an assumption's rewrite
        # (y_j -> delta_jc brings the delta back)
        case_assumptions += [symbols.Distinct(f"{x} != {y}", x, y) for x, y in {
            tuple(rel.args) for rel, value in facts.items()
            if isinstance(rel, KroneckerDelta) and value == 0}]
        # a lemma holds for every value of its symbols: identified indices are
        # identified in it (and in its assumptions) too
        case_lemmas = []
        for lem in lemmas:
            try:
                case_lemmas.append(dataclasses.replace(
                    lem, steps=[dataclasses.replace(lem.steps[0], expr=lem.start.xreplace(mapping)),
                                dataclasses.replace(lem.steps[-1], expr=lem.result.xreplace(mapping))],
                    assumptions=[_substitute_assumption(h, mapping) for h in lem.assumptions]))
            except ValueError:  # the lemma keeps these indices distinct: it says nothing here
                continue
        sides = []
        for side in (prev, this):
            side = side.xreplace(mapping).xreplace(facts)
            sides.append(_apply_lemmas(refine_ranges(side), case_lemmas))
        left, right = sides
        diff = left - right if rel in ("=", ">", ">=") else right - left
        how = _first_shown(_attempt(diff, rel, case_assumptions, min_classes))
        if how is None:
            return None
        names.append(f"{text}: {how}")
    return "by cases (" + "; ".join(names) + ")"


#: steps SymPy has shown, keyed by everything the symbolic half depends on (both sides,
#: the relation, what the assumptions are and do, min_classes, the cited lemmas, the
#: ranges of the indices): the name of the normal form that showed it. No seed: the
#: same step in another derivation (or under another key) is the same symbolic
#: question. Only a step shown is remembered, and the numeric half runs on every
#: derivation's own instances still.
_SHOWN: dict = {}
