"""Accuracy where issue 11 found it beyond the bounds (defect 8), searched by
hypothesis: the largest logit in (708.4, 709], where e^-m is subnormal and the
moderate form e^a e^-m loses digits; class weights and label smoothing with tiny
losses; every option within 4 ULP of the exact value (u = w((1 - eps) y + eps / T)
taken exactly, not rounded first)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numeric
from derive import measure as M
from derive.softmax import verify as V
from numeric import _blocks

BOUND = 4.0
NONE = {"reduction": "none"}


def _softmax_and_grad_ulps(row, c):
    ref = V.reference_row(row, target=c)
    s = numeric.softmax(row[None])[0]
    g = numeric.cross_entropy_grad(row[None], np.array([c]), **NONE)[0]
    return (max(M.ulp_error(v, r) for v, r in zip(s, ref.softmax)),
            max(M.ulp_error(v, r) for v, r in zip(g, ref.grad_index)))


def test_the_issues_row_near_709():
    row = np.array([708.9901760968195, 704.8434539741204])
    soft, grad = _softmax_and_grad_ulps(row, 1)
    assert soft <= BOUND and grad <= BOUND, (soft, grad)


@pytest.mark.parametrize("top, classes", [(708.9901760968195, 64), (705.0, 200)])
def test_the_moderate_form_fails_past_its_range(top, classes):
    """Why the runtime calls a row moderate only in [-708, 600] (numeric._blocks): the
    kernels' moderate form, e^{a_j} times e^-m / (1 + s'), is far off past it -- with
    e^-m subnormal (m = 709, the issue's row widened to 64 classes) and where the sum
    of the e^{a_j} overflows (m = 705, 200 classes) -- while the TwoSum form, which
    those rows take, stays within 2 ULP."""
    from numeric import _kernels
    row = np.concatenate([[top], top - np.random.default_rng(3).uniform(0, 0.1, classes - 1)])
    ref = V.reference_row(row, target=1)
    with np.errstate(over="ignore"):  # (the overflow is the point)
        moderate = _kernels.softmax(row[None], moderate=True)[0]
    assert not max(M.ulp_error(v, r) for v, r in zip(moderate, ref.softmax)) <= BOUND
    twosum = _kernels.softmax(row[None], moderate=False)[0]
    assert max(M.ulp_error(v, r) for v, r in zip(twosum, ref.softmax)) <= 2.0
    assert not (_blocks.MODERATE_LOW <= row.min() and row.max() <= _blocks.MODERATE_HIGH)


@settings(max_examples=40, deadline=None)
@given(st.floats(708.4, 709.0, exclude_min=True),
       hnp.arrays(np.float64, st.integers(1, 5), elements=st.floats(-40, 0)), st.data())
@example(708.9901760968195, np.array([704.8434539741204 - 708.9901760968195]), None)
def test_largest_logit_in_the_subnormal_exp_region(top, offsets, data):
    row = np.concatenate([[top], top + offsets])
    c = 1 if data is None else data.draw(st.integers(0, len(row) - 1))
    soft, grad = _softmax_and_grad_ulps(row, c)
    assert soft <= BOUND and grad <= BOUND, (row, c, soft, grad)


# --------------------------------------------------------------------------- weights, smoothing
#: the near-tie row where the weighted gradient reached 5.6 ULP (verify --thorough)
NEAR_TIES = np.array([float.fromhex(h) for h in (
    "-0x1.27b35b572afe0p+2", "-0x1.27b35b5729a54p+2", "-0x1.27b35b572a390p+2", "-0x1.27b35b572bdd5p+2",
    "-0x1.27b35b572ae8dp+2", "-0x1.27b35b5728fa9p+2", "-0x1.27b35b572b10ap+2", "-0x1.27b35b572aac9p+2",
    "-0x1.27b35b5729a0dp+2", "-0x1.27b35b572a7dcp+2", "-0x1.27b35b57296c8p+2", "-0x1.27b35b572a385p+2")])
NEAR_TIES_WEIGHT = np.random.default_rng(12).uniform(0.2, 2.0, 12)


def _exact_u(weight, eps, target, T):
    case = V.Case(np.zeros((1, T)), np.array([target]), weight=np.asarray(weight, dtype=np.float64),
                  smoothing=eps)
    return case.weighted_exact(0)


def _weighted_ulps(row, c, weight, eps):
    """(loss ULP, gradient ULP of max(S_j sum u, u_j)) against the exact u."""
    ref = V.reference_row(row, c, weighted=_exact_u(weight, eps, c, len(row)))
    loss, grad = numeric.cross_entropy_with_grad(row[None], np.array([c]), weight=weight,
                                                 label_smoothing=eps, **NONE)
    return (M.ulp_error(loss[0], ref.loss_weighted),
            max(M.ulp_error(g, e, scale=s) for g, e, s in
                zip(grad[0], ref.grad_weighted, ref.grad_weighted_scale)))


def test_weighted_gradient_on_the_near_tie_row():
    loss, grad = _weighted_ulps(NEAR_TIES, 0, NEAR_TIES_WEIGHT, 0.1)
    assert loss <= BOUND and grad <= BOUND, (loss, grad)


def test_rounded_u_and_plain_sums_fail_there():
    """The former form: u rounded step by step, S_j times a plain row sum of u."""
    from numeric import _kernels
    T = len(NEAR_TIES)
    u = NEAR_TIES_WEIGHT * (0.9 * np.eye(T)[0] + 0.1 / T)
    ref = V.reference_row(NEAR_TIES, 0, weighted=_exact_u(NEAR_TIES_WEIGHT, 0.1, 0, T))
    # (the TwoSum form of e^(a - m), which the weighted gradient takes since issue 20;
    # with e^a e^-m this row's exps happen to round the naive form to 3.9 ULP)
    old = _kernels.nll_weighted_grad(NEAR_TIES[None], u[None], moderate=False)[0]
    assert max(M.ulp_error(g, e, scale=s) for g, e, s in
               zip(old, ref.grad_weighted, ref.grad_weighted_scale)) > BOUND


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.floats(-50, 50), st.floats(1e-12, 1e-5), st.floats(0.0, 1.0),
       st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), st.data())
def test_weights_and_smoothing_near_ties_and_tiny_losses(T, base, spread, lead, eps, data):
    """Near ties (spread tiny) or a clear winner (lead up to 40: with eps = 0, losses
    down to ~1e-17)."""
    offsets = data.draw(hnp.arrays(np.float64, T, elements=st.floats(-1, 1)))
    row = base + spread * offsets
    c = data.draw(st.integers(0, T - 1))
    row[c] += 40.0 * lead  # the true class ahead: the loss down to ~1e-17
    weight = data.draw(hnp.arrays(np.float64, T, elements=st.floats(0.2, 2.0)))
    loss, grad = _weighted_ulps(row, c, weight, eps)
    assert loss <= BOUND and grad <= BOUND, (row, c, weight, eps, loss, grad)


# --------------------------------------------------------------------------- logsumexp b=
@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-60, 60)), st.data())
def test_weighted_logsumexp_within_4_ulp_of_its_scale(a, data):
    """Weights of both signs, zeros included: 4 ULP of |m| + |log|s|| +
    sum_{j != k} |b_j| e^{a_j - m} / |s| (the cancellation of the sum itself is the
    problem's, not the kernel's); the sign exact."""
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=st.one_of(
        st.just(0.0), st.floats(-3, 3).filter(lambda v: abs(v) > 1e-3))))
    if not b.any():
        return
    value, sign = numeric.logsumexp(a, b=b, return_sign=True)
    ref, ref_sign, scale = V.reference_lse_b(a, b)
    assert sign == ref_sign
    if ref_sign:
        assert M.ulp_error(value, ref, scale=scale) <= BOUND


def test_weighted_logsumexp_keeps_a_tiny_result():
    """m = 0 with weight 1 and a tail of e^-40: the result is ~4e-18; the max-shift
    formula m + log(sum b e^(a - m)) gives 0."""
    a, b = np.array([0.0, -40.0, -41.0]), np.array([1.0, 0.5, 2.0])
    ref, _, scale = V.reference_lse_b(a, b)
    assert M.ulp_error(numeric.logsumexp(a, b=b), ref, scale=scale) <= BOUND
    assert M.ulp_error(np.log(np.sum(b * np.exp(a))), ref, scale=scale) > 1e6


# --------------------------------------------------------------------------- the accurate row sum
@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 300)),
                  elements=st.floats(0, 1e300) | st.floats(0, 1e-300) | st.floats(0, 1)))
def test_accurate_row_sum_is_about_correctly_rounded(x):
    """The kernels' sum of u (and of the logsumexp_b tail): within 0.5 ULP (plus
    ~T^3 eps^2) of the exact sum of non-negative terms, where a plain sum of T terms
    may be off by several."""
    from fractions import Fraction

    from numeric import _kernels
    got = _kernels._accurate_sum(x)[:, 0]
    for value, row in zip(got, x):
        exact = sum(map(Fraction, row.tolist()))  # not rounded at all (fsum rounds it)
        assert abs(Fraction(value) - exact) <= Fraction(0.5000001) * Fraction(np.spacing(value))


def test_plain_row_sum_fails_where_the_accurate_one_holds():
    from fractions import Fraction

    from numeric import _kernels
    # 1 + 127 * 2^-53: NumPy's plain sum adds the 15 tiny terms of 1's lane to 1 one by one
    x = np.array([[1.0] + [2.0 ** -53] * 127])
    exact = sum(map(Fraction, x[0].tolist()))
    ulp = Fraction(np.spacing(1.0))
    assert abs(Fraction(float(np.sum(x))) - exact) / ulp > 3
    assert abs(Fraction(float(_kernels._accurate_sum(x)[0, 0])) - exact) / ulp <= Fraction(1, 2)
