"""The rules that know no content, each matcher right above the rule that uses it,
and the named rule set :data:`RULES` (assumptions, linearity, Kronecker deltas,
counting, SymPy's ``diff``) that a content extends by concatenation; :func:`through`
builds a rule set for a loss of a layer's outputs (the chain rule).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import Derivative, Indexed, KroneckerDelta, Sum

from .. import engine, symbols
from .rewriting import ByAssumptions, Define, Definitions, Differentiate, Protected, Rule, _rewrite


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
        from .driver import gradient  # the driver applies the rules: it imports this module

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
