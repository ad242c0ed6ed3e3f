"""softmax, log_softmax and logsumexp along any axis. Imports NumPy only."""
from __future__ import annotations

import numpy as np

from . import _kernels
from ._rows import _finish, _from_rows, _quiet, _run, _to_rows
from ._typing import ArrayLike, Axis, NDArray
from ._validation import _FLOATS, _array, _check_not_bool, _logits_array, _normalize_axes


def _axiswise(logits, axis, kernel, fill, reduce, posinf_fill=None):
    """The softmax-family kernel ``kernel`` along ``axis``: rows of only -inf get
    ``fill`` (and +inf rows ``posinf_fill``); ``reduce`` for one value per row."""
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
def softmax(logits: ArrayLike, axis: Axis = -1) -> NDArray[np.floating]:
    """Softmax along ``axis``: the probabilities S_j = e^{a_j} / sum_k e^{a_k}.

    Parameters
    ----------
    logits : array_like
        Real numbers a (float16/32/64, or integers and booleans, taken as float64).
    axis : int, tuple of ints or None, default -1
        The class axis (or axes: the softmax over all of them together; None: all), as in
        ``scipy.special.softmax`` (whose default is None).

    Returns
    -------
    ndarray
        S, of the logits' shape and floating dtype: each entry in [0, 1], summing to 1
        along ``axis``.

    Raises
    ------
    TypeError
        Complex, non-numeric or masked logits; a boolean or non-integer axis.
    numpy.exceptions.AxisError
        An axis out of range.
    ValueError
        An empty class axis, or a repeated axis.

    Notes
    -----
    S_j = e^{a_j - m} / (1 + s') with m = max_k a_k at index k and
    s' = sum_{j != k} e^{a_j - m}, summed without the term k; a_j - m is carried with its
    rounding error (TwoSum), so each S_j is within 4 ULP even for logits spread over
    thousands, where e^{a_j} alone overflows. A -inf logit gets probability 0 (a row of
    only -inf: 0 everywhere); n +inf logits share the probability equally (1/n each);
    a NaN makes its row NaN.

    Examples
    --------
    >>> import numpy as np, numeric
    >>> numeric.softmax([1.0, 2.0, 3.0])
    array([0.09003057, 0.24472847, 0.66524096])

    A logit of 1000 overflows e^a (the naive formula gives NaN); the ratio does not:

    >>> numeric.softmax([1000.0, 0.0])
    array([1., 0.])
    >>> numeric.softmax(np.array([1.0, -np.inf, np.inf, np.inf], dtype=np.float32))
    array([0. , 0. , 0.5, 0.5], dtype=float32)
    """
    return _axiswise(logits, axis, _kernels.softmax, 0.0, reduce=False)


@_quiet
def log_softmax(logits: ArrayLike, axis: Axis = -1) -> NDArray[np.floating]:
    """The logarithm of :func:`softmax` along ``axis``: log S_j = a_j - log sum_k e^{a_k}.

    Parameters
    ----------
    logits : array_like
        Real numbers a, as for :func:`softmax`.
    axis : int, tuple of ints or None, default -1
        The class axis (or axes), as for :func:`softmax`.

    Returns
    -------
    ndarray
        log S, of the logits' shape and floating dtype; every entry <= 0.

    Raises
    ------
    TypeError, numpy.exceptions.AxisError, ValueError
        As :func:`softmax`.

    Notes
    -----
    log S_j = (a_j - m) - log1p(s') (m and s' as in :func:`softmax`), within 4 ULP,
    also where log S_j is far below 1e-16 in magnitude (the largest logit far ahead:
    log(softmax) gives exactly 0 there) and for logits up to +-1e308 (a_j - m may then
    overflow to -inf, the correctly rounded result). -inf logits give -inf (a row of
    only -inf: -inf everywhere); n +inf logits give -log n there and -inf elsewhere;
    NaN gives a NaN row.

    Examples
    --------
    >>> import numpy as np, numeric
    >>> numeric.log_softmax([40.0, 0.0])
    array([-4.24835426e-18, -4.00000000e+01])

    The naive form rounds S_0 = 1 - 4.2e-18 to 1 and loses the first entry entirely:

    >>> np.log(np.exp([40.0, 0.0]) / np.exp([40.0, 0.0]).sum())
    array([  0., -40.])
    """
    return _axiswise(logits, axis, _kernels.log_softmax, -np.inf, reduce=False)


@_quiet
def logsumexp(logits: ArrayLike, axis: Axis = -1, b: ArrayLike | None = None, keepdims: bool = False,
              return_sign: bool = False) -> NDArray[np.floating] | np.floating | tuple:
    """log |sum_j b_j e^{a_j}| along ``axis``, as ``scipy.special.logsumexp``.

    Parameters
    ----------
    logits : array_like
        Real numbers a, as for :func:`softmax`.
    axis : int, tuple of ints or None, default -1
        The axes summed over (None: all); SciPy's shapes for 0-d input.
    b : array_like, optional
        Finite weights of any sign, broadcast to the logits' shape; b_j = 0 leaves the
        term out, also from the maximum (as in SciPy). Default: all 1.
    keepdims : bool, default False
        Keep the summed axes with length 1.
    return_sign : bool, default False
        Return ``(log |s|, sign s)``; without it a negative sum gives NaN.

    Returns
    -------
    ndarray or NumPy scalar, or a tuple of two
        The value (a scalar when every axis is summed), and with ``return_sign`` the
        sign (1, -1, or 0 for a zero sum, whose value is -inf).

    Raises
    ------
    TypeError, numpy.exceptions.AxisError, ValueError
        As :func:`softmax`; and ValueError for weights that are not finite or do not
        broadcast.

    Notes
    -----
    Without b: m + log1p(s') (as in :func:`softmax`), within 4 ULP of |m| + log(1 + s').
    With b: m + log|b_k + s'_b|, s'_b = sum_{j != k} b_j e^{a_j - m} summed accurately
    and b_k + s'_b carried exactly into the log: within 4 ULP unless the weighted sum
    itself cancels. -inf terms add nothing (a row of only -inf: -inf, sign 0); +inf gives
    +inf (NaN if its weights sum to 0); NaN gives NaN.

    Examples
    --------
    >>> import numpy as np, numeric
    >>> numeric.logsumexp([1000.0, 1000.0])  # log(2 e^1000); e^1000 alone overflows
    np.float64(1000.6931471805599)
    >>> numeric.logsumexp([0.0, 1.0], b=[1.0, -1.0], return_sign=True)  # log|1 - e|
    (np.float64(0.5413248546129181), np.float64(-1.0))
    >>> numeric.logsumexp([0.0, 1.0], b=[1.0, np.inf])
    Traceback (most recent call last):
    ValueError: b must be finite; got inf at position (1,)
    """
    return _logsumexp(_array(logits, "logits"), axis, b, keepdims, return_sign)


def _logsumexp(arr, axis, b, keepdims, return_sign):
    """:func:`logsumexp` of an array (the masked-array check done)."""
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
