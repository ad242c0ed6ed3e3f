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

import math
import operator

import numpy as np

from . import _blocks, _kernels

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad",
           "cross_entropy_with_grad", "binary_cross_entropy_with_logits",
           "binary_cross_entropy_with_logits_grad", "binary_cross_entropy_with_logits_with_grad",
           "linear_cross_entropy"]

_FLOATS = (np.float16, np.float32, np.float64)


# --------------------------------------------------------------------------- input checks
def _logits_array(logits, name="logits", keep=False):
    """(float64 array, result dtype); raises TypeError for non-numeric data. With
    ``keep``, float16/float32 arrays stay as they are (the row kernels widen them one
    block at a time)."""
    arr = np.asarray(logits)
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
           "nll_soft": (False,), "nll_soft_grad": (True,), "nll_soft_with_grad": (False, True),
           "nll_weighted_grad": (True,),
           "nll_weighted_with_grad": (False, True)}


def _run(kernel, rows, *extra, special=None, dtype=np.float64):
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
    results = _blocks.run(kernel, rows, extra, full, dtype)
    if posinf.any() or neginf.any():
        special(np.flatnonzero(neginf), np.flatnonzero(posinf), *results)
    results = [r[:, 0] if not f else r for r, f in zip(results, full)]
    return results[0] if len(results) == 1 else tuple(results)


def _finish(values, dtype):
    return values.astype(dtype, copy=False) if values.dtype != dtype else values


# --------------------------------------------------------------------------- softmax family
def _axiswise(logits, axis, kernel, fill, reduce, posinf_fill=None):
    arr, dtype = _logits_array(logits, keep=True)
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
    ("weighted", "loss"): "nll_soft", ("weighted", "grad"): "nll_weighted_grad",
    ("weighted", "both"): "nll_weighted_with_grad",
}


_REDUCTIONS = ("none", "mean", "sum")


def _options(weight, ignore_index, label_smoothing, reduction, classes, kind):
    """Validated (weight or None, ignore_index or None, epsilon, reduction)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}; got {reduction!r}")
    try:
        eps = float(label_smoothing)
    except (TypeError, ValueError):
        raise TypeError(f"label_smoothing must be a number in [0, 1]; got {label_smoothing!r}") from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}")
    if weight is not None:
        wts = np.asarray(weight)
        if wts.dtype.kind not in "biuf":
            raise TypeError(f"weight must be numeric; got dtype {wts.dtype}")
        wts = wts.astype(np.float64)
        if wts.shape != (classes,):
            raise ValueError(f"weight must have one entry per class, shape ({classes},); got {wts.shape}")
        if not np.isfinite(wts).all() or (wts < 0).any():
            bad = wts[~np.isfinite(wts) | (wts < 0)][0]
            raise ValueError(f"weight must be finite and non-negative; got {bad} "
                             f"at class {int(np.flatnonzero(wts == bad)[0])}")
        weight = wts
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"ignore_index must be an int or None; got {ignore_index!r}")
        if kind == "soft":
            raise ValueError("ignore_index applies to integer class targets only, "
                             "not to probability targets (as in PyTorch)")
        ignore_index = int(ignore_index)
    return weight, ignore_index, eps, reduction


def _cross_entropy(logits, target, axis, want, weight=None, ignore_index=None,
                   label_smoothing=0.0, reduction="none"):
    arr, dtype = _logits_array(logits, keep=True)
    if arr.ndim == 0:
        raise ValueError("logits must have a class axis; got a 0-d array")
    ax = _normalize_axes(axis, arr.ndim, allow_multiple=False)[0]
    rows, batch_shape, classes = _to_rows(arr, (ax,))
    tgt_in = np.asarray(target)
    kind = "index" if tgt_in.dtype.kind in "iu" else "soft"
    weight, ignore_index, eps, reduction = _options(weight, ignore_index, label_smoothing,
                                                    reduction, classes, kind)
    ignored = None
    if kind == "index" and ignore_index is not None:
        ignored = (tgt_in == ignore_index).reshape(-1)
        if ignored.any():
            tgt_in = np.where(tgt_in == ignore_index, 0, tgt_in)
    kind, tgt = _targets(tgt_in, arr.shape, ax, classes)

    # what the kernels see: integer targets, probabilities, or weighted u = w y'
    plain_index = kind == "index" and eps == 0.0
    if plain_index or (kind == "soft" and weight is None and eps == 0.0):
        family, extra = kind, tgt
    else:
        dense = tgt if kind == "soft" else _one_hot(tgt, classes)
        if eps:
            dense = (1.0 - eps) * dense + eps / classes
        extra = dense * weight if weight is not None else dense
        family = "weighted"

    def special(idx, _posinf, *outs):  # rows of only -inf: loss +inf, gradient -y
        if want in ("loss", "both"):
            outs[0][idx] = np.inf
        if want in ("grad", "both"):
            grad = outs[-1]
            if family == "index":
                grad[idx] = 0.0
                grad[idx, extra[idx, 0]] = -1.0
            else:
                grad[idx] = -extra[idx]

    need = "both" if (want != "grad" and reduction != "none") else want
    # results are rounded to the caller's dtype in the kernels, unless more arithmetic
    # follows here (weights, ignored rows, reductions): then at the end
    post = (plain_index and weight is not None) or (ignored is not None and ignored.any()) \
        or reduction != "none"
    results = _run(_KERNELS[family, need], rows, extra, special=special,
                   dtype=np.float64 if post else dtype)
    results = results if isinstance(results, tuple) else (results,)
    names = ("loss", "grad") if need == "both" else (need,)
    got = dict(zip(names, results))
    loss, grad = got.get("loss"), got.get("grad")
    row_scale = None  # per-row factor: w_c for weighted integer targets
    if plain_index and weight is not None:
        row_scale = weight[tgt[:, 0]]
    if ignored is not None and ignored.any():
        row_scale = (np.ones(rows.shape[0]) if row_scale is None else row_scale.copy())
        row_scale[ignored] = 0.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if row_scale is not None:
            if loss is not None:
                loss = _zero_times(row_scale, loss)
            if grad is not None:
                grad = _zero_times(row_scale[:, None], grad)
        if reduction != "none":
            if kind == "index":
                counted = np.ones(rows.shape[0]) if ignored is None else (~ignored).astype(np.float64)
                denom = float(np.sum(counted * (weight[tgt[:, 0]] if weight is not None else 1.0)))
            else:
                denom = float(rows.shape[0])
            if loss is not None:
                total = float(np.sum(loss))
                loss = np.asarray(total if reduction == "sum" else (total / denom if denom else np.nan))
            if grad is not None and reduction == "mean":
                grad = grad / denom if denom else _zero_times(grad, np.nan)
    outs = []
    if want in ("loss", "both"):
        outs.append(_finish(loss.reshape(batch_shape) if reduction == "none" else loss, dtype))
    if want in ("grad", "both"):
        outs.append(_finish(_from_rows(grad, arr.shape, (ax,), batch_shape), dtype))
    return tuple(outs) if want == "both" else outs[0]


def _one_hot(column, classes):
    out = np.zeros((column.shape[0], classes))
    out[np.arange(column.shape[0]), column[:, 0]] = 1.0
    return out


def _zero_times(factor, values):
    """factor * values with 0 wherever factor is 0 (an ignored or zero-weight sample
    contributes 0 even when its loss is inf)."""
    out = np.multiply(factor, values)
    np.copyto(out, 0.0, where=np.broadcast_to(np.asarray(factor) == 0, out.shape))
    return out


_OPTIONS_DOC = """
    Options, with PyTorch's semantics (``torch.nn.functional.cross_entropy``):

    - ``weight``: one non-negative weight per class, w. A sample's loss becomes
      -sum_j w_j y_j log S_j (w_c L for an integer target c).
    - ``ignore_index``: integer targets equal to it contribute 0 to the loss, get a zero
      gradient and do not count in the mean. Not for probability targets.
    - ``label_smoothing`` = eps in [0, 1]: y is replaced by (1 - eps) y + eps / T, and the
      gradient is S sum_j u_j - u with u = w y' (S - y' without weights).
    - ``reduction``: "none" (default here; PyTorch's default is "mean") keeps one loss per
      sample; "sum" adds them; "mean" divides the sum by the summed weights w_c of the
      counted integer targets (their number without weights), or by the number of samples
      for probability targets. The gradients are those of the reduced loss ("none": of
      the sum of the per-sample losses). A mean over nothing is NaN, as in PyTorch.
"""


def cross_entropy(logits, target, *, weight=None, ignore_index=None, label_smoothing=0.0,
                  reduction="none", axis=-1):
    return _cross_entropy(logits, target, axis, "loss", weight, ignore_index, label_smoothing, reduction)


def cross_entropy_grad(logits, target, *, weight=None, ignore_index=None, label_smoothing=0.0,
                       reduction="none", axis=-1):
    return _cross_entropy(logits, target, axis, "grad", weight, ignore_index, label_smoothing, reduction)


def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=None, label_smoothing=0.0,
                            reduction="none", axis=-1):
    return _cross_entropy(logits, target, axis, "both", weight, ignore_index, label_smoothing, reduction)


cross_entropy.__doc__ = """Softmax cross entropy L = -sum_j y_j log S_j per sample (the class axis removed).

    ``target`` is either integer class indices c with the logits' shape minus the class
    axis (then L = (m - a_c) + log1p(s'), within 4 ULP, including losses far below
    1e-16 where libraries return exactly 0), or probabilities with the logits' shape
    (non-negative, each row summing to 1 within sqrt(eps) of their dtype; then
    L = sum_j y_j (-log S_j), with 0 * inf = 0 for masked classes of zero target).

    Errors: a label outside [0, T), a target shape that does not match, negative or
    non-normalized soft targets, an empty class axis, non-numeric data, and bad options.
""" + _OPTIONS_DOC

cross_entropy_grad.__doc__ = """dL/d logits, the logits' shape (see :func:`cross_entropy` for ``target``).

    dL/da = S - y. With integer targets each component is within 4 ULP; at the true
    class S_c - 1 is computed as -sum_{j != c} S_j when c is the argmax, so S_c ~ 1
    loses nothing. With probability targets the error is within 4 ULP of max(S_j, y_j).
""" + _OPTIONS_DOC

cross_entropy_with_grad.__doc__ = """(cross_entropy, cross_entropy_grad) from one fused pass.
""" + _OPTIONS_DOC


# --------------------------------------------------------------------------- binary
def _bce(logits, target, pos_weight, reduction, want):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}; got {reduction!r}")
    z, dtype = _logits_array(logits)
    y = np.asarray(target)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"target must be numeric probabilities in [0, 1]; got dtype {y.dtype}")
    y = y.astype(np.float64)
    if y.shape != z.shape:
        raise ValueError(f"target must have the logits' shape {z.shape}; got {y.shape}")
    bad = ~((y >= 0) & (y <= 1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"binary targets must be in [0, 1]; got {y[where]} at position {where}")
    if pos_weight is None:
        pw = np.float64(1.0)
    else:
        pw = np.asarray(pos_weight)
        if pw.dtype.kind not in "biuf":
            raise TypeError(f"pos_weight must be numeric; got dtype {pw.dtype}")
        pw = pw.astype(np.float64)
        if not np.isfinite(pw).all() or (pw < 0).any():
            raise ValueError(f"pos_weight must be finite and non-negative; got "
                             f"{pw[~np.isfinite(pw) | (pw < 0)].flat[0]}")
        try:
            np.broadcast_shapes(pw.shape, z.shape)
        except ValueError:
            raise ValueError(f"pos_weight of shape {pw.shape} does not broadcast against "
                             f"the logits' shape {z.shape} (use one weight per class: the last axis)") from None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if want == "grad" and reduction == "none":
            loss, grad = None, _kernels.bce_grad(z, y, pw)
        elif want == "loss":
            loss, grad = _kernels.bce(z, y, pw), None
        else:
            loss, grad = _kernels.bce_with_grad(z, y, pw)
        if reduction != "none":
            total = float(np.sum(loss))
            if reduction == "mean":
                count = z.size
                loss = np.asarray(total / count if count else np.nan)
                grad = grad / count if (grad is not None and count) else grad
            else:
                loss = np.asarray(total)
    outs = []
    if want in ("loss", "both"):
        outs.append(_finish(np.asarray(loss), dtype))
    if want in ("grad", "both"):
        outs.append(_finish(np.broadcast_to(grad, z.shape).copy() if grad.shape != z.shape else grad, dtype))
    return tuple(outs) if want == "both" else outs[0]


_BCE_DOC = """

    L = p_w y softplus(-z) + (1 - y) softplus(z) elementwise, which is
    -(p_w y log sigma(z) + (1 - y) log(1 - sigma(z))) (PyTorch's
    ``binary_cross_entropy_with_logits``) and, for p_w = 1, the two-class softmax loss of
    the logits (z, 0). softplus(x) = max(x, 0) + log1p(e^{-|x|}): accurate for |z| up to
    1e308 and for losses far below 1e-16. dL/dz = (1 - y) sigma(z) - p_w y sigma(-z)
    (sigma(z) - y for p_w = 1), formed without cancellation at y in {0, 1}.

    ``target`` y has the logits' shape, values in [0, 1]; ``pos_weight`` p_w broadcasts
    against the logits (one weight per class: the last axis); ``reduction`` is "none"
    (default), "sum" or "mean" (over all elements), and the gradient is that of the
    reduced loss.
"""


def binary_cross_entropy_with_logits(logits, target, *, pos_weight=None, reduction="none"):
    return _bce(logits, target, pos_weight, reduction, "loss")


def binary_cross_entropy_with_logits_grad(logits, target, *, pos_weight=None, reduction="none"):
    return _bce(logits, target, pos_weight, reduction, "grad")


def binary_cross_entropy_with_logits_with_grad(logits, target, *, pos_weight=None, reduction="none"):
    return _bce(logits, target, pos_weight, reduction, "both")


binary_cross_entropy_with_logits.__doc__ = "Binary cross entropy of logits." + _BCE_DOC
binary_cross_entropy_with_logits_grad.__doc__ = (
    "Gradient of the binary cross entropy with respect to the logits." + _BCE_DOC)
binary_cross_entropy_with_logits_with_grad.__doc__ = (
    "(loss, gradient) of the binary cross entropy in one pass." + _BCE_DOC)


# --------------------------------------------------------------------------- FC layer + loss
def linear_cross_entropy(x, W, b, target, *, weight=None, ignore_index=None, label_smoothing=0.0,
                         reduction="none"):
    """The fully connected layer and the softmax loss in one call: ``(loss, dx, dW, db)``.

    logits = x W^T + b with x of shape (B, N), W (T, N) as in the source material, b (T,)
    (or None for no bias); the loss is :func:`cross_entropy` of the logits with the same
    ``target`` and options. The gradients are those of the reduced loss ("none": of the
    sum of the per-sample losses, as autograd gives), through the FC derivations of the
    catalogue: with G = dL/d logits (rows S - y', scaled as the options say),
    dW = G^T x, db = sum over the batch of G, dx = G W.
    """
    xs, dtype = _logits_array(x, "x")
    Ws, _ = _logits_array(W, "W")
    if xs.ndim != 2 or Ws.ndim != 2:
        raise ValueError(f"x must be (B, N) and W (T, N); got x {xs.shape}, W {Ws.shape}")
    if xs.shape[1] != Ws.shape[1]:
        raise ValueError(f"x has {xs.shape[1]} features but W has {Ws.shape[1]} columns "
                         f"(x {xs.shape}, W {Ws.shape}; W is T x N)")
    if b is None:
        bs = np.zeros(Ws.shape[0])
    else:
        bs, _ = _logits_array(b, "b")
        if bs.shape != (Ws.shape[0],):
            raise ValueError(f"b must have shape ({Ws.shape[0]},), one bias per class; got {bs.shape}")
    logits = xs @ Ws.T + bs
    loss, grad = _cross_entropy(logits, target, -1, "both", weight, ignore_index, label_smoothing,
                                reduction)
    grad = np.asarray(grad, dtype=np.float64)
    dW = grad.T @ xs
    db = grad.sum(axis=0)
    dx = grad @ Ws
    return (_finish(np.asarray(loss, dtype=np.float64), dtype), _finish(dx, dtype), _finish(dW, dtype),
            _finish(db, dtype))
