"""One pipeline for every catalogue: a user's file gets what the built-in content gets --
the PDF (a derivation of any length on it, every step), the adversarial input suites
with the naive formula beside, the verification table and figures -- through the same
stages, on any executor (a Dask cluster gives the same bytes), from a command line that
takes relative paths and reports bad input in one line."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from derive import cli, latex, stages

ROOT = Path(__file__).resolve().parent.parent

#: a user's catalogue: a scaled log-sum-exp with its kernel and verification, and a
#: derivation of 40 steps (each a visibly different form of the same value)
LONG = textwrap.dedent('''
    import sympy as sp

    from derive import Catalogue, Claim, Kernel, Step, Verification, scalar
    from derive.softmax import CATALOGUE as SOFTMAX
    from derive.softmax import definitions as D
    from derive.softmax.kernels import L1P, M, A

    x = scalar("x", lambda rng: rng.normal(0, 2))
    beta = scalar("beta", lambda rng: rng.uniform(0.5, 2.0), positive=True)
    LOSS = beta * D.logsumexp()

    CATALOGUE = Catalogue("long", "A long derivation", uses=[SOFTMAX], intro="A user's catalogue.")
    CATALOGUE.derivation("forty", "Forty steps", [Step((x + 1) ** 2, "definition")] + [
        Step(sp.Add((x + 1) ** 2, sp.Integer(k), -sp.Integer(k), evaluate=False), f"move {k:02d} there and back")
        for k in range(1, 40)])
    KERNEL = CATALOGUE.kernel(Kernel("scaled_lse", (A, beta), (beta * (M + L1P),), "beta lse(a)",
        (Claim("kernel_scaled_lse", "Kernel scaled_lse", (D.K_IS_ARGMAX,), LOSS, "definition", ("lse_stable",)),)))
    CATALOGUE.verification(Verification("scaled_lse", KERNEL, LOSS, D.T, bound=4, ranges={beta: (0.5, 2.0)}))
''')


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.skipif(latex.tex_engine() is None or shutil.which("pdftotext") is None,
                    reason="needs a TeX engine and pdftotext (poppler-utils)")
def test_a_user_catalogue_gets_the_pdf_the_adversarial_suites_and_the_figures(tmp_path):
    (tmp_path / "long.py").write_text(LONG)
    run = subprocess.run([sys.executable, "-m", "derive", "all", "--jobs", "1", "--catalogue", "long.py",
                          "--out", "rel/out"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path / "rel" / "out"
    assert {"long.pdf", "long.tex", "long.md", "long_kernels.py", "long_verification.json",
            "long_derivations.txt"} <= {p.name for p in out.iterdir()}
    assert (out / "figures" / "errors.png").is_file()
    text = subprocess.run(["pdftotext", str(out / "long.pdf"), "-"], capture_output=True, text=True).stdout
    words = " ".join(text.split())
    lost = [k for k in range(1, 40) if f"move {k:02d} there and back" not in words]
    assert not lost, f"steps missing from the PDF: {lost}"
    assert "Verification" in words and "spread +-1000" in words
    data = json.loads((out / "long_verification.json").read_text())
    ours = {r["category"]: r for r in data["results"] if r["implementation"] == "generated"}
    naive = {r["category"]: r for r in data["results"] if r["implementation"] == "naive"}
    assert {"spread +-1000", "one class dominates", "tiny losses", "near +708", "near -708", "ties",
            "large T=100", "beta = 0.5", "beta = 2"} <= set(ours)
    assert all(r["passed"] for r in ours.values())
    assert naive["near +708"]["max_ulp"] is None or naive["near +708"]["max_ulp"] > 4  # the naive e^a overflows


def _toy(tmp_path: Path) -> stages.Run:
    (tmp_path / "long.py").write_text(LONG)
    spec = str(tmp_path / "long.py")
    run = stages.Run(cli._catalogue(type("Args", (), {"catalogue": spec})()), spec, tmp_path)
    assert stages.generate(run) == 0
    return run


def test_verify_on_a_dask_cluster_gives_the_same_bytes(tmp_path, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("SOFTMAX_DERIVE_CACHE", "off")  # both runs compute every reference value
    run = _toy(tmp_path)
    assert stages.verify(run, json_path=tmp_path / "local.json") == 0
    # one worker thread in this process: the cluster starts in a second, and mpmath's
    # precision is per process, so threads of one process would share it
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        from derive import executors

        executor = executors.dask(cluster.scheduler_address)
        try:
            run.executor = executor
            assert stages.verify(run, json_path=tmp_path / "dask.json") == 0
        finally:
            executor.shutdown()
            executor._client.close()
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()


def test_relative_out_works_at_every_stage(tmp_path, monkeypatch, capsys):
    (tmp_path / "long.py").write_text(LONG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(latex, "tex_engine", lambda: None)
    for command in ("generate", "verify", "report"):
        assert cli.main([command, "--jobs", "1", "--catalogue", "long.py", "--out", "a/b"]) == 0, command
    assert {"long_kernels.py", "long_verification.json", "long.tex", "long.md"} <= {
        p.name for p in (tmp_path / "a" / "b").iterdir()}


def test_pdf_without_a_tex_engine_is_an_error(tmp_path, monkeypatch, capsys):
    run = _toy(tmp_path)
    assert stages.verify(run) == 0
    monkeypatch.setattr(latex, "tex_engine", lambda: None)
    assert stages.report(run, pdf=True) == 1
    assert "no TeX engine" in capsys.readouterr().out


@pytest.mark.parametrize("spec, problem", [
    ("no_such_file.py", "no such file"),
    ("broken.py", "ZeroDivisionError"),
    ("no.such.module", "ModuleNotFoundError"),
])
def test_a_bad_catalogue_is_one_line_at_exit_2(tmp_path, spec, problem):
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    run = subprocess.run([sys.executable, "-m", "derive", "prove", "--catalogue", spec], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and problem in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_prove_list_shows_each_statement(capsys):
    assert cli.main(["prove", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    softmax_sums = next(line for line in lines if line.startswith("softmax_sums_to_one "))
    assert re.search(r"Sum\(.*\) = 1$", softmax_sums), softmax_sums


def test_version_is_the_installed_metadata(capsys):
    from importlib.metadata import version

    import derive
    import numeric

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"softmax-derive {version('softmax-derive')}"
    assert derive.__version__ == numeric.__version__ == version("softmax-derive")


def test_no_catalogue_overrides_a_stage():
    from derive.registry import load_catalogue

    assert not hasattr(load_catalogue(), "stages")
    assert not (ROOT / "derive" / "softmax" / "stages.py").exists()
