"""Small batches take a direct path (one kernel call on the whole array, issue 13):
it must give bit for bit what the general path (cache blocks, non-finite row scans)
gives, and leave every other kind of call to the general path."""
from __future__ import annotations

import numpy as np
import pytest

import numeric
from numeric import _blocks, _cross_entropy

FUNCTIONS = [numeric.cross_entropy, numeric.cross_entropy_grad, numeric.cross_entropy_with_grad]


def _general(monkeypatch, function, *args, **kwargs):
    """``function`` with the direct path switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(_cross_entropy, "SMALL_ELEMENTS", 0)
        return function(*args, **kwargs)


def _same(a, b):
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True)


CASES = {
    "digits-like": (np.random.default_rng(0).normal(0, 3, (37, 10)), {}),
    "spread over hundreds": (np.random.default_rng(1).uniform(-700, 700, (9, 6)), {}),
    "spread over the moderate range": (np.random.default_rng(11).uniform(-708, 600, (9, 6)), {}),
    # past the moderate range's top (600): the TwoSum form, in the general path
    "between 600 and 708": (np.random.default_rng(12).uniform(550, 700, (5, 4)), {}),
    "float32": (np.random.default_rng(2).normal(0, 3, (16, 5)).astype(np.float32), {}),
    "float16": (np.random.default_rng(3).normal(0, 3, (8, 4)).astype(np.float16), {}),
    "one class": (np.random.default_rng(4).normal(0, 3, (5, 1)), {}),
    # not for the direct path: the general path must take them (and gives the same)
    "past 708": (np.array([[709.0, 0.0, 1.0], [0.0, -800.0, 2.0]]), {}),
    "NaN and inf": (np.array([[np.nan, 0.0, 1.0], [np.inf, 0.0, -np.inf]]), {}),
    "ignored target": (np.random.default_rng(5).normal(0, 3, (6, 4)), {"ignore_index": 1}),
    "weights": (np.random.default_rng(6).normal(0, 3, (6, 4)), {"weight": np.arange(1.0, 5.0)}),
    "smoothing": (np.random.default_rng(7).normal(0, 3, (6, 4)), {"label_smoothing": 0.1}),
}


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", CASES)
def test_direct_path_is_bit_for_bit_the_general_path(monkeypatch, case, function, reduction):
    logits, options = CASES[case]
    target = np.arange(logits.shape[0]) % logits.shape[1]
    got = function(logits, target, reduction=reduction, **options)
    _same(got, _general(monkeypatch, function, logits, target, reduction=reduction, **options))


def test_small_moderate_calls_skip_the_block_machinery(monkeypatch):
    """What made a 256 x 10 call cost 3-4 plain max-shifts: the blocks, scans and
    options of the general path. The direct path never enters them."""
    def refuse(*args, **kwargs):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(_blocks, "run", refuse)
    a = np.random.default_rng(8).normal(0, 3, (256, 10))
    c = np.arange(256) % 10
    for function in FUNCTIONS:
        function(a, c)
        function(a, c, reduction="none", axis=1)
        function(a.astype(np.float32), c.astype(np.int32), reduction="sum")


@pytest.mark.parametrize("bad", [np.array([0, 10]), np.array([-1, 0]), np.array([[0], [1]]),
                                 np.array([0.0, 1.0])])
def test_bad_targets_get_the_general_paths_errors(bad):
    with pytest.raises((ValueError, TypeError)) as direct:
        numeric.cross_entropy_with_grad(np.zeros((2, 10)), bad)
    assert "target" in str(direct.value)


def test_reduced_results_are_scalars_of_the_logits_dtype():
    a = np.random.default_rng(9).normal(0, 3, (4, 3)).astype(np.float32)
    loss, grad = numeric.cross_entropy_with_grad(a, np.array([0, 1, 2, 0]))
    assert isinstance(loss, np.float32) and grad.dtype == np.float32


def test_the_direct_path_takes_exactly_the_moderate_range():
    """[-708, 600]: the kernels' moderate form needs e^{a_j} normal and the row sum of the
    e^{a_j} finite (issue 13); a logit past either end, or NaN, leaves the call to the
    general path (which takes the TwoSum form for those rows)."""
    c = np.array([0, 1])
    for edge, direct in ((600.0, True), (np.nextafter(600.0, np.inf), False), (-708.0, True),
                         (np.nextafter(-708.0, -np.inf), False), (650.0, False), (np.nan, False)):
        a = np.array([[edge, 0.0, 1.0], [0.5, 0.25, -1.0]])
        got = _cross_entropy._plain_small(a, c, -1, "both", None, -100, 0.0, "none")
        assert (got is not None) == direct, edge
