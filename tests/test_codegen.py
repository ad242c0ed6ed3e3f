"""Code generation is reproducible, proved and checked for staleness."""
from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from derive import codegen, engine
from derive import functions as F
from derive.softmax import kernels as SK

ROOT = Path(__file__).resolve().parent.parent


def test_regeneration_is_byte_identical():
    assert SK.render() == SK.TARGET.read_text()
    assert SK.render() == SK.render()


def test_generated_file_has_no_run_dependent_names():
    text = SK.TARGET.read_text()
    assert "Dummy" not in text and "_Dummy" not in text and "0x" not in text


def test_generate_check_detects_a_stale_file(tmp_path):
    target = tmp_path / "_kernels.py"
    ok, message = SK.generate(check_only=True, target=target)  # missing
    assert not ok and "stale" in message
    target.write_text(SK.render().replace("numpy.log1p", "numpy.log"))  # edited by hand
    ok, message = SK.generate(check_only=True, target=target)
    assert not ok and "stale" in message and "python -m derive generate" in message
    ok, _ = SK.generate(target=target)  # regenerate
    assert ok and SK.generate(check_only=True, target=target)[0]
    assert target.read_text() == SK.TARGET.read_text()


#: the two tests below prove the same kernels: on one worker, the second finds the first's
#: links in the memo of proofs (this process's, and the session's of conftest) instead of
#: proving them again
KERNEL_PROOFS = pytest.mark.xdist_group("kernel-proofs")


@KERNEL_PROOFS
def test_kernels_are_proved_against_the_catalogue():
    reports = SK.prove_kernels()
    assert {r.derivation.key for r in reports} >= {"kernel_logsumexp", "kernel_softmax",
                                                    "kernel_nll_index", "kernel_nll_soft",
                                                    "kernel_nll_index_grad", "kernel_nll_soft_grad"}


@KERNEL_PROOFS
def test_generate_check_passes_on_the_committed_file(capsys, monkeypatch):
    """``python -m derive generate --check``, as CI runs it after the tests, in this
    process (``python -m derive`` exits with what ``cli.main`` returns; the tests of
    ``all`` and of a bad catalogue run the entry point in a new interpreter)."""
    from derive import cli

    monkeypatch.chdir(ROOT)
    assert cli.main(["generate", "--check"]) == 0
    printed = capsys.readouterr()
    assert "is up to date" in printed.out, printed.out + printed.err


def test_every_printed_output_is_the_proved_one():
    for kernel in SK.kernels():
        proofs = kernel.proofs
        assert len(proofs) >= len(kernel.outputs)
        for output, claims in zip(kernel.outputs, kernel.claims):
            for claim in claims if isinstance(claims, tuple) else (claims,):
                proof = codegen.kernel_proof(claim, output)
                assert proof.result == F.to_indexed(output, claim.index)
                assert any(engine.fingerprint(p) == engine.fingerprint(proof) for p in proofs)


def test_a_kernel_needs_a_claim_per_output():
    with pytest.raises(ValueError, match="every output needs its claim"):
        codegen.Kernel("two", (F.A,), (SK.SOFTMAX, SK.M), "doc",
                       (SK._claims()["kernel_softmax"],))


def test_a_wrong_kernel_is_rejected():
    # dropping the "+ 1" of the stable softmax denominator must not pass the proof
    wrong = F.Quotient(SK.E, SK.TAIL)
    proof = codegen.kernel_proof(SK._claims()["kernel_softmax"], wrong)
    with pytest.raises(engine.StepRejected, match="Kernel softmax"):
        engine.check(proof)


@pytest.mark.parametrize("cls", [F.DiffHi, F.ExpDiff, F.Quotient, F.ZeroTimes])
def test_function_rewrites_and_derivatives(cls):
    x, y = sp.symbols("x y", positive=True)
    f = cls(x, y)
    elementary = f.rewrite("elementary")
    assert elementary != f
    for var in (x, y):
        assert sp.simplify(sp.diff(f, var).rewrite("elementary") - sp.diff(elementary, var)) == 0
    assert sp.latex(f)


def test_the_generated_module_carries_its_output_shapes_and_the_runtime_uses_them():
    """OUTPUTS (which results are shaped like the logits) comes from the generator, and
    the runtime keeps no table of its own; each kernel's results have those shapes."""
    import inspect

    import numpy as np

    from numeric import _kernels, _rows

    assert not hasattr(_rows, "_SHAPES")
    assert "_kernels.OUTPUTS" in inspect.getsource(_rows._run)
    a = np.random.default_rng(0).normal(size=(3, 4))
    extra = {"C": np.array([[0], [1], [3]]), "Y": np.full((3, 4), 0.25), "U": np.full((3, 4), 0.5),
             "BW": np.ones((3, 4))}
    for name, full in _kernels.OUTPUTS.items():
        kernel = getattr(_kernels, name)
        args = [extra[p] for p in list(inspect.signature(kernel).parameters)[1:]
                if p not in ("out", "scratch", "moderate")]
        results = kernel(a.copy(), *args)
        results = results if isinstance(results, tuple) else (results,)
        assert [r.shape == a.shape for r in results] == list(full), name


def test_a_row_kernel_with_a_power_of_the_logits_is_printed_and_computes_it(tmp_path):
    """A user's kernel lam/2 sum_j a_j^2, lam a_j (an L2 penalty on the logits): the
    full-shape a_j^2 gets a buffered statement (it raised NotImplementedError for Pow)."""
    import importlib.util

    import numpy as np

    from derive import Claim, Kernel, scalar, write_module
    from derive.softmax import definitions as D

    lam = scalar("lam", lambda rng: rng.uniform(0.1, 2.0), positive=True)
    loss = lam / 2 * sp.Sum(D.a[D.s] ** 2, (D.s, 1, D.T))
    kernel = Kernel("l2", (F.A, lam), (lam / 2 * F.RowSum(F.A ** 2), F.A ** 3),
                    "lam/2 sum_j a_j^2 and a_j^3",
                    (Claim("kernel_l2", "Kernel l2", (), loss, "definition", ()),
                     Claim("kernel_cube", "Kernel cube", (), D.a[D.j] ** 3, "definition", ())))
    path = tmp_path / "l2_kernels.py"
    ok, message = write_module([kernel], path)
    assert ok, message
    spec = importlib.util.spec_from_file_location("l2_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -4.0]])
    total, cube = module.l2(a, 0.5)
    assert np.array_equal(total[:, 0], 0.25 * np.sum(a * a, axis=-1))
    assert np.array_equal(cube, a ** 3)


def _kernel_sources():
    """name -> source of every row kernel of the generated module."""
    import inspect

    from numeric import _kernels
    return {k.name: inspect.getsource(getattr(_kernels, k.name)) for k in SK.KERNELS if k.rows}


def test_each_index_column_is_made_a_flat_index_once_per_call():
    """Issue 13: the flat index of the argmax and of the targets was built again for every
    take, put and sum (4-5 times a call); now once per index column and form, and every
    helper call addresses through it."""
    import re
    for name, source in _kernel_sources().items():
        body = source.split('"""')[2]
        lines = body.splitlines()
        moderate = "\n".join(line for line in lines if line.startswith(" " * 8))
        general = "\n".join(line for line in lines if line.startswith("    ") and line[4] != " ")
        for form in (moderate, general):
            columns = re.findall(r"at_(\w+) = ", form)
            assert len(columns) == len(set(columns)), (name, columns)
            assert form.count("numpy.arange(") <= 1, name
        for call in re.findall(r"_(?:take|sum_except|sum_except_keep|put_at_target|accurate_sum_except)\((.*)", body):
            assert re.match(r"[\w\[\]]+, at_\w+", call), (name, call)


def test_the_runtime_calls_moderate_what_the_generated_kernels_assume():
    from numeric import _blocks
    assert (_blocks.MODERATE_LOW, _blocks.MODERATE_HIGH) == codegen.MODERATE
    assert "in [-708, 600]" in _kernel_sources()["nll_index_with_grad"]


def test_a_moderate_form_needs_an_output_per_output():
    spec = next(k for k in SK.KERNELS if k.name == "nll_index_with_grad")
    with pytest.raises(ValueError, match="moderate form"):
        codegen.Kernel(spec.name, spec.args, spec.outputs, spec.doc, spec.claims, moderate=spec.moderate[:1])


def test_a_chain_of_in_place_puts_is_written_into_the_output_array():
    """PutAt writes into its first argument; a PutAt of a PutAt that is a kernel's result
    must have the innermost value written into out from the start, not left in scratch
    (the runtime reads out and hands scratch to the next call)."""
    inner = F.PutAt(SK.SOFTMAX_FOLDED, SK.K, F.Quotient(1, 1 + SK.TAIL_M))
    chained = F.PutAt(inner, SK.C, F.SelectArgmax(SK.C, SK.K, -F.Quotient(SK.TAIL_M, 1 + SK.TAIL_M),
                                                  F.Take(inner, SK.C) - 1))
    statements, results = codegen.to_statements([chained])
    codegen.assign_buffers(statements, results)
    puts = [st for st in statements if isinstance(st.expr, F.PutAt)]
    assert len(puts) == 2
    source = next(st for st in statements if st.target == puts[0].expr.args[0])
    assert source.buffer == puts[0].buffer == puts[1].buffer == "out[0]"
