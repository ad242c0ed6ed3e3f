"""Binary cross entropy of logits, as PyTorch's ``binary_cross_entropy_with_logits``.
Imports NumPy only."""
from __future__ import annotations

import numpy as np

from . import _kernels
from ._exact import _zero_times
from ._rows import _finish, _quiet, _scalar
from ._validation import _array, _broadcast_weight, _check_reduction, _logits_array


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
