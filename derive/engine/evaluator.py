"""The engine's own evaluator: a SymPy expression on a concrete instance with mpmath
(:func:`evaluate`), sums as loops, indices looked up, derivatives by ``mpmath.diff``,
and a sum that cancels evaluated again with the digits it needs."""
from __future__ import annotations

import functools
import time

import mpmath
import sympy as sp
from sympy import Derivative, Indexed, KroneckerDelta, Piecewise, Sum
from sympy.codegen.cfunctions import log1p

from .. import mpexp, symbols
from . import settings
from .steps import EvaluationError


def _exp(x):
    """e^x, refused where its digits would not fit in memory (e^(e^(e^(20 T))))."""
    if abs(mpmath.re(x)) > settings.LARGEST_EXPONENT:
        raise EvaluationError(f"e^x with x = {mpmath.nstr(x, 8)} is too large to evaluate")
    return mpexp.exp(x)


def _extreme(pick):
    def of(*values):
        if any(isinstance(v, mpmath.mpc) and mpmath.im(v) != 0 for v in values):
            raise EvaluationError(f"{pick.__name__} of complex numbers")
        return pick(mpmath.re(v) for v in values)
    return of


_MP_FUNCTIONS = {
    sp.exp: _exp, sp.log: mpmath.log, log1p: mpmath.log1p, sp.Abs: abs,
    sp.sin: mpmath.sin, sp.cos: mpmath.cos, sp.tanh: mpmath.tanh, sp.sqrt: mpmath.sqrt,
    sp.sign: mpmath.sign, sp.Max: _extreme(max), sp.Min: _extreme(min),
    sp.floor: mpmath.floor, sp.ceiling: mpmath.ceil,
}


@functools.lru_cache(maxsize=256)
def _power_of_ten(n: int) -> mpmath.mpf:
    return mpmath.mpf(10) ** n


class _Cancelled(Exception):
    """A sum lost the digits its terms had: evaluate again with ``digits`` digits."""

    def __init__(self, digits: int, expr):
        super().__init__(digits)
        self.digits, self.expr = digits, expr


#: an evaluation is trusted to the absolute size 10^-CANCELLATION_FLOOR (below the
#: tolerance of the comparison: 10^-30 relative to 1 + |value|)
CANCELLATION_FLOOR = 36


def _as_int(value, what) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, mpmath.mpc) or value != mpmath.nint(value):
        raise EvaluationError(f"{what} is {mpmath.nstr(value, 8)}, not an integer")
    return int(mpmath.nint(value))


@functools.lru_cache(maxsize=1 << 16)
def _free_symbols(expr) -> frozenset:
    """``expr.free_symbols``, which SymPy recomputes on every call (a walk of the whole
    tree); the evaluator asks for it on every node, for every instance."""
    return frozenset(expr.free_symbols)


class _Evaluator:
    """Evaluates a SymPy expression on a concrete instance with mpmath.

    Its own semantics, independent of SymPy's algorithms: a Sum is a loop over its
    limits (SymPy's convention for reversed limits), an Indexed a look-up in the
    instance, a Piecewise picks its first true branch, and a Derivative is taken by
    ``mpmath.diff`` of its body with the variable's value moved."""

    def __init__(self, env: symbols.Instance, deadline: float | None = None, watch: bool = False):
        self.env = env
        self.moved = {}  # values that mpmath.diff has moved
        self.memo = {}
        #: the time after which evaluating more is an EvaluationError (None: no limit)
        self.deadline = deadline
        #: whether a sum that cancels raises _Cancelled (for :func:`evaluate` to repeat
        #: the evaluation with more digits)
        self.watching = watch

    def __call__(self, expr):
        return self.ev(expr, {})

    def value_of(self, key):
        if key in self.moved:
            return self.moved[key]
        if key in self.env:
            return self.env[key]
        raise EvaluationError(f"no value for {sp.sstr(key)} in a T={self.env.T}, N={self.env.N} "
                              "instance (an index outside its range?)")

    def ev(self, expr, scope):
        if isinstance(expr, Indexed):
            # a component is a look-up, cheaper than the memo: an Indexed's equality (on
            # each hit of an equal one made elsewhere) builds the assumptions of both
            value = mpmath.mpmathify(self.value_of(self.key_of(expr, scope)))
            if not mpmath.isfinite(value):
                raise EvaluationError(f"{sp.sstr(expr)} is {value}")
            return value
        if scope:  # the summation variables the value depends on
            free = _free_symbols(expr)
            key = (expr, tuple(sorted(((s, v) for s, v in scope.items() if s in free),
                                      key=lambda item: item[0].name)))
        else:
            key = (expr, ())
        if key in self.memo:
            return self.memo[key]
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise EvaluationError(f"the instance took longer than {settings.INSTANCE_SECONDS:g} s to evaluate "
                                  "(the time limit per instance)")
        value = self._ev(expr, scope)
        if not mpmath.isfinite(value):
            raise EvaluationError(f"{sp.sstr(expr)} is {value}")
        self.memo[key] = value
        return value

    def index(self, expr, scope) -> int:
        return _as_int(self.ev(expr, scope), f"the index {sp.sstr(expr)}")

    def key_of(self, item: Indexed, scope):
        idx = tuple(self._index_of(i, scope) for i in item.indices)
        return symbols.component(item.base, idx)

    def _index_of(self, index, scope) -> int:
        """:meth:`index`, at once for a summation variable (its value in ``scope`` is an
        int) and an integer; the index of a component is read hundreds of thousands of
        times in a check."""
        value = scope.get(index)
        if isinstance(value, int):
            return value
        if index.is_Integer:
            return int(index)
        return self.index(index, scope)

    def _ev(self, expr, scope):
        if expr.is_Integer:
            return mpmath.mpf(int(expr))
        if expr.is_Rational:
            return mpmath.mpf(expr.p) / expr.q
        if expr.is_Float:
            return mpmath.mpf(sp.Rational(str(expr)).p) / sp.Rational(str(expr)).q
        if expr is sp.I:
            return mpmath.mpc(0, 1)
        if isinstance(expr, sp.NumberSymbol):
            return mpmath.mpmathify(expr.evalf(mpmath.mp.dps + 10))
        if isinstance(expr, sp.Symbol):
            if expr in scope:
                return mpmath.mpf(scope[expr])
            return mpmath.mpmathify(self.value_of(expr))
        if isinstance(expr, Indexed):
            return mpmath.mpmathify(self.value_of(self.key_of(expr, scope)))
        if isinstance(expr, sp.Add):
            terms = [self.ev(arg, scope) for arg in expr.args]
            total = mpmath.fsum(terms)
            if self.watching:
                self.watch(expr, terms, total)
            return total
        if isinstance(expr, sp.Mul):
            result = mpmath.mpf(1)
            for arg in expr.args:
                result *= self.ev(arg, scope)
            return result
        if isinstance(expr, sp.Pow):
            base, power = self.ev(expr.base, scope), self.ev(expr.exp, scope)
            if base == 0 and mpmath.re(power) <= 0:
                raise EvaluationError(f"{sp.sstr(expr)}: a division by zero")
            if base != 0 and abs(power * mpmath.log(base)) > settings.LARGEST_EXPONENT:
                raise EvaluationError(f"{sp.sstr(expr)} is too large to evaluate")
            return base ** power
        if isinstance(expr, Sum):
            return self.sum(expr.function, list(expr.limits), scope)
        if isinstance(expr, KroneckerDelta):
            x, y = (self.ev(arg, scope) for arg in expr.args)
            return mpmath.mpf(1 if x == y else 0)
        if isinstance(expr, Piecewise):
            for branch, cond in expr.args:
                if self.truth(cond, scope):
                    return self.ev(branch, scope)
            raise EvaluationError(f"no branch of {sp.sstr(expr)} applies")
        if isinstance(expr, Derivative):
            return self.derivative(expr, scope)
        if isinstance(expr, sp.log) and self.ev(expr.args[0], scope) == 0:
            raise EvaluationError(f"{sp.sstr(expr)}: the logarithm of 0")
        func = _MP_FUNCTIONS.get(expr.func)
        if func is not None:
            return func(*(self.ev(arg, scope) for arg in expr.args))
        if isinstance(expr, sp.Function):
            args = [self.ev(arg, scope) for arg in expr.args]
            number = expr.func(*(sp.Float(x, mpmath.mp.dps) for x in args)).evalf(mpmath.mp.dps)
            if not number.is_number:
                raise EvaluationError(f"cannot evaluate {sp.sstr(expr)}")
            return mpmath.mpmathify(complex(number) if number.has(sp.I) else number._to_mpmath(mpmath.mp.prec))
        raise EvaluationError(f"cannot evaluate {type(expr).__name__} {sp.sstr(expr)}")

    def watch(self, expr, terms, total) -> None:
        """Raise :class:`_Cancelled` if the sum ``total`` of ``terms`` cancelled below
        what the working precision can tell: its absolute error (about the largest
        term times 10^-digits) is above 10^-CANCELLATION_FLOOR and above 10^-32 of
        the sum itself. The digits that make it exact enough come with it."""
        largest = max(abs(term) for term in terms)
        digits = mpmath.mp.dps
        if largest <= _power_of_ten(digits - CANCELLATION_FLOOR):
            return
        if abs(total) * _power_of_ten(digits - 32) >= largest:
            return
        needed = int(mpmath.log10(largest)) + CANCELLATION_FLOOR + 4
        raise _Cancelled(max(needed, digits + 10), expr)

    def truth(self, cond, scope) -> bool:
        if cond is sp.true or cond is True:
            return True
        if cond is sp.false or cond is False:
            return False
        if isinstance(cond, sp.And):
            return all(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Or):
            return any(self.truth(arg, scope) for arg in cond.args)
        if isinstance(cond, sp.Not):
            return not self.truth(cond.args[0], scope)
        if isinstance(cond, sp.core.relational.Relational):
            x, y = self.ev(cond.lhs, scope), self.ev(cond.rhs, scope)
            ops = {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}
            return ops[cond.rel_op]
        raise EvaluationError(f"cannot decide the condition {sp.sstr(cond)}")

    def sum(self, body, limits, scope):
        if not limits:
            return self.ev(body, scope)
        (var, lo, hi), inner = limits[-1], limits[:-1]  # the outermost limit is last
        lo, hi = self.index(lo, scope), self.index(hi, scope)
        sign_ = 1
        if hi < lo:  # SymPy's (Karr's) convention: sum_{lo}^{hi} = -sum_{hi+1}^{lo-1}
            lo, hi, sign_ = hi + 1, lo - 1, -1
        return sign_ * self.total([self.sum(body, inner, {**scope, var: n}) for n in range(lo, hi + 1)], body)

    def total(self, terms: list, body) -> mpmath.mpf:
        """The sum of a Sum's terms (the verification's reference overrides it to check the
        digits the sum kept)."""
        return mpmath.fsum(terms)

    def derivative(self, expr, scope):
        counts = {}
        for var, count in expr.variable_count:
            if isinstance(var, Indexed):
                where = self.key_of(var, scope)
            elif isinstance(var, sp.Symbol) and var not in scope:
                where = var
            else:
                raise EvaluationError(f"cannot differentiate with respect to {sp.sstr(var)}")
            counts[where] = counts.get(where, 0) + count
        keys = list(counts)
        points = [mpmath.mpmathify(self.value_of(where)) for where in keys]
        body = expr.expr

        def f(*values):
            saved, memo = dict(self.moved), self.memo
            self.moved.update(zip(keys, values))
            self.memo = {}
            try:
                return self.ev(body, scope)
            finally:
                self.moved, self.memo = saved, memo
        orders = [counts[where] for where in keys]
        if len(keys) == 1:
            return mpmath.diff(f, points[0], orders[0])
        return mpmath.diff(f, points, orders)


def evaluator(env: symbols.Instance) -> _Evaluator:
    """An evaluator for several expressions on one instance (pass it to
    :func:`evaluate`): what they have in common (a sum over the classes, say) is
    evaluated once. Only while ``env`` keeps the values it had: a value changed after an
    evaluation would not be seen (values added are: a missing one was never remembered).
    Each has the time limit :data:`INSTANCE_SECONDS`, and watches for sums that cancel."""
    return _Evaluator(env, time.perf_counter() + settings.INSTANCE_SECONDS, watch=True)


def evaluate(expr: sp.Expr, env: symbols.Instance, using: _Evaluator | None = None):
    """``expr`` on a concrete instance, with mpmath at :data:`DIGITS` digits, or at as
    many more as a sum that cancels needs (up to :data:`MAX_DIGITS`: a value is never
    taken from a sum that lost its digits) (``using``: an :func:`evaluator` of ``env``
    shared with other expressions).

    Raises :class:`EvaluationError` when it has no finite value there (a missing
    component such as a[0] or y[T + 1], log 0, a division by zero), when it cancels
    beyond MAX_DIGITS, or when the instance takes longer than
    :data:`INSTANCE_SECONDS`."""
    ev = using if using is not None else evaluator(env)
    digits = settings.DIGITS
    while True:
        with mpmath.workdps(digits):
            try:
                return +ev(expr)
            except _Cancelled as cancelled:  # again, from the start, with the digits it needs
                if cancelled.digits > settings.MAX_DIGITS:
                    raise EvaluationError(
                        f"{sp.sstr(cancelled.expr)} cancels beyond {settings.MAX_DIGITS} digits (its "
                        "terms are too large for its value to be told)") from None
                digits = cancelled.digits
                ev = _Evaluator(env, ev.deadline, watch=True)
            except EvaluationError:
                raise
            except Exception as err:  # whatever fails, the instance has no value
                raise EvaluationError(f"{type(err).__name__}: {err}") from err


def _holds(lhs, rhs, rel) -> bool:
    with mpmath.workdps(settings.DIGITS):
        scale = settings.TOLERANCE * (1 + max(abs(lhs), abs(rhs)))
        if rel == "=":
            return abs(lhs - rhs) <= scale
        if isinstance(lhs, mpmath.mpc) or isinstance(rhs, mpmath.mpc):
            if abs(mpmath.im(lhs)) > scale or abs(mpmath.im(rhs)) > scale:
                return False  # an order between complex numbers: false
            lhs, rhs = mpmath.re(lhs), mpmath.re(rhs)
        if rel == ">":
            return lhs > rhs + scale
        if rel == ">=":
            return lhs >= rhs - scale
        if rel == "<":
            return lhs < rhs - scale
        if rel == "<=":
            return lhs <= rhs + scale
    raise ValueError(rel)
