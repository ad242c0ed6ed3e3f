"""The engine's evaluation of a sum (derive.engine.summation) is SymPy's: the same value
as ``Sum.doit()`` on every kind of sum a derivation holds -- closed ones (polynomial,
geometric, telescoping, Kronecker deltas, fixed counts) and ones SymPy gives back --
only without running SymPy's algorithms on the sums it can only give back."""
from __future__ import annotations

import pytest
import sympy as sp
from sympy import KroneckerDelta, Sum

from derive.engine import summation
from derive.engine.forms import _doit_remembering_sums

T = sp.Symbol("T", integer=True, positive=True)
N = sp.Symbol("N", integer=True, positive=True)
j, k, i = (sp.Symbol(name, integer=True) for name in "jki")
c = sp.Symbol("c", integer=True, positive=True)
x = sp.Symbol("x", real=True)
a, W, y = sp.IndexedBase("a"), sp.IndexedBase("W"), sp.IndexedBase("y")
Z = Sum(sp.exp(a[k]), (k, 1, T))

SUMS = {
    # given back: the variable only as a whole index
    "exp": Sum(sp.exp(a[j]), (j, 1, T)),
    "softmax log": Sum(y[j] * sp.log(sp.exp(a[j]) / Z), (j, 1, T)),
    "matrix row": Sum(W[j, k] * a[k], (k, 1, N)),
    "plus constant": Sum(a[j] + x, (j, 1, T)),
    # closed by SymPy
    "constant": Sum(x, (j, 1, T)),
    "polynomial": Sum(j ** 2 + x * j, (j, 1, T)),
    "geometric": Sum(2 ** j, (j, 0, T)),
    "telescoping": Sum(a[j] - a[j + 1], (j, 1, T)),
    "telescoping exp": Sum(sp.exp(a[j]) - sp.exp(a[j + 1]), (j, 1, T)),
    "fixed count": Sum(a[j] * sp.exp(a[j]), (j, 1, 3)),
    "empty": Sum(a[j], (j, 1, 0)),
    "reversed": Sum(a[j], (j, T + 1, T)),
    "delta": Sum(KroneckerDelta(j, c) * sp.exp(a[j]), (j, 1, T)),
    "delta among terms": Sum(KroneckerDelta(j, c) * a[j] + sp.exp(a[j]) / Z - y[j], (j, 1, T)),
    "delta in an inner sum": Sum(Sum(KroneckerDelta(k, c) * W[j, k], (k, 1, N)) * a[j], (j, 1, T)),
    "nested": Sum(Sum(W[j, k] * a[k], (k, 1, N)) * y[j], (j, 1, T)),
    "limit holds the variable": Sum(Sum(a[k], (k, 1, j)) * y[j], (j, 1, T)),
    "shifted index": Sum(a[j + 1] * a[j], (j, 1, T)),
    "index times two": Sum(a[2 * j], (j, 1, T)),
    "piecewise": Sum(sp.Piecewise((a[j], x > 0), (0, True)), (j, 1, T)),
    "two ranges": Sum(W[j, k], (j, 1, T), (k, 1, N)),
    "infinite": Sum(x ** j / sp.factorial(j), (j, 0, sp.oo)),
}


def test_sympys_own_steps_are_found():
    # under the SymPy installed, the engine runs SymPy's steps with the shortcut (it falls
    # back to Sum.doit, without it, only under a SymPy that renamed them)
    assert summation._SYMPY_STEPS


@pytest.mark.parametrize("name", sorted(SUMS))
def test_the_value_is_sympys(name):
    total = SUMS[name]
    assert summation.sum_value(total, _doit_remembering_sums) == total.doit()


@pytest.mark.parametrize("name, back", [
    ("exp", True), ("softmax log", True), ("matrix row", True), ("plus constant", True),
    ("constant", False), ("polynomial", False), ("telescoping", False), ("telescoping exp", False),
    ("fixed count", False), ("delta", False), ("limit holds the variable", False),
    ("shifted index", False), ("index times two", False), ("piecewise", False), ("infinite", False),
])
def test_only_a_sum_sympy_cannot_close_is_given_back(name, back):
    total = SUMS[name]
    assert summation.gives_back(total.function, total.limits[0]) is back
    if back:
        assert total.doit() == total  # SymPy gives it back too


def test_a_sum_given_back_is_not_handed_to_sympys_algorithms(monkeypatch):
    # the summation algorithms are not reached for a sum given back, or for the terms
    # without a delta of a sum of deltas
    from sympy.concrete import summations

    def refuse(*args, **kwargs):
        raise AssertionError("SymPy's symbolic summation was run")

    monkeypatch.setattr(summations, "eval_sum_symbolic", refuse)
    total = SUMS["softmax log"]
    assert summation.sum_value(total, _doit_remembering_sums) == total
    value = summation.sum_value(SUMS["delta among terms"], _doit_remembering_sums)
    assert value.has(Sum) and not value.has(KroneckerDelta(j, c))
