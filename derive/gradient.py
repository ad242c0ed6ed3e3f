"""Automatic gradients: SymPy differentiates, named rewrite rules close the form, the
engine checks every step.

``gradient(loss, wrt)`` returns an :class:`engine.Derivation` whose steps are produced,
not typed:

1. the derivative to find, ``Derivative(loss, wrt)``;
2. rewrites of its body that make differentiation short (``log S_j = a_j - log Z``,
   linearity of sums, what the assumptions state such as ``sum_j y_j = 1``), the
   linearity of the derivative, known derivatives (``d log Z / d a_i = S_i``), then
   SymPy's ``diff`` for what is left (bound variables renamed first, as the engine
   does, so a summation index is never confused with a free one);
3. rewrites of the result, one step per rule: Kronecker-delta sums, the definitions of
   the quantities the answer is stated in (``e^{a_j} / sum_k e^{a_k} -> S_j``), sums
   of S that equal 1, collecting and factoring -- until the form is *closed*: no
   derivative, no exponential and no logit left outside ``log Z``;
4. :func:`engine.check` on the whole chain, exactly as for a hand-written one. A
   rejected step names the rule that produced it (its justification ends with
   ``[rule NAME]``).

Rewrite rules are data, as in SymPy's ``codegen/rewriting.py``: a :class:`Rule` has a
name, a justification, a pattern (a SymPy expression with ``Wild`` s, or a callable
matcher) and a replacement (an expression in those wilds, or a callable). Rule sets are
tuples in priority order -- at each step the first rule that changes the expression
fires -- and users extend them by concatenation::

    P = IndexedBase("P")  # the user's own quantity, P_j = S_j - y_j
    MY_RULES = DEFAULT_RULES + (Define("residual", "definition of $P_j$", base=P,
                                       body=lambda u: S[u] - y[u]),)

A :class:`Define` rule names a quantity (``S``, or a user's own): it folds the
quantity's definition into its name outside derivatives, and it becomes an assumption
of the derivation (its rewrite unfolds the name for the symbolic check, its sampler
computes the quantity's values from the instance for the numeric one), so a result
stated in S is checked against the definition of S.

Where no rule applies and the form is not closed, the derivation says so
(``closed`` is False, the title ends with "not closed") and its last step is the last
form reached: it never claims more than it proved.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sympy as sp
from sympy import Derivative, Indexed, IndexedBase, KroneckerDelta, Sum, exp, log

from . import engine, symbols
from .engine import Derivation, Step
from .softmax import definitions as D
from .symbols import scalar

Matcher = Callable[[sp.Basic], bool]


# --------------------------------------------------------------------------- machinery
@dataclass(frozen=True)
class Context:
    """What a rule may consult: the variable, the assumptions and the named quantities."""

    wrt: sp.Expr
    assumptions: tuple
    defines: tuple = ()  # the Define rules of the rule set, in order
    key: str = "gradient"
    check: bool = True
    min_classes: int = 1
    parts: list = field(default_factory=list)  # derivations the rules derived on the way

    @property
    def names(self) -> tuple:
        return tuple(define.base for define in self.defines)


def _is_callable(obj) -> bool:
    return callable(obj) and not isinstance(obj, sp.Basic)


def _rewrite(expr, one, context, inside_derivatives):
    """Bottom-up rewrite of ``expr`` with ``one(e, context)`` (None: leave e)."""
    if isinstance(expr, Indexed):  # a component is rewritten whole, never its indices
        replaced = one(expr, context)
        return expr if replaced is None else replaced
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    if isinstance(expr, Derivative) and not inside_derivatives:
        return expr
    args = [_rewrite(arg, one, context, inside_derivatives) for arg in expr.args]
    new = expr if all(x is y for x, y in zip(args, expr.args)) else expr.func(*args)
    replaced = one(new, context)
    return new if replaced is None else replaced


@dataclass(frozen=True)
class Rule:
    """A named rewrite: every subexpression matching ``pattern`` becomes ``replacement``.

    ``pattern`` is a SymPy expression with ``Wild`` s or a callable ``matcher(e) ->
    bool``; ``replacement`` is an expression in the same wilds, or a callable
    ``(e, context) -> new`` (given a matcher) or ``(e, context, wilds) -> new`` (given
    a pattern). The rewrite goes bottom-up over the whole expression.
    ``inside_derivatives=False`` leaves the bodies of unevaluated derivatives alone (a
    rule that introduces a *named* quantity must: the numeric check of a derivative
    moves the variable, not the name). ``why`` is the step's justification (LaTeX
    allowed); the step says ``[rule NAME]`` after it.

    Example -- a user's rule with a pattern (it must be true: the checker rejects the
    step it produces otherwise, naming the rule)::

        w = sp.Wild("w")
        EXP_LOG = Rule("exp_log", r"$e^{\\log w} = w$", sp.exp(sp.log(w)), w)
        rules = (EXP_LOG,) + DEFAULT_RULES
    """

    name: str
    why: str
    pattern: sp.Basic | Callable | None = None
    replacement: sp.Basic | Callable | None = None
    inside_derivatives: bool = True

    def apply(self, expr: sp.Expr, context: Context) -> sp.Expr:
        """``expr`` with every match rewritten (``expr`` itself when none matches)."""
        return _rewrite(expr, self._one, context, self.inside_derivatives)

    def justification(self, before: sp.Expr, after: sp.Expr, context: Context) -> str:
        return self.why

    def _one(self, e, context):
        if _is_callable(self.pattern):
            return self.replacement(e, context) if self.pattern(e) else None
        found = e.match(self.pattern)
        if found is None:
            return None
        if _is_callable(self.replacement):
            return self.replacement(e, context, found)
        return self.replacement.xreplace(found)


@dataclass(frozen=True)
class ByAssumptions(Rule):
    """What the assumptions state, each by its own sound rewrite (sum_j y_j = 1,
    y_j = delta_jc), one step per assumption, justified by the assumption's text."""

    name: str = "assumptions"
    why: str = "what the assumptions state"

    def _first(self, expr, context):
        for assumption in context.assumptions:
            if isinstance(assumption, Definitions):
                continue  # unfolding the names is the opposite of closing the form
            new = assumption.rewrite(expr)
            if new != expr:
                return assumption, new
        return None, expr

    def apply(self, expr, context):
        return self._first(expr, context)[1]

    def justification(self, before, after, context):
        assumption, _ = self._first(before, context)
        return assumption.text if assumption is not None else self.why


@dataclass(frozen=True)
class Differentiate(Rule):
    """SymPy's ``diff`` for every derivative left, bound variables renamed first
    (:func:`engine.canonical_bound`) so that a summation index is never confused with
    a free index of the same name, range conditions resolved after
    (:func:`engine.refine_ranges`)."""

    name: str = "diff"
    why: str = "differentiate (SymPy's diff)"

    def apply(self, expr, context):
        def one(e, _context):
            if not isinstance(e, Derivative):
                return None
            body = engine.canonical_bound(e.expr)
            for var, count in e.variable_count:
                body = sp.diff(body, var, count)
            return engine.refine_ranges(body)
        return _rewrite(expr, one, context, True)


def _factors(product) -> list:
    """[(base, exponent)] of a product, exponentials kept whole (never merged)."""
    out = []
    for f in sp.Mul.make_args(product):
        if isinstance(f, exp):  # e^{u + v} = e^u e^v, e^{n u} = (e^u)^n: SymPy merges them
            for term in sp.Add.make_args(f.args[0]):
                count, rest = term.as_coeff_Mul()
                if count.is_Integer and count > 1:
                    out.append((exp(rest), count))
                else:
                    out.append((exp(term), sp.Integer(1)))
        elif isinstance(f, sp.Pow) and f.exp.is_Integer:
            out.append((f.base, f.exp))
        else:
            out.append((f, sp.Integer(1)))
    return out


@dataclass(frozen=True)
class Define(Rule):
    """A named quantity ``base[u] = body(u)``.

    As a rule it folds ``body(u)`` into ``base[u]`` outside derivatives, also inside
    products (``e^{a_i} x_q / Z^2 e^{a_c} -> S_i S_c x_q``). Every Define of a rule set
    is an assumption of the derivation (:class:`Definitions`), so a result stated in
    the name is checked against the definition. A definition may use the names defined
    before it in the rule set.

    Example -- the softmax of logits scaled by a temperature tau::

        TAU = sp.Symbol("tau", positive=True)
        S_TAU = Define("softmax_tau", r"$S_j = e^{a_j/\\tau} / \\sum_k e^{a_k/\\tau}$",
                       base=IndexedBase("S"), body=lambda u: softmax(u, lambda v: a[v] / TAU))
    """

    inside_derivatives: bool = False
    base: IndexedBase | None = None
    body: Callable | None = None

    @property
    def template(self) -> sp.Expr:
        return engine.canonical_bound(self.body(_SLOT))

    def apply(self, expr, context):
        return self.fold(expr, context, self.inside_derivatives)

    def fold(self, expr, context=None, inside_derivatives=False):
        """``expr`` with every instance of the definition folded into the name."""
        wild = sp.Wild("u_", properties=[lambda e: e.is_Symbol or e.is_Integer])
        pattern = self.template.xreplace({_SLOT: wild})
        parts = _factors(pattern) if isinstance(pattern, sp.Mul) else None

        def one(e, _context):
            found = e.match(pattern)
            if found is not None and wild in found:
                return self.base[found[wild]]
            if isinstance(pattern, sp.Add) and isinstance(e, sp.Add):
                return _fold_terms(e, pattern, wild, self.base)
            if parts is None or not isinstance(e, sp.Mul):
                return None
            return _fold_product(e, parts, wild, self.base)
        canonical = engine.canonical_bound(expr)
        new = _rewrite(canonical, one, context, inside_derivatives)
        return expr if new == canonical else new

    def unfold(self, expr):
        """``expr`` with the name replaced by its definition."""
        return expr.replace(lambda e: isinstance(e, Indexed) and e.base == self.base,
                            lambda e: self.body(e.indices[0]))


@dataclass(frozen=True)
class Protected(Rule):
    """``rule`` applied with the instances of ``define`` held together: folded into the
    name first (inside derivatives too) and unfolded after, so that, e.g., linearity
    does not split a_j = sum_n W_jn x_n + b_j apart and the chain rule can still see it."""

    rule: Rule | None = None
    define: Define | None = None

    def apply(self, expr, context):
        folded = self.define.fold(expr, context, inside_derivatives=True)
        if folded == expr:
            return self.rule.apply(expr, context)
        new = self.rule.apply(folded, context)
        return expr if new == folded else self.define.unfold(new)

    def justification(self, before, after, context):
        return self.rule.why


_SLOT = sp.Symbol("slot_", integer=True, positive=True)  # the index a template is written in


def _fold_terms(total, pattern, wild, base):
    """Fold every instance of the template's terms (all of them, with one sign) inside
    the sum ``total`` into ``base[u]``: b_s + sum_n W_sn x_n - log Z -> a_s - log Z."""
    terms = list(sp.Add.make_args(total))
    wanted = list(sp.Add.make_args(pattern))
    folded = []
    for sign_ in (1, -1):
        for term in list(terms):
            found = (sign_ * term).match(wanted[0])
            if found is None or wild not in found:
                continue
            need = [sign_ * w.xreplace(found) for w in wanted]
            if all(n in terms for n in need):
                for n in need:
                    terms.remove(n)
                folded.append(sign_ * base[found[wild]])
    return sp.Add(*terms, *folded) if folded else None


def _fold_product(product, parts, wild, base):
    """Fold every instance of the template factors ``parts`` (which carry ``wild``)
    inside ``product`` into ``base[u]``; None if there is none."""
    have = {}
    for b_, e_ in _factors(product):
        have[b_] = have.get(b_, 0) + e_
    keyed = [(pb, pe) for pb, pe in parts if pb.has(wild)]
    if len(keyed) != 1:
        return None
    (kb, _), = keyed
    folded = []
    for b_ in list(have):
        found = b_.match(kb)
        if found is None or wild not in found:
            continue
        need = [(pb.xreplace(found), pe) for pb, pe in parts]
        while all(_takes(have.get(nb, 0), ne) for nb, ne in need):
            for nb, ne in need:
                have[nb] -= ne
            folded.append(base[found[wild]])
    if not folded:
        return None
    return sp.Mul(*folded) * sp.Mul(*(b_ ** e_ for b_, e_ in have.items() if e_ != 0))


def _takes(available, needed) -> bool:
    """``needed`` (a power) can be taken from ``available`` without flipping its sign."""
    return available != 0 and (available * needed > 0) and abs(available) >= abs(needed)


@dataclass(frozen=True, repr=False)
class Definitions(D.Assumption):
    """The definitions of a rule set's named quantities, as one assumption.

    Its rewrite unfolds every name (the latest definition first, so that names defined
    in terms of earlier ones unfold completely); its sampler computes each name's values
    from the instance, in the order of definition (after every other assumption has
    drawn its values: :func:`gradient` puts it last)."""

    defines: tuple = ()

    def __repr__(self):
        # the engine keys its cache of proved links by repr: the definitions' content,
        # never a lambda's address (which a later, different lambda may reuse)
        shown = ", ".join(f"{d.name}: {d.base}[u] = {sp.sstr(d.template)}" for d in self.defines)
        return f"Definitions({self.text!r}; {shown})"

    def rewrite(self, expr):
        for define in reversed(self.defines):
            expr = expr.replace(lambda e, d=define: isinstance(e, Indexed) and e.base == d.base,
                                lambda e, d=define: d.body(e.indices[0]))
        return expr

    def sample(self, env):
        for define in self.defines:
            for sym in sorted(define.body(_SLOT).free_symbols, key=sp.default_sort_key):
                # a scalar of the definition (a temperature) is drawn now, by the sampler
                # it was declared with, as the engine draws any other (it keeps this value)
                if isinstance(sym, sp.Symbol) and not sym.is_integer and sym not in env:
                    symbols.draw_declared(env, [sym], env.rng)
            for idx in range(1, env.T + 1):
                env[define.base[idx]] = engine.evaluate(define.body(sp.Integer(idx)), env)


# --------------------------------------------------------------------------- matchers
def _is_partition(e) -> bool:
    """A sum of exponentials over one index, sum_r e^{g_r}: positive when non-empty."""
    return isinstance(e, Sum) and len(e.limits) == 1 and isinstance(e.function, exp)


def _is_inverse_partition(f, any_power: bool = False) -> bool:
    """1 / sum_r e^{g_r} (or, with ``any_power``, any negative integer power of it)."""
    if not (isinstance(f, sp.Pow) and _is_partition(f.base)):
        return False
    return f.exp == -1 or (any_power and f.exp.is_Integer and f.exp < 0)


def _log_of_softmax(e) -> bool:
    if not (isinstance(e, log) and isinstance(e.args[0], sp.Mul)):
        return False
    factors = sp.Mul.make_args(e.args[0])
    return (any(isinstance(f, exp) for f in factors) and any(_is_inverse_partition(f) for f in factors)
            and all(isinstance(f, exp) or _is_inverse_partition(f) for f in factors))


def _split_log_of_softmax(e, _context):
    """log(e^u / sum_r e^{g_r}) = u - log sum_r e^{g_r} (the denominator is positive)."""
    return sp.Add(*(f.args[0] if isinstance(f, exp) else -log(f.base) for f in sp.Mul.make_args(e.args[0])))


def _splittable_sum(e) -> bool:
    if not isinstance(e, Sum) or len(e.limits) != 1:
        return False
    body, var = e.function, e.limits[0][0]
    if isinstance(sp.expand_mul(body, deep=False), sp.Add):
        return True
    factors = sp.Mul.make_args(body)
    return len(factors) > 1 and any(var not in f.free_symbols for f in factors)


def _split_sum(e, _context):
    """sum_j (f_j + g_j) = sum_j f_j + sum_j g_j; sum_j c f_j = c sum_j f_j."""
    var = e.limits[0][0]
    total = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand_mul(e.function, deep=False)):
        const = [f for f in sp.Mul.make_args(term) if var not in f.free_symbols]
        rest = [f for f in sp.Mul.make_args(term) if var in f.free_symbols]
        total += sp.Mul(*const) * Sum(sp.Mul(*rest), e.limits[0])
    return total


def _delta_partner(e):
    """(delta, u) when ``e`` is sum_v f delta_{v u} with u a free index whose range is
    exactly the sum's, so that the one term v = u survives."""
    if not isinstance(e, Sum) or len(e.limits) != 1:
        return None
    var, lo, hi = e.limits[0]
    for f in sp.Mul.make_args(e.function):
        if isinstance(f, KroneckerDelta) and var in f.args:
            other = f.args[0] if f.args[1] == var else f.args[1]
            if other in D.INDEX_RANGES and lo == 1 and hi == D.INDEX_RANGES[other]:
                return f, other
    return None


def _sum_delta(e, _context):
    delta_, other = _delta_partner(e)
    return (e.function / delta_).xreplace({e.limits[0][0]: other})


def _constant(f, var) -> bool:
    """``f`` does not depend on ``var``: it holds neither ``var`` nor (for a component)
    any component of its vector."""
    return not f.has(var.base) if isinstance(var, Indexed) else not f.has(var)


def _linear_derivative(e) -> bool:
    if not isinstance(e, Derivative) or len(e.variables) != 1:
        return False
    body, var = e.expr, e.variables[0]
    return isinstance(body, sp.Add) or (isinstance(body, sp.Mul) and any(_constant(f, var) for f in body.args))


def _split_derivative(e, _context):
    """d(f + g) = df + dg; d(c f) = c df for c constant in the variable."""
    var = e.variables[0]
    total = sp.Integer(0)
    for term in sp.Add.make_args(e.expr):
        const = [f for f in sp.Mul.make_args(term) if _constant(f, var)]
        rest = [f for f in sp.Mul.make_args(term) if not _constant(f, var)]
        total += sp.Mul(*const) * (Derivative(sp.Mul(*rest), var) if rest else 0)
    return total


def _d_log_partition(e) -> bool:
    return (isinstance(e, Derivative) and len(e.variables) == 1 and isinstance(e.expr, log)
            and _is_partition(e.expr.args[0]))


def _diff_log_partition(e, _context):
    """d log sum_r e^{g_r} / dv = sum_r e^{g_r} dg_r/dv / sum_r e^{g_r}."""
    total, var = e.expr.args[0], e.variables[0]
    (r_, lo, hi), = total.limits
    g = total.function.args[0]
    return Sum(exp(g) * sp.diff(g, var), (r_, lo, hi)) / total


def _softmax_names(context) -> list:
    """The names defined as a softmax e^{g_u} / sum_r e^{g_r} (of any logits g)."""
    names = []
    for define in context.defines:
        num, den = sp.fraction(define.template)
        if isinstance(num, exp) and _is_partition(den):
            names.append(define)
    return names


def _unit_sum(e, context):
    if not (isinstance(e, Sum) and len(e.limits) == 1 and isinstance(e.function, Indexed)):
        return None
    var, lo, hi = e.limits[0]
    if any(e.function.base == d.base for d in _softmax_names(context)) \
            and e.function.indices == (var,) and (lo, hi) == (1, D.T):
        return sp.Integer(1)
    return None


def _fold_log(e, context):
    """u_j - log sum_r e^{u_r} -> log N_j for a name N defined as softmax(u), inside
    a sum of terms (the rest kept)."""
    if not isinstance(e, sp.Add):
        return None
    for define in _softmax_names(context):
        num, den = sp.fraction(define.template)
        g = num.args[0]
        wild = sp.Wild("u_", properties=[lambda x: x.is_Symbol or x.is_Integer])
        pattern = g.xreplace({_SLOT: wild})
        if -log(den) not in e.args:
            continue
        for term in e.args:
            found = term.match(pattern)
            if found is not None and wild in found:
                return e - term + log(den) + log(define.base[found[wild]])
    return None


def _into_sum(e) -> bool:
    """(sum_r f_r) / Z with f_r holding e^{g_r}: the factor 1/Z may move inside."""
    if not isinstance(e, sp.Mul):
        return False
    sums = [f for f in e.args if isinstance(f, Sum) and len(f.limits) == 1 and f.function.has(exp)]
    return bool(sums) and any(_is_inverse_partition(f, any_power=True) for f in e.args)


def _move_into_sum(e, _context):
    """c sum_r f_r = sum_r c f_r for c free of r (renamed apart first)."""
    target = next(f for f in e.args if isinstance(f, Sum) and len(f.limits) == 1 and f.function.has(exp))
    outside = [f for f in e.args if f is not target]
    var = target.limits[0][0]
    if any(var in f.free_symbols for f in outside):
        return None
    return Sum(target.function * sp.Mul(*outside), target.limits[0])


def _merge_sums(expr):
    """c_1 sum_r f_r + c_2 sum_r g_r = sum_r (c_1 f_r + c_2 g_r) over the same limits."""
    expr = engine.canonical_bound(expr)
    groups, rest = {}, []
    for term in sp.Add.make_args(expr):
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, Sum) and len(f.limits) == 1]
        if len(sums) == 1:
            coeff = term / sums[0]
            if sums[0].limits[0][0] not in coeff.free_symbols:
                groups.setdefault(sums[0].limits, []).append(coeff * sums[0].function)
                continue
        rest.append(term)
    merged = [Sum(sp.factor_terms(sp.Add(*bodies)), limits) for limits, bodies in groups.items()]
    return sp.Add(*rest, *merged)


class _Tidy(Rule):
    """Collect the terms over the named quantities, merge sums over the same range and
    factor what is common."""

    def apply(self, expr, context):
        names = sorted({atom for atom in expr.atoms(Indexed) if atom.base in context.names},
                       key=sp.default_sort_key)
        expanded = sp.expand(expr, power_exp=False, log=False, multinomial=False)
        collected = sp.collect(expanded, names) if names else expanded
        return sp.factor_terms(_merge_sums(collected))


def _distributable(e) -> bool:
    """(f + g) / Z with an exponential in f + g: distributing lets e^{a_u}/Z become S_u."""
    return (isinstance(e, sp.Mul) and any(_is_inverse_partition(f) for f in e.args)
            and any(isinstance(f, sp.Add) and f.has(exp) for f in e.args))


def _constant_sum(e) -> bool:
    return isinstance(e, Sum) and len(e.limits) == 1 and e.limits[0][0] not in e.function.free_symbols


def _count(e, _context):
    """sum_{v=lo}^{hi} f = (hi - lo + 1) f for f free of v (a non-empty range)."""
    _, lo, hi = e.limits[0]
    return e.function * (hi - lo + 1)


def _logit_inverse(define, u):
    """a_u in terms of log S_u and log Z, for S = softmax(g) with g linear in a_u."""
    num, den = sp.fraction(define.template)
    g = num.args[0]
    logits = [item for item in g.atoms(Indexed) if _SLOT in item.indices]
    if len(logits) != 1:
        return None
    slot = sp.Dummy("t")
    g_t = g.xreplace({logits[0]: slot})
    if not g_t.is_polynomial(slot) or sp.degree(g_t, slot) != 1:
        return None
    # g(a_u) = log S_u + log Z  =>  a_u = (log S_u + log Z - g(0)) / g'(0)
    slope, offset = sp.diff(g_t, slot), g_t.xreplace({slot: 0})
    value = (log(define.base[u]) + log(den) - offset) / slope
    return logits[0].xreplace({_SLOT: u}), value


def _unfold_logit(e, context):
    for define in _softmax_names(context):
        for u in e.indices:
            found = _logit_inverse(define, u)
            if found is not None and found[0] == e:
                return found[1]
    return None


class _UnfoldLogits(Rule):
    """Last resort when logits are left: a_u = log S_u + log Z (S = softmax(a)), for
    the logits outside exponentials (those inside are the partition function's own)."""

    def apply(self, expr, context):
        def walk(e):
            if isinstance(e, Indexed):
                return _unfold_logit(e, context) or e
            if not isinstance(e, sp.Basic) or e.is_Atom or isinstance(e, (exp, Derivative)):
                return e
            args = [walk(arg) for arg in e.args]
            return e if all(x is y for x, y in zip(args, e.args)) else e.func(*args)
        return walk(expr)


@dataclass(frozen=True)
class ChainRule(Rule):
    """The chain rule through a layer: d L(layer(v)) / dv = sum_h dL/da_h da_h/dv.

    Fires on a derivative whose body is a function of the layer's outputs only (the
    layer's definition folds every occurrence of the variable's vector into a_h).
    ``dL/da_h`` is itself derived by :func:`gradient` with ``rules`` (a checked
    derivation of its own, kept in the result's ``parts``); its closed form replaces
    it, and the layer's own derivative da_h/dv is left to the rules that follow."""

    layer: Define | None = None
    rules: tuple = ()

    def apply(self, expr, context):
        def one(e, _context):
            if not isinstance(e, Derivative) or len(e.variables) != 1:
                return None
            var = e.variables[0]
            if not (isinstance(var, Indexed) and self.layer.template.has(var.base)):
                return None
            outer = self.layer.fold(e.expr, context, inside_derivatives=True)
            if outer == e.expr or isinstance(outer, Indexed):  # a_h itself: nothing to chain
                return None
            if any(outer.has(item.base) for item in self.layer.template.atoms(Indexed)):
                return None  # the variable's vector is also used outside the layer
            free = [sym for sym in (D.l, D.j, D.k, D.i, D.c) if sym not in outer.free_symbols
                    and D.INDEX_RANGES[sym] == D.T]
            inner = free[0]
            plain_assumptions = tuple(h for h in context.assumptions if not isinstance(h, Definitions))
            part = gradient(outer, self.layer.base[inner], plain_assumptions, self.rules,
                            key=f"{context.key}_through_{self.name}", check=context.check,
                            min_classes=context.min_classes,
                            title=rf"$\partial L/\partial a_{inner}$ for the chain rule through "
                                  rf"{self.layer.why} (automatic)")
            if not part.closed:
                return None
            context.parts.append(part)
            h = sp.Symbol("h", integer=True, positive=True)
            return Sum(part.result.xreplace({inner: h}) * Derivative(self.layer.body(h), var), (h, 1, D.T))
        return _rewrite(expr, one, context, True)

    def justification(self, before, after, context):
        part = context.parts[-1]
        h = sp.Symbol("h", integer=True, positive=True)
        inner = part.start.variables[0].indices[0]
        return (rf"chain rule through {self.why}: $\partial L/\partial a_h = "
                rf"{sp.latex(part.result.xreplace({inner: h}))}$ (derived automatically: {part.key})")


# --------------------------------------------------------------------------- rule sets
#: log(e^u / sum_r e^{g_r}) = u - log sum_r e^{g_r}
LOG_OF_SOFTMAX = Rule("log_softmax", r"$\log S_j = a_j - \log Z$", _log_of_softmax, _split_log_of_softmax)
#: linearity of a sum
SUM_LINEARITY = Rule("sum_linearity", r"linearity of $\sum$: constant factors move out",
                     _splittable_sum, _split_sum)
#: sum_v f_v delta_{v u} = f_u
DELTA_SUM = Rule("delta_sum", r"$\sum_v f_v \delta_{vu} = f_u$: only the term $v = u$ survives",
                 lambda e: _delta_partner(e) is not None, _sum_delta)
#: d(f + g) = df + dg, d(c f) = c df
DERIVATIVE_LINEARITY = Rule("derivative_linearity", r"linearity of $\partial$",
                            _linear_derivative, _split_derivative)
#: d log Z / da_i = S_i (for Z = sum_r e^{g_r}: sum_r e^{g_r} dg_r/dv / Z)
D_LOG_PARTITION = Rule("d_log_partition",
                       r"$\partial \log Z/\partial v = \sum_r e^{g_r}\,\partial g_r/\partial v \,/\, Z$ "
                       r"(so $\partial \log Z/\partial a_i = S_i$)", _d_log_partition, _diff_log_partition)
#: every assumption's own rewrite
ASSUMPTIONS = ByAssumptions()
#: SymPy's diff
DIFFERENTIATE = Differentiate()
#: the softmax S_j = e^{a_j} / sum_k e^{a_k}
S = IndexedBase("S", real=True)
SOFTMAX = Define("softmax", r"definition of $S_j = e^{a_j} / \sum_k e^{a_k}$", base=S,
                 body=lambda u: D.softmax(u))
#: sum_j S_j = 1 for a name defined as a softmax
UNIT_SUM = Rule("sums_to_one", r"softmax outputs sum to one: $\sum_j S_j = 1$",
                lambda e: isinstance(e, Sum), lambda e, context: _unit_sum(e, context) or e,
                inside_derivatives=False)
#: (sum_r f_r) / Z = sum_r f_r / Z, so that e^{g_r} / Z can become S_r inside
INTO_SUM = Rule("into_sum", r"a factor that does not depend on the summation index moves into $\sum$",
                _into_sum, lambda e, context: _move_into_sum(e, context) or e, inside_derivatives=False)
#: (f + g) / Z = f / Z + g / Z
DISTRIBUTE = Rule("distribute", "multiply out over $1/Z$", _distributable,
                  lambda e, _c: sp.expand_mul(e, deep=False), inside_derivatives=False)
#: sum_{v=1}^{T} f = T f for f free of v
COUNT = Rule("count", r"$\sum_{v=1}^{T} f = T f$ for $f$ free of $v$", _constant_sum, _count)
#: a_u = log S_u + log Z, when logits are left and nothing else applies
UNFOLD_LOGITS = _UnfoldLogits("unfold_logits",
                              r"$a_j = \log S_j + \log Z$ (the definition of $S_j$, solved for $a_j$)",
                              inside_derivatives=False)
#: u_j - log sum_r e^{u_r} = log S_j
FOLD_LOG_SOFTMAX = Rule("fold_log_softmax", r"$a_j - \log Z = \log S_j$",
                        lambda e: isinstance(e, sp.Add), lambda e, context: _fold_log(e, context) or e,
                        inside_derivatives=False)
#: the fully connected layer a_u = sum_n W_un x_n + b_u, as a named quantity
FC_LAYER = Define("fc_layer", r"$a = W x + b$: $a_j = \sum_n W_{jn} x_n + b_j$", base=D.a,
                  body=D.fc_logit)
#: collect and factor (the cosmetic last step of a closed form)
TIDY = _Tidy("collect", "collect the terms and factor what is common")

#: how a body is prepared for differentiation, and the derivatives known in closed form
BEFORE_DIFF = (ASSUMPTIONS, LOG_OF_SOFTMAX, DELTA_SUM, SUM_LINEARITY, COUNT, DERIVATIVE_LINEARITY,
               D_LOG_PARTITION)
#: differentiation of whatever derivative is left
DIFF = (DIFFERENTIATE,)
#: closing the result: the names, sums that equal one, logs of softmax outputs
AFTER_DIFF = (SOFTMAX, UNIT_SUM, FOLD_LOG_SOFTMAX, INTO_SUM, DISTRIBUTE)
#: the last resort when logits are left: a_u = log S_u + log Z
LAST_RESORT = (UNFOLD_LOGITS,)


def rule_set(softmax: Define = SOFTMAX, layer: Define | None = None) -> tuple:
    """The default rules, in priority order, with ``softmax`` as the definition of S
    (the softmax of other logits: :func:`softmax_of`) and, given a ``layer`` (such as
    :data:`FC_LAYER`), the chain rule through it: the layer defined before S, sums
    kept from splitting its instances, and dL/da derived on its own."""
    after = tuple(softmax if rule is SOFTMAX else rule for rule in AFTER_DIFF)
    if layer is None:
        return BEFORE_DIFF + DIFF + after + LAST_RESORT
    chain = ChainRule(f"chain_{layer.name}", layer.why, layer=layer, rules=rule_set(softmax))
    linearity = Protected(SUM_LINEARITY.name, SUM_LINEARITY.why, rule=SUM_LINEARITY, define=layer)
    # the body is brought to sum-of-terms form with the layer whole, then the chain rule
    # fires; the assumptions (y_j = delta_jc, ...) are the sub-derivation's business
    first = (layer, LOG_OF_SOFTMAX, linearity, chain)
    rest = tuple(rule for rule in BEFORE_DIFF if rule not in (LOG_OF_SOFTMAX, SUM_LINEARITY))
    return first + rest + DIFF + after + LAST_RESORT


#: the default rule set, in priority order (the first rule that changes the form fires)
DEFAULT_RULES = rule_set()
#: the rule set for a loss of the FC layer's logits: the body simplified, then the chain
#: rule through a = Wx + b (dL/da derived on its own), then as for the logits
FC_RULES = rule_set(layer=FC_LAYER)


# --------------------------------------------------------------------------- driver
_READABLE = {D.T: (D.s, D.r, sp.Symbol("t", integer=True, positive=True)),
             D.N: (D.n, sp.Symbol("m", integer=True, positive=True))}


def readable(expr: sp.Expr, taken: frozenset = frozenset()) -> sp.Expr:
    """The same expression with its summation variables given readable names (s, r
    over classes, n over features) that are free nowhere in it: a renaming of bound
    variables, so the value is unchanged (the engine renames them back to check)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    taken = taken | frozenset(expr.free_symbols) if not taken else taken
    if isinstance(expr, Sum) and len(expr.limits) == 1:
        var, lo, hi = expr.limits[0]
        choices = [sym for sym in _READABLE.get(hi, ()) if sym not in taken and lo == 1]
        body = expr.function
        if choices and var not in _READABLE.get(hi, ()):
            body, var = body.xreplace({var: choices[0]}), choices[0]
        return Sum(readable(body, taken | {var}), (var, lo, hi))
    args = [readable(arg, taken) for arg in expr.args]
    return expr if all(x is y for x, y in zip(args, expr.args)) else expr.func(*args)


@dataclass
class GradientDerivation(Derivation):
    """A derivation produced by :func:`gradient`: ``closed`` says whether its result is
    a closed form (otherwise the last step is the last form reached), ``rules`` names
    the rules that fired, in order, ``automatic`` marks it for reports."""

    closed: bool = False
    rules: tuple = ()
    parts: list = field(default_factory=list)  # derivations made on the way (chain rule)
    seconds: float = 0.0
    report: engine.DerivationReport | None = None
    automatic: bool = True


def is_closed(expr: sp.Expr, context: Context) -> bool:
    """No derivative, no exponential and no logit left outside ``log Z``: the form is in
    the named quantities (S), the target and the user's own symbols."""
    if expr.has(Derivative):
        return False
    logits, partitions = set(), set()
    for define in _softmax_names(context):
        logits |= {item.base for item in define.template.atoms(Indexed)}
        partitions.add(engine.canonical_bound(sp.fraction(define.template)[1]))
    bare = engine.canonical_bound(expr).replace(
        lambda e: isinstance(e, log) and e.args[0] in partitions, lambda e: sp.Integer(1))
    return not bare.has(exp) and not any(item.base in logits for item in bare.atoms(Indexed))


def _title(wrt) -> str:
    return rf"$\partial L/\partial {sp.latex(wrt)}$ (automatic)"


def gradient(loss: sp.Expr, wrt: sp.Expr, assumptions: Sequence[D.Assumption] = (D.REAL_LOGITS,),
             rules: Sequence[Rule] = DEFAULT_RULES, *, key: str = "", title: str = "",
             matrix: str = "", min_classes: int = 1, section: str = "", check: bool = True,
             max_steps: int = 40, finish: bool = True) -> GradientDerivation:
    """The derivative of ``loss`` with respect to ``wrt``, derived step by step.

    Starts from ``Derivative(loss, wrt)`` and applies ``rules`` (a tuple in priority
    order: at each step the first rule that changes the form fires, one step per
    firing, never returning to a form seen before) until none applies; a closed result
    gets a last "collect and factor" step (``finish``). With ``check`` (the default)
    :func:`engine.check` then checks every step under ``assumptions`` plus the
    definitions of the rule set's named quantities, and the report is kept in
    ``.report``; a false step raises :class:`engine.StepRejected` naming the rule.

    ``loss`` may use the names the rules define (``S[c]``): they are unfolded into
    their definitions before differentiating, because the numeric check of a
    derivative moves the variable, not the names.

    Examples
    --------
    >>> from derive.softmax import definitions as D
    >>> from derive.gradient import gradient
    >>> d = gradient(D.softmax_loss(), D.a[D.i], (D.REAL_LOGITS, D.SOFT_LABEL))
    >>> d.result, d.closed
    (S[i] - y[i], True)
    """
    tic = time.perf_counter()
    defines = tuple(rule for rule in rules if isinstance(rule, Define))
    definitions = Definitions("; ".join(d.why for d in defines), defines) if defines else None
    every = tuple(assumptions) + ((definitions,) if definitions else ())
    context = Context(wrt, every, defines, key=key or "gradient", check=check, min_classes=min_classes)
    if definitions is not None:
        loss = definitions.rewrite(loss)
    expr = Derivative(readable(loss), wrt)
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
    closed = is_closed(expr, context)
    if closed and finish:
        tidy = TIDY.apply(expr, context)
        if tidy != expr:
            steps.append(Step(readable(tidy), f"{TIDY.why} [rule {TIDY.name}]"))
            fired.append(TIDY.name)
    key = key or f"gradient_{sp.sstr(wrt)}".replace("[", "_").replace("]", "").replace(", ", "_")
    title = title or _title(wrt)
    if not closed:
        title += " -- not closed: the last form reached is shown"
    derivation = GradientDerivation(key, title, every, steps, matrix=matrix, min_classes=min_classes,
                                    section=section, closed=closed, rules=tuple(fired),
                                    parts=list(context.parts))
    if len(steps) < 2:
        derivation.seconds = time.perf_counter() - tic
        return derivation  # nothing applied: check would reject an empty chain
    if check:
        derivation.report = engine.check(derivation)
    derivation.seconds = time.perf_counter() - tic
    return derivation


def jacobian(component: Callable[[sp.Expr], sp.Expr], wrt: IndexedBase = D.a, row: sp.Symbol = D.j,
             column: sp.Symbol = D.i, assumptions: Sequence[D.Assumption] = (D.REAL_LOGITS,),
             rules: Sequence[Rule] = DEFAULT_RULES, **options) -> GradientDerivation:
    """The entry (row, column) of the Jacobian of a vector function: d f_row / d wrt_column.

    ``component(u)`` is the function's u-th output. For the softmax,
    ``jacobian(D.softmax)`` derives S_j (delta_ij - S_i)."""
    return gradient(component(row), wrt[column], assumptions, rules, **options)


# --------------------------------------------------------------------------- the user's symbols
TAU = scalar("tau", lambda rng: rng.uniform(0.05, 4.0), positive=True)  #: a temperature (positive)
#: a weight of an auxiliary term (any real; SymPy's spelling "lamda" prints as lambda)
LAMBDA = scalar("lamda", lambda rng: rng.normal(0.0, 3.0))
GAMMA = scalar("gamma", lambda rng: rng.uniform(0.0, 4.0), nonnegative=True)  #: a focusing parameter


def softmax_of(logits: Callable[[sp.Expr], sp.Expr], name: str, text: str) -> Define:
    """A Define rule naming the softmax of the given logits S (for a rule set that
    replaces :data:`SOFTMAX`), e.g. ``softmax_of(lambda u: a[u] / TAU, ...)``."""
    return Define(name, text, base=S, body=lambda u: D.softmax(u, logits))


#: S = softmax(a / tau): the softmax of a temperature-scaled loss
SOFTMAX_TAU = softmax_of(lambda u: D.a[u] / TAU, "softmax_tau",
                         r"definition of $S_j = e^{a_j/\tau} / \sum_k e^{a_k/\tau}$")
#: the rule set of a temperature-scaled loss
TAU_RULES = rule_set(SOFTMAX_TAU)


def _is_logit_partition(e) -> bool:
    """sum_r e^{a_r / k} for a k free of r: the partition function of a softmax of a."""
    if not _is_partition(e):
        return False
    var, arg = e.limits[0][0], e.function.args[0]
    return arg.has(D.a[var]) and not (arg / D.a[var]).has(var)


def pretty(expr: sp.Expr) -> str:
    """A one-line plain form for terminals: the FC layer's sum_n W_jn x_n + b_j written
    a[j], partition functions sum_r e^{a_r/k} written Z (for reading only: the steps
    keep their full form)."""
    if expr.has(D.W):
        expr = readable(FC_LAYER.fold(expr, inside_derivatives=True))
    return sp.sstr(expr.replace(_is_logit_partition, lambda e: sp.Symbol("Z")))


#: the names ``python -m derive gradient`` accepts in a loss expression
def cli_namespace(flags: dict) -> dict:
    """Names for parsing a loss: vectors a, y, x, W, b, u, w; indices i j k l c p q
    (free) and r s n (for sums); sizes T, N; scalars tau (> 0), lam (real), gamma
    (>= 0), eps; functions S(j) (softmax of a), softmax(j, tau) (softmax of a/tau,
    which makes S that softmax), Z (sum_k e^{a_k}), logZ, fc(j) (W x + b at j),
    delta(i, j), Sum, log, exp; L (the softmax loss -sum_j y_j log S_j)."""
    def scaled_softmax(idx, scale=1):
        if scale != 1:
            flags["scale"] = scale
        return D.softmax(idx, lambda u: D.a[u] / scale)
    names = {"a": D.a, "y": D.y, "x": D.x, "W": D.W, "b": D.b, "u": D.u, "w": D.w,
             "T": D.T, "N": D.N, "tau": TAU, "lam": LAMBDA, "gamma": GAMMA, "eps": D.eps,
             "S": D.softmax, "softmax": scaled_softmax, "Z": D.partition(), "logZ": D.logsumexp(),
             "fc": D.fc_logit, "delta": KroneckerDelta, "Sum": Sum, "log": log, "exp": exp,
             "L": D.softmax_loss()}
    names.update({sym.name: sym for sym in (D.i, D.j, D.k, D.l, D.c, D.p, D.q, D.r, D.s, D.n)})
    return names


def parse_loss(text: str) -> tuple[sp.Expr, dict]:
    """A loss expression in the names of :func:`cli_namespace`; (expression, flags)."""
    from sympy.parsing.sympy_parser import parse_expr

    flags: dict = {}
    try:
        expr = parse_expr(text, local_dict=cli_namespace(flags))
    except Exception as err:  # noqa: BLE001 - any parse failure is reported with the text
        raise ValueError(f"cannot parse the loss {text!r}: {type(err).__name__}: {err} "
                         "(python -m derive gradient --help lists the names)") from None
    return expr, flags
