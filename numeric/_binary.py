"""Binary cross entropy of logits, as PyTorch's ``binary_cross_entropy_with_logits``.
Imports NumPy only."""
from __future__ import annotations

import numpy as np

from . import _kernels
from ._exact import _zero_times
from ._rows import _docstring, _finish, _quiet, _scalar
from ._typing import ArrayLike, Loss, NDArray, Reduction
from ._validation import _binary_inputs, _check_reduction


def _bce(logits, target, weight, pos_weight, reduction, want):
    """The binary cross entropy functions' one body: ``want`` is "loss", "grad" or "both"."""
    _check_reduction(reduction)
    z, dtype, y, pw, w = _binary_inputs(logits, target, weight, pos_weight)
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


_PARAMETERS = """
    logits : array_like
        Real numbers z, any shape (0-d too).
    target : array_like
        y of the logits' shape, each in [0, 1].
    weight : array_like, optional
        w: finite, non-negative, broadcast to the logits' shape (never enlarging it).
    pos_weight : array_like, optional
        p_w, the weight of the positive term: one per class (the last axis), finite
        and non-negative, broadcast as ``weight``.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" over all elements, "sum", or "none" (the elementwise losses).
"""
_RAISES = """
    ValueError
        A target outside [0, 1] or of another shape; weights that are negative, not
        finite, or would enlarge the logits' shape; a bad ``reduction``.
    TypeError
        Non-numeric, complex or masked data.
"""
_NOTES = """
    L = w (p_w y softplus(-z) + (1 - y) softplus(z)) elementwise, which is
    -w (p_w y log sigma(z) + (1 - y) log(1 - sigma(z))) and, for w = p_w = 1, the
    two-class softmax loss of the logits (z, 0). softplus(x) = max(x, 0) +
    log1p(e^{-|x|}): accurate for |z| up to 1e308 and for losses far below 1e-16.
    dL/dz = w ((1 - y) sigma(z) - p_w y sigma(-z)) (sigma(z) - y for w = p_w = 1),
    formed without cancellation at y in {0, 1}; the gradient is that of the loss
    returned. A NaN logit gives NaN; w = 0 gives 0 (also for an infinite loss).
"""
_SHARED = dict(parameters=_PARAMETERS, raises=_RAISES, notes=_NOTES)


@_quiet
@_docstring(**_SHARED)
def binary_cross_entropy_with_logits(logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                                     pos_weight: ArrayLike | None = None,
                                     reduction: Reduction = "mean") -> Loss:
    """Binary cross entropy of logits, as PyTorch's ``binary_cross_entropy_with_logits``.

    Parameters
    ----------
    $parameters

    Returns
    -------
    ndarray or NumPy scalar
        The loss in the logits' floating dtype: elementwise with ``reduction="none"``,
        else a NumPy scalar.

    Raises
    ------
    $raises

    Notes
    -----
    $notes

    Examples
    --------
    >>> import numpy as np, numeric
    >>> numeric.binary_cross_entropy_with_logits([0.0, 2.0, -3.0], [1.0, 1.0, 0.0], reduction="none")
    array([0.69314718, 0.12692801, 0.04858735])
    >>> numeric.binary_cross_entropy_with_logits([50.0], [1.0], reduction="none")  # -log sigma(50)
    array([1.92874985e-22])
    >>> -np.log(1 / (1 + np.exp(-50.0)))  # the naive form: sigma(50) rounds to 1
    np.float64(-0.0)
    >>> numeric.binary_cross_entropy_with_logits([0.0], [2.0])
    Traceback (most recent call last):
    ValueError: binary targets must be in [0, 1]; got 2.0 at position (0,)
    """
    return _bce(logits, target, weight, pos_weight, reduction, "loss")


@_quiet
@_docstring(**_SHARED)
def binary_cross_entropy_with_logits_grad(logits: ArrayLike, target: ArrayLike, *,
                                          weight: ArrayLike | None = None, pos_weight: ArrayLike | None = None,
                                          reduction: Reduction = "mean") -> NDArray[np.floating]:
    """The gradient dL/dz of :func:`binary_cross_entropy_with_logits` (same arguments).

    Parameters
    ----------
    $parameters

    Returns
    -------
    ndarray
        dL/dz, of the logits' shape and floating dtype.

    Raises
    ------
    $raises

    Notes
    -----
    $notes

    Examples
    --------
    >>> import numpy as np, numeric
    >>> numeric.binary_cross_entropy_with_logits_grad([0.0, 2.0, -3.0], [1.0, 1.0, 0.0], reduction="none")
    array([-0.5       , -0.11920292,  0.04742587])
    >>> numeric.binary_cross_entropy_with_logits_grad([-40.0], [0.0], reduction="none")  # sigma(-40)
    array([4.24835426e-18])
    """
    return _bce(logits, target, weight, pos_weight, reduction, "grad")


@_quiet
@_docstring(**_SHARED)
def binary_cross_entropy_with_logits_with_grad(logits: ArrayLike, target: ArrayLike, *,
                                               weight: ArrayLike | None = None,
                                               pos_weight: ArrayLike | None = None,
                                               reduction: Reduction = "mean") -> tuple[Loss, NDArray[np.floating]]:
    """``(loss, gradient)`` of the binary cross entropy in one pass (same arguments).

    Parameters
    ----------
    $parameters

    Returns
    -------
    loss : ndarray or NumPy scalar
        As :func:`binary_cross_entropy_with_logits`.
    grad : ndarray
        As :func:`binary_cross_entropy_with_logits_grad`.

    Raises
    ------
    $raises

    Notes
    -----
    $notes

    Examples
    --------
    >>> import numpy as np, numeric
    >>> numeric.binary_cross_entropy_with_logits_with_grad([0.0, 2.0], [1.0, 0.0])  # the mean of 2
    (np.float64(1.410037595801459), array([-0.25      ,  0.44039854]))
    >>> numeric.binary_cross_entropy_with_logits_with_grad([0.0, 1.0], [1.0, 0.0],
    ...                                                    weight=[[1.0], [2.0]])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: weight of shape (2, 1) does not broadcast to the logits' shape (2,) (it may not add axes ...
    """
    return _bce(logits, target, weight, pos_weight, reduction, "both")
