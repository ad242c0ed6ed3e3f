"""Focal loss: L = -(1 - S_c)^gamma log S_c with a symbolic gamma >= 0.

gamma = 0 gives back the softmax loss (an Assumption that carries its own rewrite and
sampler shows it). The gradient is derived, not typed: ``gradient`` with the softmax
content's rules gives, every produced step checked by ``prove``,

    dL/da_j = (1 - S_c)^gamma (gamma (delta_jc - S_j) S_c log S_c / (1 - S_c) + S_j - delta_jc),

a closed form for T >= 2 only (it divides by 1 - S_c, which is 0 when T = 1). The
gradient kernel is the array form of that derived result; the kernels compute 1 - S_c
without cancellation (the built-in true-class form). Run

    python -m derive all --catalogue examples/focal.py --out DIR
"""
from sympy import Derivative, log

from derive import Assumption, Catalogue, Claim, Kernel, Step, Verification, gradient, scalar
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D
from derive.softmax.kernels import NLL_INDEX, TRUE_CLASS, A, C, array_form
from derive.softmax.rules import RULES

a, c, j, T = D.a, D.c, D.j, D.T
gamma = scalar("gamma", lambda rng: rng.uniform(0.0, 4.0), nonnegative=True)
NO_FOCUS = Assumption("gamma = 0", rule=lambda e: e.subs(gamma, 0),
                      draw=lambda env: env.__setitem__(gamma, 0), latex=r"$\gamma = 0$")

S = D.softmax
LOSS = -(1 - S(c)) ** gamma * log(S(c))
HOT = (D.REAL_LOGITS, D.ONE_HOT)

CATALOGUE = Catalogue("focal", "Focal loss", uses=[SOFTMAX], intro=(
    "The focal loss $L = -(1 - S_c)^\\gamma \\log S_c$ with $\\gamma \\ge 0$: it down-weights "
    "well-classified examples. With $\\gamma = 0$ it is the softmax loss."))

CATALOGUE.derivation("focal_gamma_zero", r"With $\gamma = 0$ the focal loss is the softmax loss", [
    Step(LOSS, "definition"),
    Step(-log(S(c)), r"$(1 - S_c)^0 = 1$"),
    Step(D.softmax_loss(), "the softmax loss with a one-hot label", lemma="loss_one_hot"),
], HOT + (NO_FOCUS,), min_classes=2)

# derived, not typed. SymPy differentiates (1 - S_c)^gamma to gamma (1 - S_c)^gamma / (1 - S_c)
# times the derivative of 1 - S_c, so the closed form divides by 1 - S_c: at T = 1 the
# only class is the true one, S_c = 1, and the form is 0/0 (the loss is identically 0
# there). It is stated, and checked, for T >= 2, where 0 < S_c < 1 (min_classes=2).
GRADIENT = CATALOGUE.add(gradient(LOSS, a[j], (D.REAL_LOGITS,), RULES, key="focal_gradient",
                                  title=r"Gradient of the focal loss (automatic)", min_classes=2,
                                  check=False))
GRAD = GRADIENT.unfolded  # the closed form with S written out

# ---------------------------------------------------------------- the kernels
TOP = (D.REAL_LOGITS, D.ONE_HOT, D.K_IS_ARGMAX)
COMPLEMENT = -TRUE_CLASS  # 1 - S_c, without cancellation when S_c ~ 1
LOSS_CLAIM = Claim("kernel_focal", r"Kernel focal $= L$", TOP, LOSS, "definition",
                   ("true_class_complement_stable", "true_class_complement", "softmax_stable",
                    "loss_stable"),
                   via=(Step(-(1 - S(c)) ** gamma * log(S(c)), "definition"),), min_classes=2)
GRAD_CLAIM = Claim("kernel_focal_grad", r"Kernel focal\_grad $= \partial L/\partial a_j$",
                   TOP + GRADIENT.definitions,
                   Derivative(LOSS, a[j]), "the derivative",
                   ("true_class_complement_stable", "true_class_complement", "softmax_stable",
                    "loss_stable"),
                   via=(Step(GRAD, "the gradient, derived above", lemma="focal_gradient"),), min_classes=2)
LOSS_KERNEL = CATALOGUE.kernel(Kernel("focal", (A, C, gamma), (COMPLEMENT ** gamma * NLL_INDEX,),
                                      "L = (1 - S_c)^gamma (-log S_c), 1 - S_c without cancellation.",
                                      (LOSS_CLAIM,)))
GRAD_KERNEL = CATALOGUE.kernel(Kernel(
    "focal_grad", (A, C, gamma), (array_form(GRADIENT.result),),  # the derived form, stable
    "dL/da_j = (1 - S_c)^gamma (gamma (delta_jc - S_j) S_c log S_c / (1 - S_c) + S_j - delta_jc).",
    (GRAD_CLAIM,)))

# ---------------------------------------------------------------- verification
# Every catalogue's verification runs the adversarial suites (spread logits, a dominating
# class, tiny losses, logits near +-708, ties, a large T) and gamma over its declared
# range [0, 4]. Computing 1 - S_c by subtraction instead loses every digit of it when
# S_c ~ 1 (tests/test_examples.py shows it failing). The power (1 - S_c)^gamma multiplies
# the relative rounding error of 1 - S_c (up to ~2 ULP) by gamma, so the bound is 8 ULP,
# not 4: measured 7.5 for the loss and the gradient on 10 classes with gamma near 4. The
# stable form through log S_c (e^{gamma log1p(-S_c)}) would bring it back to 4.
LOSS_CHECK = CATALOGUE.verification(Verification("focal", LOSS_KERNEL, LOSS, T, bound=8,
                                                 assumptions=(D.ONE_HOT,), ranges={gamma: (0.0, 4.0)}))
CATALOGUE.verification(Verification("focal_grad", GRAD_KERNEL, GRAD, T, index=j, bound=8,
                                    gradient_of=LOSS_CHECK, assumptions=(D.ONE_HOT,),
                                    ranges={gamma: (0.0, 4.0)}))
