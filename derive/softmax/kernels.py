"""The built-in kernels: the array-level stable forms, their claims and the kernels of
``numeric/_kernels.py`` (content, written against :mod:`derive.codegen`).

Each name below is an array expression over :mod:`derive.functions` (``A`` the logits,
``C`` the integer targets, ``Y`` probability targets); a user's kernel builds on them,
e.g. the temperature-scaled loss ``NLL_INDEX.xreplace({A: A / tau})``.
``python -m derive generate`` writes the module; ``--check`` compares instead and fails
when the committed file is stale.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import sympy as sp
from sympy import Derivative, KroneckerDelta
from sympy.codegen.cfunctions import log1p

from .. import codegen, engine
from ..codegen import Claim, Kernel
from ..engine import Derivation, Step
from ..functions import (
    A,
    AccurateRowSum,
    AccurateSumExcept,
    C,
    DiffHi,
    ExpDiff,
    LogAbsSum,
    PutAt,
    Quotient,
    RowArgmax,
    RowSum,
    SelectArgmax,
    Sigmoid,
    SignSum,
    Softplus,
    SumExcept,
    SumExceptMax,
    Take,
    Y,
    ZeroTimes,
)
from . import catalogue
from . import definitions as D
from .notation import BW, PW, YB, ZB, U

ROOT = Path(__file__).resolve().parent.parent.parent
TARGET = ROOT / "numeric" / "_kernels.py"
COMMAND = "python -m derive generate"

# --------------------------------------------------------------------------- the kernels
K = RowArgmax(A)  # k, the first index of the row maximum
M = Take(A, K)  # m = a_k
E = ExpDiff(A, M)  # e_j = e^{a_j - m}
TAIL = SumExceptMax(E, K)  # s' = sum_{j != k} e^{a_j - m}
L1P = log1p(TAIL)  # log1p(s')
SOFTMAX = Quotient(E, 1 + TAIL)
# m - a_j needs no error term here: |m - a_j| <= |result|, so its rounding costs at
# most half an ULP of the result (it is exp that amplifies that error, not addition)
NEG_LOG_SOFTMAX = L1P - DiffHi(A, M)  # -log S_j = (m - a_j) + log1p(s')
A_C = Take(A, C)
NLL_INDEX = DiffHi(M, A_C) + L1P
TRUE_CLASS = SelectArgmax(C, K, -Quotient(TAIL, 1 + TAIL), Take(SOFTMAX, C) - 1)
GRAD_INDEX = PutAt(SOFTMAX, C, TRUE_CLASS)
# L = log1p(s') sum_j y_j + sum_j y_j (m - a_j), the second sum halved inside so that
# m - a_j cannot overflow where y_j (m - a_j) does not (logits near +-1e308); halving
# and doubling are exact, and log1p(s') is never halved (it may be subnormal)
HALF = sp.Rational(1, 2)
NLL_SOFT = L1P * RowSum(Y) + 2 * RowSum(ZeroTimes(Y, DiffHi(HALF * M, HALF * A)))
GRAD_SOFT = SOFTMAX - Y
# class weights and label smoothing: any non-negative u (rows need not sum to 1)
NLL_WEIGHTED = NLL_SOFT.xreplace({Y: U})
GRAD_WEIGHTED = SOFTMAX * RowSum(U) - U
# the same with sum_j u_j accurate (to about one rounding), and S_j sum u formed as
# e_j (sum u / (1 + s')): one rounding fewer on the way to the gradient. Issue 11: the
# plain forms reached 5.6 ULP (gradient) and 3.0 ULP (loss) on near ties; the second
# sum of the loss (of non-negative terms, no product follows) stays a plain one
SUM_U = AccurateRowSum(U)
NLL_U = L1P * SUM_U + 2 * RowSum(ZeroTimes(U, DiffHi(HALF * M, HALF * A)))
GRAD_U = E * Quotient(SUM_U, 1 + TAIL) - U
# SciPy's logsumexp(a, b=b) with weights of any sign: log|b_k + sum_{j != k} b_j e^{a_j - m}| + m
# and the sign of that sum (entries with b_j = 0 reach the kernel as a_j = -inf)
BW_K = Take(BW, K)
TAIL_BW = AccurateSumExcept(BW * E, K)
LSE_B = M + LogAbsSum(BW_K, TAIL_BW)
LSE_B_SIGN = SignSum(BW_K, TAIL_BW)
# The moderate forms (every logit in [-708, 600], codegen.MODERATE: e^{a_j}, e^{-m}, the
# sum of the e^{a_j} and e^{-m} / (1 + s') are all normal and finite): e^{a_j - m} is
# e^{a_j} e^{-m}, and the factor e^{-m} goes into the row-level values instead of
# every term, s' = e^{-m} sum_{j != k} e^{a_j} and S_j = e^{a_j} (e^{-m} / (1 + s')):
# one exp pass and one multiplication by a column, where the general forms take
# the exp, a product and a quotient over the whole array. Each rounding of the
# general moderate form has its counterpart (two exps, one product, one quotient)
EXP_A = sp.exp(A)  # e^{a_j}
EXP_NEG_M = sp.exp(-M)  # e^{-m}
TAIL_M = EXP_NEG_M * SumExcept(EXP_A, K)  # s'
L1P_M = log1p(TAIL_M)
# S_k itself is put as 1 / (1 + s'), as the general form computes it (e_k = 1 exactly):
# e^{m} (e^{-m} / (1 + s')) rounds three times and gave 1 + 2^-52 for a single class
SOFTMAX_FOLDED = EXP_A * Quotient(EXP_NEG_M, 1 + TAIL_M)
SOFTMAX_M = PutAt(SOFTMAX_FOLDED, K, Quotient(1, 1 + TAIL_M))
NLL_INDEX_M = DiffHi(M, A_C) + L1P_M
# (the gradient keeps the folded S_k, within the contract: a second PutAt on the array
# the first one wrote is not printed into the kernel's output array by the generator)
GRAD_INDEX_M = PutAt(SOFTMAX_FOLDED, C, SelectArgmax(C, K, -Quotient(TAIL_M, 1 + TAIL_M),
                                                 Take(SOFTMAX_FOLDED, C) - 1))
NLL_U_M = L1P_M * SUM_U + 2 * RowSum(ZeroTimes(U, DiffHi(HALF * M, HALF * A)))
# (the weighted gradient keeps the general form GRAD_U: folded, e^{a_j} (sum u e^-m / (1 + s'))
# - u_j reached 4.03 ULP of max(S_j sum u, u_j) in `verify --thorough`, the general moderate
# form 3.22 on the same inputs; both round as often, and S_j sum u - u_j cancels)
# the binary loss, elementwise: p_w y softplus(-z) + (1 - y) softplus(z); zero weights
# make their term 0 even where softplus is infinite
BCE = ZeroTimes(PW * YB, Softplus(-ZB)) + ZeroTimes(1 - YB, Softplus(ZB))
BCE_GRAD = ZeroTimes(1 - YB, Sigmoid(ZB)) - ZeroTimes(PW * YB, Sigmoid(-ZB))


def array_form(closed: sp.Expr, logits: sp.Expr = A, j: sp.Symbol = D.j, c: sp.Symbol = D.c) -> sp.Expr:
    """The array expression, over the stable forms above, of a closed form in S (a
    result of :func:`derive.gradient` with the rules of :mod:`derive.softmax.rules`,
    stated at the output index ``j`` with the target ``c``), for S the softmax of the
    array ``logits`` (``A``, or ``A / tau`` for a softmax of scaled logits).

    Each piece becomes its stable form: ``S_j - delta_jc`` the gradient of the softmax
    loss (no cancellation at the true class; a pair of terms S_j and -delta_jc of a sum
    is grouped, a term (1 + u) S_j beside -delta_jc multiplied out first), ``S_j`` the
    softmax, ``1 - S_c`` without cancellation, ``S_c``, ``log S_c`` (-the loss) and
    ``log Z`` (m + log1p(s'), for ``logits`` A). What has no array form (another
    index, a sum left) is a ValueError naming it.

    Examples
    --------
    >>> from derive import gradient
    >>> from derive.softmax import definitions as D, rules as R
    >>> from derive.softmax.kernels import GRAD_INDEX, array_form
    >>> d = gradient(D.softmax_loss(), D.a[D.j], (D.REAL_LOGITS, D.ONE_HOT), R.RULES, check=False)
    >>> d.result, array_form(d.result) == GRAD_INDEX
    (-KroneckerDelta(c, j) + S[j], True)
    """
    from .rules import S

    scaled = (lambda e: e) if logits is A else (lambda e: e.xreplace({A: logits}))
    delta, grad, soft = KroneckerDelta(j, c), scaled(GRAD_INDEX), scaled(SOFTMAX)
    table = {S[j] - delta: grad, delta - S[j]: -grad, S[j]: soft, S[c]: Take(soft, C),
             1 - S[c]: scaled(-TRUE_CLASS), sp.log(S[c]): -scaled(NLL_INDEX)}
    if logits is A:
        table[engine.canonical_bound(sp.log(D.partition()))] = M + L1P

    def walk(e):
        if e in table:
            return table[e]
        if isinstance(e, sp.log) and e.has(sp.Sum) and engine.canonical_bound(e) in table:
            return table[engine.canonical_bound(e)]  # log Z, whatever its summation variable
        if isinstance(e, sp.Add):
            terms = list(e.args)
            for sign_ in (1, -1):
                if -sign_ * delta in terms and sign_ * S[j] not in terms:  # (1 + u) S_j - delta_jc
                    terms = [t for term in terms for t in sp.Add.make_args(
                        sp.expand_mul(term, deep=False) if term.has(S[j]) else term)]
                if -sign_ * delta in terms and sign_ * S[j] in terms:
                    terms.remove(-sign_ * delta)
                    terms.remove(sign_ * S[j])
                    terms.append(sign_ * sp.Symbol("grad_"))
            return sp.Add(*(walk(t) for t in terms)).xreplace({sp.Symbol("grad_"): grad})
        if not e.args or isinstance(e, sp.Indexed):
            return e
        return e.func(*(walk(arg) for arg in e.args))

    out = walk(closed)
    left = [atom for atom in out.atoms(sp.Indexed, KroneckerDelta, sp.Sum)]
    if left:
        raise ValueError(f"array_form: no array form for {', '.join(map(str, left))} in {closed} "
                         "(the table has S_j - delta_jc, S_j, S_c, 1 - S_c, log S_c and log Z)")
    return out


@functools.lru_cache(maxsize=1)
def _catalogue() -> dict[str, Derivation]:
    return catalogue.by_key()


def _resolved(claim: Claim) -> Claim:
    """The claim with its lemma keys replaced by the catalogue's derivations."""
    cat = _catalogue()
    return dataclasses.replace(claim, lemmas=tuple(cat[k] if isinstance(k, str) else k for k in claim.lemmas))


def _claims() -> dict[str, Claim]:
    S, L = D.softmax, D.softmax_loss()
    top = (D.REAL_LOGITS, D.K_IS_ARGMAX)
    hot = (D.REAL_LOGITS, D.ONE_HOT, D.K_IS_ARGMAX)
    soft = (D.REAL_LOGITS, D.SOFT_LABEL, D.K_IS_ARGMAX)
    claims = [
        Claim("kernel_logsumexp", r"Kernel logsumexp $= \log \sum_j e^{a_j}$", top,
              D.logsumexp(), "definition", ("lse_stable",)),
        Claim("kernel_log_softmax", r"Kernel log\_softmax $= \log S_j$", top,
              sp.log(S(D.j)), "definition", ("log_softmax_stable",)),
        Claim("kernel_softmax", r"Kernel softmax $= S_j$", top,
              S(D.j), "definition", ("softmax_stable",)),
        Claim("kernel_nll_index", r"Kernel nll\_index $= L$ for a one-hot label", hot,
              L, "definition", ("loss_stable",)),
        Claim("kernel_nll_index_grad", r"Kernel nll\_index\_grad $= \partial L/\partial a_j$ for a one-hot label",
              hot, Derivative(L, D.a[D.j]), "the derivative",
              ("true_class_complement_stable", "softmax_stable"),
              via=(Step(S(D.j) - KroneckerDelta(D.j, D.c), r"$\partial L/\partial a_j = S_j - \delta_{jc}$",
                        lemma=_catalogue()["loss_gradient_one_hot"]),)),
        Claim("kernel_nll_soft", r"Kernel nll\_soft $= H(y, S)$", soft,
              D.cross_entropy(D.y, lambda u: S(u)), "definition of cross entropy",
              ("log_softmax_stable",)),
        Claim("kernel_nll_soft_grad", r"Kernel nll\_soft\_grad $= \partial L/\partial a_j$ for a probability label",
              soft, Derivative(L, D.a[D.j]), "the derivative", ("loss_gradient", "softmax_stable")),
        # nll_soft is also called with weighted, label-smoothed targets: y need not sum to 1
        Claim("kernel_nll_soft_weighted", r"Kernel nll\_soft $= -\sum_j y_j \log S_j$ for any $y \ge 0$", top,
              D.weighted_loss(D.y), "definition", ("log_softmax_stable",)),
        Claim("kernel_nll_weighted", r"Kernel nll\_weighted $= -\sum_j u_j \log S_j$ for any $u \ge 0$", top,
              D.weighted_loss(), "definition", ("log_softmax_stable",)),
        Claim("kernel_grad_weighted", r"Kernel nll\_weighted\_grad $= \partial L_u/\partial a_j$", top,
              Derivative(D.weighted_loss(), D.a[D.j]), "the derivative",
              ("loss_gradient_weighted", "softmax_stable")),
        Claim("kernel_bce", r"Kernel bce $=$ the binary loss with $p_w$", (D.REAL_LOGITS,),
              D.binary_cross_entropy(pw_=D.pw), "definition", ("bce_pos_weight",)),
        Claim("kernel_bce_grad", r"Kernel bce\_grad $= \partial L/\partial z$", (D.REAL_LOGITS,),
              Derivative(D.binary_cross_entropy(pw_=D.pw), D.z), "the derivative",
              ("bce_pos_weight_gradient",)),
        Claim("kernel_nll_u", r"Kernel nll\_u $= -\sum_j u_j \log S_j$ for any $u \ge 0$", top,
              D.weighted_loss(), "definition", ("log_softmax_stable",)),
        Claim("kernel_grad_u", r"Kernel nll\_u\_grad $= \partial L_u/\partial a_j$", top,
              Derivative(D.weighted_loss(), D.a[D.j]), "the derivative",
              ("loss_gradient_weighted", "softmax_stable")),
        Claim("kernel_logsumexp_b", r"Kernel logsumexp\_b $= \log |\sum_j b_j e^{a_j}|$", top,
              D.weighted_logsumexp(), "definition", ("lse_weighted_stable",)),
        Claim("kernel_logsumexp_b_sign", r"Kernel logsumexp\_b sign $=$ the sign of $\sum_j b_j e^{a_j}$",
              top, sp.sign(D.weighted_partition()), "definition", ("lse_weighted_factor",)),
    ]
    return {claim.key: _resolved(claim) for claim in claims}


def kernels() -> list[Kernel]:
    claims = _claims()
    P = claims.__getitem__
    grad_index_doc = (
        "dL/da_j = S_j - delta_jc: S_j off the true class; at the true class\n"
        "-s'/(1 + s') when c is the argmax (no cancellation when S_c ~ 1), else S_c - 1.")
    nll_soft = (P("kernel_nll_soft"), P("kernel_nll_soft_weighted"))
    return [
        Kernel("logsumexp", (A,), (M + L1P,),
               "log sum_j e^{a_j} = m + log1p(s'), one column per row.", (P("kernel_logsumexp"),),
               moderate=(M + L1P_M,)),
        Kernel("log_softmax", (A,), (-NEG_LOG_SOFTMAX,),
               "log S_j = (a_j - m) - log1p(s').", (P("kernel_log_softmax"),),
               moderate=(DiffHi(A, M) - L1P_M,)),
        Kernel("softmax", (A,), (SOFTMAX,),
               "S_j = e^{a_j - m} / (1 + s').", (P("kernel_softmax"),), moderate=(SOFTMAX_M,)),
        Kernel("nll_index", (A, C), (NLL_INDEX,),
               "L = (m - a_c) + log1p(s') for integer targets c (a column).", (P("kernel_nll_index"),),
               moderate=(NLL_INDEX_M,)),
        Kernel("nll_index_grad", (A, C), (GRAD_INDEX,), grad_index_doc, (P("kernel_nll_index_grad"),),
               moderate=(GRAD_INDEX_M,)),
        Kernel("nll_index_with_grad", (A, C), (NLL_INDEX, GRAD_INDEX),
               "(nll_index, nll_index_grad) sharing one pass.",
               (P("kernel_nll_index"), P("kernel_nll_index_grad")), moderate=(NLL_INDEX_M, GRAD_INDEX_M)),
        Kernel("nll_soft", (A, Y), (NLL_SOFT,),
               "L = sum_j y_j (-log S_j) for probability targets y (0 * inf = 0), and for any\n"
               "non-negative y (class weights, label smoothing: u = w y').", (nll_soft,)),
        Kernel("nll_soft_grad", (A, Y), (GRAD_SOFT,), "dL/da_j = S_j - y_j.", (P("kernel_nll_soft_grad"),)),
        Kernel("nll_soft_with_grad", (A, Y), (NLL_SOFT, GRAD_SOFT),
               "(nll_soft, nll_soft_grad) sharing one pass.", (nll_soft, P("kernel_nll_soft_grad"))),
        Kernel("nll_weighted_grad", (A, U), (GRAD_WEIGHTED,), "dL/da_j = S_j sum_i u_i - u_j.",
               (P("kernel_grad_weighted"),)),
        Kernel("nll_weighted_with_grad", (A, U), (NLL_WEIGHTED, GRAD_WEIGHTED),
               "(nll_soft, nll_weighted_grad) sharing one pass: weighted or label-smoothed targets.",
               (P("kernel_nll_weighted"), P("kernel_grad_weighted"))),
        Kernel("nll_u", (A, U), (NLL_U,),
               "L = sum_j u_j (-log S_j) for any u >= 0 (probability targets, class weights,\n"
               "label smoothing: u = w y'), sum_j u_j accurate to about one rounding.",
               (P("kernel_nll_u"),), moderate=(NLL_U_M,)),
        Kernel("nll_u_grad", (A, U), (GRAD_U,),
               "dL/da_j = S_j sum_i u_i - u_j, as e_j (sum_i u_i / (1 + s')) - u_j with the sum\n"
               "accurate to about one rounding.", (P("kernel_grad_u"),)),
        Kernel("nll_u_with_grad", (A, U), (NLL_U, GRAD_U),
               "(nll_u, nll_u_grad) sharing one pass.", (P("kernel_nll_u"), P("kernel_grad_u")),
               moderate=(NLL_U_M, GRAD_U)),
        Kernel("logsumexp_b", (A, BW), (LSE_B, LSE_B_SIGN),
               "(log |sum_j b_j e^{a_j}|, its sign) = (m + log|b_k + s'_b|, sign(b_k + s'_b)) with\n"
               "s'_b = sum_{j != k} b_j e^{a_j - m} summed accurately and b_k + s'_b carried exactly\n"
               "into the log (SciPy's logsumexp with b=, return_sign=True).",
               (P("kernel_logsumexp_b"), P("kernel_logsumexp_b_sign"))),
        Kernel("bce", (ZB, YB, PW), (BCE,),
               "L = p_w y softplus(-z) + (1 - y) softplus(z), elementwise.", (P("kernel_bce"),), rows=False),
        Kernel("bce_grad", (ZB, YB, PW), (BCE_GRAD,),
               "dL/dz = (1 - y) sigma(z) - p_w y sigma(-z), elementwise.", (P("kernel_bce_grad"),), rows=False),
        Kernel("bce_with_grad", (ZB, YB, PW), (BCE, BCE_GRAD), "(bce, bce_grad) in one pass.",
               (P("kernel_bce"), P("kernel_bce_grad")), rows=False),
    ]


def kernel_proofs() -> list[Derivation]:
    """The proof of every output of every built-in kernel, each distinct proof once."""
    return codegen.kernel_proofs(kernels())


def _proofs() -> dict[str, Derivation]:
    return {proof.key: proof for proof in kernel_proofs()}


def prove_kernels(numeric: bool = True):
    """Check the proof of every output of every built-in kernel."""
    return codegen.prove_kernels(kernels(), numeric=numeric)


HEADER = '''\
# Generated by softmax-derive -- do not edit (SymPy {sympy}).
# Regenerate with `{command}`; change derive/softmax/kernels.py, derive/functions.py
# or the catalogue instead of this file.
"""Row kernels of softmax-derive, generated from the proved stable forms.

Every kernel takes C-contiguous float64 arrays with the classes along the last axis:
``A`` the logits (rows x T), ``C`` integer targets (rows x 1, int64) or ``Y``
probability targets (rows x T). Row-level results are columns (rows x 1). Use the
public API in :mod:`numeric` instead: it validates input, handles axes, dtypes and
the non-finite cases.

Notation: m = max_j a_j (first argmax k), s' = sum_{{j != k}} e^{{a_j - m}}.
"""
import numpy
'''


def render() -> str:
    """The source of ``numeric/_kernels.py``."""
    return codegen.render(kernels(), HEADER.format(command=COMMAND, sympy=sp.__version__))


def generate(check_only: bool = False, target: Path = TARGET) -> tuple[bool, str]:
    """Write (or compare) the generated module; (up to date, message)."""
    text = render()
    name = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    if check_only:
        current = target.read_text() if target.exists() else ""
        if current == text:
            return True, f"{name} is up to date"
        return False, f"{name} is stale: run `{COMMAND}` and commit the result"
    target.write_text(text)
    return True, f"wrote {name} ({len(text.splitlines())} lines)"


#: the kernels of ``numeric/_kernels.py``
KERNELS = kernels()
