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
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import sympy as sp
from sympy import Derivative, Indexed, IndexedBase, KroneckerDelta, Sum, exp

from . import engine, symbols
from .engine import Derivation, Step
from .symbols import Assumption

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

    A rule must be true: the checker rejects the step it produces otherwise, naming
    the rule.

    Examples
    --------
    A user's rule by a pattern -- the log of a product with a class weight splits
    (w_c > 0) -- put before the softmax content's rules; it fires first and its step
    is checked like any other:

    >>> import sympy as sp
    >>> from derive import Rule, gradient
    >>> from derive.softmax import definitions as D, rules as R
    >>> u = sp.Wild("u")
    >>> split = Rule("log_of_weighted", r"$\\log (w_c u) = \\log w_c + \\log u$",
    ...              sp.log(D.w[D.c] * u), sp.log(D.w[D.c]) + sp.log(u))
    >>> d = gradient(-sp.log(D.w[D.c] * D.softmax(D.c)), D.a[D.i], (D.REAL_LOGITS,),
    ...              (split,) + R.RULES)
    >>> d.rules[0], d.result
    ('log_of_weighted', -KroneckerDelta(c, i) + S[i])
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
    before it in the rule set. ``size`` is the range of the name's index (1..size: the
    classes by default). ``is_open(define, expr)``, if given, says whether ``expr``
    still holds what the name stands for written out (for the softmax S: an
    exponential, or a logit outside ``log Z``); a form is closed only when no Define
    of the rule set finds it open (:func:`is_closed`).

    Examples
    --------
    The user's own quantity, the residual P_j = S_j - y_j, folded into its name after
    the softmax content's rules have closed the form:

    >>> import sympy as sp
    >>> from derive import Define, gradient
    >>> from derive.softmax import definitions as D, rules as R
    >>> P = sp.IndexedBase("P", real=True)
    >>> residual = Define("residual", r"definition of $P_j = S_j - y_j$", base=P,
    ...                   body=lambda u: R.S[u] - D.y[u])
    >>> gradient(D.softmax_loss(), D.a[D.i], (D.REAL_LOGITS, D.SOFT_LABEL),
    ...          R.RULES + (residual,)).result
    P[i]
    """

    inside_derivatives: bool = False
    base: IndexedBase | None = None
    body: Callable | None = None
    size: sp.Expr = symbols.CLASSES
    is_open: Callable | None = None

    @property
    def template(self) -> sp.Expr:
        return engine.canonical_bound(self.body(SLOT))

    def apply(self, expr, context):
        return self.fold(expr, context, self.inside_derivatives)

    def fold(self, expr, context=None, inside_derivatives=False):
        """``expr`` with every instance of the definition folded into the name."""
        wild = sp.Wild("u_", properties=[lambda e: e.is_Symbol or e.is_Integer])
        pattern = self.template.xreplace({SLOT: wild})
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


SLOT = sp.Symbol("slot_", integer=True, positive=True)  # the index a template is written in


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
class Definitions(Assumption):
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
            for sym in sorted(define.body(SLOT).free_symbols, key=sp.default_sort_key):
                # a scalar of the definition (a temperature) is drawn now, by the sampler
                # it was declared with, as the engine draws any other (it keeps this value)
                if isinstance(sym, sp.Symbol) and not sym.is_integer and sym not in env:
                    symbols.draw_declared(env, [sym], env.rng)
            shared = engine.evaluator(env)  # the sums every component holds, once
            for idx in range(1, env.T + 1):
                env[define.base[idx]] = engine.evaluate(define.body(sp.Integer(idx)), env, shared)



# --------------------------------------------------------------------------- matchers
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
            if other in symbols.INDEX_RANGES and lo == 1 and hi == symbols.INDEX_RANGES[other]:
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
        tidy = sp.factor_terms(_merge_sums(collected))
        # common factors out ((1 + eps S_c)(S_j - delta_jc), not its expansion), where
        # factoring shortens the form
        try:
            factored = sp.factor(tidy, deep=False)
        except Exception:  # noqa: BLE001 - a form SymPy cannot factor is kept as it is
            return tidy
        return factored if sp.count_ops(factored) < sp.count_ops(tidy) else tidy


def _constant_sum(e) -> bool:
    return isinstance(e, Sum) and len(e.limits) == 1 and e.limits[0][0] not in e.function.free_symbols


def _count(e, _context):
    """sum_{v=lo}^{hi} f = (hi - lo + 1) f for f free of v (a non-empty range)."""
    _, lo, hi = e.limits[0]
    return e.function * (hi - lo + 1)


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
            size = self.layer.size
            free = [sym for sym, upto in symbols.INDEX_RANGES.items()
                    if upto == size and sym not in outer.free_symbols]
            if not free:
                return None  # no free index left to state dL/da_h in
            inner = free[0]
            plain_assumptions = tuple(h for h in context.assumptions if not isinstance(h, Definitions))
            part = gradient(outer, self.layer.base[inner], plain_assumptions, self.rules,
                            # one key for every use of this rule: the same dL/da (the
                            # FC layer's, for W, b and x) is then the same derivation,
                            # checked once per process (or test session)
                            key=f"{self.name}_part", check=context.check,
                            min_classes=context.min_classes,
                            title=rf"$\partial L/\partial a_{inner}$ for the chain rule through "
                                  rf"{self.layer.why} (automatic)")
            if not part.closed:
                return None
            context.parts.append(part)
            h = sp.Symbol("h", integer=True, positive=True)
            return Sum(part.result.xreplace({inner: h}) * Derivative(self.layer.body(h), var), (h, 1, size))
        return _rewrite(expr, one, context, True)

    def justification(self, before, after, context):
        part = context.parts[-1]
        h = sp.Symbol("h", integer=True, positive=True)
        inner = part.start.variables[0].indices[0]
        return (rf"chain rule through {self.why}: $\partial L/\partial a_h = "
                rf"{sp.latex(part.result.xreplace({inner: h}))}$, itself derived automatically")




# --------------------------------------------------------------------------- rules
#: what the assumptions state, each by its own rewrite
ASSUMPTIONS = ByAssumptions()
#: SymPy's diff
DIFFERENTIATE = Differentiate()
#: linearity of a sum
SUM_LINEARITY = Rule("sum_linearity", r"linearity of $\sum$: constant factors move out",
                     _splittable_sum, _split_sum)
#: sum_v f_v delta_{v u} = f_u
DELTA_SUM = Rule("delta_sum", r"$\sum_v f_v \delta_{vu} = f_u$: only the term $v = u$ survives",
                 lambda e: _delta_partner(e) is not None, _sum_delta)
#: d(f + g) = df + dg, d(c f) = c df
DERIVATIVE_LINEARITY = Rule("derivative_linearity", r"linearity of $\partial$",
                            _linear_derivative, _split_derivative)
#: sum_{v=1}^{T} f = T f for f free of v
COUNT = Rule("count", r"$\sum_{v=1}^{T} f = T f$ for $f$ free of $v$", _constant_sum, _count)
#: collect and factor (the cosmetic last step of a closed form)
TIDY = _Tidy("collect", "collect the terms and factor what is common")

#: the rules that know no content, in priority order: how a body is prepared for
#: differentiation, then SymPy's diff (a content puts its own rules around these)
BEFORE_DIFF = (ASSUMPTIONS, DELTA_SUM, SUM_LINEARITY, COUNT, DERIVATIVE_LINEARITY)
DIFF = (DIFFERENTIATE,)
RULES = BEFORE_DIFF + DIFF


def through(layer: Define, rules: tuple, first: tuple = (), after: tuple = ()) -> tuple:
    """A rule set for a loss of a layer's outputs, by the chain rule: the layer defined
    first (its instances folded into its name), then ``first`` (rules that bring the
    body to a sum of terms), sums kept from splitting the layer's instances, the chain
    rule (dL/d layer derived on its own with ``rules``), then ``after`` (the layer's own
    derivative and the rest)."""
    chain = ChainRule(f"chain_{layer.name}", layer.why, layer=layer, rules=tuple(rules))
    linearity = Protected(SUM_LINEARITY.name, SUM_LINEARITY.why, rule=SUM_LINEARITY, define=layer)
    return (layer, *first, linearity, chain, *after)


# --------------------------------------------------------------------------- driver
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
    seconds: float = 0.0
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
    (``S[c]``): they are unfolded into their definitions before differentiating,
    because the numeric check of a derivative moves the variable, not the names.

    Where no rule applies and the form is not closed, ``closed`` is False, the title
    ends with "not closed" and the last step is the last form reached (still
    checked). ``seconds`` is the time taken, the check included.

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
    defines = tuple(rule for rule in rules if isinstance(rule, Define))
    definitions = Definitions("; ".join(d.why for d in defines), defines) if defines else None
    every = tuple(assumptions) + ((definitions,) if definitions else ())
    context = Context(wrt, every, defines, key=key or "gradient", check=check, min_classes=min_classes)
    if definitions is not None:
        loss = definitions.rewrite(loss)
    steps, fired = _rewrite_steps(Derivative(readable(loss), wrt), rules, context, max_steps)
    expr = steps[-1].expr
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


# --------------------------------------------------------------------------- the command line
@dataclass(frozen=True)
class Question:
    """A gradient to derive, as a :class:`Language` read it from the command line."""

    loss: sp.Expr
    wrt: sp.Expr
    assumptions: tuple
    rules: tuple


@dataclass(frozen=True)
class Language:
    """How ``python -m derive gradient "<loss>" --wrt V --labels L`` reads a loss in a
    content's names: ``read(loss, wrt, labels) -> Question`` (a ValueError, naming the
    bad text, for what it cannot read), ``pretty(expr) -> str`` for the terminal,
    ``names`` (the help text listing the names a loss may use), ``labels`` (the
    ``--labels`` choices, the first the default), the default ``wrt`` and
    ``legend(question) -> str`` (what the printed names mean).

    A catalogue registers its language as ``catalogue.language``; the command uses the
    first it finds in the catalogue and those it uses (the built-in softmax
    catalogue's, :data:`derive.softmax.rules.LANGUAGE`, by default).

    Examples
    --------
    >>> from derive.softmax.rules import LANGUAGE
    >>> question = LANGUAGE.read("L", "a", "soft")
    >>> question.wrt, len(question.assumptions)
    (a[i], 2)
    """

    read: Callable[[str, str, str], Question]
    pretty: Callable[[sp.Expr], str] = sp.sstr
    names: str = ""
    labels: tuple = ("none",)
    wrt: str = ""
    #: what the printed names of a question mean (printed after the question), or ""
    legend: Callable[[Question], str] = lambda _question: ""
