"""The accuracy contract of DESIGN.md, in ULPs against the definitions in mpmath.

One verification run (the same suite as ``python -m derive verify``) feeds every test.
Each test states its bound and shows that the naive formula or the plain max-shift
(what SciPy, PyTorch and JAX do) fails the same bound on the same inputs.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from derive import cases, executors
from derive import measure as M
from derive.softmax import verify as V

# one worker computes (or reads from the cache) the verification run these tests share
pytestmark = pytest.mark.xdist_group("verification")


@pytest.fixture(scope="module")
def report():
    # in this process: a pool's spawned processes would each import the package (seconds)
    # and compete with the other test worker for the cores; test_parallel_references_equal_serial
    # covers the pool
    return V.run(out=None, jobs=1)


def _index(report):
    return {(r.implementation, r.function, r.category): r for r in report.results}


BINARY = list(cases.binary_cases(np.random.default_rng(0), 1))
LSE_B = list(cases.signed_weight_cases(np.random.default_rng(0), 1))
CASES = ([(f, c) for f in V.FUNCTIONS if not f.startswith(("binary", "logsumexp_b")) for c in V.SUITE
          if not (f.endswith("soft") and c == "T = 32000")]
         + [(f, c) for f in ("binary_cross_entropy", "binary_cross_entropy_grad") for c in BINARY])


@pytest.mark.parametrize("function,category", CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_contract(report, function, category):
    index = _index(report)
    ours = index["numeric", function, category]
    # DESIGN.md: 4 ULP in float64, 1 ULP in float32; the weighted gradient has its own
    # documented bound (one product and one sum more than S - y)
    bound = 1.0 if category == "float32" else V.EXTRA_BOUND.get(function, 4.0)
    assert ours.bound == bound
    assert ours.inputs > 0
    assert ours.max_ulp <= bound, f"{function} on {category}: {ours.max_ulp:.2f} ULP > {bound}"
    naive = index["naive", function, category].max_ulp
    shifted = index["max-shift", function, category].max_ulp
    assert max(naive, shifted) > bound, (
        f"the suite cannot tell: naive {naive:.2f} and max-shift {shifted:.2f} ULP both pass")


@pytest.mark.parametrize("category", LSE_B)
def test_weighted_logsumexp_contract(report, category):
    """logsumexp(a, b=b): 4 ULP of |m| + |log|s|| + sum_{j != k} |b_j| e^{a_j - m} / |s|,
    the sign exact; SciPy measured in the same run."""
    index = _index(report)
    ours = index["numeric", "logsumexp_b", category]
    assert ours.bound == 4.0 and ours.inputs > 0
    assert ours.max_ulp <= 4.0, f"logsumexp_b on {category}: {ours.max_ulp:.2f} ULP"
    assert ("scipy.special", "logsumexp_b", category) in index


def test_weighted_logsumexp_max_shift_fails_on_tiny_logs(report):
    assert _index(report)["max-shift", "logsumexp_b", "b > 0, tiny log"].max_ulp > 1e6


def test_max_shift_loses_hundreds_of_ulps_on_spread_logits(report):
    index = _index(report)
    assert index["max-shift", "softmax", "spread"].max_ulp > 100
    assert index["numeric", "softmax", "spread"].max_ulp <= 4


def test_libraries_return_zero_for_tiny_losses(report):
    # true class ahead by 20..740: every max-shift code returns exactly 0
    index = _index(report)
    assert index["max-shift", "cross_entropy", "tiny loss"].max_ulp > 1e15
    assert index["numeric", "cross_entropy", "tiny loss"].max_ulp <= 4


def test_extra_checks_pass(report):
    checks = report.checks
    for name, value in checks.items():
        if isinstance(value, bool):
            assert value, name
        else:
            assert value < 1e-6, f"{name}: {value}"
    # the high-precision difference quotient agrees with S - y to ~50 digits
    assert min(v for v in checks.values() if not isinstance(v, bool)) < 1e-40


# --------------------------------------------------------------------------- the measure
def test_ulp_error_counts_units_in_the_last_place():
    one = mpmath.mpf(1)
    assert M.ulp_error(1.0, one) == 0
    assert M.ulp_error(np.nextafter(1.0, 2), one) == 1
    # the ULP is that of the reference: ulp(1) = 2**-52, and 1 - 2**-53 is half of it
    assert M.ulp_error(np.nextafter(1.0, 0), one) == 0.5
    assert M.ulp_error(float("inf"), mpmath.mpf("2e308")) == 0  # rounds to inf
    assert M.ulp_error(1.7e308, mpmath.mpf("2e308")) == math.inf
    assert M.ulp_error(float("nan"), one) == math.inf
    # floor at the smallest normal: a subnormal result is measured in subnormal units
    assert M.ulp_error(0.0, mpmath.mpf(5e-324)) == 1
    assert M.ulp_error(np.float32(1) + np.float32(2 ** -23), one, np.float32) == 1


def _ulp_in_mpmath(computed, exact, dtype):
    """The definition of the measure, all in mpmath: |c - e| / ulp(e rounded to dtype)."""
    info = np.finfo(dtype)
    with mpmath.workdps(1200):
        ref = dtype(max(float(abs(exact)), float(info.tiny)))
        unit = mpmath.mpf(float(np.spacing(ref)))
        return float(abs(mpmath.mpf(float(computed)) - exact) / unit)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vectorised_measure_agrees_with_mpmath(dtype):
    # the float64 double-double measure used for the whole suite against the plain
    # mpmath definition, over normal, subnormal, tiny (below the subnormals) and huge
    # exact values and computed values a few ULPs (or orders of magnitude) off
    rng = np.random.default_rng(7)
    info = np.finfo(dtype)
    exact, computed = [], []
    with mpmath.workdps(1200):
        sub = float(info.smallest_subnormal)
        for magnitude in (1.0, 1e-3, sub * 3e11, sub * 3e3, sub * 20, sub / 4, float(info.tiny) * 3,
                          float(info.max) / 1e8, float(info.max) / 3):
            for _ in range(40):
                e = mpmath.mpf(magnitude) * (1 + mpmath.mpf(rng.uniform(-0.5, 0.5)) / 3) \
                    * (1 + mpmath.mpf(2) ** -70 * rng.integers(-2 ** 20, 2 ** 20))
                off = rng.choice([0, 1, -1, 3, 1e3, 1e12])
                c = dtype(float(e))
                c = np.nextafter(c, dtype(np.inf) if off >= 0 else dtype(-np.inf)) if off else c
                for _ in range(int(min(abs(off), 3)) - 1):
                    c = np.nextafter(c, dtype(np.inf))
                if abs(off) > 3:
                    c = dtype(float(c) * (1 + 1e-14 * off))
                exact.append(e)
                computed.append(c)
        ours = M.ulp_errors(np.array(computed, dtype=np.float64), M.exact_parts(exact), dtype)
        truth = [_ulp_in_mpmath(c, e, dtype) for c, e in zip(computed, exact)]
    for c, e, got, want in zip(computed, exact, ours, truth):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (c, mpmath.nstr(e, 20))
    # the old scalar measure is the same function
    assert M.ulp_error(computed[3], exact[3], dtype) == pytest.approx(truth[3], rel=1e-9, abs=1e-9)


def test_reference_cache_is_keyed_by_the_inputs(tmp_path, monkeypatch):
    # the CLI and the tests share reference values through the cache: a second run reads
    # them, a changed input computes afresh, a broken entry is recomputed
    monkeypatch.setenv("SOFTMAX_DERIVE_CACHE", str(tmp_path))
    rng = np.random.default_rng(1)
    case = V.Case(rng.normal(0, 3, (3, 4)), rng.integers(0, 4, 3))
    first = V.case_references({"c": case}, executor=None)["c"]
    (entry,) = list((tmp_path / "reference").glob("*.npz"))
    second = V.case_references({"c": case}, executor=None)["c"]
    assert all(np.array_equal(first[k], second[k], equal_nan=True) for k in first)
    changed = V.Case(case.logits.copy(), case.target)
    changed.logits[0, 0] = np.nextafter(changed.logits[0, 0], np.inf)
    V.case_references({"c": changed}, executor=None)
    assert len(list((tmp_path / "reference").glob("*.npz"))) == 2
    entry.write_bytes(b"not an npz")
    again = V.case_references({"c": case}, executor=None)["c"]
    assert all(np.array_equal(first[k], again[k], equal_nan=True) for k in first)
    fresh = V.reference_row(case.logits[1], int(case.target[1]), weighted=case.weighted()[1])
    assert M.ulp_errors(np.array(fresh.softmax, dtype=float), first["softmax"][:, 1, :]).max() <= 0.5


def test_parallel_references_equal_serial(monkeypatch):
    monkeypatch.setenv("SOFTMAX_DERIVE_CACHE", "off")
    rng = np.random.default_rng(2)
    cases = {"a": V.Case(rng.normal(0, 3, (4, 5)), rng.integers(0, 5, 4)),
             "b": V.Case(rng.normal(0, 30, (3, 7)), rng.integers(0, 7, 3), soft=rng.dirichlet(np.ones(7), 3))}
    serial = V.case_references(cases, executor=None)
    with executors.local(2) as pool:
        parallel = V.case_references(cases, executor=pool)
    for name in cases:
        assert serial[name].keys() == parallel[name].keys()
        for key in serial[name]:
            assert np.array_equal(serial[name][key], parallel[name][key], equal_nan=True)


def test_reference_precision_is_enough():
    # the same row at its chosen precision and at 60 more digits gives the same values
    rows = [np.array([0.3, -700.123456789, 5.5]), np.array([1e308, -1e308, 0.0]),
            np.array([740.0, 0.1, -0.2])]
    for row in rows:
        digits = V.digits_for(row)
        low = V.reference_row(row, 1, digits=digits)
        high = V.reference_row(row, 1, digits=digits + 60)
        for x, y in zip(low.grad_index + [low.loss_index], high.grad_index + [high.loss_index]):
            with mpmath.workdps(digits + 60):
                assert abs(x - y) <= abs(y) * mpmath.mpf(10) ** (-40)


def test_check_grads_rejects_a_wrong_gradient():
    loss = lambda x: np.sum(x ** 2)  # noqa: E731
    assert M.check_grads(loss, lambda x: 2 * x, np.arange(5.0)) < 1e-8
    with pytest.raises(AssertionError, match="gradient check failed"):
        M.check_grads(loss, lambda x: 2.001 * x, np.arange(5.0))
