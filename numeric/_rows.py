"""The generated kernels run on rows: the class axis moved last and the batch
flattened, rows of +inf or only -inf given their limits, NaN rows made NaN, results
rounded once to the caller's dtype. Imports NumPy only."""
from __future__ import annotations

import functools
import math
import string
import textwrap

import numpy as np

from . import _blocks, _kernels


def _quiet(function):
    """Run ``function`` under its own errstate: no RuntimeWarning leaves it, and the
    caller's errstate (``np.errstate(all="raise")``, say) does not reach inside."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)
    return wrapper


def _docstring(**parts):
    """Fill ``$name`` in the decorated function's docstring with ``parts[name]``, a
    section shared by several functions (written once, indented as the docstring)."""
    def apply(function):
        filled = {name: textwrap.indent(textwrap.dedent(text).strip("\n"), "    ").lstrip()
                  for name, text in parts.items()}
        function.__doc__ = string.Template(function.__doc__).substitute(filled)
        return function
    return apply


def _to_rows(arr, axes):
    """Move ``axes`` to the end and flatten: (rows x T array, batch shape, T)."""
    batch_axes = [ax for ax in range(arr.ndim) if ax not in axes]
    moved = arr if axes == (arr.ndim - 1,) else np.transpose(arr, batch_axes + list(axes))
    batch_shape = moved.shape[:len(batch_axes)]
    classes = math.prod(arr.shape[ax] for ax in axes)
    if classes == 0:
        raise ValueError(f"the class axis is empty (logits shape {arr.shape}, axis {axes}): "
                         "softmax needs at least one class")
    rows = math.prod(batch_shape)
    return np.ascontiguousarray(moved.reshape(rows, classes)), batch_shape, classes


def _from_rows(out, arr_shape, axes, batch_shape):
    """Inverse of :func:`_to_rows` for a same-shape result."""
    if axes == (len(arr_shape) - 1,):
        return out.reshape(arr_shape)
    batch_axes = [ax for ax in range(len(arr_shape)) if ax not in axes]
    moved_shape = batch_shape + tuple(arr_shape[ax] for ax in axes)
    order = batch_axes + list(axes)
    return np.transpose(out.reshape(moved_shape), np.argsort(order))


def _row_kinds(rows):
    """Rows needing care: (+inf present, all -inf, NaN present). One whole-array sum
    decides whether any row needs a closer look (a finite total means no inf and no
    NaN)."""
    posinf = np.zeros(rows.shape[0], dtype=bool)
    neginf = np.zeros(rows.shape[0], dtype=bool)
    nan = np.zeros(rows.shape[0], dtype=bool)
    calm = np.isfinite(rows.sum())
    if not calm and rows.shape[0]:
        top = rows.max(axis=-1)  # NaN wherever the row holds one
        posinf[top == np.inf] = True
        neginf[top == -np.inf] = True
        nan[np.isnan(top)] = True
    return posinf, neginf, nan


def _run(kernel, rows, *extra, special=None, dtype=np.float64, moderate_form=True):
    """Run the generated kernel ``kernel`` (a function of ``_kernels``) on rows, treating +inf rows by their
    limit (the +inf entries become 0, the rest -inf) and leaving rows of only -inf to
    ``special``, called as ``special(neginf_rows, posinf_rows, *results)``.

    The kernel runs first: when every logit was moderate (the blocks check that
    anyway), no row is special and the input is not scanned again. Otherwise the
    rows are classified, and if some hold +inf or only -inf the kernel runs again on
    a copy with those rows replaced (the price of non-finite input, not of the common
    call)."""
    full = _kernels.OUTPUTS[kernel.__name__]  # which results have the logits' shape
    results, moderate = _blocks.run(kernel, rows, extra, full, dtype, moderate_form)
    if not moderate:
        posinf, neginf, nan = _row_kinds(rows)
        if posinf.any() or neginf.any():
            rows = rows.copy()
            hit = rows[posinf]
            rows[posinf] = np.where(hit == np.inf, 0.0, -np.inf)  # equal, unbounded logits
            rows[neginf] = 0.0  # placeholder; filled by ``special`` below
            results, _ = _blocks.run(kernel, rows, extra, full, dtype, moderate_form)
            special(np.flatnonzero(neginf), np.flatnonzero(posinf), *results)
        if nan.any():  # a NaN row is NaN, whatever the kernel made of it (one class: 1)
            for r in results:
                r[nan] = np.nan
    results = [r[:, 0] if not f else r for r, f in zip(results, full)]
    return results[0] if len(results) == 1 else tuple(results)


def _finish(values, dtype):
    return values.astype(dtype, copy=False) if values.dtype != dtype else values


def _scalar(value, dtype):
    """A reduced loss: a NumPy scalar of the result dtype (rounded once)."""
    return dtype.type(value)
