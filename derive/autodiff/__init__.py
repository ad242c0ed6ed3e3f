"""Automatic gradients: SymPy differentiates, named rewrite rules close the form, the
engine checks every step.

The machinery only: it names no quantity of anyone's content. ``gradient(loss, wrt,
assumptions, rules)`` returns an :class:`engine.Derivation` whose steps are produced,
not typed:

1. the derivative to find, ``Derivative(loss, wrt)``;
2. rewrites of its body that make differentiation short (linearity of sums, what the
   assumptions state such as ``sum_j y_j = 1``, the linearity of the derivative, the
   content's known derivatives), then SymPy's ``diff`` for what is left (bound
   variables renamed first, as the engine does, so a summation index is never confused
   with a free one);
3. rewrites of the result, one step per rule: Kronecker-delta sums, the definitions of
   the quantities the answer is stated in (:class:`Define`), collecting and factoring --
   until the form is *closed*: no derivative left and no Define of the rule set finding
   what its name stands for still written out (:func:`is_closed`);
4. :func:`engine.check` on the whole chain, exactly as for a hand-written one. A
   rejected step names the rule that produced it (its justification ends with
   ``[rule NAME]``).

Rewrite rules are data, as in SymPy's ``codegen/rewriting.py``: a :class:`Rule` has a
name, a justification, a pattern (a SymPy expression with ``Wild`` s, or a callable
matcher) and a replacement (an expression in those wilds, or a callable). Rule sets are
tuples in priority order -- at each step the first rule that changes the expression
fires -- and users extend them by concatenation. This module holds the rules that know
nothing of a content (:data:`RULES`: assumptions, linearity, Kronecker deltas, counting,
``diff``); the softmax content's rules and sets (the definition of S, ``log S_j = a_j -
log Z``, ``d log Z/da_i = S_i``, the FC layer) are :mod:`derive.softmax.rules`::

    P = IndexedBase("P")  # the user's own quantity, P_j = S_j - y_j
    MY_RULES = SOFTMAX_RULES + (Define("residual", "definition of $P_j$", base=P,
                                       body=lambda u: S[u] - y[u]),)

A :class:`Define` rule names a quantity (``S``, or a user's own): it folds the
quantity's definition into its name outside derivatives, and it becomes an assumption
of the derivation (its rewrite unfolds the name for the symbolic check, its sampler
computes the quantity's values from the instance for the numeric one), so a result
stated in the name is checked against the definition.

Where no rule applies and the form is not closed, the derivation says so
(``closed`` is False, the title ends with "not closed") and its last step is the last
form reached: it never claims more than it proved.
"""
from .driver import BOUND_NAMES, GradientDerivation, gradient, is_closed, jacobian, readable
from .language import Language, Question
from .rewriting import (
    SLOT,
    ByAssumptions,
    Context,
    Define,
    Definitions,
    Differentiate,
    Matcher,
    Protected,
    Rule,
)
from .rules import (
    ASSUMPTIONS,
    BEFORE_DIFF,
    COUNT,
    DELTA_SUM,
    DERIVATIVE_LINEARITY,
    DIFF,
    DIFFERENTIATE,
    RULES,
    SUM_LINEARITY,
    TIDY,
    ChainRule,
    through,
)

__all__ = [
    "ASSUMPTIONS", "BEFORE_DIFF", "BOUND_NAMES", "COUNT", "DELTA_SUM", "DERIVATIVE_LINEARITY", "DIFF",
    "DIFFERENTIATE", "RULES", "SLOT", "SUM_LINEARITY", "TIDY", "ByAssumptions", "ChainRule", "Context",
    "Define", "Definitions", "Differentiate", "GradientDerivation", "Language", "Matcher", "Protected",
    "Question", "Rule", "gradient", "is_closed", "jacobian", "readable", "through",
]
