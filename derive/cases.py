"""Input cases for functions of rows of logits: a :class:`Case` (logits, integer and soft
targets, class weights and label smoothing) and the makers of the categories that break
kernels -- moderate logits, logits spread over thousands, logits near +-1e308, tiny
losses, near ties, all equal, one and two classes, a wide row, -inf masks, float32 --
each a function ``maker(rng, rows) -> Case``; :func:`with_large_row` shifts a category's
first row so that the naive e^a overflows in it too. :func:`binary_cases` and
:func:`signed_weight_cases` are the categories of a binary loss (one logit z per sample)
and of a logsumexp with signed weights b.

Nothing here knows a formula: a catalogue names the categories it runs (with the rows
of each) and evaluates its own references on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

#: digits of a Case's exact weighted target u (from the float w and eps)
EXACT_DIGITS = 70


def onehot(target, shape):
    """One-hot rows: 1 at each row's ``target``, 0 elsewhere."""
    out = np.zeros(shape)
    out[np.arange(shape[0]), target] = 1.0
    return out


@dataclass
class Case:
    """One input category: logits (rows x T), integer targets (0-based), soft targets
    (rows x T, or None), the dtype the functions are measured in, class weights w (T;
    by default drawn from a generator seeded by T, uniform in [0.2, 2]) and label
    smoothing eps for the weighted, smoothed loss."""

    logits: np.ndarray
    target: np.ndarray
    soft: np.ndarray | None = None
    dtype: type = np.float64
    weight: np.ndarray | None = None
    smoothing: float = 0.1

    def __post_init__(self):
        if self.weight is None:
            classes = self.logits.shape[1]
            self.weight = np.random.default_rng(classes).uniform(0.2, 2.0, classes)

    def weighted(self) -> np.ndarray:
        """u = w ((1 - eps) onehot(c) + eps / T), what the weighted loss sees (rounded:
        the input of the baselines, which take u itself)."""
        T = self.logits.shape[1]
        hot = onehot(self.target, self.logits.shape)
        return self.weight * ((1 - self.smoothing) * hot + self.smoothing / T)

    def weighted_exact(self, row: int) -> list:
        """u of one row exactly (mpmath, from the float w and eps): the reference's u."""
        T = self.logits.shape[1]
        with mpmath.workdps(EXACT_DIGITS):
            eps = mpmath.mpf(float(self.smoothing))
            return [mpmath.mpf(float(self.weight[j])) * ((1 - eps) * int(j == self.target[row]) + eps / T)
                    for j in range(T)]


def soft_targets(rng, rows, classes):
    """Probability rows drawn from a Dirichlet(1/2) distribution: many near-zero entries."""
    return rng.dirichlet(np.full(classes, 0.5), size=rows)


def moderate(rng, rows):
    """N(0, 3) logits, 10 classes."""
    a = rng.normal(0, 3, size=(rows, 10))
    return Case(a, rng.integers(0, 10, rows), soft_targets(rng, rows, 10))


def spread(rng, rows):
    # the largest logit near 0, the rest spread over (-745, 0] with all their bits:
    # a_j - m rounds, and exp amplifies that error by |a_j - m|
    classes = 40
    a = -rng.uniform(0, 745, size=(rows, classes)) + rng.uniform(-0.5, 0.5, size=(rows, 1))
    a[:, 0] = rng.uniform(0, 3, rows)
    a = a * rng.choice([1.0, 1.0, 4.0], size=(rows, 1))  # some rows spread over thousands
    a = rng.permuted(a, axis=1)
    return Case(a, rng.integers(0, classes, rows), soft_targets(rng, rows, classes))


def huge(rng, rows):
    """Logits up to +-1.7e308, 6 classes (the first two rows fixed at the float64 edges)."""
    classes = 6
    a = rng.uniform(-1, 1, size=(rows, classes)) * 10.0 ** rng.uniform(300, 308, size=(rows, classes))
    a[0] = [1.7e308, -1.7e308, 1.7e308, 0.0, -1e308, 1e308]
    a[1] = [1e308, 1e308 * (1 - 2 ** -52), 1e308 * (1 - 2 ** -50), -1e308, 5.0, 1e307]
    return Case(a, rng.integers(0, classes, rows), soft_targets(rng, rows, classes))


def tiny_loss(rng, rows):
    # the true class ahead by 20 to 740: loss down to ~1e-320
    classes = 8
    a = rng.normal(0, 1, size=(rows, classes))
    target = rng.integers(0, classes, rows)
    lead = rng.uniform(20, 740, rows)
    lead[:4] = [20.0, 300.5, 700.25, 739.0][:min(4, rows)]
    a[np.arange(rows), target] = a.max(axis=1) + lead
    soft = np.zeros((rows, classes))
    soft[np.arange(rows), target] = 1.0
    return Case(a, target, soft)


def near_ties(rng, rows):
    """12 classes equal to within 1e-12 of their size."""
    classes = 12
    base = rng.normal(0, 10, size=(rows, 1))
    a = base + rng.normal(0, 1e-12, size=(rows, classes)) * np.abs(base)
    return Case(a, rng.integers(0, classes, rows), soft_targets(rng, rows, classes))


def all_equal(rng, rows):
    """7 equal logits per row."""
    classes = 7
    a = np.repeat(rng.normal(0, 100, size=(rows, 1)), classes, axis=1)
    return Case(a, rng.integers(0, classes, rows), soft_targets(rng, rows, classes))


def one_class(rng, rows):
    """T = 1: the softmax is 1 and the loss 0 whatever the logit."""
    return Case(rng.normal(0, 50, size=(rows, 1)), np.zeros(rows, dtype=np.int64), np.ones((rows, 1)))


def two_classes(rng, rows):
    """T = 2, N(0, 20) logits."""
    a = rng.normal(0, 20, size=(rows, 2))
    return Case(a, rng.integers(0, 2, rows), soft_targets(rng, rows, 2))


def wide(rng, rows):
    """T = 32000 classes, one row per 16 asked for (no soft targets)."""
    classes = 32000
    a = rng.normal(0, 4, size=(max(1, rows // 16), classes))
    return Case(a, rng.integers(0, classes, a.shape[0]), None)


def masked(rng, rows):
    """About a third of the logits -inf (masked classes), never a whole row; the soft
    targets put no mass on a masked class."""
    classes = 9
    a = rng.normal(0, 5, size=(rows, classes))
    a[rng.random((rows, classes)) < 0.35] = -np.inf
    target = rng.integers(0, classes, rows)
    a[np.arange(rows), (target + 1) % classes] = 1.0  # at least one live class
    soft = soft_targets(rng, rows, classes)
    soft[np.isneginf(a)] = 0.0
    soft /= soft.sum(axis=1, keepdims=True)
    return Case(a, target, soft)


def float32(rng, rows):
    """float32 logits and soft targets, measured in float32 ULPs."""
    a = (rng.normal(0, 8, size=(rows, 10))).astype(np.float32)
    return Case(a, rng.integers(0, 10, rows), soft_targets(rng, rows, 10).astype(np.float32),
                dtype=np.float32)


def with_large_row(maker, offset=800.0):
    """Shift the first row by ``offset``: logits that large overflow e^a in float64 (and
    float32), so every category has a row the naive formula gets wrong."""
    def make(rng, rows):
        case = maker(rng, rows)
        case.logits = case.logits.copy()
        case.logits[0] = case.logits[0] + case.logits.dtype.type(offset)
        return case
    make.__name__ = maker.__name__
    make.__doc__ = maker.__doc__
    return make


def binary_cases(rng, rows: int) -> dict[str, tuple]:
    """name -> (z, y, pos_weight): moderate, huge |z|, tiny losses, soft targets."""
    n = rows * 4
    moderate = (rng.normal(0, 5, n), rng.integers(0, 2, n).astype(float), rng.uniform(0.2, 3, n))
    z = rng.choice([-1, 1], n) * np.where(rng.random(n) < 0.5, rng.uniform(30, 745, n),
                                            10.0 ** rng.uniform(3, 308, n))  # from 30 to 1e308
    z[:2] = [1e308, -1e308]
    huge = (z, rng.integers(0, 2, n).astype(float), np.ones(n))
    margin = rng.uniform(20, 745, n) * rng.choice([-1, 1], n)
    tiny = (margin, (margin > 0).astype(float), np.ones(n))
    soft = (rng.normal(0, 8, n), rng.uniform(0, 1, n), rng.uniform(0.2, 3, n))
    return {"binary moderate": moderate, "binary large z, 30 to 1e308": huge, "binary tiny loss": tiny,
            "binary soft y": soft}


def signed_weight_cases(rng, rows: int) -> dict[str, tuple]:
    """category -> (logits, weights b), rows x 10."""
    shape = (rows, 10)
    ahead = rng.normal(-45.0, 3, shape)
    ahead[:, 0] = 0.0  # m = 0 with weight 1, the rest below e^-37: the result ~1e-17
    ones_first = rng.uniform(0.1, 3.0, shape)
    ones_first[:, 0] = 1.0
    zeros = rng.uniform(-2.0, 2.0, shape)
    zeros[rng.random(shape) < 0.3] = 0.0
    zeros[:, 0] = 0.0
    spread = rng.normal(0, 300, shape)
    spread[0] += 800.0
    return {
        "b > 0, moderate": (rng.normal(0, 3, shape), rng.uniform(0.1, 3.0, shape)),
        "b > 0, spread": (spread, rng.uniform(0.1, 3.0, shape)),
        "b > 0, tiny log": (ahead, ones_first),
        "b of both signs": (rng.normal(0, 3, shape), rng.normal(0, 1, shape)),
        "b with zeros": (rng.normal(0, 3, shape), zeros),
    }
