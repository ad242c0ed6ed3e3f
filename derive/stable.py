"""Stable kernels derived, not written: a rule set that rewrites a closed form into
array expressions that lose no accuracy in float64.

The input is an expression in index notation over named softmaxes (``S_j``, a
teacher's ``P_j``: each a :class:`Family`, the softmax of an expression f of the
logits), the target (``delta_jc``, ``S_c``), the user's vectors and scalars, and sums
over the classes. The output is an array expression over :mod:`derive.functions` and
the functions below, whose index form the code generator proves equal to the
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
* ``accurate_row_sum`` -- sum_s g_s, summed to about one rounding.

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

import inspect
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed, IndexedBase, KroneckerDelta, Sum
from sympy.codegen.cfunctions import log1p

from . import kernel_helpers as H
from . import stable_helpers as SH
from . import symbols
from .functions import (
    MEANINGS,
    A,
    AccurateRowSum,
    ArrayFunction,
    C,
    Quotient,
    SelectArgmax,
    SumExcept,
    SumExceptMax,
    Take,
    flat_index,
    to_indexed,
)

SLOT = sp.Symbol("slot_", integer=True, positive=True)


class NotStable(ValueError):
    """No stable array form for a subexpression (named in the message)."""

    def __init__(self, message: str, subexpression=None):
        super().__init__(message)
        self.subexpression = subexpression


# --------------------------------------------------------------------------- double-double logits
def _array_of(base) -> sp.Symbol:
    """The array symbol registered (define_arrays) as the vector ``base``."""
    for array, meaning in MEANINGS.items():
        if meaning == base:
            return array
    raise NotStable(f"the vector {base} has no array: declare it as an input of the loss", base)


def _column_of(index) -> sp.Symbol:
    for array, meaning in MEANINGS.items():
        if meaning == index and array.is_integer:
            return array
    raise NotStable(f"the index {index} has no column (only the target c does)", index)


def _dd_code(expr, printer, at: Callable) -> str:
    """The double-double NumPy code of f(SLOT), an expression of the inputs."""
    if isinstance(expr, Indexed) and expr.indices == (SLOT,):
        return f"_dd({printer.doprint(_array_of(expr.base))})"
    if isinstance(expr, KroneckerDelta) and SLOT in expr.args:
        other = expr.args[0] if expr.args[1] == SLOT else expr.args[1]
        return f"_dd(_onehot(A, {at(_column_of(other))}))"
    if expr.is_Number:
        return f"_dd({float(expr)!r})"
    if isinstance(expr, sp.Symbol) and not expr.is_integer:
        return f"_dd({printer.doprint(expr)})"
    if isinstance(expr, sp.Add):
        terms = [_dd_code(t, printer, at) for t in expr.args]
        code = terms[0]
        for term in terms[1:]:
            code = f"_dd_add({code}, {term})"
        return code
    if isinstance(expr, sp.Mul):
        num, den = [], []
        for factor in expr.args:
            if factor == -1:
                num.append(None)
            elif isinstance(factor, sp.Pow) and factor.exp == -1:
                den.append(factor.base)
            else:
                num.append(factor)
        negate = num.count(None) % 2
        num = [f for f in num if f is not None] or [sp.Integer(1)]
        code = _dd_code(num[0], printer, at)
        for factor in num[1:]:
            code = f"_dd_mul({code}, {_dd_code(factor, printer, at)})"
        for factor in den:
            code = f"_dd_div({code}, {_dd_code(factor, printer, at)})"
        return f"_dd_neg({code})" if negate else code
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp != 0:
        base = _dd_code(expr.base, printer, at)
        code = base
        for _ in range(abs(int(expr.exp)) - 1):
            code = f"_dd_mul({code}, {base})"
        return code if expr.exp > 0 else f"_dd_div(_dd(1.0), {code})"
    raise NotStable(f"the logits {sp.sstr(expr.xreplace({SLOT: symbols.j}))} use "
                    f"{type(expr).__name__}, which has no double-double form (+, -, x, / only)", expr)


_DD_HELPERS = (SH._two_sum, SH._split, SH._two_prod, SH._dd, SH._dd_norm, SH._dd_add, SH._dd_neg,
               SH._dd_mul, SH._dd_div, SH._onehot, SH._dd_shift, SH._dd_shift_exp, SH._dd_at,
               SH._dd_argmax, SH._dd_shift_exp_up)


class _OfLogits(ArrayFunction):
    """A function of the logits f of one :class:`Family` (its class attributes
    ``template`` f(SLOT) and ``kappa``); arguments: the inputs f is made of, then
    (for the shifted forms) the argmax column."""

    template: sp.Expr = sp.Integer(0)
    kappa: sp.Symbol = symbols.k
    helpers = _DD_HELPERS
    shifted = True

    def _f(self, u):
        return self.template.xreplace({SLOT: u})

    def _dd(self, printer) -> str:
        return _dd_code(self.template, printer, lambda col: flat_index(printer, sp.Symbol("A"), col))

    def _at(self, printer) -> str:
        return flat_index(printer, sp.Symbol("A"), self.args[-1])

    def _numpycode_into(self, printer, out) -> str:
        return f"numpy.copyto({out}, {self._numpycode(printer)})"


class _Argmax(_OfLogits):
    is_column = True

    def indexed(self, j, tr):
        return self.kappa  # any index: the identities below hold for every k

    def _numpycode(self, printer):
        return f"_dd_argmax({self._dd(printer)})"

    def _latex(self, printer):
        return r"\operatorname{argmax} f"


class _ShiftExp(_OfLogits):
    def indexed(self, j, tr):
        return sp.exp(self._f(j) - self._f(tr(self.args[-1], j)))

    def _numpycode(self, printer):
        return f"_dd_shift_exp({self._dd(printer)}, {self._at(printer)})"

    def _latex(self, printer):
        return r"e^{f_j - f_k}"


#: the power of two the scaled exponentials carry (2^900 e^{f_j - f_k} <= 2^900 is finite)
UP = 900


class _ShiftExpUp(_OfLogits):
    def indexed(self, j, tr):
        return sp.exp(self._f(j) - self._f(tr(self.args[-1], j))) * sp.Integer(2) ** UP

    def _numpycode(self, printer):
        return f"_dd_shift_exp_up({self._dd(printer)}, {self._at(printer)})"

    def _latex(self, printer):
        return r"2^{%d} e^{f_j - f_k}" % UP


class Ldexp(ArrayFunction):
    """x 2^n, exact (one rounding where the result is subnormal)."""

    nargs = 2

    def indexed(self, j, tr):
        return tr(self.args[0], j) * sp.Integer(2) ** self.args[1]

    def _numpycode(self, printer):
        return f"numpy.ldexp({printer.doprint(self.args[0])}, {printer.doprint(self.args[1])})"

    def _numpycode_into(self, printer, out) -> str:
        return f"numpy.ldexp({printer.doprint(self.args[0])}, {printer.doprint(self.args[1])}, out={out})"

    def _latex(self, printer):
        return r"%s \cdot 2^{%s}" % (printer.doprint(self.args[0]), printer.doprint(self.args[1]))


class _Shift(_OfLogits):
    def indexed(self, j, tr):
        return self._f(j) - self._f(tr(self.args[-1], j))

    def _numpycode(self, printer):
        return f"_dd_shift({self._dd(printer)}, {self._at(printer)})"

    def _latex(self, printer):
        return r"\operatorname{fl}(f_j - f_k)"


class _At(_OfLogits):
    is_column = True

    def indexed(self, j, tr):
        return self._f(tr(self.args[-1], j))

    def _numpycode(self, printer):
        return f"_dd_at({self._dd(printer)}, {self._at(printer)})"

    def _latex(self, printer):
        return r"f_k"


class AccurateTail(SumExceptMax):
    """s' = sum_{j != k} e_j rounded about once (every 1 - S_c, and every power of it,
    inherits the tail's error)."""

    helpers = (H._accurate_sum, SH._accurate_tail)

    def _numpycode(self, printer):
        e, k = self.args
        return f"_accurate_tail({printer.doprint(e)}, {flat_index(printer, e, k)})"


class Classes(ArrayFunction):
    """T, the number of classes (the length of the logits' last axis)."""

    nargs = 1
    is_column = True

    def indexed(self, j, tr):
        return symbols.CLASSES

    def _numpycode(self, printer):
        return f"float({printer.doprint(self.args[0])}.shape[-1])"

    def _latex(self, printer):
        return "T"


class OneHot(ArrayFunction):
    """delta_jc: 1 at the target c of each row, 0 elsewhere (shaped like the logits A)."""

    nargs = 2  # the logits (for the shape) and the targets
    helpers = (SH._onehot,)

    def indexed(self, j, tr):
        return KroneckerDelta(j, tr(self.args[1], j))

    def _numpycode(self, printer):
        return f"_onehot({printer.doprint(self.args[0])}, {flat_index(printer, self.args[0], self.args[1])})"

    def _numpycode_into(self, printer, out) -> str:
        return f"numpy.copyto({out}, {self._numpycode(printer)})"

    def _latex(self, printer):
        return r"\delta_{jc}"


@dataclass
class Family:
    """One named softmax: ``name`` (S, P) of the logits ``logits(u)`` (index notation).
    Its array pieces: the argmax column ``k``, ``e`` = e^{f_j - f_k}, the tail
    s' = sum_{j != k} e_j, ``shift`` = f_j - f_k and ``top`` = f_k."""

    name: IndexedBase
    logits: Callable
    tag: str = ""
    _classes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.tag = self.tag or str(self.name)
        self.kappa = symbols.index(f"kappa_{self.tag}")
        template = self.logits(SLOT)
        leaves = sorted({_array_of(x.base) for x in template.atoms(Indexed)}
                        | {_column_of(o) for d in template.atoms(KroneckerDelta) for o in d.args if o != SLOT}
                        | {x for x in template.free_symbols if isinstance(x, sp.Symbol) and not x.is_integer
                           and x not in {i.base.label for i in template.atoms(Indexed)}},
                        key=sp.default_sort_key)
        self.leaves = tuple(leaves)
        key = sp.srepr(template)
        for role, cls in (("argmax", _Argmax), ("exp", _ShiftExp), ("shift", _Shift), ("top", _At),
                          ("up", _ShiftExpUp)):
            name = f"{cls.__name__[1:]}_{self.tag}_{zlib.crc32(key.encode()):08x}"
            self._classes[role] = _make(name, cls, template, self.kappa)
        self.k = self._classes["argmax"](*self.leaves)
        self.e = self._classes["exp"](*self.leaves, self.k)
        self.tail = AccurateTail(self.e, self.k)
        self.shift = self._classes["shift"](*self.leaves, self.k)
        self.top = self._classes["top"](*self.leaves, self.k)
        self.softmax = Quotient(self.e, 1 + self.tail)
        self.log_softmax = self.shift - log1p(self.tail)
        self.log_partition = self.top + log1p(self.tail)
        # 1 - S_c: s'/(1 + s') when c is the argmax; else S_c <= 1/2 and 1 - S_c is exact enough
        self.complement = SelectArgmax(C, self.k, Quotient(self.tail, 1 + self.tail),
                                       1 - Take(self.softmax, C))
        self.grad_pair = _put_true(self.softmax, self)
        self.e_up = self._classes["up"](*self.leaves, self.k)
        self.tail_up = SumExcept(self.e_up, self.k)

    def times(self, g):
        """S_j g rounded once: 2^-900 (2^900 e_j g / (1 + s'))."""
        return Ldexp(Quotient(self.e_up * g, 1 + self.tail), -UP)

    def pair_times(self, g):
        """(S_j - delta_jc) g, the true class without cancellation and rounded once."""
        from .functions import PutAt
        scaled = self.times(g)
        return PutAt(scaled, C, SelectArgmax(C, self.k, -Ldexp(Quotient(self.tail_up * g, 1 + self.tail), -UP),
                                             Take(scaled, C) - g))


_MADE: dict = {}


def _make(name, base, template, kappa):
    """The subclass of ``base`` for one family (made once per name: SymPy keys its
    cache by class, and a generated module names its calls by it)."""
    if name not in _MADE:
        _MADE[name] = type(name, (base,), {"template": template, "kappa": kappa, "nargs": None,
                                           "__module__": __name__})
    return _MADE[name]


def _put_true(soft, family):
    from .functions import PutAt
    return PutAt(soft, C, SelectArgmax(C, family.k, -Quotient(family.tail, 1 + family.tail),
                                       Take(soft, C) - 1))


def families(defines) -> dict:
    """{name: Family} for the softmax Defines of a rule set (:func:`recognise`)."""
    out = {}
    for define in defines:
        num, den = sp.fraction(define.body(SLOT))
        if isinstance(num, sp.exp):
            out[define.base] = Family(define.base, lambda u, g=num.args[0]: g.xreplace({SLOT: u}))
    return out


# --------------------------------------------------------------------------- the rules
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
    families: dict
    j: sp.Symbol
    c: sp.Symbol
    fired: list = field(default_factory=list)
    cancelling: list = field(default_factory=list)


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
    return walk(sp.Mul(pair, factor, evaluate=False), ctx)


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
    return n * family.complement + walk(rest, ctx)


def _build_pair(e, ctx, found):
    family, sign, expanded = found
    rest = expanded - sign * (family.name[ctx.j] - KroneckerDelta(ctx.j, ctx.c))
    return sign * family.grad_pair + walk(rest, ctx)


def _match_complement(e, ctx):
    """1 - S_c (sign 1) or S_c - 1 (sign -1)."""
    if isinstance(e, sp.Add) and len(e.args) == 2 and (1 in e.args or -1 in e.args):
        one = 1 if 1 in e.args else -1
        other = e.args[0] if e.args[1] == one else e.args[1]
        family = _name_at(-one * other, ctx, ctx.c)
        if family is not None:
            return family, one
    return None


def _match_power(e, ctx):
    if isinstance(e, sp.Pow) and not (e.exp.is_Integer and abs(e.exp) <= 2):
        return _name_at(e.base, ctx, ctx.c) or _name_at(e.base, ctx, ctx.j)
    return None


def _build_power(e, ctx, found):
    index = e.base.indices[0]
    log_s = found.log_softmax if index == ctx.j else Take(found.shift, C) - log1p(found.tail)
    return sp.exp(walk(e.exp, ctx) * log_s)


def _match_log(e, ctx):
    if isinstance(e, sp.log):
        return _name_at(e.args[0], ctx, ctx.j) or _name_at(e.args[0], ctx, ctx.c)
    return None


def _build_log(e, ctx, family):
    if e.args[0].indices[0] == ctx.j:
        return family.log_softmax
    return Take(family.shift, C) - log1p(family.tail)


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


def _match_softmax(e, ctx):
    return _name_at(e, ctx, ctx.j) or _name_at(e, ctx, ctx.c)


def _build_softmax(e, ctx, family):
    return family.softmax if e.indices[0] == ctx.j else Quotient(Take(family.e, C), 1 + family.tail)


def _match_row_sum(e, ctx):
    if isinstance(e, Sum) and len(e.limits) == 1:
        var, lo, hi = e.limits[0]
        if (lo, hi) == (1, symbols.CLASSES):
            return var
    return None


def _build_row_sum(e, ctx, var):
    inner = Context(ctx.families, ctx.j, ctx.c, ctx.fired, ctx.cancelling)
    body = e.function.xreplace({var: ctx.j})
    return AccurateRowSum(walk(body, inner))


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


def _build_product(e, ctx, found):
    family, sign, rest, pair = found
    g = sign * walk(rest, ctx)
    return family.pair_times(g) if pair else family.times(g)


#: the stable rules, tried in this order at every node (the first that matches builds it)
GRADIENT_PAIR = StableRule("gradient_pair", r"$S_j - \delta_{jc}$: at the true class $-s'/(1 + s')$ "
                           r"when $c$ is the argmax (no cancellation)", _match_pair, _build_pair)
COMPLEMENT = StableRule("complement", r"$1 - S_c = \sum_{j \ne c} S_j$: $s'/(1 + s')$ when $c$ is the argmax",
                        _match_complement, lambda e, ctx, f: f[1] * f[0].complement)
POWER = StableRule("power_through_log", r"$S_c^p = e^{p \log S_c}$ with $\log S_c$ from log-softmax",
                   _match_power, _build_power)
LOG_SOFTMAX = StableRule("log_softmax", r"$\log S_j = (f_j - f_k) - \operatorname{log1p}(s')$",
                         _match_log, _build_log)
LOG_PARTITION = StableRule("log_partition", r"$\log \sum_j e^{f_j} = f_k + \operatorname{log1p}(s')$",
                           _match_log_partition, lambda e, ctx, f: f.log_partition)
SOFTMAX = StableRule("softmax_through_max", r"$S_j = e^{f_j - f_k} / (1 + s')$, $f_j - f_k$ in double-double",
                     _match_softmax, _build_softmax)
ROW_SUM = StableRule("accurate_row_sum", r"$\sum_s g_s$ summed to about one rounding",
                     _match_row_sum, _build_row_sum)
FACTOR_PAIR = StableRule("factor_pair", r"$(S_j - \delta_{jc})(1 + u)$: the pair factored out of "
                         r"$S_j - \delta_{jc} + u (S_j - \delta_{jc})$ (no cancellation between them)",
                         _match_factor_pair, _build_factor_pair)
PRODUCT = StableRule("scaled_product", r"$S_j g = 2^{-900} (2^{900} e^{f_j - f_k} g / (1 + s'))$: "
                     r"one rounding into the subnormal range", _match_product, _build_product)
COMPLEMENT_IN_SUM = StableRule("complement_in_sum", r"$n - n S_c + u = n (1 - S_c) + u$",
                               _match_complement_in_sum, _build_complement_in_sum)
RULES = (FACTOR_PAIR, PRODUCT, GRADIENT_PAIR, COMPLEMENT, COMPLEMENT_IN_SUM, POWER, LOG_SOFTMAX, LOG_PARTITION,
         SOFTMAX, ROW_SUM)


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


def walk(e, ctx: Context):
    """The array form of ``e`` by the rules (:data:`RULES`), its parts taken apart."""
    for rule in RULES:
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


def stabilise(expr: sp.Expr, fams: dict, j: sp.Symbol = symbols.j, c: sp.Symbol | None = None) -> Stabilised:
    """The stable array form of ``expr`` (index notation at the output index ``j``,
    target ``c``) over the softmax families ``fams``; :class:`NotStable` naming the
    subexpression that has none."""
    from .symbols import INDEX_RANGES

    c = c if c is not None else next((x for x in INDEX_RANGES if x.name == "c"), sp.Symbol("c"))
    ctx = Context(fams, j, c)
    array = walk(expr, ctx)
    return Stabilised(expr, array, tuple(ctx.fired), tuple(ctx.cancelling))


def magnitude(expr: sp.Expr, cancelling) -> sp.Expr:
    """``expr`` with every sum of :attr:`Stabilised.cancelling` replaced by the sum of
    its terms' magnitudes: the scale in whose ULPs a rounding error of such a sum is
    measured (the relative error of a sum that cancels is unbounded in any
    floating-point evaluation; this is the sum's own condition)."""
    if not cancelling:
        return expr
    table = {e: sp.Add(*(sp.Abs(t) for t in e.args)) for e in cancelling}
    new = expr.xreplace(table)
    if new != expr:
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


def helper_sources() -> list[str]:
    return [inspect.getsource(f).strip() for f in _DD_HELPERS]


__all__ = ["Family", "NotStable", "RULES", "StableRule", "Stabilised", "families", "magnitude", "stabilise",
           "to_indexed"]
