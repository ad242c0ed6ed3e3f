"""The reference values of a verification: a definition evaluated with mpmath from the
exact float64 inputs, at a precision that resolves it, and kept in the reference cache.

:func:`reference` evaluates one expression by the proof engine's own evaluator, rising
in precision wherever a sum cancels or a logarithm's argument is within 10^-digits of
1 (:class:`_Resolving`); :func:`references` computes the exact values of the rows of
whole suite entries (tasks), each row at the digits :func:`derive.references.digits_for` chooses and
then at rising precision until two precisions agree, by any executor, and keeps them
in the cache keyed by the task and the code that computed it.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor

import mpmath
import numpy as np
import sympy as sp

from . import engine
from .executors import cache_dir, in_order
from .references import fingerprint, keep, load_cached

#: digits of the reference evaluation
DIGITS = 50

#: the most digits a reference rises to; a sum still unresolved there (|value| below
#: 10^-1900 of its terms) is below anything float64 tells apart from 0
MOST_DIGITS = 4000
#: the digits a cancelling sum, or a logarithm near 1, must keep of its own value
KEPT_DIGITS = 32


class _Resolving(engine._Evaluator):
    """The engine's evaluator, raising :class:`engine._Cancelled` (with the digits that
    would resolve it) wherever the working precision cannot tell the value: a sum (an
    Add or a Sum) whose terms cancel to less than :data:`KEPT_DIGITS` of their size,
    and the logarithm of a number so close to 1 that its rounding is the value (log S_c
    with S_c within 10^-300 of 1: no sum cancels there, the digits are lost in S_c)."""

    def _ev(self, expr, scope):
        value = super()._ev(expr, scope)
        if isinstance(expr, sp.Add):  # the terms are in the memo
            self._resolved([self.ev(arg, scope) for arg in expr.args], value, expr)
        elif isinstance(expr, sp.log):
            self._resolved([mpmath.mpf(1)], value, expr)
        return value

    def total(self, terms: list, body) -> mpmath.mpf:
        total = mpmath.fsum(terms)
        self._resolved(terms, total, body)
        return total

    @staticmethod
    def _resolved(terms, total, expr) -> None:
        largest = max((abs(t) for t in terms if not isinstance(t, mpmath.mpc)), default=0)
        digits = mpmath.mp.dps
        if largest == 0 or abs(total) * mpmath.mpf(10) ** (digits - KEPT_DIGITS) >= largest:
            return
        lost = digits if total == 0 else int(mpmath.log10(largest / abs(total))) + 1
        raise engine._Cancelled(max(2 * digits, lost + KEPT_DIGITS + 10), expr)


def reference(expr: sp.Expr, env: dict, digits: int = DIGITS) -> mpmath.mpf:
    """``expr`` on the values ``env`` (symbols and vector components -> numbers), by the
    engine's evaluator at ``digits`` digits or at as many more as it needs: wherever a
    sum cancels, or a logarithm's argument is within 10^-digits of 1, the evaluation
    starts again with the digits that resolve it (up to :data:`MOST_DIGITS`), so a value
    is never taken from digits that were lost (1 - S_c with S_c within 10^-300 of 1).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import reference
    >>> from derive.symbols import CLASSES as T, s
    >>> g = sp.IndexedBase("g")
    >>> row = {T: 2, g[1]: 0.0, g[2]: 0.0}
    >>> float(reference(sp.log(sp.Sum(sp.exp(g[s]), (s, 1, T))), row))  # log 2
    0.6931471805599453
    >>> row = {T: 2, g[1]: 0.0, g[2]: 700.0}  # S_2 = 1 - 9.9e-305: log S_2 needs 340 digits
    >>> float(reference(sp.log(sp.exp(g[2]) / sp.Sum(sp.exp(g[s]), (s, 1, T))), row))
    -9.85...e-305
    """
    while True:
        with mpmath.workdps(digits):
            if digits >= MOST_DIGITS:  # as resolved as it gets
                return +engine._Evaluator(env)(expr)
            try:
                return +_Resolving(env)(expr)
            except engine._Cancelled as cancelled:
                digits = min(cancelled.digits, MOST_DIGITS)


def _row_values(definition, index, row: dict, n: int, digits: int, classes=None) -> tuple[list, int]:
    """The values of one row at ``digits`` digits or as many more as a cancellation in it
    needs (:class:`_Resolving`): one, or one per class (of ``classes``: default every
    class); and the digits used. One evaluator serves every class of the row, the class
    index in its scope, so that what does not depend on the class (the partition
    function, a sum over the row) is evaluated once."""
    classes = [None] if index is None else list(classes or range(1, n + 1))
    while True:
        with mpmath.workdps(digits):
            ev = _Resolving(row) if digits < MOST_DIGITS else engine._Evaluator(row)
            try:
                return [+ev.ev(definition, {} if k is None else {index: k}) for k in classes], digits
            except engine._Cancelled as cancelled:
                digits = min(cancelled.digits, MOST_DIGITS)


def _sample(n: int, index_values) -> list[int]:
    """The classes whose values decide a row's precision: the ends, the middle and every
    class an index argument points at (the true class, where a gradient cancels)."""
    return sorted({1, n, (n + 1) // 2, *(k for k in index_values if 1 <= k <= n)})


#: digits that resolve any float64 result (down to the smallest subnormal, 4.9e-324) of a
#: sum of terms up to about 1e70 that cancels to it
_RESOLVES_FLOAT64 = 400


def _settled(low: list, high: list, digits: int) -> bool:
    """Whether the values at ``digits`` digits (``low``) and at more (``high``) agree to
    far more digits than float64 resolves. A value that vanishes at this precision may
    be a cancellation that more digits resolve, so it settles only at
    :data:`_RESOLVES_FLOAT64` digits."""
    for a, b in zip(low, high):
        if mpmath.isnan(a) or mpmath.isnan(b):
            if not (mpmath.isnan(a) and mpmath.isnan(b)):
                return False
            continue
        if abs(b) < mpmath.mpf(10) ** (20 - digits) and digits < _RESOLVES_FLOAT64:
            return False
        if abs(a - b) > max(abs(b) * mpmath.mpf(10) ** -25, mpmath.mpf(10) ** -340):
            return False
    return True


def _reference_task(task) -> np.ndarray:
    """The exact values of the rows of one suite entry, as :func:`exact_parts` (3, rows * k):
    a module-level function of plain data, so that any executor can run it.

    Each row is evaluated at rising precision until two precisions agree: a parameter
    such as a temperature can make a row cancel more digits than its logits suggest."""
    from .measure import exact_parts

    definition, index, envs, digits = task
    values, top = [], DIGITS
    for env, row_digits in zip(envs, digits):
        n = env[_CLASSES_KEY]
        row = {key: value for key, value in env.items() if key != _CLASSES_KEY}
        # rising precision on a few classes, then every class at the precision they settle at
        sample = None if index is None else _sample(n, [v for v in row.values() if isinstance(v, int)])
        low, row_digits = _row_values(definition, index, row, n, row_digits, sample)
        while True:
            high, _ = _row_values(definition, index, row, n, row_digits + 40, sample)
            if _settled(low, high, row_digits) or row_digits > MOST_DIGITS:
                break
            row_digits, low = 2 * row_digits, high
        values += high if index is None else _row_values(definition, index, row, n, row_digits + 40)[0]
        top = max(top, row_digits + 40)
    with mpmath.workdps(top):
        return exact_parts(values)


_CLASSES_KEY = "__classes__"


def _task_key(task, fingerprint: str) -> str:
    import hashlib

    definition, index, envs, digits = task
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(sp.srepr(definition).encode())
    digest.update(repr(index).encode())
    for env, row_digits in zip(envs, digits):
        digest.update(repr(sorted((str(k), repr(v)) for k, v in env.items())).encode())
        digest.update(str(row_digits).encode())
    return digest.hexdigest()[:32]


def _fingerprint() -> str:
    """What a reference value depends on besides its task: the evaluator and mpmath."""
    return fingerprint(_reference_task, _row_values, _sample, _settled, reference, _Resolving, engine._Evaluator,
                       extra=(DIGITS,))


def references(tasks: list, executor: Executor | None = None, progress: Callable | None = None
               ) -> list[np.ndarray]:
    """The exact values of every task (one suite entry of one verification each), read
    from the reference cache where they are, else computed by ``executor`` and kept."""
    where, key = cache_dir(), _fingerprint()
    paths = [where / f"v-{_task_key(task, key)}.npy" if where else None for task in tasks]
    found = [load_cached(path) for path in paths]
    todo = [k for k in range(len(tasks)) if found[k] is None]
    for done, (k, parts) in enumerate(zip(todo, in_order(executor, _reference_task, [tasks[k] for k in todo])), 1):
        found[k] = parts
        if progress:
            progress(done, len(todo))
        keep(paths[k], parts)
    return found
