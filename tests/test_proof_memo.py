"""The session's memo of accepted links (derive.engine.MEMO_VARIABLE): a link proved
in one process is not proved again in another that shares the directory, and nothing
but an accepted link is ever found there."""
from __future__ import annotations

import subprocess
import sys

import pytest
import sympy as sp

from derive import Derivation, Step, engine, scalar
from derive.engine import StepRejected

X = scalar("memo_x", lambda rng: rng.normal(0, 2))
SQUARE = Derivation("memo_square", "A square, for the memo", (), [
    Step((X + 1) ** 2, "definition"), Step(X ** 2 + 2 * X + 1, "expand")])


def test_a_link_proved_in_one_process_is_remembered_for_another(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.MEMO_VARIABLE, str(tmp_path))
    monkeypatch.setattr(engine, "_LINKS_PROVED", {})
    first = engine.check(SQUARE)
    assert len(list(tmp_path.iterdir())) == 1
    # a fresh process finds it: the check reports the remembered normal form without
    # running either half (the numeric half would take > 0 instances to run)
    code = ("import time, sympy as sp\n"
            "from derive import engine, Derivation, Step, scalar\n"
            "engine.numeric_check = engine.symbolic_check = None  # any use fails\n"
            "X = scalar('memo_x', lambda rng: rng.normal(0, 2))\n"
            "d = Derivation('memo_square', 'A square, for the memo', (), [\n"
            "    Step((X + 1) ** 2, 'definition'), Step(X ** 2 + 2 * X + 1, 'expand')])\n"
            "print(engine.check(d).steps[0].symbolic)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == first.steps[0].symbolic


def test_a_false_step_is_never_found_in_the_memo(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.MEMO_VARIABLE, str(tmp_path))
    monkeypatch.setattr(engine, "_LINKS_PROVED", {})
    engine.check(SQUARE)
    wrong = Derivation("memo_square", "A square, for the memo", (), [
        Step((X + 1) ** 2, "definition"), Step(X ** 2 + X + 1, "expand")])
    with pytest.raises(StepRejected, match="step 1"):
        engine.check(wrong)
    assert len(list(tmp_path.iterdir())) == 1  # only the accepted link
    assert sp.srepr(wrong.steps[1].expr) != sp.srepr(SQUARE.steps[1].expr)
