"""The numeric half: a step checked on every concrete instance (:func:`numeric_check`),
each instance checked against the assumptions; between closed numbers, and for a
rounding, decided by interval arithmetic (:mod:`derive.engine.closed`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import mpmath
import sympy as sp
from sympy import Derivative, Indexed

from .. import symbols
from . import settings
from .closed import Unclosed, _ends, _Undecided, closed, closed_relation, closed_rounding, enclose
from .evaluator import _Cancelled, _Evaluator, _holds, evaluate
from .forms import _apply, _doit
from .instances import Draws, class_counts
from .remembered import during_checks
from .steps import Derivation, EvaluationError, Step, plain
from .symbolic import untrusted_index


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
    for prec in settings.CLOSED_PRECISIONS:
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
        if cancelled.digits > settings.MAX_DIGITS:
            raise EvaluationError(f"{sp.sstr(cancelled.expr)} cancels beyond {settings.MAX_DIGITS} digits") from None
        with mpmath.workdps(cancelled.digits):
            return _Evaluator(shared.env, shared.deadline).truth(condition, {})


def _unsatisfied(env, shared, assumptions, rewrites, values: dict) -> str | None:
    """Why the instance ``env`` does not satisfy the assumptions (a condition false, a
    rewrite that changes a side's value), or None."""
    with mpmath.workdps(settings.DIGITS):
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


@during_checks
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
    this, assumptions = step.expr, derivation.assumptions
    counts = class_counts(derivation) if counts is None else counts
    decided, failure = _by_intervals(prev, step, assumptions)
    if failure is not None:
        return 0, failure
    rewrites = _assumption_rewrites(assumptions, (("previous", prev), ("this", this)))
    count, unsatisfied, drawn = 0, [], 0
    seen = {} if seen is None else seen
    draws = Draws(derivation, seed, counts) if draws is None else draws
    for env, trouble, shared in draws:
        if trouble:
            return count, NumericFailure("undefined", trouble)
        drawn += 1
        sides = _sides(env, shared, prev, this)
        if isinstance(sides, NumericFailure):
            return count, sides
        lhs, rhs = sides
        why = _unsatisfied(env, shared, assumptions, rewrites, {"previous": lhs, "this": rhs})
        if why is not None:
            unsatisfied.append(f"{_format(_describe(env, [prev, this]))}: {why}")
            continue
        count += 1
        seen.setdefault("T", set()).add(env.T)
        seen["N"] = max(seen.get("N", 0), env.N)
        if decided or _holds(lhs, rhs, step.rel):
            continue
        shown = _describe(env, [prev, this])
        return count, NumericFailure(
            "false", f"the concrete check fails on the instance {_format(shown)}: "
            f"previous = {_show(lhs)} {step.rel} this = {_show(rhs)} is false",
            {**shown, "previous": lhs, "this": rhs})
    return count, _unsatisfied_failure(unsatisfied, count, drawn)


def _by_intervals(prev, step: Step, assumptions) -> tuple[bool, NumericFailure | None]:
    """(whether interval arithmetic decides the step, its failure or None): a rounding,
    or a relation between two closed numbers."""
    if step.rel == "~":
        return True, _rounding_check(prev, step, assumptions)
    if closed(prev, assumptions) and closed(step.expr, assumptions):
        return True, _closed_check(prev, step.expr, step.rel, assumptions)
    return False, None


def _sides(env, shared, prev, this):
    """(previous, this) on the instance ``env``, or the failure of the one that cannot be
    evaluated there (what both sides, and the steps before, hold is evaluated once)."""
    sides = []
    for name, expr in (("previous", prev), ("this", this)):
        try:
            sides.append(evaluate(expr, env, shared))
        except EvaluationError as err:
            where = _format(_describe(env, [expr]))
            return NumericFailure("undefined", f"the {name} expression cannot be evaluated on the "
                                               f"instance {where}: {err}", _describe(env, [expr]))
    return tuple(sides)


def _unsatisfied_failure(unsatisfied: list, count: int, drawn: int) -> NumericFailure | None:
    """The failure when instances did not satisfy the assumptions: 'vacuous' when none
    did; None when every one did."""
    if unsatisfied and count == 0:
        return NumericFailure(
            "vacuous", f"vacuous: none of the {drawn} instances satisfies the assumptions (on "
                       f"the instance {unsatisfied[0]}); a statement under assumptions that "
                       "cannot hold proves nothing")
    if unsatisfied:
        return NumericFailure(
            "undefined", f"an instance does not satisfy the assumptions: on the instance "
                         f"{unsatisfied[0]} (an assumption's draw must make it hold, and its "
                         "rewrite may substitute only what it states)")
    return None
