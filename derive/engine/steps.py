"""What a derivation is: :class:`Step`, :class:`Derivation`, what :func:`~derive.engine.check`
returns (:class:`StepCheck`, :class:`DerivationCheck`) and every way a step is rejected
(:class:`StepRejected` and its kinds)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed

from .. import symbols

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
