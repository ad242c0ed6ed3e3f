"""Proof-style pytest tests: one test per derivation.

In a test file of your own::

    from derive.testing import derivation_tests
    from my_loss import CATALOGUE

    test_my_loss = derivation_tests(CATALOGUE)

pytest then runs one test per derivation (named by its key); a rejected step fails
its test with the step number, the justification, both sides and, for a false step,
the counterexample (T, the indices, the values of every vector, both sides). A step
that prints exactly like the one before it (nothing visibly happens in the report)
fails its test too, naming the step.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from . import engine
from .engine import Derivation
from .notation import current
from .printing import repeated_steps


def failure_message(err: engine.StepRejected) -> str:
    """What a failing derivation test shows: the rejection and its counterexample."""
    message = str(err)
    counterexample = getattr(err, "counterexample", None)
    if counterexample:
        shown = ", ".join(f"{name} = {engine._show(value) if not isinstance(value, list) else value}"
                          for name, value in counterexample.items())
        message += f"\n  counterexample: {shown}"
    return message


def derivation_tests(derivations: Iterable[Derivation]) -> Callable:
    """A pytest test function parametrized over ``derivations`` (a catalogue or any
    iterable of derivations): one test per derivation, named by its key, checked under
    the catalogue's notation (else under the notation active here).

    Examples
    --------
    >>> from derive import Catalogue, Step, derivation_tests, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> cat = Catalogue("toy")
    >>> _ = cat.derivation("square", "A square", [Step((x + 1) ** 2, "definition"),
    ...                                          Step(x ** 2 + 2 * x + 1, "expand")])
    >>> test_toy = derivation_tests(cat)  # at module level in a test file
    """
    import pytest

    items = list(derivations)
    notation = getattr(derivations, "notation", None) or current()

    @pytest.mark.parametrize("derivation", items, ids=[d.key for d in items])
    def test_derivation(derivation):
        try:
            with notation.active():
                engine.check(derivation)
        except engine.StepRejected as err:
            pytest.fail(failure_message(err), pytrace=False)
        repeated = repeated_steps([derivation])
        if repeated:
            pytest.fail("a printed step shows nothing happening: " + "; ".join(repeated), pytrace=False)

    return test_derivation
