"""The z-loss of large-model training: L_z = L + lambda (log Z)^2, Z = sum_j e^{a_j}.

One declaration (:class:`derive.loss.Loss`): the gradient S - y + 2 lambda (log Z) S is
derived, the kernels of the loss and of the gradient are derived into stable forms
(log Z = m + log1p(s'), S_j - delta_jc without cancellation at the true class) and
proved, and both are verified over lambda in [1e-4, 0.5]. Where S_j - delta_jc +
2 lambda (log Z) S_j cancels (log Z < 0) the error is measured in ULPs of the terms'
magnitudes, as the report states. Run

    python -m derive all --catalogue examples/zloss.py --out DIR
"""
from sympy import log

from derive import Catalogue, scalar
from derive.loss import Loss
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D

# SymPy spells lambda "lamda" (lambda is a Python keyword) and prints it as a lambda
lam = scalar("lamda", lambda rng: rng.uniform(1e-4, 0.5), positive=True)

LOSS = Loss("zloss", -log(D.softmax(D.c)) + lam * D.logsumexp() ** 2, params={lam: (1e-4, 0.5)},
            labels="onehot")

CATALOGUE = Catalogue("zloss", "The z-loss: softmax loss plus lambda (log Z)^2", uses=[SOFTMAX], intro=(
    "The auxiliary z-loss $L + \\lambda (\\log \\sum_j e^{a_j})^2$ with a one-hot label: its "
    "gradient, stable kernels and their verification, from one declaration."))
LOSS.register(CATALOGUE)
