"""e^x in mpmath, the same value as ``mpmath.exp`` without its slow road for integers.

At a working precision above 600 bits, mpmath computes e^n for an integer n (a logit
such as 700.0, -1000.0 or 1e300 is one) as a power of the constant e
(``mpf_pow_int(e, n)``, a square per bit of n at the working precision plus 1.45 bits
per bit of n): about 20 ms for 1e300 at 2 400 bits, where any other argument takes
a fraction of a millisecond (reduced by a multiple of ln 2, then a series). The
references of rows with integer logits are evaluated at hundreds of digits
(:func:`derive.references.digits_for`), and spent most of their time there.

:func:`exp` takes the other road for an integer too: e^n = e^(n - 1/2) e^(1/2), with
n - 1/2 exact, evaluated at 20 bits more than the working precision and rounded to
it. Its error is below an ulp of the working precision, as mpmath's own is, and a
reference keeps about 106 bits of a value worked out to 200 bits or more
(:func:`derive.measure.exact_parts`): the references, and the verification tables
measured against them, are the same bytes.

:data:`MPMATH` is the ``modules`` argument of ``lambdify`` that prints ``exp`` as
:func:`exp` and everything else as mpmath's.
"""
from __future__ import annotations

import functools

import mpmath

#: above this working precision (bits), mpmath's exp takes the power of e for an integer
SLOW_PRECISION = 600

_HALF = mpmath.mpf(0.5)


def exp(x):
    """e^x at mpmath's working precision: ``mpmath.exp(x)`` for every argument but a
    real integer of magnitude 2 or more at more than :data:`SLOW_PRECISION` bits,
    which is e^(x - 1/2) e^(1/2) at 20 bits more, rounded.

    Examples
    --------
    >>> import mpmath
    >>> from derive.mpexp import exp
    >>> with mpmath.workdps(400):
    ...     bool(abs(exp(mpmath.mpf(700)) / mpmath.exp(mpmath.mpf(700)) - 1) < mpmath.mpf(10) ** -398)
    True
    >>> exp(mpmath.mpf(1)) == mpmath.exp(1)
    True
    """
    if isinstance(x, mpmath.mpf):
        return _real_exp(x, mpmath.mp.prec)
    return mpmath.exp(x)


@functools.lru_cache(maxsize=1 << 16)
def _real_exp(x: mpmath.mpf, prec: int) -> mpmath.mpf:
    """:func:`exp` of a real ``x`` at ``prec`` bits, remembered: a reference's formulas
    take e^(a_j) of each logit of a row several times (S_j, log S_j, the loss, the
    gradient), at the row's precision."""
    if prec > SLOW_PRECISION and mpmath.isfinite(x) and mpmath.isint(x) and abs(x) >= 2:
        with mpmath.extraprec(20):
            value = mpmath.exp(mpmath.fsub(x, _HALF, exact=True)) * mpmath.exp(_HALF)
        return +value  # rounded to the working precision
    return mpmath.exp(x)


#: ``lambdify(args, expr, MPMATH)``: mpmath's functions, ``exp`` as :func:`exp`
MPMATH = [{"exp": exp}, "mpmath"]
