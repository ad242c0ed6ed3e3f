"""The free symbols of a sum and the Indexed made are remembered while the engine
checks, and SymPy's ``sum_add`` asks about the ranges before it simplifies, only then
(derive/engine/remembered.py): the same sets, objects and values as SymPy's, SymPy's own
property, constructor and function before and after, and a caller that adds to the set
it got does not change what is remembered."""
from __future__ import annotations

import gc
import importlib

import pytest
import sympy as sp
from sympy import Product, Sum
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.tensor.indexed import Indexed

from derive import Derivation, Step, check, scalar
from derive.engine import StepFalse

remembered = importlib.import_module("derive.engine.remembered")

j, k, n = sp.symbols("j k n", integer=True)
T, N = sp.symbols("T N", integer=True, positive=True)
a, W = sp.IndexedBase("a"), sp.IndexedBase("W")
SUMS = [
    Sum(sp.exp(a[j]), (j, 1, T)),
    Sum(W[j, k] * a[k], (k, 1, N), (j, 1, T)),
    Sum(a[j] * Sum(a[k], (k, j, T)), (j, 1, n)),  # an inner limit holds the outer variable
    Sum(j ** 2, (j, 1, T)),
    Product(sp.exp(a[j]), (j, 1, T)),
    Sum(sp.Integer(1), (j, 1, 3)),
    Sum(a[2 * j], (j, 1, sp.floor(T / 2))),  # a variable that is not a bare symbol in an index
]


def test_the_same_sets_as_sympys_inside_and_sympys_own_property_outside():
    own = ExprWithLimits.__dict__["free_symbols"]
    expected = [ExprWithLimits.free_symbols.fget(s) for s in SUMS]
    with remembered.while_checking():
        assert ExprWithLimits.__dict__["free_symbols"] is not own
        for _ in range(2):  # worked out, then remembered
            assert [s.free_symbols for s in SUMS] == expected
        got = SUMS[0].free_symbols
        got.add(sp.Symbol("intruder"))  # callers add to the set (SymPy's own code does)
        assert SUMS[0].free_symbols == expected[0]
        assert (SUMS[0] + T).is_number is False and Sum(sp.Integer(1), (j, 1, 3)).is_number
    assert ExprWithLimits.__dict__["free_symbols"] is own and not remembered._REMEMBERED
    assert [s.free_symbols for s in SUMS] == expected


def test_nested_uses_share_one_memory_and_the_outermost_restores():
    own = ExprWithLimits.__dict__["free_symbols"]
    with remembered.while_checking():
        sympys = remembered.SYMPYS_FREE_SYMBOLS.fget
        assert SUMS[1].free_symbols == sympys(SUMS[1])
        with remembered.while_checking():
            assert SUMS[2].free_symbols == sympys(SUMS[2]) and n in sympys(SUMS[2])
        assert ExprWithLimits.__dict__["free_symbols"] is not own and len(remembered._REMEMBERED) >= 2
    assert ExprWithLimits.__dict__["free_symbols"] is own and not remembered._REMEMBERED


def test_a_check_restores_sympys_property_when_a_step_is_rejected():
    own = ExprWithLimits.__dict__["free_symbols"]
    x = scalar("x_remembered", lambda rng: rng.normal(0, 1))
    bad = Derivation("remembered", "A false sum", (), [
        Step(Sum(x * j, (j, 1, 3)), "start"), Step(5 * x, "arithmetic")])
    with pytest.raises(StepFalse, match="concrete check fails"):
        check(bad)
    assert ExprWithLimits.__dict__["free_symbols"] is own and not remembered._REMEMBERED
    assert Indexed.__dict__["__new__"] is remembered.SYMPYS_INDEXED_NEW and not remembered._MADE
    assert remembered.SIMPLIFY_MODULE.sum_add is remembered.SYMPYS_SUM_ADD
    assert Sum.__dict__["__new__"] is remembered.SYMPYS_SUM_NEW


def test_an_indexed_is_made_once_inside_and_by_sympy_outside():
    own = Indexed.__dict__["__new__"]
    outside = a[j]
    with remembered.while_checking():
        first, again = a[j], Indexed(a, j)
        assert first is again and first == outside and first.is_real is outside.is_real
        assert a[3] is a[sp.Integer(3)] and a[3].indices == (sp.Integer(3),)
        assert W[j, k] is W[j, k] and W[j, k] != W[k, j]
        real = sp.IndexedBase("a", real=True)
        assert real[j] is not a[j] and real[j].is_real and a[j].is_real is None
        assert Indexed(a, True) is not Indexed(a, 1)  # a bool is not remembered as the int
    assert Indexed.__dict__["__new__"] is own and not remembered._MADE
    assert a[j] is not a[j] and a[j] == outside


def test_a_sum_is_made_once_inside_and_by_sympy_outside():
    own = Sum.__dict__["__new__"]
    outside = Sum(a[j], (j, 1, T))
    with remembered.while_checking():
        first = Sum(a[j], (j, 1, T))
        assert first is Sum(a[j], (j, 1, T)) and first == outside and first.limits == outside.limits
        assert Sum(a[j], (j, 1, 3)) is Sum(a[j], (j, sp.Integer(1), sp.Integer(3)))
        assert Sum(a[j], sp.Tuple(j, 1, T)) == first
        assert Sum(a[j], (j, 1, T), (k, 1, N)) is not Sum(a[j], (k, 1, N), (j, 1, T))
        assert Sum(a[j], (j, 1, T)).doit() == outside.doit()
        with pytest.raises(ValueError):  # SymPy's own refusal, not remembered
            Sum(a[j], (j, 1))
        assert Sum(a[j], (j, 0.5, T)) is not Sum(a[j], (j, 0.5, T))  # a float: SymPy's, each time
        assert Sum(a[j], (j, True, T)) is not Sum(a[j], (j, 1, T))  # a bool is not the int
    assert Sum.__dict__["__new__"] is own and not remembered._MADE
    assert Sum(a[j], (j, 1, T)) is not Sum(a[j], (j, 1, T)) and Sum(a[j], (j, 1, T)) == outside


def test_the_collector_looks_at_new_objects_less_often_inside_only():
    before = gc.get_threshold()
    with remembered.while_checking():
        inside = gc.get_threshold()
        assert inside[0] >= remembered.GC_THRESHOLD and inside[1:] == before[1:]
    assert gc.get_threshold() == before


m = sp.Symbol("m", integer=True, positive=True)
f = sp.exp(a[j]) * j
#: pairs of sum terms as SymPy's sum_simplify hands them to sum_add: adjacent ranges
#: either way round, gaps, other variables, two ranges, constant factors, a summand
#: that differs, and terms that are not sums of one range at all
PAIRS = [
    (Sum(f, (j, 1, m)), Sum(f, (j, m + 1, T))),
    (Sum(f, (j, m + 1, T)), Sum(f, (j, 1, m))),
    (3 * Sum(f, (j, 1, m)), 3 * Sum(f, (j, m + 1, T))),
    (T * Sum(f, (j, 1, m)), Sum(T * f, (j, m + 1, T))),
    (Sum(f, (j, 1, m)), Sum(f + 1, (j, m + 1, T))),  # adjacent, summands differ
    (Sum(f, (j, 1, m)), Sum(f, (j, m + 2, T))),  # a gap
    (Sum(f, (j, 1, m)), Sum(f.subs(j, k), (k, m + 1, T))),  # another variable
    (Sum(f, (j, 1, T)), Sum(f, (j, 1, T))),  # the same range
    (Sum(W[j, k], (k, 1, N), (j, 1, m)), Sum(W[j, k], (k, 1, N), (j, m + 1, T))),
    (Sum(f, (j, 1, m)), Product(f, (j, m + 1, T))),
    (Sum(f, (j, 1, m)), sp.Add(a[j], a[k])),
    (sp.Add(a[j], a[k]), sp.Add(a[j], a[k])),
    (a[j] * a[k], Sum(f, (j, 1, m))),
]


def _outcome(add, first, second, method):
    try:
        return add(first, second, method)
    except Exception as error:  # SymPy's own raises on some terms: the same error then
        return type(error)


@pytest.mark.parametrize("method", [0, 1])
@pytest.mark.parametrize("pair", PAIRS, ids=range(len(PAIRS)))
def test_sum_add_gives_what_sympys_gives_for_every_pair(pair, method):
    expected = _outcome(remembered.SYMPYS_SUM_ADD, *pair, method)
    assert _outcome(remembered._sum_add, *pair, method) == expected


def test_simplify_still_joins_adjacent_ranges_inside_and_sympys_sum_add_is_back_after():
    own = remembered.SIMPLIFY_MODULE.sum_add
    split = Sum(f, (j, 1, m)) + 2 * Sum(a[k], (k, 1, T)) + Sum(f, (j, m + 1, T))
    outside = sp.simplify(split)
    with remembered.while_checking():
        assert remembered.SIMPLIFY_MODULE.sum_add is not own
        inside = sp.simplify(split)
    assert inside == outside and inside.has(Sum(f, (j, 1, T)))
    assert remembered.SIMPLIFY_MODULE.sum_add is own is remembered.SYMPYS_SUM_ADD
