"""Automatic gradients (issue 14): SymPy derives, named rules close the form, the engine
checks every produced step.

Each "Done when" result is derived by :func:`derive.autodiff.gradient` from the loss
alone -- no step typed -- and checked by :func:`derive.engine.check` as a hand-written
chain would be. A wrong rule added to the rule set is rejected at the step it produces,
by name; a rule set that cannot close the form says so instead of claiming a result.
"""
from __future__ import annotations

import subprocess

import pytest
import sympy as sp
from sympy import KroneckerDelta, Sum, log

from derive import Define, Rule, engine, gradient, jacobian, scalar
from derive.autodiff import DELTA_SUM, Definitions
from derive.softmax import definitions as D
from derive.softmax import rules as R
from derive.softmax.definitions import T, W, a, b, c, i, j, p, q, s, x, y
from derive.softmax.rules import S

# the user's symbols, declared as a user's catalogue declares them (examples/*.py)
TAU = scalar("tau", lambda rng: rng.uniform(0.05, 4.0), positive=True)
LAMBDA = scalar("lamda", lambda rng: rng.normal(0.0, 3.0))  # SymPy prints "lamda" as lambda
GAMMA = scalar("gamma", lambda rng: rng.uniform(0.0, 4.0), nonnegative=True)
TAU_RULES = R.rule_set(R.softmax_of(lambda u: a[u] / TAU, "softmax_tau",
                                    r"definition of $S_j = e^{a_j/\tau} / \sum_k e^{a_k/\tau}$"))

FC_LOSS = D.softmax_loss(y, D.fc_logit)
LOG_Z = log(D.partition())

#: (key, loss, variable, assumptions, rules, min_classes, the closed form expected)
CASES = [
    ("soft", D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL), R.RULES, 1, S[i] - y[i]),
    ("one_hot", D.softmax_loss(), a[i], (D.REAL_LOGITS, D.ONE_HOT), R.RULES, 1,
     S[i] - KroneckerDelta(i, c)),
    ("jacobian", D.softmax(j), a[i], (D.REAL_LOGITS,), R.RULES, 1,  # == jacobian(D.softmax, a, j, i)
     S[j] * (KroneckerDelta(i, j) - S[i])),
    ("fc_W", FC_LOSS, W[p, q], (D.REAL_LOGITS, D.SOFT_LABEL), R.FC_RULES, 1, (S[p] - y[p]) * x[q]),
    ("fc_b", FC_LOSS, b[p], (D.REAL_LOGITS, D.SOFT_LABEL), R.FC_RULES, 1, S[p] - y[p]),
    ("fc_x", FC_LOSS, x[q], (D.REAL_LOGITS, D.SOFT_LABEL), R.FC_RULES, 1,
     Sum(W[s, q] * (S[s] - y[s]), (s, 1, T))),
    ("fc_x_one_hot", FC_LOSS, x[q], (D.REAL_LOGITS, D.ONE_HOT), R.FC_RULES, 1,
     Sum(W[s, q] * S[s], (s, 1, T)) - W[c, q]),  # W^T (S - e_c)
    ("temperature", D.softmax_loss(y, lambda u: a[u] / TAU), a[i], (D.REAL_LOGITS, D.SOFT_LABEL),
     TAU_RULES, 1, (S[i] - y[i]) / TAU),
    ("temperature_one_hot", -log(D.softmax(c, lambda u: a[u] / TAU)), a[i], (D.REAL_LOGITS,),
     TAU_RULES, 1, (S[i] - KroneckerDelta(i, c)) / TAU),
    ("z_loss", D.softmax_loss() + LAMBDA * LOG_Z ** 2, a[i], (D.REAL_LOGITS, D.SOFT_LABEL),
     R.RULES, 1, S[i] - y[i] + 2 * LAMBDA * LOG_Z * S[i]),
    # d/da_i of -(1 - S_c)^gamma log S_c, from d S_c/d a_i = S_c (delta_ic - S_i):
    # gamma (1 - S_c)^(gamma - 1) S_c (delta_ic - S_i) log S_c - (1 - S_c)^gamma (delta_ic - S_i);
    # 1/(1 - S_c) appears, so T >= 2 (at T = 1, S_c = 1)
    ("focal", -(1 - D.softmax(c)) ** GAMMA * log(D.softmax(c)), a[i], (D.REAL_LOGITS,),
     R.RULES, 2,
     GAMMA * (1 - S[c]) ** (GAMMA - 1) * S[c] * (KroneckerDelta(i, c) - S[i]) * log(S[c])
     - (1 - S[c]) ** GAMMA * (KroneckerDelta(i, c) - S[i])),
]


def same(result, expected) -> bool:
    """Equal as expressions in S, y and the user's symbols (S_j taken as independent)."""
    diff = engine.canonical_bound(result) - engine.canonical_bound(expected)
    return sp.simplify(sp.expand(diff)) == 0


#: the cases the built-in catalogue derives too (derive.softmax.automatic.PLAN), by its
#: key: derived under the same key, on the worker that checks the catalogue's copy, the
#: session's proof memo (conftest) lets one of the two check each link and the other
#: find it accepted -- the same links, so the same proof
CATALOGUE_KEYS = {"soft": "loss_gradient", "one_hot": "loss_gradient_one_hot", "jacobian": "jacobian",
                  "fc_W": "fc_grad_W", "fc_b": "fc_grad_b", "fc_x": "fc_grad_x"}


def _case(case):
    key = CATALOGUE_KEYS.get(case[0])
    marks = [pytest.mark.xdist_group(f"derivation-{key}_automatic")] if key else []
    return pytest.param(*case, id=case[0], marks=marks)


@pytest.mark.parametrize("key, loss, wrt, assumptions, rules, min_classes, expected", [_case(c) for c in CASES])
def test_the_closed_form_is_derived_and_every_step_checked(key, loss, wrt, assumptions, rules,
                                                           min_classes, expected):
    name = f"{CATALOGUE_KEYS[key]}_automatic" if key in CATALOGUE_KEYS else f"auto_{key}"
    derivation = gradient(loss, wrt, assumptions, rules, key=name, min_classes=min_classes)
    assert derivation.closed, f"not closed: {derivation.result}"
    assert same(derivation.result, expected), derivation.result
    assert derivation.start == sp.Derivative(loss, wrt)
    report = derivation.report
    assert report is not None and len(report.steps) == len(derivation.steps) - 1
    for step, checked in zip(derivation.steps[1:], report.steps):
        assert step.why.endswith(f"[rule {derivation.rules[checked.number - 1]}]")
        assert checked.symbolic and checked.instances >= engine.instance_count(derivation)
    assert "diff" in derivation.rules  # SymPy differentiated; nothing was typed
    if rules is R.FC_RULES:  # by the chain rule, dL/da derived (and checked) on its own
        assert "chain_fc_layer" in derivation.rules
        (part,) = derivation.parts
        assert part.closed and part.report is not None and part.result.has(S)
    # stated in the named quantity S and checked against its definition
    assert derivation.result.has(S) and any(isinstance(h, Definitions) for h in derivation.assumptions)


def test_focal_with_gamma_zero_is_the_softmax_loss_gradient():
    loss = (-(1 - D.softmax(c)) ** GAMMA * log(D.softmax(c))).subs(GAMMA, 0)
    derivation = gradient(loss, a[i], (D.REAL_LOGITS,), R.RULES)
    assert derivation.closed and same(derivation.result, S[i] - KroneckerDelta(i, c))


def test_the_hessian_is_the_gradient_of_the_derived_gradient():
    first = gradient(D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL), R.RULES, check=False)
    second = gradient(first.result, a[D.l], (D.REAL_LOGITS, D.SOFT_LABEL), R.RULES)  # S unfolded first
    assert second.closed and same(second.result, S[i] * (KroneckerDelta(i, D.l) - S[D.l]))


def test_label_smoothing_counts_the_classes():
    derivation = gradient(D.softmax_loss(D.smoothed()), a[i], (D.REAL_LOGITS, D.SOFT_LABEL), R.RULES)
    assert derivation.closed and "count" in derivation.rules
    assert same(derivation.result, S[i] - D.smoothed()(i))


# --------------------------------------------------------------------------- wrong rules
def _log_softmax_wrong_sign(e, _context):
    """log(e^u / Z) = u + log Z: a sign error."""
    factors = sp.Mul.make_args(e.args[0])
    return sp.Add(*(f.args[0] if isinstance(f, sp.exp) else log(f.base) for f in factors))


WRONG_LOG = Rule("log_softmax_sign_error", r"$\log S_j = a_j + \log Z$",
                   R.LOG_OF_SOFTMAX.pattern, _log_softmax_wrong_sign)
WRONG_DELTA = Rule("delta_sum_keeps_the_sum", r"$\sum_v f_v \delta_{vu} = \sum_v f_v$",
                     DELTA_SUM.pattern, lambda e, _c: Sum(e.function.replace(
                         lambda f: isinstance(f, KroneckerDelta), lambda f: 1), *e.limits))


_w = sp.Wild("w")
# a pattern, not a matcher (log w = log 2w would be wrong too, but harmless here: it
# shifts the loss by the constant -log 2 sum_j y_j, so the derivative is unchanged and
# the checker rightly accepts that step)
WRONG_WILD = Rule("log_doubles", r"$\log w = 2 \log w$", log(_w), 2 * log(_w))


@pytest.mark.parametrize("wrong, number", [(WRONG_LOG, 1), (WRONG_DELTA, None), (WRONG_WILD, 1)],
                         ids=["log_sign", "delta", "wild_pattern"])
def test_a_wrong_rule_is_rejected_at_its_step_by_name(wrong, number):
    produced = gradient(D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL),
                          (wrong,) + R.RULES, check=False)
    assert wrong.name in produced.rules
    first = produced.rules.index(wrong.name) + 1
    assert number is None or first == number
    with pytest.raises(engine.StepFalse) as caught:
        gradient(D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL), (wrong,) + R.RULES)
    assert caught.value.number == first
    assert f"[rule {wrong.name}]" in str(caught.value)
    assert "the concrete check fails on the instance" in str(caught.value)


# --------------------------------------------------------------------------- honesty
def test_a_form_the_rules_cannot_close_says_so():
    # the softplus log(1 + e^{a_c}): no rule writes e^{a_c}/(1 + e^{a_c}) in S
    derivation = gradient(log(1 + sp.exp(a[c])), a[i], (D.REAL_LOGITS,), R.RULES)
    assert not derivation.closed
    assert "not closed" in derivation.title
    assert derivation.result.has(sp.exp)  # true, checked, not in S
    assert derivation.report is not None  # what was reached is still checked


def test_closedness_is_the_contents():
    # without the definition of S the rule set states nothing to close in: the machinery
    # calls a form without derivatives closed, and the result is e^{a_i}/Z - y_i
    rules = tuple(r for r in R.RULES if r is not R.SOFTMAX)
    derivation = gradient(D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL), rules, check=False)
    assert derivation.result.has(sp.exp) and not derivation.result.has(S)
    assert not any(isinstance(h, Definitions) for h in derivation.assumptions)
    # with it, the same form is open (an exponential is left) until S is folded in
    assert R.SOFTMAX.is_open(R.SOFTMAX, derivation.result)
    assert not R.SOFTMAX.is_open(R.SOFTMAX, S[i] - y[i] + LAMBDA * log(D.partition()) * S[i])


def test_without_the_assumption_sum_y_is_not_replaced():
    derivation = gradient(D.softmax_loss(), a[i], (D.REAL_LOGITS,), R.RULES)
    assert derivation.closed
    assert same(derivation.result, S[i] * Sum(y[s], (s, 1, T)) - y[i])


def test_a_users_pattern_rule_fires_and_is_checked():
    # log of a product of positive factors splits: a user's rule, by a pattern
    u = sp.Wild("u")
    split = Rule("log_of_weighted", r"$\log (w_c u) = \log w_c + \log u$ ($w_c > 0$)",
                   log(D.w[c] * u), log(D.w[c]) + log(u))
    loss = -log(D.w[c] * D.softmax(c))  # a class weight inside the log
    derivation = gradient(loss, a[i], (D.REAL_LOGITS,), (split,) + R.RULES)
    assert derivation.rules[0] == "log_of_weighted" and derivation.closed
    assert same(derivation.result, S[i] - KroneckerDelta(i, c))


def test_a_users_rule_extends_a_set_by_concatenation():
    # the user's own quantity: P_j = S_j - y_j, the residual, folded by a Define
    residual = sp.IndexedBase("P", real=True)
    mine = Define("residual", r"definition of $P_j = S_j - y_j$", base=residual,
                    body=lambda u: S[u] - y[u])
    derivation = gradient(D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL),
                            R.RULES + (mine,))
    assert derivation.result == residual[i] and derivation.closed
    assert derivation.rules[-1] == "residual"


def test_canonical_names_never_capture_an_outer_binder():
    # an assumption's rewrite can put a sum with its own binder inside a sum whose
    # binder already has a canonical name; renaming the inner one to _k0 captured it
    k0 = sp.Symbol("_k0", integer=True)
    n = D.n
    named = Sum(Sum(W[k0, n] * x[n], (n, 1, D.N)), (k0, 1, T))
    plain = Sum(Sum(W[s, n] * x[n], (n, 1, D.N)), (s, 1, T))
    assert engine.canonical_bound(named) == engine.canonical_bound(plain)
    assert not engine.canonical_bound(named).has(W[k0, k0])


# --------------------------------------------------------------------------- CLI
def run_here(capsys, *args):
    """``python -m derive gradient ARGS`` in this process: ``python -m derive`` is
    ``sys.exit(main())``, so the exit status is what ``main`` returns (a new interpreter
    costs a second or two of imports per call; the tests of ``all`` and of a bad
    catalogue run the entry point in a new interpreter)."""
    from derive import cli

    capsys.readouterr()
    status = cli.main(["gradient", *args])
    printed = capsys.readouterr()
    return subprocess.CompletedProcess(["derive", "gradient", *args], status, printed.out, printed.err)


def test_cli_prints_the_checked_chain_and_the_closed_form(capsys):
    done = run_here(capsys, "--wrt", "a", "--", "-log(softmax(c, tau))")
    assert done.returncode == 0, done.stderr
    assert "closed form: (-KroneckerDelta(c, i) + S[i])/tau" in done.stdout
    assert "[rule diff]" in done.stdout and "\u2713" in done.stdout
    # the content's legend: Z always; the FC layer only where the question goes through it
    assert "(Z: the sum of exponentials" in done.stdout and "FC layer" not in done.stdout


def test_cli_says_when_the_form_is_not_closed_and_rejects_bad_input(capsys):
    softplus = run_here(capsys, "--labels", "none", "log(1 + exp(a[c]))")  # no rule for 1/(1 + e^u)
    assert softplus.returncode == 3, softplus.stderr
    assert "NOT closed: the last form reached: exp(a[c])*KroneckerDelta(c, i)/(exp(a[c]) + 1)" in softplus.stdout
    bad = run_here(capsys, "L +* 2")
    assert bad.returncode == 2 and "cannot parse the loss" in bad.stderr
    wrt = run_here(capsys, "L", "--wrt", "2")
    assert wrt.returncode == 2 and "--wrt must be a component" in wrt.stderr
    # a name the content does not define is bad input, named, before anything is derived
    # (it was read as a new symbol, and the check failed later for want of its sampler)
    unknown = run_here(capsys, "L + foo*a[i]")
    assert unknown.returncode == 2 and "unknown name" in unknown.stderr and "'foo'" in unknown.stderr


def test_jacobian_of_the_softmax():
    derivation = jacobian(D.softmax, a, j, i, (D.REAL_LOGITS,), R.RULES, check=False)
    assert derivation.start == sp.Derivative(D.softmax(j), a[i])
    assert derivation.closed and same(derivation.result, S[j] * (KroneckerDelta(i, j) - S[i]))


def test_the_definitions_are_keyed_by_content_not_by_address():
    # the engine caches proved links by the repr of the assumptions; a lambda's address
    # can be reused by a different lambda once the first is collected
    first = Definitions("S", (R.softmax_of(lambda u: a[u] / TAU, "s", "S"),))
    second = Definitions("S", (R.softmax_of(lambda u: 2 * a[u] / TAU, "s", "S"),))
    assert "0x" not in repr(first) and repr(first) != repr(second)


def test_the_readme_example_runs_as_written(capsys):
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split("<!-- gradient-example -->\n```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - the README's own code
    printed = capsys.readouterr().out.splitlines()
    stated = [line.split("# ", 1)[1] for line in block.splitlines() if line.startswith("print(")]
    assert printed == stated


# --------------------------------------------------------------------------- the catalogue
@pytest.mark.parametrize("key", [entry[0] for entry in __import__("derive.softmax.automatic").softmax.automatic.PLAN])
def test_the_automatic_catalogue_results_equal_the_hand_written_ones(key):
    from derive.softmax import automatic, catalogue

    # the chains themselves are checked above (CASES: the same losses and rules)
    hand = {d.key: d for d in catalogue.hand_written()}
    derived = automatic.build(hand, check=False, keys=(key,))[key]
    assert derived.closed and derived.matrix == catalogue.by_key()[key].matrix
    assert derived.title.endswith("(automatic)")
    engine.check(automatic.agreement(key, derived, hand[key]))  # the same boxed result, checked


def test_the_soft_label_gradient_uses_sum_y_is_one():
    derivation = gradient(D.softmax_loss(), a[i], (D.REAL_LOGITS, D.SOFT_LABEL), R.RULES, check=False)
    used = [step.why for step in derivation.steps if step.why.endswith("[rule assumptions]")]
    assert used and used[0].startswith(D.SOFT_LABEL.text)


def test_the_focal_closed_form_needs_two_classes():
    # the closed form divides by 1 - S_c, which is 0 at T = 1 (S_c = 1): stated for T = 1
    # too, the checker finds a step with no value there; from T = 2 on it holds
    focal = -(1 - D.softmax(c)) ** GAMMA * log(D.softmax(c))
    with pytest.raises(engine.StepUndefined, match=r"(?s)T = 1,.*a division by zero"):
        gradient(focal, a[i], (D.REAL_LOGITS,), R.RULES, min_classes=1)


def test_array_form_maps_the_derived_form_onto_the_stable_kernels():
    from derive.softmax.kernels import GRAD_INDEX, L1P, SOFTMAX, M, array_form

    z_loss = gradient(D.softmax_loss() + LAMBDA * LOG_Z ** 2, a[j], (D.REAL_LOGITS, D.ONE_HOT), R.RULES,
                      check=False)
    assert z_loss.result.has(S) and not z_loss.unfolded.has(S)
    assert sp.expand(array_form(z_loss.result) - (GRAD_INDEX + 2 * LAMBDA * (M + L1P) * SOFTMAX)) == 0
    with pytest.raises(ValueError, match="no array form for y"):
        array_form(S[j] - y[j])
