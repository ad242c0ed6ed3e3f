"""Hypothesis profiles: a fast default for CI, a thorough one by environment variable.

    SOFTMAX_DERIVE_PROFILE=thorough python -m pytest

And one rule for sharing work between tests under pytest-xdist (``--dist loadgroup``):
the engine remembers every link it has proved in a process, so the tests that check
the same catalogue derivation (it passes; its mutated last step is rejected) run on
one worker, the passing one first, and the mutation re-checks only its own step
(measured: 7.6 s alone, 1.2 s after the passing test, for fc_grad_b).
"""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SOFTMAX_DERIVE_PROFILE", "ci"))


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        derivation = callspec.params.get("derivation") if callspec else None
        key = getattr(derivation, "key", None)
        if key is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(f"derivation-{key}"))
