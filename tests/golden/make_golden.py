"""Write torch_golden.json: PyTorch's values for a fixed set of inputs covering every
option of cross_entropy, binary_cross_entropy_with_logits and the FC layer + loss.

    python tests/golden/make_golden.py      (needs torch; float64 on the CPU)

The inputs are generated here from a fixed seed and stored with the outputs, so the
tests need neither this script nor PyTorch.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).with_name("torch_golden.json")
F = torch.nn.functional


def tolist(x):
    return np.asarray(x.detach().numpy() if isinstance(x, torch.Tensor) else x).tolist()


def cross_entropy_cases(rng):
    logits = rng.normal(0, 3, size=(6, 5))
    logits[0] = [40.0, 0.0, -3.0, 1.0, 2.0]  # a confident, correct row
    labels = np.array([0, 3, 1, 4, 2, 3])
    probs = rng.dirichlet(np.ones(5), 6)
    weight = np.array([0.5, 1.0, 2.0, 0.25, 1.5])
    cases = []
    for target_kind, w, ignore, eps, reduction in itertools.product(
            ("index", "probs"), (None, weight), (None, 3), (0.0, 0.2), ("none", "sum", "mean")):
        if target_kind == "probs" and ignore is not None:
            continue
        x = torch.tensor(logits, requires_grad=True)
        target = torch.tensor(labels if target_kind == "index" else probs)
        loss = F.cross_entropy(x, target, weight=None if w is None else torch.tensor(w),
                               ignore_index=-100 if ignore is None else ignore,
                               label_smoothing=eps, reduction=reduction)
        loss.sum().backward()
        cases.append(dict(function="cross_entropy", logits=tolist(logits),
                          target=tolist(labels if target_kind == "index" else probs),
                          target_kind=target_kind, weight=None if w is None else tolist(w),
                          ignore_index=ignore, label_smoothing=eps, reduction=reduction,
                          loss=tolist(loss), grad=tolist(x.grad)))
    return cases


def bce_cases(rng):
    z = rng.normal(0, 4, size=(4, 3))
    z[0] = [40.0, -40.0, 0.0]  # losses near 4e-18 where y matches the sign
    y = rng.uniform(0, 1, size=(4, 3))
    y[0] = [1.0, 0.0, 0.5]
    pos_weight = np.array([0.5, 2.0, 1.0])
    cases = []
    for pw, reduction in itertools.product((None, pos_weight), ("none", "sum", "mean")):
        zt = torch.tensor(z, requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(zt, torch.tensor(y), reduction=reduction,
                                                  pos_weight=None if pw is None else torch.tensor(pw))
        loss.sum().backward()
        cases.append(dict(function="binary_cross_entropy_with_logits", logits=tolist(z), target=tolist(y),
                          pos_weight=None if pw is None else tolist(pw), reduction=reduction,
                          loss=tolist(loss), grad=tolist(zt.grad)))
    return cases


def linear_cases(rng):
    x = rng.normal(0, 1, size=(5, 4))
    W = rng.normal(0, 1, size=(3, 4))
    b = rng.normal(0, 1, size=3)
    labels = np.array([0, 2, 1, 1, 0])
    cases = []
    for eps, reduction, ignore in itertools.product((0.0, 0.1), ("none", "sum", "mean"), (None, 1)):
        xt, Wt, bt = (torch.tensor(v, requires_grad=True) for v in (x, W, b))
        loss = F.cross_entropy(xt @ Wt.T + bt, torch.tensor(labels), label_smoothing=eps,
                               reduction=reduction, ignore_index=-100 if ignore is None else ignore)
        loss.sum().backward()
        cases.append(dict(function="linear_cross_entropy", x=tolist(x), W=tolist(W), b=tolist(b),
                          target=tolist(labels), label_smoothing=eps, reduction=reduction,
                          ignore_index=ignore, loss=tolist(loss), dx=tolist(xt.grad),
                          dW=tolist(Wt.grad), db=tolist(bt.grad)))
    return cases


def main():
    rng = np.random.default_rng(20261126)
    data = {"torch": torch.__version__, "dtype": "float64",
            "cases": cross_entropy_cases(rng) + bce_cases(rng) + linear_cases(rng)}
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} ({len(data['cases'])} cases, torch {torch.__version__})")


if __name__ == "__main__":
    main()
