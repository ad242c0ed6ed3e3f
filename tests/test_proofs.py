"""The catalogue proves, and the engine rejects what is false.

Every derivation must pass; for every derivation a mutated step must be rejected --
by the engine as a whole, by the symbolic check alone and by the numeric check alone,
so that each half is shown able to fail. One case shows why the numeric half exists:
a SymPy index-calculus error that the symbolic half accepts.
"""
from __future__ import annotations

import dataclasses

import pytest
import sympy as sp
from sympy import Derivative, KroneckerDelta, Sum

from derive import engine
from derive.engine import Derivation, Step, StepRejected
from derive.softmax import catalogue
from derive.softmax import definitions as D
from derive.softmax.definitions import T, a, c, i, j, k, l, y

CATALOGUE = catalogue.build()
IDS = [d.key for d in CATALOGUE]


@pytest.mark.parametrize("derivation", CATALOGUE, ids=IDS)
def test_derivation_passes(derivation):
    report = engine.check(derivation)
    assert len(report.steps) == len(derivation.steps) - 1
    for step in report.steps:
        assert step.symbolic  # the normal form that closed it
        assert step.instances >= (1 if derivation.concrete else engine.instance_count(derivation))
    if not derivation.concrete:
        assert set(report.class_counts) >= {n for n in (1, 2, 3, 5, 8) if n >= derivation.min_classes}


def test_catalogue_covers_design_list():
    sections = {d.section for d in CATALOGUE}
    assert sections == {"probability", "jacobian", "losses", "gradient", "fc", "stable",
                        "hessian", "options", "binary", "fcbatch", "examples"}


# --------------------------------------------------------------------------- mutations
def mutate(expr: sp.Expr) -> sp.Expr:
    """A plausible mistake: a wrong sign, a wrong delta index, a wrong number."""
    if isinstance(expr, sp.Float):
        return expr + sp.Float("0.001")  # one unit of the last of 3 decimals
    if expr == 0:
        return sp.Integer(1)
    deltas = sorted(expr.atoms(KroneckerDelta), key=sp.default_sort_key)
    if deltas:
        first, second = deltas[0].args
        other = next(s for s in (k, l, c, j, i) if s not in (first, second))
        return expr.xreplace({deltas[0]: KroneckerDelta(first, other)})
    if isinstance(expr, sp.Add):
        terms = list(sp.Add.make_args(expr))
        terms[-1] = -terms[-1]
        return sp.Add(*terms)
    return 2 * expr


FLIP = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}


def with_last_step(derivation: Derivation, expr: sp.Expr, rel=None) -> Derivation:
    last = derivation.steps[-1]
    bad = Step(expr, last.why, rel or last.rel, last.decimals)
    return dataclasses.replace(derivation, steps=[*derivation.steps[:-1], bad])


@pytest.mark.parametrize("derivation", CATALOGUE, ids=IDS)
def test_mutated_last_step_is_rejected(derivation):
    last = derivation.steps[-1]
    if last.rel in FLIP:  # an inequality: claim the opposite
        bad = with_last_step(derivation, last.expr, rel=FLIP[last.rel])
    else:
        bad = with_last_step(derivation, mutate(last.expr))
    number = len(bad.steps) - 1
    with pytest.raises(StepRejected) as info:
        engine.check(bad)
    err = info.value
    assert err.number == number and err.derivation == derivation.title
    assert engine.plain(derivation.title) in str(err) and f"step {number}" in str(err)
    assert engine.plain(bad.steps[-1].why) in str(err)

    prev, step = bad.steps[-2].expr, bad.steps[-1]
    # each half rejects it on its own
    count, failure = engine.numeric_check(prev, step, bad, seed=7)
    assert failure is not None, "the numeric check accepted a false step"
    if step.rel != "~":  # rounding steps are numeric only
        assert engine.symbolic_check(prev, step.expr, step.rel, bad.assumptions) is None


NAMED_MUTATIONS = {
    # S - y -> S + y
    "loss_gradient": D.softmax(i) + y[i],
    # delta_il -> delta_ik
    "hessian": D.softmax(i) * (KroneckerDelta(i, k) - D.softmax(l)),
    # a dropped term: log1p(s) -> log(s)
    "lse_stable": a[k] + sp.log(catalogue.shifted_rest()),
    # a wrong sign
    "true_class_complement": D.sum_except(lambda u: D.softmax(u), c),
    # the one-hot gradient with delta_ic -> delta_ik
    "loss_gradient_one_hot": D.softmax(i) - KroneckerDelta(i, k),
    # tiles of classes: the other tile's sum rescaled the wrong way, e^(m - t)
    "lse_split_classes": D.m + sp.log(Sum(sp.exp(a[D.r] - D.m), (D.r, 1, l))
                                      + sp.exp(D.m - D.t) * Sum(sp.exp(a[D.r] - D.t), (D.r, l + 1, T))),
    # tiles that overlap: class l counted in both
    "fc_batch_grad_x_tiles": sum(Sum(D.W[D.s, D.q] * (catalogue.batch_softmax(D.beta, D.s) - D.Yb[D.beta, D.s]),
                                     (D.s, lo, hi)) for lo, hi in ((1, l), (l, T))),
}


@pytest.mark.parametrize("key", sorted(NAMED_MUTATIONS))
def test_named_mistakes_are_rejected(key):
    derivation = catalogue.by_key()[key]
    with pytest.raises(StepRejected, match=f"step {len(derivation.steps) - 1}"):
        engine.check(with_last_step(derivation, NAMED_MUTATIONS[key]))


def test_wrong_relation_is_rejected():
    derivation = catalogue.by_key()["softmax_positive"]
    with pytest.raises(StepRejected, match="step 1"):
        engine.check(with_last_step(derivation, sp.Integer(0), rel="<"))


def test_only_the_numeric_check_catches_sympy_index_error():
    # d/da_i sum_j a_{2j} is 1 for even i and 0 for odd i; SymPy says 1 for odd i too
    strided = Derivative(Sum(a[2 * j], (j, 1, sp.floor(T / 2))), a[i])
    wrong = strided.doit().doit()  # Sum(KroneckerDelta(i, 2*j), ...).doit()
    assert isinstance(wrong, sp.Piecewise) and wrong.subs({i: 3, T: 6}) == 1
    derivation = Derivation("sympy_bug", "A derivative SymPy gets wrong", (D.REAL_LOGITS,), [
        Step(strided, "derivative of a strided sum"),
        Step(wrong, "what SymPy's diff returns"),
    ])
    prev, step = derivation.steps
    # SymPy would show it; since issue 19 the symbolic half does not trust SymPy on a
    # strided index, and the numeric half catches it as before
    assert engine.symbolic_check(prev.expr, step.expr, "=", derivation.assumptions) is None
    with pytest.raises(engine.StepFalse, match="concrete check fails on the instance"):
        engine.check(derivation)


def test_bound_index_is_not_confused_with_free_index():
    # SymPy's own diff gets this wrong; the engine renames bound variables first
    sum_of_squares = Derivative(Sum(a[j] ** 2, (j, 1, T)), a[j])
    assert sum_of_squares.doit() == Sum(2 * a[j], (j, 1, T))
    derivation = Derivation("bound", "Bound versus free j", (D.REAL_LOGITS,), [
        Step(sum_of_squares, "derivative of a sum of squares"),
        Step(2 * a[j], "only the term j survives"),
    ])
    engine.check(derivation)
    with pytest.raises(StepRejected):
        engine.check(with_last_step(derivation, Sum(2 * a[j], (j, 1, T))))


def test_rejection_message_names_everything():
    derivation = Derivation("demo", "Demo derivation", (), [
        Step(sp.Integer(2) + 2, "start"),
        Step(sp.Integer(5), "arithmetic"),
    ])
    with pytest.raises(StepRejected) as info:
        engine.check(derivation)
    text = str(info.value)
    for part in ("'Demo derivation'", "step 1", "(arithmetic)", "previous: 4", "this:     5"):
        assert part in text


def test_unknown_relation_is_an_error():
    with pytest.raises(ValueError, match="unknown relation"):
        Step(sp.Integer(0), "x", rel="!=")


def test_numeric_check_covers_required_class_counts():
    assert {1, 2, 3, 5, 8} <= set(engine.CLASS_COUNTS)
    assert engine.LARGEST_RANDOM_T >= 12
    assert engine.DIGITS >= 30
