"""The driver: :func:`gradient` applies a rule set step by step to a derivative until
the form is closed, and returns a :class:`GradientDerivation` the engine has checked;
:func:`jacobian` is one entry of a Jacobian by the same road.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import sympy as sp
from sympy import Derivative, IndexedBase, Sum

from .. import engine, symbols
from ..engine import Derivation, Step
from ..symbols import Assumption
from .rewriting import Context, Define, Definitions, Rule
from .rules import RULES, TIDY

_CLASS_NAMES = sp.symbols("s r t", integer=True, positive=True)
_FEATURE_NAMES = sp.symbols("n m", integer=True, positive=True)
#: the names a summation variable gets, by the size it runs up to
BOUND_NAMES = {symbols.CLASSES: _CLASS_NAMES, symbols.FEATURES: _FEATURE_NAMES}


def readable(expr: sp.Expr, taken: frozenset = frozenset()) -> sp.Expr:
    """The same expression with its summation variables given readable names (s, r
    over classes, n over features: :data:`BOUND_NAMES`) that are free nowhere in it: a
    renaming of bound variables, so the value is unchanged (the engine renames them
    back to check)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    taken = taken | frozenset(expr.free_symbols) if not taken else taken
    if isinstance(expr, Sum) and len(expr.limits) == 1:
        var, lo, hi = expr.limits[0]
        choices = [sym for sym in BOUND_NAMES.get(hi, ()) if sym not in taken and lo == 1]
        body = expr.function
        if choices and var not in BOUND_NAMES.get(hi, ()):
            body, var = body.xreplace({var: choices[0]}), choices[0]
        return Sum(readable(body, taken | {var}), (var, lo, hi))
    args = [readable(arg, taken) for arg in expr.args]
    return expr if all(x is y for x, y in zip(args, expr.args)) else expr.func(*args)


@dataclass
class GradientDerivation(Derivation):
    """A derivation produced by :func:`gradient`: ``closed`` says whether its result is
    a closed form (otherwise the last step is the last form reached), ``rules`` names
    the rules that fired, in order, ``automatic`` marks it for reports, and
    ``folds_names`` tells the printer to show the named quantities where a step folds
    them, not before."""

    folds_names: ClassVar[bool] = True
    closed: bool = False
    rules: tuple = ()
    parts: list = field(default_factory=list)  # derivations made on the way (chain rule)
    seconds: float = 0.0  # the time taken, the check included
    report: engine.DerivationCheck | None = None
    automatic: bool = True

    @property
    def definitions(self) -> tuple:
        """The assumption that defines the named quantities (one :class:`Definitions`),
        as a tuple to add to the assumptions of a derivation or claim that cites this
        one as a lemma (a lemma's assumptions must be made where it is cited); () when
        the rules define nothing."""
        return tuple(h for h in self.assumptions if isinstance(h, Definitions))

    @property
    def unfolded(self) -> sp.Expr:
        """The result with every named quantity replaced by its definition (S_j by
        e^{a_j}/sum_k e^{a_k}): the form to state where the names are not assumed, such
        as a kernel's claim or a verification's reference."""
        for assumption in self.assumptions:
            if isinstance(assumption, Definitions):
                return assumption.rewrite(self.result)
        return self.result


def is_closed(expr: sp.Expr, context: Context) -> bool:
    """No derivative left, and no Define of the rule set finds ``expr`` open (what its
    name stands for still written out): the form is in the named quantities, the
    target and the user's own symbols."""
    if expr.has(Derivative):
        return False
    return not any(define.is_open is not None and define.is_open(define, expr)
                   for define in context.defines)


def _title(wrt) -> str:
    return rf"$\partial L/\partial {sp.latex(wrt)}$ (automatic)"


def _rewrite_steps(expr: sp.Expr, rules: Sequence[Rule], context: Context,
                   max_steps: int) -> tuple[list[Step], list[str]]:
    """The chain from ``expr``: at each step the first rule of ``rules`` that changes
    the form to one not seen before fires (a rule SymPy cannot apply does not); stops
    when none does or at ``max_steps``. Returns the steps and the names of the rules
    that fired, in order."""
    steps, fired, seen = [Step(expr, "the derivative to find")], [], {expr}
    while len(steps) < max_steps:
        for rule in rules:
            try:
                new = rule.apply(expr, context)
            except Exception:  # noqa: BLE001, S112 - a rule SymPy cannot apply does not fire
                continue
            if new != expr and new not in seen:
                break
        else:
            break
        steps.append(Step(readable(new), f"{rule.justification(expr, new, context)} [rule {rule.name}]"))
        fired.append(rule.name)
        seen.add(new)
        expr = new
    return steps, fired


def gradient(loss: sp.Expr, wrt: sp.Expr, assumptions: Sequence[Assumption] = (),
             rules: Sequence[Rule] = RULES, *, key: str = "", title: str = "",
             matrix: str = "", min_classes: int = 1, section: str = "", check: bool = True,
             max_steps: int = 40, finish: bool = True) -> GradientDerivation:
    """The derivative of ``loss`` with respect to ``wrt``, derived step by step.

    Starts from ``Derivative(loss, wrt)`` and applies ``rules`` (a tuple in priority
    order: at each step the first rule that changes the form fires, one step per
    firing, never returning to a form seen before) until none applies; a closed result
    (:func:`is_closed`) gets a last "collect and factor" step (``finish``). With
    ``check`` (the default) :func:`derive.check` then checks every step under
    ``assumptions`` plus the definitions of the rule set's named quantities (the
    numeric half on instances with T >= ``min_classes``, the derivative by finite
    differences), and the report is kept in ``.report``; a false step raises
    :class:`derive.StepFalse` naming the rule (``[rule NAME]``).

    ``rules`` defaults to :data:`RULES`, which know no content (assumptions,
    linearity, Kronecker deltas, SymPy's diff); the softmax content's sets are
    :data:`derive.softmax.rules.RULES` (dL/da closed in S = softmax(a)),
    ``FC_RULES`` (through a = W x + b) and ``rule_set(softmax_of(...))`` (another
    softmax, such as that of a/tau). ``loss`` may use the names the rules define
    (``S[c]``): they are unfolded before differentiating.

    Where no rule applies and the form is not closed, ``closed`` is False, the title ends
    with "not closed" and the last step is the last form reached (still checked).

    Examples
    --------
    A loss of the user's own vector, with the rules that know no content:

    >>> import sympy as sp
    >>> from derive import gradient, vector
    >>> from derive.symbols import CLASSES as T
    >>> g = vector("g", lambda rng: rng.normal(0, 2))
    >>> s, i = sp.Symbol("s", integer=True, positive=True), sp.Symbol("i", integer=True, positive=True)
    >>> d = gradient(sp.Sum(g[s] ** 2, (s, 1, T)), g[i])
    >>> d.result, d.closed, d.rules
    (2*g[i], True, ('diff', 'delta_sum'))

    The softmax loss with soft labels, closed in S by the softmax content's rules:

    >>> from derive.softmax import definitions as D, rules as R
    >>> d = gradient(D.softmax_loss(), D.a[D.i], (D.REAL_LOGITS, D.SOFT_LABEL), R.RULES)
    >>> d.result, d.closed
    (S[i] - y[i], True)
    """
    tic = time.perf_counter()
    loss, context = _prepared(loss, wrt, assumptions, rules, key, check, min_classes)
    steps, fired = _rewrite_steps(Derivative(readable(loss), wrt), rules, context, max_steps)
    closed = is_closed(steps[-1].expr, context)
    if closed and finish:
        _tidy(steps, fired, context)
    key, title = _named(key, title, wrt, closed)
    derivation = GradientDerivation(key, title, context.assumptions, steps, matrix=matrix,
                                    min_classes=min_classes, section=section, closed=closed,
                                    rules=tuple(fired), parts=list(context.parts))
    if check and len(steps) >= 2:  # with nothing applied, check would reject an empty chain
        derivation.report = engine.check(derivation)
    derivation.seconds = time.perf_counter() - tic
    return derivation


def _prepared(loss, wrt, assumptions, rules, key, check, min_classes) -> tuple[sp.Expr, Context]:
    """The loss with the rule set's names unfolded (the numeric check of a derivative moves
    the variable, not the names), and the context: the assumptions plus the definitions
    of the rule set's named quantities (last: they compute from the others' values)."""
    defines = tuple(rule for rule in rules if isinstance(rule, Define))
    definitions = Definitions("; ".join(d.why for d in defines), defines) if defines else None
    every = tuple(assumptions) + ((definitions,) if definitions else ())
    context = Context(wrt, every, defines, key=key or "gradient", check=check, min_classes=min_classes)
    return (definitions.rewrite(loss) if definitions is not None else loss), context


def _tidy(steps: list[Step], fired: list[str], context: Context) -> None:
    """Append the cosmetic last step (collect and factor) of a closed form, if it changes it."""
    expr = steps[-1].expr
    tidy = TIDY.apply(expr, context)
    if tidy != expr:
        steps.append(Step(readable(tidy), f"{TIDY.why} [rule {TIDY.name}]"))
        fired.append(TIDY.name)


def _named(key: str, title: str, wrt, closed: bool) -> tuple[str, str]:
    """The derivation's key and title (given, or made from the variable); the title of a
    form that is not closed says so."""
    key = key or f"gradient_{sp.sstr(wrt)}".replace("[", "_").replace("]", "").replace(", ", "_")
    title = title or _title(wrt)
    if not closed:
        title += " -- not closed: the last form reached is shown"
    return key, title


def jacobian(component: Callable[[sp.Expr], sp.Expr], wrt: IndexedBase, row: sp.Symbol,
             column: sp.Symbol, assumptions: Sequence[Assumption] = (),
             rules: Sequence[Rule] = RULES, **options) -> GradientDerivation:
    """The entry (row, column) of the Jacobian of a vector function, d f_row / d wrt_column,
    derived by :func:`gradient` (``options`` as there).

    ``component(u)`` is the function's u-th output.

    Examples
    --------
    The softmax Jacobian, S_j (delta_ij - S_i):

    >>> from derive import jacobian
    >>> from derive.softmax import definitions as D, rules as R
    >>> d = jacobian(D.softmax, D.a, D.j, D.i, (D.REAL_LOGITS,), R.RULES)
    >>> d.result
    (KroneckerDelta(i, j) - S[i])*S[j]
    """
    return gradient(component(row), wrt[column], assumptions, rules, **options)
