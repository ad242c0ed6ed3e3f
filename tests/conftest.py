"""Hypothesis profiles: a fast default for CI, a thorough one by environment variable.

    SOFTMAX_DERIVE_PROFILE=thorough python -m pytest
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SOFTMAX_DERIVE_PROFILE", "ci"))
