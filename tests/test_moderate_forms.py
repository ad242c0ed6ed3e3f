"""The kernels' moderate forms (issue 13: e^{a_j} times e^-m / (1 + s'), the factor e^-m
on row-level values), which the runtime takes for every row with all logits in
[-708, 600]: within the accuracy contract's 4 ULP of the exact values on the rows that
stress them -- logits spread over hundreds, a true class far ahead (S_c ~ 1, losses far
below 1e-16), rows at either end of the range, ties -- where the plain max-shift is
hundreds of ULPs off."""
from __future__ import annotations

import numpy as np
import pytest

from derive import measure as M
from derive.softmax import verify as V
from numeric import _blocks, _kernels

BOUND = 4.0
_rng = np.random.default_rng(13)

#: name -> (row, target); every logit in the moderate range
ROWS = {
    "spread over hundreds": (np.concatenate([[590.0], _rng.uniform(-100, 590, 11)]), 3),
    "spread, both signs": (_rng.uniform(-700, 590, 12), 3),
    "spread, many classes": (_rng.uniform(-300, 300, 200), 17),
    "true class far ahead": (np.array([5.0, -31.0, -33.5, -38.25, -40.0]), 0),
    "tiny loss at the top of the range": (np.array([600.0, 560.0, 559.5, 555.0]), 0),
    "many near-ties at 600": (600.0 - _rng.uniform(0, 0.1, 1000), 5),
    "all near -708": (-708.0 + _rng.uniform(0, 0.5, 20), 2),
    "ties": (np.full(7, -3.25), 6),
    "target far behind": (np.array([0.0, -650.0, 1.5, -2.0]), 1),
}


def _worst(values, exact, scale=None):
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    scale = [None] * len(values) if scale is None else scale
    return max(M.ulp_error(v, e, scale=s) for v, e, s in zip(values, exact, scale))


def _moderate(kernel, row, *extra):
    rows = row[None]
    assert _blocks.MODERATE_LOW <= rows.min() and rows.max() <= _blocks.MODERATE_HIGH
    # no overflow or invalid operation in range (underflow where S_j is below 1e-308)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        return kernel(rows, *extra, moderate=True)


@pytest.mark.parametrize("name", ROWS)
def test_every_moderate_form_is_within_the_bound(name):
    row, c = ROWS[name]
    T = len(row)
    u = np.full(T, 0.1 / T)  # label smoothing 0.1: u = 0.9 onehot(c) + 0.1 / T
    u[c] += 0.9
    ref = V.reference_row(row, target=c, weighted=u)
    C = np.array([[c]])
    errors = {
        "softmax": _worst(_moderate(_kernels.softmax, row), ref.softmax),
        "log_softmax": _worst(_moderate(_kernels.log_softmax, row), ref.log_softmax),
        "logsumexp": _worst(_moderate(_kernels.logsumexp, row), [ref.logsumexp], [ref.lse_scale]),
    }
    loss, grad = _moderate(_kernels.nll_index_with_grad, row, C)
    errors["loss"] = _worst(loss, [ref.loss_index])
    errors["gradient"] = _worst(grad, ref.grad_index)
    loss_u, grad_u = _moderate(_kernels.nll_u_with_grad, row, u[None])
    errors["weighted loss"] = _worst(loss_u, [ref.loss_weighted])
    errors["weighted gradient"] = _worst(grad_u, ref.grad_weighted, ref.grad_weighted_scale)
    assert max(errors.values()) <= BOUND, errors


def test_the_separate_kernels_give_the_fused_kernels_bits():
    row, c = ROWS["spread over hundreds"]
    C = np.array([[c]])
    loss, grad = _moderate(_kernels.nll_index_with_grad, row, C)
    assert np.array_equal(_moderate(_kernels.nll_index, row, C), loss)
    assert np.array_equal(_moderate(_kernels.nll_index_grad, row, C), grad)


@pytest.mark.parametrize("name", ["spread over hundreds", "spread, many classes"])
def test_the_plain_max_shift_fails_the_same_bound(name):
    row, c = ROWS[name]
    ref = V.reference_row(row, target=c)
    plain = V.implementations()["max-shift"]
    assert _worst(plain["softmax"](row[None]), ref.softmax) > 10 * BOUND
    assert _worst(plain["cross_entropy_with_grad"](row[None], np.array([c]))[1], ref.grad_index) > 10 * BOUND


def test_the_largest_probability_is_put_as_one_over_one_plus_the_rest():
    """S_k at the row's argmax is 1 / (1 + s'), one rounding, as the general form gives
    it (e_k = 1 exactly): a single class's softmax is exactly 1 and no probability
    exceeds 1. Folded as e^{a_k} (e^-m / (1 + s')), it rounded three times: 591 of these
    2000 single-class rows came out as 1 -+ 2^-52, some of them above 1."""
    single = np.linspace(-700.0, 590.0, 2000)[:, None]
    assert (_kernels.softmax(single, moderate=True) == 1.0).all()
    assert (_kernels.softmax(single, moderate=False) == 1.0).all()  # (the general form)
    rows = _rng.uniform(-700, 590, (500, 3))
    rows[:, 0] = rows.max(axis=1) + _rng.uniform(40, 80, 500)  # S_k within 1e-17 of 1
    S = _kernels.softmax(rows, moderate=True)
    assert S.max() <= 1.0
    tail = np.exp(rows[:, 1:] - rows[:, :1]).sum(axis=1)
    assert (S[:, 0] == 1.0 / (1.0 + tail)).all()
    folded = np.exp(single[:, 0]) * (np.exp(-single[:, 0]) / 1.0)  # the old form
    assert (folded != 1.0).sum() > 100
