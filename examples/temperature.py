"""Temperature-scaled softmax loss (knowledge distillation): L = -log softmax(a/tau)_c.

One declaration (:class:`derive.loss.Loss`): the gradient (S(a/tau) - y)/tau is derived,
the kernels of the loss and of the gradient are derived into stable forms by the rules
of :mod:`derive.stable` -- the softmax of a/tau through its own row maximum, with
(a_j - m)/tau carried as a double-double (the quotient's remainder kept, so exp does
not amplify the division's rounding) -- and each is proved against the definition and
verified within 4 ULP over tau in [1/4, 4], logits near +-1000 and tiny losses. Run

    python -m derive all --catalogue examples/temperature.py --out DIR
"""
from sympy import log

from derive import Catalogue, scalar
from derive.loss import Loss
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D

tau = scalar("tau", lambda rng: rng.uniform(0.25, 4.0), positive=True)

LOSS = Loss("temperature_nll", -log(D.softmax(D.c, lambda u: D.a[u] / tau)), params={tau: (0.25, 4.0)},
            labels="onehot")

CATALOGUE = Catalogue("temperature", "Temperature-scaled softmax loss", uses=[SOFTMAX], intro=(
    "The distillation loss $L = -\\log \\operatorname{softmax}(a/\\tau)_c$ with temperature "
    "$\\tau > 0$: its gradient, stable kernels and their verification, from one declaration."))
LOSS.register(CATALOGUE)
