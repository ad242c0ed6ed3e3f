"""Corners found by a demanding user (issue 11, defects 4-7): the gradient of the loss
actually computed, crashes on valid input, the non-finite rules, and warnings."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numeric
from derive import measure as M

NONE = dict(reduction="none")


# --------------------------------------------------------------------------- 4: gradient
def _central_differences(loss, a, h=1e-5):
    """d sum(loss)/da by central differences, one component at a time."""
    out = np.empty_like(a)
    for i in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[i] += h
        down[i] -= h
        out[i] = (np.sum(loss(up)) - np.sum(loss(down))) / (2 * h)
    return out


def test_float16_probability_target_gradient_is_the_derivative_of_the_loss():
    """The issue's example: y sums to 1.03 (within float16's tolerance, accepted); the
    loss is sum_j y_j (-log S_j), so the gradient is S sum y - y, not S - y."""
    y = np.array([[0.26, 0.26, 0.26, 0.25]], dtype=np.float16)
    grad = numeric.cross_entropy_grad(np.zeros((1, 4)), y, **NONE)
    yy = y.astype(np.float64)
    want = 0.25 * yy.sum() - yy  # [-.0025, -.0025, -.0025, .0075]
    np.testing.assert_allclose(grad, want, rtol=1e-13, atol=1e-16)
    M.check_grads(lambda x: numeric.cross_entropy(x, y, **NONE),
                  lambda x: numeric.cross_entropy_grad(x, y, **NONE), np.zeros((1, 4)))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, (3, 5), elements=st.floats(-30, 30)),
       hnp.arrays(np.float64, (3, 5), elements=st.floats(0.01, 1)),
       st.sampled_from([np.float16, np.float32, np.float64]), st.floats(-1, 1))
def test_gradient_is_the_derivative_for_every_accepted_target(a, raw, dtype, where):
    """Rows of y summing to 1 anywhere within the tolerance: the gradient agrees with
    central differences of the loss, and equals S sum y - y."""
    tol = float(np.sqrt(np.finfo(dtype).eps))
    y = (raw / raw.sum(axis=1, keepdims=True) * (1 + 0.9 * where * tol)).astype(dtype)
    if np.any(np.abs(y.astype(np.float64).sum(axis=1) - 1) > tol):
        return  # the cast moved the sum out of the tolerance: refused, as it should be
    np.testing.assert_allclose(numeric.cross_entropy_grad(a, y, **NONE),
                               _central_differences(lambda x: numeric.cross_entropy(x, y, **NONE), a),
                               rtol=0, atol=1e-6)
    yy = y.astype(np.float64)
    want = numeric.softmax(a) * yy.sum(axis=1, keepdims=True) - yy
    np.testing.assert_allclose(numeric.cross_entropy_grad(a, y, **NONE), want, rtol=0,
                               atol=8 * np.finfo(np.float64).eps)


# --------------------------------------------------------------------------- 5: crashes
@pytest.mark.parametrize("z,y", [(0.5, 1.0), (np.float64(-2.0), np.float64(0.25)),
                                 (np.array(3.0), np.array(0.0))])
def test_binary_loss_of_0d_and_scalar_input(z, y):
    for reduction in ("none", "mean", "sum"):
        loss, grad = numeric.binary_cross_entropy_with_logits_with_grad(z, y, reduction=reduction)
        want = numeric.binary_cross_entropy_with_logits([z], [y], reduction="none")[0]
        assert float(loss) == want and np.shape(grad) == ()
        assert numeric.binary_cross_entropy_with_logits(z, y, reduction=reduction) == want
        assert np.shape(numeric.binary_cross_entropy_with_logits_grad(z, y, reduction=reduction)) == ()


@pytest.mark.parametrize("name", ["pos_weight", "weight"])
def test_binary_weight_that_would_enlarge_the_logits_is_refused(name):
    z, y = np.zeros(3), np.ones(3)
    for f in (numeric.binary_cross_entropy_with_logits, numeric.binary_cross_entropy_with_logits_grad,
              numeric.binary_cross_entropy_with_logits_with_grad):
        with pytest.raises(ValueError, match=rf"{name} of shape \(2, 3\) does not broadcast to the "
                                             r"logits' shape \(3,\)"):
            f(z, y, **{name: np.ones((2, 3))})


def test_nan_class_weight_is_a_value_error_naming_it():
    for bad, where in ((np.nan, 1), (np.inf, 1), (-2.0, 1)):
        with pytest.raises(ValueError, match=rf"weight must be finite and non-negative; got {bad} at class {where}"):
            numeric.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=[1.0, bad, 1.0])


@pytest.mark.parametrize("eps", ["0.1", True, np.bool_(True), None, [0.1]])
def test_label_smoothing_must_be_a_number(eps):
    with pytest.raises(TypeError, match="label_smoothing must be a number in"):
        numeric.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=eps)


# --------------------------------------------------------------------------- 6: non-finite
def test_one_class_nan_row_is_nan():
    a = np.array([[np.nan], [1.0]])
    s = numeric.softmax(a)
    assert np.isnan(s[0, 0]) and s[1, 0] == 1
    assert np.isnan(numeric.log_softmax(a)[0, 0])
    loss, grad = numeric.cross_entropy_with_grad(a, np.array([0, 0]), **NONE)
    assert np.isnan(loss[0]) and np.isnan(grad[0, 0]) and loss[1] == 0 and grad[1, 0] == 0


def _all_minus_inf_paths():
    """Every option path for a row of only -inf with target mass 0 after weighting."""
    a = np.full((1, 3), -np.inf)
    c, onehot = np.array([0]), np.array([[1.0, 0.0, 0.0]])
    w = [0.0, 1.0, 1.0]
    return {
        "index, weight": numeric.cross_entropy_with_grad(a, c, weight=w, **NONE),
        "index, weight, smoothing 0": numeric.cross_entropy_with_grad(a, c, weight=w, label_smoothing=0.0, **NONE),
        "index, weight, sum": numeric.cross_entropy_with_grad(a, c, weight=w, reduction="sum"),
        "soft, weight": numeric.cross_entropy_with_grad(a, onehot, weight=w, **NONE),
        "soft, weight, sum": numeric.cross_entropy_with_grad(a, onehot, weight=w, reduction="sum"),
    }


def test_zero_times_inf_is_zero_on_every_path():
    """-log S_j = +inf for every class of an all -inf row; times a target mass of 0 it
    is 0 (the one convention), whatever path the options take; the gradient is -u."""
    for path, (loss, grad) in _all_minus_inf_paths().items():
        assert np.all(loss == 0), path
        np.testing.assert_array_equal(grad, [[0.0, 0.0, 0.0]], err_msg=path)
    # with mass, +inf on every path
    a = np.full((1, 3), -np.inf)
    for loss in (numeric.cross_entropy(a, np.array([1]), weight=[0, 1, 1], **NONE),
                 numeric.cross_entropy(a, np.array([[0.0, 1.0, 0.0]]), weight=[0, 1, 1], **NONE),
                 numeric.cross_entropy(a, np.array([0]), label_smoothing=0.1, **NONE)):
        assert loss[0] == np.inf


@pytest.mark.parametrize("opts", [dict(ignore_index=-100), dict(weight=[0.0, 1.0, 1.0]),
                                  dict(weight=[0.0, 1.0, 1.0], label_smoothing=0.2)])
def test_nan_row_is_nan_also_when_ignored_or_of_weight_zero(opts):
    a = np.array([[np.nan, 0.0, 0.0], [0.0, 1.0, 2.0]])
    c = np.array([-100 if "ignore_index" in opts else 0, 1])
    loss, grad = numeric.cross_entropy_with_grad(a, c, **opts, **NONE)
    assert np.isnan(loss[0]) and np.isnan(grad[0]).all()
    assert np.isfinite(loss[1]) and np.isfinite(grad[1]).all()
    for reduction in ("mean", "sum"):
        loss, grad = numeric.cross_entropy_with_grad(a, c, **opts, reduction=reduction)
        assert np.isnan(loss) and np.isnan(grad[0]).all() and np.isfinite(grad[1]).all()


# --------------------------------------------------------------------------- 7: warnings
def _calls_on_finite_input():
    """Finite input whose float16/float32 results overflow in the final cast, through
    every path; a matmul that overflows; soft targets whose row sum overflows; logits
    whose exponentials underflow."""
    big16 = np.array([[6e4, -6e4], [0.0, 1.0]], dtype=np.float16)  # a loss of 1.2e5 > 65504
    tiny = np.array([[0.0, -740.0, -1000.0, 3.0]])
    c = np.array([1, 0])
    yield "plain float16", lambda: numeric.cross_entropy(big16, c, reduction="none")
    for reduction in ("mean", "sum"):
        yield f"reduction {reduction}", lambda r=reduction: numeric.cross_entropy_with_grad(big16, c, reduction=r)
    yield "weights", lambda: numeric.cross_entropy_with_grad(big16, c, weight=[1, 2], reduction="none")
    yield "ignored", lambda: numeric.cross_entropy_with_grad(big16, np.array([1, -100]), reduction="none")
    yield "float32 mean", lambda: numeric.cross_entropy(np.float32([[0, -3e38], [0, 1]]), np.array([1, 1]),
                                                        reduction="sum")
    yield "binary", lambda: numeric.binary_cross_entropy_with_logits_with_grad(
        np.float16([-6e4, 1]), np.float16([1, 0]), pos_weight=2.0, reduction="none")
    yield "binary sum", lambda: numeric.binary_cross_entropy_with_logits(np.float32([-3e38, -3e38]),
                                                                       np.float32([1, 1]), reduction="sum")
    yield "linear matmul", lambda: numeric.linear_cross_entropy(
        np.array([[1e200]]), np.array([[1e200], [0.0]]), None, np.array([0]))
    yield "softmax underflow", lambda: numeric.softmax(tiny)
    yield "log_softmax underflow", lambda: numeric.log_softmax(tiny)
    yield "logsumexp underflow", lambda: numeric.logsumexp(tiny)
    yield "cross entropy underflow", lambda: numeric.cross_entropy_with_grad(tiny, np.array([1]))
    yield "smoothing underflow", lambda: numeric.cross_entropy_with_grad(tiny, np.array([1]), label_smoothing=0.1)
    yield "binary underflow", lambda: numeric.binary_cross_entropy_with_logits_with_grad(
        np.array([-800.0, 740.0]), np.array([0.0, 1.0]))


def test_no_warning_and_no_callers_errstate_on_finite_input():
    for name, call in _calls_on_finite_input():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                call()
            except RuntimeWarning as err:
                pytest.fail(f"{name}: {err}")
        with np.errstate(all="raise"):
            try:
                call()
            except FloatingPointError as err:
                pytest.fail(f"{name}: the caller's errstate reached inside: {err}")


def test_overflowing_soft_target_row_sum_is_an_error_without_a_warning():
    y = np.array([[1e308, 1e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="sum to 1 along the class axis; row 0 sums to inf"):
            numeric.cross_entropy(np.zeros((1, 2)), y)
