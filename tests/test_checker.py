"""The checker cannot be fooled: one regression test per hole of issue 9.

Each test builds the false statement a sceptical reviewer found accepted and shows it
rejected with the reason the user sees. Where the numeric half alone already caught a
statement, the test also shows the symbolic half (or the part of the engine at fault)
rejecting it on its own, since both halves must be sound.
"""
from __future__ import annotations

import dataclasses

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy import Abs, Derivative, KroneckerDelta, Sum, exp, log

from derive import engine
from derive.engine import (
    Derivation,
    Step,
    StepFalse,
    StepRejected,
    StepUndefined,
    StepUnproved,
    driver,
)
from derive.softmax import catalogue
from derive.softmax import definitions as D
from derive.softmax.definitions import T, a, c, i, j, k, r, s, y

S = D.softmax


def chain(key, *steps, assumptions=(D.REAL_LOGITS,), min_classes=1):
    return Derivation(key, f"Test {key}", assumptions, list(steps), min_classes=min_classes)


# --------------------------------------------------------------------------- 1. binders
N_ = sp.Symbol("n", integer=True)  # a summation variable that may be 0 or negative


@pytest.mark.parametrize("lhs, rhs", [
    (Sum(Abs(N_), (N_, -3, T)), Sum(N_, (N_, -3, T))),
    (Sum(KroneckerDelta(N_, 0), (N_, 0, T)), sp.Integer(0)),
], ids=["abs", "delta"])
def test_bound_variables_are_not_positive(lhs, rhs):
    derivation = chain("binders", Step(lhs, "a sum from -3 or 0"), Step(rhs, "wrong: r > 0"))
    assert engine.symbolic_check(lhs, rhs, "=", derivation.assumptions) is None
    with pytest.raises(StepFalse, match="the concrete check fails on the instance T = "):
        engine.check(derivation)


def test_bound_variables_are_integers_only():
    renamed = engine.canonical_bound(Sum(a[r], (r, 1, T)))
    (var, _, _), = renamed.limits
    assert var.is_integer and var.is_positive is None


# --------------------------------------------------------------------------- 2. instances
STRIDED = Derivative(Sum(a[2 * j], (j, 1, sp.floor(T / 2))), a[i])
STRIDED_BY_SYMPY = STRIDED.doit().doit()  # 1 for every i in 2..2 floor(T/2), odd i too


def test_min_classes_above_the_sampled_counts_still_gets_instances():
    derivation = chain("strided", Step(STRIDED, "derivative of a strided sum"),
                       Step(STRIDED_BY_SYMPY, "what SymPy's diff returns"), min_classes=10)
    # SymPy's diff of a strided sum is wrong; the symbolic half does not trust it (issue 19)
    assert engine.symbolic_check(STRIDED, STRIDED_BY_SYMPY, "=", derivation.assumptions) is None
    regular, wide = engine._class_counts(derivation)
    assert regular[:2] == (10, 11) and max(regular) <= 18 < min(wide)
    with pytest.raises(StepFalse, match=r"the concrete check fails on the instance T = 1\d"):
        engine.check(derivation)


def test_every_step_gets_its_full_number_of_instances():
    derivation = chain("big_t", Step(S(j) * Sum(exp(a[r]), (r, 1, T)), "S_j Z"),
                       Step(exp(a[j]), "Z cancels"), min_classes=9)
    report = engine.check(derivation)
    counts = engine.class_counts(derivation)
    assert report.class_counts == counts and {9, 10} <= set(counts)
    assert report.steps[0].instances == engine.instance_count(derivation)
    assert report.steps[0].class_counts == counts


def test_class_counts_include_min_classes_and_a_random_large_t():
    for derivation in catalogue.build():
        counts = engine.class_counts(derivation)
        low = max(1, derivation.min_classes)
        if derivation.concrete:
            assert counts == (low,)
            continue
        regular, wide = engine._class_counts(derivation)
        assert counts == tuple(sorted(regular + wide))
        assert {low, low + 1} <= set(regular)
        assert {n for n in (1, 2, 3, 5, 8) if n >= low} <= set(regular)
        assert len(regular) == len({n for n in (1, 2, 3, 5, 8) if n >= low} | {low, low + 1}) + 1
        assert max(regular) <= max(12, low + 8)
        # and the wide counts: one from 13..17, one from 24..30 (issue 19)
        assert len(wide) == 2 and 13 <= wide[0] <= 17 + low and 24 <= wide[1] <= 30 + low
    # fresh per derivation (not one seed for all), the same on every run
    drawn = {engine.class_counts(d) for d in catalogue.build() if not d.concrete}
    assert len(drawn) > 1
    assert [engine.class_counts(d) for d in catalogue.build()] == \
        [engine.class_counts(d) for d in catalogue.build()]


def test_seeds_differ_between_derivations():
    first, second = catalogue.build()[:2]
    assert engine.derivation_seed(first) != engine.derivation_seed(second)


# --------------------------------------------------------------------------- 3. lemmas
POSITIVE = catalogue.by_key()["softmax_positive"]  # S_j > 0


def test_an_inequality_lemma_does_not_rewrite():
    # S_j > 0 used as a rewrite turns S_j into 0
    derivation = chain("ineq_lemma", Step(S(j) + 1, "start"),
                       Step(sp.Integer(1), "S_j > 0", lemma=POSITIVE))
    with pytest.raises(StepRejected, match="only an equality can be used as a rewrite"):
        engine.check(derivation)
    with pytest.raises(engine.LemmaRefused):
        engine.symbolic_check(S(j) + 1, sp.Integer(1), "=", derivation.assumptions, POSITIVE)


def test_indices_named_by_assumptions_stay_fixed():
    # the i != j Jacobian entry must not be applied to i = j
    off = catalogue.by_key()["jacobian_offdiagonal"]
    prev, this = Derivative(S(i), a[i]), -S(i) ** 2
    assert engine.symbolic_check(prev, this, "=", off.assumptions, off) is None
    derivation = chain("offdiag_at_diag", Step(prev, "a diagonal entry"),
                       Step(this, "the off-diagonal formula", lemma=off), assumptions=off.assumptions,
                       min_classes=2)
    with pytest.raises(StepFalse):
        engine.check(derivation)


def test_distinct_wildcards_must_match_distinct_indices():
    # the Jacobian lemma d S_j / d a_i has two free indices; matching both to c would
    # apply a statement about two indices to one, so the lemma is refused
    jacobian = catalogue.by_key()["jacobian"]
    prev, this = Derivative(S(c), a[c]), S(c) * (1 - S(c))
    with pytest.raises(engine.LemmaRefused, match="distinct indices i, j to the same index"):
        engine.apply_lemma(prev, jacobian)
    with pytest.raises(StepRejected, match="distinct indices"):
        engine.check(chain("same_index", Step(prev, "a diagonal entry"),
                           Step(this, "the Jacobian at i = j = c", lemma=jacobian)))
    # distinct indices: it applies
    assert engine.apply_lemma(Derivative(S(c), a[k]), jacobian) == engine.canonical_bound(
        S(c) * (KroneckerDelta(k, c) - S(k)))


def test_the_lemma_cache_key_is_the_whole_lemma():
    true_lemma = chain("sum_y", Step(Sum(y[s], (s, 1, T)), "sum of y"),
                       Step(sp.Integer(1), "y sums to 1"), assumptions=(D.REAL_LOGITS, D.SOFT_LABEL))
    false_lemma = dataclasses.replace(true_lemma, assumptions=(D.REAL_LOGITS,))  # same key, steps
    for lemma in (true_lemma, false_lemma):
        assert engine.fingerprint(lemma) != engine.fingerprint(
            dataclasses.replace(lemma, min_classes=2))
    bumped = [dataclasses.replace(true_lemma.steps[1], decimals=3),
              dataclasses.replace(true_lemma.steps[1], rel=">=")]
    for step in bumped:
        assert engine.fingerprint(true_lemma) != engine.fingerprint(
            dataclasses.replace(true_lemma, steps=[true_lemma.steps[0], step]))

    def citing(lemma):
        return chain("cites_sum_y", Step(Sum(y[s], (s, 1, T)) + 1, "start"),
                     Step(sp.Integer(2), "by the lemma", lemma=lemma), assumptions=lemma.assumptions)
    engine.check(citing(true_lemma))
    with pytest.raises(StepRejected) as info:  # the false lemma is checked, not found cached
        engine.check(citing(false_lemma))
    assert info.value.derivation == false_lemma.title


# --------------------------------------------------------------------------- 4. ranges
def test_range_facts_stay_inside_their_own_sum():
    # the limit 2 of the first sum must not decide r <= 2 inside the second
    first = Sum(a[r], (r, 1, 2))
    second = Sum(sp.Piecewise((1, r <= 2), (0, True)), (r, 1, T))
    refined = engine.refine_ranges(engine.canonical_bound(first + second))
    assert refined.has(sp.Piecewise)
    prev, this = first + second, first + T
    derivation = chain("leak", Step(prev, "two sums"), Step(this, "wrong: r <= 2 everywhere"),
                       min_classes=2)
    assert engine.symbolic_check(prev, this, "=", derivation.assumptions) is None
    with pytest.raises(StepFalse, match="T = 3"):
        engine.check(derivation)


# --------------------------------------------------------------------------- 5. sign
def test_a_possibly_empty_sum_is_not_positive():
    tail = Sum(exp(a[r]), (r, 1, T - 4))
    assert engine.sign(tail, 4) == "nonneg" and engine.sign(tail, 5) == "pos"
    derivation = chain("empty", Step(tail, "a sum over 1..T-4"),
                       Step(sp.Integer(0), "wrong: positive", rel=">"), min_classes=4)
    with pytest.raises(StepFalse, match="T = 4"):
        engine.check(derivation)
    engine.check(dataclasses.replace(derivation, steps=[
        derivation.steps[0], Step(sp.Integer(0), "non-negative", rel=">=")]))


# --------------------------------------------------------------------------- 6. log rules
def test_log_rules_only_for_positive_arguments():
    prev, this = log(a[j] ** 2) / 2, log(a[j])
    assert engine.symbolic_check(prev, this, "=", (D.REAL_LOGITS,)) is None
    with pytest.raises(StepFalse):
        engine.check(chain("log_square", Step(prev, "half the log of a square"),
                           Step(this, "wrong: a_j may be negative")))
    # where the factors are positive the rule still applies
    z = Sum(exp(a[r]), (r, 1, T))
    assert engine.symbolic_check(log(exp(a[j]) * z), a[j] + log(z), "=", (D.REAL_LOGITS,))


# --------------------------------------------------------------------------- 7. rounding
SOFTMAX_3 = exp(3) / (exp(1) + exp(2) + exp(3))  # 0.66524...
SOFTMAX_1 = exp(1) / (exp(1) + exp(2) + exp(3))  # 0.09003...


@pytest.mark.parametrize("exact, stated, decimals, reason", [
    (SOFTMAX_3, "0.66", 1, "0.66 has more than 1 decimals"),
    (SOFTMAX_1, "0.4", 0, "0.4 has more than 0 decimals"),
    (SOFTMAX_1, "0", 0, None),
    (SOFTMAX_3, "0.6", 1, "rounds to 0.7 at 1 decimals, not to 0.6"),
    (SOFTMAX_3, "0.7", 1, None),
    (SOFTMAX_3, "0.6652", 4, None),
    (SOFTMAX_3, "0.6653", 4, "not to 0.6653"),
])
def test_rounding_steps(exact, stated, decimals, reason):
    derivation = chain("round", Step(exact, "softmax([1, 2, 3])"),
                       Step(sp.Float(stated), "evaluate", rel="~", decimals=decimals))
    if reason is None:
        engine.check(derivation)
        return
    with pytest.raises(StepFalse, match=reason):
        engine.check(derivation)


def test_rounding_needs_a_number_and_decimals_at_least_zero():
    with pytest.raises(ValueError, match="decimals must be an integer >= 0"):
        Step(sp.Float("0.7"), "evaluate", rel="~", decimals=-1)
    with pytest.raises(StepFalse, match="must be a number"):
        engine.check(chain("round_sym", Step(SOFTMAX_3, "start"),
                           Step(SOFTMAX_3, "evaluate", rel="~", decimals=2)))


def test_rounding_is_evaluated_under_the_assumptions():
    given = D.Values("$q = [0.25, 0.75]$", D.Qv, ("0.25", "0.75"))
    good = chain("round_given", Step(D.Qv[2] - D.Qv[1], "q_2 - q_1"),
                 Step(sp.Float("0.5"), "evaluate", rel="~", decimals=1),
                 assumptions=(given,), min_classes=2)
    engine.check(good)
    with pytest.raises(StepFalse, match="not to 0.4"):
        engine.check(dataclasses.replace(good, steps=[
            good.steps[0], Step(sp.Float("0.4"), "evaluate", rel="~", decimals=1)]))


# --------------------------------------------------------------------------- 8. degenerate
def test_a_derivation_needs_a_checked_link():
    with pytest.raises(StepRejected, match="nothing is checked"):
        engine.check(chain("alone", Step(sp.Integer(0), "a claim with no step")))
    with pytest.raises(StepRejected, match="nothing is checked"):
        engine.check(chain("empty"))


# --------------------------------------------------------------------------- 9. crashes
@pytest.mark.parametrize("expr, reason", [
    (a[0], r"no value for a\[0\]"),
    (y[T + 1], r"no value for y\[\d+\]"),
    (log(T - 1), "the logarithm of 0"),
    (1 / (T - 1), "division by zero"),
    (Sum(a[r], (r, 1, T + 1)), r"no value for a\[\d+\]"),
], ids=["a0", "y_T+1", "log0", "div0", "sum_past_T"])
def test_an_instance_that_cannot_be_evaluated_is_a_rejection(expr, reason):
    derivation = chain("undefined", Step(expr, "start"), Step(expr, "the same"))
    with pytest.raises(StepUndefined, match=reason) as info:
        engine.check(derivation)
    assert "cannot be evaluated on the instance T = " in str(info.value)


def test_assumptions_that_cannot_be_drawn_are_a_rejection():
    derivation = chain("distinct_at_1", Step(S(i) * S(j), "two outputs"),
                       Step(S(j) * S(i), "commute"), assumptions=(D.REAL_LOGITS, D.I_NE_J))
    with pytest.raises(StepUndefined, match=r"cannot be drawn at T=1.*min_classes"):
        engine.check(derivation)


# --------------------------------------------------------------------------- 10. sampling
def test_vectors_are_normalised_only_when_assumed():
    total = Sum(D.P[s], (s, 1, T))
    step = Step(sp.Integer(1), "wrong: p sums to 1 without the assumption")
    derivation = chain("p_sums", Step(total, "sum of p"), step)
    _, failure = engine.numeric_check(total, step, derivation, seed=7)
    assert failure is not None and failure.kind == "false"
    with pytest.raises(StepFalse):
        engine.check(derivation)
    engine.check(dataclasses.replace(derivation, assumptions=(D.REAL_LOGITS, D.SOFT_P)))


# --------------------------------------------------------------------------- 11. derivatives
def test_derivatives_are_evaluated_by_finite_differences():
    env = D.Instance(np.random.default_rng(3), 6, 2)
    env[i] = 3
    # SymPy's diff says 1 for odd i; the derivative is 0
    assert STRIDED_BY_SYMPY.subs({i: 3, T: 6}) == 1
    assert engine.evaluate(STRIDED, env) == 0
    env[i] = 4
    assert abs(engine.evaluate(STRIDED, env) - 1) < mpmath.mpf(10) ** -30
    # a second derivative, both variables the same component
    env[D.l] = env[i]
    D.SOFT_LABEL.sample(env)
    hess = Derivative(D.softmax_loss(), a[i], a[D.l])
    exact = engine.evaluate(S(i) * (1 - S(i)), env)
    assert abs(engine.evaluate(hess, env) - exact) < mpmath.mpf(10) ** -30
    # with respect to a scalar
    assert abs(engine.evaluate(Derivative(D.sigmoid(), D.z), env)
               - engine.evaluate(D.sigmoid() * (1 - D.sigmoid()), env)) < mpmath.mpf(10) ** -30


def test_the_numeric_half_never_uses_sympys_diff(monkeypatch):
    env = D.Instance(np.random.default_rng(5), 4, 1)
    exact = engine.evaluate(S(i) * (1 - S(i)), env)
    # a SymPy whose derivatives are all 0 cannot change the numeric value
    monkeypatch.setattr(sp.Derivative, "doit", lambda self, **hints: sp.Integer(0))
    assert abs(engine.evaluate(Derivative(S(i), a[i]), env) - exact) < mpmath.mpf(10) ** -30


def test_a_derivative_that_sympy_gets_wrong_is_rejected():
    derivation = chain("strided_free", Step(STRIDED, "derivative of a strided sum"),
                       Step(STRIDED_BY_SYMPY, "what SymPy's diff returns"))
    with pytest.raises(StepFalse, match="previous = 0.0 = this = 1.0 is false"):
        engine.check(derivation)


# --------------------------------------------------------------------------- 12. two messages
def test_a_false_step_reports_its_counterexample():
    derivation = chain("false_step", Step(Derivative(D.softmax_loss(), a[i]), "gradient"),
                       Step(S(i) + y[i], "wrong sign"), assumptions=(D.REAL_LOGITS, D.SOFT_LABEL))
    with pytest.raises(StepFalse) as info:
        engine.check(derivation)
    err = info.value
    text = str(err)
    assert "the concrete check fails on the instance T = " in text
    assert "i = " in text and "a = [" in text and "y = [" in text
    assert "previous = " in text and "this = " in text and "is false" in text
    example = err.counterexample
    assert {"T", "i", "a", "y", "previous", "this"} <= set(example)
    assert len(example["a"]) == example["T"]
    assert not isinstance(err, StepUnproved)


def test_a_true_step_sympy_cannot_show_is_unproved_not_false():
    derivation = chain("lse_max", Step(D.logsumexp(), "log-sum-exp"),
                       Step(a[k], "at least the largest logit", rel=">="),
                       assumptions=(D.REAL_LOGITS, D.K_IS_ARGMAX))
    with pytest.raises(StepUnproved) as info:
        engine.check(derivation)
    err = info.value
    counts = engine.class_counts(derivation)
    assert err.instances == engine.instance_count(derivation) and err.class_counts == counts
    text = str(err)
    assert f"held on all {err.instances} concrete instances" in text
    assert "SymPy could not show" in text and "larger sizes were not checked" in text
    assert not isinstance(err, StepFalse)


# --------------------------------------------------------------------------- mutations
def _replace_step(derivation, number, **changes):
    steps = list(derivation.steps)
    steps[number] = dataclasses.replace(steps[number], **changes)
    return dataclasses.replace(derivation, steps=steps)


@pytest.mark.parametrize("key, number, expr", [
    ("loss_soft_form", 1, -Sum(y[s] * a[s], (s, 1, T)) - Sum(y[s], (s, 1, T)) * D.logsumexp()),
    ("softmax_order", 1, (exp(a[j]) + exp(a[k])) / D.partition()),
    ("lse_stable", 2, a[k] + log(2 + catalogue.shifted_rest())),
    ("hessian_psd", 1, Sum(S(i) * D.v[i] ** 2, (i, 1, T)) + Sum(S(r) * D.v[r], (r, 1, T)) ** 2),
], ids=["loss_soft_form", "softmax_order", "lse_stable", "hessian_psd"])
def test_a_mutated_intermediate_step_is_rejected(key, number, expr):
    bad = _replace_step(catalogue.by_key()[key], number, expr=expr)
    with pytest.raises(StepFalse, match=f"step {number} "):
        engine.check(bad)


@pytest.mark.parametrize("key, drop", [
    ("loss_soft_form", D.SOFT_LABEL), ("cross_entropy_soft", D.SOFT_P),
    ("softmax_order", D.J_ABOVE_K), ("loss_one_hot", D.ONE_HOT)])
def test_a_missing_assumption_is_noticed(key, drop):
    derivation = catalogue.by_key()[key]
    bad = dataclasses.replace(derivation, assumptions=tuple(h for h in derivation.assumptions if h != drop))
    with pytest.raises(StepRejected):
        engine.check(bad)


@pytest.mark.parametrize("key, number", [("softmax_sums_to_one", 1), ("loss_soft_form", 2),
                                         ("hessian_psd", 2)])
def test_changed_summation_limits_are_rejected(key, number):
    derivation = catalogue.by_key()[key]
    expr = derivation.steps[number].expr
    shifted = expr.replace(lambda e: isinstance(e, Sum),
                           lambda e: Sum(e.function, *[(v, lo + 1, hi) for v, lo, hi in e.limits]))
    assert shifted != expr
    with pytest.raises(StepRejected, match=f"step {number} "):
        engine.check(_replace_step(derivation, number, expr=shifted))


@pytest.mark.parametrize("key, number, rel", [("softmax_sums_to_one", 1, ">"),
                                              ("hessian_psd", 3, ">"), ("example_order", 1, ">")])
def test_changed_relations_are_rejected(key, number, rel):
    derivation = catalogue.by_key()[key]
    with pytest.raises(StepRejected, match=f"step {number} "):
        engine.check(_replace_step(derivation, number, rel=rel))


def test_prove_reports_instances_and_class_counts_per_step(capsys):
    from derive import cli

    assert cli.main(["prove", "softmax_positive", "example_order"]) == 0
    out = capsys.readouterr().out
    counts = ",".join(map(str, engine.class_counts(catalogue.by_key()["softmax_positive"])))
    assert f"checked at T in {{{counts}}}" in out
    count = engine.instance_count(catalogue.by_key()["softmax_positive"])
    assert f"[evaluate; {count} instances at T in {{{counts}}}]" in out
    assert "concrete numbers" in out and "instances at T in {1}]" in out


def test_a_sympy_failure_is_a_rejection_not_a_traceback(monkeypatch):
    derivation = chain("crash", Step(S(j), "softmax"), Step(S(j) + 0, "the same"))

    def broken(*args, **kwargs):
        raise RuntimeError("internal SymPy error")
    monkeypatch.setattr(driver, "symbolic_check", broken)
    with pytest.raises(StepUnproved, match="SymPy failed: RuntimeError: internal SymPy error"):
        engine.check(derivation)


def test_a_lemma_applies_only_within_the_ranges_of_its_indices():
    # sum_s delta_{s j} = 1 holds for j in 1..T, not for a summation variable from 0
    lemma = chain("delta_sum", Step(Sum(KroneckerDelta(s, j), (s, 1, T)), "sum of a delta"),
                  Step(sp.Integer(1), "j lies in 1..T"))
    prev = Sum(Sum(KroneckerDelta(s, N_), (s, 1, T)), (N_, 0, T))
    this = T + 1
    assert engine.symbolic_check(prev, this, "=", (D.REAL_LOGITS,), lemma) is None
    with pytest.raises(StepFalse):
        engine.check(chain("delta_from_0", Step(prev, "a double sum"),
                           Step(this, "the lemma, also at r = 0", lemma=lemma)))
    # inside 1..T it applies
    inside = Sum(Sum(KroneckerDelta(s, N_), (s, 1, T)), (N_, 1, T))
    assert engine.symbolic_check(inside, T, "=", (D.REAL_LOGITS,), lemma)


def test_a_step_that_branches_on_indices_is_shown_by_cases():
    prev = S(j) - KroneckerDelta(j, c)
    good = sp.Piecewise((S(c) - 1, sp.Eq(j, c)), (S(j), True))
    how = engine.symbolic_check(prev, good, "=", (D.REAL_LOGITS,))
    assert how.startswith("by cases (c = j: ") and "c != j: " in how
    bad = sp.Piecewise((S(c) + 1, sp.Eq(j, c)), (S(j), True))
    assert engine.symbolic_check(prev, bad, "=", (D.REAL_LOGITS,)) is None
    with pytest.raises(StepFalse, match="c = (\\d+), .*j = \\1"):  # found where j = c
        engine.check(chain("branch", Step(prev, "gradient"), Step(bad, "wrong branch")))


def test_a_branching_step_is_split_into_cases_before_the_whole_is_simplified(monkeypatch):
    # SymPy's simplify of a difference that branches on indices can take minutes and
    # still fail (on the focal gradient kernel: about 110 s in cancel) where every case
    # closes at once: the cases come first, simplify of the whole only if they fail
    simplified = []
    real = sp.simplify

    def recording(expr, *args, **kwargs):
        simplified.append(expr)
        return real(expr, *args, **kwargs)
    monkeypatch.setattr(sp, "simplify", recording)
    prev = S(j) - KroneckerDelta(j, c)
    good = sp.Piecewise((S(c) - 1, sp.Eq(j, c)), (S(j), True))
    assert engine.symbolic_check(prev, good, "=", (D.REAL_LOGITS,)).startswith("by cases")
    assert not [e for e in simplified if e.has(sp.Piecewise)]
    # still the last resort: branches on more pairs of indices than are split into cases,
    # or on no pair at all, are simplified whole
    one = sp.sin(a[j]) ** 2 + sp.cos(a[j]) ** 2
    many = sp.Piecewise((one, sp.Eq(i, j) & sp.Eq(j, c) & sp.Eq(c, k) & sp.Eq(k, D.l)), (1, True))
    assert len(engine._index_pairs(many)) > engine.MAX_CASE_PAIRS
    assert engine.symbolic_check(many, sp.Integer(1), "=", (D.REAL_LOGITS,)) == "simplify"
    signed = sp.Piecewise((one, a[j] > 0), (1, True))
    assert engine.symbolic_check(signed, sp.Integer(1), "=", (D.REAL_LOGITS,)) == "simplify"
    # and a false branch is rejected by every route
    bad = sp.Piecewise((S(c) + 1, sp.Eq(j, c)), (S(j), True))
    simplified.clear()
    assert engine.symbolic_check(prev, bad, "=", (D.REAL_LOGITS,)) is None
    assert [e for e in simplified if e.has(sp.Piecewise)]  # the whole was tried too


def test_every_pattern_of_equal_and_distinct_indices_is_checked():
    # a branchy formula is checked on each branch for sure: beside the random draws, one
    # instance per partition of the free class indices (j, c, k: 5 patterns, Bell(3))
    assert len(list(engine._set_partitions([1, 2, 3]))) == 5
    assert len(list(engine._set_partitions([1, 2, 3, 4]))) == 15
    derivation = chain("branches", Step(a[j] + a[c] + a[k], "three indices"), Step(a[j] + a[c] + a[k], "same"))
    seen = set()
    for env, trouble in engine._instances(derivation, 1, engine.class_counts(derivation)):
        assert trouble is None
        seen.add((env[j] == env[c], env[c] == env[k], env[j] == env[k]))
    assert seen >= {(True, True, True), (True, False, False), (False, True, False), (False, False, True),
                    (False, False, False)}
    # a statement false only where j, c and k all differ is caught whatever the seed
    wrong = a[j] + (1 - KroneckerDelta(j, c)) * (1 - KroneckerDelta(c, k)) * (1 - KroneckerDelta(j, k))
    for seed in range(5):
        with pytest.raises(StepFalse):
            engine.check(chain(f"all_differ_{seed}", Step(a[j], "a_j"), Step(wrong, "plus 1 where all differ")),
                         seed=seed)
