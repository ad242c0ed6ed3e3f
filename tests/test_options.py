"""Class weights, ignore_index, label smoothing, reductions, binary cross entropy and
the FC layer + loss: against PyTorch's golden values (stored, and live when torch is
installed), against mpmath where ours is the more accurate, and their bad input."""
from __future__ import annotations

import json
from pathlib import Path

import mpmath
import numpy as np
import pytest

import numeric
from derive import measure as M
from derive.softmax import verify as V

GOLDEN = json.loads((Path(__file__).parent / "golden" / "torch_golden.json").read_text())
CASES = GOLDEN["cases"]
#: PyTorch's own float64 accuracy on these inputs: a few ULPs, relative
RTOL = 1e-13


def _ours(case):
    f = case["function"]
    if f == "cross_entropy":
        target = np.array(case["target"], dtype=np.int64 if case["target_kind"] == "index" else np.float64)
        loss, grad = numeric.cross_entropy_with_grad(
            np.array(case["logits"]), target, weight=case["weight"], ignore_index=case["ignore_index"],
            label_smoothing=case["label_smoothing"], reduction=case["reduction"])
        return {"loss": loss, "grad": grad}
    if f == "binary_cross_entropy_with_logits":
        loss, grad = numeric.binary_cross_entropy_with_logits_with_grad(
            np.array(case["logits"]), np.array(case["target"]), pos_weight=case["pos_weight"],
            reduction=case["reduction"])
        return {"loss": loss, "grad": grad}
    loss, dx, dW, db = numeric.linear_cross_entropy(
        np.array(case["x"]), np.array(case["W"]), np.array(case["b"]), np.array(case["target"]),
        ignore_index=case["ignore_index"], label_smoothing=case["label_smoothing"],
        reduction=case["reduction"])
    return {"loss": loss, "dx": dx, "dW": dW, "db": db}


def _reference_loss(case):
    """The per-element or reduced loss from the definitions in mpmath (cross entropy
    and the binary loss), for judging disagreements with PyTorch."""
    if case["function"] == "binary_cross_entropy_with_logits":
        import sympy as sp

        from derive.softmax import definitions as D
        f = sp.lambdify([D.z, D.yb, D.pw], D.binary_cross_entropy(pw_=D.pw), "mpmath")
        z, y = np.array(case["logits"]), np.array(case["target"])
        pw = np.broadcast_to(np.array(1.0 if case["pos_weight"] is None else case["pos_weight"]), z.shape)
        with mpmath.workdps(400):
            per = np.array([[f(mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c)) for a, b, c in zip(*rows)]
                            for rows in zip(z, y, pw)], dtype=object)
            return _reduce(per, case["reduction"], per.size)
    logits = np.array(case["logits"])
    T = logits.shape[1]
    w = np.ones(T) if case["weight"] is None else np.array(case["weight"])
    eps = case["label_smoothing"]
    per, denom = [], mpmath.mpf(0)
    with mpmath.workdps(400):
        for row, tgt in zip(logits, case["target"]):
            if case["target_kind"] == "index":
                if tgt == case["ignore_index"]:
                    per.append(mpmath.mpf(0))
                    continue
                y = np.eye(T)[tgt]
                denom += mpmath.mpf(float(w[tgt]))
            else:
                y = np.array(tgt)
                denom += 1
            u = w * ((1 - eps) * y + eps / T)
            per.append(V.reference_row(row, None, soft=u, digits=400).loss_soft)
        return _reduce(np.array(per, dtype=object), case["reduction"], denom)


def _reduce(per, reduction, denom):
    if reduction == "none":
        return per
    total = mpmath.fsum(per.ravel())
    return total if reduction == "sum" else total / denom


@pytest.mark.parametrize("case", CASES, ids=[f"{c['function']}-{k}" for k, c in enumerate(CASES)])
def test_agrees_with_pytorch_or_is_more_accurate(case):
    ours = _ours(case)
    for name, value in ours.items():
        theirs = np.array(case[name], dtype=np.float64)
        value = np.asarray(value, dtype=np.float64)
        assert value.shape == theirs.shape, name
        scale = np.max(np.abs(theirs)) if theirs.size else 1.0
        close = np.isclose(value, theirs, rtol=RTOL, atol=RTOL * scale * 1e-3)
        if close.all():
            continue
        # they disagree: only allowed where mpmath says ours is right and PyTorch is not
        assert name == "loss", f"{name} differs from PyTorch beyond its float64 accuracy"
        exact = np.array(_reference_loss(case), dtype=object).reshape(value.shape)
        for ours_v, torch_v, ref in zip(value.ravel()[~close.ravel()], theirs.ravel()[~close.ravel()],
                                        exact.ravel()[~close.ravel()]):
            ours_err, torch_err = M.ulp_error(ours_v, ref), M.ulp_error(torch_v, ref)
            assert ours_err <= 4, f"ours {ours_v!r} is {ours_err:.1f} ULP from mpmath {ref}"
            assert torch_err > ours_err, "PyTorch is as accurate here, yet we disagree"


def test_golden_file_covers_every_option():
    ce = [c for c in CASES if c["function"] == "cross_entropy"]
    assert {c["reduction"] for c in CASES} == {"none", "sum", "mean"}
    assert any(c["weight"] for c in ce) and any(c["ignore_index"] is not None for c in ce)
    assert any(c["label_smoothing"] for c in ce) and {c["target_kind"] for c in ce} == {"index", "probs"}
    assert any(c["pos_weight"] for c in CASES if c["function"] == "binary_cross_entropy_with_logits")
    assert any(c["function"] == "linear_cross_entropy" for c in CASES)


def test_the_confident_row_is_where_pytorch_loses_digits():
    # logits [40, 0, -3, 1, 2], label 0: the loss is ~3.2e-17; PyTorch returns 0
    case = next(c for c in CASES if c["function"] == "cross_entropy" and c["target_kind"] == "index"
                and c["weight"] is None and c["ignore_index"] is None and c["label_smoothing"] == 0
                and c["reduction"] == "none")
    ours = _ours(case)["loss"][0]
    exact = _reference_loss(case)[0]
    assert M.ulp_error(ours, exact) <= 4 and ours > 0
    assert M.ulp_error(case["loss"][0], exact) > 1e6


def test_live_pytorch_matches_the_stored_values():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for case in CASES:
        if case["function"] == "cross_entropy":
            x = torch.tensor(case["logits"], dtype=torch.float64)
            t = torch.tensor(case["target"], dtype=torch.int64 if case["target_kind"] == "index" else torch.float64)
            weight = None if case["weight"] is None else torch.tensor(case["weight"], dtype=torch.float64)
            loss = F.cross_entropy(x, t, weight=weight,
                                   ignore_index=-100 if case["ignore_index"] is None else case["ignore_index"],
                                   label_smoothing=case["label_smoothing"], reduction=case["reduction"])
        elif case["function"] == "binary_cross_entropy_with_logits":
            f64 = dict(dtype=torch.float64)
            loss = F.binary_cross_entropy_with_logits(
                torch.tensor(case["logits"], **f64), torch.tensor(case["target"], **f64),
                reduction=case["reduction"],
                pos_weight=None if case["pos_weight"] is None else torch.tensor(case["pos_weight"], **f64))
        else:
            continue
        np.testing.assert_allclose(loss.numpy(), np.array(case["loss"]), rtol=1e-14, atol=1e-300)


# --------------------------------------------------------------------------- consistency
def test_trivial_options_change_nothing():
    rng = np.random.default_rng(1)
    a, c = rng.normal(0, 3, (9, 6)), rng.integers(0, 6, 9)
    plain = numeric.cross_entropy_with_grad(a, c, reduction="none")
    same = numeric.cross_entropy_with_grad(a, c, weight=np.ones(6), label_smoothing=0.0, reduction="none")
    np.testing.assert_array_equal(plain[0], same[0])
    np.testing.assert_array_equal(plain[1], same[1])


def test_ignored_samples_have_zero_loss_and_gradient():
    rng = np.random.default_rng(2)
    a, c = rng.normal(0, 3, (5, 4)), np.array([0, -1, 2, -1, 3])
    loss, grad = numeric.cross_entropy_with_grad(a, c, ignore_index=-1, reduction="none")
    assert loss[1] == 0 and loss[3] == 0 and (grad[[1, 3]] == 0).all()
    mean = numeric.cross_entropy(a, c, ignore_index=-1, reduction="mean")
    assert mean == pytest.approx(loss[[0, 2, 4]].mean(), rel=1e-15)
    everything = numeric.cross_entropy(a, np.full(5, -1), ignore_index=-1, reduction="mean")
    assert np.isnan(everything)  # a mean over nothing, as in PyTorch


def test_label_smoothing_gradient_is_s_minus_smoothed_target():
    rng = np.random.default_rng(3)
    a, c = rng.normal(0, 3, (4, 5)), np.array([0, 1, 2, 3])
    eps = 0.3
    y = (1 - eps) * np.eye(5)[c] + eps / 5
    S = numeric.softmax(a)
    grad = numeric.cross_entropy_grad(a, c, label_smoothing=eps, reduction="none")
    # the two sides are separate kernels (softmax's moderate form, the weighted gradient's
    # general one), each within the contract's 4 ULP of max(S_j, y_j): they agree within
    # that scale (1 ULP of S_c here), and not at all for an unsmoothed y
    scale = np.spacing(np.maximum(S, y))
    assert np.all(np.abs(grad - (S - y)) <= 4 * scale)
    assert not np.all(np.abs(grad - (S - np.eye(5)[c])) <= 4 * scale)


def test_gradients_of_options_pass_the_finite_difference_check():
    rng = np.random.default_rng(4)
    a, c = rng.normal(0, 2, (6, 5)), rng.integers(0, 5, 6)
    opts = dict(weight=rng.uniform(0.1, 2, 5), label_smoothing=0.1, reduction="mean", ignore_index=int(c[0]))
    M.check_grads(lambda x: numeric.cross_entropy(x, c, **opts), lambda x: numeric.cross_entropy_grad(x, c, **opts), a)
    z, y = rng.normal(0, 3, (4, 3)), rng.uniform(0, 1, (4, 3))
    M.check_grads(lambda x: numeric.binary_cross_entropy_with_logits(x, y, pos_weight=[1, 2, 3]),
                  lambda x: numeric.binary_cross_entropy_with_logits_grad(x, y, pos_weight=[1, 2, 3]), z)


def test_binary_loss_is_the_two_class_softmax_loss():
    rng = np.random.default_rng(5)
    z = rng.normal(0, 5, 20)
    labels = rng.integers(0, 2, 20)
    two = np.stack([z, np.zeros_like(z)], axis=-1)
    np.testing.assert_allclose(numeric.binary_cross_entropy_with_logits(z, labels.astype(float), reduction="none"),
                               numeric.cross_entropy(two, 1 - labels, reduction="none"), rtol=1e-14)


def test_binary_loss_extremes():
    z = np.array([1e308, -1e308, 40.0, -745.0])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    loss, grad = numeric.binary_cross_entropy_with_logits_with_grad(z, y, reduction="none")
    assert loss[0] == 1e308 and loss[1] == 1e308
    assert loss[2] == pytest.approx(np.exp(-40.0), rel=1e-15)  # 4.2e-18, not 0
    assert loss[3] == 5e-324
    np.testing.assert_array_equal(grad[:2], [1.0, -1.0])


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,match", [
    (dict(weight=[1.0, -1.0, 1.0]), r"weight must be finite and non-negative; got -1.0 at class 1"),
    (dict(weight=[1.0, 1.0]), r"weight must have one entry per class, shape \(3,\); got \(2,\)"),
    (dict(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\]; got 1.5"),
    (dict(label_smoothing=-0.1), r"label_smoothing must be in \[0, 1\]"),
    (dict(reduction="avg"), r"reduction must be one of 'none', 'mean', 'sum'; got 'avg'"),
    (dict(ignore_index=1.5), r"ignore_index must be an int or None; got 1.5"),
])
def test_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        numeric.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), **kwargs)


def test_ignore_index_with_probabilities_is_refused():
    with pytest.raises(ValueError, match="ignore_index applies to integer class targets only"):
        numeric.cross_entropy(np.zeros((1, 2)), np.array([[0.5, 0.5]]), ignore_index=0)


def test_bad_binary_and_linear_input():
    with pytest.raises(ValueError, match=r"binary targets must be in \[0, 1\]; got 1.5 at position \(1,\)"):
        numeric.binary_cross_entropy_with_logits(np.zeros(2), np.array([0.0, 1.5]))
    with pytest.raises(ValueError, match="pos_weight must be finite and non-negative"):
        numeric.binary_cross_entropy_with_logits(np.zeros(2), np.zeros(2), pos_weight=-1.0)
    with pytest.raises(ValueError, match=r"target must have the logits' shape \(2,\); got \(3,\)"):
        numeric.binary_cross_entropy_with_logits(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="x has 4 features but W has 3 columns"):
        numeric.linear_cross_entropy(np.zeros((2, 4)), np.zeros((5, 3)), np.zeros(5), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"b must have shape \(5,\)"):
        numeric.linear_cross_entropy(np.zeros((2, 3)), np.zeros((5, 3)), np.zeros(4), np.array([0, 1]))
