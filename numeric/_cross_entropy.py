"""Softmax cross entropy and its gradient: class indices or probabilities, with
PyTorch's options (weight, ignore_index, label_smoothing, reduction). Imports NumPy only."""
from __future__ import annotations

import functools
import math

import numpy as np

from . import _blocks, _kernels, _tiles
from ._exact import _product_quotient, _smoothed_weighted, _zero_times
from ._rows import _finish, _from_rows, _quiet, _run, _scalar, _to_rows
from ._validation import (
    _FLOATS,
    _REDUCTIONS,
    IGNORE_INDEX,
    _array,
    _logits_array,
    _normalize_axes,
    _prepared_targets,
    _soft_tolerance,
)

_KERNELS = {
    ("index", "loss"): _kernels.nll_index, ("index", "grad"): _kernels.nll_index_grad,
    ("index", "both"): _kernels.nll_index_with_grad,
    ("soft", "loss"): _kernels.nll_soft, ("soft", "grad"): _kernels.nll_soft_grad,
    ("soft", "both"): _kernels.nll_soft_with_grad,
    ("weighted", "loss"): _kernels.nll_u, ("weighted", "grad"): _kernels.nll_u_grad,
    ("weighted", "both"): _kernels.nll_u_with_grad,
}


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


def _compute(logits, target, axis, want, weight, ignore_index, label_smoothing, reduction):
    """The cross entropy functions' one body: ``want`` is "loss", "grad" or "both"."""
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
    loss, grad = _scaled_rows(got.get("loss"), got.get("grad"), kind == "index" and eps == 0.0, tgt, weight,
                              ignored, denom if fold and family == "index" else None)
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
    return _outputs(want, loss, grad, reduction, dtype, (arr.shape, ax, batch_shape))


def _scaled_rows(loss, grad, plain_index, tgt, weight, ignored, divisor):
    """The per-row factor applied: w_c for weighted plain class indices, 0 in ignored
    rows (0 * inf = 0, NaN stays NaN); with ``divisor`` (the mean folded in), the
    gradient's G w_c / divisor rounded about once."""
    row_scale = None
    if plain_index and weight is not None:
        row_scale = weight[tgt[:, 0]]
    if ignored is not None:
        row_scale = (np.ones(tgt.shape[0]) if row_scale is None else row_scale.copy())
        row_scale[ignored] = 0.0
    if row_scale is not None:
        if loss is not None:
            loss = _zero_times(row_scale, loss)
        if grad is not None:
            grad = (_product_quotient(grad, row_scale[:, None], divisor) if divisor is not None
                    else _zero_times(row_scale[:, None], grad))
    return loss, grad


def _outputs(want, loss, grad, reduction, dtype, layout):
    """The results in the caller's shapes and dtype: loss, grad or (loss, grad)."""
    shape, ax, batch_shape = layout
    outs = []
    if want in ("loss", "both"):
        outs.append(_finish(loss.reshape(batch_shape), dtype) if reduction == "none" else loss)
    if want in ("grad", "both"):
        outs.append(_finish(_from_rows(grad, shape, (ax,), batch_shape), dtype))
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


def _soft_tile(y, first, last, eps, classes, weight):
    """u = w ((1 - eps) y + eps / T) for a block of probability targets y of classes
    first..last-1, in float64 (rounded once from its exact value)."""
    y = y.astype(np.float64)
    if not eps and weight is None:
        return y
    return _smoothed_weighted(y, eps, classes, None if weight is None else weight[first:last])


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
    return _compute(logits, target, axis, "loss", weight, ignore_index, label_smoothing, reduction)


@_quiet
def cross_entropy_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX, label_smoothing=0.0,
                       reduction="mean", axis=-1):
    return _compute(logits, target, axis, "grad", weight, ignore_index, label_smoothing, reduction)


@_quiet
def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX,
                            label_smoothing=0.0, reduction="mean", axis=-1):
    return _compute(logits, target, axis, "both", weight, ignore_index, label_smoothing, reduction)


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
