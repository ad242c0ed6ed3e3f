"""The proof engine: derivations as chains of checked steps.

A :class:`Derivation` is a title, its assumptions and a chain of :class:`Step` s. Each
step is an expression, the relation it has to the previous one (``=`` by default, or
``>``, ``>=``, ``<``, ``<=``, or ``~`` for a rounded number) and a one-line
justification. What "checked" means, exactly:

(a) **Numeric half.** Both sides are evaluated with mpmath at :data:`DIGITS` significant
    digits on :data:`SAMPLES_PER_T` random instances for every class count T of
    :func:`class_counts` (1, 2, 3, 5, 8 from ``min_classes`` up, plus ``min_classes``,
    ``min_classes + 1`` and one random T up to at least 12, drawn from a seed that is a
    function of the derivation's key, so every run checks the same instances). The
    values satisfy the assumptions and nothing more (a vector that no assumption
    normalises is not normalised; half of the free indices copy an earlier one, so
    coincidences such as j = c are common; a scalar no assumption draws is drawn from
    its SymPy assumptions). The evaluator is the engine's own: sums are loops,
    indices are looked up, and every ``Derivative`` is evaluated by ``mpmath.diff``
    (finite differences at raised precision) -- never by SymPy, so SymPy's index
    calculus cannot fool it. A step must hold on every instance; an instance that
    cannot be evaluated (a missing component, log 0, a division by zero) is a
    rejection too.
(b) **Symbolic half.** SymPy shows the relation for symbolic T under the assumptions
    (:func:`symbolic_check`): successively stronger normal forms of the difference,
    and, where the sides branch on index equalities (Piecewise, Kronecker deltas of
    free indices), the same for every case (tried before SymPy's simplify of the
    whole difference, the slowest form). Summation variables are renamed to symbols
    that are integers and nothing else; each sum's range is used inside its own body
    only; ``log`` products are split only where the factors are provably positive; a
    sum is positive only if it is provably non-empty for every T >= ``min_classes``.

A step is accepted only when both halves pass. A ``~`` step is numeric only: the
stated value must be a number with at most ``decimals`` decimals and equal the exact
value rounded to that many. A cited lemma must have been checked itself and consist
of equalities only; it rewrites its start expression into its result, its free
indices matching any distinct indices (those its assumptions name stay fixed).

What the numeric half cannot see: values of T beyond those sampled, instances the
random draw does not hit (an error confined to a thin set of values, or to a
coincidence of indices the draw misses), differences below the tolerance
(:data:`TOLERANCE`, relative), and anything about floating point: both halves are
about exact arithmetic, so numerical stability (shifting by the maximum rather than
by any other logit, which is exact either way) is measured by verification, not
proved here. That is why the symbolic half is still required, and why verification
exists. A link accepted once in a process is not checked again when it recurs with
the same everything (:data:`_LINKS_PROVED`); with :data:`MEMO_VARIABLE` set to a
directory, neither in any process that shares it (the test suite's session: one
proof, reused by its workers and the command lines it runs). Likewise a step that
SymPy has shown is not shown again, in whatever derivation it recurs (:data:`_SHOWN`;
the numeric half still runs on that derivation's own instances).

A rejected step raises a :class:`StepRejected`: :class:`StepFalse` with a
counterexample (T, the values, both sides), :class:`StepUnproved` when every instance
held but SymPy could not show it, :class:`StepUndefined` when an instance could not be
evaluated. Each names the derivation, the step number, the justification and both
sides.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp
from sympy import Derivative, Indexed, KroneckerDelta, Piecewise, Sum
from sympy.codegen.cfunctions import log1p
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.operations import AssocOp

from . import symbols

#: the class counts every non-concrete step is checked on, from ``min_classes`` up
#: (see :func:`class_counts` for the counts added per derivation)
CLASS_COUNTS = (1, 2, 3, 5, 8)
#: the random class count of a derivation is drawn up to at least this
LARGEST_RANDOM_T = 12
#: random instances per class count
SAMPLES_PER_T = 2
#: working precision of the numeric check, in decimal digits
DIGITS = 40
#: two sides agree numerically when they differ by less than this, relative
TOLERANCE = mpmath.mpf(10) ** (-30)

#: seed of the random instances (step n of derivation d uses DEFAULT_SEED + crc32(d.key) + n)
DEFAULT_SEED = 2024

RELATIONS = ("=", ">", ">=", "<", "<=", "~")


_PLAIN = [(r"\partial ", "d"), (r"\partial", "d"), (r"\sum_", "sum_"), (r"\delta", "delta"),
          (r"\ne ", "!= "), (r"\ne", "!="), (r"\ge", ">="), (r"\le", "<="),
          (r"\epsilon", "eps"), (r"\mathbf{1}", "1"), (r"^\top", "^T"), (r"\_", "_"), ("$", "")]


def plain(text: str) -> str:
    """A justification or title without its LaTeX markup, for terminals."""
    for macro, word in _PLAIN:
        text = text.replace(macro, word)
    text = re.sub(r"\\operatorname\{(\w+)\}", r"\1", text)  # \operatorname{log1p}: log1p
    return re.sub(r"\\([A-Za-z]+)", r"\1", text)  # any other macro: its name (\tau: tau)


class StepRejected(AssertionError):
    """A step of a derivation is not accepted (the base of every rejection).

    Examples
    --------
    >>> from derive import Derivation, Step, StepRejected, check, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> try:
    ...     check(Derivation("one", "Nothing to check", (), [Step(x, "start")]))
    ... except StepRejected as err:
    ...     print(err.number)
    1
    """

    def __init__(self, derivation: str, number: int, why: str, lhs, rhs, reason: str):
        self.derivation, self.number, self.why = derivation, number, why
        self.lhs, self.rhs, self.reason = lhs, rhs, reason
        super().__init__(
            f"'{plain(derivation)}', step {number} ({plain(why)}) rejected: {reason}\n"
            f"  previous: {sp.sstr(lhs)}\n  this:     {sp.sstr(rhs)}")


class StepFalse(StepRejected):
    """The step is false: an instance where the relation does not hold.

    ``counterexample`` maps names (``T``, free indices, vectors, ``previous``, ``this``)
    to the values of that instance.

    Examples
    --------
    >>> from derive import Derivation, Step, StepFalse, check, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> try:
    ...     check(Derivation("bad", "A wrong square", (), [Step((x + 1) ** 2, "definition"),
    ...                                                   Step(x ** 2 + 1, "forgot 2x")]))
    ... except StepFalse as err:
    ...     print(sorted(err.counterexample)[:3])
    ['N', 'T', 'previous']
    """

    def __init__(self, *args, counterexample: dict | None = None):
        super().__init__(*args)
        self.counterexample = counterexample or {}


class StepUnproved(StepRejected):
    """Every concrete instance held, but SymPy could not show the step symbolically.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Derivation, Step, StepUnproved, check, scalar
    >>> x = scalar("x", lambda rng: rng.uniform(0.1, 3.0), positive=True)
    >>> try:  # true for the sampled 0 < x < 3, but SymPy does not know x < pi
    ...     check(Derivation("acos", "acos(cos x)", (), [Step(sp.acos(sp.cos(x)), "start"),
    ...                                                  Step(x, "x in (0, pi)")]))
    ... except StepUnproved as err:
    ...     print("unproved after", err.instances, "instances")
    unproved after 12 instances
    """

    def __init__(self, *args, instances: int = 0, class_counts: tuple = ()):
        super().__init__(*args)
        self.instances, self.class_counts = instances, class_counts


class StepUndefined(StepRejected):
    """A side could not be evaluated on a concrete instance (or the instance not drawn)."""


class EvaluationError(ValueError):
    """An expression has no finite value on a concrete instance."""


class LemmaRefused(ValueError):
    """A cited lemma cannot be used as a rewrite (not an equality, or indices collide)."""


@dataclass(frozen=True)
class Step:
    """One link of a chain: ``previous <rel> expr`` because ``why``.

    ``rel`` is one of ``=``, ``>``, ``>=``, ``<``, ``<=`` or ``~`` (the previous
    expression rounds to the number ``expr``, written with at most ``decimals >= 0``
    decimals; checked numerically only). ``lemma`` cites already proved derivations
    (one, or a tuple applied in order): before the symbolic check, each one's start
    expression is replaced by its result wherever it occurs (sound once the lemma is
    checked, if it is a chain of equalities, and only under its assumptions).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Step
    >>> x = sp.Symbol("x", real=True)
    >>> Step(x + x, "collect", rel="=").rel
    '='
    """

    expr: sp.Expr
    why: str
    rel: str = "="
    decimals: int = 4
    lemma: Derivation | tuple | None = None

    def __post_init__(self):
        if self.rel not in RELATIONS:
            raise ValueError(f"unknown relation {self.rel!r}; use one of {RELATIONS}")
        if not isinstance(self.decimals, int) or self.decimals < 0:
            raise ValueError(f"decimals must be an integer >= 0, got {self.decimals!r}")

    @property
    def lemmas(self) -> tuple:
        if self.lemma is None:
            return ()
        return tuple(self.lemma) if isinstance(self.lemma, (tuple, list)) else (self.lemma,)


@dataclass
class Derivation:
    """A titled chain of steps under stated assumptions.

    ``steps[0]`` is the starting expression (its ``why`` says where it comes from);
    each later step is checked against the one before it, so a derivation needs at
    least two steps. ``matrix`` is the result in matrix notation (LaTeX) for the
    reports, ``min_classes`` the smallest T the statement makes sense for (e.g. 2 when
    it needs i != j).

    Examples
    --------
    >>> from derive import Derivation, Step, check, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> d = Derivation("square", "A square", (), [Step((x + 1) ** 2, "definition"),
    ...                                           Step(x ** 2 + 2 * x + 1, "expand")])
    >>> d.result
    x**2 + 2*x + 1
    """

    key: str
    title: str
    assumptions: Sequence[symbols.Assumption]
    steps: list[Step]
    matrix: str = ""
    min_classes: int = 1
    section: str = ""

    @property
    def result(self) -> sp.Expr:
        return self.steps[-1].expr

    @property
    def start(self) -> sp.Expr:
        return self.steps[0].expr

    @property
    def concrete(self) -> bool:
        """True for a worked example: T is a number and no free index or scalar remains
        (given vectors, stated by a Values assumption, may)."""
        def loose(expr):
            labels = {base.label for base in expr.atoms(sp.IndexedBase)}
            return {f for f in expr.free_symbols if not isinstance(f, Indexed) and f not in labels}
        return all(not loose(step.expr) for step in self.steps)


@dataclass
class StepCheck:
    """How one accepted step was checked: the normal form that closed it symbolically,
    and the concrete instances (at which T) it held on."""

    number: int
    why: str
    rel: str
    symbolic: str  # name of the normal form that closed the step
    instances: int  # concrete instances checked
    seconds: float
    class_counts: tuple = ()  # the T of those instances


@dataclass
class DerivationCheck:
    """What :func:`check` returns for an accepted derivation: each step's
    :class:`StepCheck`, the class counts T it was checked at, the time taken."""

    derivation: Derivation
    steps: list[StepCheck] = field(default_factory=list)
    seconds: float = 0.0
    class_counts: tuple = ()


# --------------------------------------------------------------------------- symbolic side
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
    for sym in expr.free_symbols & set(symbols.INDEX_RANGES):
        facts.update(_range_facts(sym, 1, symbols.INDEX_RANGES[sym]))
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
    """``total.doit()``, remembered: SymPy tries every summation algorithm it has on a sum
    it cannot close (a sum over a symbolic T), which takes tenths of a second, and the
    same sums recur in every step of a derivation and in every derivation of a layer.
    With :data:`MEMO_VARIABLE` set, also in the processes that share it (as SymPy's
    printed form: a value that does not read back the same is not used)."""
    path = _memo_path(("sum", sp.srepr(total))) if _only_sympy(total) else None
    if path is not None and os.path.exists(path):
        with open(path, encoding="utf-8") as memo:
            text = memo.read()
        try:
            value = eval(text, _sympy_names())  # noqa: S307 - SymPy's own srepr, written below
        except Exception:  # noqa: BLE001 - a name SymPy does not export: worked out here
            value = None
        if isinstance(value, sp.Basic) and sp.srepr(value) == text:
            return value
    value = total.doit()
    if path is not None and not value.atoms(sp.Dummy):
        _write(path, sp.srepr(value))
    return value


def _only_sympy(expr) -> bool:
    """Every node of ``expr`` is of a SymPy class: then so is its value, and its printed
    form reads back with SymPy's names alone (a class of a content's own, which could
    share a name with one of SymPy's, is never written or read)."""
    return all(type(node).__module__.startswith("sympy.") for node in sp.preorder_traversal(expr))


@functools.lru_cache(maxsize=1)
def _sympy_names() -> dict:
    names: dict = {}
    exec("from sympy import *", names)  # noqa: S102 - the names srepr writes
    return names


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
    return expr.doit()  # a Piecewise, a Product...: as SymPy does it


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
        ("simplify after assumptions",
         lambda e: canonical_bound(use(sp.simplify(use(sp.factor_terms(e)))))),
    ]
    for name, stage in stages:
        try:
            expr = stage(expr)
        except Exception:  # noqa: S112, BLE001 - a SymPy failure only skips this (optional) stage
            yield name, None
            continue
        yield name, expr


def _is_zero(expr) -> bool:
    return expr == 0 or expr.is_zero is True


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
    start, result = canonical_bound(lemma.start), canonical_bound(lemma.result)
    fixed = _assumption_symbols(lemma.assumptions)
    # every index of the start (also those a Derivative binds, d/da_i)
    indices = start.atoms(sp.Symbol) & set(symbols.INDEX_RANGES)
    free = sorted(indices - fixed, key=sp.default_sort_key)
    literal = indices & fixed
    wilds = {sym: sp.Wild(f"{sym.name}_", properties=[lambda e: e.is_Symbol and e.is_integer])
             for sym in free}
    pattern, template = start.xreplace(wilds), result.xreplace(wilds)

    def in_range(value, top, scope) -> bool:
        if value in symbols.INDEX_RANGES:
            return symbols.INDEX_RANGES[value] == top
        if value in scope:
            lo, hi = scope[value]
            return _provably_nonnegative(lo - 1) and _provably_nonnegative(top - hi)
        return False

    needed = _heads(pattern)
    rigid = not isinstance(pattern, (sp.Add, sp.Mul, sp.Pow, sp.Wild))

    def instance(e, scope):
        # what SymPy's match could never pair with the pattern (a sum of other vectors,
        # a log where the start is a sum) is not asked of it: match is slow, and it is
        # asked at every node of both sides
        if (rigid and type(e) is not type(pattern)) or not needed <= _heads(e):
            return None
        found = e.match(pattern)
        if found is None:
            return None
        values = [found[w] for w in wilds.values() if w in found]
        if len(set(values)) < len(values) or set(values) & literal:
            names = ", ".join(str(sym) for sym in sorted(indices, key=sp.default_sort_key))
            raise LemmaRefused(f"the lemma {lemma.key!r} would match its distinct indices "
                               f"{names} to the same index in {sp.sstr(e)}")
        if not all(in_range(found[w], symbols.INDEX_RANGES[sym], scope)
                   for sym, w in wilds.items() if w in found):
            return None
        return template.xreplace(found)

    def rewrite(e, scope):
        if not isinstance(e, sp.Basic) or e.is_Atom:
            return e
        if isinstance(e, ExprWithLimits):
            inner = {**scope, **{var: (lo, hi) for var, lo, hi in e.limits}}
            new = e.func(rewrite(e.function, inner),
                         *[(var, rewrite(lo, scope), rewrite(hi, scope)) for var, lo, hi in e.limits])
        else:
            args = [rewrite(arg, scope) for arg in e.args]
            new = e if all(x is y for x, y in zip(args, e.args)) else e.func(*args)
        replaced = instance(new, scope)
        return new if replaced is None else replaced

    return canonical_bound(rewrite(canonical_bound(expr), {}))


def _apply_lemmas(expr, lemmas):
    for lemma in lemmas:
        expr = apply_lemma(expr, lemma)
    return expr


def _index_pairs(expr) -> list[tuple]:
    """Pairs of free indices whose equality a side branches on (Eq conditions, deltas)."""
    pairs = set()
    free = set(symbols.INDEX_RANGES)
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
    key = ("shown", sp.srepr(prev), sp.srepr(this), rel, tuple(repr(h) for h in assumptions),
           tuple(fingerprint(lem) for lem in lemmas), min_classes,
           _depends_on([prev, this, *(e for lem in lemmas for e in (lem.start, lem.result))]))
    how = _remembered(key, _SHOWN)
    if how is None:
        how = _shown(prev, this, rel, assumptions, lemmas, min_classes)
        if how is not None:
            _remember(key, how, _SHOWN)
    return how


def _shown(prev, this, rel, assumptions, lemmas: tuple, min_classes: int) -> str | None:
    """:func:`symbolic_check`, not remembered."""
    prev, this = canonical_bound(prev), canonical_bound(this)
    left, right = _apply_lemmas(prev, lemmas), _apply_lemmas(this, lemmas)
    diff = left - right if rel in ("=", ">", ">=") else right - left
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
        case_assumptions = [_substitute_assumption(h, mapping) for h in assumptions]
        # indices distinct in this case stay distinct after an assumption's rewrite
        # (y_j -> delta_jc brings the delta back)
        case_assumptions += [symbols.Distinct(f"{x} != {y}", x, y) for x, y in {
            tuple(rel.args) for rel, value in facts.items()
            if isinstance(rel, KroneckerDelta) and value == 0}]
        # a lemma holds for every value of its symbols: identified indices are
        # identified in it (and in its assumptions) too
        case_lemmas = [dataclasses.replace(
            lem, steps=[dataclasses.replace(lem.steps[0], expr=lem.start.xreplace(mapping)),
                        dataclasses.replace(lem.steps[-1], expr=lem.result.xreplace(mapping))],
            assumptions=[_substitute_assumption(h, mapping) for h in lem.assumptions])
            for lem in lemmas]
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


def _nonempty(lo, hi, min_classes: int, at_least: int) -> bool:
    """hi - lo + 1 >= at_least for every T >= min_classes (and every N, B >= 1)."""
    shifted = sp.Symbol("T_extra", integer=True, nonnegative=True)
    count = (hi - lo + 1 - at_least).xreplace({symbols.CLASSES: shifted + max(1, min_classes)})
    return count == 0 or count.is_nonnegative is True


def sign(expr: sp.Expr, min_classes: int = 1) -> str | None:
    """A small sound sign prover: 'pos', 'nonneg' or None (unknown).

    Besides SymPy's own assumptions it knows that a sum of positive terms is positive
    when it is provably non-empty for every T >= ``min_classes`` (and non-negative
    when it may be empty), that squares are non-negative and that e^u - 1 > 0 for
    u > 0 (exp is increasing).
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
    if isinstance(expr, sp.Pow) and expr.exp.is_even:
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


# --------------------------------------------------------------------------- numeric side
def derivation_seed(derivation: Derivation, seed: int = DEFAULT_SEED) -> int:
    """The seed of a derivation's instances: fresh per derivation, the same every run."""
    return seed + zlib.crc32(derivation.key.encode())


def class_counts(derivation: Derivation, seed: int = DEFAULT_SEED) -> tuple:
    """The class counts T a derivation is checked at.

    A concrete derivation (T is a number) is checked at ``max(1, min_classes)``; any
    other at :data:`CLASS_COUNTS` from ``min_classes`` up, ``min_classes``,
    ``min_classes + 1`` and one more T drawn (from the derivation's seed) up to
    ``max(LARGEST_RANDOM_T, min_classes + 8)``.
    """
    low = max(1, derivation.min_classes)
    if derivation.concrete:
        return (low,)
    counts = {n for n in CLASS_COUNTS if n >= low} | {low, low + 1}
    rng = np.random.default_rng(derivation_seed(derivation, seed))
    choices = [n for n in range(low, max(LARGEST_RANDOM_T, low + 8) + 1) if n not in counts]
    counts.add(int(rng.choice(choices)))
    return tuple(sorted(counts))


def _instances(derivation: Derivation, seed: int, counts: tuple):
    """Random instances satisfying the assumptions: SAMPLES_PER_T per class count.

    The content's symbols are drawn by its :class:`symbols.Instance`, declared ones
    (:func:`symbols.scalar`, :func:`symbols.vector`) by their samplers, then every
    assumption adjusts the instance. Yields (instance, None) or (None, reason) when the
    assumptions cannot be drawn or a symbol has no sampler."""
    rng = np.random.default_rng(seed)
    exprs = [step.expr for step in derivation.steps]
    labels = _labels(exprs)
    for n_classes in counts:
        for _ in range(SAMPLES_PER_T):
            env = symbols.new_instance(rng, n_classes, int(rng.integers(1, 4)))
            problem = _complete(env, derivation, exprs, rng, labels)
            yield (None, problem) if problem else (env, None)
            if problem:
                return
    # every pattern of equal and distinct free class indices once, at the largest T: a
    # formula that branches on j = c or c = k is then checked on each branch for sure,
    # not only when the random draws happen to hit it
    indices = _free_class_indices(derivation)
    n_classes = max(counts)
    if 2 <= len(indices) <= MAX_PATTERN_INDICES and n_classes >= len(indices):
        for blocks in _set_partitions(indices):
            env = symbols.new_instance(rng, n_classes, int(rng.integers(1, 4)))
            values = rng.choice(np.arange(1, n_classes + 1), size=len(blocks), replace=False)
            for block, value in zip(blocks, values):
                for sym in block:
                    env[sym] = int(value)
            problem = _complete(env, derivation, exprs, rng, labels)
            yield (None, problem) if problem else (env, None)
            if problem:
                return


def _labels(exprs) -> list:
    """The labels of the vectors (``a`` of ``a[j]``), which are real symbols too, in the
    order they are given values."""
    return sorted({sym for e in exprs for sym in e.free_symbols
                   if isinstance(sym, sp.Symbol) and not sym.is_integer}, key=lambda sym: sym.name)


def _complete(env, derivation: Derivation, exprs: list, rng, labels: list) -> str | None:
    """Draw the declared symbols, let every assumption adjust ``env``; the reason the
    instance cannot be completed, or None."""
    symbols.draw_declared(env, exprs, rng)
    try:
        for assumption in derivation.assumptions:
            assumption.sample(env)
    except Exception as err:  # noqa: BLE001 - reported as a rejection
        return f"the assumptions cannot be drawn at T={env.T}: {err} (raise min_classes?)"
    lacking = symbols.missing(env, exprs)
    if lacking:
        return symbols.how_to_declare(lacking[0])
    # the labels of the vectors (a of a[j]) are real symbols too: each gets a value as it
    # always has (never used), so the instances stay the ones every derivation has been
    # checked on (the random stream is unchanged)
    for sym in (sym for sym in labels if sym not in env):
        env[sym] = mpmath.mpf(rng.normal(0.0, 3.0) if not sym.is_nonnegative else rng.uniform(0.0, 4.0))
    return None


#: index patterns are enumerated for at most this many free class indices (Bell(4) = 15)
MAX_PATTERN_INDICES = 4


def _free_class_indices(derivation: Derivation) -> list:
    """The free indices ranging over the classes in any step (sorted by name)."""
    found = set()
    for step in derivation.steps:
        found |= {sym for sym in step.expr.free_symbols if symbols.INDEX_RANGES.get(sym) == symbols.CLASSES}
    return sorted(found, key=lambda sym: sym.name)


def _set_partitions(items: list):
    """Every partition of ``items`` into blocks (lists), each once."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for blocks in _set_partitions(rest):
        yield [[first], *blocks]
        for n in range(len(blocks)):
            yield [*blocks[:n], [first, *blocks[n]], *blocks[n + 1:]]


_MP_FUNCTIONS = {
    sp.exp: mpmath.exp, sp.log: mpmath.log, log1p: mpmath.log1p, sp.Abs: abs,
    sp.sin: mpmath.sin, sp.cos: mpmath.cos, sp.tanh: mpmath.tanh, sp.sqrt: mpmath.sqrt,
    sp.sign: mpmath.sign,
}


def _as_int(value, what) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, mpmath.mpc) or value != mpmath.nint(value):
        raise EvaluationError(f"{what} is {mpmath.nstr(value, 8)}, not an integer")
    return int(mpmath.nint(value))


@functools.lru_cache(maxsize=1 << 16)
def _free_symbols(expr) -> frozenset:
    """``expr.free_symbols``, which SymPy recomputes on every call (a walk of the whole
    tree); the evaluator asks for it on every node, for every instance."""
    return frozenset(expr.free_symbols)


class _Evaluator:
    """Evaluates a SymPy expression on a concrete instance with mpmath.

    Its own semantics, independent of SymPy's algorithms: a Sum is a loop over its
    limits (SymPy's convention for reversed limits), an Indexed a look-up in the
    instance, a Piecewise picks its first true branch, and a Derivative is taken by
    ``mpmath.diff`` of its body with the variable's value moved."""

    def __init__(self, env: symbols.Instance):
        self.env = env
        self.moved = {}  # values that mpmath.diff has moved
        self.memo = {}

    def __call__(self, expr):
        return self.ev(expr, {})

    def value_of(self, key):
        if key in self.moved:
            return self.moved[key]
        if key in self.env:
            return self.env[key]
        raise EvaluationError(f"no value for {sp.sstr(key)} in a T={self.env.T}, N={self.env.N} "
                              "instance (an index outside its range?)")

    def ev(self, expr, scope):
        if scope:  # the summation variables the value depends on
            free = _free_symbols(expr)
            key = (expr, tuple(sorted(((s, v) for s, v in scope.items() if s in free),
                                      key=lambda item: item[0].name)))
        else:
            key = (expr, ())
        if key in self.memo:
            return self.memo[key]
        value = self._ev(expr, scope)
        if not mpmath.isfinite(value):
            raise EvaluationError(f"{sp.sstr(expr)} is {value}")
        self.memo[key] = value
        return value

    def index(self, expr, scope) -> int:
        return _as_int(self.ev(expr, scope), f"the index {sp.sstr(expr)}")

    def key_of(self, item: Indexed, scope):
        idx = tuple(self.index(i, scope) for i in item.indices)
        return symbols.component(item.base, idx)

    def _ev(self, expr, scope):
        if expr.is_Integer:
            return mpmath.mpf(int(expr))
        if expr.is_Rational:
            return mpmath.mpf(expr.p) / expr.q
        if expr.is_Float:
            return mpmath.mpf(sp.Rational(str(expr)).p) / sp.Rational(str(expr)).q
        if expr is sp.I:
            return mpmath.mpc(0, 1)
        if isinstance(expr, sp.NumberSymbol):
            return mpmath.mpmathify(expr.evalf(mpmath.mp.dps + 10))
        if isinstance(expr, sp.Symbol):
            if expr in scope:
                return mpmath.mpf(scope[expr])
            return mpmath.mpmathify(self.value_of(expr))
        if isinstance(expr, Indexed):
            return mpmath.mpmathify(self.value_of(self.key_of(expr, scope)))
        if isinstance(expr, sp.Add):
            return mpmath.fsum(self.ev(arg, scope) for arg in expr.args)
        if isinstance(expr, sp.Mul):
            result = mpmath.mpf(1)
            for arg in expr.args:
                result *= self.ev(arg, scope)
            return result
        if isinstance(expr, sp.Pow):
            base, power = self.ev(expr.base, scope), self.ev(expr.exp, scope)
            if base == 0 and mpmath.re(power) <= 0:
                raise EvaluationError(f"{sp.sstr(expr)}: a division by zero")
            return base ** power
        if isinstance(expr, Sum):
            return self.sum(expr.function, list(expr.limits), scope)
        if isinstance(expr, KroneckerDelta):
            x, y = (self.ev(arg, scope) for arg in expr.args)
            return mpmath.mpf(1 if x == y else 0)
        if isinstance(expr, Piecewise):
            for branch, cond in expr.args:
                if self.truth(cond, scope):
                    return self.ev(branch, scope)
            raise EvaluationError(f"no branch of {sp.sstr(expr)} applies")
        if isinstance(expr, Derivative):
            return self.derivative(expr, scope)
        if isinstance(expr, sp.log) and self.ev(expr.args[0], scope) == 0:
            raise EvaluationError(f"{sp.sstr(expr)}: the logarithm of 0")
        func = _MP_FUNCTIONS.get(expr.func)
        if func is not None:
            return func(*(self.ev(arg, scope) for arg in expr.args))
        if isinstance(expr, sp.Function):
            args = [self.ev(arg, scope) for arg in expr.args]
            number = expr.func(*(sp.Float(x, mpmath.mp.dps) for x in args)).evalf(mpmath.mp.dps)
            if not number.is_number:
                raise EvaluationError(f"cannot evaluate {sp.sstr(expr)}")
            return mpmath.mpmathify(complex(number) if number.has(sp.I) else number._to_mpmath(mpmath.mp.prec))
        raise EvaluationError(f"cannot evaluate {type(expr).__name__} {sp.sstr(expr)}")

    def truth(self, cond, scope) -> bool:
        if cond is sp.true or cond is True:
            return True
        if cond is sp.false or cond is False:
            return False
        if isinstance(cond, sp.And):
            return all(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Or):
            return any(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Not):
            return not self.truth(cond.args[0], scope)
        if isinstance(cond, sp.core.relational.Relational):
            x, y = self.ev(cond.lhs, scope), self.ev(cond.rhs, scope)
            ops = {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}
            return ops[cond.rel_op]
        raise EvaluationError(f"cannot decide the condition {sp.sstr(cond)}")

    def sum(self, body, limits, scope):
        if not limits:
            return self.ev(body, scope)
        (var, lo, hi), inner = limits[-1], limits[:-1]  # the outermost limit is last
        lo, hi = self.index(lo, scope), self.index(hi, scope)
        sign_ = 1
        if hi < lo:  # SymPy's (Karr's) convention: sum_{lo}^{hi} = -sum_{hi+1}^{lo-1}
            lo, hi, sign_ = hi + 1, lo - 1, -1
        total = mpmath.fsum(self.sum(body, inner, {**scope, var: n}) for n in range(lo, hi + 1))
        return sign_ * total

    def derivative(self, expr, scope):
        counts = {}
        for var, count in expr.variable_count:
            if isinstance(var, Indexed):
                where = self.key_of(var, scope)
            elif isinstance(var, sp.Symbol) and var not in scope:
                where = var
            else:
                raise EvaluationError(f"cannot differentiate with respect to {sp.sstr(var)}")
            counts[where] = counts.get(where, 0) + count
        keys = list(counts)
        points = [mpmath.mpmathify(self.value_of(where)) for where in keys]
        body = expr.expr

        def f(*values):
            saved, memo = dict(self.moved), self.memo
            self.moved.update(zip(keys, values))
            self.memo = {}
            try:
                return self.ev(body, scope)
            finally:
                self.moved, self.memo = saved, memo
        orders = [counts[where] for where in keys]
        if len(keys) == 1:
            return mpmath.diff(f, points[0], orders[0])
        return mpmath.diff(f, points, orders)


def evaluator(env: symbols.Instance) -> _Evaluator:
    """An evaluator for several expressions on one instance (pass it to
    :func:`evaluate`): what they have in common (a sum over the classes, say) is
    evaluated once. Only while ``env`` keeps the values it had: a value changed after an
    evaluation would not be seen (values added are: a missing one was never remembered)."""
    return _Evaluator(env)


def evaluate(expr: sp.Expr, env: symbols.Instance, using: _Evaluator | None = None):
    """``expr`` on a concrete instance, with mpmath at :data:`DIGITS` digits
    (``using``: an :func:`evaluator` of ``env`` shared with other expressions).

    Raises :class:`EvaluationError` when it has no finite value there (a missing
    component such as a[0] or y[T + 1], log 0, a division by zero)."""
    with mpmath.workdps(DIGITS):
        try:
            return +(using if using is not None else _Evaluator(env))(expr)
        except EvaluationError:
            raise
        except Exception as err:  # whatever fails, the instance has no value
            raise EvaluationError(f"{type(err).__name__}: {err}") from err


def _holds(lhs, rhs, rel) -> bool:
    with mpmath.workdps(DIGITS):
        scale = TOLERANCE * (1 + max(abs(lhs), abs(rhs)))
        if rel == "=":
            return abs(lhs - rhs) <= scale
        if isinstance(lhs, mpmath.mpc) or isinstance(rhs, mpmath.mpc):
            if abs(mpmath.im(lhs)) > scale or abs(mpmath.im(rhs)) > scale:
                return False  # an order between complex numbers: false
            lhs, rhs = mpmath.re(lhs), mpmath.re(rhs)
        if rel == ">":
            return lhs > rhs + scale
        if rel == ">=":
            return lhs >= rhs - scale
        if rel == "<":
            return lhs < rhs - scale
        if rel == "<=":
            return lhs <= rhs + scale
    raise ValueError(rel)


@dataclass
class NumericFailure:
    """Why the numeric half rejected a step: ``kind`` is 'false' or 'undefined'."""

    kind: str
    message: str
    counterexample: dict = field(default_factory=dict)

    def __str__(self):
        return self.message


def _show(value) -> str:
    return mpmath.nstr(value, 15) if isinstance(value, (mpmath.mpf, mpmath.mpc)) else str(value)


def _describe(env: symbols.Instance, exprs) -> dict:
    """The values of an instance that the expressions use: T, N, free indices, scalars,
    and the vectors in full."""
    shown = {"T": env.T, "N": env.N}
    free = set().union(*(e.free_symbols for e in exprs))
    for sym in sorted((f for f in free if isinstance(f, sp.Symbol)), key=lambda s: s.name):
        if sym in env and sym not in (symbols.CLASSES, symbols.FEATURES):
            shown[sym.name] = env[sym]
    bases = sorted({item.base for e in exprs for item in e.atoms(Indexed)}, key=sp.default_sort_key)
    for base in bases:
        entries = [(key, val) for key, val in env.items()
                   if isinstance(key, Indexed) and key.base == base]
        if entries:
            shown[str(base)] = [val for _, val in sorted(entries, key=lambda kv: [int(i) for i in kv[0].indices])]
    return shown


def _format(shown: dict) -> str:
    parts = []
    for name, value in shown.items():
        if isinstance(value, list):
            parts.append(f"{name} = [{', '.join(mpmath.nstr(v, 6) for v in value)}]")
        else:
            parts.append(f"{name} = {_show(value)}")
    return ", ".join(parts)


def _decimal(number) -> str:
    """A number as the decimal it was written as: 0.66, not 0.660000000000000."""
    text = sp.sstr(number)
    if number.is_Float and "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _fixed(scaled: int, decimals: int) -> str:
    """The integer ``scaled`` / 10^decimals written with ``decimals`` decimals."""
    sign_, digits = ("-" if scaled < 0 else ""), str(abs(scaled)).rjust(decimals + 1, "0")
    return sign_ + (digits[:-decimals] + "." + digits[-decimals:] if decimals else digits)


def _rounding_failure(step: Step) -> str | None:
    """Why ``step.expr`` is not a number written with at most ``step.decimals`` decimals."""
    stated = step.expr
    if not (isinstance(stated, sp.Number) and stated.is_real):
        return f"a rounded value must be a number, not {sp.sstr(stated)}"
    exact = sp.Rational(str(stated)) if stated.is_Float else sp.Rational(stated)
    if not (exact * 10 ** step.decimals).is_integer:
        return f"{_decimal(stated)} has more than {step.decimals} decimals"
    return None


def numeric_check(prev, step: Step, derivation: Derivation, seed: int,
                  counts: tuple | None = None) -> tuple[int, NumericFailure | None]:
    """Check ``prev <rel> step.expr`` on random instances; (count, failure or None).

    For ``~`` the previous value, rounded to ``step.decimals`` decimals, must equal the
    stated number exactly."""
    this, rel = step.expr, step.rel
    counts = class_counts(derivation) if counts is None else counts
    if rel == "~":
        bad = _rounding_failure(step)
        if bad:
            return 0, NumericFailure("false", bad)
        target = (sp.Rational(str(this)) if this.is_Float else sp.Rational(this)) * 10 ** step.decimals
    count = 0
    for env, trouble in _instances(derivation, seed, counts):
        if trouble:
            return count, NumericFailure("undefined", trouble)
        sides, shared = [], _Evaluator(env)  # what both sides hold is evaluated once
        for name, expr in (("previous", prev), ("this", this)):
            try:
                sides.append(evaluate(expr, env, shared))
            except EvaluationError as err:
                where = _format(_describe(env, [expr]))
                return count, NumericFailure(
                    "undefined", f"the {name} expression cannot be evaluated on the instance "
                    f"{where}: {err}", _describe(env, [expr]))
        lhs, rhs = sides
        count += 1
        if rel == "~":
            with mpmath.workdps(DIGITS):
                ok = (not isinstance(lhs, mpmath.mpc)
                      and mpmath.nint(lhs * mpmath.mpf(10) ** step.decimals) == int(target))
            if not ok:
                with mpmath.workdps(DIGITS):
                    rounded = _fixed(int(mpmath.nint(mpmath.re(lhs) * mpmath.mpf(10) ** step.decimals)),
                                     step.decimals)
                return count, NumericFailure(
                    "false", f"{mpmath.nstr(lhs, 15)} rounds to {rounded} at {step.decimals} "
                    f"decimals, not to {_decimal(this)}",
                    {**_describe(env, [prev]), "previous": lhs, "this": this})
            continue
        if not _holds(lhs, rhs, rel):
            shown = _describe(env, [prev, this])
            return count, NumericFailure(
                "false", f"the concrete check fails on the instance {_format(shown)}: "
                f"previous = {_show(lhs)} {rel} this = {_show(rhs)} is false",
                {**shown, "previous": lhs, "this": rhs})
    return count, None


# --------------------------------------------------------------------------- driver
_LEMMAS_PROVED: set = set()
#: links accepted in this process, keyed by everything their check depends on (the
#: assumptions, min_classes, class counts, seed, both sides, relation, decimals, lemmas)
_LINKS_PROVED: dict = {}


#: environment variable naming a directory where accepted links are remembered for
#: every process that shares it (the test suite sets it for its session only; a link
#: is remembered only after both halves passed, keyed by everything its check depends
#: on, so a changed or mutated step is never found there)
MEMO_VARIABLE = "DERIVE_PROOF_MEMO"


#: steps SymPy has shown, keyed by everything the symbolic half depends on (both sides,
#: the relation, the assumptions, min_classes, the cited lemmas, the ranges of the
#: indices): the name of the normal form that showed it. No seed: the same step in
#: another derivation (or under another key) is the same symbolic question. Only a
#: step shown is remembered, and the numeric half runs on every derivation's own
#: instances still.
_SHOWN: dict = {}


def _memo_path(key) -> str | None:
    folder = os.environ.get(MEMO_VARIABLE)
    if not folder:
        return None
    kind = key[0] if key[0] in ("shown", "sum") else "link"  # a step shown, a sum, a link
    return os.path.join(folder, f"{kind}-{hashlib.sha256(repr(key).encode()).hexdigest()}")


def _remembered(key, memory: dict | None = None):
    """What was remembered for ``key`` (a link accepted: (how, count); a step shown: how)
    in this process or a sharing one; else None."""
    memory = _LINKS_PROVED if memory is None else memory
    if key in memory:
        return memory[key]
    path = _memo_path(key)
    if path is None or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as memo:
        text = memo.read()
    if memory is _LINKS_PROVED:
        how, _, count = text.rpartition("\n")
        memory[key] = (how, int(count))
    else:
        memory[key] = text
    return memory[key]


def _remember(key, how: str, count_or_memory: int | dict = 0) -> None:
    if isinstance(count_or_memory, dict):
        memory, text = count_or_memory, how
        memory[key] = how
    else:
        memory, text = _LINKS_PROVED, f"{how}\n{count_or_memory}"
        memory[key] = (how, count_or_memory)
    path = _memo_path(key)
    if path is not None:
        _write(path, text)


def _write(path: str, text: str) -> None:
    spare = f"{path}.{os.getpid()}"
    with open(spare, "w", encoding="utf-8") as memo:
        memo.write(text)
    os.replace(spare, path)  # whole or absent for a reader in another process


def _sampler_print(draw) -> tuple:
    """What a declared sampler computes, as far as its code shows it: its bytecode,
    constants, names and captured numbers (not its address or the module it is written
    in, so that the same lambda written in two processes is the same sampler)."""
    code = getattr(draw, "__code__", None)
    if code is None:
        return (repr(draw),)
    cells = tuple(repr(cell.cell_contents) if isinstance(cell.cell_contents, (int, float, str, tuple))
                  else type(cell.cell_contents).__name__ for cell in (draw.__closure__ or ()))
    return (code.co_code, repr(code.co_consts), code.co_names, repr(draw.__defaults__), cells)


def _depends_on(exprs) -> tuple:
    """What a check of ``exprs`` depends on beyond their text: the range of every index
    they hold (an index ranges over 1..T, or 1..N: facts the symbolic half uses) and the
    sampler of every declared symbol they use (what the numeric half draws)."""
    found = set()
    for expr in exprs:
        found |= expr.atoms(sp.Symbol)
    ranges = tuple(sorted((sp.srepr(sym), sp.srepr(symbols.INDEX_RANGES[sym]))
                          for sym in found if sym in symbols.INDEX_RANGES))
    drawn = tuple((sp.srepr(atom), _sampler_print(symbols.sampler(atom)))
                  for atom in symbols._used(exprs) if symbols.sampler(atom) is not None)
    return ranges, drawn


def fingerprint(derivation: Derivation) -> tuple:
    """Everything a check depends on: key, assumptions, min_classes and every step
    (expression, relation, decimals, cited lemmas)."""
    return (derivation.key, tuple(repr(h) for h in derivation.assumptions), derivation.min_classes,
            tuple((sp.srepr(step.expr), step.rel, step.decimals,
                   tuple(fingerprint(lem) for lem in step.lemmas)) for step in derivation.steps))


def _check_lemma(lemma: Derivation, seed: int, numeric: bool) -> None:
    """Check a cited lemma once per process (keyed by its whole content)."""
    key = (fingerprint(lemma), seed, numeric)
    if key not in _LEMMAS_PROVED:
        check(lemma, seed=seed, numeric=numeric)
        _LEMMAS_PROVED.add(key)


def _rejection(title, number, step, prev, cls, reason, **extra):
    return cls(title, number, step.why, prev, step.expr, reason, **extra)


def _check_lemmas(derivation: Derivation, this: Step, reject, seed: int, numeric: bool) -> None:
    """The lemmas a step cites: each makes no assumption the derivation does not (bar the
    implied ones), is a chain of equalities, and is checked itself (once per process)."""
    for lemma in this.lemmas:
        missing = [h.text for h in lemma.assumptions
                   if h not in derivation.assumptions and not symbols.implied(h)]
        if missing:
            raise reject(StepRejected, f"the lemma {lemma.key!r} needs assumptions this "
                                       f"derivation does not make: {'; '.join(missing)}")
        try:
            _only_equalities(lemma)
        except LemmaRefused as err:
            raise reject(StepRejected, str(err)) from None
        _check_lemma(lemma, seed, numeric)


def _symbolic_half(derivation: Derivation, prev, this: Step, reject, count: int, counts: tuple,
                   numeric: bool) -> str:
    """The name of the normal form that shows the step, or a :class:`StepUnproved`."""
    if this.rel == "~":
        return "rounding (numeric only)"
    crash = ""
    try:
        how = symbolic_check(prev, this.expr, this.rel, derivation.assumptions,
                             this.lemmas, derivation.min_classes)
    except LemmaRefused as err:
        raise reject(StepRejected, str(err)) from None
    except Exception as err:  # noqa: BLE001 - SymPy failed: the step is not shown
        how, crash = None, f" (SymPy failed: {type(err).__name__}: {err})"
    if how is None:
        held = (f"it held on all {count} concrete instances (T in "
                f"{{{','.join(map(str, counts))}}}), but" if numeric else
                "the numeric check was not run, and")
        raise reject(StepUnproved, f"unproved: {held} SymPy could not show 'previous "
                     f"{this.rel} this' under the assumptions{crash}; split it into "
                     "smaller steps", instances=count, class_counts=counts if numeric else ())
    return how


def check(derivation: Derivation, seed: int = DEFAULT_SEED, numeric: bool = True) -> DerivationCheck:
    """Check every step of ``derivation``; raise a :class:`StepRejected` on the first bad one.

    The order per step: the cited lemmas (checked, equalities, assumptions made here
    too), the numeric half (a failure: :class:`StepFalse` or :class:`StepUndefined`),
    then the symbolic half (a failure after a passing numeric half:
    :class:`StepUnproved`).

    Examples
    --------
    >>> from derive import Derivation, Step, check, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> report = check(Derivation("square", "A square", (), [
    ...     Step((x + 1) ** 2, "definition"), Step(x ** 2 + 2 * x + 1, "expand")]))
    >>> report.steps[0].instances > 0
    True
    """
    counts = class_counts(derivation, seed)
    report = DerivationCheck(derivation, class_counts=counts)
    start = time.perf_counter()
    steps = derivation.steps
    title = derivation.title
    if len(steps) < 2:
        first = steps[0].expr if steps else sp.Integer(0)
        raise StepRejected(title, len(steps), steps[0].why if steps else "", first, first,
                           "nothing is checked: a derivation needs a start and at least one step")
    base = derivation_seed(derivation, seed)
    expected = len(counts) * SAMPLES_PER_T
    context = (tuple(repr(h) for h in derivation.assumptions), derivation.min_classes, counts, numeric)
    for number in range(1, len(steps)):
        prev, this = steps[number - 1].expr, steps[number]
        tic = time.perf_counter()
        link = (context, base + number, sp.srepr(prev), sp.srepr(this.expr), this.rel,
                this.decimals, tuple(fingerprint(lemma) for lemma in this.lemmas),
                _depends_on([prev, this.expr]))
        remembered = _remembered(link)  # the very same link, checked before
        if remembered is not None:
            how, count = remembered
            report.steps.append(StepCheck(number, this.why, this.rel, how, count,
                                           time.perf_counter() - tic, counts if numeric else ()))
            continue

        reject = functools.partial(_rejection, title, number, this, prev)
        _check_lemmas(derivation, this, reject, seed, numeric)
        count = 0
        if numeric:
            count, failure = numeric_check(prev, this, derivation, base + number, counts)
            if failure is not None and failure.kind == "false":
                raise reject(StepFalse, failure.message, counterexample=failure.counterexample)
            if failure is not None:
                raise reject(StepUndefined, failure.message)
            if count < expected:
                raise reject(StepUndefined, f"checked on {count} instances of the {expected} required")
        how = _symbolic_half(derivation, prev, this, reject, count, counts, numeric)
        _remember(link, how, count)
        report.steps.append(StepCheck(number, this.why, this.rel, how, count,
                                       time.perf_counter() - tic, counts if numeric else ()))
    report.seconds = time.perf_counter() - start
    return report
