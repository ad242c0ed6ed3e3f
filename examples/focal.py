"""Focal loss: L = -(1 - S_c)^gamma log S_c with a symbolic gamma >= 0.

gamma = 0 gives back the softmax loss (an Assumption that carries its own rewrite and
sampler shows it). The gradient, from the derivative of the focal weight (cited by key),
dL/da_j = (delta_jc - S_j) (gamma (1 - S_c)^(gamma - 1) S_c log S_c - (1 - S_c)^gamma).
The kernels compute 1 - S_c without cancellation (the built-in true-class form). Run

    python -m derive all --catalogue examples/focal.py --out DIR
"""
from sympy import Derivative, KroneckerDelta, log

from derive import Assumption, Catalogue, Claim, Kernel, Step, Verification, scalar
from derive.functions import Take
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D
from derive.softmax.kernels import GRAD_INDEX, NLL_INDEX, TRUE_CLASS, A, C
from derive.softmax.kernels import SOFTMAX as S_ARRAY

a, c, j, T = D.a, D.c, D.j, D.T
gamma = scalar("gamma", lambda rng: rng.uniform(0.0, 4.0), nonnegative=True)
NO_FOCUS = Assumption("gamma = 0", rule=lambda e: e.subs(gamma, 0),
                      draw=lambda env: env.__setitem__(gamma, 0), latex=r"$\gamma = 0$")

S = D.softmax
LOSS = -(1 - S(c)) ** gamma * log(S(c))
FACTOR = gamma * (1 - S(c)) ** (gamma - 1) * S(c) * log(S(c)) - (1 - S(c)) ** gamma
GRAD = (KroneckerDelta(j, c) - S(j)) * FACTOR
HOT = (D.REAL_LOGITS, D.ONE_HOT)

CATALOGUE = Catalogue("focal", "Focal loss", uses=[SOFTMAX], intro=(
    "The focal loss $L = -(1 - S_c)^\\gamma \\log S_c$ with $\\gamma \\ge 0$: it down-weights "
    "well-classified examples. With $\\gamma = 0$ it is the softmax loss."))

CATALOGUE.derivation("focal_gamma_zero", r"With $\gamma = 0$ the focal loss is the softmax loss", [
    Step(LOSS, "definition"),
    Step(-log(S(c)), r"$(1 - S_c)^0 = 1$"),
    Step(D.softmax_loss(), "the softmax loss with a one-hot label", lemma="loss_one_hot"),
], HOT + (NO_FOCUS,), min_classes=2)

CATALOGUE.derivation("focal_weight_derivative", r"The derivative of the focal weight $(1 - S_c)^\gamma$", [
    Step(Derivative((1 - S(c)) ** gamma, a[j]), "the derivative to find"),
    Step(-gamma * (1 - S(c)) ** (gamma - 1) * S(c) * (KroneckerDelta(j, c) - S(j)),
         r"chain rule and the softmax Jacobian $\partial S_c/\partial a_j = S_c (\delta_{jc} - S_j)$"),
], (D.REAL_LOGITS,), min_classes=2)

CATALOGUE.derivation("focal_gradient", r"Gradient of the focal loss", [
    Step(Derivative(LOSS, a[j]), "the derivative to find"),
    Step(-Derivative((1 - S(c)) ** gamma, a[j]) * log(S(c))
         - (1 - S(c)) ** gamma * Derivative(log(S(c)), a[j]), "product rule"),
    Step(-Derivative((1 - S(c)) ** gamma, a[j]) * log(S(c))
         - (1 - S(c)) ** gamma * (KroneckerDelta(j, c) - S(j)),
         r"$\partial \log S_c/\partial a_j = \delta_{jc} - S_j$"),
    Step(gamma * (1 - S(c)) ** (gamma - 1) * S(c) * (KroneckerDelta(j, c) - S(j)) * log(S(c))
         - (1 - S(c)) ** gamma * (KroneckerDelta(j, c) - S(j)),
         "the derivative of the focal weight", lemma="focal_weight_derivative"),
    Step(GRAD, r"factor out $\delta_{jc} - S_j$"),
], (D.REAL_LOGITS,), min_classes=2)

# ---------------------------------------------------------------- the kernels
TOP = (D.REAL_LOGITS, D.ONE_HOT, D.K_IS_ARGMAX)
COMPLEMENT = -TRUE_CLASS  # 1 - S_c, without cancellation when S_c ~ 1
S_C = Take(S_ARRAY, C)
LOSS_CLAIM = Claim("kernel_focal", r"Kernel focal $= L$", TOP, LOSS, "definition",
                   ("true_class_complement_stable", "true_class_complement", "softmax_stable",
                    "loss_stable"),
                   via=(Step(-(1 - S(c)) ** gamma * log(S(c)), "definition"),), min_classes=2)
GRAD_CLAIM = Claim("kernel_focal_grad", r"Kernel focal\_grad $= \partial L/\partial a_j$", TOP,
                   Derivative(LOSS, a[j]), "the derivative",
                   ("true_class_complement_stable", "true_class_complement", "softmax_stable",
                    "loss_stable"),
                   via=(Step(GRAD, "the gradient, proved above", lemma="focal_gradient"),), min_classes=2)
LOSS_KERNEL = CATALOGUE.kernel(Kernel("focal", (A, C, gamma), (COMPLEMENT ** gamma * NLL_INDEX,),
                                      "L = (1 - S_c)^gamma (-log S_c), 1 - S_c without cancellation.",
                                      (LOSS_CLAIM,)))
GRAD_KERNEL = CATALOGUE.kernel(Kernel(
    "focal_grad", (A, C, gamma),
    (-GRAD_INDEX * (-gamma * COMPLEMENT ** (gamma - 1) * S_C * NLL_INDEX - COMPLEMENT ** gamma),),
    "dL/da_j = (delta_jc - S_j) (gamma (1 - S_c)^(gamma-1) S_c log S_c - (1 - S_c)^gamma).",
    (GRAD_CLAIM,)))

# ---------------------------------------------------------------- verification
# Both within 4 ULP of their definitions at 50 digits (measured on the default suite:
# 2.2 ULP for the loss, 3.0 for the gradient); computing 1 - S_c by subtraction instead
# loses every digit of it when S_c ~ 1 (tests/test_examples.py shows it failing).
LOSS_CHECK = CATALOGUE.verification(Verification("focal", LOSS_KERNEL, LOSS, T, bound=4,
                                                 assumptions=(D.ONE_HOT,)))
CATALOGUE.verification(Verification("focal_grad", GRAD_KERNEL, GRAD, T, index=j, bound=4,
                                    gradient_of=LOSS_CHECK, assumptions=(D.ONE_HOT,)))
