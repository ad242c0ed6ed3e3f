"""The built-in verification, as declarations: which functions are measured
(:data:`FUNCTIONS`), which implementations beside the generated code
(:func:`implementations`: numeric, the max-shift every library writes, the naive formula,
scipy.special), which input categories with how many rows (:data:`SUITE`, made by
:mod:`derive.cases`), which references and which bounds (:data:`BOUND`).

* The reference is the definition itself -- the SymPy expressions of
  :mod:`derive.softmax.definitions` printed for mpmath by ``lambdify`` -- evaluated from
  the exact float inputs at a precision chosen from the row
  (:func:`derive.references.digits_for`), never a second hand-written formula. The
  gradient references are the catalogue's proved results (dL/da = S - e_c for a one-hot
  label, S sum_j u_j - u for any weights, soft labels included), evaluated the same way;
  S - e_c is itself checked against high-precision central differences of the reference
  loss (:func:`reference_fd_check`).
* Errors are in ULPs of the correctly rounded reference, with an absolute floor at the
  smallest normal number (:func:`derive.measure.ulp_error`); the machinery that computes,
  caches and measures the references is :mod:`derive.references`.
* :func:`run` evaluates the suite for the generated code and, in the same run, for the
  baselines.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time

import mpmath
import numpy as np
import sympy as sp
from sympy import lambdify

from .. import cases as C
from .. import mpexp, references
from ..cases import Case, onehot
from ..executors import Progress, local
from ..measure import _TINY_SHIFT, check_grads, exact_parts, ulp_error
from ..references import (
    MIN_DIGITS,
    RowFormula,
    as_parts,
    central_differences,
    digits_for,
    fingerprint,
    measure_calls,
    measure_cases,
)
from ..results import Result, VerificationTable
from . import definitions as D

#: seed of the verification suite
SEED = 20240611

# --------------------------------------------------------------------------- reference
_Z = sp.Symbol("Z", positive=True)
_PARTITION = D.partition()


def _with_z(expr):
    return expr.xreplace({_PARTITION: _Z})


def _summand(expr):
    """The body of the outer sum of ``expr`` (with its sign), a function of its index."""
    (outer,) = [total for total in expr.atoms(sp.Sum) if total != _PARTITION]
    return expr.xreplace({outer: outer.function})


def _proved_result(key: str) -> sp.Expr:
    """The result (last step) of the catalogue's derivation ``key``."""
    from .catalogue import by_key
    return by_key()[key].result


#: dL/da_i for a one-hot label at c (S_i - delta_ic) and for any weights u, soft
#: labels included (S_i sum_j u_j - u_i: a soft label sums to 1 only to within
#: rounding, so the reference keeps sum_j y_j), as the catalogue proves them
_GRAD_ONE_HOT = RowFormula(_proved_result("loss_gradient_one_hot"), (D.a,), D.i, D.T, (D.c,))
_GRAD_WEIGHTED = RowFormula(_proved_result("loss_gradient_weighted"), (D.a, D.u), D.i, D.T)

_REF = {
    "partition": lambdify([D.a, D.T], _PARTITION, mpexp.MPMATH),
    "softmax": lambdify([D.a, D.j, _Z], _with_z(D.softmax(D.j)), mpexp.MPMATH),
    "log_softmax": lambdify([D.a, D.j, _Z], _with_z(sp.log(D.softmax(D.j))), mpexp.MPMATH),
    "logsumexp": lambdify([_Z], _with_z(D.logsumexp()), mpexp.MPMATH),
    # the loss term of class s: -y_s log S_s; summed over the classes with y_s != 0
    # (the convention 0 log 0 = 0 of the definition of cross entropy)
    "loss_term": lambdify([D.y, D.a, D.s, _Z], _with_z(_summand(D.softmax_loss())), mpexp.MPMATH),
}


@dataclasses.dataclass
class RowReference:
    """Reference values of one row (mpmath numbers at ``digits`` digits)."""

    digits: int
    softmax: list
    log_softmax: list
    logsumexp: object
    lse_scale: object  # |m| + log(sum_j e^{a_j - m}): the scale of the logsumexp bound
    loss_index: object = None
    grad_index: list = None
    loss_soft: object = None
    grad_soft: list = None
    grad_soft_scale: list = None
    loss_weighted: object = None
    grad_weighted: list = None
    grad_weighted_scale: list = None


def reference_row(row: np.ndarray, target: int | None = None,
                  soft: np.ndarray | None = None, digits: int | None = None,
                  weighted: np.ndarray | None = None) -> RowReference:
    """Evaluate the definitions on one row of float logits, exactly from the inputs."""
    digits = digits or digits_for(row)
    with mpmath.workdps(digits):
        a = [None] + [mpmath.mpf(float(v)) for v in row]  # 1-based, as in the definitions
        T = len(row)
        Z = _REF["partition"](a, T)
        soft_max = [_REF["softmax"](a, j, Z) for j in range(1, T + 1)]
        log_soft = [_REF["log_softmax"](a, j, Z) for j in range(1, T + 1)]
        lse = _REF["logsumexp"](Z)
        finite = [v for v in a[1:] if mpmath.isfinite(v)]
        top = max(finite) if finite else mpmath.mpf("-inf")
        scale = abs(top) + (lse - top) if finite else abs(lse)
        ref = RowReference(digits, soft_max, log_soft, lse, scale)

        def loss(y):
            terms = [_REF["loss_term"](y, a, s, Z) for s in range(1, T + 1) if y[s] != 0]
            return mpmath.fsum(terms)

        if target is not None:
            y = [None] + [mpmath.mpf(int(j == target)) for j in range(T)]
            ref.loss_index = loss(y)
            values = (a, target + 1)
            sums = _GRAD_ONE_HOT.row(*values, T=T)
            ref.grad_index = [_GRAD_ONE_HOT(values, sums, j) for j in range(1, T + 1)]
        if soft is not None:
            y = [None] + [mpmath.mpf(float(v)) for v in soft]
            ref.loss_soft = loss(y)
            ref.grad_soft, ref.grad_soft_scale = _weighted_gradient(a, y, T)
        if weighted is not None:  # u = w y' (class weights, label smoothing): any u >= 0
            u = [None] + [v if isinstance(v, mpmath.mpf) else mpmath.mpf(float(v)) for v in weighted]
            ref.loss_weighted = loss(u)
            ref.grad_weighted, ref.grad_weighted_scale = _weighted_gradient(a, u, T)
    return ref


def _weighted_gradient(a: list, u: list, T: int) -> tuple[list, list]:
    """The proved S_j sum u - u_j for every class, and its error scale max(S_j sum u, u_j)."""
    values = (a, u)
    sums = _GRAD_WEIGHTED.row(*values, T=T)
    return ([_GRAD_WEIGHTED(values, sums, j) for j in range(1, T + 1)],
            [_GRAD_WEIGHTED.largest_term(values, sums, j) for j in range(1, T + 1)])


def reference_fd_check(row: np.ndarray, target: int, h_digits: int = 25) -> float:
    """Max relative difference between S - y and central differences of the reference
    loss at high precision (an independent check that dL/da = S - y)."""
    digits = digits_for(row) + 2 * h_digits
    base = reference_row(row, target, digits=digits)
    T = len(row)
    y = [None] + [mpmath.mpf(int(j == target)) for j in range(T)]

    def loss_at(i, shift):
        a = [None] + [mpmath.mpf(float(v)) for v in row]
        a[i + 1] += shift
        Z = _REF["partition"](a, T)
        return mpmath.fsum(_REF["loss_term"](y, a, s, Z) for s in range(1, T + 1) if y[s] != 0)
    return central_differences(loss_at, lambda i: base.grad_index[i], range(T), digits, h_digits)


# --------------------------------------------------------------------------- implementations
def _max_shift():
    """What NumPy code, SciPy, PyTorch and JAX do: shift by the max, no error terms."""
    def lse(a):
        m = np.max(a, axis=-1, keepdims=True)
        return (m + np.log(np.sum(np.exp(a - m), axis=-1, keepdims=True)))[:, 0]

    def softmax(a):
        e = np.exp(a - np.max(a, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)

    def log_softmax(a):
        d = a - np.max(a, axis=-1, keepdims=True)
        return d - np.log(np.sum(np.exp(d), axis=-1, keepdims=True))

    def fused(a, c):
        """(loss, gradient) in one pass, as a hand-written training loop does."""
        m = a.max(axis=-1, keepdims=True)
        e = np.exp(a - m)
        s = e.sum(axis=-1, keepdims=True)
        rows = np.arange(a.shape[0])
        loss = (np.log(s) + m)[:, 0] - a[rows, c]
        e /= s
        e[rows, c] -= 1
        return loss, e

    return {
        "softmax": softmax, "log_softmax": log_softmax, "logsumexp": lse,
        "weighted": lambda a, u: -np.sum(u * log_softmax(a), axis=-1),
        "weighted_grad": lambda a, u: softmax(a) * u.sum(axis=-1, keepdims=True) - u,
        "cross_entropy": lambda a, c: -np.take_along_axis(log_softmax(a), c[:, None], -1)[:, 0],
        "cross_entropy_grad": lambda a, c: softmax(a) - onehot(c, a.shape),
        "cross_entropy_soft": lambda a, y: -np.sum(y * log_softmax(a), axis=-1),
        "cross_entropy_grad_soft": lambda a, y: softmax(a) - y,
        "cross_entropy_with_grad": fused,
    }


def _naive():
    """The formulas as written: e^{a_j} / sum_k e^{a_k}, no shift."""
    def softmax(a):
        e = np.exp(a)
        return e / np.sum(e, axis=-1, keepdims=True)

    return {
        "softmax": softmax, "log_softmax": lambda a: np.log(softmax(a)),
        "weighted": lambda a, u: -np.sum(u * np.log(softmax(a)), axis=-1),
        "weighted_grad": lambda a, u: softmax(a) * u.sum(axis=-1, keepdims=True) - u,
        "logsumexp": lambda a: np.log(np.sum(np.exp(a), axis=-1)),
        "cross_entropy": lambda a, c: -np.log(np.take_along_axis(softmax(a), c[:, None], -1)[:, 0]),
        "cross_entropy_grad": lambda a, c: softmax(a) - onehot(c, a.shape),
        "cross_entropy_soft": lambda a, y: -np.sum(y * np.log(softmax(a)), axis=-1),
        "cross_entropy_grad_soft": lambda a, y: softmax(a) - y,
    }


def _scipy():
    try:
        from scipy import special
    except ImportError:
        return None
    def fused(a, c):
        rows = np.arange(a.shape[0])
        logp = special.log_softmax(a, axis=-1)
        grad = np.exp(logp)
        grad[rows, c] -= 1
        return -logp[rows, c], grad

    return {
        "softmax": lambda a: special.softmax(a, axis=-1),
        "log_softmax": lambda a: special.log_softmax(a, axis=-1),
        "weighted": lambda a, u: -np.sum(u * special.log_softmax(a, axis=-1), axis=-1),
        "weighted_grad": lambda a, u: special.softmax(a, axis=-1) * u.sum(axis=-1, keepdims=True) - u,
        "logsumexp": lambda a: special.logsumexp(a, axis=-1),
        "cross_entropy": lambda a, c: -np.take_along_axis(
            special.log_softmax(a, axis=-1), c[:, None], -1)[:, 0],
        "cross_entropy_grad": lambda a, c: special.softmax(a, axis=-1) - onehot(c, a.shape),
        "cross_entropy_soft": lambda a, y: -np.sum(special.xlogy(y, special.softmax(a, axis=-1)), axis=-1),
        "cross_entropy_grad_soft": lambda a, y: special.softmax(a, axis=-1) - y,
        "cross_entropy_with_grad": fused,
    }


def _ours():
    import functools

    import numeric
    loss = functools.partial(numeric.cross_entropy, reduction="none")
    grad = functools.partial(numeric.cross_entropy_grad, reduction="none")
    return {
        "softmax": numeric.softmax, "log_softmax": numeric.log_softmax,
        "logsumexp": numeric.logsumexp,
        "cross_entropy": loss, "cross_entropy_grad": grad,
        "cross_entropy_soft": loss, "cross_entropy_grad_soft": grad,
        "cross_entropy_with_grad": functools.partial(numeric.cross_entropy_with_grad, reduction="none"),
    }


def implementations() -> dict[str, dict]:
    """The one table of implementations, used by verification, the reports and the
    benchmarks: name -> {function -> callable}; 'numeric' is the code under test, the
    others are the baselines (functions a baseline lacks are not measured)."""
    found = {"numeric": _ours(), "max-shift": _max_shift(), "naive": _naive()}
    sci = _scipy()
    if sci is not None:
        found["scipy.special"] = sci
    return found


# --------------------------------------------------------------------------- the suite
#: name -> (maker, rows in the default run, rows in --thorough)
SUITE = {
    "moderate": (C.with_large_row(C.moderate), 24, 400),
    "spread": (C.with_large_row(C.spread), 24, 400),
    "huge": (C.huge, 12, 200),
    "tiny loss": (C.with_large_row(C.tiny_loss), 16, 300),
    "near ties": (C.with_large_row(C.near_ties), 12, 200),
    "all equal": (C.with_large_row(C.all_equal), 6, 60),
    "T = 1": (C.with_large_row(C.one_class), 6, 60),
    "T = 2": (C.with_large_row(C.two_classes), 12, 200),
    "T = 32000": (C.with_large_row(C.wide), 16, 48),
    "-inf masks": (C.with_large_row(C.masked), 16, 300),
    "float32": (C.with_large_row(C.float32, 100.0), 16, 300),
}

FUNCTIONS = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad",
             "cross_entropy_soft", "cross_entropy_grad_soft", "cross_entropy_weighted",
             "cross_entropy_weighted_grad", "binary_cross_entropy", "binary_cross_entropy_grad",
             "logsumexp_b")

#: the accuracy contract of DESIGN.md, in ULPs
BOUND = {np.float64: 4.0, np.float32: 1.0}
#: functions with their own float64 bound (none: S_j sum(u) - u_j stays within 4 ULP
#: because u is rounded once from its exact value and the kernels sum rows accurately;
#: with u and sum(u) rounded before use it reaches 6.6 ULP)
EXTRA_BOUND: dict[str, float] = {}


#: the fields of :class:`RowReference` kept as float parts for measuring
_FIELDS = ("softmax", "log_softmax", "logsumexp", "lse_scale", "loss_index", "grad_index",
           "loss_soft", "grad_soft", "grad_soft_scale", "loss_weighted", "grad_weighted",
           "grad_weighted_scale")


def _row_parts(task) -> dict[str, np.ndarray]:
    """Worker: the reference of one row as :func:`exact_parts` arrays, field by field."""
    row, target, soft, weighted = task
    return as_parts(reference_row(row, target, soft, weighted=weighted), _FIELDS)


def _fingerprint() -> str:
    """What the reference values depend on besides the inputs: the reference code, the
    definitions it evaluates (the lambdified sources) and mpmath's version."""
    return fingerprint(digits_for, reference_row, exact_parts, _row_parts, Case.weighted_exact, *_REF.values(),
                       *_GRAD_ONE_HOT.functions, *_GRAD_WEIGHTED.functions, RowFormula, _weighted_gradient,
                       extra=(MIN_DIGITS, repr(_FIELDS), repr(_TINY_SHIFT)))


def case_references(cases: dict, executor=None, progress=None) -> dict[str, dict[str, np.ndarray]]:
    """Reference values of every row of every case: name -> field -> (3, rows, k) parts,
    by :func:`derive.references.case_references` (rows by ``executor``, cases kept in the
    reference cache)."""
    return references.case_references(cases, _row_parts, _fingerprint(), executor, progress)


def measure(impl: dict, case: Case, exact: dict[str, np.ndarray]) -> dict[str, tuple[int, float]]:
    """function -> (values checked, worst ULP) for one implementation on one case."""
    a, c, y, dt = case.logits, case.target, case.soft, case.dtype
    w, eps = case.weight, case.smoothing
    calls = {
        "softmax": (lambda: impl["softmax"](a), "softmax", None),
        "log_softmax": (lambda: impl["log_softmax"](a), "log_softmax", None),
        "logsumexp": (lambda: impl["logsumexp"](a), "logsumexp", "lse_scale"),
        "cross_entropy": (lambda: impl["cross_entropy"](a, c), "loss_index", None),
        "cross_entropy_grad": (lambda: impl["cross_entropy_grad"](a, c), "grad_index", None),
        "cross_entropy_weighted": (
            lambda: impl["cross_entropy"](a, c, weight=w, label_smoothing=eps) if "weighted" not in impl
            else impl["weighted"](a, case.weighted()), "loss_weighted", None),
        "cross_entropy_weighted_grad": (
            lambda: impl["cross_entropy_grad"](a, c, weight=w, label_smoothing=eps) if "weighted" not in impl
            else impl["weighted_grad"](a, case.weighted()), "grad_weighted", "grad_weighted_scale"),
    }
    if y is not None:
        calls["cross_entropy_soft"] = (lambda: impl["cross_entropy_soft"](a, y), "loss_soft", None)
        calls["cross_entropy_grad_soft"] = (lambda: impl["cross_entropy_grad_soft"](a, y),
                                            "grad_soft", "grad_soft_scale")
    return measure_calls(calls, exact, dt)


def _bound(function: str, case: Case) -> float:
    """The contract's bound of ``function`` on ``case``, in ULPs of the case's dtype."""
    bound = BOUND[case.dtype]
    return EXTRA_BOUND.get(function, bound) if case.dtype == np.float64 else bound


#: run()'s executor for "in this process"
_INLINE = object()


def run(thorough: bool = False, seed: int = None, out=sys.stdout,
        only: tuple[str, ...] = (), jobs: int | None = None, executor=None) -> VerificationTable:
    """Evaluate the suite for every implementation; the contract applies to 'numeric'.

    The reference rows are computed by ``executor`` (default: a process pool of ``jobs``
    processes, every core unless given) and kept in :func:`derive.executors.cache_dir`;
    progress goes to ``out`` (None: silent) when it is a terminal, or every few seconds
    otherwise."""
    if executor is None:
        pool = local(jobs)
        try:
            return run(thorough, seed, out, only, executor=pool or _INLINE)
        finally:
            if pool is not None:
                pool.shutdown()
    executor = None if executor is _INLINE else executor
    seed = SEED if seed is None else seed
    start = time.perf_counter()
    impls = implementations()
    report = VerificationTable()
    rng = np.random.default_rng(seed)
    cases = {name: (maker(rng, thorough_rows if thorough else rows))
             for name, (maker, rows, thorough_rows) in SUITE.items()
             if not only or name in only}
    exact = case_references(cases, executor, Progress("reference rows", out))
    report.results += measure_cases(cases, exact, impls, measure, _bound)
    if not only:
        report.results += run_binary(np.random.default_rng(seed + 2), 100 if thorough else 6)
        report.results += run_logsumexp_b(np.random.default_rng(seed + 3), 200 if thorough else 12)
    report.checks = extra_checks(np.random.default_rng(seed + 1))
    report.seconds = time.perf_counter() - start
    return report


# --------------------------------------------------------------------------- binary loss
def _proved(key: str):
    return lambdify([D.z, D.yb, D.pw], _proved_result(key), mpexp.MPMATH)


# the binary loss in the form the catalogue proves equal to PyTorch's definition, and
# its proved derivative: both free of 1 - sigma(z), which no working precision resolves
# at |z| = 1e308 (the definition's own form needs ~1e308 digits there)
_BCE_REF = _proved("bce_pos_weight")
_BCE_GRAD_REF = _proved("bce_pos_weight_gradient")
_SIGMOID = lambdify([D.z], D.sigmoid(), mpexp.MPMATH)


def _bce_grad_scale(z, y, pw):
    """max of the two terms of (1 - y) sigma(z) - p_w y sigma(-z): the scale of the
    gradient bound for soft targets, as max(S_j, y_j) is for softmax."""
    return max(abs((1 - y) * _SIGMOID(z)), abs(pw * y * _SIGMOID(-z)))


def _binary_impls():
    def sig(z):
        return 1 / (1 + np.exp(-z))

    def naive(z, y, pw):
        return -(pw * y * np.log(sig(z)) + (1 - y) * np.log(1 - sig(z)))

    def torch_formula(z, y, pw):  # what PyTorch and most libraries compute
        lw = 1 + (pw - 1) * y
        return (1 - y) * z + lw * (np.log1p(np.exp(-np.abs(z))) + np.maximum(-z, 0))

    import numeric
    return {
        "numeric": (lambda z, y, pw: numeric.binary_cross_entropy_with_logits(
                        z, y, pos_weight=pw, reduction="none"),
                    lambda z, y, pw: numeric.binary_cross_entropy_with_logits_grad(
                        z, y, pos_weight=pw, reduction="none")),
        "max-shift": (torch_formula, lambda z, y, pw: (1 - y) * sig(z) - pw * y * (1 - sig(z))),
        "naive": (naive, lambda z, y, pw: (1 - y) * sig(z) - pw * y * (1 - sig(z))),
    }


def run_binary(rng, rows: int) -> list[Result]:
    results = []
    impls = _binary_impls()
    for category, (z, y, pw) in C.binary_cases(rng, rows).items():
        refs = []
        for zi, yi, pi in zip(z, y, pw):
            digits = MIN_DIGITS + 10 + int(min(abs(zi), 800) / math.log(10)) + int(math.log10(max(1, abs(zi))))
            with mpmath.workdps(digits):
                args = (mpmath.mpf(float(zi)), mpmath.mpf(float(yi)), mpmath.mpf(float(pi)))
                refs.append((_BCE_REF(*args), _BCE_GRAD_REF(*args), _bce_grad_scale(*args)))
        for name, (loss_fn, grad_fn) in impls.items():
            with np.errstate(all="ignore"):
                loss, grad = np.asarray(loss_fn(z, y, pw)), np.asarray(grad_fn(z, y, pw))
            results.append(Result(name, "binary_cross_entropy", category, len(z),
                                  max(ulp_error(v, r[0]) for v, r in zip(loss, refs)), 4.0))
            results.append(Result(name, "binary_cross_entropy_grad", category, len(z),
                                  max(ulp_error(v, r[1], scale=r[2]) for v, r in zip(grad, refs)), 4.0))
    return results


# --------------------------------------------------------------------------- weighted logsumexp
#: the definitions of SciPy's logsumexp(a, b=b): log|sum_j b_j e^{a_j}| and the sum itself
_LSE_B = lambdify([D.a, D.bw, D.T], D.weighted_logsumexp(), mpexp.MPMATH)
_PARTITION_B = lambdify([D.a, D.bw, D.T], D.weighted_partition(), mpexp.MPMATH)


def reference_lse_b(row: np.ndarray, weights: np.ndarray) -> tuple:
    """(log|sum b e^a|, sign, error scale |m| + |log|s|| + sum_{j != k} |b_j| e^{a_j - m} / |s|)
    from the exact inputs: the definitions in mpmath (digits enough for the cancellation
    of b of both signs); s = sum_j b_j e^{a_j - m}, m the largest logit with b_j != 0."""
    used = weights != 0
    digits = digits_for(row[used]) + 40
    with mpmath.workdps(digits):
        a = [None] + [mpmath.mpf(float(v)) for v in row[used]]  # 1-based, as in the definitions
        bw = [None] + [mpmath.mpf(float(v)) for v in weights[used]]
        T = len(a) - 1
        total = _PARTITION_B(a, bw, T)
        if total == 0:
            return mpmath.mpf("-inf"), 0.0, mpmath.mpf(0)
        top = max(range(1, T + 1), key=lambda i: a[i])
        m = a[top]
        scaled = total * mpexp.exp(-m)
        rest = mpmath.fsum(abs(bw[i]) * mpexp.exp(a[i] - m) for i in range(1, T + 1) if i != top)
        return (_LSE_B(a, bw, T), float(mpmath.sign(total)),
                abs(m) + abs(mpmath.log(abs(scaled))) + rest / abs(scaled))


def _lse_b_impls():
    import numeric

    def max_shift(a, b):
        m = np.max(np.where(b != 0, a, -np.inf), axis=-1, keepdims=True)
        s = np.sum(b * np.exp(a - m), axis=-1)
        return m[:, 0] + np.log(np.abs(s)), np.sign(s)

    found = {"numeric": lambda a, b: numeric.logsumexp(a, b=b, return_sign=True), "max-shift": max_shift}
    try:
        from scipy import special
        found["scipy.special"] = lambda a, b: special.logsumexp(a, b=b, axis=-1, return_sign=True)
    except ImportError:  # pragma: no cover - scipy is in the report extra
        pass
    return found


def run_logsumexp_b(rng, rows: int) -> list[Result]:
    """logsumexp(a, b=b, return_sign=True) against the definition, with SciPy's own
    results as the baseline in the same run; a wrong sign counts as an infinite error."""
    results = []
    impls = _lse_b_impls()
    for category, (a, bw) in C.signed_weight_cases(rng, rows).items():
        refs = [reference_lse_b(ar, br) for ar, br in zip(a, bw)]
        for name, impl in impls.items():
            with np.errstate(all="ignore"):
                values, signs = (np.asarray(x) for x in impl(a, bw))
            worst = 0.0
            for v, sg, (ref, ref_sign, scale) in zip(values, signs, refs):
                worst = max(worst, ulp_error(v, ref, scale=scale) if sg == ref_sign else math.inf)
            results.append(Result(name, "logsumexp_b", category, len(a), worst, 4.0))
    return results


def extra_checks(rng) -> dict:
    """Finite differences (reference and float64), NaN rows, fused == separate."""
    import numeric

    checks = {}
    rows = rng.normal(0, 3, size=(6, 5))
    targets = rng.integers(0, 5, 6)
    checks["reference S - y vs 50-digit central differences (max relative)"] = max(
        reference_fd_check(row, int(c)) for row, c in zip(rows, targets))
    a = rng.normal(0, 3, size=(32, 10))
    c = rng.integers(0, 10, 32)
    y = rng.dirichlet(np.ones(10), 32)
    checks["generated gradient vs float64 directional differences, integer targets (max relative)"] = check_grads(
        lambda x: numeric.cross_entropy(x, c, reduction="none"),
        lambda x: numeric.cross_entropy_grad(x, c, reduction="none"), a)
    checks["generated gradient vs float64 directional differences, soft targets (max relative)"] = check_grads(
        lambda x: numeric.cross_entropy(x, y, reduction="none"),
        lambda x: numeric.cross_entropy_grad(x, y, reduction="none"), a)
    nan_rows = a.copy()
    nan_rows[3, 4] = np.nan
    clean = numeric.cross_entropy_with_grad(a, c, reduction="none")
    dirty = numeric.cross_entropy_with_grad(nan_rows, c, reduction="none")
    others = np.arange(32) != 3
    checks["NaN row: its outputs NaN, other rows unchanged"] = bool(
        np.isnan(dirty[0][3]) and np.isnan(dirty[1][3]).all()
        and np.array_equal(dirty[0][others], clean[0][others])
        and np.array_equal(dirty[1][others], clean[1][others]))
    checks["fused loss and gradient equal the separate calls"] = bool(
        np.array_equal(clean[0], numeric.cross_entropy(a, c, reduction="none"))
        and np.array_equal(clean[1], numeric.cross_entropy_grad(a, c, reduction="none")))
    return checks


# --------------------------------------------------------------------------- the declaration
#: the implementations the tables show beside the generated code
SHOWN = ("numeric", "max-shift", "scipy.special")


class Suite:
    """The built-in verification as the catalogue declares it: :mod:`numeric`'s public
    functions (``tested``) beside the baselines (``shown``), on :data:`SUITE`'s cases;
    the verify stage runs it with the run's executor."""

    functions, shown, tested, min_digits = FUNCTIONS, SHOWN, "numeric", MIN_DIGITS

    def run(self, executor=None, thorough: bool = False, out=sys.stderr) -> VerificationTable:
        return run(thorough=thorough, out=out, executor=executor or _INLINE)
