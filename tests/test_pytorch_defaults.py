"""What PyTorch and SciPy users expect (issue 11): PyTorch's defaults and reductions,
binary weight=, the FC layer on (..., N) inputs, SciPy's logsumexp shapes, errors that
give the fix, and numeric.__version__."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import numeric

ROOT = Path(__file__).resolve().parent.parent
CE = (numeric.cross_entropy, numeric.cross_entropy_grad, numeric.cross_entropy_with_grad)


# --------------------------------------------------------------------------- defaults
def test_defaults_are_pytorchs():
    a = np.random.default_rng(0).normal(size=(5, 4))
    c = np.array([0, 3, -100, 1, 2])  # -100: PyTorch's default ignore_index
    loss, grad = numeric.cross_entropy_with_grad(a, c)
    per_sample = numeric.cross_entropy(a, c, reduction="none")
    assert per_sample[2] == 0
    assert loss == pytest.approx(per_sample[[0, 1, 3, 4]].mean(), rel=1e-15)
    np.testing.assert_array_equal(grad, numeric.cross_entropy_grad(a, c, reduction="none") / 4)
    z, y = np.array([-1.0, 2.0, 0.5]), np.array([0.0, 1.0, 0.25])
    assert numeric.binary_cross_entropy_with_logits(z, y) == pytest.approx(
        numeric.binary_cross_entropy_with_logits(z, y, reduction="none").mean(), rel=1e-15)
    for f in CE + (numeric.linear_cross_entropy,):
        params = inspect.signature(f).parameters
        assert params["reduction"].default == "mean" and params["ignore_index"].default == -100


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_reduced_loss_is_a_numpy_scalar_of_the_result_dtype(dtype):
    a = np.zeros((3, 4), dtype=dtype)
    for reduction in ("mean", "sum"):
        for loss in (numeric.cross_entropy(a, np.array([0, 1, 2]), reduction=reduction),
                     numeric.cross_entropy(a, np.full((3, 4), 0.25, dtype=dtype), reduction=reduction),
                     numeric.cross_entropy_with_grad(a, np.array([0, 1, 2]), weight=[1, 2, 3, 4],
                                                     reduction=reduction)[0],
                     numeric.binary_cross_entropy_with_logits(a, a, reduction=reduction),
                     numeric.linear_cross_entropy(np.ones((3, 2), dtype), np.ones((4, 2), dtype),
                                                  None, np.array([0, 1, 2]), reduction=reduction)[0]):
            assert isinstance(loss, np.generic) and not isinstance(loss, np.ndarray)
            assert type(loss) is np.dtype(dtype).type


def test_probability_targets_accept_the_default_ignore_index_only():
    a, y = np.zeros((1, 2)), np.array([[0.5, 0.5]])
    assert numeric.cross_entropy(a, y) == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="ignore_index applies to integer class targets only"):
        numeric.cross_entropy(a, y, ignore_index=0)


def test_mean_over_nothing_is_nan_with_pytorchs_gradient():
    """All targets ignored: NaN loss, zero gradient (nothing counts). All weights 0:
    NaN loss and NaN gradient in the counted rows (PyTorch: w (-1/0) = NaN)."""
    a = np.random.default_rng(1).normal(size=(3, 4))
    loss, grad = numeric.cross_entropy_with_grad(a, np.full(3, -100))
    assert np.isnan(loss) and (grad == 0).all()
    loss, grad = numeric.cross_entropy_with_grad(a, np.array([0, 0, -100]), weight=[0.0, 1, 1, 1])
    assert np.isnan(loss) and np.isnan(grad[:2]).all() and (grad[2] == 0).all()
    assert numeric.cross_entropy(a, np.full(3, -100), reduction="sum") == 0
    empty = numeric.binary_cross_entropy_with_logits(np.zeros(0), np.zeros(0))
    assert np.isnan(empty)


# --------------------------------------------------------------------------- binary weight=
def test_binary_weight_scales_loss_and_gradient():
    rng = np.random.default_rng(2)
    z, y = rng.normal(0, 3, (4, 3)), rng.uniform(0, 1, (4, 3))
    w, pw = rng.uniform(0, 2, 3), np.array([1.0, 2.0, 0.5])
    for reduction in ("none", "mean", "sum"):
        loss, grad = numeric.binary_cross_entropy_with_logits_with_grad(z, y, weight=w, pos_weight=pw,
                                                                        reduction=reduction)
        plain, plain_grad = numeric.binary_cross_entropy_with_logits_with_grad(z, y, pos_weight=pw,
                                                                               reduction="none")
        want = w * plain
        want = {"none": want, "mean": want.mean(), "sum": want.sum()}[reduction]
        np.testing.assert_allclose(loss, want, rtol=1e-14)
        scale = {"none": 1, "mean": 1 / z.size, "sum": 1}[reduction]
        np.testing.assert_allclose(grad, w * plain_grad * scale, rtol=1e-14)
    # weight 0 on an infinite loss: 0 (0 * inf = 0)
    assert numeric.binary_cross_entropy_with_logits(np.array([np.inf]), np.array([0.0]), weight=[0.0],
                                                    reduction="none")[0] == 0


# --------------------------------------------------------------------------- linear
@pytest.mark.parametrize("lead", [(), (6,), (2, 3)])
def test_linear_takes_leading_axes_as_torch_linear(lead):
    rng = np.random.default_rng(3)
    N, T = 4, 5
    x, W, b = rng.normal(size=lead + (N,)), rng.normal(size=(T, N)), rng.normal(size=T)
    c = rng.integers(0, T, size=lead)
    flat_x, flat_c = x.reshape(-1, N), c.reshape(-1)
    for reduction in ("none", "mean"):
        loss, dx, dW, db = numeric.linear_cross_entropy(x, W, b, c, reduction=reduction)
        want = numeric.linear_cross_entropy(flat_x, W, b, flat_c, reduction=reduction)
        assert np.shape(loss) == (lead if reduction == "none" else ())
        assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
        np.testing.assert_array_equal(np.reshape(loss, -1), np.reshape(want[0], -1))
        np.testing.assert_array_equal(dx.reshape(-1, N), want[1])


@pytest.mark.parametrize("dx_,dW_,db_,want", [
    (np.float32, np.float64, np.float32, np.float64), (np.float32, np.float32, None, np.float32),
    (np.float16, np.float32, np.float16, np.float32), (np.int64, np.float32, np.float32, np.float64),
    (np.float16, np.float16, np.float16, np.float16)])
def test_linear_results_take_the_promoted_dtype(dx_, dW_, db_, want):
    x, W = np.ones((2, 3), dx_), np.ones((4, 3), dW_)
    b = None if db_ is None else np.zeros(4, db_)
    loss, dx, dW, db = numeric.linear_cross_entropy(x, W, b, np.array([0, 1]))
    assert {np.dtype(type(loss)), dx.dtype, dW.dtype, db.dtype} == {np.dtype(want)}


# --------------------------------------------------------------------------- logsumexp as SciPy
scipy_special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize("axis", [None, 0, -1, (0,), ()])
def test_logsumexp_of_0d_input_has_scipys_shape(axis):
    for keepdims in (False, True):
        got = numeric.logsumexp(np.float64(3.0), axis=axis, keepdims=keepdims)
        want = scipy_special.logsumexp(np.float64(3.0), axis=axis, keepdims=keepdims)
        assert np.shape(got) == np.shape(want) and got == want


@pytest.mark.parametrize("axis", [True, False, np.bool_(True), (0, True)])
def test_boolean_axis_is_a_type_error(axis):
    for f in (numeric.logsumexp, numeric.softmax, numeric.log_softmax):
        for x in (np.ones((2, 3)), np.float64(1.0)):
            with pytest.raises(TypeError, match="axis must be an int"):
                f(x, axis=axis)


# --------------------------------------------------------------------------- errors with the fix
def test_pytorch_layout_suggests_axis_1():
    a, c = np.zeros((2, 5, 7)), np.zeros((2, 7), dtype=np.int64)
    for f in CE:
        with pytest.raises(ValueError, match=r"classes look to be on axis 1 .*: pass axis=1"):
            f(a, c)
    assert np.shape(numeric.cross_entropy(a, c, axis=1, reduction="none")) == (2, 7)


def test_integer_one_hot_targets_suggest_a_float_dtype():
    a, onehot = np.zeros((2, 3)), np.eye(3, dtype=np.int64)[[0, 2]]
    for f in CE:
        with pytest.raises(ValueError, match=r"use a float dtype, e.g. target.astype\(np.float64\)"):
            f(a, onehot)


# --------------------------------------------------------------------------- version
def test_version_is_the_distributions():
    text = (ROOT / "pyproject.toml").read_text()
    assert numeric.__version__ == re.search(r'^version = "([^"]+)"', text, re.M).group(1)


# --------------------------------------------------------------------------- logsumexp b=, return_sign=
@pytest.mark.parametrize("kw", [{"axis": -1}, {"axis": 0}, {"axis": None}, {"axis": -1, "keepdims": True},
                                {"axis": (0, 1), "keepdims": True}])
def test_logsumexp_b_and_return_sign_as_scipy(kw):
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 3, (4, 5)), rng.normal(size=(4, 5))
    b[0] = np.abs(b[0])
    for return_sign in (False, True):
        with np.errstate(invalid="ignore"):
            want = scipy_special.logsumexp(a, b=b, return_sign=return_sign, **kw)
        got = numeric.logsumexp(a, b=b, return_sign=return_sign, **kw)
        if not return_sign:
            got, want = (got,), (want,)
        for g, w in zip(got, want):
            assert np.shape(g) == np.shape(w)
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=0)


@pytest.mark.parametrize("a,b,want", [
    ([1.0, 2.0], [1.0, -1.0], (1.5413248546129181, -1.0)),
    ([-np.inf, -np.inf], [1.0, 1.0], (-np.inf, 0.0)), ([1.0, 2.0], [0.0, 0.0], (-np.inf, 0.0)),
    ([np.inf, 2.0], [-1.0, 1.0], (np.inf, -1.0)), ([np.inf, np.inf], [-1.0, 1.0], (np.nan, np.nan)),
    ([1.0, 1.0], [1.0, -1.0], (-np.inf, 0.0)), ([np.nan, 1.0], [1.0, 1.0], (np.nan, np.nan)),
    ([5.0, 900.0], [1.0, 0.0], (5.0, 1.0)),  # b = 0 leaves the term out, also from the max
])
def test_logsumexp_b_edges_as_scipy(a, b, want):
    got = numeric.logsumexp(np.array(a), b=np.array(b), return_sign=True)
    np.testing.assert_array_equal(got, want)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(scipy_special.logsumexp(np.array(a), b=np.array(b), return_sign=True), want)


def test_logsumexp_b_negative_sum_is_nan_without_return_sign():
    assert np.isnan(numeric.logsumexp([1.0, 2.0], b=[1.0, -1.0]))
    assert numeric.logsumexp(np.float32([1, 2]), b=np.float32([1, 1])).dtype == np.float32
    assert numeric.logsumexp(np.float32([1, 2]), b=[1.0, 1.0]).dtype == np.float64  # as SciPy


def test_logsumexp_b_bad_input():
    with pytest.raises(TypeError, match="b must be real numbers"):
        numeric.logsumexp([1.0, 2.0], b=[1j, 1])
    with pytest.raises(ValueError, match=r"b must be finite; got nan at position \(1,\)"):
        numeric.logsumexp([1.0, 2.0], b=[1.0, np.nan])
    with pytest.raises(ValueError, match=r"b of shape \(3,\) does not broadcast"):
        numeric.logsumexp([1.0, 2.0], b=[1.0, 1.0, 1.0])
