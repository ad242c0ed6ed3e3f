"""The fast paths give what the general path gives (issue 20): the small direct path of
cross_entropy over every integer target dtype, every option and the edges of its
dispatch, and the smaller input rules that one path had and the other lacked."""
from __future__ import annotations

import numpy as np
import pytest

import numeric
from numeric import _cross_entropy

FUNCTIONS = [numeric.cross_entropy, numeric.cross_entropy_grad, numeric.cross_entropy_with_grad]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _outcome(function, *args, **kwargs):
    """The results, or the error's type and message."""
    try:
        return function(*args, **kwargs)
    except (ValueError, TypeError) as err:
        return type(err), str(err)


def _general(monkeypatch, function, *args, **kwargs):
    """``function`` with the direct path switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(_cross_entropy, "SMALL_ELEMENTS", 0)
        return _outcome(function, *args, **kwargs)


def _same(a, b):
    if isinstance(a, tuple) and a and isinstance(a[0], type):
        assert a == b
        return
    assert not (isinstance(b, tuple) and b and isinstance(b[0], type)), b
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True)


def _targets(dtype, classes, rows):
    """Valid classes of ``dtype`` below ``classes``, with -100 (ignored) in rows 0 and 2
    for signed dtypes."""
    top = min(classes, int(np.iinfo(dtype).max) + 1)
    tgt = (np.arange(rows) * 7919 % top).astype(dtype)
    if np.iinfo(dtype).min < 0:
        tgt[0] = tgt[2 % rows] = -100
    return tgt


#: T at the edges where a signed target viewed as unsigned passes for a class index
#: (int8 -100 is 156, any int8 below 256, int16 -100 is 65436)
EDGE_CLASSES = [5, 155, 156, 157, 255, 256, 257, 65435, 65436, 65437]


@pytest.mark.parametrize("classes", EDGE_CLASSES)
@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_direct_path_over_every_target_dtype_is_the_general_path(monkeypatch, dtype, classes):
    """Issue 20, item 1: int8 -100 at T > 156 was scored as class T - 100 (int16 at
    T > 65436), and any negative int8 was accepted at T > 256."""
    rows = 4 if classes > 1000 else 6
    logits = np.random.default_rng(classes).normal(0, 3, (rows, classes))
    tgt = _targets(dtype, classes, rows)
    for function in FUNCTIONS:
        for reduction in ("none", "mean"):
            got = _outcome(function, logits, tgt, reduction=reduction)
            _same(got, _general(monkeypatch, function, logits, tgt, reduction=reduction))
    if np.iinfo(dtype).min < 0:
        losses = numeric.cross_entropy(logits, tgt, reduction="none")
        assert losses[0] == losses[2] == 0.0  # ignored, whatever T is


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [157, 257, 65437])
def test_negative_targets_other_than_ignore_index_are_refused_on_both_paths(monkeypatch, dtype, classes):
    logits = np.zeros((2, classes))
    tgt = np.array([-1, 0], dtype)
    got = _outcome(numeric.cross_entropy, logits, tgt)
    assert got[0] is ValueError and "target -1" in got[1]
    _same(got, _general(monkeypatch, numeric.cross_entropy, logits, tgt))


OPTIONS = [{}, {"weight": np.linspace(0.5, 2.0, 7)}, {"ignore_index": 3}, {"ignore_index": None},
           {"label_smoothing": 0.3}, {"label_smoothing": 1.0}, {"reduction": "sum"}, {"reduction": "none"}]


@pytest.mark.parametrize("options", OPTIONS, ids=[str(sorted(o)) for o in OPTIONS])
@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_direct_path_with_every_option_is_the_general_path(monkeypatch, dtype, options):
    logits = np.random.default_rng(1).normal(0, 3, (9, 7))
    tgt = (np.arange(9) % 7).astype(dtype)
    for function in FUNCTIONS:
        _same(_outcome(function, logits, tgt, **options),
              _general(monkeypatch, function, logits, tgt, **options))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_probability_targets_leave_the_direct_path_to_the_general_one(monkeypatch, dtype):
    logits = np.random.default_rng(2).normal(0, 3, (9, 7))
    target = np.random.default_rng(3).dirichlet(np.ones(7), 9).astype(dtype)
    for function in FUNCTIONS:
        for reduction in ("none", "mean"):
            _same(_outcome(function, logits, target, reduction=reduction),
                  _general(monkeypatch, function, logits, target, reduction=reduction))


#: logits at the edges of the direct path's range [-708, 600] and size 2^17
BOUNDARY_LOGITS = {
    "-708": np.array([[-708.0, 0.0, 1.0], [2.0, -708.0, 0.5]]),
    "just below -708": np.array([[np.nextafter(-708.0, -1e3), 0.0, 1.0], [2.0, 0.0, 0.5]]),
    "600": np.array([[600.0, 0.0, 599.0], [2.0, 600.0, 0.5]]),
    "just above 600": np.array([[np.nextafter(600.0, 1e3), 0.0, 1.0], [2.0, 600.0, 0.5]]),
    "708": np.array([[708.0, 0.0, 1.0], [2.0, -708.0, 0.5]]),
    "2^17 elements": np.random.default_rng(2).normal(0, 3, (2 ** 17 // 64, 64)),
    "2^17 + 64 elements": np.random.default_rng(3).normal(0, 3, (2 ** 17 // 64 + 1, 64)),
}


@pytest.mark.parametrize("case", BOUNDARY_LOGITS)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int64, np.uint64], ids=lambda d: np.dtype(d).name)
def test_direct_path_at_the_edges_of_its_dispatch_is_the_general_path(monkeypatch, case, dtype):
    logits = BOUNDARY_LOGITS[case]
    tgt = (np.arange(logits.shape[0]) % logits.shape[1]).astype(dtype)
    for function in FUNCTIONS:
        _same(_outcome(function, logits, tgt), _general(monkeypatch, function, logits, tgt))


# ------------------------------------------------------------------- smaller input rules
def test_a_one_element_target_for_one_dimensional_logits_is_one_sample():
    """Issue 20, item 8: cross_entropy refused a (1,) target for (T,) logits that
    linear_cross_entropy (and PyTorch) accept; one rule for both: it is the sample's
    class, as a 0-d target is."""
    logits = np.array([0.5, 2.0, -1.0])
    for reduction in ("none", "mean", "sum"):
        want = numeric.cross_entropy(logits, np.array(1), reduction=reduction)
        got = numeric.cross_entropy(logits, np.array([1]), reduction=reduction)
        assert got.shape == want.shape == () and got == want
        np.testing.assert_array_equal(numeric.cross_entropy_grad(logits, np.array([1]), reduction=reduction),
                                      numeric.cross_entropy_grad(logits, np.array(1), reduction=reduction))
        W = np.eye(3)
        loss = numeric.linear_cross_entropy(logits, W, None, np.array([1]), reduction=reduction)[0]
        assert loss.shape == () and abs(loss - want) <= 4e-16 * abs(want)


MASKED = np.ma.masked_array(np.zeros((2, 3)), [[0, 0, 1], [0, 0, 0]])


@pytest.mark.parametrize("call", [
    lambda: numeric.softmax(MASKED),
    lambda: numeric.logsumexp(MASKED),
    lambda: numeric.logsumexp(np.zeros((2, 3)), b=MASKED),
    lambda: numeric.cross_entropy(MASKED, np.array([0, 1])),
    lambda: numeric.cross_entropy(np.zeros((2, 3)), np.ma.masked_array([0, 1], [1, 0])),
    lambda: numeric.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ma.masked_array(np.ones(3))),
    lambda: numeric.binary_cross_entropy_with_logits(MASKED, np.zeros((2, 3))),
    lambda: numeric.linear_cross_entropy(MASKED, np.eye(3), None, np.array([0, 1])),
    lambda: numeric.linear_cross_entropy(np.zeros((2, 3)), np.eye(3), None, np.ma.masked_array([0, 1], [1, 0])),
], ids=["softmax", "logsumexp", "logsumexp b", "ce logits", "ce target", "ce weight", "bce", "linear x",
        "linear target"])
def test_masked_arrays_are_refused_not_silently_unmasked(call):
    """Issue 20, item 8: the mask was dropped (np.asarray keeps the data under it). The
    runtime refuses masked arrays and says what to pass instead."""
    with pytest.raises(TypeError, match="masked array.*np.ma.filled"):
        call()


def test_an_empty_class_axis_of_W_is_named_also_for_an_empty_batch():
    """Issue 20, item 8: W of shape (0, N) with B = 0 raised ZeroDivisionError inside
    the tiles; as for cross_entropy's logits, no class is an error naming the shape."""
    for rows in (0, 2):
        with pytest.raises(ValueError, match=r"W has no classes.*\(0, 3\)"):
            numeric.linear_cross_entropy(np.zeros((rows, 3)), np.zeros((0, 3)), None, np.zeros(rows, int))
    with pytest.raises(ValueError, match="the class axis is empty"):
        numeric.cross_entropy(np.zeros((0, 0)), np.zeros(0, int))
