"""Temperature-scaled softmax loss (knowledge distillation): L = -log softmax(a/tau)_c.

Its gradient (S(a/tau) - y)/tau is derived, not typed: ``gradient`` differentiates the
loss and closes the form in S = softmax(a/tau) by named rules, every step checked by
``prove``, and the gradient kernel is the array form of that derived result (the
built-in stable forms of the shifted, then scaled logits (a_j - m)/tau). One file: the symbol tau with its
sampler, the derivations, the kernels and their verification. Run every stage with

    python -m derive all --catalogue examples/temperature.py --out DIR
"""
import sympy as sp
from sympy import Derivative, exp, log
from sympy.codegen.cfunctions import log1p

from derive import DEFAULT_INPUTS, Catalogue, Claim, Inputs, Kernel, Step, Verification, gradient, scalar
from derive.functions import DiffHi, Quotient, RowArgmax, Take
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D
from derive.softmax.kernels import NLL_INDEX, A, C, array_form
from derive.softmax.rules import rule_set, softmax_of

a, c, j, k, T = D.a, D.c, D.j, D.k, D.T
tau = scalar("tau", lambda rng: rng.uniform(0.25, 4.0), positive=True)


def scaled(idx):
    """The scaled logits a/tau."""
    return a[idx] / tau


S = lambda idx: D.softmax(idx, scaled)  # noqa: E731 - S_j(a/tau), read like the math
LSE = D.logsumexp(scaled)
LOSS = -log(S(c))
HOT = (D.ONE_HOT,)
#: the rules that close a gradient in S = softmax(a/tau)
RULES = rule_set(softmax_of(scaled, "softmax_tau", r"definition of $S_j = e^{a_j/\tau} / \sum_k e^{a_k/\tau}$"))

CATALOGUE = Catalogue("temperature", "Temperature-scaled softmax loss", uses=[SOFTMAX], intro=(
    "The distillation loss $L = -\\log \\operatorname{softmax}(a/\\tau)_c$ with temperature "
    "$\\tau > 0$, its gradient $(S(a/\\tau) - y)/\\tau$, and a generated kernel for both."))

CATALOGUE.derivation("temperature_loss", r"The loss: $L = \log \sum_j e^{a_j/\tau} - a_c/\tau$", [
    Step(LOSS, r"definition: the softmax loss of $a/\tau$ with a one-hot label"),
    Step(LSE - a[c] / tau, r"$\log(e^{a_c/\tau}/Z) = a_c/\tau - \log Z$"),
], HOT)

# derived, not typed: (S_j - delta_jc)/tau, each produced step checked by `prove`
GRADIENT = CATALOGUE.add(gradient(
    LOSS, a[j], (D.REAL_LOGITS,), RULES, key="temperature_gradient", check=False,
    title=r"Gradient: $\partial L/\partial a_j = (S_j(a/\tau) - \delta_{jc})/\tau$ (automatic)"))
GRAD = GRADIENT.unfolded  # the closed form with S_j(a/tau) written out

CATALOGUE.derivation("temperature_gradient_sums_to_zero", r"The gradient sums to zero", [
    Step(D.Sum(GRAD.subs(j, D.n), (D.n, 1, T)), r"sum over $j$"),
    Step(0 * tau, r"$\sum_j S_j = 1$ and $\sum_j \delta_{jc} = 1$"),
], HOT)

# ---------------------------------------------------------------- the kernels
TOP = (D.ONE_HOT, D.K_IS_ARGMAX)
REST = D.sum_except(lambda u: exp(scaled(u) - scaled(k)), k)  # sum_{j != k} e^{(a_j - a_k)/tau}
LOSS_CLAIM = Claim("kernel_temperature_loss", r"Kernel temperature\_nll $= L$", TOP, LOSS,
                   "definition", ("temperature_loss",),
                   via=(Step((a[k] - a[c]) / tau + log1p(REST), r"shift by $a_k/\tau$, split off its term"),))
GRAD_CLAIM = Claim("kernel_temperature_grad", r"Kernel temperature\_grad $= \partial L/\partial a_j$",
                   TOP + GRADIENT.definitions,
                   Derivative(LOSS, a[j]), "the derivative", ("temperature_gradient",),
                   via=(Step(GRAD, "the gradient, derived above", lemma="temperature_gradient"),))
K = RowArgmax(A)  # the argmax of a is that of a/tau (tau > 0)
SCALED = Quotient(DiffHi(A, Take(A, K)), tau)  # (a_j - m)/tau: the difference first
NLL_TAU = NLL_INDEX.xreplace({A: SCALED}).xreplace({RowArgmax(SCALED): K})
GRAD_TAU = array_form(GRADIENT.result, logits=SCALED).xreplace({RowArgmax(SCALED): K})
GRAD_TAU = Quotient(*sp.fraction(GRAD_TAU))
LOSS_KERNEL = CATALOGUE.kernel(Kernel("temperature_nll", (A, C, tau), (NLL_TAU,),
                                      "L = (m - a_c)/tau + log1p(s') with m, s' of a/tau.", (LOSS_CLAIM,)))
GRAD_KERNEL = CATALOGUE.kernel(Kernel("temperature_grad", (A, C, tau), (GRAD_TAU,),
                                      "dL/da_j = (S_j(a/tau) - delta_jc)/tau.", (GRAD_CLAIM,)))

# ---------------------------------------------------------------- verification
# Both kernels shift before they scale: the exponent is fl(fl(a_j - m)/tau), whose
# rounding error is at most |a_j - m|/tau ULP-halves of 1 whatever the offset of the
# logits (scaling first, fl(a_j/tau) - fl(m/tau), it is (|a_j| + |m|)/tau: thousands of
# ULPs for logits near 1000 -- tests/test_examples.py shows that form failing the bound
# on OFFSET). exp turns it into a relative error as large, so on the adversarial suites
# every catalogue runs the gradient loses up to 473 ULP (logits spread over +-1000,
# (a_j - m)/tau in the thousands) and the loss 50 ULP (losses far below 1e-16, whose
# digits come from the same exponentials). The bounds, 128 and 1024 ULP, are those
# measurements with margin, not proved bounds; on moderate logits both stay within 4.
# Tightening it needs the division's remainder carried into the exponent (a double-double
# (a_j - m)/tau, as ExpDiff carries a_j - m) -- a NumPy helper of the user's that the code
# generator does not copy into the generated module yet.
OFFSET = DEFAULT_INPUTS + (Inputs("offset logits near 1000", lambda rng: 1000 + rng.normal(0, 2, (12, 6))),)
LOSS_CHECK = CATALOGUE.verification(Verification("temperature_nll", LOSS_KERNEL, LOSS, T, bound=128,
                                                 inputs=OFFSET, ranges={tau: (0.25, 4.0)}))
CATALOGUE.verification(Verification("temperature_grad", GRAD_KERNEL, GRAD, T, index=j, bound=1024,
                                    gradient_of=LOSS_CHECK, inputs=OFFSET, ranges={tau: (0.25, 4.0)}))
