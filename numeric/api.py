"""The public runtime API: validation, axes, dtypes and non-finite rows around the
generated kernels in :mod:`numeric._kernels`. Imports NumPy only.

Conventions shared by every function:

* The class axis is ``axis`` (default -1). Results are new arrays of the logits'
  floating dtype (float16/float32/float64 in, the same out; integers and booleans
  become float64). Everything is computed in float64 and rounded once.
* Inputs are never modified. No RuntimeWarning is emitted for finite input.
* NaN in a row makes that row's outputs NaN; other rows are untouched.
* A -inf logit is a masked class: its probability is 0 and nothing becomes NaN. The
  loss is +inf only when the true class is masked (or, for probability targets, a
  masked class has a positive target). A row whose logits are all -inf has no
  possible class: softmax 0, log_softmax -inf, logsumexp -inf, loss +inf and
  gradient S - y = -y.
* +inf logits are the limit of logits growing together without bound: the +inf
  classes share the probability equally (1/n each for n of them), the others get 0;
  logsumexp is +inf, log_softmax is -log n at the +inf classes and -inf elsewhere.
"""
from __future__ import annotations

import operator

import numpy as np

from . import _blocks

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad",
           "cross_entropy_with_grad"]

_FLOATS = (np.float16, np.float32, np.float64)


# --------------------------------------------------------------------------- input checks
def _logits_array(logits, name="logits"):
    """(float64 array, result dtype); raises TypeError for non-numeric data."""
    arr = np.asarray(logits)
    kind = arr.dtype.kind
    if kind in "biu":
        return arr.astype(np.float64), np.dtype(np.float64)
    if kind == "f":
        if arr.dtype.type not in _FLOATS:
            raise TypeError(f"{name} has dtype {arr.dtype}; use float16, float32 or float64 "
                            "(computation is in float64, so wider types would lose digits)")
        return arr.astype(np.float64, copy=False), arr.dtype
    if kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    raise TypeError(f"{name} must be numeric; got dtype {arr.dtype} "
                    f"(first element {arr.flat[0]!r})" if arr.size else
                    f"{name} must be numeric; got dtype {arr.dtype}")


def _normalize_axes(axis, ndim, allow_multiple):
    """Tuple of non-negative axes; None means all."""
    if axis is None:
        if not allow_multiple:
            raise TypeError("axis must be an int for this function (the class axis)")
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        if not allow_multiple:
            raise TypeError(f"axis must be an int (the class axis); got {axis!r}")
        axes = tuple(axis)
    else:
        axes = (axis,)
    out = []
    for ax in axes:
        try:
            ax = operator.index(ax)
        except TypeError:
            raise TypeError(f"axis must be an int, a tuple of ints or None; got {axis!r}") from None
        if not -ndim <= ax < ndim:
            raise np.exceptions.AxisError(
                f"axis {ax} is out of bounds for an array of dimension {ndim}")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(out)


def _to_rows(arr, axes):
    """Move ``axes`` to the end and flatten: (rows x T array, batch shape, T)."""
    batch_axes = [ax for ax in range(arr.ndim) if ax not in axes]
    moved = arr if axes == (arr.ndim - 1,) else np.transpose(arr, batch_axes + list(axes))
    batch_shape = moved.shape[:len(batch_axes)]
    classes = int(np.prod([arr.shape[ax] for ax in axes], dtype=np.int64))
    if classes == 0:
        raise ValueError(f"the class axis is empty (logits shape {arr.shape}, axis {axes}): "
                         "softmax needs at least one class")
    rows = int(np.prod(batch_shape, dtype=np.int64))
    return np.ascontiguousarray(moved.reshape(rows, classes)), batch_shape, classes


def _from_rows(out, arr_shape, axes, batch_shape):
    """Inverse of :func:`_to_rows` for a same-shape result."""
    if axes == (len(arr_shape) - 1,):
        return out.reshape(arr_shape)
    batch_axes = [ax for ax in range(len(arr_shape)) if ax not in axes]
    moved_shape = batch_shape + tuple(arr_shape[ax] for ax in axes)
    order = batch_axes + list(axes)
    return np.transpose(out.reshape(moved_shape), np.argsort(order))


# --------------------------------------------------------------------------- non-finite rows
def _row_kinds(rows):
    """Rows needing care: (+inf present, all -inf). One whole-array sum decides
    whether any row needs a closer look (a finite total means no inf and no NaN)."""
    posinf = np.zeros(rows.shape[0], dtype=bool)
    neginf = np.zeros(rows.shape[0], dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        calm = np.isfinite(rows.sum())
    if not calm and rows.shape[0]:
        with np.errstate(invalid="ignore"):
            top = rows.max(axis=-1)
        posinf[top == np.inf] = True
        neginf[top == -np.inf] = True
    return posinf, neginf


#: kernel name -> which results have the logits' shape (the others are per row)
_SHAPES = {"logsumexp": (False,), "log_softmax": (True,), "softmax": (True,),
           "nll_index": (False,), "nll_index_grad": (True,), "nll_index_with_grad": (False, True),
           "nll_soft": (False,), "nll_soft_grad": (True,), "nll_soft_with_grad": (False, True)}


def _run(kernel, rows, *extra, special=None):
    """Run generated kernel ``kernel`` (a name) on rows, treating +inf rows by their
    limit (the +inf entries become 0, the rest -inf) and leaving rows of only -inf to
    ``special``, called as ``special(neginf_rows, posinf_rows, *results)``."""
    full = _SHAPES[kernel]
    posinf, neginf = _row_kinds(rows)
    if posinf.any() or neginf.any():
        rows = rows.copy()
        hit = rows[posinf]
        rows[posinf] = np.where(hit == np.inf, 0.0, -np.inf)  # equal, unbounded logits
        rows[neginf] = 0.0  # placeholder; filled by ``special`` below
    results = _blocks.run(kernel, rows, extra, full)
    if posinf.any() or neginf.any():
        special(np.flatnonzero(neginf), np.flatnonzero(posinf), *results)
    results = [r[:, 0] if not f else r for r, f in zip(results, full)]
    return results[0] if len(results) == 1 else tuple(results)


def _finish(values, dtype):
    return values.astype(dtype, copy=False) if values.dtype != dtype else values


# --------------------------------------------------------------------------- softmax family
def _axiswise(logits, axis, kernel, fill, reduce, posinf_fill=None):
    arr, dtype = _logits_array(logits)
    if arr.ndim == 0:
        if axis not in (None, 0, -1, (), (0,), (-1,)):
            raise np.exceptions.AxisError(f"axis {axis!r} is out of bounds for a 0-d array")
        arr, axes = arr.reshape(1), (0,)
        scalar = True
    else:
        axes = _normalize_axes(axis, arr.ndim, allow_multiple=True)
        scalar = False
    rows, batch_shape, _ = _to_rows(arr, axes)

    def special(neginf, posinf, out):
        out[neginf] = fill
        if posinf_fill is not None:
            out[posinf] = posinf_fill

    out = _run(kernel, rows, special=special)
    if reduce:
        out = out.reshape(batch_shape)
        return _finish(out[()] if scalar else out, dtype)
    out = _from_rows(out, arr.shape, axes, batch_shape)
    return _finish(out.reshape(()) if scalar else out, dtype)


def softmax(logits, axis=-1):
    """Softmax along ``axis``: S_j = e^{a_j} / sum_k e^{a_k}.

    Computed as S_j = e^{a_j - m} / (1 + s'), with m = max_k a_k at index k and
    s' = sum_{j != k} e^{a_j - m} summed without the term k; a_j - m is carried with its
    rounding error (TwoSum), so S_j is within 4 ULP even for logits spread over
    thousands. ``axis`` may be an int, a tuple of ints or None (all axes), as in
    ``scipy.special.softmax`` (whose default is None; here it is -1).

    Edge cases: -inf gives probability 0; a row of only -inf gives 0 everywhere;
    +inf logits share the probability equally; NaN gives a NaN row.
    """
    return _axiswise(logits, axis, "softmax", 0.0, reduce=False)


def log_softmax(logits, axis=-1):
    """log S_j = (a_j - m) - log1p(s') along ``axis``, within 4 ULP everywhere.

    Accurate also where log S_j is far below 1e-16 in magnitude (the largest logit far
    ahead: a naive log(softmax) gives exactly 0) and for logits up to +-1e308 (a_j - m
    may overflow to -inf, which is then the correctly rounded result). ``axis`` as in
    :func:`softmax`. -inf logits give -inf; a row of only -inf gives -inf; +inf logits
    give -log n at the n +inf classes and -inf elsewhere.
    """
    return _axiswise(logits, axis, "log_softmax", -np.inf, reduce=False)


def logsumexp(logits, axis=-1, keepdims=False):
    """log sum_j e^{a_j} = m + log1p(s') along ``axis`` (removed unless ``keepdims``).

    Within 4 ULP of |m| + log(1 + s'), i.e. of the result except where the problem
    itself cancels (m < 0 and log(1 + s') ~ -m). ``axis`` as in
    ``scipy.special.logsumexp`` (int, tuple or None). -inf entries contribute nothing; a
    row of only -inf gives -inf; any +inf gives +inf; NaN gives NaN.
    """
    arr = np.asarray(logits)
    out = _axiswise(arr, axis, "logsumexp", -np.inf, reduce=True, posinf_fill=np.inf)
    if keepdims:
        axes = (tuple(range(arr.ndim)) if axis is None else
                _normalize_axes(axis, arr.ndim, allow_multiple=True)) if arr.ndim else ()
        out = np.expand_dims(out, axes) if axes else out
    return out


# --------------------------------------------------------------------------- cross entropy
def _soft_tolerance(dtype):
    """How far a row of soft targets may sum from 1: sqrt(eps) of their dtype (1.5e-8
    for float64, 3.5e-4 for float32) -- far above the rounding of any normalization,
    far below a real mistake."""
    return float(np.sqrt(np.finfo(dtype).eps))


def _targets(target, logits_shape, axis, classes):
    """('index', int64 column) or ('soft', float64 rows), validated."""
    tgt = np.asarray(target)
    batch_shape = tuple(s for ax, s in enumerate(logits_shape) if ax != axis)
    if tgt.dtype.kind in "iu":
        if tgt.shape != batch_shape:
            raise ValueError(
                f"integer targets must have the logits' shape without the class axis, "
                f"{batch_shape}; got {tgt.shape} (logits {logits_shape}, axis {axis})")
        flat = tgt.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= classes):
            first = int(np.flatnonzero((flat < 0) | (flat >= classes))[0])
            where = np.unravel_index(first, batch_shape) if batch_shape else ()
            raise ValueError(f"target {flat[first]} at position {tuple(int(w) for w in where)} "
                             f"is not a class index in [0, {classes})")
        return "index", flat.astype(np.int64).reshape(-1, 1)
    if tgt.dtype.kind == "f":
        if tgt.shape != tuple(logits_shape):
            hint = (" (for class indices use an integer dtype)" if tgt.shape == batch_shape else "")
            raise ValueError(f"probability targets must have the logits' shape {tuple(logits_shape)}; "
                             f"got {tgt.shape}{hint}")
        if tgt.dtype.type not in _FLOATS:
            raise TypeError(f"target has dtype {tgt.dtype}; use float16, float32 or float64")
        moved = np.moveaxis(tgt.astype(np.float64, copy=False), axis, -1).reshape(-1, classes)
        if not np.isfinite(moved).all():
            bad = np.argwhere(~np.isfinite(moved))[0]
            raise ValueError(f"probability targets must be finite; got {float(moved[tuple(bad)])} "
                             f"in row {bad[0]}")
        if (moved < 0).any():
            row, col = np.argwhere(moved < 0)[0]
            raise ValueError(f"probability targets must be non-negative; got {float(moved[row, col])} "
                             f"in row {row}, class {col}")
        sums = moved.sum(axis=-1)
        tol = _soft_tolerance(tgt.dtype)
        off = np.abs(sums - 1) > tol
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise ValueError(f"probability targets must sum to 1 along the class axis; row {row} "
                             f"sums to {float(sums[row])!r} (tolerance {tol:.1e})")
        return "soft", np.ascontiguousarray(moved)
    if tgt.dtype.kind == "b":
        raise TypeError("target is boolean; use integer class indices or float probabilities")
    raise TypeError(f"target must be integer class indices or float probabilities; "
                    f"got dtype {tgt.dtype}")


_KERNELS = {
    ("index", "loss"): "nll_index", ("index", "grad"): "nll_index_grad",
    ("index", "both"): "nll_index_with_grad",
    ("soft", "loss"): "nll_soft", ("soft", "grad"): "nll_soft_grad",
    ("soft", "both"): "nll_soft_with_grad",
}


def _cross_entropy(logits, target, axis, want):
    arr, dtype = _logits_array(logits)
    if arr.ndim == 0:
        raise ValueError("logits must have a class axis; got a 0-d array")
    ax = _normalize_axes(axis, arr.ndim, allow_multiple=False)[0]
    rows, batch_shape, classes = _to_rows(arr, (ax,))
    kind, tgt = _targets(target, arr.shape, ax, classes)

    def special(idx, _posinf, *outs):  # rows of only -inf: loss +inf, gradient -y
        if want in ("loss", "both"):
            outs[0][idx] = np.inf
        if want in ("grad", "both"):
            grad = outs[-1]
            if kind == "index":
                grad[idx] = 0.0
                grad[idx, tgt[idx, 0]] = -1.0
            else:
                grad[idx] = -tgt[idx]

    results = _run(_KERNELS[kind, want], rows, tgt, special=special)
    results = results if isinstance(results, tuple) else (results,)
    outs = []
    for out, name in zip(results, ("loss", "grad") if want == "both" else (want,)):
        if name == "loss":
            outs.append(_finish(out.reshape(batch_shape), dtype))
        else:
            outs.append(_finish(_from_rows(out, arr.shape, (ax,), batch_shape), dtype))
    return tuple(outs) if want == "both" else outs[0]


def cross_entropy(logits, target, axis=-1):
    """Per-sample softmax cross entropy L = -sum_j y_j log S_j, the class axis removed.

    ``target`` is either integer class indices c with the logits' shape minus the class
    axis (then L = (m - a_c) + log1p(s'), within 4 ULP, including losses far below
    1e-16 where libraries return exactly 0), or probabilities with the logits' shape
    (non-negative, each row summing to 1 within sqrt(eps) of their dtype; then
    L = sum_j y_j (-log S_j), with 0 * inf = 0 for masked classes of zero target).

    Errors: a label outside [0, T), a target shape that does not match, negative or
    non-normalized soft targets, an empty class axis, non-numeric data.
    """
    return _cross_entropy(logits, target, axis, "loss")


def cross_entropy_grad(logits, target, axis=-1):
    """dL/da = S - y, the logits' shape (see :func:`cross_entropy` for ``target``).

    With integer targets each component is within 4 ULP; at the true class S_c - 1 is
    computed as -sum_{j != c} S_j when c is the argmax, so S_c ~ 1 loses nothing. With
    probability targets the error is within 4 ULP of max(S_j, y_j).
    """
    return _cross_entropy(logits, target, axis, "grad")


def cross_entropy_with_grad(logits, target, axis=-1):
    """(cross_entropy, cross_entropy_grad) in one fused pass."""
    return _cross_entropy(logits, target, axis, "both")
