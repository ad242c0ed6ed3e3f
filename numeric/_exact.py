"""Error-free transformations (Knuth's TwoSum, Dekker's TwoProduct) and the
quantities built from them that must be rounded once: the smoothed, weighted target
u = w ((1 - eps) y + eps / T), a b / c, and e^(x - y) 2^E for any finite x - y.
Imports NumPy only."""
from __future__ import annotations

import numpy as np

#: ln 2 = LN2_HI + LN2_LO, LN2_HI with 32 significant bits: E LN2_HI is exact for |E| < 2^21
LN2_HI = float.fromhex("0x1.62e42fe000000p-1")
LN2_LO = (float.fromhex("0x1.62e42fefa39efp-1") - LN2_HI) + 2.3190468138462996e-17  # (exact, then ln 2's own rest)


def _two_sum_error(a, b, s):
    """(a + b) - s for s = fl(a + b), exactly (Knuth)."""
    bb = s - a
    return (a - (s - bb)) + (b - bb)


def _two_sum(x, y):
    """(s, e) with s = fl(x + y) and s + e = x + y exactly (Knuth)."""
    s = x + y
    return s, _two_sum_error(x, y, s)


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


def exp_scaled(x, y, exponent=0):
    """e^(x - y) 2^exponent to about one ULP (x <= y, finite y; x may be -inf), for
    results anywhere in the normal range: x - y and exponent ln 2 are added with their
    rounding errors carried (TwoSum; ln 2 split so that exponent LN2_HI is exact), and
    e^(hi + lo) = e^hi (1 + lo). x is first raised to y - max(2000, |y| 2^-40): e^-2000
    2^1024 is 0, so -inf and far-apart inputs stay finite through the error terms."""
    x = np.maximum(x, y - np.maximum(2000.0, np.abs(y) * 2.0 ** -40))
    hi = x - y
    lo = _two_sum_error(x, -y, hi)
    if np.any(exponent):
        shift = exponent * LN2_HI
        total = hi + shift
        lo = lo + _two_sum_error(hi, shift, total) + exponent * LN2_LO
        hi = total + lo  # renormalized: lo (up to 2^-20 here) is again below an ULP of hi
        lo = _two_sum_error(total, lo, hi)
    e = np.exp(hi)
    return e + e * lo


def split_power(q):
    """(f, E) with q = f 2^E, f in [1, 2) (E = 0 where q is 0): e^(a - m) q is
    exp_scaled(a, m, E) f, one rounding after the exponential."""
    f, e = np.frexp(q)
    return f * 2.0, e - 1
