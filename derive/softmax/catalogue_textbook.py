"""The textbook results of the catalogue: softmax is a probability vector, its Jacobian,
the losses, the gradient S - y, the FC layer, the Hessian, and the worked examples.

Each is built only from the formulas in :mod:`derive.softmax.definitions`;
:mod:`derive.softmax.catalogue` puts the sections in report order.
"""
from __future__ import annotations

import math

import sympy as sp
from sympy import Derivative, KroneckerDelta, Rational, Sum, exp, log

from ..engine import Derivation, Step
from . import definitions as D
from .definitions import T, W, a, b, c, delta, i, j, k, l, p, q, r, s, t, v, x, y

S = D.softmax
Z = D.partition()
LSE = D.logsumexp()


WZ = D.weighted_partition()


def weighted_rest(top=k):
    """sum_{j != top} b_j e^{a_j - a_top}: the tail of the weighted partition function."""
    return D.sum_except(lambda u: D.bw[u] * exp(a[u] - a[top]), top)


def fc(u):
    return D.fc_logit(u)


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


def probability_section() -> list[Derivation]:
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


def jacobian_section() -> list[Derivation]:
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


def losses_section() -> list[Derivation]:
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


def gradient_section() -> list[Derivation]:
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


def fc_layer_section() -> list[Derivation]:
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


def hessian_section() -> list[Derivation]:
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


def examples_section() -> list[Derivation]:
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
