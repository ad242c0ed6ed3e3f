"""The catalogue: every result softmax-derive relies on, as a checked derivation.

One entry per result, in the order of DESIGN.md's list. Each is built only from the
formulas in :mod:`derive.definitions`; the proof engine (:mod:`derive.engine`) checks
every step symbolically for symbolic T and numerically at T = 1, 2, 3, 5, 8 (from
``min_classes`` up), ``min_classes``, ``min_classes + 1`` and one random T up to 12.
"""
from __future__ import annotations

import dataclasses
import functools

from ..engine import Derivation
from . import automatic
from .catalogue_stable import (
    batch_softmax,
    binary_section,
    fc_batch_section,
    options_section,
    shifted_rest,
    stable_forms_section,
)
from .catalogue_textbook import (
    examples_section,
    fc_layer_section,
    gradient_section,
    hessian_section,
    jacobian_section,
    losses_section,
    probability_section,
)
from .definitions import NOTATION

# re-exported: the tests state expected forms with them
__all__ = ["batch_softmax", "build", "by_key", "hand_written", "shifted_rest", "SECTIONS"]


#: the sections of the catalogue, in report order
SECTIONS = (probability_section, jacobian_section, losses_section, gradient_section, fc_layer_section,
            stable_forms_section, hessian_section, options_section, fc_batch_section, binary_section,
            examples_section)


def hand_written() -> list[Derivation]:
    """The hand-written derivations, in report order, lemma keys resolved."""
    return _cite_by_key([d for section in SECTIONS for d in section()])


def build() -> list[Derivation]:
    """All derivations of the catalogue, in report order (section by section), then the
    gradient results derived automatically (:mod:`derive.softmax.automatic`) and that
    each agrees with its hand-written chain. Built once per process, under the built-in's
    notation whatever notation is active (a new list of the same derivations each call:
    the command line, the kernels' claims and the documents each asked for it, and the
    automatic ones take a second to derive)."""
    return list(_built())


@functools.lru_cache(maxsize=1)
def _built() -> tuple[Derivation, ...]:
    with NOTATION.active():
        cat = hand_written()
        cat += automatic.derivations({d.key: d for d in cat})
    keys = [d.key for d in cat]
    assert len(keys) == len(set(keys)), "duplicate derivation keys"
    return tuple(cat)


def _cite_by_key(cat: list[Derivation]) -> list[Derivation]:
    """Resolve lemma citations written as keys to the (earlier) derivations they name."""
    earlier: dict[str, Derivation] = {}
    for d in cat:
        d.steps = [dataclasses.replace(step, lemma=earlier[step.lemma]) if isinstance(step.lemma, str)
                   else step for step in d.steps]
        earlier[d.key] = d
    return cat


def by_key() -> dict[str, Derivation]:
    return {d.key: d for d in build()}
