"""What SymPy works out again and again, remembered while the engine works, and one
thing it works out in vain, put after the test that makes it needed:

* the free symbols of a sum (``ExprWithLimits.free_symbols``: a Sum's, a Product's).
  SymPy works them out on every call -- it rebuilds the summand with ``xreplace`` and
  walks it -- and its own ``is_number`` and assumption queries ask for them on every
  expression they build: a tenth of a check's time went there;
* an Indexed (``a[j]``, ``W[k, n]``) and a Sum (``Sum(f, (j, 1, T))``): SymPy deduces an
  Indexed's assumptions from its base's, and checks and orders a Sum's limits, on
  every construction, and ``xreplace``, ``doit``, the renaming of bound variables and
  the rewrites build the same ones thousands of times in a check;
* the simplify in SymPy's ``sum_add`` (``sympy.simplify.simplify``; ``simplify`` calls
  it through ``sum_simplify`` for every ordered pair of sums in a sum of terms).
  Its second method simplifies the difference of the two summands first and only then
  asks whether the two ranges are of one variable and adjacent (``1..m`` and
  ``m+1..T``): if they are not, it returns ``self + other`` whatever the simplify gave.
  :func:`_sum_add` asks about the ranges first and calls SymPy's own function only for
  adjacent ranges, so it returns what SymPy's returns for every pair (SymPy's result is
  a function of its arguments), without a full simplify of every pair's difference --
  on a false step of the batched FC gradients, with a dozen sums, that was 60 % of the
  check.

An expression is immutable, so its free symbols are a function of it, the same for
equal expressions (SymPy's ``==``: the same tree, the same assumptions), and an Indexed
of an IndexedBase and indices, or a Sum of a summand and limits, is the same object
wherever it is made (an index or a bound that is a Python int is the SymPy integer it
becomes). While the outermost check runs (:func:`while_checking`), the property returns
a copy of the set SymPy gave the first time, and ``Indexed(base, *indices)`` and
``Sum(summand, *limits)`` the one made first; before and after, SymPy's own property,
constructors and ``sum_add`` are in place and what was remembered is dropped, so
nothing changes for code outside the engine.

Also while the outermost check runs, Python's collector of reference cycles looks at
new objects after every 50 000 allocations net instead of 700 (``gc.set_threshold``;
the older generations as before): a check allocates millions of short-lived SymPy
objects, hardly any of them in a cycle, and the collector's passes over them took
about 4 % of its time. The thresholds in place before are put back after."""
from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.concrete.summations import Sum
from sympy.tensor.indexed import Indexed

#: SymPy's own property, put back when the outermost check ends
SYMPYS_FREE_SYMBOLS = ExprWithLimits.__dict__["free_symbols"]

#: SymPy's own constructor of an Indexed, put back when the outermost check ends
SYMPYS_INDEXED_NEW = Indexed.__dict__["__new__"]

#: SymPy's own constructor of a Sum, put back when the outermost check ends
SYMPYS_SUM_NEW = Sum.__dict__["__new__"]

#: SymPy's module of simplify (its name is shadowed by the function in ``sympy.simplify``)
SIMPLIFY_MODULE = importlib.import_module("sympy.simplify.simplify")

#: SymPy's own helper that adds two sums, put back when the outermost check ends
SYMPYS_SUM_ADD = SIMPLIFY_MODULE.sum_add

_REMEMBERED: dict = {}
_MADE: dict = {}
_LOCK = threading.Lock()
_DEPTH = [0]
#: the collector's first-generation threshold while a check runs
GC_THRESHOLD = 50_000
_THRESHOLDS: list = [None]


def _free_symbols(self) -> set:
    found = _REMEMBERED.get(self)
    if found is None:
        found = _REMEMBERED[self] = frozenset(SYMPYS_FREE_SYMBOLS.fget(self))
    return set(found)  # a new set, as SymPy's: callers add to it


_REMEMBERING = property(_free_symbols, doc=SYMPYS_FREE_SYMBOLS.__doc__)


def _plain(arg) -> bool:
    """A SymPy object or a Python int (not a bool, not a float: each its own key)."""
    return isinstance(arg, sp.Basic) or type(arg) is int


def _made_once(own, cls, first, args: tuple):
    """``own(cls, first, *args)``, the object made first for these arguments."""
    key = (cls, first, args)
    made = _MADE.get(key)
    if made is None:
        made = _MADE[key] = own(cls, first, *args)
    return made


def _indexed(cls, base, *args, **kwargs):
    if kwargs or cls is not Indexed or not isinstance(base, sp.IndexedBase) or not all(map(_plain, args)):
        return SYMPYS_INDEXED_NEW(cls, base, *args, **kwargs)
    return _made_once(SYMPYS_INDEXED_NEW, cls, base, args)


def _sum(cls, function, *limits, **assumptions):
    if assumptions or cls is not Sum or not isinstance(function, sp.Basic) or not all(
            _plain(limit) or (type(limit) is tuple and all(map(_plain, limit))) for limit in limits):
        return SYMPYS_SUM_NEW(cls, function, *limits, **assumptions)
    return _made_once(SYMPYS_SUM_NEW, cls, function, limits)


def _as_one_sum(term):
    """``c * Sum(f, limits)`` as ``Sum(c * f, limits)`` (what ``sum_add`` compares)."""
    if not isinstance(term, sp.Mul):
        return term
    args = sp.Mul.make_args(term)
    inner = next(x for x in args if isinstance(x, sp.Sum))
    return sp.Sum(sp.Mul(*[x for x in args if x != inner]) * inner.function, *inner.limits)


def _adjacent(first, second) -> bool:
    """True if the sums ``first`` and ``second`` have one range each, of one variable,
    and the ranges are adjacent: what SymPy's ``sum_add`` needs to join them."""
    if type(first) is not type(second) or not len(first.limits) == len(second.limits) == 1:
        return False
    (i, x1, y1), (j, x2, y2) = first.limits[0], second.limits[0]
    return i == j and (x2 == y1 + 1 or x1 == y2 + 1)


def _sum_add(self, other, method=0):
    """SymPy's ``sum_add(self, other, method)``, the same value for every argument:
    for ``method == 1`` (join ranges), SymPy's own only where the ranges are adjacent;
    elsewhere ``self + other``, as SymPy's returns there after simplifying the
    difference of the summands."""
    if method != 1 or _adjacent(_as_one_sum(self), _as_one_sum(other)):
        return SYMPYS_SUM_ADD(self, other, method)
    return sp.Add(self, other)


@contextlib.contextmanager
def while_checking() -> Iterator[None]:
    """Within: the free symbols of every sum, and every Indexed and Sum made,
    remembered; SymPy's ``sum_add`` asking about the ranges before it simplifies; and
    the cycle collector's first threshold raised (nested uses share one memory; the
    outermost restores SymPy's own, the thresholds, and forgets)."""
    with _LOCK:
        _DEPTH[0] += 1
        if _DEPTH[0] == 1:
            ExprWithLimits.free_symbols = _REMEMBERING
            Indexed.__new__ = _indexed
            Sum.__new__ = _sum
            SIMPLIFY_MODULE.sum_add = _sum_add
            _THRESHOLDS[0] = gc.get_threshold()
            gc.set_threshold(max(GC_THRESHOLD, _THRESHOLDS[0][0]), *_THRESHOLDS[0][1:])
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                ExprWithLimits.free_symbols = SYMPYS_FREE_SYMBOLS
                Indexed.__new__ = SYMPYS_INDEXED_NEW
                Sum.__new__ = SYMPYS_SUM_NEW
                SIMPLIFY_MODULE.sum_add = SYMPYS_SUM_ADD
                _REMEMBERED.clear()
                _MADE.clear()
                gc.set_threshold(*_THRESHOLDS[0])


F = TypeVar("F", bound=Callable)


def during_checks(function: F) -> F:
    """``function`` run within :func:`while_checking`."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        with while_checking():
            return function(*args, **kwargs)
    return run  # type: ignore[return-value]
