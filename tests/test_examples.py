"""The user catalogues in examples/: each through all four stages by the CLI, within its
stated ULP bounds, and a naive focal kernel failing the same bound."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from derive import cli, derivation_tests, latex, load_catalogue, verify_function
from derive.verification import Inputs, bind

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

def _generated(name: str, out: Path):
    """The example's catalogue and its kernels module, generated into ``out`` by the CLI
    and imported from there."""
    import importlib.util

    assert cli.main(["generate", "--catalogue", str(EXAMPLES / f"{name}.py"), "--out", str(out)]) == 0
    spec = importlib.util.spec_from_file_location(f"{name}_kernels", out / f"{name}_kernels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return load_catalogue(str(EXAMPLES / f"{name}.py")), module


#: the tests of one example run on one pytest-xdist worker, one after the other, so that
#: what the first proves (its derivations, its kernels' claims) the later ones find in
#: the proof memo instead of proving it again at the same time on the other worker
FOCAL = pytest.mark.xdist_group("example-focal")
TEMPERATURE = pytest.mark.xdist_group("example-temperature")

# proof-style tests, one per derivation of the focal-loss example (the one-line helper)
test_focal_derivation = FOCAL(derivation_tests(load_catalogue(str(EXAMPLES / "focal.py"))))


@pytest.mark.parametrize("name", [pytest.param("temperature", marks=TEMPERATURE),
                                  pytest.param("focal", marks=FOCAL), "zloss"])
def test_example_through_every_stage(name, tmp_path, capsys, monkeypatch):
    # one process: the proofs and reference rows in parallel processes are tested on
    # their own (test_checker, test_accuracy, test_stages); here two more processes would
    # only compete with the other test worker for the two cores. The PDF of a user
    # catalogue is tested once (test_stages); here the .tex is enough.
    monkeypatch.setattr(latex, "tex_engine", lambda: None)
    status = cli.main(["all", "--jobs", "1", "--catalogue", str(EXAMPLES / f"{name}.py"),
                       "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([f"{name}{suffix}" for suffix in (
        ".md", ".tex", "_derivations.txt", "_kernels.py", "_verification.json")] + ["figures"])
    assert (tmp_path / "figures" / "errors.png").is_file()
    data = json.loads((tmp_path / f"{name}_verification.json").read_text())
    ours = [r for r in data["results"] if r["implementation"] == "generated"]
    assert ours and all(r["passed"] and r["max_ulp"] <= r["bound"] for r in ours)
    # the adversarial suites and every declared parameter range, beside the naive formula
    categories = {r["category"] for r in ours}
    assert {"spread +-1000", "tiny losses", "near +708", "near -708", "ties", "large T=100"} <= categories
    assert any(" = " in category for category in categories)
    assert {r["implementation"] for r in data["results"]} == {"generated", "naive"}
    assert all(value < 1e-6 for value in data["checks"].values()) and len(data["checks"]) == 2


def test_focal_with_gamma_zero_is_the_softmax_loss():
    cat = load_catalogue(str(EXAMPLES / "focal.py"))
    steps = cat["focal_gamma_zero"].steps
    assert steps[-1].lemma.key == "loss_one_hot"


@FOCAL
def test_a_naive_focal_kernel_fails_the_bound_the_generated_one_meets(tmp_path):
    """1 - S_c by subtraction loses its digits when S_c ~ 1: the same Verification with
    the naive function exceeds the 4 ULP that the generated kernel meets."""
    cat, module = _generated("focal", tmp_path)

    def naive(a, c, gamma):
        s = np.exp(a - a.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        sc = np.take_along_axis(s, c, -1)
        return -(1 - sc) ** gamma * np.log(sc)

    # two classes, one far ahead: the (random) true class is the dominant one in about
    # half of the rows, where S_c ~ 1 - 1e-4
    dominant = (Inputs("one class far ahead", lambda rng: np.concatenate(
        [rng.uniform(8, 12, (20, 1)), np.zeros((20, 1))], axis=1)),)
    loss = bind(cat.verifications[0], module)
    import dataclasses
    ours = verify_function(dataclasses.replace(loss, inputs=dominant))
    theirs = verify_function(dataclasses.replace(loss, function=naive, inputs=dominant))
    assert ours.max_ulp <= 4
    assert theirs.max_ulp > 4


@TEMPERATURE
def test_the_temperature_gradient_shifts_before_it_scales(tmp_path):
    """Scaling first (a_j/tau - m/tau) rounds the exponent to (|a_j| + |m|)/tau ULP-halves:
    thousands of ULPs for logits near 1000, far past the 4 ULP that the derived kernel,
    which carries (a_j - m)/tau as a double-double (the quotient's remainder kept), meets
    on the same inputs (it was 64 while the shifted quotient was rounded)."""
    import dataclasses

    cat, module = _generated("temperature", tmp_path)

    def scale_first(a, c, tau):
        x = a / tau
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        g = e / e.sum(axis=-1, keepdims=True)
        np.put_along_axis(g, c, np.take_along_axis(g, c, -1) - 1, -1)
        return g / tau

    offset = (Inputs("offset logits near 1000", lambda rng: 1000 + rng.normal(0, 2, (12, 6))),)
    grad = dataclasses.replace(bind(cat.verifications[1], module), inputs=offset)
    ours = verify_function(grad)
    theirs = verify_function(dataclasses.replace(grad, function=scale_first))
    assert ours.max_ulp <= grad.bound == 4
    assert theirs.max_ulp > 64
