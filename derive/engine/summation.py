"""SymPy's evaluation of a sum (``Sum.doit``), step for step, with one shortcut: a sum
SymPy can only give back (:func:`gives_back`) is given back at once, not handed to its
algorithms -- Faulhaber's, the geometric and Gosper's algorithm, the hypergeometric and
residue methods, telescoping (with ``solve``), and the same again after ``factor`` --
which take tenths of a second each to fail on the sums of a derivation (a sum over a
symbolic T of a summand that holds ``a[j]``). Also among the terms of a sum of Kronecker
deltas, which SymPy sums term by term. Everything else is SymPy's own code.

The value is the one SymPy gives (:func:`sum_value` is ``total.doit()``); a sum wrongly
judged to be given back would only stay a sum, so that the symbolic half failed to show
a true step, never showed a false one."""
from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy import KroneckerDelta, Piecewise, Sum
from sympy.functions.elementary.piecewise import piecewise_fold

try:  # SymPy's own steps, by their (private) names (tests/test_summation.py checks they are found)
    from sympy.concrete.delta import _expand_delta, _has_simple_delta, deltasummation
    from sympy.concrete.summations import _dummy_with_inherited_properties_concrete, eval_sum, summation
except ImportError:  # a SymPy that renamed them: its Sum.doit as it is, no shortcut
    _SYMPY_STEPS = False
else:
    _SYMPY_STEPS = True


def gives_back(summand: sp.Expr, limit: tuple) -> bool:
    """True where SymPy's ``eval_sum(summand, limit)`` can only fail (None), decided
    without running it: the range is not a fixed count of terms, and the summand is none
    of what SymPy closes -- free of the variable, zero, a Piecewise, a Kronecker delta --
    and holds the variable only as a whole index of an array (``a[j]``, ``W[j, k]``;
    never ``a[j + 1]``, ``j**2``, ``2**j`` or a limit of an inner sum). Then no term is a
    polynomial, geometric or hypergeometric in the variable, and no two terms telescope
    (that needs ``a[j + s]`` beside ``a[j]``); linearity and ``factor`` split the summand
    into terms of the same kind.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine.summation import gives_back
    >>> j, T = sp.Symbol("j", integer=True), sp.Symbol("T", integer=True, positive=True)
    >>> a = sp.IndexedBase("a")
    >>> gives_back(sp.exp(a[j]), (j, 1, T)), gives_back(a[j] - a[j + 1], (j, 1, T))
    (True, False)
    """
    var, lo, hi = limit
    count = hi - lo
    if summand.is_Matrix or count.is_Number or count.has(sp.oo, -sp.oo, sp.zoo):
        return False
    if isinstance(summand, Piecewise) or summand.has(KroneckerDelta) or var not in summand.free_symbols:
        return False
    return _variable_only_as_index(summand, var) and not summand.is_zero


def _variable_only_as_index(expr: sp.Basic, var: sp.Symbol) -> bool:
    """True if every occurrence of the symbol ``var`` in ``expr`` is a whole index of an
    Indexed (its base, and its other indices, free of it)."""
    if expr == var:
        return False
    if isinstance(expr, sp.Indexed):
        return all(index == var or not index.has(var) for index in expr.indices) and not expr.base.has(var)
    return all(_variable_only_as_index(arg, var) for arg in expr.args if arg.has(var))


def sum_value(total: Sum, deep: Callable[[sp.Basic], sp.Basic]) -> sp.Expr:
    """``total.doit()`` as SymPy's ``Sum.doit`` computes it -- the summand done first
    (by ``deep``: the engine's ``doit``, which remembers sums), each range in turn (by
    :func:`_eval_sum`), the value done again unless it is a Piecewise -- with the sums of
    :func:`gives_back` given back at once."""
    if not _SYMPY_STEPS or total.function.is_Matrix:
        return total.doit()
    # a summation variable with fewer assumptions than its limits give it is renamed
    # to one that has them, and back after (as SymPy does)
    renamed = {}
    for limit in total.limits:
        dummy = _dummy_with_inherited_properties_concrete(limit)
        if dummy:
            renamed[limit[0]] = dummy
    if renamed:
        back = {new: old for old, new in renamed.items()}
        return sum_value(total.xreplace(renamed), deep).xreplace(back)
    f = deep(total.function)
    for n, (var, lo, hi) in enumerate(total.limits):
        count = hi - lo
        if count == -1:
            return sp.S.Zero
        if count.is_integer and count.is_negative:
            lo, hi, f = hi + 1, lo - 1, -f
        value = _eval_sum(f, (var, lo, hi))
        if value is None:
            if f == total.function:
                zeta = total.eval_zeta_function(f, (var, lo, hi))
                return zeta if zeta is not None else total
            return total.func(f, *total.limits[n:])
        f = value
    return f if isinstance(f, Piecewise) else deep(f)


def _eval_sum(f: sp.Expr, limit: tuple):
    """SymPy's ``eval_sum(f, limit)``: None at once for a sum of :func:`gives_back`, the
    terms of a sum of Kronecker deltas summed by :func:`_delta_sum`."""
    if gives_back(f, limit):
        return None
    var, lo, hi = limit
    earlier = (f.is_zero or var not in f.free_symbols or lo == hi or isinstance(f, Piecewise)
               or (lo.is_comparable and hi.is_comparable and lo > hi))
    if not earlier and f.has(KroneckerDelta):  # eval_sum's branch for deltas
        factored = f.replace(lambda e: isinstance(e, Sum), lambda e: e.factor())
        if _has_simple_delta(factored, var):
            return _delta_sum(factored, limit)
    return eval_sum(f, limit)


def _delta_sum(f: sp.Expr, limit: tuple) -> sp.Expr:
    """SymPy's ``deltasummation(f, limit)``: a sum of terms summed term by term, a term
    without a delta by :func:`_summation`."""
    if ((limit[2] - limit[1]) < 0) == True:  # noqa: E712 - SymPy's test, as it writes it
        return sp.S.Zero
    if not f.has(KroneckerDelta):
        return _summation(f, limit)
    terms = _expand_delta(f, limit[0])
    if terms.is_Add:
        return piecewise_fold(terms.func(*[_delta_sum(term, limit) for term in terms.args]))
    return deltasummation(f, limit)


def _summation(f: sp.Expr, limit: tuple) -> sp.Expr:
    """SymPy's ``summation(f, limit)`` (the sum done, not its summand), given back at
    once for a sum of :func:`gives_back`."""
    var, lo, hi = limit
    count = hi - lo
    if count != -1 and not (count.is_integer and count.is_negative) and gives_back(f, limit):
        return Sum(f, limit)
    return summation(f, limit)
