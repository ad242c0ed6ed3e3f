"""Stable kernels derived, not written: a rule set that rewrites a closed form into
array expressions that lose no accuracy in float64.

The input is an expression in index notation over named softmaxes (``S_j``, a
teacher's ``P_j``: each a :class:`Family`, the softmax of an expression f of the
logits), the target (``delta_jc``, ``S_c``), the user's vectors and scalars, and sums
over the classes. The output is an array expression over :mod:`derive.functions` and
:mod:`derive.stable_forms`, whose index form the code generator proves equal to the
definition (:class:`derive.Claim`). The rules are data, as the gradient rules are
(:class:`StableRule`: a name, a justification, a matcher and a builder), tried in the
order of :data:`RULES` at every node from the top; the first that matches builds the
node's array form from the array forms of its parts:

* ``softmax_through_max`` -- S_j(f) = e^{f_j - f_k} / (1 + sum_{j != k} e^{f_j - f_k})
  with k the row's argmax of f, f carried as a double-double so that f_j - f_k is
  rounded once (a temperature, a per-class offset, a margin on the true class, a second
  logit vector: any f built from +, -, x, / of the inputs);
* ``log_softmax`` -- log S_j = (f_j - f_k) - log1p(s');
* ``log_partition`` -- log sum_j e^{f_j} = f_k + log1p(s');
* ``complement`` -- 1 - S_c = s'/(1 + s') when c is the argmax, else 1 - S_c (then
  S_c <= 1/2: no cancellation);
* ``gradient_pair`` -- S_j - delta_jc: 1 - S_c at the true class as above;
* ``power_through_log`` -- S_c^p = e^{p log S_c} (log S_c from log_softmax);
* ``scaled_product`` -- S_j g rounded once: 2^-900 (2^900 e^{f_j - f_k} g / (1 + s'));
* ``target_product`` -- S_j S_c h through one exponential e^{f_j + f_c - 2 f_k} and
  (1 + s')^2 in double-double, rounded once (a polynomial of S_c's gradient);
* ``accurate_row_sum`` -- sum_s g_s, summed to about one rounding.

The array forms are in :mod:`derive.stable_forms`, the rules in
:mod:`derive.stable_rules` (each beside its matcher and builder); this module walks an
expression with them.

Anything else is taken apart: sums, products and powers of the parts' array forms.
What has no rule (a logit outside any softmax, an exponential, a sum over another
range) is a :class:`NotStable` naming the subexpression. Sums whose terms may cancel
are recorded (:attr:`Stabilised.cancelling`): the verification measures their error in
ULPs of the sum of the terms' magnitudes (:func:`magnitude`), and says so.

>>> from derive.softmax import definitions as D, rules as R
>>> S, _ = R.recognise(-sp.log(D.softmax(D.c)))
>>> stable = stabilise(R.S[D.j] - sp.KroneckerDelta(D.c, D.j), families((S,)))
>>> stable.rules
('gradient_pair',)
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import Indexed, KroneckerDelta

from . import symbols
from .functions import A, C, Take, to_indexed
from .stable_forms import Classes, Family, NotStable, OneHot, _array_of, families, helper_sources
from .stable_rules import RULES, Context, StableRule, _mixed


def walk(e, ctx: Context):
    """The array form of ``e`` by the rules in force (``ctx.rules``), its parts taken apart."""
    for rule in ctx.rules:
        found = rule.match(e, ctx)
        if found is not None:
            ctx.fired.append(rule.name)
            return rule.build(e, ctx, found)
    if e.is_Number or (isinstance(e, sp.Symbol) and not e.is_integer):
        return e
    if e == symbols.CLASSES:
        return Classes(A)
    if isinstance(e, KroneckerDelta) and set(e.args) == {ctx.j, ctx.c}:
        return OneHot(A, C)
    if isinstance(e, Indexed):
        if e.indices == (ctx.j,):
            return _array_of(e.base)
        if e.indices == (ctx.c,):
            return Take(_array_of(e.base), C)
        raise NotStable(f"no array form for {e}: a component at another index", e)
    if isinstance(e, sp.Add):
        if _mixed(e, ctx):
            ctx.cancelling.append(e)
        return sp.Add(*(walk(t, ctx) for t in e.args))
    if isinstance(e, (sp.Mul, sp.Pow)):
        return e.func(*(walk(arg, ctx) for arg in e.args))
    if isinstance(e, (sp.exp, sp.log)) and not e.has(*ctx.families):
        if not any(isinstance(x, Indexed) for x in e.atoms(Indexed)):
            return e.func(walk(e.args[0], ctx))
    raise NotStable(f"no stable form for {sp.sstr(e)}: no rule of derive.stable.RULES matches it "
                    "(an exponential or a logit outside a softmax, a sum over another range)", e)


@dataclass
class Stabilised:
    """The array form of a closed form, the rules that built it, and the sums in it
    whose terms may cancel (their error is measured against :func:`magnitude`)."""

    expr: sp.Expr
    array: sp.Expr
    rules: tuple
    cancelling: tuple


def stabilise(expr: sp.Expr, fams: dict, j: sp.Symbol = symbols.j, c: sp.Symbol | None = None,
              rules: tuple = RULES) -> Stabilised:
    """The stable array form of ``expr`` (index notation at the output index ``j``,
    target ``c``) over the softmax families ``fams`` by ``rules`` (default
    :data:`RULES`); :class:`NotStable` naming the subexpression that has none."""
    from .symbols import INDEX_RANGES

    c = c if c is not None else next((x for x in INDEX_RANGES if x.name == "c"), sp.Symbol("c"))
    ctx = Context(fams, j, c, tuple(rules), walk)
    array = walk(expr, ctx)
    return Stabilised(expr, array, tuple(ctx.fired), tuple(ctx.cancelling))


def _has_pair(e: sp.Add) -> bool:
    """A sum with a term +-delta_jc (the pair S_j - delta_jc among its terms)."""
    return any(isinstance(t, KroneckerDelta) or isinstance(-t, KroneckerDelta) for t in e.args)


def magnitude(expr: sp.Expr, cancelling) -> sp.Expr:
    """``expr`` with every sum of :attr:`Stabilised.cancelling` replaced by the sum of
    its terms' magnitudes: the scale in whose ULPs a rounding error of such a sum is
    measured (the relative error of a sum that cancels is unbounded in any
    floating-point evaluation; this is the sum's own condition)."""
    if not cancelling:
        return expr
    table = {e: sp.Add(*(sp.Abs(t) for t in e.args)) for e in cancelling if not _has_pair(e)}
    new = expr.xreplace(table)
    if new != expr and len(table) == len(cancelling):
        return new
    # the cancelling sums are parts of an expanded form (S_j - delta_jc + u S_j (...)):
    # the pair S_j - delta_jc stays one term (its stable form does not cancel)
    terms = list(sp.Add.make_args(sp.expand_mul(expr)))
    out = []
    deltas = [t for t in terms if isinstance(t, KroneckerDelta)]
    for pair in deltas + [-t for t in terms if isinstance(-t, KroneckerDelta)]:
        for t in terms:
            if isinstance(t, Indexed) and -pair in terms:
                terms.remove(t)
                terms.remove(-pair)
                out.append(sp.Abs(t - pair))
                break
    return sp.Add(*out, *(sp.Abs(t).xreplace(table) for t in terms))


__all__ = ["Family", "NotStable", "RULES", "StableRule", "Stabilised", "families", "helper_sources", "magnitude",
           "stabilise", "to_indexed", "walk"]
