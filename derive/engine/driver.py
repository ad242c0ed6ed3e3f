"""The driver: :func:`check` takes a derivation link by link -- the cited lemmas, the
numeric half, then the symbolic half -- and remembers each accepted link."""
from __future__ import annotations

import functools
import time

import sympy as sp

from .. import symbols
from . import settings
from .behaviour import (
    _BEHAVIOUR_CACHE,
    Unknowable,
    _assumptions_behaviour,
    _depends_on,
    _known_fingerprint,
    fingerprint,
    srepr,
)
from .instances import Draws, class_counts, derivation_seed, instance_count
from .lemmas import _only_equalities
from .memo import _remember, _remembered
from .numeric import numeric_check
from .remembered import during_checks
from .steps import (
    Derivation,
    DerivationCheck,
    LemmaRefused,
    Step,
    StepCheck,
    StepFalse,
    StepRejected,
    StepUndefined,
    StepUnproved,
    StepVacuous,
)
from .symbolic import symbolic_check, untrusted_index

#: lemmas checked in this process, keyed by :func:`fingerprint` (only lemmas whose
#: every part can be known)
_LEMMAS_PROVED: set = set()
#: links accepted in this process, keyed by everything their check depends on (see
#: :func:`_link_key`); a link that depends on something unknowable is never remembered
_LINKS_PROVED: dict = {}


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
    return (settings.CLASS_COUNTS, settings.LARGEST_RANDOM_T, settings.SAMPLES_PER_T, settings.DIGITS,
            str(settings.TOLERANCE), settings.WIDE_CLASSES, settings.WIDE_SIZES, settings.WIDE_SAMPLES,
            settings.MAX_DIGITS)


def _link_key(derivation: Derivation, number: int, base: int, counts: tuple, numeric: bool):
    """Everything the check of link ``number`` depends on, or None if some of it cannot
    be known (an assumption's rewrite, a sampler reaching an object of unknown kind)."""
    prev, this = derivation.steps[number - 1].expr, derivation.steps[number]
    try:
        return (_assumptions_behaviour(derivation.assumptions), derivation.min_classes, counts, numeric,
                base + number, srepr(prev), srepr(this.expr), this.rel, this.decimals,
                tuple(fingerprint(lemma) for lemma in this.lemmas),
                _depends_on([prev, this.expr]), _numeric_settings())
    except Unknowable:
        return None


def _valid_link(value) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int))


@during_checks
def check(derivation: Derivation, seed: int = settings.DEFAULT_SEED, numeric: bool = True) -> DerivationCheck:
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
