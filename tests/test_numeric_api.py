"""The runtime API: properties, edge cases, bad input, scipy compatibility."""
from __future__ import annotations

import ast
import functools
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numeric
from numeric import log_softmax, logsumexp, softmax

# these tests are about per-sample values: reduction="none" (the default is "mean",
# tested in tests/test_pytorch_defaults.py)
cross_entropy = functools.partial(numeric.cross_entropy, reduction="none")
cross_entropy_grad = functools.partial(numeric.cross_entropy_grad, reduction="none")
cross_entropy_with_grad = functools.partial(numeric.cross_entropy_with_grad, reduction="none")

ROOT = Path(__file__).resolve().parent.parent
EPS = np.finfo(np.float64).eps

logit_rows = hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 12)),
                        elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))


# --------------------------------------------------------------------------- properties
@given(logit_rows)
@example(np.array([[0.0, -745.0, -1e3]]))
@example(np.array([[1e3, 1e3, 1e3]]))
def test_softmax_rows_sum_to_one(a):
    s = softmax(a)
    assert np.all(s >= 0) and np.all(s <= 1)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=0, atol=4 * EPS * a.shape[-1])


@given(logit_rows, st.integers(-1000, 1000))
def test_softmax_shift_invariant(a, shift):
    a = np.round(a)  # integer logits: a + shift is exact
    np.testing.assert_allclose(softmax(a + shift), softmax(a), rtol=8 * EPS, atol=1e-300)


@given(logit_rows)
@example(np.array([[3.0, 3.0 + 1e-6, -1e3]]))
def test_order_and_argmax_kept(a):
    s = softmax(a)
    order = np.argsort(a, axis=-1, kind="stable")
    ranked = np.take_along_axis(s, order, axis=-1)
    # larger logit, larger (or equal up to rounding) probability
    assert np.all(np.diff(ranked, axis=-1) >= -4 * EPS * ranked[:, 1:])
    top2 = np.sort(a, axis=-1)[:, -2:] if a.shape[1] > 1 else None
    if top2 is not None:
        clear = top2[:, 1] - top2[:, 0] > 1e-9
        assert np.array_equal(np.argmax(s, axis=-1)[clear], np.argmax(a, axis=-1)[clear])


@given(logit_rows, st.data())
def test_gradient_rows_sum_to_zero(a, data):
    c = data.draw(hnp.arrays(np.int64, a.shape[:1], elements=st.integers(0, a.shape[1] - 1)))
    g = cross_entropy_grad(a, c)
    np.testing.assert_allclose(g.sum(axis=-1), 0.0, atol=4 * EPS * a.shape[-1])


@given(logit_rows, st.data())
def test_soft_one_hot_equals_integer_targets(a, data):
    c = data.draw(hnp.arrays(np.int64, a.shape[:1], elements=st.integers(0, a.shape[1] - 1)))
    onehot = np.eye(a.shape[1])[c]
    loss_i, grad_i = cross_entropy_with_grad(a, c)
    loss_s, grad_s = cross_entropy_with_grad(a, onehot)
    # the fused soft kernel takes the TwoSum form (its gradient's accuracy, issue 20)
    # where the integer kernel takes e^a e^-m: the losses agree to a rounding
    np.testing.assert_allclose(loss_s, loss_i, rtol=2 * EPS, atol=0)
    # S_c - 1 by subtraction (soft) versus -sum_{j != c} S_j (integer): a few ULPs of 1
    np.testing.assert_allclose(grad_s, grad_i, rtol=4 * EPS, atol=4 * EPS)


@given(logit_rows)
def test_log_softmax_is_log_of_softmax_and_lse_consistent(a):
    # each function is within 4 ULP: log_softmax's error 4 ulp(log S) <= 4 eps |log S| is an
    # absolute error of log S, so exp multiplies it into a relative error of 4 eps |log S|
    # (not a fixed rtol: at log S = -512 that is 4.5e-13); softmax adds 4 eps, exp's own
    # rounding 1 eps. Below the normal range the ULP is absolute: 5 ULP of the smallest normal.
    ls = log_softmax(a)
    bound = EPS * (4 * np.abs(ls) + 4 + 1)
    err = np.abs(np.exp(ls) - softmax(a))
    assert np.all(err <= bound * softmax(a) + 5 * np.finfo(float).tiny * EPS), (a, err / softmax(a) / EPS)
    np.testing.assert_allclose(log_softmax(a), a - logsumexp(a, keepdims=True),
                               rtol=1e-12, atol=1e-12 * np.abs(a).max())


# --------------------------------------------------------------------------- worked examples
def test_worked_examples_of_the_design():
    np.testing.assert_allclose(softmax([1.0, 2.0, 3.0]), [0.0900, 0.2447, 0.6652], atol=5e-5)
    for p, expected in (([0.1, 0.15, 0.05, 0.6, 0.1], 0.6), ([0.15, 0.2, 0.4, 0.1, 0.15], 0.1),
                        ([0.05, 0.15, 0.4, 0.3, 0.1], 0.3)):
        # logits log p give softmax = p; the true class is 4 (1-based), index 3
        assert cross_entropy(np.log(p), np.int64(3)) == pytest.approx(-np.log(expected), rel=1e-15)


# --------------------------------------------------------------------------- edge cases
def test_nan_row_is_nan_and_other_rows_untouched():
    a = np.arange(12.0).reshape(3, 4)
    bad = a.copy()
    bad[1, 2] = np.nan
    c = np.array([0, 1, 2])
    for f in (softmax, log_softmax):
        out = f(bad)
        assert np.isnan(out[1]).all()
        np.testing.assert_array_equal(out[[0, 2]], f(a)[[0, 2]])
    assert np.isnan(logsumexp(bad)[1]) and not np.isnan(logsumexp(bad)[[0, 2]]).any()
    loss, grad = cross_entropy_with_grad(bad, c)
    assert np.isnan(loss[1]) and np.isnan(grad[1]).all()
    np.testing.assert_array_equal(loss[[0, 2]], cross_entropy(a, c)[[0, 2]])


def test_minus_inf_is_a_masked_class():
    a = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = softmax(a)
        assert s[0, 1] == 0 and s[1, 0] == 0 and s[1, 1] == 1
        assert not np.isnan(log_softmax(a)).any()
        assert log_softmax(a)[0, 1] == -np.inf
        loss = cross_entropy(a, np.array([2, 1]))
        assert np.isfinite(loss).all()
        masked = cross_entropy(a, np.array([1, 0]))
        assert (masked == np.inf).all()
        grad = cross_entropy_grad(a, np.array([1, 0]))
        assert not np.isnan(grad).any()
        np.testing.assert_array_equal(grad[1], [-1.0, 1.0, 0.0])


def test_row_of_only_minus_inf():
    a = np.full((1, 3), -np.inf)
    np.testing.assert_array_equal(softmax(a), 0.0)
    np.testing.assert_array_equal(log_softmax(a), -np.inf)
    assert logsumexp(a)[0] == -np.inf
    loss, grad = cross_entropy_with_grad(a, np.array([2]))
    assert loss[0] == np.inf
    np.testing.assert_array_equal(grad, [[0.0, 0.0, -1.0]])
    soft = np.array([[0.25, 0.75, 0.0]])
    np.testing.assert_array_equal(cross_entropy_grad(a, soft), -soft)


def test_plus_inf_is_the_limit_of_growing_logits():
    a = np.array([[np.inf, 1.0, np.inf, -np.inf], [np.inf, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(softmax(a), [[0.5, 0, 0.5, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(log_softmax(a)[0], [-np.log(2), -np.inf, -np.log(2), -np.inf])
    np.testing.assert_array_equal(logsumexp(a), [np.inf, np.inf])
    loss = cross_entropy(a, np.array([0, 1]))
    np.testing.assert_allclose(loss, [np.log(2), np.inf])
    # the same as very large equal logits
    big = np.where(np.isposinf(a), 1e300, a)
    np.testing.assert_allclose(softmax(big), softmax(a))
    np.testing.assert_allclose(cross_entropy_grad(a, np.array([0, 0])),
                               cross_entropy_grad(big, np.array([0, 0])))


def test_no_runtime_warnings_for_finite_extremes():
    a = np.array([[1.7e308, -1.7e308, 0.0], [-1e308, 1e308, 5.0], [0.0, -800.0, 800.0]])
    y = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (softmax, log_softmax, logsumexp):
            f(a)
        for t in (np.array([1, 0, 1]), y):
            cross_entropy_with_grad(a, t)
    assert cross_entropy(a, np.array([1, 0, 1]))[0] == np.inf  # 3.4e308 overflows, correctly


def test_inputs_are_not_modified():
    a = np.random.default_rng(0).normal(size=(4, 5))
    y = np.random.default_rng(1).dirichlet(np.ones(5), 4)
    a0, y0 = a.copy(), y.copy()
    for t in (np.array([0, 1, 2, 3]), y):
        cross_entropy_with_grad(a, t)
        cross_entropy_grad(a, t)
    softmax(a), log_softmax(a), logsumexp(a)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize("dtype,out", [(np.float32, np.float32), (np.float16, np.float16),
                                       (np.float64, np.float64), (np.int32, np.float64),
                                       (np.bool_, np.float64)])
def test_dtypes(dtype, out):
    a = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    assert softmax(a).dtype == out and log_softmax(a).dtype == out and logsumexp(a).dtype == out
    loss, grad = cross_entropy_with_grad(a, np.array([0, 2]))
    assert loss.dtype == out and grad.dtype == out


def test_float32_is_rounded_once_from_float64():
    a = np.random.default_rng(3).normal(0, 10, size=(50, 7)).astype(np.float32)
    np.testing.assert_array_equal(softmax(a), softmax(a.astype(np.float64)).astype(np.float32))


# --------------------------------------------------------------------------- axes, scipy
scipy_special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 2), (2, 0), (0, 1, 2), None])
def test_drop_in_for_scipy(axis):
    x = np.random.default_rng(4).normal(0, 5, size=(3, 4, 5))
    for ours, theirs in ((softmax, scipy_special.softmax), (log_softmax, scipy_special.log_softmax),
                         (logsumexp, scipy_special.logsumexp)):
        got, want = ours(x, axis=axis), theirs(x, axis=axis)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(logsumexp(x, axis=axis, keepdims=True),
                               scipy_special.logsumexp(x, axis=axis, keepdims=True), rtol=1e-14)


def test_cross_entropy_along_another_axis():
    a = np.random.default_rng(5).normal(size=(4, 6, 3))  # classes on axis 1
    c = np.random.default_rng(6).integers(0, 6, size=(4, 3))
    moved = np.moveaxis(a, 1, -1)
    np.testing.assert_array_equal(cross_entropy(a, c, axis=1), cross_entropy(moved, c))
    np.testing.assert_array_equal(cross_entropy_grad(a, c, axis=1),
                                  np.moveaxis(cross_entropy_grad(moved, c), -1, 1))


def test_empty_batch_is_fine():
    assert softmax(np.zeros((0, 3))).shape == (0, 3)
    assert cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int)).shape == (0,)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("target,match", [
    (np.array([0, 3]), r"target 3 at position \(1,\) is not a class index in \[0, 3\)"),
    (np.array([-1, 0]), r"target -1 at position \(0,\)"),
    (np.array([0, 1, 2]), r"integer targets must have the logits' shape without the class axis, \(2,\); got \(3,\)"),
    (np.array([0.0, 1.0]), r"probability targets must have the logits' shape \(2, 3\); got \(2,\) "
                           r"\(for class indices use an integer dtype\)"),
    (np.array([[0.5, 0.6, -0.1], [1, 0, 0]]), r"non-negative; got -0.1 in row 0, class 2"),
    (np.array([[0.5, 0.6, 0.1], [1, 0, 0]]), r"sum to 1 along the class axis; row 0 sums to 1.2"),
    (np.array([[np.nan, 1, 0], [1, 0, 0]]), r"must be finite; got nan"),
    (np.array([True, False]), r"target is boolean"),
    (np.array(["a", "b"]), r"target must be integer class indices or float probabilities"),
])
def test_bad_targets(target, match):
    a = np.zeros((2, 3))
    for f in (cross_entropy, cross_entropy_grad, cross_entropy_with_grad):
        with pytest.raises((ValueError, TypeError), match=match):
            f(a, target)


def test_bad_logits():
    with pytest.raises(ValueError, match="class axis is empty"):
        softmax(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="class axis is empty"):
        cross_entropy(np.zeros((2, 0)), np.zeros(2, dtype=int))
    with pytest.raises(TypeError, match="logits must be numeric; got dtype <U1"):
        softmax(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="logits must be real; got complex"):
        logsumexp(np.array([1j, 2]))
    if np.dtype(np.longdouble) != np.dtype(np.float64):  # x86-64: 80-bit long double
        with pytest.raises(TypeError, match="use float16, float32 or float64"):
            softmax(np.zeros(3, dtype=np.longdouble))
    with pytest.raises(np.exceptions.AxisError, match="axis 2 is out of bounds"):
        softmax(np.zeros((2, 2)), axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        cross_entropy(np.zeros((2, 2)), np.zeros(2, dtype=int), axis=(0, 1))
    with pytest.raises(ValueError, match="class axis; got a 0-d array"):
        cross_entropy(3.0, np.int64(0))


# --------------------------------------------------------------------------- packaging
def test_import_numeric_does_not_import_sympy():
    code = "import sys, numeric; numeric.softmax([1.0, 2.0]); print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == "False"


def test_generated_module_imports_only_numpy_and_says_so():
    path = ROOT / "numeric" / "_kernels.py"
    text = path.read_text()
    import sympy

    assert text.startswith(f"# Generated by softmax-derive -- do not edit (SymPy {sympy.__version__}).")
    assert "python -m derive generate" in text.splitlines()[1]
    imports = [node for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [alias.name for node in imports for alias in node.names] == ["numpy"]
    for generated in (ROOT / "numeric").glob("*.py"):
        body = generated.read_text()
        if generated.name != "_kernels.py":
            assert "Generated by softmax-derive" not in body
        # below the header (which names the SymPy version that generated the file)
        code = "\n".join(body.splitlines()[1:]) if generated.name == "_kernels.py" else body
        assert "sympy" not in code.lower().replace("sympy's", "")


def test_public_api():
    assert set(numeric.__all__) == {"__version__", "softmax", "log_softmax", "logsumexp", "cross_entropy",
                                    "cross_entropy_grad", "cross_entropy_with_grad",
                                    "binary_cross_entropy_with_logits",
                                    "binary_cross_entropy_with_logits_grad",
                                    "binary_cross_entropy_with_logits_with_grad",
                                    "linear_cross_entropy"}
    for name in numeric.__all__:
        if name != "__version__":
            assert getattr(numeric, name).__doc__
