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


def _flat_index(x, k):
    """Where x[i, k_i] sits in x.reshape(-1), per row (k a column): the form in which
    _take, _put, _sum_except and _put_at_target receive an index column. A kernel
    computes it once per index column (the argmax, the targets) and call; every
    array of a row kernel has the logits' shape, so one flat index serves them all."""
    return k[:, 0] + numpy.arange(0, x.size, x.shape[-1])


def _take(x, at):
    """x at the flat index ``at`` (see _flat_index), one entry per row, as a column:
    one flat take when x is C-contiguous (cheaper than two-array fancy indexing or
    numpy.take_along_axis on short rows), else row and column from ``at``."""
    if x.flags.c_contiguous:
        return x.reshape(-1).take(at)[:, None]
    return x[numpy.divmod(at, x.shape[-1])][:, None]


def _put(x, at, v):
    """x at the flat index ``at`` := v (a float or a column), in place."""
    v = v if isinstance(v, float) else v[:, 0]  # a Python or NumPy float, or a column
    if x.flags.c_contiguous:
        x.reshape(-1)[at] = v  # a view: x is written
    else:
        x[numpy.divmod(at, x.shape[-1])] = v


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

    moderate (every x and y in [-708, 708]; e^-y is subnormal past 708.40): e^x e^-y, two exps within 0.7 ULP
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


def _row_sum(x, axis=-1):
    """sum along the last axis, as a column. Short rows (at most 64 terms) through
    einsum, several times faster there than numpy.sum (which calls its loop once per
    row) and as accurate (both add in a few interleaved partial sums; measured within
    2 ULP of the exact sum of positive terms, like numpy.sum); longer rows through
    numpy.sum, whose pairwise summation einsum lacks. Every row is summed alike
    whatever its position in x (checked in the tests)."""
    if x.shape[-1] <= 64:
        return numpy.einsum("ij->i", x)[:, None]
    return numpy.sum(x, axis=axis, keepdims=True)


def _sum_except(e, at):
    """sum_{j != k} e_j per row (k at the flat index ``at``), as a column; e_k is set
    to 0 for the sum, then to its exact value e^0 = 1 (the product form e^a e^-m may
    round it)."""
    if not e.flags.c_contiguous:
        _put(e, at, 0.0)
        tail = _row_sum(e)
        _put(e, at, 1.0)
        return tail
    flat = e.reshape(-1)  # a view of e (written directly: a helper call per put costs
    flat[at] = 0.0        # about a microsecond, which counts on small batches)
    tail = _row_sum(e)
    flat[at] = 1.0
    return tail


def _sum_except_keep(x, at):
    """sum_{j != k} x_j per row (k at the flat index ``at``), as a column; x_k is set to
    0 for the sum and then given back its value (x_k = e^{a_k} in the moderate forms,
    not 1)."""
    if not x.flags.c_contiguous:
        kept = _take(x, at)
        _put(x, at, 0.0)
        tail = _row_sum(x)
        _put(x, at, kept)
        return tail
    flat = x.reshape(-1)  # a view of x
    kept = flat.take(at)
    flat[at] = 0.0
    tail = _row_sum(x)
    flat[at] = kept
    return tail


def _zero_safe_product(y, x, out=None):
    """y * x (into ``out`` if given), with 0 where y == 0 (so 0 * inf is 0, as in
    y log y at y = 0)."""
    out = numpy.multiply(y, x, out=out)
    numpy.copyto(out, 0.0, where=(y == 0))
    return out


def _put_at_target(x, at, u):
    """x with its entry at the target c (at the flat index ``at``) replaced by u (x is
    changed in place)."""
    if x.flags.c_contiguous and not isinstance(u, float):
        x.reshape(-1)[at] = u[:, 0]  # (the common case without a second helper call)
    else:
        _put(x, at, u)
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


def _accurate_sum(x, axis=-1):
    """sum_j x_j along the last axis as a column, rounded about once: with
    sigma = 2^(ceil(log2 T) + e), |x_j| < 2^e, the parts hi_j = (sigma + x_j) - sigma
    are multiples of ulp(sigma) whose sum is exact in any order, and the remainders
    lo_j = x_j - hi_j (exact, |lo_j| <= ulp(sigma) / 2) add an error of about
    T^2 (128 + log2 T) eps^2 relative to sum |x_j| (Rump, Ogita, Oishi: ExtractVector).
    Rows whose largest term is not finite (or too large for sigma) are summed plainly."""
    top = numpy.max(numpy.abs(x), axis=axis, keepdims=True)
    plain = ~numpy.isfinite(top)
    exponent = numpy.frexp(numpy.where(plain, 0.0, top) if plain.any() else top)[1]
    sigma = numpy.ldexp(1.0, exponent + int(numpy.ceil(numpy.log2(max(x.shape[axis], 1)))))
    plain |= ~numpy.isfinite(sigma)
    part = numpy.add(sigma, x)
    part -= sigma  # hi_j, exactly
    exact = numpy.sum(part, axis=axis, keepdims=True)
    numpy.subtract(x, part, out=part)  # lo_j, exactly
    exact += numpy.sum(part, axis=axis, keepdims=True)
    return numpy.where(plain, numpy.sum(x, axis=axis, keepdims=True), exact) if plain.any() else exact


def _accurate_sum_except(x, at):
    """sum_{j != k} x_j (k at the flat index ``at``) as a column, accurate to about one
    rounding (x_k is set to 0 in place: x is the kernel's own temporary)."""
    _put(x, at, 0.0)
    return _accurate_sum(x)


def _log_abs_sum(x, y):
    """log |x + y| as log|hi| + lo/hi with hi + lo = x + y exactly (TwoSum); hi = 0
    only when x + y = 0 (then -inf); an infinite or NaN hi is used as it is."""
    hi = x + y
    z = hi - x
    lo = (x - (hi - z)) + (y - z)
    fine = numpy.isfinite(hi) & (hi != 0)
    return numpy.log(numpy.abs(hi)) + numpy.where(fine, lo / numpy.where(fine, hi, 1.0), 0.0)
