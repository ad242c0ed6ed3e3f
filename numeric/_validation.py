"""Input checks of the public functions, with the error messages that name the bad
value and what would be accepted. Imports NumPy only."""
from __future__ import annotations

import numbers
import operator

import numpy as np

from . import _blocks

_FLOATS = (np.float16, np.float32, np.float64)


_REDUCTIONS = ("none", "mean", "sum")


#: PyTorch's default ignore_index: a target equal to it is ignored
IGNORE_INDEX = -100


# ------------------------------------------------------------ arrays and axes

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


# -------------------------------------------------------------------- targets

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


# -------------------------------------------------------------------- options

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


def _binary_inputs(logits, target, weight, pos_weight):
    """(z as float64, the result dtype, y as float64, p_w, w or None) for the binary
    cross entropy: y of the logits' shape in [0, 1], the weights as
    :func:`_broadcast_weight` (p_w 1 when not given)."""
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
    return z, dtype, y, pw, w


# ----------------------------------------------------------- the linear layer

def _linear_dtype(*arrays):
    """The promoted floating dtype of x, W and b (integers and booleans: float64)."""
    dtype = np.result_type(*(a.dtype for a in arrays))
    return dtype if dtype.type in _FLOATS else np.dtype(np.float64)


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
