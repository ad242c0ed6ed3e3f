"""Exact references of input suites, computed once and kept: the machinery a catalogue's
verification of row functions runs on, knowing no formula.

* :func:`digits_for` -- the working precision that resolves every quantity of a row of
  logits; :func:`central_differences` -- a gradient's reference against central
  differences of its loss's, at high precision;
* :class:`RowFormula` -- a proved expression in a class index, evaluated per row with
  mpmath, each sum that does not depend on the index once per row;
* :func:`case_references` -- the reference of every row of every :class:`derive.cases.Case`,
  rows evaluated by an executor, each case kept in the reference cache
  (:func:`derive.executors.cache_dir`) under a key of its inputs and of a
  :func:`fingerprint` of the code that computed it;
* :func:`load_cached` / :func:`keep` -- the cache's reads and atomic writes;
* :func:`measure_calls` / :func:`measure_cases` / :func:`worst_ulp` -- the errors in
  ULPs of every implementation against those references, as
  :class:`derive.results.Result` rows.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import os
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp
from sympy import lambdify

from . import mpexp
from .executors import cache_dir, in_order
from .measure import exact_parts, ulp_errors
from .results import Result

#: the least working precision of a reference, in digits
MIN_DIGITS = 50


# --------------------------------------------------------------------------- precision
def digits_for(row: np.ndarray, least: int = MIN_DIGITS) -> int:
    """Working precision that resolves every quantity of a row of logits.

    log S_j = a_j - log Z cancels about log10 max|a| digits; S_c - 1 and a loss near 0
    cancel about (m - a_second)/ln 10 digits, which only matter down to the smallest
    subnormal (gap <= 800). 10 digits of margin on top of ``least``.

    Examples
    --------
    >>> import numpy as np
    >>> from derive.references import digits_for
    >>> digits_for(np.array([0.0, 1.0])), digits_for(np.array([1e300, 0.0]))
    (61, 708)
    """
    finite = row[np.isfinite(row)]
    if finite.size == 0:
        return least
    big = math.log10(max(1.0, float(np.max(np.abs(finite)))))
    ordered = np.sort(finite)
    gap = float(ordered[-1] - ordered[-2]) if ordered.size > 1 else 0.0
    gap = min(gap if math.isfinite(gap) else 800.0, 800.0)
    return int(least + 10 + math.ceil(big) + math.ceil(gap / math.log(10)))


def central_differences(loss: Callable, exact: Callable, indices, digits: int, h_digits: int) -> float:
    """The worst relative difference between the components of a gradient's reference and
    central differences of its loss's reference, all at ``digits`` digits: over ``indices``,
    |(loss(k, h) - loss(k, -h)) / 2h - exact(k)| / max(|exact(k)|, 1e-30), h = 10^-h_digits,
    where ``loss(k, shift)`` is the loss with its k-th variable moved by ``shift``. An
    independent check of a derivative's reference (the truncation error is O(h^2)).

    Examples
    --------
    >>> import mpmath
    >>> from derive.references import central_differences
    >>> x = [mpmath.mpf(1), mpmath.mpf(2)]
    >>> def loss(k, shift):  # sum_k x_k^3
    ...     return sum((v + shift if j == k else v) ** 3 for j, v in enumerate(x))
    >>> central_differences(loss, lambda k: 3 * x[k] ** 2, range(2), 60, 20) < 1e-35
    True
    """
    worst = mpmath.mpf(0)
    with mpmath.workdps(digits):
        h = mpmath.mpf(10) ** (-h_digits)
        for k in indices:
            fd = (loss(k, h) - loss(k, -h)) / (2 * h)
            value = exact(k)
            worst = max(worst, abs(fd - value) / max(abs(value), mpmath.mpf(10) ** -30))
    return float(worst)


# --------------------------------------------------------------------------- per-row formulas
class RowFormula:
    """A proved expression in the class index ``index``, evaluated per row with mpmath:
    each sum that does not depend on ``index`` (Z, sum_j u_j) once per row, not once
    per class. ``formula(values, sums, index_value)`` is the value;
    ``formula.largest_term`` the largest magnitude among its terms (the scale of a
    gradient's error bound: max(S_j sum u, u_j) for S_j sum u - u_j). Vectors are
    1-based lists, as in the definitions; ``classes`` is the symbol of their length."""

    def __init__(self, expr: sp.Expr, vectors: tuple, index: sp.Symbol, classes: sp.Symbol, others: tuple = ()):
        sums = sorted((total for total in expr.atoms(sp.Sum) if index not in total.free_symbols),
                      key=sp.default_sort_key)
        names = [sp.Symbol(f"_sum{n}") for n in range(len(sums))]
        body = expr.xreplace(dict(zip(sums, names)))
        row_args = [*vectors, *others, classes]
        self._sums = [lambdify(row_args, total, mpexp.MPMATH) for total in sums]
        args = [*vectors, *others, index, *names]
        self._value = lambdify(args, body, mpexp.MPMATH)
        self._terms = [lambdify(args, term, mpexp.MPMATH) for term in sp.Add.make_args(body)]

    def row(self, *values, T: int) -> tuple:
        """The per-row sums of the row ``values`` (vectors, then the other symbols)."""
        return tuple(total(*values, T) for total in self._sums)

    def __call__(self, values: tuple, sums: tuple, idx: int):
        return self._value(*values, idx, *sums)

    def largest_term(self, values: tuple, sums: tuple, idx: int):
        return max(abs(term(*values, idx, *sums)) for term in self._terms)

    @property
    def functions(self) -> list:
        """The lambdified functions it evaluates (their sources go into a fingerprint)."""
        return [*self._sums, self._value, *self._terms]


# --------------------------------------------------------------------------- the cache
def fingerprint(*objects, extra: tuple = ()) -> str:
    """What cached values depend on besides their inputs: the sources of ``objects``
    (functions, classes), the strings ``extra``, mpmath's version and the exponential
    every reference evaluates (:mod:`derive.mpexp`)."""
    sources = ([inspect.getsource(f) for f in objects] + [str(e) for e in extra]
               + [mpmath.__version__, inspect.getsource(mpexp)])
    return hashlib.sha256("\n".join(sources).encode()).hexdigest()


def load_cached(path: Path | None):
    """What :func:`keep` kept at ``path`` (an array, or name -> array), or None when there
    is none (or it is broken: it is then recomputed)."""
    if path is None or not path.exists():
        return None
    try:
        stored = np.load(path, allow_pickle=False)
        if isinstance(stored, np.ndarray):
            return stored
        with stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError):
        return None


def keep(path: Path | None, data) -> None:
    """Write ``data`` (an array, or name -> array) to ``path`` atomically (a temporary file
    of this process, then a rename), so that processes sharing the cache never read half
    a file; a cache that cannot be written only costs time."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, dict):
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **data)
        else:
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, data)
        os.replace(tmp, path)
    except OSError:
        pass


def case_key(case, fingerprint_: str) -> str:
    """The cache key of a case: its inputs (dtype, shape and bytes of each array, the
    smoothing) and the fingerprint of the code that computes its references."""
    digest = hashlib.sha256(fingerprint_.encode())
    digest.update(repr(float(case.smoothing)).encode())
    for array in (case.logits, case.target, case.soft, case.weight):
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:32]


def as_parts(reference, fields: tuple) -> dict[str, np.ndarray]:
    """The ``fields`` of a row's reference (mpmath numbers or lists of them) as
    :func:`exact_parts` arrays; fields that are None are left out."""
    parts = {}
    for name in fields:
        value = getattr(reference, name)
        if value is not None:
            parts[name] = exact_parts(value if isinstance(value, list) else [value])
    return parts


def case_references(cases: dict, row_parts: Callable, fingerprint_: str, executor: Executor | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Reference values of every row of every case: name -> field -> (3, rows, k) parts.

    ``row_parts((logits_row, target, soft_row, exact_u))`` computes one row (a
    module-level function, so that any executor can run it); rows are evaluated by
    ``executor`` (None: in this process), the widest first. Cases found in the cache
    (:func:`derive.executors.cache_dir`, keyed by :func:`case_key`) are read instead;
    each computed case is kept."""
    where = cache_dir()
    found, tasks = {}, []
    for name, case in cases.items():
        path = where / f"{case_key(case, fingerprint_)}.npz" if where else None
        stored = load_cached(path)
        if stored is not None:
            found[name] = stored
            continue
        for r in range(case.logits.shape[0]):
            soft = case.soft[r] if case.soft is not None else None
            tasks.append((name, path, (case.logits[r].astype(np.float64), int(case.target[r]), soft,
                                       case.weighted_exact(r))))
    rows = {name: [] for name in cases if name not in found}
    for (name, _path, _task), parts in zip(tasks, _widest_first(tasks, row_parts, executor, progress)):
        rows[name].append(parts)
    for name, row_parts_ in rows.items():
        found[name] = {key: np.stack([p[key] for p in row_parts_], axis=1) for key in row_parts_[0]}
        keep(next(t[1] for t in tasks if t[0] == name), found[name])
    return {name: found[name] for name in cases}


def _widest_first(tasks: list, row_parts: Callable, executor, progress) -> list:
    """``row_parts`` of every task, in the tasks' order, computed widest row first so that
    one long row does not finish last."""
    total = len(tasks)
    order = sorted(range(total), key=lambda k: -tasks[k][2][0].size)
    results = [None] * total
    parts = in_order(executor, row_parts, [tasks[k][2] for k in order])
    for done, (k, one) in enumerate(zip(order, parts), 1):
        results[k] = one
        if progress:
            progress(done, total)
    return results


# --------------------------------------------------------------------------- measuring
def worst_ulp(values, refs: list, dtype, scales: list | None = None) -> float:
    """Worst ULP error of ``values`` against a list of exact (mpmath) values (of ``scales``
    where given: ULPs of max-term scales)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not len(refs):
        return 0.0
    scale_parts = exact_parts(scales) if scales is not None else None
    return float(np.max(ulp_errors(values, exact_parts(refs), dtype, scale_parts)))


def measure_calls(calls: dict, exact: dict[str, np.ndarray], dtype) -> dict[str, tuple[int, float]]:
    """function -> (values checked, worst ULP) for ``calls``: function -> (a call with no
    arguments, the reference field it is measured against, the field of its error
    scale or None); warnings are silenced, the values returned are what is measured."""
    out = {}
    for name, (call, field_name, scale_name) in calls.items():
        with np.errstate(all="ignore"):
            values = np.asarray(call(), dtype=np.float64).reshape(-1)
        parts = exact[field_name].reshape(3, -1)
        scale = exact[scale_name].reshape(3, -1) if scale_name else None
        errors = ulp_errors(values, parts, dtype, scale)
        out[name] = (parts.shape[1], float(np.max(errors)) if errors.size else 0.0)
    return out


def measure_cases(cases: dict, references: dict, implementations: dict, measure: Callable,
                  bound: Callable) -> list[Result]:
    """One :class:`Result` per case, implementation and function: ``measure(impl, case,
    exact)`` gives function -> (values checked, worst ULP), ``bound(function, case)`` the
    bound in ULPs."""
    out = []
    for name, case in cases.items():
        for impl_name, impl in implementations.items():
            for function, (count, worst) in measure(impl, case, references[name]).items():
                out.append(Result(impl_name, function, name, count, worst, bound(function, case)))
    return out
