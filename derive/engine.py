"""The proof engine: derivations as chains of checked steps.

A :class:`Derivation` is a title, its assumptions and a chain of :class:`Step` s. Each
step is an expression, the relation it has to the previous one (``=`` by default, or
``>``, ``>=``, ``<``) and a one-line justification. A step is accepted only if

(a) SymPy shows the relation symbolically under the assumptions
    (:func:`symbolic_check`), and
(b) the relation holds on concrete instances -- every T in :data:`CLASS_COUNTS` with
    random values satisfying the assumptions -- evaluated with mpmath at
    :data:`DIGITS` significant digits (:func:`numeric_check`).

(b) is not optional: SymPy's index calculus has silent errors. Some the symbolic
check works around (``diff(Sum(a[j]**2, (j, 1, T)), a[j])`` returns
``Sum(2*a[j], (j, 1, T))`` where the answer is ``2*a[j]``; bound variables are renamed
before anything is evaluated), others it cannot see: ``diff(Sum(a[2*j], (j, 1, T)),
a[i])`` comes out as 1 for every 2 <= i <= 2T, odd i included. A rejected step raises :class:`StepRejected`, which names the
derivation, the step number, the justification and both sides.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import mpmath
import numpy as np
import sympy as sp
from sympy import Derivative, Indexed, KroneckerDelta, Piecewise, Sum
from sympy.codegen.cfunctions import log1p
from sympy.concrete.expr_with_limits import ExprWithLimits

from . import definitions as D

#: the class counts every step is checked on (plus N in 1..3 features)
CLASS_COUNTS = (1, 2, 3, 5, 8)
#: random instances per class count
SAMPLES_PER_T = 2
#: working precision of the numeric check, in decimal digits
DIGITS = 40
#: two sides agree numerically when they differ by less than this, relative
TOLERANCE = mpmath.mpf(10) ** (-30)

#: seed of the random instances (step n of a derivation uses DEFAULT_SEED + n)
DEFAULT_SEED = 2024

RELATIONS = ("=", ">", ">=", "<", "<=", "~")


_PLAIN = [(r"\operatorname{log1p}", "log1p"), (r"\operatorname{softmax}", "softmax"),
          (r"\partial ", "d"), (r"\partial", "d"), (r"\sum_", "sum_"), (r"\delta", "delta"),
          (r"\ne ", "!= "), (r"\ne", "!="), (r"\ge", ">="), (r"\le", "<="), (r"\log", "log"),
          (r"\mu", "mu"), (r"\sigma", "sigma"), (r"\epsilon", "eps"), (r"\zeta", "zeta"), (r"\mathbf{1}", "1"), (r"^\top", "^T"), (r"\_", "_"), ("$", "")]


def plain(text: str) -> str:
    """A justification or title without its LaTeX markup, for terminals."""
    for macro, word in _PLAIN:
        text = text.replace(macro, word)
    return text


class StepRejected(AssertionError):
    """A step of a derivation does not follow from the previous one."""

    def __init__(self, derivation: str, number: int, why: str, lhs, rhs, reason: str):
        self.derivation, self.number, self.why = derivation, number, why
        self.lhs, self.rhs, self.reason = lhs, rhs, reason
        super().__init__(
            f"'{plain(derivation)}', step {number} ({plain(why)}) rejected: {reason}\n"
            f"  previous: {sp.sstr(lhs)}\n  this:     {sp.sstr(rhs)}")


@dataclass(frozen=True)
class Step:
    """One link of a chain: ``previous <rel> expr`` because ``why``.

    ``rel`` is one of ``=``, ``>``, ``>=``, ``<``, ``<=`` or ``~`` (the previous
    expression rounds to the number ``expr`` at ``decimals`` decimals; only for
    concrete numbers). ``lemma`` cites an already proved derivation: before the
    symbolic check, its start expression is replaced by its result wherever it
    occurs (sound once the lemma is checked, and only under its assumptions).
    """

    expr: sp.Expr
    why: str
    rel: str = "="
    decimals: int = 4
    lemma: "Derivation | None" = None

    def __post_init__(self):
        if self.rel not in RELATIONS:
            raise ValueError(f"unknown relation {self.rel!r}; use one of {RELATIONS}")


@dataclass
class Derivation:
    """A titled chain of steps under stated assumptions.

    ``steps[0]`` is the starting expression (its ``why`` says where it comes from);
    each later step is checked against the one before it. ``matrix`` is the result
    in matrix notation (LaTeX) for the reports, ``min_classes`` the smallest T the
    statement makes sense for (e.g. 2 when it needs i != j).
    """

    key: str
    title: str
    assumptions: Sequence[D.Assumption]
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
class StepReport:
    number: int
    why: str
    rel: str
    symbolic: str  # name of the normal form that closed the step
    instances: int  # concrete instances checked
    seconds: float


@dataclass
class DerivationReport:
    derivation: Derivation
    steps: list[StepReport] = field(default_factory=list)
    seconds: float = 0.0
    class_counts: tuple = ()


# --------------------------------------------------------------------------- symbolic side
_BOUND = [sp.Symbol(f"_k{height}", integer=True, positive=True) for height in range(12)]


def _height(expr) -> int:
    """How many summations are nested in ``expr`` (0 for none)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return 0
    inner = max((_height(arg) for arg in expr.args), default=0)
    return inner + len(expr.limits) if isinstance(expr, ExprWithLimits) else inner


def canonical_bound(expr: sp.Expr) -> sp.Expr:
    """Rename summation variables so alpha-equivalent sums coincide.

    A sum's variable is named after its height (how many sums it contains), so a sum
    gets the same name wherever it is nested and never captures an inner binder.
    """
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    args = [canonical_bound(arg) for arg in expr.args]
    if isinstance(expr, ExprWithLimits):
        body, height, limits = args[0], _height(args[0]), []
        for var, lo, hi in expr.limits:  # innermost first
            name = _BOUND[height]
            body = body.xreplace({var: name})
            limits.append((name, lo, hi))
            height += 1
        return expr.func(body, *limits)
    return expr.func(*args) if args else expr


def _in_range_facts(expr: sp.Expr) -> dict:
    """Relations that hold because every free index lies in its range."""
    facts = {}
    for sym in expr.free_symbols & set(D.INDEX_RANGES):
        top = D.INDEX_RANGES[sym]
        for rel in (top >= sym, sym <= top, sym >= 1, 1 <= sym, sp.Le(1, sym), sp.Ge(top, sym)):
            facts[rel] = sp.true
        facts[top < sym] = sp.false
        facts[sym > top] = sp.false
    for summed in expr.atoms(Sum):
        for var, lo, hi in summed.limits:
            for rel in (hi >= var, var <= hi, var >= lo):
                facts[rel] = sp.true
    return facts


def refine_ranges(expr: sp.Expr) -> sp.Expr:
    """Resolve Piecewise conditions like ``T >= i`` that hold for indices in range."""
    for _ in range(6):
        facts = _in_range_facts(expr)
        new = expr.xreplace(facts) if facts else expr
        new = new.replace(lambda e: isinstance(e, Piecewise), lambda e: sp.piecewise_fold(e))
        if new == expr:
            return new
        expr = new
    return expr


def _elementary(expr):
    """log1p(u) -> log(1 + u): the definition of the codegen functions."""
    return expr.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0]))


def _doit(expr):
    # renaming bound variables first keeps SymPy from confusing a summation index
    # with a free index of the same name (diff(Sum(a[j]**2, (j, 1, T)), a[j]))
    expr = canonical_bound(_elementary(expr))
    for _ in range(4):
        new = refine_ranges(expr.doit())
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


def _expand_log(expr):
    return sp.expand_log(expr, force=True)


def _apply(assumptions):
    def apply(expr):
        for assumption in assumptions:
            expr = assumption.rewrite(expr)
        return expr
    return apply


def normal_forms(expr: sp.Expr, assumptions) -> Iterable[tuple[str, sp.Expr]]:
    """Successively stronger normal forms of ``expr`` (each a sound equality).

    A stage that SymPy itself fails on (simplify has internal errors on some nested
    sums) is skipped: skipping can only make the check weaker, never unsound.
    """
    use = _apply(assumptions)
    stages = [
        ("evaluate", lambda e: canonical_bound(use(_doit(e)))),
        ("linearity of sums, log rules",
         lambda e: sp.expand(_doit(canonical_bound(use(_split_sums(_expand_log(e))))))),
        ("expand", lambda e: sp.expand(canonical_bound(
            use(_split_sums(sp.expand(sp.powsimp(sp.expand(e), combine="exp"))))))),
        ("simplify", lambda e: canonical_bound(use(sp.simplify(e)))),
        ("simplify after assumptions",
         lambda e: canonical_bound(use(sp.simplify(use(sp.factor_terms(e)))))),
    ]
    for name, stage in stages:
        try:
            expr = stage(expr)
        except (RuntimeError, ValueError, TypeError, RecursionError, StopIteration):
            continue
        yield name, expr


def _is_zero(expr) -> bool:
    return expr == 0 or expr.is_zero is True


def apply_lemma(expr: sp.Expr, lemma: Derivation) -> sp.Expr:
    """Replace every instance of the lemma's start expression by its result.

    The lemma holds for every value of its free indices, so those become wildcards
    that match any integer symbol (a free index or a summation variable); bound
    variables are first given canonical names so that alpha-equivalent forms match.
    """
    start, result = canonical_bound(lemma.start), canonical_bound(lemma.result)
    wilds = {sym: sp.Wild(f"{sym.name}_", properties=[lambda e: e.is_Symbol and e.is_integer])
             for sym in start.free_symbols & set(D.INDEX_RANGES)}
    pattern, template = start.xreplace(wilds), result.xreplace(wilds)
    return canonical_bound(canonical_bound(expr).replace(pattern, template))


def symbolic_check(prev: sp.Expr, this: sp.Expr, rel: str, assumptions,
                   lemma: Derivation | None = None) -> str | None:
    """Name of the normal form that shows ``prev <rel> this``, or None."""
    if rel == "~":
        return "rounding" if prev.free_symbols == set() else None
    if lemma is not None:
        prev, this = apply_lemma(prev, lemma), apply_lemma(this, lemma)
    diff = prev - this if rel in ("=", ">", ">=") else this - prev
    for name, form in normal_forms(diff, assumptions):
        if rel == "=" and _is_zero(form):
            return name
        if rel in (">", "<") and sign(form) == "pos":
            return name
        if rel in (">=", "<=") and sign(form) in ("pos", "nonneg"):
            return name
    return None


def sign(expr: sp.Expr) -> str | None:
    """A small sound sign prover: 'pos', 'nonneg' or None (unknown).

    Besides SymPy's own assumptions it knows that a sum over 1..T (T >= 1) of
    positive terms is positive, that squares are non-negative and that
    e^u - 1 > 0 for u > 0 (exp is increasing).
    """
    if expr.is_positive:
        return "pos"
    if isinstance(expr, Sum):
        inner = sign(expr.function)
        return inner
    if isinstance(expr, sp.Pow) and expr.exp.is_even:
        return "pos" if sign(expr.base) == "pos" else "nonneg"
    if isinstance(expr, sp.exp) and expr.args[0].is_real:
        return "pos"
    if isinstance(expr, sp.Add):
        terms = expr.args
        # e^u - 1 with u > 0
        if len(terms) == 2 and -1 in terms:
            other = terms[0] if terms[1] == -1 else terms[1]
            if isinstance(other, sp.exp) and sign(other.args[0]) == "pos":
                return "pos"
        signs = [sign(term) for term in terms]
        if all(sg == "pos" for sg in signs):
            return "pos"
        if all(sg in ("pos", "nonneg") for sg in signs):
            return "pos" if "pos" in signs else "nonneg"
        return None
    if isinstance(expr, sp.Mul):
        signs = [sign(f) for f in expr.args]
        if all(sg == "pos" for sg in signs):
            return "pos"
        if all(sg in ("pos", "nonneg") for sg in signs):
            return "nonneg"
        return None
    if isinstance(expr, sp.Pow) and sign(expr.base) == "pos":
        return "pos"
    if expr.is_nonnegative:
        return "nonneg"
    return None


# --------------------------------------------------------------------------- numeric side
def _instances(derivation: Derivation, seed: int):
    rng = np.random.default_rng(seed)
    if derivation.concrete:
        env = D.Instance(rng, max(1, derivation.min_classes), 1)
        for assumption in derivation.assumptions:
            assumption.sample(env)
        yield env
        return
    for n_classes in CLASS_COUNTS:
        if n_classes < derivation.min_classes:
            continue
        for _ in range(SAMPLES_PER_T):
            env = D.Instance(rng, n_classes, int(rng.integers(1, 4)))
            for assumption in derivation.assumptions:
                assumption.sample(env)
            yield env


def evaluate(expr: sp.Expr, env: D.Instance) -> mpmath.mpf:
    """Evaluate ``expr`` on a concrete instance with mpmath at :data:`DIGITS` digits."""
    scalars = {sym: val for sym, val in env.items() if isinstance(sym, sp.Symbol)}
    # derivatives with respect to a scalar symbol are taken before it gets its value
    expr = expr.replace(lambda e: isinstance(e, Derivative) and any(
        isinstance(var, sp.Symbol) for var in e.variables), lambda e: e.doit())
    # bound variables get names of their own first, so only free symbols are replaced
    concrete = canonical_bound(expr).xreplace(
        {sym: sp.Integer(val) if sym.is_integer else sp.Float(val, DIGITS)
         for sym, val in scalars.items()})
    concrete = refine_ranges(concrete.doit())
    values = {}
    for item in concrete.atoms(Indexed):
        key = item.base[tuple(item.indices)] if len(item.indices) > 1 else item.base[item.indices[0]]
        if key not in env:
            raise KeyError(f"no value for {item} in a T={env.T}, N={env.N} instance")
        values[item] = sp.Float(env[key], DIGITS)
    number = concrete.xreplace(values).doit().evalf(DIGITS)
    if number.free_symbols:
        raise ValueError(f"could not evaluate {sp.sstr(expr)}: left with {number}")
    with mpmath.workdps(DIGITS):
        return mpmath.mpmathify(complex(number) if number.has(sp.I) else sp.Float(number, DIGITS)._to_mpmath(mpmath.mp.prec))


def _holds(lhs, rhs, rel) -> bool:
    with mpmath.workdps(DIGITS):
        scale = TOLERANCE * (1 + max(abs(lhs), abs(rhs)))
        if rel == "=":
            return abs(lhs - rhs) <= scale
        if rel == ">":
            return lhs > rhs + scale
        if rel == ">=":
            return lhs >= rhs - scale
        if rel == "<":
            return lhs < rhs - scale
        if rel == "<=":
            return lhs <= rhs + scale
    raise ValueError(rel)


def numeric_check(prev, step: Step, derivation: Derivation, seed: int) -> tuple[int, str | None]:
    """Check ``prev <rel> step.expr`` on random instances; (count, failure or None)."""
    this, rel = step.expr, step.rel
    if rel == "~":
        value = evaluate(prev, D.Instance(np.random.default_rng(0), 1, 1))
        with mpmath.workdps(DIGITS):
            scaled = value * mpmath.mpf(10) ** step.decimals
            ok = mpmath.nint(scaled) == mpmath.nint(evaluate(this, D.Instance(
                np.random.default_rng(0), 1, 1)) * mpmath.mpf(10) ** step.decimals)
        return 1, None if ok else (f"{mpmath.nstr(value, 12)} does not round to "
                                   f"{sp.sstr(this)} at {step.decimals} decimals")
    count = 0
    for env in _instances(derivation, seed):
        lhs, rhs = evaluate(prev, env), evaluate(this, env)
        count += 1
        if not _holds(lhs, rhs, rel):
            return count, (f"fails on the instance T={env.T}, N={env.N}: "
                           f"{mpmath.nstr(lhs, 15)} {rel} {mpmath.nstr(rhs, 15)} is false")
    return count, None


# --------------------------------------------------------------------------- driver
_LEMMAS_PROVED: set = set()


def _check_lemma(lemma: Derivation, seed: int, numeric: bool) -> None:
    """Check a cited lemma once per process (keyed by its content)."""
    key = (lemma.key, numeric, tuple(sp.srepr(step.expr) for step in lemma.steps))
    if key not in _LEMMAS_PROVED:
        check(lemma, seed=seed, numeric=numeric)
        _LEMMAS_PROVED.add(key)


def check(derivation: Derivation, seed: int = DEFAULT_SEED, numeric: bool = True) -> DerivationReport:
    """Check every step of ``derivation``; raise :class:`StepRejected` on the first bad one."""
    report = DerivationReport(derivation, class_counts=() if derivation.concrete else tuple(
        n for n in CLASS_COUNTS if n >= derivation.min_classes))
    start = time.perf_counter()
    steps = derivation.steps
    if not steps:
        raise ValueError(f"derivation {derivation.key!r} has no steps")
    for number in range(1, len(steps)):
        prev, this = steps[number - 1].expr, steps[number]
        tic = time.perf_counter()
        if this.lemma is not None:
            missing = [h.text for h in this.lemma.assumptions if h not in derivation.assumptions]
            if missing:
                raise StepRejected(derivation.title, number, this.why, prev, this.expr,
                                   f"the lemma {this.lemma.key!r} needs assumptions this "
                                   f"derivation does not make: {'; '.join(missing)}")
            _check_lemma(this.lemma, seed, numeric)
        how = symbolic_check(prev, this.expr, this.rel, derivation.assumptions, this.lemma)
        if how is None:
            raise StepRejected(derivation.title, number, this.why, prev, this.expr,
                               f"SymPy cannot show 'previous {this.rel} this' "
                               "under the assumptions")
        count, failure = (numeric_check(prev, this, derivation, seed + number)
                          if numeric else (0, None))
        if failure:
            raise StepRejected(derivation.title, number, this.why, prev, this.expr,
                               "the concrete check " + failure)
        report.steps.append(StepReport(number, this.why, this.rel, how, count,
                                       time.perf_counter() - tic))
    report.seconds = time.perf_counter() - start
    return report
