"""softmax, log_softmax and logsumexp along any axis. Imports NumPy only."""
from __future__ import annotations

import numpy as np

from . import _kernels
from ._rows import _finish, _from_rows, _quiet, _run, _to_rows
from ._validation import _FLOATS, _array, _check_not_bool, _logits_array, _normalize_axes


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
