"""The catalogue: every result softmax-derive relies on, as a checked derivation.

One entry per result, in the order of DESIGN.md's list. Each is built only from the
formulas in :mod:`derive.definitions`; the proof engine (:mod:`derive.engine`) checks
every step symbolically for symbolic T and numerically at T = 1, 2, 3, 5, 8 (from
``min_classes`` up), ``min_classes``, ``min_classes + 1`` and one random T up to 12.
"""
from __future__ import annotations

import dataclasses
import math

import sympy as sp
from sympy import Derivative, KroneckerDelta, Rational, Sum, exp, log
from sympy.codegen.cfunctions import log1p

from ..engine import Derivation, Step
from . import automatic
from . import definitions as D
from .definitions import T, W, a, b, c, delta, i, j, k, l, m, p, q, r, s, t, v, x, y

S = D.softmax
Z = D.partition()
LSE = D.logsumexp()


def shifted_rest(top=k, shift=None):
    """sum_{j != top} e^{a_j - shift}: the tail of the partition function."""
    shift = a[top] if shift is None else shift
    return D.sum_except(lambda u: exp(a[u] - shift), top)


WZ = D.weighted_partition()


def weighted_rest(top=k):
    """sum_{j != top} b_j e^{a_j - a_top}: the tail of the weighted partition function."""
    return D.sum_except(lambda u: D.bw[u] * exp(a[u] - a[top]), top)


def fc(u):
    return D.fc_logit(u)


g = sp.Symbol("g", integer=True, positive=True)  # summation over the batch


def batch_loss(sample):
    """L_sample = log Z_sample - sum_s Y_{sample,s} a_{sample,s} (the proved soft form)."""
    return (sp.log(D.partition(lambda q_: D.batch_logit(sample, q_)))
            - Sum(D.Yb[sample, s] * D.batch_logit(sample, s), (s, 1, T)))


def sample_loss(sample):
    """L_sample = log Z_sample - sum_s Y_{sample,s} A_{sample,s} for a batch of logits A."""
    return (sp.log(D.partition(lambda q_: D.Ab[sample, q_]))
            - Sum(D.Yb[sample, s] * D.Ab[sample, s], (s, 1, T)))


def sample_softmax(sample, cls):
    return D.softmax(cls, lambda q_: D.Ab[sample, q_])


def batch_softmax(sample, cls):
    return D.softmax(cls, lambda q_: D.batch_logit(sample, q_))


def _worked_softmax() -> Derivation:
    """softmax([1, 2, 3])_j for every j at once: the report's table evaluates the last form."""
    concrete = D.softmax(j, lambda u: u).subs(T, 3)
    return Derivation(
        "example_softmax", r"Worked example: $\operatorname{softmax}([1, 2, 3])_j$", (), [
            Step(concrete, r"definition with $T = 3$ and $a_k = k$"),
            Step(exp(j) / (exp(1) + exp(2) + exp(3)), "write out the three terms of the sum"),
            Step(exp(j - 1) / (1 + sp.E + sp.E ** 2), r"divide numerator and denominator by $e$"),
        ], section="examples")


def _worked_loss(probs, expected) -> Derivation:
    qv = D.P
    given = D.Values("$p = [" + ", ".join(probs) + "]$", qv, tuple(probs))
    hot = D.OneHot("$y$ one-hot at the true class $c = 4$", D.y, sp.Integer(4))
    return Derivation(
        "example_loss_" + "_".join(str(pv).replace(".", "") for pv in probs),
        f"Worked example: 5 classes, true class 4, $p = [{', '.join(probs)}]$", (given, hot), [
            Step(D.cross_entropy(D.y, qv).subs(T, 5), r"$H(y, p)$ with $T = 5$"),
            Step(-Sum(KroneckerDelta(s, 4) * log(qv[s]), (s, 1, 5)), r"$y_j = \delta_{j4}$"),
            Step(-log(qv[4]), r"only the term $j = 4$ survives"),
            Step(-log(Rational(expected), evaluate=False), rf"$p_4 = {expected}$"),
            Step(sp.Float(f"{-math.log(float(expected)):.3f}"), "evaluate", rel="~", decimals=3),
        ], min_classes=5, section="examples")


def _written(*factors) -> sp.Expr:
    """A product kept as written, so that the report prints the factors a step cancels."""
    return sp.Mul(*factors, evaluate=False)


def _over(top, bottom) -> sp.Expr:
    """top / bottom kept as written (y_j / S_j)."""
    return _written(top, sp.Pow(bottom, -1, evaluate=False))


def _fc_gradient(key, wrt, name, da, da_tex, rest, matrix) -> Derivation:
    """dL/d(wrt) through the FC layer a = W x + b: the soft form of L, then the chain rule
    dL/da_j = S_j - y_j times da_j/d(wrt) = ``da`` (at j = s), then the ``rest`` of the steps."""
    fc_loss = sp.log(D.partition(fc)) - Sum(y[s] * fc(s), (s, 1, T))  # L(W, x, b), soft form
    return Derivation(key, rf"Gradient through the FC layer: $\partial L/\partial {name}$",
                      (D.REAL_LOGITS, D.SOFT_LABEL), [
                          Step(Derivative(D.softmax_loss(y, fc), wrt), r"$L$ with $a = W x + b$"),
                          Step(Derivative(fc_loss, wrt), r"$L = \log Z - \sum_j y_j a_j$"),
                          Step(Sum((S(s, fc) - y[s]) * da, (s, 1, T)),
                               rf"chain rule: $\partial L/\partial a_j = S_j - y_j$, $\partial a_j/\partial {name} = {da_tex}$"),
                          *rest,
                      ], matrix=matrix, section="fc")


def _probability() -> list[Derivation]:
    """Section: probability."""
    return [
        # ---------------------------------------------------------------- 1. probability
        Derivation("softmax_positive", "Softmax outputs are positive",
                   (D.REAL_LOGITS,), [
                       Step(S(j), "definition of softmax"),
                       Step(sp.Integer(0), r"$e^{a_j} > 0$ and $Z$ is a sum of $T \ge 1$ positive terms",
                            rel=">"),
                   ], matrix=r"S \succ 0", section="probability"),
        Derivation("softmax_sums_to_one", "Softmax outputs sum to one",
                   (D.REAL_LOGITS,), [
                       Step(Sum(S(j), (j, 1, T)), r"sum of the definition over $j$"),
                       Step(Sum(exp(a[j]), (j, 1, T)) / Z, r"$Z$ does not depend on $j$: take it out of the sum"),
                       Step(sp.Integer(1), r"the numerator is $Z$ itself"),
                   ], matrix=r"\mathbf{1}^\top S = 1", section="probability"),
        Derivation("softmax_shift", "Softmax is invariant under a shift of all logits",
                   (D.REAL_LOGITS,), [
                       Step(S(j, lambda u: a[u] + t), r"softmax of $a + t\mathbf{1}$"),
                       Step(exp(t) * exp(a[j]) / Sum(exp(t) * exp(a[r]), (r, 1, T)),
                            r"$e^{u + t} = e^t e^u$"),
                       Step(sp.Mul(exp(t) * exp(a[j]), sp.Pow(exp(t) * Z, -1, evaluate=False), evaluate=False),
                            r"$e^t$ does not depend on the summation index"),
                       Step(S(j), r"cancel $e^t$"),
                   ], matrix=r"\operatorname{softmax}(a + t\mathbf{1}) = \operatorname{softmax}(a)",
                   section="probability"),
        Derivation("softmax_ratio", "The ratio of two softmax outputs",
                   (D.REAL_LOGITS,), [
                       Step(sp.Mul(S(j), sp.Pow(S(k), -1, evaluate=False), evaluate=False), "two outputs"),
                       Step(sp.Mul(exp(a[j]), sp.Pow(exp(a[k]), -1, evaluate=False), evaluate=False),
                            r"$S_j = e^{a_j}/Z$, $S_k = e^{a_k}/Z$: $Z$ cancels"),
                       Step(exp(a[j] - a[k]), r"$e^u / e^w = e^{u - w}$"),
                   ], matrix=r"S_j / S_k = e^{a_j - a_k}", section="probability"),
        Derivation("softmax_order", "Softmax preserves the order of the logits (hence the argmax)",
                   (D.REAL_LOGITS, D.J_ABOVE_K), [
                       Step(S(j) - S(k), "difference of two outputs"),
                       Step((exp(a[j]) - exp(a[k])) / Z, r"common denominator $Z$"),
                       Step(exp(a[k]) * (exp(delta) - 1) / Z, r"$a_j = a_k + \delta$"),
                       Step(sp.Integer(0), r"$e^\delta > 1$ for $\delta > 0$; $e^{a_k} > 0$; $Z > 0$", rel=">"),
                   ], matrix=r"a_j > a_k \iff S_j > S_k,\quad \arg\max_j S_j = \arg\max_j a_j",
                   min_classes=2, section="probability"),
    ]


def _jacobian() -> list[Derivation]:
    """Section: Jacobian."""
    return [
        # ---------------------------------------------------------------- 2. Jacobian
        Derivation("jacobian_diagonal", r"Softmax Jacobian, case $i = j$",
                   (D.REAL_LOGITS,), [
                       Step(Derivative(S(i), a[i]), "the diagonal entry"),
                       Step(sp.Mul(exp(a[i]) * Z - sp.Mul(exp(a[i]), exp(a[i]), evaluate=False),
                                   sp.Pow(Z, -2), evaluate=False),
                            r"quotient rule with $\partial Z/\partial a_i = e^{a_i}$"),
                       Step(sp.Add(S(i), sp.Mul(-1, sp.Pow(S(i), 2, evaluate=False), evaluate=False), evaluate=False),
                            r"split the fraction: $S_i - S_i^2$"),
                       Step(S(i) * (1 - S(i)), r"factor out $S_i$"),
                   ], section="jacobian"),
        Derivation("jacobian_offdiagonal", r"Softmax Jacobian, case $i \ne j$",
                   (D.REAL_LOGITS, D.I_NE_J), [
                       Step(Derivative(S(j), a[i]), "an off-diagonal entry"),
                       Step(-exp(a[j]) * exp(a[i]) / Z ** 2,
                            r"quotient rule: the numerator $e^{a_j}$ does not depend on $a_i$"),
                       Step(sp.Mul(-1, S(i), S(j), evaluate=False), r"regroup: $e^{a_i}/Z = S_i$, $e^{a_j}/Z = S_j$"),
                   ], min_classes=2, section="jacobian"),
        Derivation("jacobian", "Softmax Jacobian, both cases in one formula",
                   (D.REAL_LOGITS,), [
                       Step(Derivative(S(j), a[i]), "any entry"),
                       Step(S(j) * (KroneckerDelta(i, j) - S(i)),
                            r"the two cases: $S_i (1 - S_i)$ when $i = j$, $-S_i S_j$ otherwise"),
                   ], matrix=r"\frac{\partial S}{\partial a} = \operatorname{diag}(S) - S S^\top",
                   section="jacobian"),
    ]


def _losses() -> list[Derivation]:
    """Section: losses."""
    return [
        # ---------------------------------------------------------------- 3. losses
        Derivation("loss_one_hot", r"With a one-hot label the softmax loss is $-\log S_c$",
                   (D.REAL_LOGITS, D.ONE_HOT), [
                       Step(D.softmax_loss(), "definition of the softmax loss"),
                       Step(-Sum(KroneckerDelta(s, c) * log(S(s)), (s, 1, T)), r"$y_j = \delta_{jc}$"),
                       Step(-log(S(c)), r"only the term $j = c$ survives"),
                       Step(LSE - a[c], r"$\log S_c = a_c - \log Z$"),
                   ], matrix=r"L = -\log S_c = \log \textstyle\sum_j e^{a_j} - a_c",
                   section="losses"),
        Derivation("cross_entropy_is_loss", "Cross entropy of the label and the softmax is the softmax loss",
                   (D.REAL_LOGITS, D.Q_IS_SOFTMAX), [
                       Step(D.cross_entropy(y, D.Qv), r"$H(y, q)$, definition of cross entropy"),
                       Step(D.softmax_loss(), r"$q = S$: this is the definition of the softmax loss $L$"),
                   ], matrix=r"H(y, S) = L", section="losses"),
        Derivation("cross_entropy_soft", r"Cross entropy $H(p, \operatorname{softmax}(a))$ for any probability vector $p$",
                   (D.REAL_LOGITS, D.SOFT_P), [
                       Step(D.cross_entropy(D.P, lambda u: S(u)), "definition of cross entropy"),
                       Step(-Sum(D.P[s] * (a[s] - LSE), (s, 1, T)), r"$\log S_j = a_j - \log Z$"),
                       Step(LSE - Sum(D.P[s] * a[s], (s, 1, T)), r"$\sum_j p_j = 1$"),
                   ], matrix=r"H(p, \operatorname{softmax}(a)) = \log \textstyle\sum_j e^{a_j} - p^\top a",
                   section="losses"),
    ]


def _gradient() -> list[Derivation]:
    """Section: gradient."""
    return [
        # ---------------------------------------------------------------- 4. gradient
        Derivation("loss_soft_form", "The softmax loss for a probability-vector label",
                   (D.REAL_LOGITS, D.SOFT_LABEL), [
                       Step(D.softmax_loss(), "definition"),
                       Step(-Sum(y[s] * a[s], (s, 1, T)) + Sum(y[s], (s, 1, T)) * LSE,
                            r"$\log S_j = a_j - \log Z$; $\log Z$ does not depend on $j$"),
                       Step(LSE - Sum(y[s] * a[s], (s, 1, T)), r"$\sum_j y_j = 1$"),
                   ], matrix=r"L = \log \textstyle\sum_j e^{a_j} - y^\top a", section="gradient"),
        Derivation("loss_gradient", r"Gradient of the softmax loss: $\partial L/\partial a = S - y$",
                   (D.REAL_LOGITS, D.SOFT_LABEL), [
                       Step(Derivative(D.softmax_loss(), a[i]), "the derivative to find"),
                       Step(Derivative(LSE - Sum(y[s] * a[s], (s, 1, T)), a[i]),
                            r"$L = \log Z - \sum_j y_j a_j$ (previous result)", lemma="loss_soft_form"),
                       Step(S(i) - y[i], r"$\partial \log Z/\partial a_i = e^{a_i}/Z = S_i$; $\partial (\sum_j y_j a_j)/\partial a_i = y_i$"),
                   ], matrix=r"\frac{\partial L}{\partial a} = S - y", section="gradient"),
        Derivation("loss_gradient_chain",
                   r"Gradient of the softmax loss through the two cases $i = j$ and $i \ne j$ of the softmax derivative",
                   (D.REAL_LOGITS, D.SOFT_LABEL), [
                       Step(Derivative(D.softmax_loss(), a[i]), "the derivative to find"),
                       Step(-Sum(_written(_over(y[j], S(j)), Derivative(S(j), a[i])), (j, 1, T)),
                            r"chain rule: $\partial \log S_j/\partial a_i = (1/S_j)\, \partial S_j/\partial a_i$"),
                       Step(sp.Add(-_written(_over(y[i], S(i)), _written(S(i), 1 - S(i))),
                                   Sum(_written(_over(y[j], S(j)), S(i), S(j), 1 - KroneckerDelta(j, i)), (j, 1, T)),
                                   evaluate=False),
                            r"split off $j = i$: $\partial S_i/\partial a_i = S_i (1 - S_i)$; "
                            r"$\partial S_j/\partial a_i = -S_i S_j$ for $j \ne i$"),
                       Step(sp.Add(-y[i] * (1 - S(i)), Sum(_written(y[j], S(i), 1 - KroneckerDelta(j, i)), (j, 1, T)),
                                   evaluate=False), r"cancel $S_i$ and $S_j$"),
                       Step(S(i) * Sum(y[j], (j, 1, T)) - y[i], r"$y_i S_i$ joins the sum: $S_i \sum_j y_j$"),
                       Step(S(i) - y[i], r"$\sum_j y_j = 1$"),
                   ], matrix=r"\frac{\partial L}{\partial a} = S - y", section="gradient"),
        Derivation("loss_gradient_one_hot", r"Gradient for a one-hot label: $\partial L/\partial a_i = S_i - \delta_{ic}$",
                   (D.REAL_LOGITS, D.ONE_HOT), [
                       Step(Derivative(D.softmax_loss(), a[i]), "the derivative to find"),
                       Step(Derivative(LSE - a[c], a[i]), r"$L = \log Z - a_c$"),
                       Step(S(i) - KroneckerDelta(i, c), r"$\partial \log Z/\partial a_i = S_i$, $\partial a_c/\partial a_i = \delta_{ic}$"),
                   ], matrix=r"\frac{\partial L}{\partial a} = S - e_c", section="gradient"),
    ]


def _fc_layer() -> list[Derivation]:
    """Section: FC layer."""
    return [
        # ---------------------------------------------------------------- 5. FC layer
        _fc_gradient("fc_grad_W", W[p, q], "W_{pq}", KroneckerDelta(s, p) * x[q], r"\delta_{jp} x_q",
                     [Step((S(p, fc) - y[p]) * x[q], r"only $j = p$ survives")],
                     r"\frac{\partial L}{\partial W} = (S - y)\, x^\top"),
        _fc_gradient("fc_grad_b", b[p], "b_p", KroneckerDelta(s, p), r"\delta_{jp}",
                     [Step(S(p, fc) - y[p], r"only $j = p$ survives")], r"\frac{\partial L}{\partial b} = S - y"),
        _fc_gradient("fc_grad_x", x[q], "x_q", W[s, q], "W_{jq}", [],
                     r"\frac{\partial L}{\partial x} = W^\top (S - y)"),
    ]


def _stable_forms() -> list[Derivation]:
    """Section: stable forms."""
    return [
        # ---------------------------------------------------------------- 6. stable forms
        Derivation("lse_shift", r"Log-sum-exp with any shift $m$",
                   (D.REAL_LOGITS,), [
                       Step(LSE, "definition"),
                       Step(log(exp(m) * Sum(exp(a[r] - m), (r, 1, T))), r"$e^{a_j} = e^m e^{a_j - m}$"),
                       Step(m + log(Sum(exp(a[r] - m), (r, 1, T))), r"$\log(uv) = \log u + \log v$; $\log e^m = m$"),
                   ], matrix=r"\log \textstyle\sum_j e^{a_j} = m + \log \sum_j e^{a_j - m}",
                   section="stable"),
        Derivation("lse_stable", "Stable log-sum-exp: shift by the maximum, split off its term",
                   (D.REAL_LOGITS, D.K_IS_ARGMAX), [
                       Step(LSE, "definition"),
                       Step(a[k] + log(Sum(exp(a[r] - a[k]), (r, 1, T))), r"the shift rule with $m = a_k$"),
                       Step(a[k] + log(1 + shifted_rest()), r"split off the term $j = k$: $e^0 = 1$"),
                       Step(a[k] + log1p(shifted_rest()), r"$\log(1 + s) = \operatorname{log1p}(s)$"),
                   ], matrix=r"\log \textstyle\sum_j e^{a_j} = m + \operatorname{log1p}\big(\sum_{j \ne k} e^{a_j - m}\big)",
                   section="stable"),
        Derivation("loss_stable", "Stable softmax loss for a one-hot label",
                   (D.REAL_LOGITS, D.ONE_HOT, D.K_IS_ARGMAX), [
                       Step(D.softmax_loss(), "definition"),
                       Step(LSE - a[c], r"one-hot label: $L = \log Z - a_c$"),
                       Step((a[k] - a[c]) + log1p(shifted_rest()), r"stable log-sum-exp with $m = a_k$",
                            lemma="lse_stable"),
                   ], matrix=r"L = (m - a_c) + \operatorname{log1p}\big(\textstyle\sum_{j \ne k} e^{a_j - m}\big)",
                   section="stable"),
        Derivation("log_softmax_stable", "Stable log-softmax",
                   (D.REAL_LOGITS, D.K_IS_ARGMAX), [
                       Step(log(S(j)), "definition"),
                       Step(a[j] - LSE, r"$\log(e^{a_j}/Z) = a_j - \log Z$"),
                       Step((a[j] - a[k]) - log1p(shifted_rest()), r"stable log-sum-exp with $m = a_k$",
                            lemma="lse_stable"),
                   ], matrix=r"\log S_j = (a_j - m) - \operatorname{log1p}\big(\textstyle\sum_{i \ne k} e^{a_i - m}\big)",
                   section="stable"),
        Derivation("softmax_stable", "Stable softmax",
                   (D.REAL_LOGITS, D.K_IS_ARGMAX), [
                       Step(S(j), "definition"),
                       Step(exp(a[j] - a[k]) / Sum(exp(a[r] - a[k]), (r, 1, T)), r"multiply by $e^{-a_k} / e^{-a_k}$"),
                       Step(exp(a[j] - a[k]) / (1 + shifted_rest()), r"split off the term $i = k$: $e^0 = 1$"),
                   ], matrix=r"S_j = e^{a_j - m} \big/ \big(1 + \textstyle\sum_{i \ne k} e^{a_i - m}\big)",
                   section="stable"),
        Derivation("true_class_complement", "The true-class gradient without cancellation",
                   (D.REAL_LOGITS,), [
                       Step(S(c) - 1, r"the true-class component of $S - y$"),
                       Step(S(c) - Sum(S(r), (r, 1, T)), "the outputs sum to one"),
                       Step(-D.sum_except(lambda u: S(u), c), r"the term $j = c$ cancels"),
                   ], matrix=r"S_c - 1 = -\textstyle\sum_{j \ne c} S_j", section="stable"),
        Derivation("true_class_complement_stable", "The same, when the true class is the argmax",
                   (D.REAL_LOGITS, D.K_IS_ARGMAX), [
                       Step(S(k) - 1, r"$S_k - 1$ with $k$ the argmax"),
                       Step(-D.sum_except(lambda u: S(u), k), "the outputs sum to one"),
                       Step(-shifted_rest() / (1 + shifted_rest()), "stable softmax", lemma="softmax_stable"),
                   ], matrix=r"S_k - 1 = -\frac{\sum_{j \ne k} e^{a_j - m}}{1 + \sum_{j \ne k} e^{a_j - m}}",
                   section="stable"),
    ]


def _hessian() -> list[Derivation]:
    """Section: Hessian."""
    mu = Sum(S(r) * v[r], (r, 1, T))  # the mean of v under S
    return [
        # ---------------------------------------------------------------- 7. Hessian
        Derivation("hessian", "Hessian of the softmax loss",
                   (D.REAL_LOGITS, D.SOFT_LABEL), [
                       Step(Derivative(D.softmax_loss(), a[i], a[l]), "second derivative"),
                       Step(Derivative(S(i) - y[i], a[l]), r"$\partial L/\partial a_i = S_i - y_i$"),
                       Step(S(i) * (KroneckerDelta(i, l) - S(l)), r"the softmax Jacobian; $y$ does not depend on $a$"),
                   ], matrix=r"\frac{\partial^2 L}{\partial a\,\partial a^\top} = \operatorname{diag}(S) - S S^\top",
                   section="hessian"),
        Derivation("hessian_psd", r"The Hessian is positive semidefinite: $L$ is convex in $a$",
                   (D.REAL_LOGITS,), [
                       Step(Sum(Sum(v[i] * S(i) * (KroneckerDelta(i, l) - S(l)) * v[l], (l, 1, T)), (i, 1, T)),
                            r"$v^\top H v$"),
                       Step(Sum(S(i) * v[i] ** 2, (i, 1, T)) - mu ** 2, r"the $\delta$ term keeps $l = i$"),
                       Step(Sum(S(i) * (v[i] - mu) ** 2, (i, 1, T)),
                            r"a variance: $\sum_i S_i = 1$ and $\mu = \sum_i S_i v_i$"),
                       Step(sp.Integer(0), r"$S_i > 0$ and squares are $\ge 0$", rel=">="),
                   ], matrix=r"v^\top H v = \textstyle\sum_i S_i v_i^2 - \big(\sum_i S_i v_i\big)^2 \ge 0",
                   section="hessian"),
    ]


def _options() -> list[Derivation]:
    """Section: options."""
    return [
        # ---------------------------------------------------------------- 9. options
        Derivation("loss_gradient_weighted", "Gradient of the weighted loss $-\\sum_j u_j \\log S_j$",
                   (D.REAL_LOGITS,), [
                       Step(Derivative(D.weighted_loss(), a[i]), r"the derivative to find; $u_j = w_j y_j$ need not sum to 1"),
                       Step(Derivative(Sum(D.u[s], (s, 1, T)) * LSE - Sum(D.u[s] * a[s], (s, 1, T)), a[i]),
                            r"$\log S_j = a_j - \log Z$"),
                       Step(S(i) * Sum(D.u[s], (s, 1, T)) - D.u[i],
                            r"$\partial \log Z/\partial a_i = S_i$, $\partial a_j/\partial a_i = \delta_{ij}$"),
                   ], matrix=r"\frac{\partial L_u}{\partial a} = S\, \mathbf{1}^\top u - u", section="options"),
        Derivation("class_weight_one_hot", "Class weights with a one-hot label scale the loss by $w_c$",
                   (D.REAL_LOGITS, D.ONE_HOT), [
                       Step(D.weighted_loss(lambda q_: D.w[q_] * y[q_]), r"$L_u$ with $u_j = w_j y_j$"),
                       Step(-D.w[c] * log(S(c)), r"$y_j = \delta_{jc}$: only $j = c$ remains"),
                       Step(D.w[c] * (LSE - a[c]), r"$\log S_c = a_c - \log Z$"),
                   ], matrix=r"L_w = w_c L", section="options"),
        Derivation("class_weight_gradient", "and the gradient by $w_c$", (D.REAL_LOGITS,), [
            Step(Derivative(D.w[c] * (LSE - a[c]), a[i]), r"the weighted one-hot loss"),
            Step(D.w[c] * (S(i) - KroneckerDelta(i, c)), r"$w_c$ does not depend on $a$"),
        ], matrix=r"\frac{\partial (w_c L)}{\partial a} = w_c (S - e_c)", section="options"),
        Derivation("label_smoothing_sums_to_one", "Label smoothing keeps a probability vector",
                   (D.REAL_LOGITS, D.SOFT_LABEL), [
                       Step(Sum(D.smoothed()(s), (s, 1, T)), r"$\sum_j y'_j$ with $y'_j = (1 - \epsilon) y_j + \epsilon / T$"),
                       Step((1 - D.eps) * Sum(y[s], (s, 1, T)) + D.eps, r"linearity; $\sum_j \epsilon/T = \epsilon$"),
                       Step(sp.Integer(1), r"$\sum_j y_j = 1$"),
                   ], matrix=r"\mathbf{1}^\top y' = 1", section="options"),
        Derivation("label_smoothing_gradient", "Gradient with label smoothing: $S - y'$",
                   (D.REAL_LOGITS, D.SOFT_LABEL), [
                       Step(Derivative(D.weighted_loss(D.smoothed()), a[i]), r"the loss with $y'$"),
                       Step(S(i) * Sum(D.smoothed()(s), (s, 1, T)) - D.smoothed()(i),
                            r"the weighted-loss gradient with $u = y'$"),
                       Step(S(i) - D.smoothed()(i), r"$\sum_j y'_j = 1$"),
                   ], matrix=r"\frac{\partial L}{\partial a} = S - \big((1 - \epsilon) y + \tfrac{\epsilon}{T}\big)",
                   section="options"),
    ]


def _fc_batch() -> list[Derivation]:
    """Section: FC on a batch."""
    return [
        # ---------------------------------------------------------------- 11. FC on a batch
        Derivation("fc_batch_grad_W", "A batch through the FC layer: $\\partial L/\\partial W$",
                   (D.REAL_LOGITS,), [
                       Step(Derivative(Sum(batch_loss(g), (g, 1, D.B)), W[p, q]),
                            r"$L = \sum_\beta L_\beta$, each $L_\beta = \log Z_\beta - \sum_j Y_{\beta j} a_{\beta j}$ (soft form)"),
                       Step(Sum((batch_softmax(g, p) - D.Yb[g, p]) * D.X[g, q], (g, 1, D.B)),
                            r"the sum of the per-sample gradients $(S_{\beta p} - Y_{\beta p}) X_{\beta q}$"),
                   ], matrix=r"\frac{\partial L}{\partial W} = (S - Y)^\top X", section="fcbatch"),
        Derivation("fc_batch_grad_W_chunks",
                   "Chunks of a batch: $\\partial L/\\partial W$ accumulated chunk by chunk",
                   (D.REAL_LOGITS,), [
                       Step(Sum((batch_softmax(g, p) - D.Yb[g, p]) * D.X[g, q], (g, 1, D.B)),
                            r"$\partial L/\partial W_{pq}$ of the whole batch (the result above)"),
                       Step(Sum((batch_softmax(g, p) - D.Yb[g, p]) * D.X[g, q], (g, 1, D.beta))
                            + Sum((batch_softmax(g, p) - D.Yb[g, p]) * D.X[g, q], (g, D.beta + 1, D.B)),
                            r"split the samples at $\beta$: a chunk $1..\beta$ and the rest; "
                            r"each chunk needs only its own logits"),
                   ], matrix=r"\frac{\partial L}{\partial W} = \sum_{\text{chunks } C} (S_C - Y_C)^\top X_C",
                   section="fcbatch"),
        Derivation("fc_batch_grad_b", "A batch through the FC layer: $\\partial L/\\partial b$",
                   (D.REAL_LOGITS,), [
                       Step(Derivative(Sum(batch_loss(g), (g, 1, D.B)), b[p]), r"$L = \sum_\beta L_\beta$"),
                       Step(Sum(batch_softmax(g, p) - D.Yb[g, p], (g, 1, D.B)),
                            r"the sum of the per-sample gradients $S_{\beta p} - Y_{\beta p}$"),
                   ], matrix=r"\frac{\partial L}{\partial b} = (S - Y)^\top \mathbf{1}", section="fcbatch"),
        Derivation("fc_batch_grad_x", "A batch through the FC layer: $\\partial L/\\partial X$",
                   (D.REAL_LOGITS,), [
                       Step(Derivative(Sum(batch_loss(g), (g, 1, D.B)), D.X[D.beta, q]), r"$L = \sum_\beta L_\beta$"),
                       Step(Sum(W[s, q] * (batch_softmax(D.beta, s) - D.Yb[D.beta, s]), (s, 1, T)),
                            r"only $L_\beta$ depends on $X_\beta$: $\sum_j W_{jq} (S_{\beta j} - Y_{\beta j})$"),
                   ], matrix=r"\frac{\partial L}{\partial X} = (S - Y)\, W", section="fcbatch"),
        *_class_tiles(),
        Derivation("reduction_mean", "Reductions and ignored samples: the gradient of a weighted mean",
                   (D.REAL_LOGITS,), [
                       Step(Derivative(Sum(D.rho[g] * sample_loss(g), (g, 1, D.B)) / Sum(D.rho[g], (g, 1, D.B)),
                                       D.Ab[D.beta, i]),
                            r"$L = \sum_\beta \rho_\beta L_\beta / \sum_\beta \rho_\beta$: $\rho_\beta = w_{c_\beta}$, 0 for an ignored sample"),
                       Step(D.rho[D.beta] * (sample_softmax(D.beta, i) - D.Yb[D.beta, i]) / Sum(D.rho[g], (g, 1, D.B)),
                            r"only $L_\beta$ depends on $a_\beta$; $\rho$ does not depend on $a$"),
                   ], matrix=r"\frac{\partial L}{\partial a_\beta} = \frac{\rho_\beta}{\sum_\gamma \rho_\gamma} (S_\beta - y_\beta)"
                   r"\ \text{(mean; sum: without the denominator)}",
                   section="options"),
    ]


def _tile_rest(shift):
    """sum_{j != c} e^{a_j - shift}: the classes other than the target, as pass 1 sums them."""
    return D.sum_except(lambda u: exp(a[u] - shift), c)


def _class_tiles() -> list[Derivation]:
    """linear_cross_entropy's tiles of classes: pass 1 keeps per-row statistics of each
    tile, pass 2 forms each tile's G from them. A tile is stated as a cut of the classes
    at a class index l (1..l and l+1..T) for every T and l; more tiles are the same cut
    applied again to the rest."""
    first, rest = (r, 1, l), (r, l + 1, T)
    g_col = lambda sample, cls: batch_softmax(sample, cls) - D.Yb[sample, cls]  # noqa: E731
    return [
        Derivation("lse_split_classes", "Log-sum-exp over tiles of classes: each tile with its own shift, combined",
                   (D.REAL_LOGITS,), [
                       Step(LSE, "definition"),
                       Step(log(Sum(exp(a[r]), first) + Sum(exp(a[r]), rest)),
                            r"cut the classes at $l$: a tile $1..l$ and the rest"),
                       Step(log(exp(m) * Sum(exp(a[r] - m), first) + exp(t) * Sum(exp(a[r] - t), rest)),
                            r"each part with its own shift, $m$ and $t$ (pass 1: the tile's largest logit)"),
                       Step(m + log(Sum(exp(a[r] - m), first) + exp(t - m) * Sum(exp(a[r] - t), rest)),
                            r"take out $e^m$: the other part's sum is rescaled once, by $e^{t - m}$"),
                   ], matrix=r"\log \textstyle\sum_j e^{a_j} = m + \log\big(\sum_{j \le l} e^{a_j - m} + "
                   r"e^{t - m} \sum_{j > l} e^{a_j - t}\big)", section="fcbatch"),
        Derivation("loss_split_true_class", "The loss from the tiles' statistics: the true class apart, any shift",
                   (D.REAL_LOGITS, D.ONE_HOT), [
                       Step(D.softmax_loss(), "definition"),
                       Step(LSE - a[c], r"one-hot label: $L = \log Z - a_c$"),
                       Step(m + log(Sum(exp(a[r] - m), (r, 1, T))) - a[c], r"the shift rule with $m$", lemma="lse_shift"),
                       Step((m - a[c]) + log(exp(a[c] - m) + _tile_rest(m)), r"split off the term $j = c$"),
                   ], matrix=r"L = (m - a_c) + \log\big(e^{a_c - m} + \textstyle\sum_{j \ne c} e^{a_j - m}\big)"
                   r"\ \text{(}m = a_c\text{: } \operatorname{log1p}\text{ of the sum, as in the stable loss)}",
                   section="fcbatch"),
        Derivation("true_class_complement_shifted", "The true-class gradient from the tiles' statistics",
                   (D.REAL_LOGITS,), [
                       Step(S(c) - 1, r"the true-class component of $S - y$"),
                       Step(-D.sum_except(lambda u: S(u), c), "the outputs sum to one"),
                       Step(-_tile_rest(m) / (exp(a[c] - m) + _tile_rest(m)),
                            r"$S_j = e^{a_j - m} / \sum_i e^{a_i - m}$; split off $i = c$ below"),
                   ], matrix=r"S_c - 1 = -\frac{\sum_{j \ne c} e^{a_j - m}}{e^{a_c - m} + \sum_{j \ne c} e^{a_j - m}}",
                   section="fcbatch"),
        Derivation("fc_grad_W_class_tile",
                   "A tile of classes: its rows of $\\partial L/\\partial W$ need its own logits and each sample's sum of exponentials",
                   (D.REAL_LOGITS,), [
                       Step(Sum(g_col(g, p) * D.X[g, q], (g, 1, D.B)),
                            r"$\partial L/\partial W_{pq}$ of the whole batch (the result above)"),
                       Step(Sum((exp(D.batch_logit(g, p) - m)
                                 / Sum(exp(D.batch_logit(g, r) - m), (r, 1, T)) - D.Yb[g, p]) * D.X[g, q], (g, 1, D.B)),
                            r"$S_{\beta p} = e^{a_{\beta p} - m} / \sum_j e^{a_{\beta j} - m}$ for any shift $m$: "
                            r"row $p$ needs the logits of class $p$ and each sample's sum (from pass 1), no other class"),
                   ], matrix=r"\frac{\partial L}{\partial W_{t}} = (S - Y)_{:, t}^\top X,\ "
                   r"S_{\beta j} = e^{a_{\beta j} - m} / \textstyle\sum_i e^{a_{\beta i} - m}", section="fcbatch"),
        Derivation("fc_batch_grad_x_tiles", "Tiles of classes: $\\partial L/\\partial X$ summed over the tiles",
                   (D.REAL_LOGITS,), [
                       Step(Sum(W[s, q] * g_col(D.beta, s), (s, 1, T)),
                            r"$\partial L/\partial X_{\beta q}$ of the whole batch (the result above)"),
                       Step(Sum(W[s, q] * g_col(D.beta, s), (s, 1, l)) + Sum(W[s, q] * g_col(D.beta, s), (s, l + 1, T)),
                            r"cut the classes at $l$: each tile adds its $(S - Y)_{:, t} W_t$"),
                   ], matrix=r"\frac{\partial L}{\partial X} = \sum_{\text{tiles } t} (S - Y)_{:, t}\, W_t",
                   section="fcbatch"),
    ]


def _binary() -> list[Derivation]:
    """Section: binary."""
    return [
        # ---------------------------------------------------------------- 10. binary
        Derivation("sigmoid_two_class", "The sigmoid is the two-class softmax of $(z, 0)$", (D.REAL_LOGITS,), [
            Step(D.softmax(1, D.two_class()).subs(T, 2), r"$S_1$ for $T = 2$, $a = (z, 0)$ ($e^0 = 1$)"),
            Step(D.sigmoid(), r"divide by $e^z$: $\sigma(z)$"),
        ], matrix=r"\sigma(z) = \operatorname{softmax}\big((z, 0)\big)_1", section="binary"),
        Derivation("bce_two_class_loss", "The binary loss is the two-class softmax loss", (D.REAL_LOGITS,), [
            Step(D.softmax_loss(lambda q_: sp.Piecewise((D.yb, sp.Eq(q_, 1)), (1 - D.yb, True)), D.two_class()).subs(T, 2),
                 r"$L$ with $T = 2$, $a = (z, 0)$, $y = (y_b, 1 - y_b)$"),
            Step(D.binary_cross_entropy(), r"$S_1 = \sigma(z)$, $S_2 = 1 - \sigma(z)$"),
            Step(D.yb * D.softplus(-D.z) + (1 - D.yb) * D.softplus(D.z),
                 r"$-\log \sigma(z) = \log(1 + e^{-z})$, $-\log(1 - \sigma(z)) = \log(1 + e^z)$"),
        ], matrix=r"L = y\, \operatorname{softplus}(-z) + (1 - y) \operatorname{softplus}(z)", section="binary"),
        Derivation("bce_pos_weight", "The binary loss with a positive-class weight", (D.REAL_LOGITS,), [
            Step(D.binary_cross_entropy(pw_=D.pw), r"PyTorch's definition with $p_w$"),
            Step(D.pw * D.yb * D.softplus(-D.z) + (1 - D.yb) * D.softplus(D.z), r"as above"),
        ], matrix=r"L = p_w y\, \operatorname{softplus}(-z) + (1 - y) \operatorname{softplus}(z)", section="binary"),
        Derivation("bce_gradient", "Gradient of the binary loss: $\\sigma(z) - y$", (D.REAL_LOGITS,), [
            Step(Derivative(D.binary_cross_entropy(), D.z), r"the derivative to find"),
            Step(-D.yb * exp(-D.z) / (1 + exp(-D.z)) + (1 - D.yb) * exp(D.z) / (1 + exp(D.z)),
                 r"$\partial \operatorname{softplus}(x)/\partial x = e^x/(1 + e^x)$"),
            Step(D.sigmoid() - D.yb, r"$e^z/(1 + e^z) = \sigma(z)$, $e^{-z}/(1 + e^{-z}) = 1 - \sigma(z)$"),
        ], matrix=r"\frac{\partial L}{\partial z} = \sigma(z) - y", section="binary"),
        Derivation("bce_pos_weight_gradient", "Gradient with a positive-class weight, without cancellation",
                   (D.REAL_LOGITS,), [
            Step(Derivative(D.binary_cross_entropy(pw_=D.pw), D.z), r"the derivative to find"),
            Step((1 - D.yb) * D.sigmoid() - D.pw * D.yb * D.sigmoid(-D.z),
                 r"$\sigma(z) - 1 = -\sigma(-z)$: each term computed without cancellation"),
        ], matrix=r"\frac{\partial L}{\partial z} = (1 - y)\,\sigma(z) - p_w y\, \sigma(-z)", section="binary"),
        Derivation("softplus_stable_positive", "Stable softplus of a positive argument", (D.REAL_LOGITS,), [
            Step(D.softplus(D.zp), r"$\operatorname{softplus}(\zeta)$, $\zeta > 0$"),
            Step(D.zp + log(1 + exp(-D.zp)), r"$1 + e^\zeta = e^\zeta (1 + e^{-\zeta})$"),
            Step(D.zp + log1p(exp(-D.zp)), r"$e^{-\zeta} < 1$: no overflow; log1p keeps a tiny tail"),
        ], matrix=r"\operatorname{softplus}(x) = \max(x, 0) + \operatorname{log1p}(e^{-|x|})", section="binary"),
        Derivation("softplus_stable_negative", "Stable softplus of a negative argument", (D.REAL_LOGITS,), [
            Step(D.softplus(-D.zp), r"$\operatorname{softplus}(-\zeta)$, $\zeta > 0$"),
            Step(log1p(exp(-D.zp)), r"$\log(1 + s) = \operatorname{log1p}(s)$: a loss far below $10^{-16}$ keeps its digits"),
        ], section="binary"),
    ]


def _examples() -> list[Derivation]:
    """Section: examples."""
    return [
        # ---------------------------------------------------------------- 8. examples
        _worked_softmax(),
        _worked_loss(["0.1", "0.15", "0.05", "0.6", "0.1"], "0.6"),
        _worked_loss(["0.15", "0.2", "0.4", "0.1", "0.15"], "0.1"),
        _worked_loss(["0.05", "0.15", "0.4", "0.3", "0.1"], "0.3"),
        Derivation("example_order", "Worked example: confidently wrong costs most", (), [
            Step(-log(Rational(6, 10), evaluate=False), r"$S_c = 0.6$: right, with some confidence"),
            Step(-log(Rational(3, 10), evaluate=False),
                 r"$S_c = 0.3 < 0.6$, and $-\log$ is decreasing: less probability on the true class costs more",
                 rel="<"),
            Step(-log(Rational(1, 10), evaluate=False),
                 r"$S_c = 0.1 < 0.3$: the true class is nearly ruled out, which costs most", rel="<"),
        ], matrix=r"-\log 0.6 < -\log 0.3 < -\log 0.1", section="examples"),
        # ---------------------------------------------------------------- 9. weighted log-sum-exp
        Derivation("lse_weighted_factor", r"Weighted log-sum-exp: factor out the largest exponential",
                   (D.REAL_LOGITS, D.K_IS_ARGMAX), [
                       Step(WZ, r"$\sum_j b_j e^{a_j}$ with weights $b_j$ of any sign"),
                       Step(exp(a[k]) * Sum(D.bw[r] * exp(a[r] - a[k]), (r, 1, T)),
                            r"$e^{a_j} = e^{a_k} e^{a_j - a_k}$"),
                       Step(exp(a[k]) * (D.bw[k] + weighted_rest()), r"split off the term $j = k$: $e^0 = 1$"),
                   ], matrix=r"\textstyle\sum_j b_j e^{a_j} = e^{m} \big(b_k + \sum_{j \ne k} b_j e^{a_j - m}\big)",
                   section="stable"),
        Derivation("lse_weighted_stable", r"Stable weighted log-sum-exp, $\log \lvert \sum_j b_j e^{a_j} \rvert$",
                   (D.REAL_LOGITS, D.K_IS_ARGMAX), [
                       Step(D.weighted_logsumexp(), "definition (SciPy's logsumexp with b=)"),
                       Step(log(sp.Abs(exp(a[k]) * (D.bw[k] + weighted_rest()))),
                            "factor out the largest exponential"),
                       Step(a[k] + log(sp.Abs(D.bw[k] + weighted_rest())),
                            r"$\lvert e^{m} s \rvert = e^{m} \lvert s \rvert$; $\log e^m = m$"),
                   ], matrix=r"\log \big\lvert \textstyle\sum_j b_j e^{a_j} \big\rvert = m + \log \big\lvert b_k + \sum_{j \ne k} b_j e^{a_j - m} \big\rvert",
                   section="stable"),
    ]


#: the sections of the catalogue, in report order
SECTIONS = (_probability, _jacobian, _losses, _gradient, _fc_layer, _stable_forms, _hessian, _options, _fc_batch, _binary, _examples)


def hand_written() -> list[Derivation]:
    """The hand-written derivations, in report order, lemma keys resolved."""
    return _cite_by_key([d for section in SECTIONS for d in section()])


def build() -> list[Derivation]:
    """All derivations of the catalogue, in report order (section by section), then the
    gradient results derived automatically (:mod:`derive.softmax.automatic`) and that
    each agrees with its hand-written chain."""
    cat = hand_written()
    cat += automatic.derivations({d.key: d for d in cat})
    keys = [d.key for d in cat]
    assert len(keys) == len(set(keys)), "duplicate derivation keys"
    return cat


def _cite_by_key(cat: list[Derivation]) -> list[Derivation]:
    """Resolve lemma citations written as keys to the (earlier) derivations they name."""
    earlier: dict[str, Derivation] = {}
    for d in cat:
        d.steps = [dataclasses.replace(step, lemma=earlier[step.lemma]) if isinstance(step.lemma, str)
                   else step for step in d.steps]
        earlier[d.key] = d
    return cat


def by_key() -> dict[str, Derivation]:
    return {d.key: d for d in build()}
