"""The error measure and the gradient checker, for any function.

:func:`ulp_errors` measures computed values against exact ones (mpmath numbers) in ULPs
of the correctly rounded result, with an absolute floor at the smallest normal number;
:func:`check_grads` compares a gradient with float64 directional central differences of
its loss (one checker for every gradient test).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import mpmath
import numpy as np
from numpy.typing import ArrayLike

# --------------------------------------------------------------------------- error measure
#: exact values below this magnitude keep their low part scaled by 2**_TINY_SHIFT, so that
#: hi + lo stays exact where lo would underflow
_TINY_MAGNITUDE = 2.0 ** -900
_TINY_SHIFT = 200


def exact_parts(values: Iterable) -> np.ndarray:
    """Exact (mpmath) values as float64 pairs: ``(hi, lo, shift)`` rows of a (3, n) array.

    ``hi`` is the correctly rounded value, ``lo * 2**-shift`` the rest (``shift`` is
    :data:`_TINY_SHIFT` for values so small that the rest would underflow, else 0), so
    hi + lo carries about 106 bits: enough to measure an error in ULPs of float64 to far
    better than the two decimals reported. NaN stays NaN; values beyond the float64
    range round to +-inf.
    """
    values = list(values)
    parts = np.zeros((3, len(values)))
    with mpmath.workdps(max(mpmath.mp.dps, 60)):
        for k, value in enumerate(values):
            e = value if isinstance(value, mpmath.mpf) else mpmath.mpf(value)
            if mpmath.isnan(e):
                parts[0, k] = math.nan
                continue
            hi = float(e)
            parts[0, k] = hi
            if not math.isfinite(hi):
                continue
            shift = _TINY_SHIFT if abs(hi) < _TINY_MAGNITUDE else 0
            parts[1, k] = float(mpmath.ldexp(e - hi, shift))
            parts[2, k] = shift
    return parts


def ulp_errors(computed: ArrayLike, exact: np.ndarray, dtype=np.float64, scale: np.ndarray | None = None) -> np.ndarray:
    """|computed - exact| in ULPs of the correctly rounded ``exact`` (or of ``scale``).

    ``exact`` and ``scale`` are :func:`exact_parts` arrays. The ULP has an absolute floor
    at the smallest normal number of ``dtype``, so a subnormal result is measured in units
    of the smallest subnormal spacing. Where the exact value rounds to +-inf in ``dtype``
    the computed value must be that infinity (0 ULP) or the error is inf; a NaN on either
    side, or an infinite computed value of a finite exact one, gives inf.
    """
    info = np.finfo(dtype)
    c = np.asarray(computed, dtype=np.float64).reshape(-1)
    hi, lo, shift = exact
    ref = np.abs(scale[0] if scale is not None else hi)
    with np.errstate(all="ignore"):
        unit = np.spacing(np.maximum(ref, float(info.tiny)).astype(dtype)).astype(np.float64)
        factor = np.ldexp(1.0, shift.astype(np.int64))
        err = np.abs((c - hi) * factor - lo) / (unit * factor)
        biggest = float(info.max) * (1 + 2.0 ** (-info.nmant - 1))  # rounds to inf beyond
        overflows = (np.abs(hi) > biggest) | ((np.abs(hi) == biggest) & (lo * hi >= 0))
        matches = np.isinf(c) & (np.sign(c) == np.sign(hi))
        err = np.where(overflows, np.where(matches, 0.0, np.inf), err)
        err = np.where(np.isnan(c) | np.isnan(hi) | (np.isinf(c) & ~overflows), np.inf, err)
    return err


def ulp_error(computed: float, exact: mpmath.mpf | float, dtype: type = np.float64,
              scale: mpmath.mpf | float | None = None) -> float:
    """:func:`ulp_errors` of one value against one exact (mpmath) value.

    Examples
    --------
    >>> import mpmath
    >>> from derive import ulp_error
    >>> ulp_error(0.1, mpmath.mpf(1) / 10)  # 0.1 is the double nearest 1/10
    0.0...
    """
    scale_parts = exact_parts([scale]) if scale is not None else None
    return float(ulp_errors([computed], exact_parts([exact]), dtype, scale_parts)[0])


# --------------------------------------------------------------------------- gradient check
def check_grads(loss: Callable, grad: Callable, x: np.ndarray, directions: int = 4,
                seed: int = 0, rtol: float = 1e-6, step: float | None = None,
                richardson: bool = False) -> float:
    """Directional central differences of ``loss`` (summed) against ``grad`` in float64.

    For random unit directions v: (sum L(x + h v) - sum L(x - h v)) / 2h versus
    <grad(x), v>, with h scaled to x (or ``step``). Returns the worst relative
    difference; raises AssertionError above ``rtol`` (one checker for every gradient
    test). ``richardson`` combines the differences at h and h/2 into one of order h^4
    (for losses whose curvature is large at the step: a scaled softmax, logits near 1000).

    Examples
    --------
    >>> import numpy as np
    >>> from derive import check_grads
    >>> bool(check_grads(lambda x: np.sum(x ** 2, axis=-1), lambda x: 2 * x, np.ones((2, 3))) < 1e-6)
    True
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(grad(x), dtype=np.float64)
    worst = 0.0
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        h = step if step is not None else 1e-5 * max(1.0, float(np.max(np.abs(x))))

        def central(h, v=v):
            return (np.sum(loss(x + h * v)) - np.sum(loss(x - h * v))) / (2 * h)
        fd = (4 * central(h / 2) - central(h)) / 3 if richardson else central(h)
        exact = float(np.sum(g * v))
        diff = abs(fd - exact) / max(abs(exact), float(np.max(np.abs(g))), 1e-300)
        worst = max(worst, diff)
        if diff > rtol:
            raise AssertionError(f"gradient check failed: directional derivative {exact!r} "
                                 f"vs central difference {fd!r} (relative {diff:.2e} > {rtol:.0e})")
    return worst
