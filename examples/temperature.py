"""Temperature-scaled softmax loss (knowledge distillation): L = -log softmax(a/tau)_c.

Its gradient is (S(a/tau) - y)/tau. One file: the symbol tau with its sampler, the
derivations, the kernels (the built-in stable forms with A replaced by A/tau) and their
verification. Run every stage with

    python -m derive all --catalogue examples/temperature.py --out DIR
"""
from sympy import Derivative, KroneckerDelta, exp, log
from sympy.codegen.cfunctions import log1p

from derive import Catalogue, Claim, Kernel, Step, Verification, scalar
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D
from derive.softmax.kernels import GRAD_INDEX, NLL_INDEX, A, C

a, c, j, k, T = D.a, D.c, D.j, D.k, D.T
tau = scalar("tau", lambda rng: rng.uniform(0.25, 4.0), positive=True)


def scaled(idx):
    """The scaled logits a/tau."""
    return a[idx] / tau


S = lambda idx: D.softmax(idx, scaled)  # noqa: E731 - S_j(a/tau), read like the math
LSE = D.logsumexp(scaled)
LOSS = -log(S(c))
GRAD = (S(j) - KroneckerDelta(j, c)) / tau
HOT = (D.ONE_HOT,)

CATALOGUE = Catalogue("temperature", "Temperature-scaled softmax loss", uses=[SOFTMAX], intro=(
    "The distillation loss $L = -\\log \\operatorname{softmax}(a/\\tau)_c$ with temperature "
    "$\\tau > 0$, its gradient $(S(a/\\tau) - y)/\\tau$, and a generated kernel for both."))

CATALOGUE.derivation("temperature_loss", r"The loss: $L = \log \sum_j e^{a_j/\tau} - a_c/\tau$", [
    Step(LOSS, r"definition: the softmax loss of $a/\tau$ with a one-hot label"),
    Step(LSE - a[c] / tau, r"$\log(e^{a_c/\tau}/Z) = a_c/\tau - \log Z$"),
], HOT)

CATALOGUE.derivation("temperature_gradient",
                     r"Gradient: $\partial L/\partial a_j = (S_j(a/\tau) - \delta_{jc})/\tau$", [
    Step(Derivative(LOSS, a[j]), "the derivative to find"),
    Step(Derivative(LSE - a[c] / tau, a[j]), "the previous result", lemma="temperature_loss"),
    Step(GRAD, r"chain rule: $\partial (a_s/\tau)/\partial a_j = \delta_{sj}/\tau$"),
], HOT)

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
GRAD_CLAIM = Claim("kernel_temperature_grad", r"Kernel temperature\_grad $= \partial L/\partial a_j$", TOP,
                   Derivative(LOSS, a[j]), "the derivative", ("temperature_gradient",),
                   via=(Step(GRAD, "the gradient, proved above", lemma="temperature_gradient"),))
NLL_TAU = NLL_INDEX.xreplace({A: A / tau})
GRAD_TAU = GRAD_INDEX.xreplace({A: A / tau}) / tau
LOSS_KERNEL = CATALOGUE.kernel(Kernel("temperature_nll", (A, C, tau), (NLL_TAU,),
                                      "L = (m - a_c)/tau + log1p(s') with m, s' of a/tau.", (LOSS_CLAIM,)))
GRAD_KERNEL = CATALOGUE.kernel(Kernel("temperature_grad", (A, C, tau), (GRAD_TAU,),
                                      "dL/da_j = (S_j(a/tau) - delta_jc)/tau.", (GRAD_CLAIM,)))

# ---------------------------------------------------------------- verification
# The loss within 4 ULP. The gradient within 64 ULP: the kernel rounds a_j/tau once
# (half an ULP of it) before e^{a_j/tau - m/tau}, and exp turns that absolute error
# into a relative one |a_j - m|/tau times as large -- up to about 100 ULP-halves on this
# suite (logits spread over 80 with tau down to 1/4); any float64 code that scales
# before exp shares it. Measured: 2.1 ULP (loss), 24.8 ULP (gradient).
LOSS_CHECK = CATALOGUE.verification(Verification("temperature_nll", LOSS_KERNEL, LOSS, T, bound=4))
CATALOGUE.verification(Verification("temperature_grad", GRAD_KERNEL, GRAD, T, index=j, bound=64,
                                    gradient_of=LOSS_CHECK))
