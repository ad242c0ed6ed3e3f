"""Error-free transformations (Knuth's TwoSum, Dekker's TwoProduct) and the
quantities built from them that must be rounded once: the smoothed, weighted target
u = w ((1 - eps) y + eps / T), and a b / c. Imports NumPy only."""
from __future__ import annotations

import numpy as np


def _two_sum(x, y):
    """(s, e) with s = fl(x + y) and s + e = x + y exactly (Knuth)."""
    s = x + y
    z = s - x
    return s, (x - (s - z)) + (y - z)


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
