"""Focal loss: L = -(1 - S_c)^gamma log S_c with a symbolic gamma >= 0.

One declaration (:class:`derive.loss.Loss`): the gradient is derived (a closed form for
T >= 2 only: SymPy's derivative of (1 - S_c)^gamma divides by 1 - S_c, which is 0 when
T = 1), the kernels of the loss and of the gradient are derived into stable forms
(1 - S_c through the other classes' sum, S_j - delta_jc factored out) and proved, and
both are verified over gamma in [0, 2], the range the focal loss is used with (2 is the
usual choice). The bound is 4 ULP there; a power multiplies the relative rounding of
its base, so a larger declared range is reported by the verification, not relaxed:
(1 - S_c)^gamma with gamma up to 8 measures 4.96 ULP and `python -m derive loss` exits 3
(tests/test_loss.py). gamma = 0 gives back the softmax loss (an Assumption that carries
its own rewrite and sampler shows it). Run

    python -m derive all --catalogue examples/focal.py --out DIR
"""
from sympy import log

from derive import Assumption, Catalogue, Step, scalar
from derive.loss import Loss
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D

gamma = scalar("gamma", lambda rng: rng.uniform(0.0, 2.0), nonnegative=True)
S = D.softmax

LOSS = Loss("focal", -(1 - S(D.c)) ** gamma * log(S(D.c)), params={gamma: (0.0, 2.0)}, labels="onehot",
            min_classes=2)

CATALOGUE = Catalogue("focal", "Focal loss", uses=[SOFTMAX], intro=(
    "The focal loss $L = -(1 - S_c)^\\gamma \\log S_c$ with $\\gamma \\ge 0$: it down-weights "
    "well-classified examples. With $\\gamma = 0$ it is the softmax loss."))

NO_FOCUS = Assumption("gamma = 0", rule=lambda e: e.subs(gamma, 0),
                      draw=lambda env: env.__setitem__(gamma, 0), latex=r"$\gamma = 0$")
CATALOGUE.derivation("focal_gamma_zero", r"With $\gamma = 0$ the focal loss is the softmax loss", [
    Step(LOSS.expr, "definition"),
    Step(-log(S(D.c)), r"$(1 - S_c)^0 = 1$"),
    Step(D.softmax_loss(), "the softmax loss with a one-hot label", lemma="loss_one_hot"),
], (D.REAL_LOGITS, D.ONE_HOT, NO_FOCUS), min_classes=2)
LOSS.register(CATALOGUE)
