"""The test suite's own scheduling: tests that share work (proofs, verification rows)
are grouped with ``xdist_group`` so that one pytest-xdist worker runs them in turn and
the later ones find the earlier ones' links in the proof memo (see conftest.py)."""
from __future__ import annotations

import pytest


@pytest.mark.xdist_group("scheduling")
def test_a_grouped_test_runs_in_its_group(request):
    """Under ``--dist loadgroup`` a grouped test's node id ends with ``@group``, which is
    what the scheduler reads. pytest-xdist 3.8 under pytest 9.2 silently dropped it
    (pytest-xdist issue #1386), and every group of the suite was ignored."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not a pytest-xdist worker under --dist loadgroup (the README's command is)")
    assert request.node.nodeid.endswith("@scheduling"), request.node.nodeid


@pytest.mark.parametrize("derivation", [pytest.param(type("D", (), {"key": "toy"})(), id="toy")])
def test_a_derivation_parameter_puts_its_test_in_the_derivations_group(request, derivation):
    """conftest groups a test parametrized by a derivation under the derivation's key."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not a pytest-xdist worker under --dist loadgroup (the README's command is)")
    assert request.node.nodeid.endswith("@derivation-toy"), request.node.nodeid
