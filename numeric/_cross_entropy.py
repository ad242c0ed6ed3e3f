"""Softmax cross entropy and its gradient: class indices or probabilities, with
PyTorch's options (weight, ignore_index, label_smoothing, reduction). Imports NumPy only."""
from __future__ import annotations

import functools
import math

import numpy as np

from . import _blocks, _kernels, _tiles
from ._exact import _product_quotient, _smoothed_weighted, _zero_times
from ._rows import _docstring, _finish, _from_rows, _quiet, _run, _scalar, _to_rows
from ._typing import ArrayLike, Loss, NDArray, Reduction
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


_LOGITS_TARGET = """
    logits : array_like
        Real numbers a (float16/32/64; integers and booleans taken as float64), with the
        classes along ``axis``.
    target : array_like
        Either integer class indices c, of the logits' shape without the class axis, or
        float probabilities y of the logits' shape (non-negative, each summing to 1
        within sqrt(eps) of their dtype).
"""
_OPTIONS = """
    weight : array_like, optional
        One finite, non-negative weight w_j per class: a sample's loss becomes
        -sum_j w_j y_j log S_j (w_c L for a class index c).
    ignore_index : int or None, default -100
        Class indices equal to it add 0 to the loss, get a zero gradient and do not
        count in the mean (None ignores nothing). Probability targets accept only the
        default.
    label_smoothing : float in [0, 1], default 0.0
        eps: y becomes y' = (1 - eps) y + eps / T.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none" keeps one loss per sample, "sum" adds them, "mean" divides the sum by
        the summed w_c of the counted class indices (their number without weights),
        or by the number of samples for probabilities. A mean over nothing is NaN.
    axis : int, default -1
        The class axis (PyTorch's is 1 for 3-D and wider logits: pass ``axis=1``).
"""
_RAISES = """
    ValueError
        A class index outside [0, T), a target of the wrong shape (the message gives
        the fix when it is clear: ``axis=1``, or a float dtype for one-hot targets),
        negative or non-normalized probabilities, an empty class axis, bad options.
    TypeError
        Non-numeric, complex or masked data; options of the wrong type.
"""
_NOTES = """
    With u = w y' (y' the smoothed target) the loss of a row is
    L = sum_j u_j (-log S_j) and its gradient dL/da = S sum_j u_j - u: the derivative
    of the loss computed, also where y sums to 1 only within the tolerance. For class
    indices without options L = (m - a_c) + log1p(s') (m, s' as in :func:`softmax`),
    within 4 ULP, also for losses far below 1e-16 (where libraries return 0), and
    dL/da = S - e_c with S_c - 1 formed as -sum_{j != c} S_j when c is the argmax.
    Gradients are those of the loss returned ("none": of the sum of the losses); a mean
    over nothing has a NaN gradient in the rows that count. A NaN row gives NaN;
    0 * inf = 0 (a class or sample of zero target mass adds nothing, even where
    -log S_j = +inf).
"""
_SHARED = dict(logits_target=_LOGITS_TARGET, options=_OPTIONS, raises=_RAISES, notes=_NOTES)


@_quiet
@_docstring(**_SHARED)
def cross_entropy(logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                  ignore_index: int | None = IGNORE_INDEX, label_smoothing: float = 0.0,
                  reduction: Reduction = "mean", axis: int = -1) -> Loss:
    """Softmax cross entropy L = -sum_j y_j log S_j, as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    $logits_target
    $options

    Returns
    -------
    ndarray or NumPy scalar
        The loss in the logits' floating dtype: one per sample with
        ``reduction="none"``, else a NumPy scalar.

    Raises
    ------
    $raises

    Notes
    -----
    $notes

    Examples
    --------
    >>> import numpy as np, numeric
    >>> p = [[0.1, 0.15, 0.05, 0.6, 0.1], [0.15, 0.2, 0.4, 0.1, 0.15]]
    >>> numeric.cross_entropy(np.log(p), np.array([3, 3]), reduction="none")  # -log 0.6, -log 0.1
    array([0.51082562, 2.30258509])
    >>> numeric.cross_entropy([[1.0, 2.0, 3.0]], np.array([[0.0, 0.5, 0.5]]))  # probabilities
    np.float64(0.9076059644443804)
    >>> numeric.cross_entropy([[0.0, 745.0]], np.array([1]))  # e^-745: libraries give 0
    np.float64(5e-324)
    >>> numeric.cross_entropy([[1.0, 2.0, 3.0], [9.0, 0.0, 0.0]], np.array([2, -100]))  # one ignored
    np.float64(0.4076059644443803)
    >>> numeric.cross_entropy([[1.0, 2.0, 3.0]], np.array([3]))
    Traceback (most recent call last):
    ValueError: target 3 at position (0,) is not a class index in [0, 3)
    """
    return _compute(logits, target, axis, "loss", weight, ignore_index, label_smoothing, reduction)


@_quiet
@_docstring(**_SHARED)
def cross_entropy_grad(logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                       ignore_index: int | None = IGNORE_INDEX, label_smoothing: float = 0.0,
                       reduction: Reduction = "mean", axis: int = -1) -> NDArray[np.floating]:
    """The gradient dL/d logits of :func:`cross_entropy` (same arguments): S - y.

    Parameters
    ----------
    $logits_target
    $options

    Returns
    -------
    ndarray
        dL/da, of the logits' shape and floating dtype.

    Raises
    ------
    $raises

    Notes
    -----
    $notes

    Examples
    --------
    >>> import numpy as np, numeric
    >>> numeric.cross_entropy_grad([[1.0, 2.0, 3.0]], np.array([2]))  # softmax([1, 2, 3]) - e_2
    array([[ 0.09003057,  0.24472847, -0.33475904]])
    >>> numeric.cross_entropy_grad([[0.0, 40.0]], np.array([1]))  # S_1 - 1 = -4.2e-18, not 0
    array([[ 4.24835426e-18, -4.24835426e-18]])
    >>> numeric.cross_entropy_grad([[1.0, 2.0, 3.0]], np.array([2]), weight=[1.0, 1.0, 2.0],
    ...                            label_smoothing=0.3)  # (S sum_j u_j - u) / w_c
    array([[ 0.03102752,  0.17025562, -0.20128314]])
    >>> numeric.cross_entropy_grad([[1.0, 2.0, 3.0], [9.0, 0.0, 0.0]], np.array([2, -100]),
    ...                            reduction="sum")  # an ignored row: zero gradient
    array([[ 0.09003057,  0.24472847, -0.33475904],
           [ 0.        ,  0.        ,  0.        ]])
    """
    return _compute(logits, target, axis, "grad", weight, ignore_index, label_smoothing, reduction)


@_quiet
@_docstring(**_SHARED)
def cross_entropy_with_grad(logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                            ignore_index: int | None = IGNORE_INDEX, label_smoothing: float = 0.0,
                            reduction: Reduction = "mean",
                            axis: int = -1) -> tuple[Loss, NDArray[np.floating]]:
    """``(cross_entropy(...), cross_entropy_grad(...))`` from one fused pass.

    Parameters
    ----------
    $logits_target
    $options

    Returns
    -------
    loss : ndarray or NumPy scalar
        As :func:`cross_entropy`.
    grad : ndarray
        As :func:`cross_entropy_grad`: the gradient of exactly this loss.

    Raises
    ------
    $raises

    Notes
    -----
    $notes

    Examples
    --------
    >>> import numpy as np, numeric
    >>> a = [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    >>> loss, grad = numeric.cross_entropy_with_grad(a, np.array([2, 0]))
    >>> loss  # the mean of -log S_2 and -log S_0
    np.float64(1.4076059644443801)
    >>> grad  # (S - y) / 2
    array([[ 0.04501529,  0.12236424, -0.16737952],
           [-0.45498471,  0.12236424,  0.33262048]])
    >>> numeric.cross_entropy_with_grad(np.zeros((2, 3, 4)), np.zeros((2, 4), int))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: integer targets must have the logits' shape ... (PyTorch's (N, C, L) layout): pass axis=1
    >>> numeric.cross_entropy_with_grad(np.zeros((2, 3, 4)), np.zeros((2, 4), int), axis=1,
    ...                                 reduction="none")[0]  # log 3 each
    array([[1.09861229, 1.09861229, 1.09861229, 1.09861229],
           [1.09861229, 1.09861229, 1.09861229, 1.09861229]])
    """
    return _compute(logits, target, axis, "both", weight, ignore_index, label_smoothing, reduction)
