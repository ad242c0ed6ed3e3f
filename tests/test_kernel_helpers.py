"""The NumPy helpers of the generated kernels, tested directly as functions (the
generator copies their source into numeric/_kernels.py)."""
from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from derive import kernel_helpers as H
from derive import ulp_error


def test_difference_error_is_the_exact_rounding_error_of_the_subtraction():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1e3, 1e3, (50, 4))
    y = rng.uniform(-1e3, 1e3, (50, 1)) * np.ones((1, 4))
    hi = x - y
    lo = H._difference_error(x, y, hi, np.empty_like(x), np.empty_like(x))
    for a, b, h, e in zip(x.ravel(), y.ravel(), hi.ravel(), lo.ravel()):
        assert Fraction(a) - Fraction(b) == Fraction(h) + Fraction(e)


def test_exp_difference_within_one_ulp_where_the_plain_form_is_not():
    """e^(x - y) with x - y spread over thousands: within 1 ULP of mpmath; the plain
    exp(x - y) is hundreds of ULPs off on the same inputs."""
    rng = np.random.default_rng(1)
    y = np.full((1, 200), 0.3)
    x = y - rng.uniform(100, 700, (1, 200)) - 0.123456789
    out = np.empty_like(x)
    ours = H._exp_difference(x, y, out, *(np.empty_like(x) for _ in range(3)))
    with mpmath.workdps(60):
        exact = [mpmath.exp(mpmath.mpf(a) - mpmath.mpf(b)) for a, b in zip(x.ravel(), y.ravel())]
    worst = max(ulp_error(v, e) for v, e in zip(ours.ravel(), exact))
    plain = max(ulp_error(v, e) for v, e in zip(np.exp(x - y).ravel(), exact))
    assert worst <= 1.0
    assert plain > 10


def test_sum_except_leaves_out_the_argmax_term_and_sets_it_to_one():
    e = np.array([[0.5, 0.9, 0.25], [0.125, 0.5, 0.75]])
    k = np.array([[1], [2]])
    tail = H._sum_except(e, H._flat_index(e, k))
    assert tail[:, 0].tolist() == [0.75, 0.625]
    assert e[0, 1] == 1.0 and e[1, 2] == 1.0


def test_take_and_put_address_one_column_per_row():
    x = np.arange(6.0).reshape(2, 3)
    at = H._flat_index(x, np.array([[2], [0]]))
    assert at.tolist() == [2, 3]
    assert H._take(x, at)[:, 0].tolist() == [2.0, 3.0]
    H._put(x, at, np.array([[-1.0], [-2.0]]))
    assert x.tolist() == [[0.0, 1.0, -1.0], [-2.0, 4.0, 5.0]]


def test_take_and_put_work_on_views_that_are_not_contiguous():
    """The flat index addresses a C-contiguous array of the same shape; a strided view
    takes row and column from it and is still written in place."""
    base = np.arange(12.0).reshape(2, 6)
    x = base[:, ::2]  # [[0, 2, 4], [6, 8, 10]], not contiguous
    at = H._flat_index(x, np.array([[2], [0]]))
    assert H._take(x, at)[:, 0].tolist() == [4.0, 6.0]
    H._put(x, at, 0.5)
    assert base.tolist() == [[0.0, 1.0, 2.0, 3.0, 0.5, 5.0], [0.5, 7.0, 8.0, 9.0, 10.0, 11.0]]
    assert H._sum_except(x, H._flat_index(x, np.array([[0], [1]])))[:, 0].tolist() == [2.5, 10.5]


def test_row_sum_sums_each_row_alike_wherever_it_sits_and_within_two_ulp():
    """Short rows go through einsum: a row's sum must not depend on its position in
    the block (the kernels promise bit-identical rows for any block split) and must be
    as accurate as numpy.sum (2 ULP of the exact sum of positive terms); long rows
    keep numpy.sum's pairwise summation, which einsum's running sums do not match
    (6 ULP measured at T = 1000)."""
    rng = np.random.default_rng(5)
    for classes in (1, 3, 8, 10, 17, 64, 65, 1000):
        x = np.exp(rng.normal(0, 2, (97, classes)))
        whole = H._row_sum(x)[:, 0]
        for start in (0, 1, 5, 33):
            assert H._row_sum(x[start:start + 7])[:, 0].tolist() == whole[start:start + 7].tolist()
        assert [H._row_sum(np.ascontiguousarray(x[i:i + 1]))[0, 0] for i in range(97)] == whole.tolist()
        exact = [float(sum(Fraction(v) for v in row)) for row in x]
        assert max(ulp_error(v, e) for v, e in zip(whole, exact)) <= 2.0


def test_zero_safe_product_makes_zero_times_infinity_zero():
    y = np.array([0.0, 2.0, 0.0])
    x = np.array([np.inf, 3.0, -np.inf])
    with np.errstate(invalid="ignore"):  # the runtime's errstate: 0 * inf is formed, then fixed
        assert H._zero_safe_product(y, x).tolist() == [0.0, 6.0, 0.0]


def test_softplus_and_sigmoid_are_finite_everywhere_and_accurate():
    z = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    with mpmath.workdps(60):
        soft = [mpmath.log1p(mpmath.exp(mpmath.mpf(v))) for v in z]
        sig = [1 / (1 + mpmath.exp(-mpmath.mpf(v))) for v in z]
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        ours_soft, ours_sig = H._softplus(z), H._sigmoid(z)
    assert max(ulp_error(v, e) for v, e in zip(ours_soft, soft)) <= 2
    assert max(ulp_error(v, e) for v, e in zip(ours_sig, sig)) <= 2
