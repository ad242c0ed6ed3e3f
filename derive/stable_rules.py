"""The stable rules of :mod:`derive.stable`, as data: each a :class:`StableRule` (a
name, a justification, a matcher and a builder), its matcher and builder right above
it; :data:`RULES` is the set the walk tries in order at every node, and a user's set is
a new tuple (``MY_RULES = (MY_RULE,) + RULES``) passed to :func:`derive.stable.stabilise`.
A builder returns the node's array form from the array forms of its parts
(``ctx.walk``); the code generator proves every kernel built this way equal to its
definition.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed, IndexedBase, KroneckerDelta, Sum
from sympy.codegen.cfunctions import log1p

from . import symbols
from .functions import AccurateRowSum, C, Quotient, Take
from .stable_forms import SLOT, Family


@dataclass(frozen=True)
class StableRule:
    """A named rewrite into a stable array form: ``match(e, ctx)`` returns what
    ``build(e, ctx, found)`` needs (None: no match); ``build`` returns the array form."""

    name: str
    why: str
    match: Callable
    build: Callable


@dataclass
class Context:
    """What a rule sees besides the node: the softmax families by name, the output index
    j, the target c, the rules in force and the walk that takes a part apart with them;
    it collects the rules that fired and the sums that may cancel."""

    families: dict
    j: sp.Symbol
    c: sp.Symbol
    rules: tuple
    walker: Callable
    fired: list = field(default_factory=list)
    cancelling: list = field(default_factory=list)

    def walk(self, e):
        """The array form of a part ``e``, by the same rules."""
        return self.walker(e, self)


def _name_at(e, ctx, index):
    if isinstance(e, Indexed) and e.base in ctx.families and e.indices == (index,):
        return ctx.families[e.base]
    return None


def _match_pair(e, ctx):
    """S_j - delta_jc among the terms of a sum (with a common factor: scaled)."""
    if not isinstance(e, sp.Add):
        return None
    delta = KroneckerDelta(ctx.j, ctx.c)
    for family in ctx.families.values():
        s_j = family.name[ctx.j]
        for sign in (1, -1):
            terms = e.args
            if -sign * delta in terms and sign * s_j not in terms:  # (1 + u) S_j - delta_jc: multiply out
                terms = [t for term in terms for t in sp.Add.make_args(
                    sp.expand_mul(term, deep=False) if term.has(s_j) else term)]
            if sign * s_j in terms and -sign * delta in terms:
                return family, sign, sp.Add(*terms)
    return None


def _match_factor_pair(e, ctx):
    """S_j - delta_jc + sum_n u_n (S_j - delta_jc): every other term a multiple of the
    pair (either sign), so that it factors out."""
    found = _match_pair(e, ctx)
    if found is None:
        return None
    family, sign, expanded = found
    pair = sign * (family.name[ctx.j] - KroneckerDelta(ctx.j, ctx.c))
    rest = [t for t in sp.Add.make_args(e) if t not in (sign * family.name[ctx.j],
                                                          -sign * KroneckerDelta(ctx.j, ctx.c))]
    if not rest or len(rest) + 2 != len(e.args):
        return None
    quotients = [sp.cancel(t / pair) for t in rest]
    if any(q.has(KroneckerDelta) or q.has(family.name[ctx.j]) for q in quotients):
        return None
    return pair, 1 + sp.Add(*quotients)


def _build_factor_pair(e, ctx, found):
    pair, factor = found
    return ctx.walk(sp.Mul(pair, factor, evaluate=False))

FACTOR_PAIR = StableRule("factor_pair", r"$(S_j - \delta_{jc})(1 + u)$: the pair factored out of "
                         r"$S_j - \delta_{jc} + u (S_j - \delta_{jc})$ (no cancellation between them)",
                         _match_factor_pair, _build_factor_pair)


def _match_product(e, ctx):
    """S_j g or (S_j - delta_jc) g: a softmax output times other factors."""
    if not isinstance(e, sp.Mul):
        return None
    for n, factor in enumerate(e.args):
        rest = sp.Mul(*(e.args[:n] + e.args[n + 1:]))
        family = _name_at(factor, ctx, ctx.j)
        # S_j g with g free of S_j but for log S_j (log-softmax: no subnormal S_j in it)
        if family is not None and not rest.xreplace({sp.log(factor): SLOT}).has(family.name[ctx.j]):
            return family, 1, rest, False
        pair = _match_pair(factor, ctx)
        if pair is not None and sp.expand(pair[2] - pair[1] * (pair[0].name[ctx.j]
                                                             - KroneckerDelta(ctx.j, ctx.c))) == 0:
            return pair[0], pair[1], rest, True
    return None


#: the largest integer power of S_c taken through one exponential (S_c^n = e^{n d_c} / (1 + s')^n)
LARGEST_POWER = 16


def _target_power(e, ctx, family) -> int:
    """n if ``e`` is S_c^n (a positive integer n up to LARGEST_POWER), else 0."""
    s_c = family.name[ctx.c]
    if e == s_c:
        return 1
    if isinstance(e, sp.Pow) and e.base == s_c and e.exp.is_Integer and 1 <= e.exp <= LARGEST_POWER:
        return int(e.exp)
    return 0


def _match_target_product(e, ctx):
    """S_j S_c^n h or (S_j - delta_jc) S_c^n h: a softmax output times a power of the target's."""
    found = _match_product(e, ctx)
    if found is None:
        return None
    powers = [_target_power(f, ctx, found[0]) for f in sp.Mul.make_args(found[2])]
    n = max(powers, default=0)
    return (*found, n) if n else None


def _build_target_product(e, ctx, found):
    family, sign, rest, pair, n = found
    s_cn = family.name[ctx.c] ** n
    h = sign * ctx.walk(rest / s_cn)
    return family.pair_times_target(h, ctx.walk(s_cn) * h, n) if pair else family.times_target(h, n)


TARGET_PRODUCT = StableRule("target_product", r"$S_j S_c^n h = 2^{-900} (2^{900} e^{f_j + n f_c - (n + 1) f_k} h / "
                            r"(1 + s')^{n + 1})$: the exponentials as one, $(1 + s')^{n + 1}$ in double-double, "
                            r"one rounding; at the true class $-\sum_{j \ne c} S_j S_c^n h$ when $c$ is the argmax",
                            _match_target_product, _build_target_product)


def _build_product(e, ctx, found):
    family, sign, rest, pair = found
    g = sign * ctx.walk(rest)
    return family.pair_times(g) if pair else family.times(g)


PRODUCT = StableRule("scaled_product", r"$S_j g = 2^{-900} (2^{900} e^{f_j - f_k} g / (1 + s'))$: "
                     r"one rounding into the subnormal range", _match_product, _build_product)


def _build_pair(e, ctx, found):
    family, sign, expanded = found
    rest = expanded - sign * (family.name[ctx.j] - KroneckerDelta(ctx.j, ctx.c))
    if rest != 0:  # the pair is >= 0 off the target and <= 0 at it: any other term may cancel it
        ctx.cancelling.append(expanded)
    return sign * family.grad_pair + ctx.walk(rest)


GRADIENT_PAIR = StableRule("gradient_pair", r"$S_j - \delta_{jc}$: at the true class $-s'/(1 + s')$ "
                           r"when $c$ is the argmax (no cancellation)", _match_pair, _build_pair)


def _match_complement(e, ctx):
    """1 - S_c (sign 1) or S_c - 1 (sign -1)."""
    if isinstance(e, sp.Add) and len(e.args) == 2 and (1 in e.args or -1 in e.args):
        one = 1 if 1 in e.args else -1
        other = e.args[0] if e.args[1] == one else e.args[1]
        family = _name_at(-one * other, ctx, ctx.c)
        if family is not None:
            return family, one
    return None


COMPLEMENT = StableRule("complement", r"$1 - S_c = \sum_{j \ne c} S_j$: $s'/(1 + s')$ when $c$ is the argmax",
                        _match_complement, lambda e, ctx, f: f[1] * f[0].complement)


def _match_complement_in_sum(e, ctx):
    """n - n S_c (+ more terms): n (1 - S_c) is computed without cancellation."""
    if not isinstance(e, sp.Add) or len(e.args) < 3:
        return None
    for family in ctx.families.values():
        s_c = family.name[ctx.c]
        for term in e.args:
            if term.is_Number and -term * s_c in e.args:
                return family, term
    return None


def _build_complement_in_sum(e, ctx, found):
    family, n = found
    rest = e - n + n * family.name[ctx.c]
    return n * family.complement + ctx.walk(rest)


COMPLEMENT_IN_SUM = StableRule("complement_in_sum", r"$n - n S_c + u = n (1 - S_c) + u$",
                               _match_complement_in_sum, _build_complement_in_sum)


def _match_power(e, ctx):
    if isinstance(e, sp.Pow) and not (e.exp.is_Integer and abs(e.exp) <= 2):
        return _name_at(e.base, ctx, ctx.c) or _name_at(e.base, ctx, ctx.j)
    return None


def _build_power(e, ctx, found):
    index = e.base.indices[0]
    log_s = found.log_softmax if index == ctx.j else Take(found.shift, C) - log1p(found.tail)
    return sp.exp(ctx.walk(e.exp) * log_s)


def _match_integer_power(e, ctx):
    if isinstance(e, sp.Pow) and e.exp.is_Integer and 2 <= e.exp <= LARGEST_POWER:
        family = _name_at(e.base, ctx, ctx.c)
        return (family, int(e.exp)) if family is not None else None
    return None


INTEGER_POWER = StableRule("integer_power", r"$S_c^n = 2^{-900} (2^{900} e^{n (f_c - f_k)} / (1 + s')^n)$, "
                           r"$n (f_c - f_k)$ and $(1 + s')^n$ in double-double: one rounding",
                           _match_integer_power, lambda e, ctx, found: found[0].power_target(found[1]))


POWER = StableRule("power_through_log", r"$S_c^p = e^{p \log S_c}$ with $\log S_c$ from log-softmax",
                   _match_power, _build_power)


def _match_log(e, ctx):
    if isinstance(e, sp.log):
        return _name_at(e.args[0], ctx, ctx.j) or _name_at(e.args[0], ctx, ctx.c)
    return None


def _build_log(e, ctx, family):
    if e.args[0].indices[0] == ctx.j:
        return family.log_softmax
    return Take(family.shift, C) - log1p(family.tail)


LOG_SOFTMAX = StableRule("log_softmax", r"$\log S_j = (f_j - f_k) - \operatorname{log1p}(s')$",
                         _match_log, _build_log)


def _match_log_partition(e, ctx):
    if isinstance(e, sp.log) and isinstance(e.args[0], Sum) and isinstance(e.args[0].function, sp.exp):
        total = e.args[0]
        var = total.limits[0][0]
        g = total.function.args[0].xreplace({var: SLOT})
        for family in ctx.families.values():
            if sp.simplify(family.logits(SLOT) - g) == 0:
                return family
        return Family(IndexedBase(f"Z{len(ctx.families)}"), lambda u, g=g: g.xreplace({SLOT: u}),
                      tag=f"Z{len(ctx.families)}")
    return None


LOG_PARTITION = StableRule("log_partition", r"$\log \sum_j e^{f_j} = f_k + \operatorname{log1p}(s')$",
                           _match_log_partition, lambda e, ctx, f: f.log_partition)


def _match_softmax(e, ctx):
    return _name_at(e, ctx, ctx.j) or _name_at(e, ctx, ctx.c)


def _build_softmax(e, ctx, family):
    return family.softmax if e.indices[0] == ctx.j else Quotient(Take(family.e, C), 1 + family.tail)


SOFTMAX = StableRule("softmax_through_max", r"$S_j = e^{f_j - f_k} / (1 + s')$, $f_j - f_k$ in double-double",
                     _match_softmax, _build_softmax)


def _match_row_sum(e, ctx):
    if isinstance(e, Sum) and len(e.limits) == 1:
        var, lo, hi = e.limits[0]
        if (lo, hi) == (1, symbols.CLASSES):
            return var
    return None


def _build_row_sum(e, ctx, var):
    return AccurateRowSum(ctx.walk(e.function.xreplace({var: ctx.j})))


ROW_SUM = StableRule("accurate_row_sum", r"$\sum_s g_s$ summed to about one rounding",
                     _match_row_sum, _build_row_sum)


#: the stable rules, tried in this order at every node (the first that matches builds it)
RULES = (FACTOR_PAIR, TARGET_PRODUCT, PRODUCT, GRADIENT_PAIR, COMPLEMENT, COMPLEMENT_IN_SUM, INTEGER_POWER, POWER,
         LOG_SOFTMAX, LOG_PARTITION, SOFTMAX, ROW_SUM)


def _sign(e, ctx) -> int | None:
    """+1 (>= 0), -1 (<= 0) or None (unknown) for a term: softmax outputs are
    non-negative, their logs non-positive, parameters as declared."""
    if e.is_nonnegative:
        return 1
    if e.is_nonpositive:
        return -1
    if isinstance(e, Indexed) and e.base in ctx.families:
        return 1
    if isinstance(e, sp.log) and isinstance(e.args[0], Indexed) and e.args[0].base in ctx.families:
        return -1
    if isinstance(e, Sum):
        return _sign(e.function, ctx)
    if _match_complement(e, ctx) is not None:  # 1 - S_c or S_c - 1
        return _match_complement(e, ctx)[1]
    found = _match_complement_in_sum(e, ctx)
    if found is not None:  # n (1 - S_c) + rest
        return _sign(e - found[1] + found[1] * found[0].name[ctx.c], ctx) if found[1] > 0 else None
    if isinstance(e, sp.Pow) and e.exp.is_integer and e.exp.is_odd:
        return _sign(e.base, ctx)
    if isinstance(e, sp.Pow) and _sign(e.base, ctx) == 1:
        return 1
    if isinstance(e, sp.Mul):
        signs = [_sign(f, ctx) for f in e.args]
        if None in signs:
            return None
        return -1 if signs.count(-1) % 2 else 1
    return None


def _mixed(e: sp.Add, ctx) -> bool:
    """The terms of ``e`` may have different signs (a sum that may cancel)."""
    signs = {_sign(t, ctx) for t in e.args}
    return None in signs or len(signs) > 1
