"""Every plausible mistake in a kernel expression is caught by the kernel proofs.

The mutants are made from the very expressions the code generator prints: swapped
arguments, flipped signs, swapped branches, a dropped term, the target used for the
argmax (and the argmax for the target). Each must be rejected by the proof of its
output before any code is generated from it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sympy as sp
from sympy.codegen.cfunctions import log1p

from derive import codegen, engine, load_catalogue
from derive import functions as F
from derive.softmax import kernels as SK

K, C = SK.K, SK.C
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: functions whose two arguments commute in exact arithmetic (swapping them is no mistake
#: the proofs could see: y x = x y)
COMMUTING = (F.ZeroTimes,)


def _rebuild(expr, path, new):
    if not path:
        return new
    args = list(expr.args)
    args[path[0]] = _rebuild(args[path[0]], path[1:], new)
    return expr.func(*args)


def _is_argmax(node) -> bool:
    """The argmax column: of the logits (RowArgmax), or of a derived kernel's softmax of
    any f (derive.stable's Argmax_ functions)."""
    return isinstance(node, F.RowArgmax) or (isinstance(node, F.ArrayFunction)
                                              and type(node).__name__.startswith("Argmax_"))


def _nodes(expr, path=(), at_argmax=False):
    """(path, node, inside the branch taken when c = k) for every node."""
    yield path, expr, at_argmax
    if isinstance(expr, sp.Basic) and not expr.is_Atom and not _is_argmax(expr):
        for n, arg in enumerate(expr.args):
            inside = at_argmax or (isinstance(expr, F.SelectArgmax) and n == 2)
            yield from _nodes(arg, (*path, n), inside)


def _local_mutants(node, at_argmax, top=K):
    """(kind, replacement) for one node of an array expression. Where c = k (the first
    branch of SelectArgmax(C, K, ...)) the target and the argmax are the same index,
    so exchanging them there is no mistake and is not tried."""
    if (isinstance(node, F.ArrayFunction) and len(node.args) >= 2 and not isinstance(node, COMMUTING)
            and not _is_argmax(node) and not type(node).__name__.startswith(("ShiftExp", "Shift_", "At_"))):
        args = list(node.args)
        if isinstance(node, F.SelectArgmax):
            yield "swap branches", node.func(args[0], args[1], args[3], args[2])
        elif isinstance(node, F.PutAt):
            yield "swap arguments", node.func(args[2], args[1], args[0])
        else:
            yield "swap arguments", node.func(*reversed(args))
    if isinstance(node, sp.Add):
        terms = list(node.args)
        for n in range(len(terms)):
            yield "flip a sign", sp.Add(*terms[:n], -terms[n], *terms[n + 1:])
            yield "drop a term", sp.Add(*terms[:n], *terms[n + 1:])
    if isinstance(node, sp.Mul) and node.args[0] == -1:
        yield "flip a sign", -node
    if node == top and not at_argmax:
        yield "target for argmax", C
    if node == C and not at_argmax:
        yield "argmax for target", top


def mutants(expr):
    top = next((node for _, node, _ in _nodes(expr) if _is_argmax(node)), K)
    for path, node, at_argmax in _nodes(expr):
        for kind, new in _local_mutants(node, at_argmax, top):
            mutant = _rebuild(expr, path, new)
            if mutant != expr:
                yield kind, path, mutant


def _outputs():
    """Each distinct (output expression, claim) pair of the generated kernels, the
    moderate forms' (under their own claims) included."""
    seen = {}
    for kernel in SK.kernels():
        for outputs, mark in ((kernel.outputs, lambda c: c), (kernel.moderate, codegen.moderate_claim)):
            for output, claims in zip(outputs, kernel.claims):
                for claim in claims if isinstance(claims, tuple) else (claims,):
                    claim = mark(claim)
                    seen.setdefault((claim.key, sp.srepr(output)), (kernel.name, output, claim))
    return list(seen.values())


OUTPUTS = _outputs()


def _rejected(claim, mutant) -> bool:
    """Rejected -- and by the numeric half (a counterexample, or an instance where the
    mutant has no value, such as a division by 0), not merely unproved."""
    try:
        engine.check(codegen.kernel_proof(claim, mutant))
    except (engine.StepFalse, engine.StepUndefined):
        return True
    except engine.StepRejected:
        return False
    return False


def _same_meaning(claim, output, mutant) -> bool:
    """The mutant has the same index form as the output: not a mistake (e.g. a swap
    inside an exact zero such as the TwoSum error term)."""
    try:
        return F.to_indexed(mutant, claim.index) == F.to_indexed(output, claim.index)
    except ValueError:
        return False


def _equivalent(claim, output, mutant) -> bool:
    """SymPy shows the mutant equal to the output itself: no mistake (K for C inside
    the branch taken when c = k, for example)."""
    return engine.symbolic_check(F.to_indexed(output, claim.index), F.to_indexed(mutant, claim.index),
                                 "=", claim.assumptions) is not None


@pytest.mark.parametrize("name, output, claim", OUTPUTS,
                         ids=[f"{name}-{claim.key}" for name, _, claim in OUTPUTS])
def test_every_mutant_of_a_kernel_output_is_rejected(name, output, claim):
    survivors, tried = [], 0
    for kind, path, mutant in mutants(output):
        if _same_meaning(claim, output, mutant):
            continue
        tried += 1
        if not _rejected(claim, mutant) and not _equivalent(claim, output, mutant):
            survivors.append(f"{kind} at {path}: {sp.sstr(mutant)}")
    assert tried > 0
    assert not survivors, f"{name}: mutants accepted by '{claim.title}':\n" + "\n".join(survivors)


def test_a_user_kernel_gets_the_same_scrutiny():
    # the focal loss example (a user's file, with a symbolic gamma and a derived
    # gradient): the first mutant of every kind of both outputs is rejected (all of
    # them are, about 250, in 25 s; the first per kind keeps this test short)
    focal = load_catalogue(str(EXAMPLES / "focal.py"))
    kinds = set()
    for kernel in focal.kernels:
        (output,), (claim,) = kernel.outputs, kernel.claims
        first = {}
        for kind, _path, mutant in mutants(output):
            if kind not in first and not _same_meaning(claim, output, mutant):
                first[kind] = mutant
        for kind, mutant in first.items():
            assert _rejected(claim, mutant), f"{kernel.name}: a mutant ({kind}) was accepted"
        kinds |= set(first)
    assert kinds == {"swap arguments", "swap branches", "flip a sign", "drop a term",
                     "target for argmax", "argmax for target"}


def test_the_mutations_cover_every_kind():
    kinds = {kind for _, output, _ in OUTPUTS for kind, _, _ in mutants(output)}
    assert kinds == {"swap arguments", "swap branches", "flip a sign", "drop a term",
                     "target for argmax", "argmax for target"}


TAIL_AT_TARGET = F.SumExceptMax(SK.E, C)  # TAIL = SumExceptMax(E, C): the example
SWAPPED_BRANCHES = F.PutAt(SK.SOFTMAX, C, F.SelectArgmax(
    C, K, F.Take(SK.SOFTMAX, C) - 1, -F.Quotient(SK.TAIL, 1 + SK.TAIL)))


@pytest.mark.parametrize("claim_key, wrong", [
    ("kernel_logsumexp", SK.M + log1p(TAIL_AT_TARGET)),
    ("kernel_softmax", F.Quotient(SK.E, 1 + TAIL_AT_TARGET)),
    ("kernel_nll_index_grad", SWAPPED_BRANCHES),
    ("kernel_nll_index_grad", F.PutAt(SK.SOFTMAX, K, SK.TRUE_CLASS)),
    ("kernel_nll_soft_grad", SK.SOFTMAX + F.Y),
    ("kernel_nll_soft_grad", SK.SOFTMAX),
], ids=["tail_at_target", "softmax_tail_at_target", "swapped_branches", "put_at_argmax",
        "plus_Y", "no_Y"])
def test_named_kernel_mistakes_are_rejected(claim_key, wrong):
    claim = SK._claims()[claim_key]
    with pytest.raises(engine.StepRejected, match="rejected"):
        engine.check(codegen.kernel_proof(claim, wrong))


def test_a_mutated_kernel_is_never_generated(monkeypatch, tmp_path, capsys):
    from derive import stages
    from derive.registry import load_catalogue

    cat = load_catalogue()
    grad = next(kernel for kernel in cat.kernels if kernel.name == "nll_index_grad")
    bad = dataclasses.replace(grad, outputs=(SWAPPED_BRANCHES,))
    monkeypatch.setattr(cat, "kernels", [bad if k is grad else k for k in cat.kernels])
    assert stages.generate(stages.Run(cat, None, tmp_path)) == 1
    assert "FAIL a kernel does not match its proved form" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
