"""The concrete instances a derivation is checked on: the class counts T
(:func:`class_counts`), the random instances drawn under the assumptions from a seed
that is a function of the derivation's key, and every pattern of equal and distinct
free class indices (:class:`Draws`: drawn once per derivation, shared by its steps)."""
from __future__ import annotations

import time
import zlib

import mpmath
import numpy as np
import sympy as sp

from .. import notation, symbols
from . import settings
from .evaluator import evaluator
from .steps import Derivation


def derivation_seed(derivation: Derivation, seed: int = settings.DEFAULT_SEED) -> int:
    """The seed of a derivation's instances: fresh per derivation, the same every run."""
    return seed + zlib.crc32(derivation.key.encode())


def class_counts(derivation: Derivation, seed: int = settings.DEFAULT_SEED) -> tuple:
    """The class counts T a derivation is checked at.

    A concrete derivation (T is a number) is checked at ``max(1, min_classes)``; any
    other at :data:`CLASS_COUNTS` from ``min_classes`` up, ``min_classes``,
    ``min_classes + 1`` and one more T drawn (from the derivation's seed) up to
    ``max(LARGEST_RANDOM_T, min_classes + 8)`` -- :data:`SAMPLES_PER_T` instances each,
    N and other sizes from 1..3 -- and the wide counts: one T drawn from each range of
    :data:`WIDE_CLASSES` (from ``min_classes`` up), :data:`WIDE_SAMPLES` instance each,
    N and the other sizes drawn from :data:`WIDE_SIZES` and most free indices past the
    regular counts.
    """
    regular, wide = _class_counts(derivation, seed)
    return tuple(sorted(regular + wide))


def instance_count(derivation: Derivation, seed: int = settings.DEFAULT_SEED) -> int:
    """How many instances every step of ``derivation`` must hold on: SAMPLES_PER_T per
    regular class count, WIDE_SAMPLES per wide one (index patterns come on top)."""
    regular, wide = _class_counts(derivation, seed)
    return len(regular) * settings.SAMPLES_PER_T + len(wide) * settings.WIDE_SAMPLES


def _regular_top(derivation: Derivation) -> int:
    """The largest regular class count (every wide one is larger)."""
    return max(settings.LARGEST_RANDOM_T, max(1, derivation.min_classes) + 8)


def _class_counts(derivation: Derivation, seed: int = settings.DEFAULT_SEED) -> tuple[tuple, tuple]:
    """(the regular class counts, the wide ones) of :func:`class_counts`."""
    low = max(1, derivation.min_classes)
    if derivation.concrete:
        return (low,), ()
    counts = {n for n in settings.CLASS_COUNTS if n >= low} | {low, low + 1}
    rng = np.random.default_rng(derivation_seed(derivation, seed))
    top = _regular_top(derivation)
    choices = [n for n in range(low, top + 1) if n not in counts]
    counts.add(int(rng.choice(choices)))
    wide = []
    for lo, hi in settings.WIDE_CLASSES:
        lo = max(lo, top + 1)
        choices = [n for n in range(lo, max(hi, lo + 4) + 1) if n not in counts and n not in wide]
        wide.append(int(rng.choice(choices)))
    return tuple(sorted(counts)), tuple(sorted(wide))


def _instances(derivation: Derivation, seed: int, counts: tuple):
    """Random instances satisfying the assumptions: SAMPLES_PER_T per class count.

    The content's symbols are drawn by its :class:`symbols.Instance`, declared ones
    (:func:`symbols.scalar`, :func:`symbols.vector`) by their samplers, then every
    assumption adjusts the instance. Yields (instance, None) or (None, reason) when the
    assumptions cannot be drawn or a symbol has no sampler."""
    rng = np.random.default_rng(seed)
    exprs = [step.expr for step in derivation.steps]
    labels = _labels(exprs)
    wide = {n for n in counts if n > _regular_top(derivation)}
    for n_classes in counts:
        if n_classes in wide:
            continue
        for _ in range(settings.SAMPLES_PER_T):
            env = symbols.new_instance(rng, n_classes, symbols.draw_size(rng))
            problem = _complete(env, derivation, exprs, rng, labels)
            yield (None, problem) if problem else (env, None)
            if problem:
                return
    # the wide instances: T, N and every other size in the tens, free indices anywhere
    # in 1..T (a statement that first fails at T = 13, or for an index past 12)
    for n_classes, sizes in zip(sorted(wide), settings.WIDE_SIZES):
        for _ in range(settings.WIDE_SAMPLES):
            with symbols.sizes(*sizes):
                env = symbols.new_instance(rng, n_classes, symbols.draw_size(rng))
            _widen_indices(env, derivation, rng)
            problem = _complete(env, derivation, exprs, rng, labels)
            yield (None, problem) if problem else (env, None)
            if problem:
                return
    # every pattern of equal and distinct free class indices once, at the largest T: a
    # formula that branches on j = c or c = k is then checked on each branch for sure,
    # not only when the random draws happen to hit it
    indices = _free_class_indices(derivation)
    n_classes = max(set(counts) - wide, default=max(counts))
    if 2 <= len(indices) <= MAX_PATTERN_INDICES and n_classes >= len(indices):
        for blocks in _set_partitions(indices):
            env = symbols.new_instance(rng, n_classes, int(rng.integers(1, 4)))
            values = rng.choice(np.arange(1, n_classes + 1), size=len(blocks), replace=False)
            for block, value in zip(blocks, values):
                for sym in block:
                    env[sym] = int(value)
            problem = _complete(env, derivation, exprs, rng, labels)
            yield (None, problem) if problem else (env, None)
            if problem:
                return


def _widen_indices(env, derivation: Derivation, rng) -> None:
    """On a wide instance, most free indices move past the values the regular instances
    reach (past the largest regular T for a class index, past 3 for any other)."""
    free = set().union(*(step.expr.free_symbols for step in derivation.steps))
    ranges = notation.current().index_ranges
    for sym in sorted(free & set(ranges), key=lambda s: s.name):
        size = env.get(ranges[sym])
        small = _regular_top(derivation) if ranges[sym] == symbols.CLASSES else 3
        if isinstance(size, int) and size > small and rng.random() < 0.75:
            env[sym] = int(rng.integers(small + 1, size + 1))


def _labels(exprs) -> list:
    """The labels of the vectors (``a`` of ``a[j]``), which are real symbols too, in the
    order they are given values."""
    return sorted({sym for e in exprs for sym in e.free_symbols
                   if isinstance(sym, sp.Symbol) and not sym.is_integer}, key=lambda sym: sym.name)


def _complete(env, derivation: Derivation, exprs: list, rng, labels: list) -> str | None:
    """Draw the declared symbols, let every assumption adjust ``env``; the reason the
    instance cannot be completed, or None."""
    symbols.draw_declared(env, exprs, rng)
    try:
        for assumption in derivation.assumptions:
            assumption.sample(env)
    except Exception as err:  # noqa: BLE001 - reported as a rejection
        return f"the assumptions cannot be drawn at T={env.T}: {err} (raise min_classes?)"
    lacking = symbols.missing(env, exprs)
    if lacking:
        return symbols.how_to_declare(lacking[0])
    # the labels of the vectors (a of a[j]) are real symbols too: each gets a value as it
    # always has (never used), so the instances stay the ones every derivation has been
    # checked on (the random stream is unchanged)
    for sym in (sym for sym in labels if sym not in env):
        env[sym] = mpmath.mpf(rng.normal(0.0, 3.0) if not sym.is_nonnegative else rng.uniform(0.0, 4.0))
    return None


#: index patterns are enumerated for at most this many free class indices (Bell(4) = 15)
MAX_PATTERN_INDICES = 4


def _free_class_indices(derivation: Derivation) -> list:
    """The free indices ranging over the classes in any step (sorted by name)."""
    found, ranges = set(), notation.current().index_ranges
    for step in derivation.steps:
        found |= {sym for sym in step.expr.free_symbols if ranges.get(sym) == symbols.CLASSES}
    return sorted(found, key=lambda sym: sym.name)


def _set_partitions(items: list):
    """Every partition of ``items`` into blocks (lists), each once."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for blocks in _set_partitions(rest):
        yield [[first], *blocks]
        for n in range(len(blocks)):
            yield [*blocks[:n], [first, *blocks[n]], *blocks[n + 1:]]


class Draws:
    """The instances of a derivation, drawn as they are first asked for (in the order of
    :func:`_instances`: a check that stops at the first instance a step fails on draws
    no more) and shared by its steps, each with one evaluator: what a step's previous
    side holds was evaluated as the step before's right side. Every step is checked on
    the same instances."""

    def __init__(self, derivation: Derivation, seed: int, counts: tuple):
        self.derivation, self.seed, self.counts = derivation, seed, counts
        self._source = None
        self._drawn: list = []

    def _next(self) -> bool:
        """Draw one more instance; False when there are no more."""
        if self._source is None:
            self._source = _instances(self.derivation, self.seed, self.counts)
        for env, trouble in self._source:
            self._drawn.append((env, trouble, None if trouble else evaluator(env)))
            return True
        return False

    def __iter__(self):
        position = 0
        while position < len(self._drawn) or self._next():
            env, trouble, shared = self._drawn[position]
            if shared is not None:  # the time limit is per instance and per step
                shared.deadline = time.perf_counter() + settings.INSTANCE_SECONDS
            yield env, trouble, shared
            position += 1
