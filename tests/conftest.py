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
never found there (the key is the whole link), so every rejection test still runs. The
entries are JSON data authenticated by an HMAC under a secret this session creates
(:data:`derive.engine.MEMO_KEY_VARIABLE`, inherited by its processes only).

One BLAS thread per process: the test workers are the parallelism (one per core), and
OpenBLAS's own threads, two per worker here, spin while they wait for work, taking the
core from the other worker (the README's digits fit: 0.5 s with one thread, 2.3 s with
two on this 2-core machine, alone). Set for the workers and the commands the tests run,
unless the environment sets it.

The groups need pytest-xdist to see them: it reads a group from the ``@name`` it appends
to a test's node id, which pytest 9.2 no longer lets it write (:func:`_join_group`);
tests/test_scheduling.py fails when a group is lost.
"""
import os
import secrets
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SOFTMAX_DERIVE_PROFILE", "ci"))


#: derive.engine.MEMO_VARIABLE and MEMO_KEY_VARIABLE, by their values: the controller
#: does not import the package (a second of SymPy before the workers start);
#: test_proof_memo.py checks that they are the engine's
MEMO_VARIABLE, MEMO_KEY_VARIABLE = "DERIVE_PROOF_MEMO", "DERIVE_PROOF_MEMO_KEY"


def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group(name): run on one pytest-xdist worker")

    for threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(threads, "1")  # before a worker imports NumPy (they inherit it)
    if MEMO_VARIABLE not in os.environ:  # the controller (workers inherit it)
        # a directory only this user can open, and a secret only this session's processes
        # hold (the workers and the command lines the tests run inherit it): an entry
        # that anyone else writes there fails its HMAC and is ignored
        config._proof_memo = tempfile.mkdtemp(prefix="derive-proofs-")
        os.environ[MEMO_VARIABLE] = config._proof_memo
        os.environ[MEMO_KEY_VARIABLE] = secrets.token_hex(32)


def pytest_unconfigure(config):
    folder = getattr(config, "_proof_memo", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(MEMO_VARIABLE, None)
        os.environ.pop(MEMO_KEY_VARIABLE, None)


@pytest.fixture(scope="session")
def written_reports(tmp_path_factory):
    """The built-in content's documents (.tex, .md and figures; no PDF), written once per
    worker for the tests that read them (test_report, test_printed_steps: one xdist group)."""
    from derive.softmax import report

    out = tmp_path_factory.mktemp("reports")
    report.report(pdf=False, out_dir=out, readme=False)
    return out


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook of the same name
def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        derivation = callspec.params.get("derivation") if callspec else None
        key = getattr(derivation, "key", None)
        if key is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(f"derivation-{key}"))
    if getattr(config.option, "loadgroup", False):  # a pytest-xdist worker under --dist loadgroup
        for item in items:
            _join_group(item)


def _join_group(item) -> None:
    """Put ``item`` in its xdist_group the way pytest-xdist does: ``@name`` at the end of
    its node id, which the scheduler reads. pytest-xdist 3.8 writes that suffix to
    ``item._nodeid``, which pytest 9.2 no longer reads (it keeps a structured ``item._id``;
    pytest-xdist issue #1386): every group was then silently ignored and the tests that
    share proofs ran on both workers at once, each proving the same links. The groups the
    hook above adds come after xdist's hook in any case. Idempotent: an id that already
    ends with the suffix is left alone."""
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    if not names:
        return
    suffix = "@" + "_".join(names)
    nodeid = item.nodeid
    if nodeid.endswith(suffix):
        return
    if "@" in nodeid.rpartition("]")[2]:  # xdist's suffix for fewer groups: replace it
        nodeid = nodeid[:nodeid.rindex("@")]
    structured = getattr(item, "_id", None)
    if structured is not None and hasattr(type(structured), "parse"):  # pytest >= 9.2
        item._id = type(structured).parse(nodeid + suffix)
    else:
        item._nodeid = nodeid + suffix
