"""The toolkit from outside the package: a toy loss of a user's own, in a temporary
directory, through prove -> generate -> import -> verify -> report, by the public API
(``derive`` and the built-in library ``derive.softmax``) and by the CLI; a false step
is rejected with its counterexample."""
from __future__ import annotations

import ast
import json
import textwrap

import pytest

from derive import cli

TOY = textwrap.dedent('''
    """A toy loss of a user's own: L = beta log sum_j e^{a_j}, gradient beta S_j."""
    from sympy import Derivative

    from derive import Catalogue, Claim, Kernel, Step, Verification, scalar
    from derive.softmax import CATALOGUE as SOFTMAX
    from derive.softmax import definitions as D
    from derive.softmax.kernels import L1P, M, SOFTMAX as S_ARRAY, A

    beta = scalar("beta", lambda rng: rng.uniform(0.5, 2.0), positive=True)
    LOSS = beta * D.logsumexp()
    GRAD = beta * D.softmax(D.j)

    CATALOGUE = Catalogue("toy", "A scaled log-sum-exp", uses=[SOFTMAX])
    CATALOGUE.derivation("toy_gradient", "Gradient of the toy loss", [
        Step(Derivative(LOSS, D.a[D.j]), "the derivative to find"),
        Step(GRAD, r"$\\partial \\log Z/\\partial a_j = S_j$"),
    ])
    TOP = (D.K_IS_ARGMAX,)
    LOSS_KERNEL = CATALOGUE.kernel(Kernel("toy", (A, beta), (beta * (M + L1P),), "beta lse(a)",
        (Claim("kernel_toy", "Kernel toy", TOP, LOSS, "definition", ("lse_stable",)),)))
    GRAD_KERNEL = CATALOGUE.kernel(Kernel("toy_grad", (A, beta), (beta * S_ARRAY,), "beta S",
        (Claim("kernel_toy_grad", "Kernel toy_grad", TOP, Derivative(LOSS, D.a[D.j]), "the derivative",
               ("softmax_stable",), via=(Step(GRAD, "proved above", lemma="toy_gradient"),)),)))
    LOSS_CHECK = CATALOGUE.verification(Verification("toy", LOSS_KERNEL, LOSS, D.T, bound=4))
    CATALOGUE.verification(Verification("toy_grad", GRAD_KERNEL, GRAD, D.T, index=D.j, bound=4,
                                        gradient_of=LOSS_CHECK))
''')


def test_the_toy_file_imports_only_the_public_face():
    tree = ast.parse(TOY)
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= {"sympy", "derive", "derive.softmax", "derive.softmax.definitions",
                       "derive.softmax.kernels"}


def test_a_toy_loss_through_every_stage_by_the_api(tmp_path, monkeypatch):
    import derive

    (tmp_path / "toy.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    cat = derive.load_catalogue(str(tmp_path / "toy.py"))
    outcomes = derive.check_all(cat)
    assert [type(o).__name__ for _, o in outcomes] == ["DerivationCheck"]
    ok, message = derive.write_module(cat.kernels, tmp_path / "gen" / "toy_kernels.py", cat.title)
    assert ok and (tmp_path / "gen" / "toy_kernels.py").is_file(), message
    import importlib.util
    spec = importlib.util.spec_from_file_location("toy_kernels", tmp_path / "gen" / "toy_kernels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from derive.verification import bind
    results = [derive.verify_function(bind(v, module)) for v in cat.verifications]
    assert all(r.passed for r in results), [r.as_dict() for r in results]
    assert all(r.max_ulp <= 4 for r in results)
    assert results[1].fd_reference < 1e-30 and results[1].fd_function < 1e-6
    paths = derive.build_report(cat.title, list(cat), results, tmp_path / "report", "toy")
    assert [p.name for p in paths] == ["toy.md", "toy.tex"]
    assert "Gradient of the toy loss" in paths[0].read_text()


def test_a_false_step_is_rejected_with_its_counterexample():
    from sympy import Derivative

    import derive
    from derive.softmax import definitions as D

    beta = derive.scalar("beta", lambda rng: rng.uniform(0.5, 2.0), positive=True)
    wrong = derive.Derivation("toy_wrong", "A wrong gradient", (), [
        derive.Step(Derivative(beta * D.logsumexp(), D.a[D.j]), "the derivative to find"),
        derive.Step(D.softmax(D.j), "forgot the factor beta"),
    ])
    with pytest.raises(derive.StepFalse) as caught:
        derive.check(wrong)
    err = caught.value
    assert err.number == 1 and "forgot the factor beta" in str(err)
    assert {"T", "beta", "a", "previous", "this"} <= set(err.counterexample)
    # the pytest helper shows the same: step, both sides and the counterexample
    test = derive.derivation_tests([wrong])
    with pytest.raises(pytest.fail.Exception) as failed:
        test(wrong)
    assert "step 1" in str(failed.value) and "counterexample: T =" in str(failed.value)


def test_a_symbol_without_a_sampler_says_how_to_declare_one():
    import sympy as sp

    import derive
    from derive.softmax import definitions as D

    gamma = sp.Symbol("gamma", positive=True)  # not declared with derive.scalar
    d = derive.Derivation("undeclared", "Uses an undeclared symbol", (), [
        derive.Step(gamma * D.logsumexp(), "definition"),
        derive.Step(gamma * D.logsumexp(), "the same"),
    ])
    with pytest.raises(derive.StepRejected, match=r"derive\.scalar\('gamma', .*positive=True"):
        derive.check(d)


def test_a_toy_loss_through_every_stage_by_the_cli(tmp_path, capsys, monkeypatch):
    """``python -m derive all --catalogue toy.py --out out`` (relative paths) in this
    process: ``python -m derive`` exits with what ``cli.main`` returns (tests/test_stages.py
    runs the entry point in a new interpreter)."""
    (tmp_path / "toy.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    status = cli.main(["all", "--jobs", "1", "--catalogue", "toy.py", "--out", "out"])
    printed = capsys.readouterr()
    assert status == 0, printed.out + printed.err
    out = tmp_path / "out"
    assert {"toy.md", "toy.tex", "toy_derivations.txt", "toy_kernels.py", "toy_verification.json",
            "figures"} <= {p.name for p in out.iterdir()}
    data = json.loads((out / "toy_verification.json").read_text())
    assert all(r["passed"] for r in data["results"] if r["implementation"] == "generated")
    assert cli.main(["prove", "--list", "--catalogue", str(tmp_path / "toy.py")]) == 0
    listed = capsys.readouterr().out
    assert listed.split()[0] == "toy_gradient" and "Gradient of the toy loss" in listed

