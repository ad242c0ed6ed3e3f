"""Hypothesis profiles: a fast default for CI, a thorough one by environment variable.

    SOFTMAX_DERIVE_PROFILE=thorough python -m pytest

And one rule for sharing work between tests under pytest-xdist (``--dist loadgroup``):
the engine remembers every link it has proved in a process, so the tests that check
the same catalogue derivation (it passes; its mutated last step is rejected) run on
one worker, the passing one first, and the mutation re-checks only its own step
(measured: 7.6 s alone, 1.2 s after the passing test, for fc_grad_b). Beyond one
process, every link accepted in this session is remembered in a temporary directory
(:data:`derive.engine.MEMO_VARIABLE`) that the workers and the command lines the
tests run share: each link is proved once per session. A false or changed step is
never found there (the key is the whole link), so every rejection test still runs.
"""
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SOFTMAX_DERIVE_PROFILE", "ci"))


def pytest_configure(config):
    from derive import engine

    config.addinivalue_line("markers", "xdist_group(name): run on one pytest-xdist worker")

    if engine.MEMO_VARIABLE not in os.environ:  # the controller (workers inherit it)
        config._proof_memo = tempfile.mkdtemp(prefix="derive-proofs-")
        os.environ[engine.MEMO_VARIABLE] = config._proof_memo


def pytest_unconfigure(config):
    from derive import engine

    folder = getattr(config, "_proof_memo", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(engine.MEMO_VARIABLE, None)


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        derivation = callspec.params.get("derivation") if callspec else None
        key = getattr(derivation, "key", None)
        if key is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(f"derivation-{key}"))
