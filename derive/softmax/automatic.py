"""The catalogue's gradient results, derived automatically.

Content, not machinery: the built-in losses handed to :func:`derive.gradient` with the
catalogue's own assumptions and rule sets (:mod:`derive.softmax.rules`), each paired with
the hand-written derivation of the same result (:mod:`derive.softmax.catalogue`) whose
boxed matrix form it carries, handed in by the catalogue (this module does not import
it: the catalogue builds on this, never the reverse). Every automatic chain is checked
by the engine like a hand-written one, and :func:`agreement` states, as a derivation of
its own, that the two results are equal -- so the reports can show both chains with the
same boxed result.
"""
from __future__ import annotations

import functools

from ..autodiff import GradientDerivation, gradient
from ..engine import Derivation, Step
from . import definitions as D
from . import rules as R
from .definitions import W, a, b, i, j, p, q, x, y

#: (key of the hand-written derivation, loss, variable, assumptions, rules)
PLAN = [
    ("loss_gradient", D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL), R.RULES),
    ("loss_gradient_one_hot", D.softmax_loss(), a[i], (D.REAL_LOGITS, D.ONE_HOT), R.RULES),
    ("jacobian", D.softmax(j), a[i], (D.REAL_LOGITS,), R.RULES),
    ("fc_grad_W", D.softmax_loss(y, D.fc_logit), W[p, q], (D.REAL_LOGITS, D.SOFT_LABEL), R.FC_RULES),
    ("fc_grad_b", D.softmax_loss(y, D.fc_logit), b[p], (D.REAL_LOGITS, D.SOFT_LABEL), R.FC_RULES),
    ("fc_grad_x", D.softmax_loss(y, D.fc_logit), x[q], (D.REAL_LOGITS, D.SOFT_LABEL), R.FC_RULES),
]


@functools.lru_cache(maxsize=None)
def _derive(key: str, title: str, matrix: str, min_classes: int, section: str) -> GradientDerivation:
    """The automatic counterpart of the hand-written ``key``, produced once per process
    (unchecked: :func:`derive.check` checks it like any catalogue entry)."""
    _, loss, wrt, assumptions, rules = next(entry for entry in PLAN if entry[0] == key)
    return gradient(loss, wrt, assumptions, rules, key=f"{key}_automatic", title=f"{title} (automatic)",
                    matrix=matrix, min_classes=min_classes, section=section, check=False)


def derivations(hand: dict[str, Derivation]) -> list[Derivation]:
    """The catalogue's automatic derivations, given its hand-written ones by key: each
    result of :data:`PLAN` derived automatically (titled and boxed like the hand-written
    one), then for each the derivation that the two results agree."""
    derived = [_derive(key, hand[key].title, hand[key].matrix, hand[key].min_classes, hand[key].section)
               for key, *_ in PLAN]
    return derived + [agreement(key, d, hand[key]) for (key, *_), d in zip(PLAN, derived)]


def build(hand: dict[str, Derivation], check: bool = True, keys=None) -> dict[str, GradientDerivation]:
    """{key of the hand-written derivation: its automatic counterpart}, each checked
    (unless ``check`` is False), titled and boxed like the hand-written one in ``hand``
    (the catalogue's derivations by key); ``keys`` selects some."""
    out = {}
    for key, loss, wrt, assumptions, rules in PLAN:
        if keys is not None and key not in keys:
            continue
        written = hand[key]
        out[key] = gradient(loss, wrt, assumptions, rules, key=f"{key}_automatic",
                            title=f"{written.title} (automatic)", matrix=written.matrix,
                            min_classes=written.min_classes, section=written.section, check=check)
    return out


class Agreement(Derivation):
    """Two results equal, the hand-written one written out and the automatic one in S:
    printed without abbreviating e^{a_j}/Z to S_j, so that the step shows the fold."""

    folds_names = True


def agreement(key: str, automatic: GradientDerivation, written: Derivation) -> Derivation:
    """The hand-written result ``written`` of ``key`` equals the automatic one, as a
    derivation to check (under the automatic one's assumptions, which define S)."""
    return Agreement(f"{key}_agreement", f"{written.title}: the hand-written and automatic results agree",
                      automatic.assumptions, [
                          Step(written.result, "the hand-written result"),
                          Step(automatic.result, "the automatic result"),
                      ], matrix=written.matrix, min_classes=max(written.min_classes, automatic.min_classes),
                      section=written.section)
