"""The catalogue's results behind the generated code: the stable forms, PyTorch's options
(class weights, label smoothing), batches and class tiles, and the binary loss.

Each is built only from the formulas in :mod:`derive.softmax.definitions`;
:mod:`derive.softmax.catalogue` puts the sections in report order.
"""
from __future__ import annotations

import sympy as sp
from sympy import Derivative, KroneckerDelta, Sum, exp, log
from sympy.codegen.cfunctions import log1p

from ..engine import Derivation, Step
from . import definitions as D
from .catalogue_textbook import LSE, S
from .definitions import T, W, a, b, c, i, j, k, l, m, p, q, r, s, t, y


def shifted_rest(top=k, shift=None):
    """sum_{j != top} e^{a_j - shift}: the tail of the partition function."""
    shift = a[top] if shift is None else shift
    return D.sum_except(lambda u: exp(a[u] - shift), top)


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


def stable_forms_section() -> list[Derivation]:
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


def options_section() -> list[Derivation]:
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


def fc_batch_section() -> list[Derivation]:
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


def binary_section() -> list[Derivation]:
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
