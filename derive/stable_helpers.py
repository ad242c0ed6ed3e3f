"""NumPy helpers of the derived stable kernels (:mod:`derive.stable`): double-double
arithmetic for the logits of a softmax.

A softmax of any expression f of the logits is computed through its own row maximum,
e^{f_j - f_k} / (1 + sum_{j != k} e^{f_j - f_k}); exp turns the absolute error of
f_j - f_k into a relative error as large, so f is carried as an unevaluated sum
hi + lo (a double-double: Dekker's and Knuth's error-free transformations) from the
exact float inputs to the difference f_j - f_k, which is then rounded once (a
temperature's quotient (a_j - m)/tau included: its remainder is carried, not lost).
The code generator copies the source of these functions into a generated module, which
then imports nothing but NumPy. Every function keeps NumPy's warnings to itself.
"""
import numpy


def _two_sum(x, y):
    """(s, e) with s = fl(x + y) and s + e = x + y exactly (Knuth)."""
    s = x + y
    z = s - x
    e = (x - (s - z)) + (y - z)
    return s, numpy.where(numpy.isfinite(s), e, 0.0)


def _split(x):
    """(h, t) with h + t = x, each with at most 26 significant bits (Veltkamp)."""
    big = numpy.abs(x) > 2.0 ** 996  # the split would overflow: split a scaled copy
    x = numpy.where(big, x * 2.0 ** -28, x)
    c = 134217729.0 * x  # 2^27 + 1 (Veltkamp)
    h = c - (c - x)
    t = x - h
    return numpy.where(big, h * 2.0 ** 28, h), numpy.where(big, t * 2.0 ** 28, t)


def _two_prod(x, y):
    """(p, e) with p = fl(x y) and p + e = x y exactly (Dekker)."""
    p = x * y
    xh, xt = _split(x)
    yh, yt = _split(y)
    e = ((xh * yh - p) + xh * yt + xt * yh) + xt * yt
    return p, numpy.where(numpy.isfinite(p), e, 0.0)


def _dd(x):
    """x as a double-double (x, 0)."""
    return (x, 0.0 * x)


def _dd_norm(hi, lo):
    s = hi + lo
    return s, numpy.where(numpy.isfinite(s), lo - (s - hi), 0.0)


def _dd_add(x, y):
    """x + y for double-doubles x = (hi, lo), y = (hi, lo)."""
    with numpy.errstate(all="ignore"):
        s, e = _two_sum(x[0], y[0])
        return _dd_norm(s, e + (x[1] + y[1]))


def _dd_neg(x):
    return (-x[0], -x[1])


def _dd_mul(x, y):
    """x y for double-doubles."""
    with numpy.errstate(all="ignore"):
        p, e = _two_prod(x[0], y[0])
        return _dd_norm(p, e + (x[0] * y[1] + x[1] * y[0]))


def _dd_div(x, y):
    """x / y for double-doubles: the quotient of the high parts, then the quotient of
    the exact remainder x - q y (so a temperature's division keeps its digits)."""
    with numpy.errstate(all="ignore"):
        q = x[0] / y[0]
        p, e = _two_prod(q, y[0])
        r = ((x[0] - p) - e + x[1] - q * y[1]) / y[0]
        return _dd_norm(q, numpy.where(numpy.isfinite(q), r, 0.0))


def _onehot(x, at):
    """1 at the flat index ``at`` of each row (see _flat_index), 0 elsewhere, shaped like x."""
    out = numpy.zeros(x.shape)
    out.reshape(-1)[at] = 1.0
    return out


def _dd_shift(f, at):
    """f_j - f_k rounded once (k at the flat index ``at``): the exponent of the softmax
    of f through its row maximum, from the double-double f."""
    hi, lo = numpy.broadcast_arrays(*f)
    with numpy.errstate(all="ignore"):
        d = _dd_add((hi, lo), (-hi.reshape(-1).take(at)[:, None], -lo.reshape(-1).take(at)[:, None]))
        return numpy.where(numpy.isfinite(d[0]), d[0] + d[1], d[0])


def _dd_shift_exp(f, at):
    """e^{f_j - f_k} from the double-double difference d = hi + lo: e^hi (1 + lo)."""
    hi, lo = numpy.broadcast_arrays(*f)
    with numpy.errstate(all="ignore"):
        d = _dd_add((hi, lo), (-hi.reshape(-1).take(at)[:, None], -lo.reshape(-1).take(at)[:, None]))
        d_hi = numpy.maximum(d[0], -800.0)  # e^-800 is 0: nothing below it counts
        e = numpy.exp(d_hi)
        return e + e * numpy.where(d[0] > -800.0, d[1], 0.0)


def _dd_at(f, at):
    """f_k rounded (k at the flat index ``at``), as a column."""
    hi, lo = numpy.broadcast_arrays(*f)
    return (hi.reshape(-1).take(at) + lo.reshape(-1).take(at))[:, None]


def _dd_argmax(f):
    """The first index of a largest f_j per row (of the rounded f), as a column."""
    hi, lo = numpy.broadcast_arrays(*f)
    return (hi + lo).argmax(axis=-1)[:, None]


def _dd_shift_exp_up(f, at):
    """2^900 e^{f_j - f_k}: e^{f_j - f_k} scaled out of the subnormal range, so that a
    product S_j g is rounded once into it (by ldexp), not twice (900 ln 2 as a double-double)."""
    hi, lo = numpy.broadcast_arrays(*f)
    with numpy.errstate(all="ignore"):
        d = _dd_add((hi, lo), (-hi.reshape(-1).take(at)[:, None], -lo.reshape(-1).take(at)[:, None]))
        d = _dd_add(d, (623.8324625039508, 2.7532759472367637e-14))
        d_hi = numpy.maximum(d[0], -800.0)
        e = numpy.exp(d_hi)
        return e + e * numpy.where(d[0] > -800.0, d[1], 0.0)


def _dd_int_pow(x, n):
    """x^n for a double-double x and an integer n >= 1 (binary powering in double-double)."""
    result = None
    while n:
        if n & 1:
            result = x if result is None else _dd_mul(result, x)
        n >>= 1
        if n:
            x = _dd_mul(x, x)
    return result


def _dd_column(d, at_c):
    """The entries at the flat index ``at_c`` of a double-double array, as columns."""
    return d[0].reshape(-1).take(at_c)[:, None], d[1].reshape(-1).take(at_c)[:, None]


def _dd_exp_over(x, den):
    """e^x / den rounded about once, for a double-double x <= 0 and den >= 1: e^{x_hi}
    with the remainder x_lo beside it, one division in double-double, the scale 2^900
    taken off last so that a subnormal result is rounded once."""
    x = _dd_add(x, (623.8324625039508, 2.7532759472367637e-14))  # + 900 ln 2
    e = numpy.exp(numpy.maximum(x[0], -800.0))
    return e, e * numpy.where(x[0] > -800.0, x[1], 0.0), den


def _dd_pair_times(f, at, at_c, h, tail, n=1):
    """S_j S_c^n h = e^{f_j + n f_c - (n + 1) f_k} h / (1 + s')^{n + 1} rounded about once:
    the exponentials as one (its exponent in double-double, its remainder kept beside
    it), 1 + s' and its power in double-double, one division, the scale 2^900 taken off
    last (k at the flat index ``at``, c at ``at_c``; s' the tail, a column)."""
    hi, lo = numpy.broadcast_arrays(*f)
    with numpy.errstate(all="ignore"):
        d = _dd_add((hi, lo), (-hi.reshape(-1).take(at)[:, None], -lo.reshape(-1).take(at)[:, None]))
        d = _dd_add(d, _dd_mul(_dd_column(d, at_c), (float(n), 0.0)))
        e, e_lo, den = _dd_exp_over(d, _dd_int_pow(_two_sum(1.0, tail), n + 1))
        p, p_lo = _two_prod(e, h)
        return numpy.ldexp(_dd_div((p, p_lo + e_lo * h), den)[0], -900)


def _dd_power_target(f, at, at_c, n, tail):
    """S_c^n = e^{n (f_c - f_k)} / (1 + s')^n rounded about once (n >= 1 an integer):
    n (f_c - f_k) in double-double, so that the rounding of f_c - f_k is not multiplied
    by n log-fold as in e^{n log S_c}."""
    hi, lo = numpy.broadcast_arrays(*f)
    with numpy.errstate(all="ignore"):
        d = _dd_add((hi, lo), (-hi.reshape(-1).take(at)[:, None], -lo.reshape(-1).take(at)[:, None]))
        x = _dd_mul(_dd_column(d, at_c), (float(n), 0.0))
        e, e_lo, den = _dd_exp_over(x, _dd_int_pow(_two_sum(1.0, tail), n))
        return numpy.ldexp(_dd_div((e, e_lo), den)[0], -900)


def _accurate_tail(e, at):
    """sum_{j != k} e_j (k at the flat index ``at``) as a column, rounded about once
    (_accurate_sum of a copy with e_k = 0: e itself is used again)."""
    x = e.copy()
    x.reshape(-1)[at] = 0.0
    return _accurate_sum(x)  # noqa: F821 - derive.kernel_helpers', copied beside it
