"""The proof engine: derivations as chains of checked steps.

A :class:`Derivation` is a title, its assumptions and a chain of :class:`Step` s. Each
step is an expression, the relation it has to the previous one (``=`` by default, or
``>``, ``>=``, ``<``, ``<=``, or ``~`` for a rounded number) and a one-line
justification. What "checked" means, exactly:

(a) **Numeric half.** Both sides are evaluated with mpmath at :data:`DIGITS` significant
    digits on :data:`SAMPLES_PER_T` random instances for every class count T of
    :func:`class_counts` (1, 2, 3, 5, 8 from ``min_classes`` up, plus ``min_classes``,
    ``min_classes + 1`` and one random T up to at least 12, with N and the content's
    other sizes from 1..3) and on the wide instances (one T from 13..17 with N and the
    other sizes in the tens, one T from 24..30; most free indices past the regular T),
    drawn from a seed that is a function of the derivation's key, so every run checks
    the same instances. The values satisfy the assumptions and nothing more (a vector
    that no assumption normalises is not normalised; half of the free indices copy an
    earlier one, so coincidences such as j = c are common; a scalar no assumption
    draws is drawn from its SymPy assumptions), and every instance is checked against
    them: each assumption's ``condition`` must be true there and its rewrite must keep
    the value of both sides (a derivation whose instances never satisfy its
    assumptions is vacuous, and rejected). The evaluator is the engine's own: sums
    are loops, indices are looked up, and every ``Derivative`` is evaluated by
    ``mpmath.diff`` (finite differences at raised precision) -- never by SymPy, so
    SymPy's index calculus cannot fool it. A sum that cancels below what the working
    precision can tell is evaluated again with the digits it needs (up to
    :data:`MAX_DIGITS`), so a value that "held" never cancelled. A step must hold on
    every instance; an instance that cannot be evaluated (a missing component, log 0,
    a division by zero, e^x beyond :data:`LARGEST_EXPONENT`, longer than
    :data:`INSTANCE_SECONDS`) is a rejection too, with the reason.
(b) **Closed numbers.** Between two closed numbers (no free symbol once the
    assumptions fix the given vectors: ``Values`` to the exact rationals of their
    text) the relation is decided by interval arithmetic (``mpmath.iv``) at rising
    precision (:data:`CLOSED_PRECISIONS`), not within a tolerance. A ``~`` step
    (rounding) needs such a closed ``previous`` (or one SymPy shows constant); the
    stated number must have at most ``decimals`` decimals and equal the exact value
    rounded, decided on intervals, never at a precision where the value cancelled.
(c) **Symbolic half.** SymPy shows the relation for symbolic T under the assumptions
    (:func:`symbolic_check`): successively stronger normal forms of the difference,
    and, where the sides branch on index equalities (Piecewise, Kronecker deltas of
    free indices), the same for every case (tried before SymPy's simplify of the
    whole difference, the slowest form). Summation variables are renamed to symbols
    that are integers and nothing else; each sum's range is used inside its own body
    only; ``log`` products are split only where the factors are provably positive; a
    square is non-negative only for a base SymPy shows real; a sum is positive only if
    it is provably non-empty for every T >= ``min_classes``. SymPy is not trusted on an
    index expression other than +-index + constant (:func:`untrusted_index`): such a
    step is shown only by algebra that leaves the indexed terms alone.

A step is accepted only when both halves pass. A cited lemma must have been checked
itself, consist of equalities only, and hold for every T the citing derivation claims
(its ``min_classes`` at most the derivation's); it rewrites its start expression into
its result, its free indices matching any distinct indices (those its assumptions name
stay fixed).

What the numeric half cannot see: sizes beyond those sampled (T past 30, N and other
sizes past 16), instances the random draw does not hit (an error confined to a thin set
of values, or to a coincidence of indices the draw misses), differences below the
tolerance (:data:`TOLERANCE`, relative) between values that are not closed numbers, an
assumption's rewrite that changes no value on the drawn instances, and anything about
floating point: both halves are about exact arithmetic, so numerical stability is
measured by verification, not proved here. That is why the symbolic half is still
required, and why verification exists.

What is remembered, and what the memo trusts: a link accepted once in a process is not
checked again when everything that decided it recurs (:data:`_LINKS_PROVED`, keyed by
:func:`_link_key`: the sides, relation, min_classes, class counts, seed, the cited
lemmas, what the assumptions, the samplers and the instance class *do*
(:func:`behaviour`: a callable's bytecode, constants, captured values and every global
it reads), the index ranges and the engine's settings); a link that depends on
something whose behaviour cannot be known is never remembered. Likewise a step SymPy
has shown is not shown again (:data:`_SHOWN`; the numeric half still runs on each
derivation's own instances). With :data:`MEMO_VARIABLE` set to a directory and
:data:`MEMO_KEY_VARIABLE` holding a secret, both are shared by the processes that hold
both (the test suite's session): every entry is JSON data (a sum's value as SymPy's
srepr, read by :func:`read_srepr`, which builds SymPy's own classes from literals and
runs nothing), read only if its HMAC under the secret is right and it names this
engine's version (:data:`ENGINE_VERSION`). The memo trusts whoever holds the secret.

A rejected step raises a :class:`StepRejected`: :class:`StepFalse` with a
counterexample (T, the values, both sides), :class:`StepUnproved` when every instance
held but SymPy could not show it (saying where it held), :class:`StepUndefined` when an
instance could not be evaluated or does not satisfy the assumptions, :class:`StepVacuous`
when none does. Each names the derivation, the step number, the justification and both
sides.
"""
from __future__ import annotations

import ast
import builtins
import dataclasses
import dis
import fractions
import functools
import hashlib
import hmac
import itertools
import json
import os
import re
import time
import types
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
#: the wide class counts: one T drawn from each range (past the regular counts), one
#: instance each, with N and the content's other sizes (a batch B) drawn from the
#: range of WIDE_SIZES at the same place: in the tens at the first, 1..3 at the second
#: (the cost of a sum over B x T x N stays that of the first)
WIDE_CLASSES = ((13, 17), (24, 30))
WIDE_SIZES = ((10, 16), (1, 3))
#: instances per wide class count
WIDE_SAMPLES = 1
#: an instance whose evaluation takes longer than this (seconds) is undefined
INSTANCE_SECONDS = 20.0
#: the most digits an evaluation that cancels is repeated at
MAX_DIGITS = 2000

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
    unproved after 14 instances
    """

    def __init__(self, *args, instances: int = 0, class_counts: tuple = ()):
        super().__init__(*args)
        self.instances, self.class_counts = instances, class_counts


class StepUndefined(StepRejected):
    """A side could not be evaluated on a concrete instance (or the instance not drawn,
    or it does not satisfy the assumptions)."""


class StepVacuous(StepRejected):
    """No instance satisfies the derivation's assumptions: what they imply proves nothing.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Assumption, Derivation, Step, check
    >>> from derive.engine import StepVacuous
    >>> from derive.symbols import CLASSES as T
    >>> never = Assumption("T > 40", condition=T > 40)  # no instance has T > 30
    >>> try:
    ...     check(Derivation("big", "T above 40", (never,), [Step(sp.floor(T / 41), "start"),
    ...                                                       Step(sp.Integer(1), "T > 40")]))
    ... except StepVacuous as err:
    ...     print(str(err).split(": ")[1])
    vacuous
    """


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
    key = sp.srepr(total) if _only_sympy(total) else None
    text = memo_read("sum", key, lambda value: isinstance(value, str)) if key is not None else None
    if text is not None:
        try:
            value = read_srepr(text)  # data: SymPy's classes and literals only, never run
        except Exception:  # noqa: BLE001 - not a form read back here: worked out again
            value = None
        if isinstance(value, sp.Basic) and sp.srepr(value) == text:
            return value
    value = total.doit()
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
    try:
        key = (sp.srepr(prev), sp.srepr(this), rel, _assumptions_behaviour(assumptions),
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
    sizes = {size for size in symbols.INDEX_RANGES.values() if isinstance(size, sp.Symbol)}
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


# --------------------------------------------------------------------------- numeric side
def derivation_seed(derivation: Derivation, seed: int = DEFAULT_SEED) -> int:
    """The seed of a derivation's instances: fresh per derivation, the same every run."""
    return seed + zlib.crc32(derivation.key.encode())


def class_counts(derivation: Derivation, seed: int = DEFAULT_SEED) -> tuple:
    """The class counts T a derivation is checked at.

    A concrete derivation (T is a number) is checked at ``max(1, min_classes)``; any
    other at :data:`CLASS_COUNTS` from ``min_classes`` up, ``min_classes``,
    ``min_classes + 1`` and one more T drawn (from the derivation's seed) up to
    ``max(LARGEST_RANDOM_T, min_classes + 8)`` -- :data:`SAMPLES_PER_T` instances each,
    N and other sizes from 1..3 -- and the wide counts: one T drawn from each range of
    :data:`WIDE_CLASSES` (from ``min_classes`` up), :data:`WIDE_SAMPLES` instance each,
    N and the other sizes drawn from :data:`WIDE_SIZES` and most free indices past the
    regular counts.
    """
    regular, wide = _class_counts(derivation, seed)
    return tuple(sorted(regular + wide))


def instance_count(derivation: Derivation, seed: int = DEFAULT_SEED) -> int:
    """How many instances every step of ``derivation`` must hold on: SAMPLES_PER_T per
    regular class count, WIDE_SAMPLES per wide one (index patterns come on top)."""
    regular, wide = _class_counts(derivation, seed)
    return len(regular) * SAMPLES_PER_T + len(wide) * WIDE_SAMPLES


def _regular_top(derivation: Derivation) -> int:
    """The largest regular class count (every wide one is larger)."""
    return max(LARGEST_RANDOM_T, max(1, derivation.min_classes) + 8)


def _class_counts(derivation: Derivation, seed: int = DEFAULT_SEED) -> tuple[tuple, tuple]:
    """(the regular class counts, the wide ones) of :func:`class_counts`."""
    low = max(1, derivation.min_classes)
    if derivation.concrete:
        return (low,), ()
    counts = {n for n in CLASS_COUNTS if n >= low} | {low, low + 1}
    rng = np.random.default_rng(derivation_seed(derivation, seed))
    top = _regular_top(derivation)
    choices = [n for n in range(low, top + 1) if n not in counts]
    counts.add(int(rng.choice(choices)))
    wide = []
    for lo, hi in WIDE_CLASSES:
        lo = max(lo, top + 1)
        choices = [n for n in range(lo, max(hi, lo + 4) + 1) if n not in counts and n not in wide]
        wide.append(int(rng.choice(choices)))
    return tuple(sorted(counts)), tuple(sorted(wide))


def _instances(derivation: Derivation, seed: int, counts: tuple):
    """Random instances satisfying the assumptions: SAMPLES_PER_T per class count.

    The content's symbols are drawn by its :class:`symbols.Instance`, declared ones
    (:func:`symbols.scalar`, :func:`symbols.vector`) by their samplers, then every
    assumption adjusts the instance. Yields (instance, None) or (None, reason) when the
    assumptions cannot be drawn or a symbol has no sampler."""
    rng = np.random.default_rng(seed)
    exprs = [step.expr for step in derivation.steps]
    labels = _labels(exprs)
    wide = {n for n in counts if n > _regular_top(derivation)}
    for n_classes in counts:
        if n_classes in wide:
            continue
        for _ in range(SAMPLES_PER_T):
            env = symbols.new_instance(rng, n_classes, symbols.draw_size(rng))
            problem = _complete(env, derivation, exprs, rng, labels)
            yield (None, problem) if problem else (env, None)
            if problem:
                return
    # the wide instances: T, N and every other size in the tens, free indices anywhere
    # in 1..T (a statement that first fails at T = 13, or for an index past 12)
    for n_classes, sizes in zip(sorted(wide), WIDE_SIZES):
        for _ in range(WIDE_SAMPLES):
            with symbols.sizes(*sizes):
                env = symbols.new_instance(rng, n_classes, symbols.draw_size(rng))
            _widen_indices(env, derivation, rng)
            problem = _complete(env, derivation, exprs, rng, labels)
            yield (None, problem) if problem else (env, None)
            if problem:
                return
    # every pattern of equal and distinct free class indices once, at the largest T: a
    # formula that branches on j = c or c = k is then checked on each branch for sure,
    # not only when the random draws happen to hit it
    indices = _free_class_indices(derivation)
    n_classes = max(set(counts) - wide, default=max(counts))
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


def _widen_indices(env, derivation: Derivation, rng) -> None:
    """On a wide instance, most free indices move past the values the regular instances
    reach (past the largest regular T for a class index, past 3 for any other)."""
    free = set().union(*(step.expr.free_symbols for step in derivation.steps))
    for sym in sorted(free & set(symbols.INDEX_RANGES), key=lambda s: s.name):
        size = env.get(symbols.INDEX_RANGES[sym])
        small = _regular_top(derivation) if symbols.INDEX_RANGES[sym] == symbols.CLASSES else 3
        if isinstance(size, int) and size > small and rng.random() < 0.75:
            env[sym] = int(rng.integers(small + 1, size + 1))


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


def _exp(x):
    """e^x, refused where its digits would not fit in memory (e^(e^(e^(20 T))))."""
    if abs(mpmath.re(x)) > LARGEST_EXPONENT:
        raise EvaluationError(f"e^x with x = {mpmath.nstr(x, 8)} is too large to evaluate")
    return mpmath.exp(x)


def _extreme(pick):
    def of(*values):
        if any(isinstance(v, mpmath.mpc) and mpmath.im(v) != 0 for v in values):
            raise EvaluationError(f"{pick.__name__} of complex numbers")
        return pick(mpmath.re(v) for v in values)
    return of


_MP_FUNCTIONS = {
    sp.exp: _exp, sp.log: mpmath.log, log1p: mpmath.log1p, sp.Abs: abs,
    sp.sin: mpmath.sin, sp.cos: mpmath.cos, sp.tanh: mpmath.tanh, sp.sqrt: mpmath.sqrt,
    sp.sign: mpmath.sign, sp.Max: _extreme(max), sp.Min: _extreme(min),
    sp.floor: mpmath.floor, sp.ceiling: mpmath.ceil,
}


@functools.lru_cache(maxsize=256)
def _power_of_ten(n: int) -> mpmath.mpf:
    return mpmath.mpf(10) ** n


class _Cancelled(Exception):
    """A sum lost the digits its terms had: evaluate again with ``digits`` digits."""

    def __init__(self, digits: int, expr):
        super().__init__(digits)
        self.digits, self.expr = digits, expr


#: an evaluation is trusted to the absolute size 10^-CANCELLATION_FLOOR (below the
#: tolerance of the comparison: 10^-30 relative to 1 + |value|)
CANCELLATION_FLOOR = 36


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

    def __init__(self, env: symbols.Instance, deadline: float | None = None, watch: bool = False):
        self.env = env
        self.moved = {}  # values that mpmath.diff has moved
        self.memo = {}
        #: the time after which evaluating more is an EvaluationError (None: no limit)
        self.deadline = deadline
        #: whether a sum that cancels raises _Cancelled (for :func:`evaluate` to repeat
        #: the evaluation with more digits)
        self.watching = watch

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
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise EvaluationError(f"the instance took longer than {INSTANCE_SECONDS:g} s to evaluate "
                                  "(the time limit per instance)")
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
            terms = [self.ev(arg, scope) for arg in expr.args]
            total = mpmath.fsum(terms)
            if self.watching:
                self.watch(expr, terms, total)
            return total
        if isinstance(expr, sp.Mul):
            result = mpmath.mpf(1)
            for arg in expr.args:
                result *= self.ev(arg, scope)
            return result
        if isinstance(expr, sp.Pow):
            base, power = self.ev(expr.base, scope), self.ev(expr.exp, scope)
            if base == 0 and mpmath.re(power) <= 0:
                raise EvaluationError(f"{sp.sstr(expr)}: a division by zero")
            if base != 0 and abs(power * mpmath.log(base)) > LARGEST_EXPONENT:
                raise EvaluationError(f"{sp.sstr(expr)} is too large to evaluate")
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

    def watch(self, expr, terms, total) -> None:
        """Raise :class:`_Cancelled` if the sum ``total`` of ``terms`` cancelled below
        what the working precision can tell: its absolute error (about the largest
        term times 10^-digits) is above 10^-CANCELLATION_FLOOR and above 10^-32 of
        the sum itself. The digits that make it exact enough come with it."""
        largest = max(abs(term) for term in terms)
        digits = mpmath.mp.dps
        if largest <= _power_of_ten(digits - CANCELLATION_FLOOR):
            return
        if abs(total) * _power_of_ten(digits - 32) >= largest:
            return
        needed = int(mpmath.log10(largest)) + CANCELLATION_FLOOR + 4
        raise _Cancelled(max(needed, digits + 10), expr)

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
    evaluation would not be seen (values added are: a missing one was never remembered).
    Each has the time limit :data:`INSTANCE_SECONDS`, and watches for sums that cancel."""
    return _Evaluator(env, time.perf_counter() + INSTANCE_SECONDS, watch=True)


def evaluate(expr: sp.Expr, env: symbols.Instance, using: _Evaluator | None = None):
    """``expr`` on a concrete instance, with mpmath at :data:`DIGITS` digits, or at as
    many more as a sum that cancels needs (up to :data:`MAX_DIGITS`: a value is never
    taken from a sum that lost its digits) (``using``: an :func:`evaluator` of ``env``
    shared with other expressions).

    Raises :class:`EvaluationError` when it has no finite value there (a missing
    component such as a[0] or y[T + 1], log 0, a division by zero), when it cancels
    beyond MAX_DIGITS, or when the instance takes longer than
    :data:`INSTANCE_SECONDS`."""
    ev = using if using is not None else evaluator(env)
    digits = DIGITS
    while True:
        with mpmath.workdps(digits):
            try:
                return +ev(expr)
            except _Cancelled as cancelled:  # again, from the start, with the digits it needs
                if cancelled.digits > MAX_DIGITS:
                    raise EvaluationError(
                        f"{sp.sstr(cancelled.expr)} cancels beyond {MAX_DIGITS} digits (its "
                        "terms are too large for its value to be told)") from None
                digits = cancelled.digits
                ev = _Evaluator(env, ev.deadline, watch=True)
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


def _closed_form(expr, assumptions):
    """``expr`` if it is a closed number, else SymPy's simplified value if that is one
    (a value SymPy shows constant) and no index expression SymPy is not trusted on is
    involved; else None."""
    if closed(expr, assumptions):
        return expr
    if untrusted_index([expr]) is not None:
        return None
    try:
        simple = sp.simplify(_doit(_apply(assumptions)(expr)))
    except Exception:  # noqa: BLE001 - SymPy failed: not shown constant
        return None
    return simple if closed(simple, assumptions) else None


def _loose(expr, assumptions) -> str:
    """The free symbols a value depends on, for a message."""
    labels = {base.label for base in expr.atoms(sp.IndexedBase)}
    names = sorted({str(f.base) if isinstance(f, Indexed) else str(f) for f in expr.free_symbols
                    if f not in labels} | {str(b) for b in expr.atoms(sp.IndexedBase)})
    return ", ".join(names) or "a part the evaluator cannot enclose"


def _rounding_check(prev, step: Step, assumptions) -> NumericFailure | None:
    """A rounding step, decided on the closed number ``prev`` by intervals."""
    bad = _rounding_failure(step)
    if bad:
        return NumericFailure("false", bad)
    value = _closed_form(prev, assumptions)
    if value is None:
        return NumericFailure(
            "unproved", f"a rounding (~) needs a closed number, and previous depends on "
                        f"{_loose(prev, assumptions)}: no number of instances decides how it rounds "
                        "for every value (state the value for a given vector with Values, or "
                        "show the step with '=')")
    this = step.expr
    target = (sp.Rational(str(this)) if this.is_Float else sp.Rational(this)) * 10 ** step.decimals
    try:
        got = closed_rounding(value, step.decimals, assumptions)
    except EvaluationError as err:
        return NumericFailure("undefined", f"how previous rounds cannot be decided: {err}")
    if got == int(target):
        return None
    shown = _closed_text(value, assumptions)
    return NumericFailure("false", f"{shown} rounds to {_fixed(got, step.decimals)} at {step.decimals} "
                                   f"decimals, not to {_decimal(this)} (decided by interval "
                                   "arithmetic)", {"previous": shown, "this": this})


def _closed_check(prev, this, rel, assumptions) -> NumericFailure | None:
    """A step between two closed numbers, decided by intervals (never from a value that
    cancelled, and not within a tolerance: 3 * 0.333...3 >= 1 is false)."""
    try:
        holds = closed_relation(prev, this, rel, assumptions)
    except EvaluationError as err:
        return NumericFailure("undefined", f"the step between closed numbers cannot be decided: {err}")
    if holds:
        return None
    sides = [_closed_text(e, assumptions) for e in (prev, this)]
    return NumericFailure("false", f"previous = {sides[0]} {rel} this = {sides[1]} is false "
                                   f"(closed numbers, decided by interval arithmetic: previous - this "
                                   f"= {_closed_text(prev - this, assumptions, 3)})",
                          {"previous": sides[0], "this": sides[1]})


def _closed_text(expr, assumptions, digits: int = 15) -> str:
    """A closed number to ``digits`` digits, from an enclosure narrow enough to give them."""
    for prec in CLOSED_PRECISIONS:
        try:
            lo, hi = _ends(enclose(expr, assumptions, prec))
        except (_Undecided, Unclosed, EvaluationError):
            continue
        with mpmath.workprec(prec):
            mid = (lo + hi) / 2
            if hi - lo <= abs(mid) * mpmath.mpf(10) ** (-digits - 2) or hi == lo:
                return mpmath.nstr(mid, digits)
    return "(not enclosed)"


def _rewrites(assumption) -> bool:
    return (getattr(assumption, "rule", None) is not None
            or type(assumption).rewrite is not symbols.Assumption.rewrite)


def _assumption_rewrites(assumptions, sides) -> list:
    """(assumption, side name, side, the side rewritten) for every assumption whose
    rewrite changes a side without a derivative (the rewrite of the body of a
    derivative is not a change of value)."""
    found = []
    for assumption in assumptions:
        if not _rewrites(assumption):
            continue
        for name, side in sides:
            if side.has(Derivative):
                continue
            try:
                new = assumption.rewrite(side)
            except Exception:  # noqa: BLE001, S112 - a rewrite that fails changes nothing checked here
                continue
            if new != side:
                found.append((assumption, name, side, new))
    return found


def _truth(shared, condition) -> bool:
    """A condition on an instance, with the digits its sides need if they cancel."""
    try:
        return shared.truth(condition, {})
    except _Cancelled as cancelled:
        if cancelled.digits > MAX_DIGITS:
            raise EvaluationError(f"{sp.sstr(cancelled.expr)} cancels beyond {MAX_DIGITS} digits") from None
        with mpmath.workdps(cancelled.digits):
            return _Evaluator(shared.env, shared.deadline).truth(condition, {})


def _unsatisfied(env, shared, assumptions, rewrites, values: dict) -> str | None:
    """Why the instance ``env`` does not satisfy the assumptions (a condition false, a
    rewrite that changes a side's value), or None."""
    with mpmath.workdps(DIGITS):
        for assumption in assumptions:
            condition = getattr(assumption, "condition", None)
            if condition is None:
                continue
            try:
                holds = _truth(shared, sp.sympify(condition))
            except Exception as err:  # noqa: BLE001 - a condition that cannot be decided is not met
                return f"its condition {sp.sstr(condition)} cannot be decided ({err})"
            if not holds:
                return f"'{plain(assumption.text)}' is false there (its condition {sp.sstr(condition)})"
    for assumption, name, _side, new in rewrites:
        try:
            value = evaluate(new, env, shared)
        except EvaluationError as err:
            return (f"'{plain(assumption.text)}' rewrites the {name} expression to one that cannot "
                    f"be evaluated there ({err})")
        if not _holds(values[name], value, "="):
            return (f"'{plain(assumption.text)}' rewrites the {name} expression from "
                    f"{_show(values[name])} to {_show(value)} there")
    return None


class Draws:
    """The instances of a derivation, drawn once (on first use) and shared by its steps,
    each with one evaluator: what a step's previous side holds was evaluated as the
    step before's right side. Every step is checked on the same instances."""

    def __init__(self, derivation: Derivation, seed: int, counts: tuple):
        self.derivation, self.seed, self.counts = derivation, seed, counts
        self._drawn: list | None = None

    def __iter__(self):
        if self._drawn is None:
            self._drawn = []
            for env, trouble in _instances(self.derivation, self.seed, self.counts):
                self._drawn.append((env, trouble, None if trouble else evaluator(env)))
        for env, trouble, shared in self._drawn:
            if shared is not None:  # the time limit is per instance and per step
                shared.deadline = time.perf_counter() + INSTANCE_SECONDS
            yield env, trouble, shared


def numeric_check(prev, step: Step, derivation: Derivation, seed: int,
                  counts: tuple | None = None, seen: dict | None = None,
                  draws: Draws | None = None) -> tuple[int, NumericFailure | None]:
    """Check ``prev <rel> step.expr`` on random instances; (count, failure or None).

    Every instance must satisfy the assumptions (each condition true, each rewrite
    keeping the value of the sides): one that does not is a failure, and kind
    'vacuous' when no instance does. Between closed numbers (no free symbol once the
    assumptions fix the given vectors) the relation is decided by interval
    arithmetic; a ``~`` step needs a closed ``prev`` and is decided that way too (its
    value rounded to ``step.decimals`` decimals must be the stated number). ``seen``
    collects the class counts and the largest N of the instances; ``draws`` are the
    derivation's shared instances (default: drawn here from ``seed``)."""
    this, rel, assumptions = step.expr, step.rel, derivation.assumptions
    counts = class_counts(derivation) if counts is None else counts
    decided = False  # the relation is decided by intervals
    if rel == "~":
        failure = _rounding_check(prev, step, assumptions)
        if failure is not None:
            return 0, failure
        decided = True
    elif closed(prev, assumptions) and closed(this, assumptions):
        failure = _closed_check(prev, this, rel, assumptions)
        if failure is not None:
            return 0, failure
        decided = True
    rewrites = _assumption_rewrites(assumptions, (("previous", prev), ("this", this)))
    count, unsatisfied, drawn = 0, [], 0
    seen = {} if seen is None else seen
    draws = Draws(derivation, seed, counts) if draws is None else draws
    for env, trouble, shared in draws:
        if trouble:
            return count, NumericFailure("undefined", trouble)
        drawn += 1
        sides = []  # what both sides (and the steps before) hold is evaluated once
        for name, expr in (("previous", prev), ("this", this)):
            try:
                sides.append(evaluate(expr, env, shared))
            except EvaluationError as err:
                where = _format(_describe(env, [expr]))
                return count, NumericFailure(
                    "undefined", f"the {name} expression cannot be evaluated on the instance "
                    f"{where}: {err}", _describe(env, [expr]))
        lhs, rhs = sides
        why = _unsatisfied(env, shared, assumptions, rewrites, {"previous": lhs, "this": rhs})
        if why is not None:
            unsatisfied.append(f"{_format(_describe(env, [prev, this]))}: {why}")
            continue
        count += 1
        seen.setdefault("T", set()).add(env.T)
        seen["N"] = max(seen.get("N", 0), env.N)
        if decided or _holds(lhs, rhs, rel):
            continue
        shown = _describe(env, [prev, this])
        return count, NumericFailure(
            "false", f"the concrete check fails on the instance {_format(shown)}: "
            f"previous = {_show(lhs)} {rel} this = {_show(rhs)} is false",
            {**shown, "previous": lhs, "this": rhs})
    if unsatisfied and count == 0:
        return 0, NumericFailure(
            "vacuous", f"vacuous: none of the {drawn} instances satisfies the assumptions (on "
                       f"the instance {unsatisfied[0]}); a statement under assumptions that "
                       "cannot hold proves nothing")
    if unsatisfied:
        return count, NumericFailure(
            "undefined", f"an instance does not satisfy the assumptions: on the instance "
                         f"{unsatisfied[0]} (an assumption's draw must make it hold, and its "
                         "rewrite may substitute only what it states)")
    return count, None


# --------------------------------------------------------------------------- closed numbers
class Unclosed(Exception):
    """The expression is not a closed number that :class:`_Bounds` can enclose."""


class _Undecided(Exception):
    """An interval straddles a branch point (a Piecewise condition, a floor): more
    precision is needed."""


#: precisions (bits) a closed number is enclosed at, in turn, until its question is decided
CLOSED_PRECISIONS = (128, 256, 512, 1024, 2048, 4096, 8192)
#: |x| above which e^x is not evaluated (its digits would not fit in memory)
LARGEST_EXPONENT = 10 ** 7


def _ends(x) -> tuple:
    """The end points of an interval as exact mpf numbers."""
    lo, hi = x._mpi_
    return mpmath.mp.make_mpf(lo), mpmath.mp.make_mpf(hi)


class _Bounds:
    """Encloses a closed number (no free symbol; the components of vectors that an
    assumption fixes, as ``Values`` does, are replaced by what it rewrites them to) in
    an interval, with mpmath's interval arithmetic at the current ``iv.prec``: the
    exact value lies inside whatever rounding happened, so a decision taken from the
    interval is never one that cancellation made."""

    def __init__(self, assumptions):
        self.rewrite = _apply(assumptions)

    def __call__(self, expr, scope=None):
        return self.ev(expr, scope or {})

    def integer(self, expr, scope) -> int:
        lo, hi = _ends(self.ev(expr, scope))
        if lo != hi or lo != mpmath.nint(lo):
            raise Unclosed(f"the index {sp.sstr(expr)} is not an integer")
        return int(lo)

    def ev(self, expr, scope):  # noqa: C901 - one case per kind of node, as in _Evaluator
        iv = mpmath.iv
        if expr.is_Integer:
            return iv.mpf(int(expr))
        if expr.is_Rational:
            return iv.mpf(expr.p) / expr.q
        if expr.is_Float:
            exact = sp.Rational(str(expr))
            return iv.mpf(exact.p) / exact.q
        if expr is sp.pi:
            return iv.pi
        if expr is sp.E:
            return iv.e
        if isinstance(expr, sp.Symbol):
            if expr in scope:
                return iv.mpf(scope[expr])
            raise Unclosed(f"{expr} is free")
        if isinstance(expr, Indexed):
            item = symbols.component(expr.base, tuple(self.integer(i, scope) for i in expr.indices))
            fixed = self.rewrite(item)
            if fixed == item or fixed.free_symbols:
                raise Unclosed(f"{sp.sstr(item)} is not fixed by an assumption")
            return self.ev(fixed, scope)
        if isinstance(expr, sp.Add):
            total = iv.mpf(0)
            for arg in expr.args:
                total += self.ev(arg, scope)
            return total
        if isinstance(expr, sp.Mul):
            product = iv.mpf(1)
            for arg in expr.args:
                product *= self.ev(arg, scope)
            return product
        if isinstance(expr, sp.Pow):
            base = self.ev(expr.base, scope)
            if expr.exp.is_Integer:
                if int(expr.exp) < 0 and 0 in base:
                    raise Unclosed(f"{sp.sstr(expr)}: a division by a number that may be 0")
                return base ** int(expr.exp)
            if not _ends(base)[0] > 0:
                raise Unclosed(f"{sp.sstr(expr)}: a power of a number that may not be positive")
            return self.exp(self.ev(expr.exp, scope) * iv.log(base))
        if isinstance(expr, sp.exp):
            return self.exp(self.ev(expr.args[0], scope))
        if isinstance(expr, (sp.log, log1p)):
            arg = self.ev(expr.args[0], scope) + (1 if isinstance(expr, log1p) else 0)
            if not _ends(arg)[0] > 0:
                raise Unclosed(f"{sp.sstr(expr)}: the logarithm of a number that may not be positive")
            return iv.log(arg)
        if isinstance(expr, sp.Abs):
            return abs(self.ev(expr.args[0], scope))
        if isinstance(expr, (sp.Max, sp.Min)):
            ends = [_ends(self.ev(arg, scope)) for arg in expr.args]
            pick = max if isinstance(expr, sp.Max) else min
            return iv.mpf([pick(lo for lo, _ in ends), pick(hi for _, hi in ends)])
        if isinstance(expr, (sp.floor, sp.ceiling)):
            lo, hi = _ends(self.ev(expr.args[0], scope))
            round_ = mpmath.floor if isinstance(expr, sp.floor) else mpmath.ceil
            if round_(lo) != round_(hi):
                raise _Undecided(sp.sstr(expr))
            return iv.mpf(round_(lo))
        if isinstance(expr, (sp.sin, sp.cos)):
            return (iv.sin if isinstance(expr, sp.sin) else iv.cos)(self.ev(expr.args[0], scope))
        if isinstance(expr, KroneckerDelta):
            x, y = (self.integer(arg, scope) for arg in expr.args)
            return iv.mpf(1 if x == y else 0)
        if isinstance(expr, Sum):
            return self.sum(expr.function, list(expr.limits), scope)
        if isinstance(expr, Piecewise):
            for branch, cond in expr.args:
                if self.truth(cond, scope):
                    return self.ev(branch, scope)
            raise Unclosed(f"no branch of {sp.sstr(expr)} applies")
        raise Unclosed(f"{type(expr).__name__} is not enclosed")

    def exp(self, x):
        lo, hi = _ends(x)
        if max(abs(lo), abs(hi)) > LARGEST_EXPONENT:
            raise EvaluationError(f"e^x with x = {mpmath.nstr(hi, 8)} is too large to evaluate")
        return mpmath.iv.exp(x)

    def truth(self, cond, scope) -> bool:
        if cond in (sp.true, True):
            return True
        if cond in (sp.false, False):
            return False
        if isinstance(cond, sp.And):
            return all(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Or):
            return any(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Not):
            return not self.truth(cond.args[0], scope)
        if isinstance(cond, sp.core.relational.Relational):
            lo, hi = _ends(self.ev(cond.lhs, scope) - self.ev(cond.rhs, scope))
            decided = {"<": (hi < 0, lo >= 0), "<=": (hi <= 0, lo > 0), ">": (lo > 0, hi <= 0),
                       ">=": (lo >= 0, hi < 0), "==": (lo == hi == 0, lo > 0 or hi < 0),
                       "!=": (lo > 0 or hi < 0, lo == hi == 0)}[cond.rel_op]
            if decided[0]:
                return True
            if decided[1]:
                return False
            raise _Undecided(sp.sstr(cond))
        raise Unclosed(f"the condition {sp.sstr(cond)}")

    def sum(self, body, limits, scope):
        if not limits:
            return self.ev(body, scope)
        (var, lo, hi), inner = limits[-1], limits[:-1]
        lo, hi = self.integer(lo, scope), self.integer(hi, scope)
        sign_ = 1
        if hi < lo:
            lo, hi, sign_ = hi + 1, lo - 1, -1
        if hi - lo > 100_000:
            raise Unclosed("a sum of more than 100000 terms")
        total = mpmath.iv.mpf(0)
        for n in range(lo, hi + 1):
            total += self.sum(body, inner, {**scope, var: n})
        return sign_ * total


def enclose(expr, assumptions=(), prec: int = CLOSED_PRECISIONS[0]):
    """An interval (at ``prec`` bits) holding the closed number ``expr``; raises
    :class:`Unclosed` if ``expr`` is not one (a free symbol, a derivative).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine import enclose
    >>> big = sp.exp(100) * (1 + sp.exp(-100)) - sp.exp(100)  # exactly 1
    >>> 0 in enclose(big, prec=64), 0 in enclose(big, prec=256)  # cancelled at 64 bits
    (True, False)
    """
    saved = mpmath.iv.prec
    mpmath.iv.prec = prec
    try:
        return _Bounds(assumptions)(expr)
    finally:
        mpmath.iv.prec = saved


def closed(expr, assumptions=()) -> bool:
    """True if ``expr`` is a closed number (once the assumptions fix the components of
    given vectors) that intervals can enclose."""
    try:
        enclose(expr, assumptions, 64)
    except (Unclosed, EvaluationError):
        return False
    except _Undecided:
        return True
    except Exception:  # noqa: BLE001 - anything else mpmath cannot enclose
        return False
    return True


def _decide(question, what: str):
    """``question(prec)`` -> a verdict, or raises _Undecided: asked at rising precision
    until it is decided; EvaluationError if it never is."""
    for prec in CLOSED_PRECISIONS:
        try:
            return question(prec)
        except _Undecided:
            continue
    raise EvaluationError(f"{what} is not decided at {CLOSED_PRECISIONS[-1]} bits "
                          "(the value may lie exactly on a boundary)")


def closed_relation(prev, this, rel: str, assumptions) -> bool:
    """Whether ``prev <rel> this`` holds for closed numbers, decided by intervals at
    rising precision. ``=`` is false once the enclosures are disjoint and true when
    they overlap at the last precision (intervals cannot show equality; the symbolic
    half must); the orders are decided as soon as the enclosures are."""
    def question(prec):
        lo, hi = _ends(enclose(prev - this if rel in ("=", ">", ">=") else this - prev, assumptions, prec))
        if rel == "=":
            if lo > 0 or hi < 0:
                return False
            if lo == hi == 0 or prec == CLOSED_PRECISIONS[-1]:
                return True
            raise _Undecided(rel)
        strict = rel in (">", "<")
        if (lo > 0) if strict else (lo >= 0):
            return True
        if (hi <= 0) if strict else (hi < 0):
            return False
        raise _Undecided(rel)
    return _decide(question, f"'previous {rel} this'")


def closed_rounding(value, decimals: int, assumptions) -> int:
    """The closed number ``value`` times 10^decimals rounded to the nearest integer
    (half to even, as mpmath's nint), decided by intervals at rising precision: never
    from a value that cancelled."""
    def question(prec):
        with mpmath.workprec(prec + 64):
            lo, hi = (x * mpmath.mpf(10) ** decimals for x in _ends(enclose(value, assumptions, prec)))
            down, up = mpmath.nint(lo), mpmath.nint(hi)
            if down == up and abs(lo - down) != mpmath.mpf(1) / 2 and abs(hi - up) != mpmath.mpf(1) / 2:
                return int(down)
        raise _Undecided("the rounding")
    try:  # (no doit: SymPy would work out (1 + 10^-50)^(10^50) exactly, for ever)
        exact = _apply(assumptions)(value)
    except Exception:  # noqa: BLE001 - SymPy could not: the intervals decide
        exact = None
    if isinstance(exact, sp.Rational):  # exactly: a tie is a tie (half to even)
        scaled = exact * 10 ** decimals
        return round(fractions.Fraction(int(scaled.p), int(scaled.q)))
    return _decide(question, "the rounding")


# --------------------------------------------------------------------------- what decided a verdict
class Unknowable(Exception):
    """What an object does cannot be known from what it holds (an object of an unknown
    kind, a callable reaching one): a verdict that depends on it is never reused."""


#: modules whose classes and functions are taken as they are (by name): the libraries
_LIBRARIES = ("builtins", "sympy", "mpmath", "numpy", "math", "fractions", "functools",
              "itertools", "operator", "collections", "typing", "dataclasses", "re")
#: modules the engine version covers (their source is hashed into it)
_VERSIONED = ("derive.engine", "derive.symbols")
_LOADS_GLOBAL = ("LOAD_GLOBAL", "LOAD_NAME")
_MAX_DEPTH = 8


def _library(module: str | None) -> bool:
    return module is not None and (module.split(".")[0] in _LIBRARIES or module in _VERSIONED)


def behaviour(obj, _depth: int = 0, _seen: tuple = ()) -> tuple:
    """A print of what ``obj`` does, from everything it holds: SymPy objects by their
    srepr, numbers and strings by value, containers by their contents (at this moment),
    functions (lambdas too) by their bytecode, constants, captured values and every
    global name they read (recursively), classes by their methods and data, dataclass
    instances by their class and fields, library modules, classes and functions by
    name. Two objects with the same print compute the same thing; an object that can
    do anything (one of an unknown kind, or a function reaching one) raises
    :class:`Unknowable`.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine import behaviour
    >>> x = sp.Symbol("x")
    >>> behaviour(lambda e: e.subs(x, 1)) == behaviour(lambda e: e.subs(x, 2))
    False
    """
    if _depth > _MAX_DEPTH:
        raise Unknowable("nested too deeply")
    deeper = functools.partial(behaviour, _depth=_depth + 1, _seen=_seen)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, repr(obj))
    if isinstance(obj, sp.Basic):
        return ("sympy", sp.srepr(obj))
    if isinstance(obj, (mpmath.mpf, mpmath.mpc)):
        return ("mpmath", repr(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, *(deeper(item) for item in obj))
    if isinstance(obj, (set, frozenset)):
        return ("set", *sorted((deeper(item) for item in obj), key=repr))
    if isinstance(obj, dict):
        return ("dict", *sorted(((deeper(k), deeper(v)) for k, v in obj.items()), key=repr))
    if isinstance(obj, types.ModuleType):
        if not (_library(obj.__name__) or obj.__name__.startswith("derive")):
            raise Unknowable(f"the module {obj.__name__}")
        return ("module", obj.__name__)  # (its functions are read as attributes: by name)
    if isinstance(obj, np.ndarray):
        return ("ndarray", str(obj.dtype), obj.shape, obj.tobytes())
    if isinstance(obj, type):
        return _class_behaviour(obj, _depth, _seen)
    if isinstance(obj, (staticmethod, classmethod)):
        return deeper(obj.__func__)
    if isinstance(obj, property):
        return ("property", deeper(obj.fget), deeper(obj.fset))
    if isinstance(obj, types.FunctionType):
        return _function_behaviour(obj, _depth, _seen)
    if isinstance(obj, types.MethodType):
        return ("method", deeper(obj.__func__), deeper(obj.__self__))
    if isinstance(obj, functools.partial):
        return ("partial", deeper(obj.func), deeper(obj.args), deeper(obj.keywords))
    home = getattr(obj, "__module__", None) or "builtins"
    if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)) and _library(home):
        return ("builtin", home, obj.__name__)
    if dataclasses.is_dataclass(obj):
        return ("dataclass", _class_behaviour(type(obj), _depth, _seen),
                *((f.name, deeper(getattr(obj, f.name))) for f in dataclasses.fields(obj)))
    if _library(type(obj).__module__) and type(obj).__module__.split(".")[0] in ("sympy", "mpmath"):
        return ("value", type(obj).__qualname__, repr(obj))
    raise Unknowable(f"an object of type {type(obj).__qualname__}")


def _class_behaviour(cls: type, depth: int, seen: tuple) -> tuple:
    if _library(cls.__module__):
        return ("class", cls.__module__, cls.__qualname__)
    if cls in seen:
        return ("class", cls.__module__, cls.__qualname__, "(recursive)")
    seen = (*seen, cls)
    parts = []
    for klass in cls.__mro__:
        if _library(klass.__module__):
            parts.append(("base", klass.__module__, klass.__qualname__))
            continue
        for name, value in sorted(vars(klass).items()):
            generated = "__create_fn__" in getattr(value, "__qualname__", "")  # a dataclass's
            if generated or (name.startswith("__") and name not in ("__init__", "__call__", "__new__")):
                continue
            parts.append((klass.__qualname__, name, behaviour(value, depth + 1, seen)))
    return ("class", cls.__module__, cls.__qualname__, *parts)


@functools.lru_cache(maxsize=4096)
def _code_print(code: types.CodeType) -> tuple:
    consts = tuple(_code_print(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> frozenset:
    """The global names ``code`` (and the code nested in it) reads (code objects are
    immutable: remembered per code object)."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in _LOADS_GLOBAL}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return frozenset(names)


def _function_behaviour(fn: types.FunctionType, depth: int, seen: tuple) -> tuple:
    if _library(fn.__module__) and "<" not in fn.__qualname__:  # a named library function
        return ("function", fn.__module__, fn.__qualname__)
    if fn in seen:
        return ("function", fn.__qualname__, "(recursive)")
    seen = (*seen, fn)
    deeper = functools.partial(behaviour, _depth=depth + 1, _seen=seen)
    reads = []
    for name in sorted(_global_names(fn.__code__)):
        if name in fn.__globals__:
            reads.append((name, deeper(fn.__globals__[name])))
        elif hasattr(builtins, name):
            reads.append((name, "builtin"))
        else:
            raise Unknowable(f"the name {name} that {fn.__qualname__} reads is not defined")
    cells = tuple(deeper(cell.cell_contents) for cell in (fn.__closure__ or ()))
    return ("function", _code_print(fn.__code__), tuple(reads), cells,
            deeper(fn.__defaults__), deeper(fn.__kwdefaults__))


#: while a check runs: id -> (object, its behaviour or the Unknowable it raised), so
#: that the assumptions of a derivation are read once per check, not once per step
_BEHAVIOUR_CACHE: list = [None]


def _cached_behaviour(obj) -> tuple:
    cache = _BEHAVIOUR_CACHE[0]
    if cache is None:
        return behaviour(obj)
    hit = cache.get(id(obj))
    if hit is None or hit[0] is not obj:
        try:
            hit = (obj, behaviour(obj))
        except Unknowable as err:
            hit = (obj, err)
        cache[id(obj)] = hit
    if isinstance(hit[1], Unknowable):
        raise hit[1]
    return hit[1]


def _assumptions_behaviour(assumptions) -> tuple:
    return tuple(_cached_behaviour(h) for h in assumptions)


# --------------------------------------------------------------------------- the proof memo
#: environment variable naming a directory where accepted links (and SymPy's values of
#: sums) are remembered for every process that shares it and :data:`MEMO_KEY_VARIABLE`
MEMO_VARIABLE = "DERIVE_PROOF_MEMO"
#: environment variable holding the memo's secret (hex, at least 16 bytes): an entry is
#: read only if its HMAC under this secret is right; without it the memo is not used
MEMO_KEY_VARIABLE = "DERIVE_PROOF_MEMO_KEY"


def _engine_version() -> str:
    """A hash of the engine's own source (this module and :mod:`derive.symbols`) and of
    the SymPy and mpmath versions: a memo entry of another version is never read."""
    digest = hashlib.sha256(f"{sp.__version__} {mpmath.__version__}".encode())
    for module in (__file__, symbols.__file__):
        with open(module, "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()[:32]


ENGINE_VERSION = _engine_version()


def _memo_secret() -> bytes | None:
    folder, secret = os.environ.get(MEMO_VARIABLE), os.environ.get(MEMO_KEY_VARIABLE, "")
    if not folder:
        return None
    try:
        key = bytes.fromhex(secret)
    except ValueError:
        return None
    return key if len(key) >= 16 else None


def _memo_digest(kind: str, key) -> str:
    return hashlib.sha256(repr((ENGINE_VERSION, kind, key)).encode()).hexdigest()


def _memo_mac(secret: bytes, kind: str, digest: str, value) -> str:
    text = json.dumps([ENGINE_VERSION, kind, digest, value], sort_keys=True)
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def memo_read(kind: str, key, valid=lambda value: True):
    """The value remembered for ``key`` in the session's memo directory, or None: an
    entry is data (JSON, never run), and is read only if it names this engine version
    and its HMAC under the session's secret is right, and ``valid(value)``."""
    secret = _memo_secret()
    if secret is None:
        return None
    digest = _memo_digest(kind, key)
    path = os.path.join(os.environ[MEMO_VARIABLE], f"{kind}-{digest}")
    try:
        with open(path, encoding="utf-8") as memo:
            entry = json.load(memo)
    except (OSError, ValueError):
        return None
    if not (isinstance(entry, dict) and entry.get("version") == ENGINE_VERSION
            and entry.get("kind") == kind and entry.get("key") == digest
            and isinstance(entry.get("mac"), str) and "value" in entry):
        return None
    if not hmac.compare_digest(entry["mac"], _memo_mac(secret, kind, digest, entry["value"])):
        return None
    return entry["value"] if valid(entry["value"]) else None


def memo_write(kind: str, key, value) -> None:
    """Remember ``value`` (JSON data) for ``key`` in the session's memo, if there is one."""
    secret = _memo_secret()
    if secret is None:
        return
    digest = _memo_digest(kind, key)
    entry = {"version": ENGINE_VERSION, "kind": kind, "key": digest, "value": value,
             "mac": _memo_mac(secret, kind, digest, value)}
    path = os.path.join(os.environ[MEMO_VARIABLE], f"{kind}-{digest}")
    spare = f"{path}.{os.getpid()}"
    try:
        with open(spare, "w", encoding="utf-8") as memo:
            json.dump(entry, memo)
        os.replace(spare, path)  # whole or absent for a reader in another process
    except OSError:
        return


#: the bare names SymPy's srepr writes for its singletons
_SREPR_CONSTANTS = ("pi", "E", "I", "oo", "zoo", "nan", "true", "false", "EulerGamma", "S")
#: the classes whose first argument may be a string (a name or a decimal)
_SREPR_NAMED = ("Symbol", "IndexedBase", "Float", "Function", "Idx")


def read_srepr(text: str) -> sp.Basic:
    """SymPy's srepr read back without running it: only calls of SymPy's own classes
    with number, bool and (for a symbol's name or a decimal) string literals.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine import read_srepr
    >>> T = sp.Symbol("T", integer=True, positive=True)
    >>> read_srepr(sp.srepr(T ** 2 / 2 + T / 2)) == T ** 2 / 2 + T / 2
    True
    >>> read_srepr("eval('1')")
    Traceback (most recent call last):
    ...
    ValueError: not a SymPy srepr: eval
    """
    return _read_node(ast.parse(text, mode="eval").body)


def _read_node(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float))):
        return -node.operand.value
    if isinstance(node, ast.Tuple):
        return tuple(_read_node(item) for item in node.elts)
    if isinstance(node, ast.Name) and node.id in _SREPR_CONSTANTS:
        return getattr(sp, node.id) if node.id != "S" else sp.S
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        cls = getattr(sp, name, None)
        if not (isinstance(cls, type) and issubclass(cls, sp.Basic)):
            raise ValueError(f"not a SymPy srepr: {name}")
        args = []
        for n, arg in enumerate(node.args):
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if n != 0 or name not in _SREPR_NAMED:
                    raise ValueError(f"not a SymPy srepr: a string in {name}")
                args.append(arg.value)
            else:
                args.append(_read_node(arg))
        keywords = {}
        for kw in node.keywords:
            if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, (bool, int))):
                raise ValueError(f"not a SymPy srepr: the keyword {kw.arg} of {name}")
            keywords[kw.arg] = kw.value.value
        return cls(*args, **keywords)
    raise ValueError(f"not a SymPy srepr: {ast.dump(node)[:60]}")


# --------------------------------------------------------------------------- driver
#: lemmas checked in this process, keyed by :func:`fingerprint` (only lemmas whose
#: every part can be known)
_LEMMAS_PROVED: set = set()
#: links accepted in this process, keyed by everything their check depends on (see
#: :func:`_link_key`); a link that depends on something unknowable is never remembered
_LINKS_PROVED: dict = {}
#: steps SymPy has shown, keyed by everything the symbolic half depends on (both sides,
#: the relation, what the assumptions are and do, min_classes, the cited lemmas, the
#: ranges of the indices): the name of the normal form that showed it. No seed: the
#: same step in another derivation (or under another key) is the same symbolic
#: question. Only a step shown is remembered, and the numeric half runs on every
#: derivation's own instances still.
_SHOWN: dict = {}


def _remembered(kind: str, key, memory: dict, valid):
    """What was remembered for ``key`` in this process or, authenticated, in the
    session's memo; None for a key that is None (something unknowable decided it)."""
    if key is None:
        return None
    if key in memory:
        return memory[key]
    value = memo_read(kind, key, valid)
    if value is not None:
        memory[key] = tuple(value) if isinstance(value, list) else value
    return memory.get(key)


def _remember(kind: str, key, memory: dict, value) -> None:
    if key is None:
        return
    memory[key] = value
    memo_write(kind, key, list(value) if isinstance(value, tuple) else value)


def _depends_on(exprs) -> tuple:
    """What a check of ``exprs`` depends on beyond their text: the range of every index
    they hold (an index ranges over 1..T, or 1..N: facts the symbolic half uses), what
    the sampler of every declared symbol they use does, and the instance class that
    draws the rest (:func:`behaviour`; raises :class:`Unknowable`)."""
    found = set()
    for expr in exprs:
        found |= expr.atoms(sp.Symbol)
    ranges = tuple(sorted((sp.srepr(sym), sp.srepr(symbols.INDEX_RANGES[sym]))
                          for sym in found if sym in symbols.INDEX_RANGES))
    drawn = tuple((sp.srepr(atom), _cached_behaviour(symbols.sampler(atom)))
                  for atom in symbols._used(exprs) if symbols.sampler(atom) is not None)
    return ranges, drawn, _cached_behaviour(symbols._INSTANCE[0])


def fingerprint(derivation: Derivation) -> tuple:
    """Everything a check of ``derivation`` depends on: key, what its assumptions are and
    do (:func:`behaviour`), min_classes and every step (expression, relation, decimals,
    cited lemmas). Raises :class:`Unknowable` where an assumption's behaviour cannot be
    known."""
    return (derivation.key, _assumptions_behaviour(derivation.assumptions), derivation.min_classes,
            tuple((sp.srepr(step.expr), step.rel, step.decimals,
                   tuple(fingerprint(lem) for lem in step.lemmas)) for step in derivation.steps))


def _known_fingerprint(derivation: Derivation) -> tuple | None:
    try:
        return fingerprint(derivation)
    except Unknowable:
        return None


def _check_lemma(lemma: Derivation, seed: int, numeric: bool) -> None:
    """Check a cited lemma (once per process if everything about it can be known)."""
    print_ = _known_fingerprint(lemma)
    key = None if print_ is None else (print_, seed, numeric, _numeric_settings())
    if key is None or key not in _LEMMAS_PROVED:
        check(lemma, seed=seed, numeric=numeric)
        if key is not None:
            _LEMMAS_PROVED.add(key)


def _rejection(title, number, step, prev, cls, reason, **extra):
    return cls(title, number, step.why, prev, step.expr, reason, **extra)


def _check_lemmas(derivation: Derivation, this: Step, reject, seed: int, numeric: bool) -> None:
    """The lemmas a step cites: each makes no assumption the derivation does not (bar the
    implied ones), holds for every T the derivation claims (its min_classes is at most
    the derivation's), is a chain of equalities, and is checked itself."""
    for lemma in this.lemmas:
        missing = [h.text for h in lemma.assumptions
                   if h not in derivation.assumptions and not symbols.implied(h)]
        if missing:
            raise reject(StepRejected, f"the lemma {lemma.key!r} needs assumptions this "
                                       f"derivation does not make: {'; '.join(missing)}")
        if max(1, lemma.min_classes) > max(1, derivation.min_classes):
            raise reject(StepRejected, f"the lemma {lemma.key!r} is proved for T >= "
                                       f"{lemma.min_classes} only, and this derivation claims T >= "
                                       f"{max(1, derivation.min_classes)} (raise its min_classes, or "
                                       "cite a lemma proved for those T)")
        try:
            _only_equalities(lemma)
        except LemmaRefused as err:
            raise reject(StepRejected, str(err)) from None
        _check_lemma(lemma, seed, numeric)


def _where_held(count: int, seen: dict) -> str:
    counts = ",".join(map(str, sorted(seen.get("T", ()))))
    return (f"it held on all {count} concrete instances (T in {{{counts}}}, N <= {seen.get('N', 0)}); "
            "larger sizes were not checked, and")


def _symbolic_half(derivation: Derivation, prev, this: Step, reject, count: int, seen: dict,
                   numeric: bool) -> str:
    """The name of the normal form that shows the step, or a :class:`StepUnproved`."""
    if this.rel == "~":
        return "rounding (interval arithmetic)"
    crash = ""
    try:
        how = symbolic_check(prev, this.expr, this.rel, derivation.assumptions,
                             this.lemmas, derivation.min_classes)
    except LemmaRefused as err:
        raise reject(StepRejected, str(err)) from None
    except Exception as err:  # noqa: BLE001 - SymPy failed: the step is not shown
        how, crash = None, f" (SymPy failed: {type(err).__name__}: {err})"
    if how is None:
        untrusted = untrusted_index([prev, this.expr, *(e for lem in this.lemmas
                                                          for e in (lem.start, lem.result))])
        if untrusted is not None:
            crash += (f"; SymPy is not trusted on the index expression in {sp.sstr(untrusted)} "
                      "(only +-index + constant), so only algebra that leaves it alone may show it")
        held = _where_held(count, seen) if numeric else "the numeric check was not run, and"
        counts = tuple(sorted(seen.get("T", ())))
        raise reject(StepUnproved, f"unproved: {held} SymPy could not show 'previous "
                     f"{this.rel} this' under the assumptions{crash}",
                     instances=count, class_counts=counts if numeric else ())
    return how


def _numeric_settings() -> tuple:
    """The engine's settings that decide the numeric half (tests change some)."""
    return (CLASS_COUNTS, LARGEST_RANDOM_T, SAMPLES_PER_T, DIGITS, str(TOLERANCE), WIDE_CLASSES,
            WIDE_SIZES, WIDE_SAMPLES, MAX_DIGITS)


def _link_key(derivation: Derivation, number: int, base: int, counts: tuple, numeric: bool):
    """Everything the check of link ``number`` depends on, or None if some of it cannot
    be known (an assumption's rewrite, a sampler reaching an object of unknown kind)."""
    prev, this = derivation.steps[number - 1].expr, derivation.steps[number]
    try:
        return (_assumptions_behaviour(derivation.assumptions), derivation.min_classes, counts, numeric,
                base + number, sp.srepr(prev), sp.srepr(this.expr), this.rel, this.decimals,
                tuple(fingerprint(lemma) for lemma in this.lemmas),
                _depends_on([prev, this.expr]), _numeric_settings())
    except Unknowable:
        return None


def _valid_link(value) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int))


def check(derivation: Derivation, seed: int = DEFAULT_SEED, numeric: bool = True) -> DerivationCheck:
    """Check every step of ``derivation``; raise a :class:`StepRejected` on the first bad one.

    The order per step: the cited lemmas (checked, equalities, assumptions made here
    too, min_classes at most this one's), the numeric half (a failure:
    :class:`StepFalse`, :class:`StepUndefined` or :class:`StepVacuous`), then the
    symbolic half (a failure after a passing numeric half: :class:`StepUnproved`).

    Examples
    --------
    >>> from derive import Derivation, Step, check, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> report = check(Derivation("square", "A square", (), [
    ...     Step((x + 1) ** 2, "definition"), Step(x ** 2 + 2 * x + 1, "expand")]))
    >>> report.steps[0].instances > 0
    True
    """
    owner = _BEHAVIOUR_CACHE[0] is None  # (a lemma is checked inside its citing check)
    if owner:
        _BEHAVIOUR_CACHE[0] = {}
    try:
        return _check(derivation, seed, numeric)
    finally:
        if owner:
            _BEHAVIOUR_CACHE[0] = None


def _check(derivation: Derivation, seed: int, numeric: bool) -> DerivationCheck:
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
    expected = instance_count(derivation, seed)
    # drawn once, on the first step checked, from the seed of the first link (the seed
    # each link had when every step drew its own instances)
    draws = Draws(derivation, base + 1, counts)
    for number in range(1, len(steps)):
        prev, this = steps[number - 1].expr, steps[number]
        tic = time.perf_counter()
        link = _link_key(derivation, number, base, counts, numeric)
        remembered = _remembered("link", link, _LINKS_PROVED, _valid_link)
        if remembered is not None:  # the very same link, checked before
            how, count = remembered
            report.steps.append(StepCheck(number, this.why, this.rel, how, count,
                                           time.perf_counter() - tic, counts if numeric else ()))
            continue

        reject = functools.partial(_rejection, title, number, this, prev)
        _check_lemmas(derivation, this, reject, seed, numeric)
        count, seen = 0, {}
        if numeric:
            count, failure = numeric_check(prev, this, derivation, base + 1, counts, seen, draws)
            kinds = {"false": StepFalse, "undefined": StepUndefined, "vacuous": StepVacuous,
                     "unproved": StepUnproved}
            if failure is not None and failure.kind == "false":
                raise reject(StepFalse, failure.message, counterexample=failure.counterexample)
            if failure is not None:
                raise reject(kinds[failure.kind], failure.message)
            if count < expected:
                raise reject(StepUndefined, f"checked on {count} instances of the {expected} required")
        how = _symbolic_half(derivation, prev, this, reject, count, seen, numeric)
        _remember("link", link, _LINKS_PROVED, (how, count))
        report.steps.append(StepCheck(number, this.why, this.rel, how, count,
                                       time.perf_counter() - tic, counts if numeric else ()))
    report.seconds = time.perf_counter() - start
    return report
