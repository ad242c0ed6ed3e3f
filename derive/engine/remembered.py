"""One property of SymPy remembered while the engine works: the free symbols of a sum
(``ExprWithLimits.free_symbols``: a Sum's, a Product's). SymPy works them out again on
every call -- it rebuilds the summand with ``xreplace`` and walks it -- and its own
``is_number`` and assumption queries ask for them on every expression they build: a
tenth of a check's time went there.

An expression is immutable, so its free symbols are a function of it, the same for
equal expressions (SymPy's ``==``: the same tree, the same assumptions). While the
outermost check runs (:func:`free_symbols_remembered`), the property returns a copy of
the set SymPy gave the first time; before and after, SymPy's own property is in place
and the remembered sets are dropped, so nothing changes for code outside the engine."""
from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from sympy.concrete.expr_with_limits import ExprWithLimits

#: SymPy's own property, put back when the outermost check ends
SYMPYS_FREE_SYMBOLS = ExprWithLimits.__dict__["free_symbols"]

_REMEMBERED: dict = {}
_LOCK = threading.Lock()
_DEPTH = [0]


def _free_symbols(self) -> set:
    found = _REMEMBERED.get(self)
    if found is None:
        found = _REMEMBERED[self] = frozenset(SYMPYS_FREE_SYMBOLS.fget(self))
    return set(found)  # a new set, as SymPy's: callers add to it


_REMEMBERING = property(_free_symbols, doc=SYMPYS_FREE_SYMBOLS.__doc__)


@contextlib.contextmanager
def free_symbols_remembered() -> Iterator[None]:
    """Within: the free symbols of every sum remembered (nested uses share one memory;
    the outermost restores SymPy's property and forgets)."""
    with _LOCK:
        _DEPTH[0] += 1
        if _DEPTH[0] == 1:
            ExprWithLimits.free_symbols = _REMEMBERING
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0:
                ExprWithLimits.free_symbols = SYMPYS_FREE_SYMBOLS
                _REMEMBERED.clear()


F = TypeVar("F", bound=Callable)


def remembering_free_symbols(function: F) -> F:
    """``function`` run within :func:`free_symbols_remembered`."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        with free_symbols_remembered():
            return function(*args, **kwargs)
    return run  # type: ignore[return-value]
