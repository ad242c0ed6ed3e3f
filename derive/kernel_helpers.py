"""The NumPy helpers of the generated kernels, as real functions (tested directly).

The code generator copies the source of the helpers a module needs into it (see
:func:`derive.codegen.helpers_used`), so the generated module imports nothing but NumPy.
"""
import numpy


def _scratch(a, count):
    """Scratch arrays for a kernel called without them."""
    return [numpy.empty_like(a, dtype=numpy.float64) for _ in range(count)]


def _outputs(a, full):
    """Output arrays for a kernel called without them (None for row-level results)."""
    return [numpy.empty_like(a, dtype=numpy.float64) if f else None for f in full]


def _take(x, k, axis=-1):
    """x at index k (a column) of the last axis, per row: plain fancy indexing,
    cheaper than numpy.take_along_axis on small blocks."""
    return x[numpy.arange(x.shape[0]), k[:, 0]][:, None]


def _put(x, k, v, axis=-1):
    """x at index k (a column) of the last axis := v (a scalar or a column), in place."""
    v = numpy.asarray(v)
    x[numpy.arange(x.shape[0]), k[:, 0]] = v[:, 0] if v.ndim else v


def _difference_error(x, y, hi, z, out):
    """(x - y) - hi with hi = fl(x - y), exactly (Knuth's TwoSum), into ``out``;
    ``z`` is scratch (x, y, hi finite)."""
    numpy.subtract(hi, x, out=z)
    numpy.subtract(hi, z, out=out)
    numpy.subtract(x, out, out=out)
    numpy.add(z, y, out=z)
    return numpy.subtract(out, z, out=out)


def _exp_difference(x, y, out, s1, s2, s3, moderate=False):
    """e^(x - y) to about one ULP into ``out`` (y a column, x - y <= 0).

    moderate (every x and y in [-708, 709]): e^x e^-y, two exps within 0.7 ULP
    and one rounding, no cancellation at all. Otherwise: exp of the rounded
    difference times 1 + its exact rounding error (TwoSum); x is first raised to
    y - d with d = max(800, |y| 2^-40): e^-800 is 0 in float64 and y - d < y even
    where |y| is huge, so -inf or far-apart inputs stay finite through the error
    term (and nothing else changes); NaN stays NaN.
    s1, s2, s3 are scratch arrays like x."""
    if moderate:
        numpy.exp(x, out=out)
        return numpy.multiply(out, numpy.exp(-y), out=out)
    xc = numpy.maximum(x, y - numpy.maximum(800.0, numpy.abs(y) * 2.0 ** -40), out=s1)
    hi = numpy.subtract(xc, y, out=s2)
    lo = _difference_error(xc, y, hi, out, s3)
    e = numpy.exp(hi, out=out)
    numpy.multiply(lo, e, out=lo)
    return numpy.add(e, lo, out=e)


def _sum_except(e, k, axis=-1):
    """sum_{j != k} e_j along ``axis``; e_k is set to 0 for the sum, then to its exact
    value e^0 = 1 (the product form e^a e^-m may round it)."""
    _put(e, k, 0.0, axis)
    tail = numpy.sum(e, axis=axis, keepdims=True)
    _put(e, k, 1.0, axis)
    return tail


def _zero_safe_product(y, x, out=None):
    """y * x (into ``out`` if given), with 0 where y == 0 (so 0 * inf is 0, as in
    y log y at y = 0)."""
    out = numpy.multiply(y, x, out=out)
    numpy.copyto(out, 0.0, where=(y == 0))
    return out


def _put_at_target(x, c, u, axis=-1):
    """x with its entry at the target c replaced by u (x is changed in place)."""
    _put(x, c, u, axis)
    return x


def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, and a value far below
    1e-16 (x very negative) keeps its digits."""
    return numpy.maximum(x, 0.0) + numpy.log1p(numpy.exp(-numpy.abs(x)))


def _sigmoid(x):
    """1 / (1 + e^-x) as 1/(1 + e) for x >= 0 and e/(1 + e) for x < 0, e = e^-|x|:
    never overflows, and sigma(x) for very negative x keeps its digits."""
    e = numpy.exp(-numpy.abs(x))
    return numpy.where(x >= 0, 1.0, e) / (1.0 + e)
