"""Closed numbers (no free symbol once the assumptions fix the given vectors) enclosed
by interval arithmetic (``mpmath.iv``) at rising precision: :func:`enclose`,
:func:`closed`, :func:`closed_relation`, :func:`closed_rounding`. A decision taken from
an interval is never one that cancellation made."""
from __future__ import annotations

import fractions

import mpmath
import sympy as sp
from sympy import Indexed, KroneckerDelta, Piecewise, Sum
from sympy.codegen.cfunctions import log1p

from .. import symbols
from . import settings
from .forms import _apply
from .steps import EvaluationError


class Unclosed(Exception):
    """The expression is not a closed number that :class:`_Bounds` can enclose."""


class _Undecided(Exception):
    """An interval straddles a branch point (a Piecewise condition, a floor): more
    precision is needed."""


def _ends(x) -> tuple:
    """The end points of an interval as exact mpf numbers."""
    lo, hi = x._mpi_
    return mpmath.mp.make_mpf(lo), mpmath.mp.make_mpf(hi)


class _Bounds:
    """Encloses a closed number (no free symbol; the components of vectors that an
    assumption fixes, as ``Values`` does, are replaced by what it rewrites them to) in
    an interval, with mpmath's interval arithmetic at the current ``iv.prec``: the
    exact value lies inside whatever rounding happened, so a decision taken from the
    interval is never one that cancellation made."""

    def __init__(self, assumptions):
        self.rewrite = _apply(assumptions)

    def __call__(self, expr, scope=None):
        return self.ev(expr, scope or {})

    def integer(self, expr, scope) -> int:
        lo, hi = _ends(self.ev(expr, scope))
        if lo != hi or lo != mpmath.nint(lo):
            raise Unclosed(f"the index {sp.sstr(expr)} is not an integer")
        return int(lo)

    def ev(self, expr, scope):
        """The interval of ``expr``: numbers, the summation variables of ``scope``,
        components an assumption fixes and sums and products here, powers by
        :meth:`power`, every other node by :meth:`node`."""
        iv = mpmath.iv
        if expr.is_Integer:
            return iv.mpf(int(expr))
        if expr.is_Rational:
            return iv.mpf(expr.p) / expr.q
        if expr.is_Float:
            exact = sp.Rational(str(expr))
            return iv.mpf(exact.p) / exact.q
        if expr is sp.pi:
            return iv.pi
        if expr is sp.E:
            return iv.e
        if isinstance(expr, sp.Symbol):
            if expr in scope:
                return iv.mpf(scope[expr])
            raise Unclosed(f"{expr} is free")
        if isinstance(expr, Indexed):
            item = symbols.component(expr.base, tuple(self.integer(i, scope) for i in expr.indices))
            fixed = self.rewrite(item)
            if fixed == item or fixed.free_symbols:
                raise Unclosed(f"{sp.sstr(item)} is not fixed by an assumption")
            return self.ev(fixed, scope)
        if isinstance(expr, sp.Add):
            total = iv.mpf(0)
            for arg in expr.args:
                total += self.ev(arg, scope)
            return total
        if isinstance(expr, sp.Mul):
            product = iv.mpf(1)
            for arg in expr.args:
                product *= self.ev(arg, scope)
            return product
        if isinstance(expr, sp.Pow):
            return self.power(expr, scope)
        return self.node(expr, scope)

    def power(self, expr, scope):
        """b^e: an integer power of any base not straddling 0 where e < 0, else
        e^(e log b) of a positive base."""
        base = self.ev(expr.base, scope)
        if expr.exp.is_Integer:
            if int(expr.exp) < 0 and 0 in base:
                raise Unclosed(f"{sp.sstr(expr)}: a division by a number that may be 0")
            return base ** int(expr.exp)
        if not _ends(base)[0] > 0:
            raise Unclosed(f"{sp.sstr(expr)}: a power of a number that may not be positive")
        return self.exp(self.ev(expr.exp, scope) * mpmath.iv.log(base))

    def node(self, expr, scope):
        """The interval of a function, a delta, a sum or a Piecewise; :class:`Unclosed`
        for anything else, :class:`_Undecided` where a floor or a condition straddles
        its branch point at this precision."""
        iv = mpmath.iv
        if isinstance(expr, sp.exp):
            return self.exp(self.ev(expr.args[0], scope))
        if isinstance(expr, (sp.log, log1p)):
            arg = self.ev(expr.args[0], scope) + (1 if isinstance(expr, log1p) else 0)
            if not _ends(arg)[0] > 0:
                raise Unclosed(f"{sp.sstr(expr)}: the logarithm of a number that may not be positive")
            return iv.log(arg)
        if isinstance(expr, sp.Abs):
            return abs(self.ev(expr.args[0], scope))
        if isinstance(expr, (sp.Max, sp.Min)):
            ends = [_ends(self.ev(arg, scope)) for arg in expr.args]
            pick = max if isinstance(expr, sp.Max) else min
            return iv.mpf([pick(lo for lo, _ in ends), pick(hi for _, hi in ends)])
        if isinstance(expr, (sp.floor, sp.ceiling)):
            lo, hi = _ends(self.ev(expr.args[0], scope))
            round_ = mpmath.floor if isinstance(expr, sp.floor) else mpmath.ceil
            if round_(lo) != round_(hi):
                raise _Undecided(sp.sstr(expr))
            return iv.mpf(round_(lo))
        if isinstance(expr, (sp.sin, sp.cos)):
            return (iv.sin if isinstance(expr, sp.sin) else iv.cos)(self.ev(expr.args[0], scope))
        if isinstance(expr, KroneckerDelta):
            x, y = (self.integer(arg, scope) for arg in expr.args)
            return iv.mpf(1 if x == y else 0)
        if isinstance(expr, Sum):
            return self.sum(expr.function, list(expr.limits), scope)
        if isinstance(expr, Piecewise):
            for branch, cond in expr.args:
                if self.truth(cond, scope):
                    return self.ev(branch, scope)
            raise Unclosed(f"no branch of {sp.sstr(expr)} applies")
        raise Unclosed(f"{type(expr).__name__} is not enclosed")

    def exp(self, x):
        lo, hi = _ends(x)
        if max(abs(lo), abs(hi)) > settings.LARGEST_EXPONENT:
            raise EvaluationError(f"e^x with x = {mpmath.nstr(hi, 8)} is too large to evaluate")
        return mpmath.iv.exp(x)

    def truth(self, cond, scope) -> bool:
        if cond in (sp.true, True):
            return True
        if cond in (sp.false, False):
            return False
        if isinstance(cond, sp.And):
            return all(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Or):
            return any(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Not):
            return not self.truth(cond.args[0], scope)
        if isinstance(cond, sp.core.relational.Relational):
            lo, hi = _ends(self.ev(cond.lhs, scope) - self.ev(cond.rhs, scope))
            decided = {"<": (hi < 0, lo >= 0), "<=": (hi <= 0, lo > 0), ">": (lo > 0, hi <= 0),
                       ">=": (lo >= 0, hi < 0), "==": (lo == hi == 0, lo > 0 or hi < 0),
                       "!=": (lo > 0 or hi < 0, lo == hi == 0)}[cond.rel_op]
            if decided[0]:
                return True
            if decided[1]:
                return False
            raise _Undecided(sp.sstr(cond))
        raise Unclosed(f"the condition {sp.sstr(cond)}")

    def sum(self, body, limits, scope):
        if not limits:
            return self.ev(body, scope)
        (var, lo, hi), inner = limits[-1], limits[:-1]
        lo, hi = self.integer(lo, scope), self.integer(hi, scope)
        sign_ = 1
        if hi < lo:
            lo, hi, sign_ = hi + 1, lo - 1, -1
        if hi - lo > 100_000:
            raise Unclosed("a sum of more than 100000 terms")
        total = mpmath.iv.mpf(0)
        for n in range(lo, hi + 1):
            total += self.sum(body, inner, {**scope, var: n})
        return sign_ * total


def enclose(expr, assumptions=(), prec: int = settings.CLOSED_PRECISIONS[0]):
    """An interval (at ``prec`` bits) holding the closed number ``expr``; raises
    :class:`Unclosed` if ``expr`` is not one (a free symbol, a derivative).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine import enclose
    >>> big = sp.exp(100) * (1 + sp.exp(-100)) - sp.exp(100)  # exactly 1
    >>> 0 in enclose(big, prec=64), 0 in enclose(big, prec=256)  # cancelled at 64 bits
    (True, False)
    """
    saved = mpmath.iv.prec
    mpmath.iv.prec = prec
    try:
        return _Bounds(assumptions)(expr)
    finally:
        mpmath.iv.prec = saved


def closed(expr, assumptions=()) -> bool:
    """True if ``expr`` is a closed number (once the assumptions fix the components of
    given vectors) that intervals can enclose."""
    try:
        enclose(expr, assumptions, 64)
    except (Unclosed, EvaluationError):
        return False
    except _Undecided:
        return True
    except Exception:  # noqa: BLE001 - anything else mpmath cannot enclose
        return False
    return True


def _decide(question, what: str):
    """``question(prec)`` -> a verdict, or raises _Undecided: asked at rising precision
    until it is decided; EvaluationError if it never is."""
    for prec in settings.CLOSED_PRECISIONS:
        try:
            return question(prec)
        except _Undecided:
            continue
    raise EvaluationError(f"{what} is not decided at {settings.CLOSED_PRECISIONS[-1]} bits "
                          "(the value may lie exactly on a boundary)")


def closed_relation(prev, this, rel: str, assumptions) -> bool:
    """Whether ``prev <rel> this`` holds for closed numbers, decided by intervals at
    rising precision. ``=`` is false once the enclosures are disjoint and true when
    they overlap at the last precision (intervals cannot show equality; the symbolic
    half must); the orders are decided as soon as the enclosures are."""
    def question(prec):
        lo, hi = _ends(enclose(prev - this if rel in ("=", ">", ">=") else this - prev, assumptions, prec))
        if rel == "=":
            if lo > 0 or hi < 0:
                return False
            if lo == hi == 0 or prec == settings.CLOSED_PRECISIONS[-1]:
                return True
            raise _Undecided(rel)
        strict = rel in (">", "<")
        if (lo > 0) if strict else (lo >= 0):
            return True
        if (hi <= 0) if strict else (hi < 0):
            return False
        raise _Undecided(rel)
    return _decide(question, f"'previous {rel} this'")


def closed_rounding(value, decimals: int, assumptions) -> int:
    """The closed number ``value`` times 10^decimals rounded to the nearest integer
    (half to even, as mpmath's nint), decided by intervals at rising precision: never
    from a value that cancelled."""
    def question(prec):
        with mpmath.workprec(prec + 64):
            lo, hi = (x * mpmath.mpf(10) ** decimals for x in _ends(enclose(value, assumptions, prec)))
            down, up = mpmath.nint(lo), mpmath.nint(hi)
            if down == up and abs(lo - down) != mpmath.mpf(1) / 2 and abs(hi - up) != mpmath.mpf(1) / 2:
                return int(down)
        raise _Undecided("the rounding")
    try:  # (no doit: SymPy would work out (1 + 10^-50)^(10^50) exactly, for ever)
        exact = _apply(assumptions)(value)
    except Exception:  # noqa: BLE001 - SymPy could not: the intervals decide
        exact = None
    if isinstance(exact, sp.Rational):  # exactly: a tie is a tie (half to even)
        scaled = exact * 10 ** decimals
        return round(fractions.Fraction(int(scaled.p), int(scaled.q)))
    return _decide(question, "the rounding")
