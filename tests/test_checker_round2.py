"""The checker, second round (issue 19): one regression test per class of false statement,
each built from the user's side with the public API, showing the rejection and its
message. Classes 1, 3 and 5 also have a statement that first fails at T = 13 or later.
"""
from __future__ import annotations

import json
import os
import re
import types

import numpy as np
import pytest
import sympy as sp
from sympy import Derivative, Piecewise, Sum, exp, floor, log

from derive import (
    Assumption,
    Catalogue,
    Claim,
    Derivation,
    Kernel,
    Step,
    StepFalse,
    StepRejected,
    StepUnproved,
    check,
    define_arrays,
    engine,
    scalar,
    vector,
)
from derive.codegen import prove_kernels
from derive.engine import StepUndefined, StepVacuous, driver, memo, settings, symbolic
from derive.functions import ArrayFunction, RowSum
from derive.symbols import CLASSES as T
from derive.symbols import FEATURES as N
from derive.symbols import Distinct, index, j, s

g = vector("g19", lambda rng: rng.normal(0, 2))  # a vector over the classes
h = vector("h19", lambda rng: rng.uniform(0.5, 2.0))
t19 = index("t19")
x19 = scalar("x19", lambda rng: rng.normal(0, 2))
tau = scalar("tau19", lambda rng: rng.uniform(0.2, 3.0))  # real, drawn positive


def chain(key, *steps, assumptions=(), min_classes=1):
    return Derivation(key, f"Round 2: {key}", assumptions, list(steps), min_classes=min_classes)


# every sum of g over 1..min(T, 12): equal to the whole sum until T = 13
FIRST_12 = Sum(Piecewise((g[s], s <= 12), (0, True)), (s, 1, T))
WHOLE = Sum(g[s], (s, 1, T))


# --------------------------------------------------------------------------- 1. rounding
def test_a_rounding_of_a_value_that_depends_on_t_is_refused():
    """floor(T/13) ~ 0 held on every T the first round drew; a value with a free symbol
    is never rounded by instances (it first fails at T = 13)."""
    with pytest.raises(StepUnproved, match=r"needs a closed number, and previous depends on T"):
        check(chain("round_T", Step(floor(T / 13), "a count"),
                    Step(sp.Integer(0), "evaluate", rel="~", decimals=0)))
    with pytest.raises(StepUnproved, match=r"depends on x19"):
        check(chain("round_x", Step(x19 ** 2 / (1 + x19 ** 2), "a ratio"),
                    Step(sp.Float("0.5"), "evaluate", rel="~", decimals=1)))


BIG = exp(100) * (1 + exp(-100)) - exp(100)  # exactly 1; at 40 digits it cancels to 0


def test_a_rounding_is_decided_on_the_exact_value_not_one_that_cancelled():
    check(chain("round_big", Step(BIG, "a difference of large numbers"),
                Step(sp.Integer(1), "evaluate", rel="~", decimals=0)))
    with pytest.raises(StepFalse, match=r"rounds to 1 at 0 decimals, not to 0 \(decided by interval"):
        check(chain("round_big_0", Step(BIG, "a difference of large numbers"),
                    Step(sp.Integer(0), "evaluate", rel="~", decimals=0)))


def test_a_step_between_closed_numbers_is_decided_by_intervals():
    with pytest.raises(StepFalse, match=r"previous = 1\.0 = this = 0\.0 is false \(closed numbers"):
        check(chain("big_eq_0", Step(BIG, "a difference of large numbers"), Step(sp.Integer(0), "cancel")))
    check(chain("big_eq_1", Step(BIG, "a difference of large numbers"), Step(sp.Integer(1), "expand")))


def test_an_instance_that_cancels_is_evaluated_with_the_digits_it_needs():
    """A value that cancels at 40 digits is not taken: the evaluation is repeated with
    enough digits (the step e^(100 + x) (1 + e^-(100 + x)) - e^(100 + x) = 1 holds)."""
    u = 100 + x19 ** 2
    big = exp(u) * (1 + exp(-u)) - exp(u)
    report = check(chain("cancel_x", Step(big, "a difference of large numbers"),
                         Step(sp.Integer(1), "expand")))
    assert report.steps[0].instances > 0
    with pytest.raises(StepRejected):
        check(chain("cancel_x_0", Step(big, "a difference of large numbers"), Step(sp.Integer(0), "cancel")))


# --------------------------------------------------------------------------- 2. sign
def test_a_square_is_nonnegative_only_for_a_real_base():
    assert engine.sign(log(13 - T) ** 2) is None
    assert engine.sign(log(tau) ** 2) is None
    assert engine.sign((g[j] - 1) ** 2) == "nonneg"
    with pytest.raises(StepRejected, match=r"T = 1[3-7]"):  # log 0 at 13, complex beyond
        check(chain("log_square_T", Step(log(13 - T) ** 2, "a square"),
                    Step(sp.Integer(0), "squares are >= 0", rel=">=")))
    with pytest.raises(StepUnproved, match="SymPy could not show 'previous >= this'"):
        check(chain("log_square_tau", Step(log(tau) ** 2, "a square"),
                    Step(sp.Integer(0), "squares are >= 0", rel=">=")))


# --------------------------------------------------------------------------- 3. index calculus
STRIDED13 = Derivative(Sum(g[13 * t19], (t19, 1, floor(T / 13))), g[j])


def test_sympy_is_not_trusted_on_strided_indices():
    by_sympy = STRIDED13.doit().doit()  # 1 wherever 13 <= i <= 13 floor(T/13), also off the stride
    assert engine.untrusted_index([STRIDED13]) == g[13 * t19]
    assert engine.symbolic_check(STRIDED13, by_sympy, "=", ()) is None
    with pytest.raises(StepRejected, match="not trusted on the index expression|T = "):
        check(chain("strided13", Step(STRIDED13, "derivative of a strided sum"),
                    Step(by_sympy, "what SymPy's diff returns")))
    # a true strided step is unproved, and says why
    half = floor(T / 2)
    with pytest.raises(StepUnproved, match=r"not trusted on the index expression in g19\[2\*"):
        check(chain("strided_true", Step(Sum(g[2 * t19], (t19, 1, half)), "a strided sum"),
                    Step(Sum(g[2 * t19], (t19, 1, half - 1)) + g[2 * half], "split off the last term"),
                    min_classes=2))


def test_opaque_algebra_still_shows_a_strided_step():
    prev = Sum(g[2 * t19], (t19, 1, T)) ** 2
    this = Sum(g[2 * t19], (t19, 1, T)) * Sum(g[2 * t19], (t19, 1, T))
    assert engine.symbolic_check(prev, this, "=", ()) == engine.OPAQUE_FORM


def test_a_statement_that_first_fails_at_t_13_is_caught_by_the_numeric_half():
    with pytest.raises(StepFalse, match=r"the concrete check fails on the instance T = (1[3-9]|2\d|30),"):
        check(chain("first_12", Step(FIRST_12, "the first twelve terms"), Step(WHOLE, "all of them")))
    counts = engine.class_counts(chain("first_12", Step(FIRST_12, "x"), Step(WHOLE, "y")))
    assert max(counts) >= 24 and any(13 <= n <= 17 for n in counts)


def test_sizes_other_than_t_are_drawn_in_the_tens_too():
    from derive.softmax.definitions import x  # the content's features, over 1..N

    n = sp.Symbol("n19", integer=True)
    first3 = Sum(Piecewise((x[n], n <= 3), (0, True)), (n, 1, N))
    with pytest.raises(StepFalse, match=r"N = 1[0-6]"):
        check(chain("first_3_features", Step(first3, "the first three features"),
                    Step(Sum(x[n], (n, 1, N)), "all of them")))


# --------------------------------------------------------------------------- 4. caches
def _fixed(value):
    """An assumption 'x19 is fixed' meaning x19 = value: the same text, the same code,
    only a captured number differs."""
    return Assumption("x19 is fixed", rule=lambda e: e.subs(x19, value),
                      draw=lambda env: env.__setitem__(x19, sp.Integer(value)))


def test_a_remembered_link_is_not_reused_for_an_assumption_that_does_other_things():
    square = [Step(x19 ** 2, "a square"), Step(x19, "x19 = 1")]
    check(chain("fixed", *square, assumptions=(_fixed(1),)))
    with pytest.raises(StepFalse, match="previous = 4.0 = this = 2.0 is false"):
        check(chain("fixed", *square, assumptions=(_fixed(2),)))


SETTING = types.SimpleNamespace(value=1)  # an object whose kind the engine cannot read


def test_a_link_that_depends_on_what_cannot_be_known_is_never_remembered():
    fixed = Assumption("x19 is the setting", rule=lambda e: e.subs(x19, SETTING.value),
                       draw=lambda env: env.__setitem__(x19, sp.Integer(SETTING.value)))
    with pytest.raises(engine.Unknowable):
        engine.behaviour(fixed)
    derivation = chain("setting", Step(x19 ** 2, "a square"), Step(x19, "x19 = 1"), assumptions=(fixed,))
    try:
        check(derivation)
        SETTING.value = 2
        with pytest.raises(StepFalse):
            check(derivation)
    finally:
        SETTING.value = 1


# --------------------------------------------------------------------------- 5. the memo
def _memo(tmp_path, monkeypatch, secret="ab" * 32):
    monkeypatch.setenv(engine.MEMO_VARIABLE, str(tmp_path))
    monkeypatch.setenv(engine.MEMO_KEY_VARIABLE, secret)
    monkeypatch.setattr(driver, "_LINKS_PROVED", {})
    monkeypatch.setattr(symbolic, "_SHOWN", {})


def _forge(tmp_path, kind, key, value, mac="0" * 64, version=None):
    digest = engine._memo_digest(kind, key)
    entry = {"version": version or engine.ENGINE_VERSION, "kind": kind, "key": digest,
             "value": value, "mac": mac}
    (tmp_path / f"{kind}-{digest}").write_text(json.dumps(entry))


def test_forged_memo_entries_are_ignored(tmp_path, monkeypatch):
    """A link entry that makes a false step pass, unsigned or signed with another secret
    or written by another engine version, is ignored: the step is checked and rejected
    at T >= 13, where it first fails."""
    _memo(tmp_path, monkeypatch)
    wrong = chain("forged", Step(FIRST_12, "the first twelve terms"), Step(WHOLE, "all of them"))
    regular, wide = engine._class_counts(wrong)
    key = engine._link_key(wrong, 1, engine.derivation_seed(wrong), engine.class_counts(wrong), True)
    assert key is not None
    _forge(tmp_path, "link", key, ["evaluate", 99])  # no valid MAC
    with pytest.raises(StepFalse, match=r"instance T = (1[3-9]|2\d|30),"):
        check(wrong)
    other = "cd" * 32  # signed, but with another session's secret
    _forge(tmp_path, "link", key, ["evaluate", 99],
           mac=engine._memo_mac(bytes.fromhex(other), "link", engine._memo_digest("link", key), ["evaluate", 99]))
    with pytest.raises(StepFalse):
        check(wrong)
    # signed with this secret but by another engine version (its file name differs too)
    monkeypatch.setattr(memo, "ENGINE_VERSION", "another version")
    engine.memo_write("link", key, ["evaluate", 99])
    monkeypatch.undo()
    _memo(tmp_path, monkeypatch)
    with pytest.raises(StepFalse):
        check(wrong)
    # the genuine article is read: what this session writes, it finds
    engine.memo_write("link", key, ["evaluate", 99])
    assert engine.memo_read("link", key) == ["evaluate", 99]


def test_a_memo_entry_is_data_never_code(tmp_path, monkeypatch):
    _memo(tmp_path, monkeypatch)
    total = Sum(sp.Symbol("k19", integer=True), (sp.Symbol("k19", integer=True), 1, T))
    work = engine._sum_doit.__wrapped__  # without this process's memory
    planted = tmp_path / "planted"
    code = f"__import__('pathlib').Path({str(planted)!r}).write_text('ran')"
    secret = bytes.fromhex(os.environ[engine.MEMO_KEY_VARIABLE])
    digest = engine._memo_digest("sum", sp.srepr(total))
    for text in (code, "Add(Integer(1), eval('2'))", "Integer(__import__('os').getpid())"):
        # correctly signed (as if the secret had leaked): still data, and not SymPy's
        entry = {"version": engine.ENGINE_VERSION, "kind": "sum", "key": digest, "value": text,
                 "mac": engine._memo_mac(secret, "sum", digest, text)}
        (tmp_path / f"sum-{digest}").write_text(json.dumps(entry))
        assert work(total) == total.doit()
        assert not planted.exists()
    (tmp_path / f"sum-{digest}").write_text(code)  # not even JSON
    assert work(total) == total.doit() and not planted.exists()
    with pytest.raises(ValueError, match="not a SymPy srepr"):
        engine.read_srepr(code)


def test_without_the_secret_the_memo_is_not_used(tmp_path, monkeypatch):
    _memo(tmp_path, monkeypatch)
    monkeypatch.delenv(engine.MEMO_KEY_VARIABLE)
    check(chain("no_secret", Step((x19 + 1) ** 2, "a square"), Step(x19 ** 2 + 2 * x19 + 1, "expand")))
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- 6. assumptions
def test_a_distinct_with_the_same_index_twice_is_refused():
    with pytest.raises(ValueError, match=r"j != j can never hold \(the same index twice\)"):
        Distinct("i != i", j, j)


def test_an_assumption_no_instance_satisfies_makes_the_derivation_vacuous():
    beyond = Assumption("T > 40", condition=T > 40)
    with pytest.raises(StepVacuous, match="vacuous: none of the .* instances satisfies the assumptions"):
        check(chain("vacuous", Step(floor(T / 41), "a count"), Step(sp.Integer(1), "T > 40"),
                    assumptions=(beyond,)))
    with pytest.raises(ValueError, match="can never hold"):
        Assumption("T < 0", condition=T < 0)


def test_a_rewrite_the_instances_do_not_satisfy_is_caught_on_every_instance():
    # "T < 0" as a rewrite, with a draw that cannot make it hold
    negative = Assumption("T < 0", rule=lambda e: e.subs(T, -1), draw=lambda env: None)
    with pytest.raises(StepVacuous, match=r"'T < 0' rewrites the previous expression from"):
        check(chain("negative", Step(sp.Abs(T), "|T|"), Step(sp.Integer(1), "T < 0, so |T| = -T = 1"),
                    assumptions=(negative,)))
    # some instances satisfy it, others not
    small = Assumption("T < 13", rule=lambda e: e.subs(floor(T / 13), 0), draw=lambda env: None)
    with pytest.raises(StepUndefined, match=r"does not satisfy the assumptions: on the instance T = "):
        check(chain("small", Step(floor(T / 13), "a count"), Step(sp.Integer(0), "T < 13"),
                    assumptions=(small,)))
    with pytest.raises(ValueError, match="neither draws instances that satisfy it nor states its condition"):
        Assumption("T < 0", rule=lambda e: e.subs(T, -1))


# --------------------------------------------------------------------------- 7. values
def test_given_values_are_the_exact_rationals_of_their_text():
    from derive.softmax.definitions import Qv, Values

    third = "0." + "3" * 35
    given = Values(f"$q_1 = {third}$", Qv, (third, "0.5"))
    with pytest.raises(StepFalse, match="closed numbers, decided by interval arithmetic"):
        check(chain("third", Step(3 * Qv[1], "three q_1"), Step(sp.Integer(1), "at least one", rel=">="),
                    assumptions=(given,), min_classes=2))
    root = "1.41421356237309504880168872420969807857"  # 39 digits of sqrt 2
    given = Values(f"$q_1 = {root}$", Qv, (root, "0.5"))
    with pytest.raises(StepFalse):
        check(chain("root", Step(Qv[1] ** 2, "q_1 squared"), Step(sp.Integer(2), "two"),
                    assumptions=(given,), min_classes=2))
    assert given.rewrite(Qv[1]) == sp.Rational(root) != sp.sqrt(2)


# --------------------------------------------------------------------------- 8. lemmas
def test_a_lemma_proved_for_larger_t_does_not_prove_a_step_at_smaller_t():
    cat = Catalogue("round2_lemmas")
    lemma = cat.derivation("sum_g_7", "Linearity, stated for T >= 7", [
        Step(Sum(g[s] + 1, (s, 1, T)), "a sum"),
        Step(Sum(g[s], (s, 1, T)) + T, "linearity")], min_classes=7)
    citing = cat.derivation("cites_7", "Cites it at T >= 4", [
        Step(Sum(g[s] + 1, (s, 1, T)) ** 2, "a square"),
        Step((Sum(g[s], (s, 1, T)) + T) ** 2, "the lemma", lemma="sum_g_7")], min_classes=4)
    check(lemma)
    with pytest.raises(StepRejected, match=r"the lemma 'sum_g_7' is proved for T >= 7 only, and this "
                                           r"derivation claims T >= 4"):
        check(citing)


# --------------------------------------------------------------------------- 9. printed code
class Doubled(ArrayFunction):
    """2 x, elementwise -- but it prints 3 x."""

    nargs = 1

    def indexed(self, j, tr):
        return 2 * tr(self.args[0], j)

    def _numpycode(self, printer):
        return f"(3 * {printer.doprint(self.args[0])})"


class Halved(Doubled):
    """x / 2, printed as such."""

    def indexed(self, j, tr):
        return tr(self.args[0], j) / 2

    def _numpycode(self, printer):
        return f"(0.5 * {printer.doprint(self.args[0])})"


G19 = sp.Symbol("G19", real=True)


def test_an_array_function_whose_printed_numpy_computes_something_else_is_rejected():
    define_arrays({G19: g})
    good = Claim("kernel_half_sum", "Half the sum", (), Sum(g[s], (s, 1, T)) / 2, "definition", ())
    prove_kernels([Kernel("half_sum", (G19,), (RowSum(Halved(G19)),), "sum_j g_j / 2", (good,))])
    claim = Claim("kernel_double_sum", "Twice the sum", (), 2 * Sum(g[s], (s, 1, T)), "definition", ())
    kernel = Kernel("double_sum", (G19,), (RowSum(Doubled(G19)),), "2 sum_j g_j", (claim,))
    with pytest.raises(StepRejected, match=r"kernel 'double_sum': the printed NumPy \(form, output 0\) "
                                           r"gives .* where its index form .* is"):
        prove_kernels([kernel])


# --------------------------------------------------------------------------- extras
def test_an_evaluation_that_never_ends_is_undefined_with_the_reason():
    with pytest.raises(StepUndefined, match="too large to evaluate"):
        check(chain("tower", Step(exp(exp(exp(20 * T))), "a tower"), Step(sp.Integer(1), "large", rel=">")))


def test_each_instance_has_a_time_limit(monkeypatch):
    monkeypatch.setattr(settings, "INSTANCE_SECONDS", 0.2)
    long = Sum(g[1] * s, (s, 1, 10 ** 7))
    with pytest.raises(StepUndefined, match=r"longer than 0.2 s to evaluate \(the time limit per instance\)"):
        check(chain("long", Step(long, "a long sum"), Step(long, "the same")))


def test_max_and_min_are_evaluated():
    both = chain("max_min", Step(sp.Max(g[j], 0) + sp.Min(g[j], 0), "max + min"), Step(g[j], "one of them"))
    count, failure = engine.numeric_check(both.steps[0].expr, both.steps[1], both, seed=3)
    assert failure is None and count > 0
    with pytest.raises(StepFalse):
        check(chain("max_wrong", Step(sp.Max(g[j], 0), "max"), Step(g[j], "wrong")))


def test_an_unproved_step_says_where_it_held_and_that_larger_sizes_were_not_checked():
    step = chain("unproved_where", Step(sp.acos(sp.cos(tau)), "start"), Step(tau, "tau in (0, pi)"))
    with pytest.raises(StepUnproved) as info:
        check(step)
    text = str(info.value)
    counts = ",".join(map(str, engine.class_counts(step)))
    assert f"it held on all {info.value.instances} concrete instances (T in {{{counts}}}, N <= " in text
    assert re.search(r"N <= 1\d\); larger sizes were not checked", text)
    assert "larger sizes were not checked" in text and "split it" not in text
    assert np.all(np.array(info.value.class_counts) == np.array(engine.class_counts(step)))
