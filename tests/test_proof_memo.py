"""The session's memo of accepted links (derive.engine.MEMO_VARIABLE): a link proved
in one process is not proved again in another that shares the directory and the
session's secret (derive.engine.MEMO_KEY_VARIABLE), and nothing but an accepted link is
ever found there. Forged entries: tests/test_checker_round2.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sympy as sp

from derive import Derivation, Step, engine, scalar
from derive.engine import StepRejected, driver, symbolic
from derive.notation import Notation
from derive.softmax.definitions import NOTATION as BUILT_IN

#: the notation both processes check under: the built-in's and this file's scalar, and
#: nothing the other tests of a worker loaded into the library notation (a user's
#: catalogue file), which the other process does not load
MEMO = Notation("memo", uses=[BUILT_IN])
with MEMO.active():
    X = scalar("memo_x", lambda rng: rng.normal(0, 2))
SQUARE = Derivation("memo_square", "A square, for the memo", (), [
    Step((X + 1) ** 2, "definition"), Step(X ** 2 + 2 * X + 1, "expand")])


@pytest.fixture(autouse=True)
def _under_memo_notation():
    with MEMO.active():
        yield


def _entry(path) -> dict:
    return json.loads(path.read_text())


def test_the_session_memo_of_conftest_is_the_engines():
    """conftest names the engine's variables by value (its controller does not import
    the package): the workers and the commands the tests run share a memo only if they
    are the same names."""
    import conftest

    assert (conftest.MEMO_VARIABLE, conftest.MEMO_KEY_VARIABLE) == (engine.MEMO_VARIABLE, engine.MEMO_KEY_VARIABLE)
    assert os.environ.get(engine.MEMO_VARIABLE) and os.environ.get(engine.MEMO_KEY_VARIABLE)


def test_a_link_proved_in_one_process_is_remembered_for_another(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.MEMO_VARIABLE, str(tmp_path))
    monkeypatch.setenv(engine.MEMO_KEY_VARIABLE, "5e" * 32)
    monkeypatch.setattr(driver, "_LINKS_PROVED", {})
    monkeypatch.setattr(symbolic, "_SHOWN", {})
    first = engine.check(SQUARE)
    assert len(list(tmp_path.glob("link-*"))) == 1
    assert [_entry(p)["value"] for p in tmp_path.glob("shown-*")] == [first.steps[0].symbolic]
    # a fresh process finds it: the check reports the remembered normal form without
    # running either half (the numeric half would take > 0 instances to run)
    code = ("import time, sympy as sp\n"
            "from derive import engine, Derivation, Step, scalar\n"
            "from derive.engine import driver\n"
            "from derive.notation import Notation\n"
            "from derive.softmax.definitions import NOTATION as BUILT_IN\n"
            "driver.numeric_check = driver.symbolic_check = None  # any use fails\n"
            "with Notation('memo', uses=[BUILT_IN]).active():\n"
            "    X = scalar('memo_x', lambda rng: rng.normal(0, 2))\n"
            "    d = Derivation('memo_square', 'A square, for the memo', (), [\n"
            "        Step((X + 1) ** 2, 'definition'), Step(X ** 2 + 2 * X + 1, 'expand')])\n"
            "    print(engine.check(d).steps[0].symbolic)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == first.steps[0].symbolic


def test_a_false_step_is_never_found_in_the_memo(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.MEMO_VARIABLE, str(tmp_path))
    monkeypatch.setenv(engine.MEMO_KEY_VARIABLE, "5e" * 32)
    monkeypatch.setattr(driver, "_LINKS_PROVED", {})
    monkeypatch.setattr(symbolic, "_SHOWN", {})
    engine.check(SQUARE)
    wrong = Derivation("memo_square", "A square, for the memo", (), [
        Step((X + 1) ** 2, "definition"), Step(X ** 2 + X + 1, "expand")])
    with pytest.raises(StepRejected, match="step 1"):
        engine.check(wrong)
    assert len(list(tmp_path.glob("link-*"))) == 1  # only the accepted link
    assert len(list(tmp_path.glob("shown-*"))) == 1  # and its step, shown
    assert sp.srepr(wrong.steps[1].expr) != sp.srepr(SQUARE.steps[1].expr)


# --------------------------------------------------------------------------- the engine's
# process-wide memories of pure functions (no step is accepted from them): SymPy's value
# of a sum, a component a[3], the free symbols of a node
def test_doit_with_remembered_sums_is_sympys_doit():
    from derive.softmax.definitions import T, a, i, s

    forms = [sp.Derivative(sp.log(sp.Sum(sp.exp(a[s]), (s, 1, T))), a[i]),
             sp.Sum(s, (s, 1, T)) + sp.Sum(s ** 2, (s, 1, T)) * sp.Sum(a[s], (s, 1, T)),
             sp.Sum(s, (s, 1, T - 1)),  # the same body, other limits: another value
             sp.exp(sp.Sum(sp.KroneckerDelta(s, i) * a[s], (s, 1, T)))]
    first = [engine._doit_remembering_sums(form) for form in forms]
    again = [engine._doit_remembering_sums(form) for form in forms]  # from memory
    assert first == again == [form.doit() for form in forms]
    assert first[2] != sp.Sum(s, (s, 1, T)).doit()


def test_a_changed_step_misses_the_remembered_sums():
    """A true step is proved and the sums of its sides remembered; the same step with its
    result changed is still not shown by the symbolic half (nor accepted by the whole)."""
    from derive.softmax.definitions import T, a, s

    start = Step(sp.Sum(a[s] + 1, (s, 1, T)), "definition")
    true = Derivation("memo_sums", "Linearity, for the memo", (), [
        start, Step(sp.Sum(a[s], (s, 1, T)) + T, "linearity")])
    assert engine.check(true, numeric=False).steps[0].symbolic
    wrong = Derivation("memo_sums", "Linearity, for the memo", (), [
        start, Step(sp.Sum(a[s], (s, 1, T)) + T + 1, "linearity, one too many")])
    with pytest.raises(engine.StepUnproved, match="step 1"):
        engine.check(wrong, numeric=False)
    with pytest.raises(engine.StepFalse, match="step 1"):
        engine.check(wrong)


def test_sides_that_share_a_sum_are_still_told_apart():
    """The numeric half evaluates what both sides hold once: a difference outside it shows."""
    from derive.softmax.definitions import T, a, s

    total = sp.log(sp.Sum(sp.exp(a[s]), (s, 1, T)))
    wrong = Derivation("memo_shared", "Shared sums, for the memo", (), [
        Step(total ** 2, "definition"), Step(total ** 2 + sp.Rational(1, 10 ** 20), "off by 1e-20")])
    with pytest.raises(engine.StepFalse, match="step 1"):
        engine.check(wrong)


def test_a_step_shown_once_is_not_shown_again_but_still_checked_on_instances(monkeypatch):
    """The same step under another key: SymPy's answer is remembered (the symbolic half
    is not run again), the numeric half runs on that derivation's own instances."""
    monkeypatch.setattr(driver, "_LINKS_PROVED", {})
    monkeypatch.setattr(symbolic, "_SHOWN", {})
    first = engine.check(SQUARE)
    calls = []
    real = symbolic._shown
    monkeypatch.setattr(symbolic, "_shown", lambda *args: calls.append(args) or real(*args))
    again = engine.check(Derivation("memo_square_again", SQUARE.title, (), SQUARE.steps))
    assert not calls and again.steps[0].symbolic == first.steps[0].symbolic
    assert again.steps[0].instances > 0
    changed = Derivation("memo_square_again", SQUARE.title, (), [
        SQUARE.steps[0], Step(X ** 2 + 2 * X + 2, "expand, one too many")])
    with pytest.raises(engine.StepUnproved):
        engine.check(changed, numeric=False)
    assert len(calls) == 1  # the changed step was asked of SymPy


def test_what_a_step_depends_on_beyond_its_text_is_in_its_key(monkeypatch):
    """The range of an index and the sampler of a declared symbol change the key."""
    from derive import symbols
    from derive.softmax.definitions import N, T, a, j

    before = engine._depends_on([a[j] + X])
    monkeypatch.setitem(symbols.INDEX_RANGES, j, N)  # j over the features instead
    assert engine._depends_on([a[j] + X]) != before
    monkeypatch.setitem(symbols.INDEX_RANGES, j, T)
    assert engine._depends_on([a[j] + X]) == before
    monkeypatch.setitem(symbols._SAMPLERS, X, lambda rng: rng.normal(0, 3))  # another draw
    assert engine._depends_on([a[j] + X]) != before


def test_a_sum_worked_out_in_one_process_is_read_in_another(tmp_path, monkeypatch):
    """SymPy's value of a sum goes to the session's memo as its printed form; another
    process reads it back (here: the memory of this one bypassed); another sum misses it,
    and a form that does not read back is worked out again."""
    from derive.softmax.definitions import T

    monkeypatch.setenv(engine.MEMO_VARIABLE, str(tmp_path))
    monkeypatch.setenv(engine.MEMO_KEY_VARIABLE, "5e" * 32)
    work = engine._sum_doit.__wrapped__  # without this process's memory
    k = sp.Symbol("memo_k", integer=True)
    total = sp.Sum(k, (k, 1, T))
    value = total.doit()  # T**2/2 + T/2
    assert work(total) == value and value.has(T)
    (written,) = tmp_path.glob("sum-*")
    assert _entry(written)["value"] == sp.srepr(value)
    engine.memo_write("sum", sp.srepr(total), sp.srepr(T ** 3))  # what is found is what is used
    assert work(total) == T ** 3
    other = sp.Sum(k, (k, 1, T - 1))  # other limits: not found
    assert work(other) == other.doit() != value and len(list(tmp_path.glob("sum-*"))) == 2
    engine.memo_write("sum", sp.srepr(total), "Sum(Integer(1)")  # unreadable: worked out again
    assert work(total) == value


def test_two_classes_of_one_name_are_two_links():
    """A class of the content's own prints as its name (``g(x)`` for two classes called
    g): what the class does is part of a link's key, so a false step written with the
    second is checked, not found as the first's accepted link."""
    x = scalar("x_named", lambda rng: rng.normal(0, 1))

    def named_g(factor):
        class g(sp.Function):  # noqa: N801 - SymPy's style for a function class
            def doit(self, **hints):
                return factor * sp.exp(self.args[0])

            def _eval_evalf(self, prec):
                return (factor * sp.exp(self.args[0]))._eval_evalf(prec)
        return g

    honest, other = named_g(1), named_g(2)
    assert sp.srepr(honest(x)) == sp.srepr(other(x))
    engine.check(Derivation("named", "g is exp", (), [Step(honest(x), "start"), Step(sp.exp(x), "its doit")]))
    with pytest.raises(engine.StepFalse, match="concrete check fails"):
        engine.check(Derivation("named", "g is exp", (), [Step(other(x), "start"), Step(sp.exp(x), "its doit")]))
