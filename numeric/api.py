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

import functools
import math
import numbers
import operator

import numpy as np

from . import _blocks, _kernels, _tiles

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad",
           "cross_entropy_with_grad", "binary_cross_entropy_with_logits",
           "binary_cross_entropy_with_logits_grad", "binary_cross_entropy_with_logits_with_grad",
           "linear_cross_entropy"]

_FLOATS = (np.float16, np.float32, np.float64)


def _quiet(function):
    """Run ``function`` under its own errstate: no RuntimeWarning leaves it, and the
    caller's errstate (``np.errstate(all="raise")``, say) does not reach inside."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)
    return wrapper


# --------------------------------------------------------------------------- input checks

def _array(value, name):
    """``np.asarray(value)``, refusing masked arrays: their mask would be dropped
    silently (np.asarray keeps the data under it), so a masked array is a TypeError
    that says how to state the intent instead."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array, whose mask would be ignored; masks are not "
                        f"supported: pass np.ma.filled({name}, value) (for integer targets, fill "
                        "with ignore_index to leave those samples out; for logits, -inf masks a class)")
    return np.asarray(value)


def _logits_array(logits, name="logits", keep=False):
    """(float64 array, result dtype); raises TypeError for non-numeric data. With
    ``keep``, float16/float32 arrays stay as they are (the row kernels widen them one
    block at a time)."""
    arr = _array(logits, name)
    kind = arr.dtype.kind
    if kind in "biu":
        return arr.astype(np.float64), np.dtype(np.float64)
    if kind == "f":
        if arr.dtype.type not in _FLOATS:
            raise TypeError(f"{name} has dtype {arr.dtype}; use float16, float32 or float64 "
                            "(computation is in float64, so wider types would lose digits)")
        return (arr if keep else arr.astype(np.float64, copy=False)), arr.dtype
    if kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    raise TypeError(f"{name} must be numeric; got dtype {arr.dtype} "
                    f"(first element {arr.flat[0]!r})" if arr.size else
                    f"{name} must be numeric; got dtype {arr.dtype}")


def _check_not_bool(axis):
    """A boolean axis is a TypeError, as in SciPy (True would silently mean axis 1)."""
    for ax in (axis if isinstance(axis, (tuple, list)) else (axis,)):
        if isinstance(ax, (bool, np.bool_)):
            raise TypeError(f"axis must be an int, a tuple of ints or None; got the boolean {axis!r}")


def _normalize_axes(axis, ndim, allow_multiple):
    """Tuple of non-negative axes; None means all."""
    _check_not_bool(axis)
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


# --------------------------------------------------------------------------- non-finite rows
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


# --------------------------------------------------------------------------- softmax family
def _axiswise(logits, axis, kernel, fill, reduce, posinf_fill=None):
    arr, dtype = _logits_array(logits, keep=True)
    _check_not_bool(axis)
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

    out = _run(kernel, rows, special=special, dtype=dtype)
    if reduce:
        out = out.reshape(batch_shape)
        return _finish(out[()] if scalar else out, dtype)
    out = _from_rows(out, arr.shape, axes, batch_shape)
    return _finish(out.reshape(()) if scalar else out, dtype)


@_quiet
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
    return _axiswise(logits, axis, _kernels.softmax, 0.0, reduce=False)


@_quiet
def log_softmax(logits, axis=-1):
    """log S_j = (a_j - m) - log1p(s') along ``axis``, within 4 ULP everywhere.

    Accurate also where log S_j is far below 1e-16 in magnitude (the largest logit far
    ahead: a naive log(softmax) gives exactly 0) and for logits up to +-1e308 (a_j - m
    may overflow to -inf, which is then the correctly rounded result). ``axis`` as in
    :func:`softmax`. -inf logits give -inf; a row of only -inf gives -inf; +inf logits
    give -log n at the n +inf classes and -inf elsewhere.
    """
    return _axiswise(logits, axis, _kernels.log_softmax, -np.inf, reduce=False)


@_quiet
def logsumexp(logits, axis=-1, b=None, keepdims=False, return_sign=False):
    """log |sum_j b_j e^{a_j}| along ``axis`` (removed unless ``keepdims``), as
    ``scipy.special.logsumexp``; with ``return_sign``, ``(value, sign)``.

    Without ``b``: m + log1p(s'), within 4 ULP of |m| + log(1 + s'), i.e. of the result
    except where the problem itself cancels (m < 0 and log(1 + s') ~ -m).

    With weights ``b`` (finite, of any sign, broadcast to the logits' shape; entries
    with b_j = 0 are left out, also from the maximum, as in SciPy): m + log|b_k + s'_b|
    with s'_b = sum_{j != k} b_j e^{a_j - m} summed accurately and b_k + s'_b carried
    exactly into the log. Within 4 ULP of |m| + |log|s|| + sum_{j != k} |b_j|
    e^{a_j - m} / |s| (s = b_k + s'_b): of the result unless the weighted sum itself
    cancels. A negative sum gives NaN unless ``return_sign`` (then its log-magnitude and
    sign -1); a zero sum gives -inf, sign 0.

    ``axis`` as in SciPy (int, tuple or None; a boolean is a TypeError), and SciPy's
    shapes for 0-d input. -inf entries contribute nothing; a row of only -inf gives
    -inf (sign 0); +inf gives +inf (NaN if the weights at +inf sum to 0); NaN gives NaN.
    """
    arr = _array(logits, "logits")
    if b is None:
        out = _axiswise(arr, axis, _kernels.logsumexp, -np.inf, reduce=True, posinf_fill=np.inf)
        sign = None
        if return_sign:
            sign = np.where(np.isnan(out), np.nan, np.where(out == -np.inf, 0.0, 1.0)).astype(out.dtype)
    else:
        out, sign = _logsumexp_b(arr, axis, b)
        if not return_sign:
            out = np.where(sign < 0, np.nan, out).astype(out.dtype)
    out = _lse_shape(out, arr, axis, keepdims)
    if not return_sign:
        return out
    return out, _lse_shape(np.asarray(sign, dtype=np.asarray(out).dtype), arr, axis, keepdims)


def _lse_shape(out, arr, axis, keepdims):
    """SciPy's result shape: the axes removed, or kept with ``keepdims``; (1,) for 0-d
    input with keepdims (or axis=()); a NumPy scalar for a full reduction."""
    if arr.ndim == 0 and (keepdims or axis == ()):
        return np.reshape(out, 1)
    if keepdims:
        axes = (tuple(range(arr.ndim)) if axis is None else
                _normalize_axes(axis, arr.ndim, allow_multiple=True)) if arr.ndim else ()
        return np.expand_dims(out, axes) if axes else out
    out = np.asarray(out)
    return out[()] if out.ndim == 0 else out


def _logsumexp_b(arr, axis, b):
    """(log|sum b e^a|, sign) along ``axis`` through the generated kernel logsumexp_b."""
    a, dtype = _logits_array(arr, keep=True)
    wts = _array(b, "b")
    if wts.dtype.kind not in "biuf":
        raise TypeError(f"b must be real numbers; got dtype {wts.dtype}")
    dtype = np.result_type(dtype, wts.dtype if wts.dtype.kind == "f" else dtype)
    if dtype.type not in _FLOATS:
        dtype = np.dtype(np.float64)
    try:
        wts = np.broadcast_to(wts.astype(np.float64), a.shape)
    except ValueError:
        raise ValueError(f"b of shape {wts.shape} does not broadcast to the logits' shape {a.shape}") from None
    if not np.isfinite(wts).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(wts))[0])
        raise ValueError(f"b must be finite; got {wts[where]} at position {where}")
    _check_not_bool(axis)
    if a.ndim == 0:
        if axis not in (None, 0, -1, (), (0,), (-1,)):
            raise np.exceptions.AxisError(f"axis {axis!r} is out of bounds for a 0-d array")
        a, wts, axes = a.reshape(1), wts.reshape(1), (0,)
    else:
        axes = _normalize_axes(axis, a.ndim, allow_multiple=True)
    rows, batch_shape, _ = _to_rows(a.astype(np.float64), axes)
    weights, _, _ = _to_rows(wts, axes)
    rows = np.where(weights == 0, -np.inf, rows)  # b_j = 0: left out, also from the max

    def special(neginf, posinf, value, sign):
        value[neginf], sign[neginf] = -np.inf, 0.0
        value[posinf] = np.where(sign[posinf] == 0, np.nan, np.inf)
        sign[posinf] = np.where(sign[posinf] == 0, np.nan, sign[posinf])

    value, sign = _run(_kernels.logsumexp_b, rows, weights, special=special)
    return (_finish(value.reshape(batch_shape), dtype), _finish(sign.reshape(batch_shape), dtype))


# --------------------------------------------------------------------------- cross entropy
def _soft_tolerance(dtype):
    """How far a row of soft targets may sum from 1: sqrt(eps) of their dtype (1.5e-8
    for float64, 3.5e-4 for float32) -- far above the rounding of any normalization,
    far below a real mistake."""
    return float(np.sqrt(np.finfo(dtype).eps))


def _check_probabilities(rows, tol):
    """Probability targets (rows x T, any float dtype) finite, non-negative and summing
    to 1 within ``tol``, checked a chunk of rows at a time (a few MB of float64: no
    copy or mask of the whole B x T array)."""
    step = max(1, _blocks.BLOCK_BYTES // (8 * max(rows.shape[1], 1)))
    for start in range(0, rows.shape[0], step):
        part = rows[start:start + step].astype(np.float64)
        if not np.isfinite(part).all():
            bad = np.argwhere(~np.isfinite(part))[0]
            raise ValueError(f"probability targets must be finite; got {float(part[tuple(bad)])} "
                             f"in row {start + bad[0]}")
        if (part < 0).any():
            row, col = np.argwhere(part < 0)[0]
            raise ValueError(f"probability targets must be non-negative; got {float(part[row, col])} "
                             f"in row {start + row}, class {col}")
        sums = part.sum(axis=-1)  # may overflow to inf: then the check below says so
        off = np.abs(sums - 1) > tol
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise ValueError(f"probability targets must sum to 1 along the class axis; row {start + row} "
                             f"sums to {float(sums[row])!r} (tolerance {tol:.1e})")


def _targets(target, logits_shape, axis, classes, widen=True):
    """('index', int64 column) or ('soft', float64 rows; with ``widen`` False, rows of
    the targets' own dtype, a view where the classes are last), validated."""
    tgt = np.asarray(target)
    batch_shape = tuple(s for ax, s in enumerate(logits_shape) if ax != axis)
    if tgt.dtype.kind in "iu":
        if tgt.shape != batch_shape:
            hint = ""
            if tgt.shape == tuple(logits_shape):
                hint = ("; for probability (one-hot) targets of the logits' shape use a float "
                        "dtype, e.g. target.astype(np.float64)")
            elif (len(logits_shape) >= 3 and axis == len(logits_shape) - 1
                  and tgt.shape == tuple(logits_shape[:1]) + tuple(logits_shape[2:])):
                hint = ("; the classes look to be on axis 1 (PyTorch's (N, C, L) layout): "
                        "pass axis=1")
            raise ValueError(
                f"integer targets must have the logits' shape without the class axis, "
                f"{batch_shape}; got {tgt.shape} (logits {logits_shape}, axis {axis}){hint}")
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
        moved = np.moveaxis(tgt, axis, -1).reshape(-1, classes)  # (a view for classes last)
        _check_probabilities(moved, _soft_tolerance(tgt.dtype))
        return "soft", (np.ascontiguousarray(moved, dtype=np.float64) if widen else moved)
    if tgt.dtype.kind == "b":
        raise TypeError("target is boolean; use integer class indices or float probabilities")
    raise TypeError(f"target must be integer class indices or float probabilities; "
                    f"got dtype {tgt.dtype}")


_KERNELS = {
    ("index", "loss"): _kernels.nll_index, ("index", "grad"): _kernels.nll_index_grad,
    ("index", "both"): _kernels.nll_index_with_grad,
    ("soft", "loss"): _kernels.nll_soft, ("soft", "grad"): _kernels.nll_soft_grad,
    ("soft", "both"): _kernels.nll_soft_with_grad,
    ("weighted", "loss"): _kernels.nll_u, ("weighted", "grad"): _kernels.nll_u_grad,
    ("weighted", "both"): _kernels.nll_u_with_grad,
}


_REDUCTIONS = ("none", "mean", "sum")
#: PyTorch's default ignore_index: a target equal to it is ignored
IGNORE_INDEX = -100


def _check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}; got {reduction!r}")


def _nonnegative_weights(values, name, shape=None):
    """Finite, non-negative float64 weights; ``shape`` is the exact shape required."""
    wts = _array(values, name)
    if wts.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric; got dtype {wts.dtype}")
    wts = wts.astype(np.float64)
    if shape is not None and wts.shape != shape:
        raise ValueError(f"{name} must have one entry per class, shape {shape}; got {wts.shape}")
    bad = ~np.isfinite(wts) | (wts < 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f" at class {where[0]}" if shape is not None else (f" at position {where}" if where else "")
        raise ValueError(f"{name} must be finite and non-negative; got {wts[where]}{at}")
    return wts


def _options(weight, ignore_index, label_smoothing, reduction, classes, kind):
    """Validated (weight or None, ignore_index or None, epsilon, reduction)."""
    _check_reduction(reduction)
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing must be a number in [0, 1]; got {label_smoothing!r}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}")
    if weight is not None:
        weight = _nonnegative_weights(weight, "weight", (classes,))
    if ignore_index is not None:
        if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"ignore_index must be an int or None; got {ignore_index!r}")
        ignore_index = int(ignore_index)
        if kind == "soft":
            if ignore_index != IGNORE_INDEX:
                raise ValueError("ignore_index applies to integer class targets only, "
                                 f"not to probability targets; got ignore_index={ignore_index}")
            ignore_index = None
    return weight, ignore_index, eps, reduction


def _scalar(value, dtype):
    """A reduced loss: a NumPy scalar of the result dtype (rounded once)."""
    return dtype.type(value)


def _prepared_targets(target, shape, ax, classes, weight, ignore_index, label_smoothing, reduction,
                      widen=True):
    """Validated targets and options for logits of ``shape`` (classes along ``ax``):
    (kind, targets as rows, ignored rows or None, weight, eps, reduction)."""
    tgt_in = _array(target, "target")
    if len(shape) == 1 and tgt_in.shape == (1,) and tgt_in.dtype.kind in "iu":
        tgt_in = tgt_in.reshape(())  # one sample's class as a (1,) array, as PyTorch accepts
    kind = "index" if tgt_in.dtype.kind in "iu" else "soft"
    weight, ignore_index, eps, reduction = _options(weight, ignore_index, label_smoothing,
                                                    reduction, classes, kind)
    ignored = None
    if kind == "index" and ignore_index is not None:
        hit = tgt_in == ignore_index
        if hit.any():
            ignored = hit.reshape(-1)
            tgt_in = np.where(hit, 0, tgt_in)
    kind, tgt = _targets(tgt_in, shape, ax, classes, widen)
    return kind, tgt, ignored, weight, eps, reduction


def _mean_denominator(kind, tgt, ignored, weight):
    """(counted rows as 0/1, the divisor of "mean"): the summed weights of the counted
    targets for class indices (PyTorch), the number of rows for probabilities."""
    rows = tgt.shape[0]
    if kind == "index":
        counted = np.ones(rows) if ignored is None else (~ignored).astype(np.float64)
        # (math.fsum: the divisor of every gradient entry, correctly rounded)
        return counted, math.fsum(counted * (weight[tgt[:, 0]] if weight is not None else 1.0))
    return np.ones(rows), float(rows)


#: at most this many logits take the direct path of :func:`_plain_small` (one call of
#: the kernel on the whole array); larger calls go through the cache blocks and threads
#: of :mod:`numeric._blocks`, which pay for themselves only there
SMALL_ELEMENTS = _blocks.THREAD_MIN_ELEMENTS
#: per ``want``: the kernel of the direct path and its scratch count
_PLAIN_KERNELS = {want: (kernel, _kernels.SCRATCH[kernel.__name__]) for want, kernel in (
    ("loss", _kernels.nll_index), ("grad", _kernels.nll_index_grad), ("both", _kernels.nll_index_with_grad))}
_max, _min = np.maximum.reduce, np.minimum.reduce


def _plain_small(logits, target, axis, want, weight, ignore_index, label_smoothing, reduction):
    """The common small call -- 2-D C-contiguous float logits with every value in
    the kernels' moderate range [-708, 600], integer targets all in [0, T), no weight,
    no smoothing, nothing ignored -- as one call of the generated kernel on the whole
    array: bit for bit what the general path computes (the same kernel, moderate
    form), without its per-call machinery (blocks, non-finite row scans, option
    objects). Returns None when the call is not of that kind (or is bad input): the
    general path then handles it and raises its errors. The checks are a few
    reductions: the min and max of the logits (both fail for NaN) and the max (and, for
    signed dtypes, the min) of the targets."""
    if (weight is not None or type(label_smoothing) not in (float, int) or label_smoothing != 0
            or type(reduction) is not str or reduction not in _REDUCTIONS):
        return None
    arr = logits if type(logits) is np.ndarray else _array(logits, "logits")
    tgt = target if type(target) is np.ndarray else _array(target, "target")
    if (arr.ndim != 2 or axis not in (-1, 1) or arr.dtype.type not in _FLOATS
            or not arr.flags.c_contiguous or not 0 < arr.size <= SMALL_ELEMENTS
            or tgt.dtype.kind not in "iu" or tgt.shape != arr.shape[:1]):
        return None
    rows, classes = arr.shape
    # (signed targets compared as signed values: viewed as unsigned, a negative int8
    # target -100 is 156, a class index once T > 156)
    if _max(tgt) >= classes or (tgt.dtype.kind == "i" and _min(tgt) < 0):
        return None
    if ignore_index is not None and (type(ignore_index) is not int or (
            0 <= ignore_index < classes and (tgt == ignore_index).any())):
        return None  # (an ignore_index among the targets: the general path masks those rows)
    if not (_blocks.MODERATE_LOW <= _min(arr, None) and _max(arr, None) <= _blocks.MODERATE_HIGH):
        return None  # (NaN fails too)
    dtype = arr.dtype
    wide = arr if dtype == np.float64 else arr.astype(np.float64)
    kernel, count = _PLAIN_KERNELS[want]
    shape = arr.shape
    scratch = _blocks.take_scratch(count, shape)
    try:
        grad = np.empty(shape) if want != "loss" else None
        results = kernel(wide, tgt.astype(np.int64, copy=False).reshape(rows, 1),
                         out=[None, grad] if want == "both" else [grad], scratch=scratch, moderate=True)
    finally:
        _blocks.give_back(count, shape, scratch)
    loss, grad = (results if want == "both" else
                  (results, None) if want == "loss" else (None, results))
    if reduction == "none":
        loss = None if loss is None else _finish(loss[:, 0], dtype)
    else:  # every row counts: the mean divides by the number of rows
        loss, grad = _reduced(loss, grad, reduction, dtype, (None, rows))
    grad = None if grad is None else _finish(grad, dtype)
    return (loss, grad) if want == "both" else (loss if want == "loss" else grad)


def _cross_entropy(logits, target, axis, want, weight, ignore_index, label_smoothing, reduction):
    fast = _plain_small(logits, target, axis, want, weight, ignore_index, label_smoothing, reduction)
    if fast is not None:
        return fast
    arr, dtype = _logits_array(logits, keep=True)
    if arr.ndim == 0:
        raise ValueError("logits must have a class axis; got a 0-d array")
    ax = _normalize_axes(axis, arr.ndim, allow_multiple=False)[0]
    rows, batch_shape, classes = _to_rows(arr, (ax,))
    kind, tgt, ignored, weight, eps, reduction = _prepared_targets(
        target, arr.shape, ax, classes, weight, ignore_index, label_smoothing, reduction)
    plain_index = kind == "index" and eps == 0.0
    counted, denom = _mean_denominator(kind, tgt, ignored, weight)
    # the mean's divisor folded into the gradient (issue 20: G w_c then / sum w, or the
    # kernel's G then / sum w, stacked two more roundings on the kernel's): u / sum w
    # rounded once goes into the weighted kernels, and w_c / sum w into one rounding
    # of G w_c / sum w for weighted class indices
    fold = reduction == "mean" and bool(denom) and want != "loss"
    family, extra = _kernel_targets(kind, tgt, eps, weight, rows.shape[0], classes,
                                    denom if fold else None)
    fold = fold and (family == "weighted" or weight is not None)

    # results are rounded to the caller's dtype in the kernels, unless more arithmetic
    # follows here (weights, ignored rows, reductions): then at the end
    post = weight is not None or ignored is not None or reduction != "none"
    results = _run(_KERNELS[family, want], rows, extra, special=_only_neg_inf_rows(family, extra, want),
                   dtype=np.float64 if post else dtype, moderate_form=family != "weighted" or want == "loss")
    results = results if isinstance(results, tuple) else (results,)
    got = dict(zip(("loss", "grad") if want == "both" else (want,), results))
    loss, grad = got.get("loss"), got.get("grad")
    row_scale = None  # per-row factor: w_c for weighted integer targets, 0 if ignored
    if plain_index and weight is not None:
        row_scale = weight[tgt[:, 0]]
    if ignored is not None:
        row_scale = (np.ones(rows.shape[0]) if row_scale is None else row_scale.copy())
        row_scale[ignored] = 0.0
    if row_scale is not None:
        if loss is not None:
            loss = _zero_times(row_scale, loss)
        if grad is not None:
            grad = (_product_quotient(grad, row_scale[:, None], denom) if fold and family == "index"
                    else _zero_times(row_scale[:, None], grad))
    fixed = None
    if weight is not None:  # a weight above 1 times a subnormal: the tiles' forms
        fixed = _subnormal_products(rows, kind, tgt, weight, eps, classes, reduction, counted, denom)
        if fixed is not None and loss is not None:
            loss[fixed[0]] = fixed[1] / denom if (fold and family == "weighted") else fixed[1]
    if reduction != "none":
        if fold:  # (the loss of a folded kernel is already divided)
            total = float(np.sum(loss)) if loss is not None else 0.0
            loss = _scalar(total if family == "weighted" else total / denom, dtype)
        else:
            loss, grad = _reduced(loss, grad, reduction, dtype, (counted, denom))
    if fixed is not None and grad is not None:
        grad[fixed[0]] = fixed[2]
    outs = []
    if want in ("loss", "both"):
        outs.append(_finish(loss.reshape(batch_shape), dtype) if reduction == "none" else loss)
    if want in ("grad", "both"):
        outs.append(_finish(_from_rows(grad, arr.shape, (ax,), batch_shape), dtype))
    return tuple(outs) if want == "both" else outs[0]


def _kernel_targets(kind, tgt, eps, weight, n_rows, classes, divisor=None):
    """(kernel family, its target array): integer targets as they are, or
    u = w ((1 - eps) y + eps / T) >= 0, whose loss sum_j u_j (-log S_j) has the gradient
    S sum_j u_j - u (probability targets too: a row of y sums to 1 only within a
    tolerance, and the gradient is that of the loss computed); with ``divisor``,
    u / divisor (rounded once)."""
    if kind == "index" and eps == 0.0:
        return "index", tgt
    if kind == "index":  # u_j = w_j eps / T off the target, w_c (1 - eps + eps / T) at it
        off = _smoothed_weighted(np.zeros(classes), eps, classes, weight, divisor)
        on = _smoothed_weighted(np.ones(classes), eps, classes, weight, divisor)
        extra = np.empty((n_rows, classes))
        extra[:] = off
        extra[np.arange(n_rows), tgt[:, 0]] = on[tgt[:, 0]]
        return "weighted", extra
    if eps or weight is not None or divisor is not None:
        return "weighted", _smoothed_weighted(tgt, eps, classes, weight, divisor)
    return "weighted", tgt


def _product_quotient(a, b, c):
    """a b / c rounded about once (a b carried as a double-double), 0 where b is 0 and
    a is not NaN; the plain (a b) / c where a b is beyond 2^996."""
    p, e = _two_product(a, b)
    q = p / c
    qp, qe = _two_product(q, np.float64(c))
    fine = q + (((p - qp) - qe) + e) / c
    out = np.where(np.isfinite(fine) | ~np.isfinite(q), fine, (a * b) / c)
    np.copyto(out, 0.0, where=(np.asarray(b) == 0) & ~np.isnan(a))
    return out


def _subnormal_products(rows, kind, tgt, weight, eps, classes, reduction, counted, denom):
    """(row indices, per-row losses, G) for the finite rows where a weight above 1
    meets a logit more than 708 below the row's largest: there S_j or log1p(s') may be
    subnormal, and the kernels' product w S_j keeps only the subnormal's bits (weight
    1e300 at a gap of 740: 6e13 ULP). Those rows are computed by the tiles' forms,
    which fold the weight's power of two into the exponent; None if there are none."""
    sum_w = math.fsum(weight)
    if kind == "index":
        scale = weight[tgt[:, 0]] + (eps / classes) * sum_w
    else:
        scale = np.full(rows.shape[0], float(weight.max()) * (1.0 + _soft_tolerance(np.float64)))
    if reduction == "mean" and denom:
        scale = np.maximum(scale, scale / denom)
    cand = np.flatnonzero((scale > 1.0) & (counted > 0))
    if not cand.size:
        return None
    sub = rows if cand.size == rows.shape[0] else rows[cand]  # (no copy of all the logits)
    top, low = sub.max(axis=1), sub.min(axis=1)
    masked = np.flatnonzero(low == -np.inf)  # a masked class: the gap to the others
    if masked.size:
        low[masked] = np.where(sub[masked] == -np.inf, np.inf, sub[masked]).min(axis=1)
    keep = (top - low > _tiles.TILE_MODERATE) & np.isfinite(top)
    if masked.size and (eps or kind == "soft"):  # (-inf there: the kernels' 0 * inf rules)
        keep[masked] = False
    cand = cand[keep]
    if not cand.size:
        return None
    sub = np.ascontiguousarray(rows[cand], dtype=np.float64)
    if kind == "index":
        targets = _tiles.IndexTargets(tgt[cand, 0], weight, eps, classes)
    else:
        targets = _tiles.SoftTargets(tgt[cand], functools.partial(_soft_tile, eps=eps, classes=classes,
                                                                  weight=weight))
    out = _tiles.rows_with_grad(sub, targets, reduction, counted[cand], denom)
    return None if out is None else (cand, out[0], out[1])


def _only_neg_inf_rows(family, extra, want):
    """The fix for rows of only -inf: each class has -log S_j = +inf, so the loss is
    +inf where the row's target mass is positive and 0 where it is 0 (0 * inf = 0, the
    rule everywhere); the gradient S sum u - u is -u (-y)."""
    def special(idx, _posinf, *outs):
        if want in ("loss", "both"):
            if family == "index":
                outs[0][idx] = np.inf
            else:
                outs[0][idx] = np.where(extra[idx].sum(axis=1, keepdims=True) > 0, np.inf, 0.0)
        if want in ("grad", "both"):
            grad = outs[-1]
            if family == "index":
                grad[idx] = 0.0
                grad[idx, extra[idx, 0]] = -1.0
            else:
                grad[idx] = -extra[idx]
    return special


def _reduced(loss, grad, reduction, dtype, counted_denom):
    """The "sum" or "mean" of the per-row losses (and the gradient of the mean); a mean
    over nothing (all ignored, or all weights 0) is NaN, as in PyTorch, with a NaN
    gradient in counted rows and 0 in ignored ones (d(0/0))."""
    counted, denom = counted_denom
    total = float(np.sum(loss)) if loss is not None else 0.0
    if reduction == "sum":
        return _scalar(total, dtype), grad
    if denom:
        return _scalar(total / denom, dtype), (grad / denom if grad is not None else None)
    if grad is not None:
        grad[counted > 0] = np.nan
    return _scalar(np.nan, dtype), grad


# --------------------------------------------------------------------------- exact u
def _two_sum(x, y):
    """(s, e) with s = fl(x + y) and s + e = x + y exactly (Knuth)."""
    s = x + y
    z = s - x
    return s, (x - (s - z)) + (y - z)


def _split(x):
    """Dekker's split: x = hi + lo, each with at most 26 significant bits."""
    c = 134217729.0 * x  # 2^27 + 1
    hi = c - (c - x)
    return hi, x - hi


def _two_product(x, y):
    """(p, e) with p = fl(x y) and p + e = x y exactly (Dekker; |x y| < 2^996)."""
    p = x * y
    xh, xl = _split(x)
    yh, yl = _split(y)
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _smoothed_weighted(y, eps, classes, weight, divisor=None):
    """u = w ((1 - eps) y + eps / T) (divided by ``divisor`` if given), rounded once
    from its exact value (to within 0.5 ULP and a few 2^-100 relative): y' is carried
    as a double-double, then multiplied by w. Rounding each operation instead cost up
    to ~1.5 ULP of u, which the loss and gradient inherit (issue 11: the loss reached
    4.15 ULP)."""
    if eps:
        keep_hi, keep_lo = _two_sum(1.0, -eps)  # 1 - eps, exactly
        q = eps / classes
        h, low = _two_product(np.float64(q), np.float64(classes))
        rest = ((eps - h) - low) / classes  # eps / T = q + rest (eps - h exact: Sterbenz)
        a_hi, a_lo = _two_product(keep_hi, y)
        a_lo = a_lo + keep_lo * y
        hi, lo = _two_sum(a_hi, q)
        lo = lo + (a_lo + rest)
    else:
        hi, lo = y, np.zeros_like(y)
    if weight is not None:
        p, e = _two_product(weight, hi)
        plain = weight * (hi + lo)
        hi, lo = p, e + weight * lo
    if divisor is not None:  # (hi + lo) / divisor, the quotient corrected by its remainder
        q = hi / divisor
        qp, qe = _two_product(q, np.float64(divisor))
        hi, lo = q, (((hi - qp) - qe) + lo) / divisor
        if weight is not None:
            plain = plain / divisor
    exact = hi + lo
    if weight is None:
        return exact
    return np.where(np.isfinite(exact), exact, plain)  # w > 2^996: plain product


def _zero_times(factor, values):
    """factor * values with 0 where factor is 0 and the value is not NaN: an ignored or
    zero-weight sample contributes 0 even when its loss is inf (0 * inf = 0), but a NaN
    row stays NaN."""
    out = np.multiply(factor, values)
    np.copyto(out, 0.0, where=(np.asarray(factor) == 0) & ~np.isnan(values))
    return out


_OPTIONS_DOC = """
    Options, with PyTorch's names, defaults and semantics
    (``torch.nn.functional.cross_entropy``):

    - ``weight``: one finite, non-negative weight per class, w. A sample's loss becomes
      -sum_j w_j y_j log S_j (w_c L for an integer target c).
    - ``ignore_index`` (default -100): integer targets equal to it contribute 0 to the
      loss, get a zero gradient and do not count in the mean. None ignores nothing.
      Probability targets accept only the default (which then means nothing).
    - ``label_smoothing`` = eps, a number in [0, 1]: y is replaced by
      y' = (1 - eps) y + eps / T, and the gradient is S sum_j u_j - u with u = w y'.
    - ``reduction`` (default "mean"): "none" keeps one loss per sample; "sum" adds them;
      "mean" divides the sum by the summed weights w_c of the counted integer targets
      (their number without weights), or by the number of samples for probability
      targets. A reduced loss is a NumPy scalar of the result dtype. The gradients are
      those of the loss returned ("none": of the sum of the per-sample losses). A mean
      over nothing (every target ignored, or every weight 0) is NaN, as in PyTorch; its
      gradient is NaN in the rows that count (weight 0) and 0 in ignored rows.

    Non-finite logits: a NaN row gives a NaN loss and gradient, also when its target is
    ignored or has weight 0. 0 * inf = 0: a class (or sample) of zero target mass adds
    nothing, even where -log S_j = +inf.
"""

@_quiet
def cross_entropy(logits, target, *, weight=None, ignore_index=IGNORE_INDEX, label_smoothing=0.0,
                  reduction="mean", axis=-1):
    return _cross_entropy(logits, target, axis, "loss", weight, ignore_index, label_smoothing, reduction)


@_quiet
def cross_entropy_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX, label_smoothing=0.0,
                       reduction="mean", axis=-1):
    return _cross_entropy(logits, target, axis, "grad", weight, ignore_index, label_smoothing, reduction)


@_quiet
def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX,
                            label_smoothing=0.0, reduction="mean", axis=-1):
    return _cross_entropy(logits, target, axis, "both", weight, ignore_index, label_smoothing, reduction)


cross_entropy.__doc__ = """Softmax cross entropy L = -sum_j y_j log S_j, reduced to its mean by default.

    ``target`` is either integer class indices c with the logits' shape minus the class
    axis (then L = (m - a_c) + log1p(s'), within 4 ULP, including losses far below
    1e-16 where libraries return exactly 0), or probabilities with the logits' shape
    (non-negative, each row summing to 1 within sqrt(eps) of their dtype; then
    L = sum_j y_j (-log S_j), with 0 * inf = 0 for masked classes of zero target).
    The class axis is ``axis`` (default -1; PyTorch's is 1 for 3-D and wider logits).

    Errors: a label outside [0, T), a target shape that does not match (with the fix
    when it is clear: ``axis=1`` for (N, C, L) logits, a float dtype for one-hot
    targets), negative or non-normalized soft targets, an empty class axis, non-numeric
    data, and bad options.
""" + _OPTIONS_DOC

cross_entropy_grad.__doc__ = """dL/d logits of :func:`cross_entropy` (same arguments), the logits' shape.

    dL/da = S - y for integer targets: each component within 4 ULP; at the true class
    S_c - 1 is computed as -sum_{j != c} S_j when c is the argmax, so S_c ~ 1 loses
    nothing. For probability targets, weights or smoothing, dL/da = S sum_j u_j - u,
    the derivative of the loss computed also where a row of y sums to 1 only within
    the tolerance (S - y would not be).
""" + _OPTIONS_DOC

cross_entropy_with_grad.__doc__ = """(cross_entropy, cross_entropy_grad) from one fused pass.
""" + _OPTIONS_DOC


# --------------------------------------------------------------------------- binary
def _broadcast_weight(values, name, shape):
    """Non-negative weights that broadcast to ``shape`` without enlarging it."""
    wts = _nonnegative_weights(values, name)
    try:
        full = np.broadcast_shapes(wts.shape, shape)
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(f"{name} of shape {wts.shape} does not broadcast to the logits' shape "
                         f"{tuple(shape)} (it may not add axes or enlarge any; "
                         "pos_weight: one weight per class, the last axis)")
    return wts


def _bce(logits, target, weight, pos_weight, reduction, want):
    _check_reduction(reduction)
    z, dtype = _logits_array(logits)
    y = _array(target, "target")
    if y.dtype.kind not in "biuf":
        raise TypeError(f"target must be numeric probabilities in [0, 1]; got dtype {y.dtype}")
    y = y.astype(np.float64)
    if y.shape != z.shape:
        raise ValueError(f"target must have the logits' shape {z.shape}; got {y.shape}")
    bad = ~((y >= 0) & (y <= 1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"binary targets must be in [0, 1]; got {y[where]} at position {where}")
    pw = np.float64(1.0) if pos_weight is None else _broadcast_weight(pos_weight, "pos_weight", z.shape)
    w = None if weight is None else _broadcast_weight(weight, "weight", z.shape)
    shape = z.shape
    z, y = z.reshape(-1), y.reshape(-1)  # the kernels work on 1-d arrays (0-d too)
    pw = np.broadcast_to(pw, shape).reshape(-1)
    if want == "grad" and reduction == "none" and w is None:
        loss, grad = None, _kernels.bce_grad(z, y, pw)
    elif want == "loss":
        loss, grad = _kernels.bce(z, y, pw), None
    else:
        loss, grad = _kernels.bce_with_grad(z, y, pw)
    if w is not None:
        w = np.broadcast_to(w, shape).reshape(-1)
        loss = None if loss is None else _zero_times(w, loss)
        grad = None if grad is None else _zero_times(w, grad)
    if reduction != "none":
        total = float(np.sum(loss))
        if reduction == "sum":
            loss = _scalar(total, dtype)
        elif z.size:
            loss = _scalar(total / z.size, dtype)
            grad = None if grad is None else grad / z.size
        else:
            loss = _scalar(np.nan, dtype)
    outs = []
    if want in ("loss", "both"):
        outs.append(_finish(loss.reshape(shape), dtype) if reduction == "none" else loss)
    if want in ("grad", "both"):
        outs.append(_finish(grad.reshape(shape), dtype))
    return tuple(outs) if want == "both" else outs[0]


_BCE_DOC = """

    L = w (p_w y softplus(-z) + (1 - y) softplus(z)) elementwise, which is
    -w (p_w y log sigma(z) + (1 - y) log(1 - sigma(z))) (PyTorch's
    ``binary_cross_entropy_with_logits``) and, for w = p_w = 1, the two-class softmax
    loss of the logits (z, 0). softplus(x) = max(x, 0) + log1p(e^{-|x|}): accurate for
    |z| up to 1e308 and for losses far below 1e-16. dL/dz = w ((1 - y) sigma(z) -
    p_w y sigma(-z)) (sigma(z) - y for w = p_w = 1), formed without cancellation at
    y in {0, 1}.

    ``target`` y has the logits' shape, values in [0, 1]; ``weight`` w and
    ``pos_weight`` p_w (one weight per class: the last axis) are finite, non-negative
    and broadcast to the logits' shape (a ValueError if they would enlarge it);
    ``reduction`` is "mean" (default, over all elements), "sum" or "none", and the
    gradient is that of the loss returned (a reduced loss is a NumPy scalar). 0-d logits
    work. A NaN logit gives NaN; w = 0 gives 0 (also for an infinite loss).
"""


@_quiet
def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None, reduction="mean"):
    return _bce(logits, target, weight, pos_weight, reduction, "loss")


@_quiet
def binary_cross_entropy_with_logits_grad(logits, target, *, weight=None, pos_weight=None,
                                          reduction="mean"):
    return _bce(logits, target, weight, pos_weight, reduction, "grad")


@_quiet
def binary_cross_entropy_with_logits_with_grad(logits, target, *, weight=None, pos_weight=None,
                                               reduction="mean"):
    return _bce(logits, target, weight, pos_weight, reduction, "both")


binary_cross_entropy_with_logits.__doc__ = "Binary cross entropy of logits." + _BCE_DOC
binary_cross_entropy_with_logits_grad.__doc__ = (
    "Gradient of the binary cross entropy with respect to the logits." + _BCE_DOC)
binary_cross_entropy_with_logits_with_grad.__doc__ = (
    "(loss, gradient) of the binary cross entropy in one pass." + _BCE_DOC)


# --------------------------------------------------------------------------- FC layer + loss
def _linear_dtype(*arrays):
    """The promoted floating dtype of x, W and b (integers and booleans: float64)."""
    dtype = np.result_type(*(a.dtype for a in arrays))
    return dtype if dtype.type in _FLOATS else np.dtype(np.float64)


#: the tiles (every call with finite logits) compute the logits of all B rows for a tile of
#: classes of about this many bytes of float64 at a time (twice: two passes). (Measured
#: on the loaded 2-core machine at B = 4096: tiles of 1536 classes ran 28.5-40 s where
#: 1024 ran 30-51 s, the whole logits 28-32 s: fewer, longer products lose less to the
#: other processes; the peak rises from 105 to 128 MB.)
LINEAR_TILE_BYTES = 48 * 2 ** 20
#: ... and at least this many classes per tile: narrower products run BLAS far below its
#: speed (so beyond B = LINEAR_TILE_BYTES / (8 * LINEAR_MIN_TILE) = 32768 rows a tile
#: holds more than LINEAR_TILE_BYTES)
LINEAR_MIN_TILE = 128
#: the per-row statistics of pass 1 are kept for at most this many tiles; then they are
#: combined into one column (the catalogue's ``lse_split_classes``) and pass 1 goes on
LINEAR_STAT_TILES = 64
#: the row path (calls with a NaN or infinite logit) takes rows in
#: chunks of this many bytes of float64 logits: with their gradient, about 2 x 64 MB
#: live, plus a float64 copy of W and a float64 dW (Smaller chunks cost time: BLAS
#: packs all of W for each chunk's products.)
LINEAR_CHUNK_BYTES = 64 * 2 ** 20


@_quiet
def linear_cross_entropy(x, W, b, target, *, weight=None, ignore_index=IGNORE_INDEX, label_smoothing=0.0,
                         reduction="mean", chunk=None):
    """The fully connected layer and the softmax loss in one call: ``(loss, dx, dW, db)``.

    logits = x W^T + b as ``torch.nn.functional.linear``: x of shape (..., N), W (T, N)
    as in the source material, b (T,) (or None for no bias); the loss is
    :func:`cross_entropy` of the logits (classes last) with the same ``target`` (shape
    x.shape[:-1] for class indices) and options, PyTorch's defaults included. The
    gradients are those of the loss returned ("none": of the sum of the per-sample
    losses, as autograd gives), through the FC derivations of the catalogue: with
    G = dL/d logits (rows S - y', scaled as the options say), dW = G^T x,
    db = sum over the batch of G, dx = G W. Every result takes the promoted dtype of
    x, W and b (computed in float64, rounded once).

    The whole B x T logits are never held. Every call with finite logits (class
    indices or probabilities, any option) goes in tiles of ``chunk`` classes (default:
    as many as make :data:`LINEAR_TILE_BYTES` of float64 logits for the B rows, at least
    :data:`LINEAR_MIN_TILE`), in two passes over the tiles, each computing the tile's
    logits x W_tile^T + b_tile in float64 (W widened one tile at a time;
    :mod:`numeric._tiles`):

    1. per row and tile, the tile's largest logit m_t and the sum s_t of e^(a_j - m_t)
       over its classes other than its own argmax (and the target), the sums of
       u_j (m_t - a_j) and of u_j (probability targets, smoothing), the target logit a_c.
       Combined, with m = max_t m_t (``lse_split_classes``): Z e^-m = 1 + R with
       R = s_t* + sum_{t != t*} e^(m_t - m) (1 + s_t) (+ e^(a_c - m)), a sum of small
       terms, and the loss sigma log1p(R) + sum_j u_j (m - a_j)
       (``loss_split_true_class``): losses far below 1e-16 keep their digits, and none
       is negative;
    2. the tile's G = e^a F - rho u with F = e^-m sigma rho / Z' rounded once (sigma =
       sum_j u_j, rho the reduction's factor), S_c - 1 as -sum_{j != c} e^(a_j - m) / Z'
       where c is the argmax (``true_class_complement_shifted``); then dW's rows of the
       tile = G_tile^T x (``fc_grad_W_class_tile``), rounded once into the result, db's
       entries, and dx += G_tile W_tile into a float64 B x N sum (``fc_batch_grad_x_tiles``).

    Exponentials are e^a e^-m (each factor rounded once) in rows whose logits lie in
    [-708, 708], and e^(a - m) with a - m carried with its rounding error (TwoSum)
    elsewhere, so finite logits of any size stay on the tiles. Where a weight above 1
    meets a number that would be subnormal (S_j, or R past a gap of 708), the
    weight's power of two goes into the exponent first.

    Memory beyond the inputs and outputs: the tile's logits, the tile of W and of dW in
    float64, float64 copies of x and of dx (and one product G_tile W_tile), per-row
    statistics of at most :data:`LINEAR_STAT_TILES` tiles, and a few cache blocks of
    temporaries (probability targets are checked and read a block of a tile at a time:
    no float64 copy of them). At B = 4096, N = 768, T = 50257 (float32): 136 MB for
    class indices, 142 MB with a logit beyond 708, 145 MB for probability targets (8.7,
    9.0 and 9.2 % of the 1.6 GB of float64 logits, which the whole computation at once
    held 2.3 times over; benchmarks/linear_memory.py).

    NaN, +inf, a row of only -inf, or -inf with smoothing or probability targets take
    the row path instead: rows in chunks of :data:`LINEAR_CHUNK_BYTES` of float64
    logits through :func:`cross_entropy_with_grad`, dW and db accumulated over the
    chunks (``fc_batch_grad_W_chunks``), with a float64 copy of W and a float64 dW
    (more memory: those calls' results are NaN or infinite where the input is;
    ``chunk`` does not apply there). Non-finite logits behave as in
    :func:`cross_entropy`.

    Accuracy (tests/test_linear_chunks.py, tests/test_tiles_accuracy.py, against
    mpmath from the exact inputs). From given float64 logits (W = I, b = 0: the logits
    are x exactly and dx is G) the loss is within 4 ULP, also far below 1e-16 (down to
    1e-300), and each entry of G within 4 ULP of max(S_j sigma, u_j) rho (for plain
    class indices: of itself) on every option, weights up to 1e300 included. The
    logits themselves are BLAS's float64 sums of the products x_n W_jn: each is within
    gamma_N sum_n |x_n W_jn| (gamma_N = N 2^-53 / (1 - N 2^-53)) of the exact logit,
    and the loss, whose derivative in each row has 1-norm at most 2 sigma, moves by at
    most twice that per unit of target mass. So with float32 inputs (every product
    exact in float64) the results are within 1 ULP of float32 of the exact values
    *when the dot products do not cancel*; in general the loss is within 1 ULP of
    float32 plus 2 gamma_N max_j sum_n |x_n W_jn| per row (per unit of sigma) of the
    exact loss -- logits that cancel (x_n W_jn of 1e17 summing to 1) can be off by
    more than 1 even in float64. The per-row results agree with the row path's to a
    few ULP, not bit for bit: another formula for the same math, and the sums of dW,
    db and dx in another order.

    ``chunk``: classes per tile (an int >= 1) or None for the default.

    Examples
    --------
    >>> import numpy as np, numeric
    >>> x, W, b = np.ones((2, 3)), np.zeros((4, 3)), np.zeros(4)
    >>> loss, dx, dW, db = numeric.linear_cross_entropy(x, W, b, np.array([0, 3]))
    >>> float(loss)  # all logits 0: log 4
    1.3862943611198906
    """
    return _linear(x, W, b, target, weight, ignore_index, label_smoothing, reduction, chunk)


def _linear(x, W, b, target, weight, ignore_index, label_smoothing, reduction, chunk, whole=False):
    """:func:`linear_cross_entropy`; with ``whole``, by the row path in one chunk of all
    rows (the whole logits at once: the computation the tiles replace, which
    benchmarks/run.py times against them)."""
    xs, Ws, bs, dtype = _linear_inputs(x, W, b)
    classes, lead = Ws.shape[0], xs.shape[:-1]
    flat = xs.reshape(math.prod(lead), xs.shape[-1])
    rows = flat.shape[0]
    tile = _tile_classes(chunk, classes, rows)
    tgt = _linear_targets(target, lead, classes)
    # the targets and options checked once for the whole batch (errors name batch rows)
    kind, rows_tgt, ignored, weight, eps, reduction = _prepared_targets(
        tgt, (rows, classes), 1, classes, weight, ignore_index, label_smoothing, reduction, widen=False)
    counted, denom = _mean_denominator(kind, rows_tgt, ignored, weight)
    options = (weight, ignore_index, eps)
    if whole:
        out = _linear_row_chunks(flat, Ws, bs, tgt, options, reduction, counted, denom, max(rows, 1))
    else:
        if kind == "index":
            targets = _tiles.IndexTargets(rows_tgt[:, 0], weight, eps, classes)
        else:
            targets = _tiles.SoftTargets(rows_tgt, functools.partial(_soft_tile, eps=eps, classes=classes,
                                                                     weight=weight))
        out = _tiles.linear_tiles(flat, Ws, bs, targets, reduction, counted, denom, tile, dtype,
                                  LINEAR_STAT_TILES)
    if out is None:  # a non-finite logit
        out = _linear_rows(flat, Ws, bs, tgt, options, reduction, counted, denom, dtype)
    losses, dx, dW, db = out
    if reduction == "none":
        loss = _finish(losses.reshape(lead), dtype)
    else:
        total = float(np.sum(losses))
        loss = _scalar(total if reduction == "sum" else (total / denom if denom else np.nan), dtype)
    return loss, _finish(dx.reshape(xs.shape), dtype), _finish(dW, dtype), _finish(db, dtype)


def _soft_tile(y, first, last, eps, classes, weight):
    """u = w ((1 - eps) y + eps / T) for a block of probability targets y of classes
    first..last-1, in float64 (rounded once from its exact value)."""
    y = y.astype(np.float64)
    if not eps and weight is None:
        return y
    return _smoothed_weighted(y, eps, classes, None if weight is None else weight[first:last])


def _linear_inputs(x, W, b):
    """(x as float64, W as it is (a float dtype, else float64), b as float64 (zeros for
    None), the result dtype), validated: x (..., N), W (T, N), b (T,)."""
    arrays = [_array(x, "x"), _array(W, "W")] + ([] if b is None else [_array(b, "b")])
    dtype = _linear_dtype(*arrays)
    xs, _ = _logits_array(x, "x")
    Ws, _ = _logits_array(W, "W", keep=True)  # widened a tile at a time
    if xs.ndim < 1 or Ws.ndim != 2:
        raise ValueError(f"x must be (..., N) and W (T, N); got x {xs.shape}, W {Ws.shape}")
    if Ws.shape[0] == 0:
        raise ValueError(f"W has no classes (shape {Ws.shape}, T = 0): softmax needs at least one class")
    if xs.shape[-1] != Ws.shape[1]:
        raise ValueError(f"x has {xs.shape[-1]} features but W has {Ws.shape[1]} columns "
                         f"(x {xs.shape}, W {Ws.shape}; W is T x N)")
    if b is None:
        return xs, Ws, np.zeros(Ws.shape[0]), dtype
    bs, _ = _logits_array(b, "b")
    if bs.shape != (Ws.shape[0],):
        raise ValueError(f"b must have shape ({Ws.shape[0]},), one bias per class; got {bs.shape}")
    return xs, Ws, bs, dtype


def _tile_classes(chunk, classes, rows):
    """Classes per tile: ``chunk`` validated, or (None) as many as make
    :data:`LINEAR_TILE_BYTES` of float64 logits for ``rows`` rows, at least
    :data:`LINEAR_MIN_TILE`; never more than ``classes`` (nor fewer than 1)."""
    if chunk is None:
        chunk = max(LINEAR_MIN_TILE, LINEAR_TILE_BYTES // (8 * max(rows, 1)))
    elif isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, numbers.Integral):
        raise TypeError(f"chunk must be a positive int (classes per tile) or None; got {chunk!r}")
    elif chunk < 1:
        raise ValueError(f"chunk must be at least 1 class per tile; got {chunk}")
    return max(1, min(int(chunk), classes))


def _linear_targets(target, lead, classes):
    """The targets with the batch axes of x flattened into one (class indices: rows;
    probabilities: rows x T); any other shape is left for the checks to name."""
    tgt = _array(target, "target")
    if tgt.dtype.kind in "iu" and tgt.shape == lead:
        return tgt.reshape(-1)
    if tgt.dtype.kind == "f" and tgt.shape == lead + (classes,):
        return tgt.reshape(-1, classes)
    return tgt


# ------------------------------------------------- the row path (probability targets)
def _linear_rows(flat, Ws, bs, tgt, options, reduction, counted, denom, dtype):
    """(per-row losses, dx, dW, db) in chunks of rows holding :data:`LINEAR_CHUNK_BYTES`
    of float64 logits each (at least one row): :func:`cross_entropy_with_grad` of each
    chunk's logits, dW and db accumulated (``fc_batch_grad_W_chunks``)."""
    return _linear_row_chunks(flat, Ws, bs, tgt, options, reduction, counted, denom,
                              max(1, LINEAR_CHUNK_BYTES // (8 * max(Ws.shape[0], 1))))


def _linear_row_chunks(flat, Ws, bs, tgt, options, reduction, counted, denom, chunk):
    """The row path with ``chunk`` rows per chunk (``chunk`` = B: the whole logits at
    once, the computation the tiled path replaces; benchmarks/run.py times it)."""
    Ws = Ws.astype(np.float64, copy=False)
    rows, classes = flat.shape[0], Ws.shape[0]
    losses = np.empty(rows)
    dx = np.empty(flat.shape)
    dW = np.zeros(Ws.shape)
    db = np.zeros(classes)
    # one buffer for every chunk's G^T x, a tile of classes at a time (a new T x N
    # array per chunk cost page faults; a whole T x N one, as much memory as dW)
    tile = max(1, LINEAR_CHUNK_BYTES // (8 * max(Ws.shape[1], 1)))
    product = np.empty((min(tile, classes), Ws.shape[1])) if rows > chunk else None
    for start in range(0, rows, chunk):
        part = slice(start, min(start + chunk, rows))
        losses[part], grad = _chunk_loss_and_gradient(
            flat[part], Ws, bs, tgt[part], options, reduction, denom, counted[part])
        _accumulate_chunk(grad, flat[part], Ws, dW, db, dx[part], product)
    return losses, dx, dW, db


def _chunk_loss_and_gradient(x_part, Ws, bs, tgt_part, options, reduction, denom, counted):
    """(per-row losses, G = dL/d logits in float64) for one chunk of rows: the logits
    x W^T + b and :func:`cross_entropy_with_grad` of them, G scaled for "mean" as the
    whole batch's loss is (by its denominator; NaN in counted rows when it is 0)."""
    weight, ignore_index, eps = options
    logits = x_part @ Ws.T
    logits += bs
    losses, grad = _cross_entropy(logits, tgt_part, -1, "both", weight, ignore_index, eps, "none")
    del logits
    grad = np.asarray(grad, dtype=np.float64)
    if reduction == "mean":
        if denom:
            grad /= denom
        else:  # d(0/0): NaN in counted rows, 0 in ignored ones (as unchunked)
            grad[counted > 0] = np.nan
    return losses, grad


def _accumulate_chunk(grad, x_part, Ws, dW, db, dx_part, product):
    """dW += G^T x, db += the column sums of G (``fc_batch_grad_W_chunks``) and the
    chunk's rows of dx = G W. ``product`` is the buffer for G^T x, filled for one
    tile of classes (its rows) at a time (None: the one chunk is the whole batch,
    written into dW directly)."""
    if product is None:
        np.matmul(grad.T, x_part, out=dW)
    else:
        tile = product.shape[0]
        for first in range(0, dW.shape[0], tile):
            last = min(first + tile, dW.shape[0])
            part = product[:last - first]
            np.matmul(grad[:, first:last].T, x_part, out=part)
            dW[first:last] += part
    db += grad.sum(axis=0)
    # (W^T G^T)^T, not G W: for few rows and many classes OpenBLAS takes G W (K = T)
    # several times slower (measured 94 s against 17 s per 4096 rows at T = 50257)
    dx_part[...] = (Ws.T @ grad.T).T
