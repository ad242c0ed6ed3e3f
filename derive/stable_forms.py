"""The array forms of the stable kernels (:mod:`derive.stable`): a softmax of any
expression f of the logits through its own row maximum, its pieces as array functions
(the argmax of f, e^{f_j - f_k}, f_j - f_k, f_k, the accurate tail s', the scaled
products that are rounded once into the subnormal range) and :class:`Family`, the
pieces of one named softmax. f is carried in double-double from the exact inputs
(:mod:`derive.stable_helpers`), so f_j - f_k is rounded once.
"""
from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed, IndexedBase, KroneckerDelta
from sympy.codegen.cfunctions import log1p

from . import kernel_helpers as H
from . import stable_helpers as SH
from . import symbols
from .functions import (
    MEANINGS,
    ArrayFunction,
    C,
    Quotient,
    SelectArgmax,
    SumExcept,
    SumExceptMax,
    Take,
    flat_index,
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
               SH._dd_argmax, SH._dd_shift_exp_up, SH._dd_int_pow, SH._dd_column, SH._dd_exp_over,
               SH._dd_pair_times, SH._dd_power_target)


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


class _PairTimes(_OfLogits):
    """S_j S_c^n h: arguments the inputs of f, then n, h, the tail s', the target column
    and the argmax column."""

    def indexed(self, j, tr):
        n, h, tail, c, k = self.args[-5:]
        f_k = self._f(tr(k, j))
        return (sp.exp(self._f(j) + n * self._f(tr(c, j)) - (n + 1) * f_k) * tr(h, j)
                / (1 + tr(tail, j)) ** (n + 1))

    def _numpycode(self, printer):
        n, h, tail, c, _ = self.args[-5:]
        return (f"_dd_pair_times({self._dd(printer)}, {self._at(printer)}, "
                f"{flat_index(printer, sp.Symbol('A'), c)}, {printer.doprint(h)}, {printer.doprint(tail)}, {int(n)})")

    def _latex(self, printer):
        return r"S_j S_c^{%d} \, %s" % (int(self.args[-5]), printer.doprint(self.args[-4]))


class _PowerTarget(_OfLogits):
    """S_c^n: arguments the inputs of f, then n, the tail s', the target column and the
    argmax column."""

    is_column = True

    def indexed(self, j, tr):
        n, tail, c, k = self.args[-4:]
        return sp.exp(n * (self._f(tr(c, j)) - self._f(tr(k, j)))) / (1 + tr(tail, j)) ** n

    def _numpycode(self, printer):
        n, tail, c, _ = self.args[-4:]
        return (f"_dd_power_target({self._dd(printer)}, {self._at(printer)}, "
                f"{flat_index(printer, sp.Symbol('A'), c)}, {int(n)}, {printer.doprint(tail)})")

    def _latex(self, printer):
        return r"S_c^{%d}" % int(self.args[-4])


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
                          ("up", _ShiftExpUp), ("pair", _PairTimes), ("power", _PowerTarget)):
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

    def times_target(self, h, n=1):
        """S_j S_c^n h rounded about once (the exponentials as one, see _dd_pair_times)."""
        return self._classes["pair"](*self.leaves, sp.Integer(n), h, self.tail, C, self.k)

    def pair_times_target(self, h, g, n=1):
        """(S_j - delta_jc) g with g = S_c^n h: the classes j != c as S_j S_c^n h rounded
        about once; the true class, when it is the argmax, minus their accurate sum."""
        from .functions import PutAt
        scaled = self.times_target(h, n)
        # c = k: (S_c - 1) S_c^n h = -sum_{j != c} S_j S_c^n h, a sum of terms of one sign
        return PutAt(scaled, C, SelectArgmax(C, self.k, -AccurateTail(scaled, self.k), Take(scaled, C) - g))

    def power_target(self, n):
        """S_c^n rounded about once (see _dd_power_target)."""
        return self._classes["power"](*self.leaves, sp.Integer(n), self.tail, C, self.k)

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


def helper_sources() -> list[str]:
    return [inspect.getsource(f).strip() for f in _DD_HELPERS]

