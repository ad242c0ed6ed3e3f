"""How the built-in content is written outside its formulas: what the kernels' arrays
are in index notation and how the reports abbreviate, both declared in the built-in's own notation,
:data:`definitions.NOTATION`, which its catalogue carries.

* the kernels' arrays: ``A`` the logits a_j, ``C`` the true class c, ``Y`` a
  probability label y_j, ``U`` per-class target weights u_j, ``BW`` the weights of a
  weighted log-sum-exp, ``ZB``/``YB``/``PW`` the binary loss's logit, target and
  positive-class weight; ``RowArgmax(A)`` is the index k of :data:`definitions.K_IS_ARGMAX`;
* the reports: a_u for the FC logit sum_n W_un x_n + b_u, Z for the partition
  function, S_u for e^{a_u}/Z (and Z_v, S_vu for a batch); summation indices over
  the batch named beta, gamma; reality of the logits goes without saying.
"""
from __future__ import annotations

import sympy as sp
from sympy import Sum

from ..functions import A, C, Y
from ..printing import extend_notation, product, walk
from . import definitions as D

# --------------------------------------------------------------------------- the kernels' arrays
U = sp.Symbol("U", real=True)  # per-class target weights u_j = w_j y'_j, rows x T
BW = sp.Symbol("BW", real=True)  # logsumexp weights b_j of any sign, rows x T
ZB = sp.Symbol("ZB", real=True)  # binary logits (any shape); Z is the partition function
YB = sp.Symbol("YB", real=True)  # binary targets in [0, 1]
PW = sp.Symbol("PW", positive=True)  # positive-class weights

D.NOTATION.define_arrays({A: D.a, Y: D.y, U: D.u, BW: D.bw, ZB: D.z, YB: D.yb, PW: D.pw, C: D.c}, argmax=D.k)

# --------------------------------------------------------------------------- the reports
Z = sp.Symbol("Z")
S = sp.IndexedBase("S")
Z_ROW = sp.IndexedBase("Z")  # Z_v, the partition function of sample v of a batch
_gamma = sp.Symbol("gamma", integer=True, positive=True)


def _fc_logit(e):
    """sum_n W_un x_n + b_u (or a batch row sum_n W_un X_vn + b_u) -> a_u (a_vu)."""
    if not isinstance(e, sp.Add) or len(e.args) != 2:
        return None
    bias = [t for t in e.args if isinstance(t, sp.Indexed) and t.base == D.b]
    if not bias:
        return None
    row = bias[0].indices[0]
    if e == D.fc_logit(row):
        return D.a[row]
    rows = [t.indices[0] for t in e.atoms(sp.Indexed) if t.base == D.X]
    if rows and e == D.batch_logit(rows[0], row):
        return D.a[rows[0], row]
    return None


def _batch_partition(e):
    """Sum_r e^{a_{v r}} -> Z_v."""
    if (isinstance(e, Sum) and isinstance(e.function, sp.exp)
            and isinstance(e.function.args[0], sp.Indexed) and e.function.args[0].base == D.a
            and len(e.function.args[0].indices) == 2 and e.function.args[0].indices[1] == e.limits[0][0]):
        return Z_ROW[e.function.args[0].indices[0]]
    return None


def _fold_batch_softmax(factors_of):
    """e^{a_{v u}} / Z_v -> S_{v u} in a product."""
    if not isinstance(factors_of, sp.Mul):
        return None
    factors = list(factors_of.args)
    for f in factors:
        if isinstance(f, sp.exp) and isinstance(f.args[0], sp.Indexed) and len(f.args[0].indices) == 2:
            row, col = f.args[0].indices
            if sp.Pow(Z_ROW[row], -1) in factors:
                factors.remove(f)
                factors.remove(sp.Pow(Z_ROW[row], -1))
                return product(factors + [S[row, col]])
    return None


def _abbreviate_softmax(factors_of):
    """In a product, e^{a_u} Z^{-1} -> S_u (once)."""
    if not isinstance(factors_of, sp.Mul):
        return None
    factors = list(factors_of.args)
    if sp.Pow(Z, -1) not in factors:
        return None
    for f in factors:
        if isinstance(f, sp.exp) and isinstance(f.args[0], sp.Indexed) and f.args[0].base == D.a:
            at = factors.index(f)
            factors[at] = S[f.args[0].indices[0]]
            factors.remove(sp.Pow(Z, -1))
            return product(factors)
    return None


def abbreviate(expr: sp.Expr) -> sp.Expr:
    """a_u for the FC logit, Z for the partition function (Z_v per sample of a batch),
    without evaluating."""
    partition = D.partition()
    batch = expr.has(D.X)
    expr = walk(expr, lambda e: _fc_logit(e) or (Z if e == partition else None))
    if batch:  # Z_beta
        expr = walk(expr, _batch_partition)
    return expr


def name_softmax(expr: sp.Expr) -> sp.Expr:
    """S_u for e^{a_u}/Z (S_vu for e^{a_vu}/Z_v in a batch, where :func:`abbreviate`
    wrote Z_v), without evaluating."""
    if expr.has(Z_ROW):
        expr = walk(expr, _fold_batch_softmax)
    return walk(expr, _abbreviate_softmax)


#: the formulas in the assumptions' texts, set as math (applied in order)
PHRASES = (("y_j >= 0 and sum_j y_j = 1", r"$y_j \ge 0$ and $\sum_j y_j = 1$"),
           ("p_j >= 0 and sum_j p_j = 1", r"$p_j \ge 0$ and $\sum_j p_j = 1$"),
           ("y_j = delta_jc", r"$y_j = \delta_{jc}$"), ("i != j", r"$i \ne j$"),
           ("q_j = S_j", r"$q_j = S_j$"),
           ("a_k = max_j a_j", r"$a_k = \max_j a_j$"),
           ("a_j > a_k, written a_j = a_k + delta with delta > 0",
            r"$a_j > a_k$, written $a_j = a_k + \delta$ with $\delta > 0$"),
           ("a_j, features x_n, weights W_pq and biases b_p",
            r"$a_j$, features $x_n$, weights $W_{pq}$ and biases $b_p$"),
           ("1..T", r"$1..T$"), ("1..N", r"$1..N$"), (" y is", " $y$ is"), (" p is", " $p$ is"),
           (" q is", " $q$ is"), (" c:", " $c$:"), ("(k is", "($k$ is"))

extend_notation(into=D.NOTATION, abbreviations=(abbreviate,), names=(name_softmax,),
                index_names={D.B: (D.beta, _gamma)}, kept_names=(D.beta,), delta_order=(D.beta, D.c, D.p, D.q),
                late_bases=(S, D.a), unstated=(D.REAL_LOGITS,), phrases=PHRASES)
