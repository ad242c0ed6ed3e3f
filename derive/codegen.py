"""Code generation: the proved stable forms, printed to NumPy.

Each kernel is an array expression over the functions of :mod:`derive.functions`.
Before anything is printed, each kernel is *proved* equal to the definition: a
derivation whose steps cite the catalogue's stable forms as lemmas and end in the
kernel's own index form (``functions.to_indexed``), checked by the same engine as the
catalogue. Only then is it printed with SymPy's NumPy printer (after common
subexpression elimination with deterministic names) into ``numeric/_kernels.py``.

``python -m derive generate`` writes the file; ``--check`` compares instead and fails
when the committed file is stale. The output depends on nothing but this module, the
catalogue and the SymPy version: the same inputs give the same bytes.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import sympy as sp
from sympy import Derivative, KroneckerDelta
from sympy.codegen.cfunctions import log1p
from sympy.printing.numpy import NumPyPrinter

from . import catalogue, definitions as D, engine
from .engine import Derivation, Step
from .functions import (A, C, Y, DiffHi, ExpDiff, PutAt, Quotient, RowMax, RowSum, SelectArgmax,
                        SumExceptMax, Take, ZeroTimes, helpers_used, to_indexed)

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "numeric" / "_kernels.py"
COMMAND = "python -m derive generate"

# --------------------------------------------------------------------------- the kernels
M = RowMax(A)  # m = a_k, the row maximum
E = ExpDiff(A, M)  # e_j = e^{a_j - m}
TAIL = SumExceptMax(E, A)  # s' = sum_{j != k} e^{a_j - m}
L1P = log1p(TAIL)  # log1p(s')
SOFTMAX = Quotient(E, 1 + TAIL)
# m - a_j needs no error term here: |m - a_j| <= |result|, so its rounding costs at
# most half an ULP of the result (it is exp that amplifies that error, not addition)
NEG_LOG_SOFTMAX = L1P - DiffHi(A, M)  # -log S_j = (m - a_j) + log1p(s')
A_C = Take(A, C)
NLL_INDEX = DiffHi(M, A_C) + L1P
TRUE_CLASS = SelectArgmax(C, A, -Quotient(TAIL, 1 + TAIL), Take(SOFTMAX, C) - 1)
GRAD_INDEX = PutAt(SOFTMAX, C, TRUE_CLASS)
# L = log1p(s') sum_j y_j + sum_j y_j (m - a_j), the second sum halved inside so that
# m - a_j cannot overflow where y_j (m - a_j) does not (logits near +-1e308); halving
# and doubling are exact, and log1p(s') is never halved (it may be subnormal)
HALF = sp.Rational(1, 2)
NLL_SOFT = L1P * RowSum(Y) + 2 * RowSum(ZeroTimes(Y, DiffHi(HALF * M, HALF * A)))
GRAD_SOFT = SOFTMAX - Y


@dataclass
class Kernel:
    """A generated function: its name, arguments, outputs and the proofs behind it."""

    name: str
    args: tuple
    outputs: tuple
    doc: str
    proofs: tuple = ()


def _proof(key, title, assumptions, start, start_why, kernel_part, lemma_key, index=D.j):
    lemma = catalogue.by_key()[lemma_key]
    return Derivation(key, title, assumptions, [
        Step(start, start_why),
        Step(to_indexed(kernel_part, index), f"the kernel's form, by '{lemma.title}'", lemma=lemma),
    ], section="kernels")


def _proofs() -> dict[str, Derivation]:
    S, L = D.softmax, D.softmax_loss()
    top = (D.REAL_LOGITS, D.K_IS_ARGMAX)
    hot = (D.REAL_LOGITS, D.ONE_HOT, D.K_IS_ARGMAX)
    soft = (D.REAL_LOGITS, D.SOFT_LABEL, D.K_IS_ARGMAX)
    proofs = [
        _proof("kernel_logsumexp", r"Kernel logsumexp $= \log \sum_j e^{a_j}$", top,
               D.logsumexp(), "definition", M + L1P, "lse_stable"),
        _proof("kernel_log_softmax", r"Kernel log\_softmax $= \log S_j$", top,
               sp.log(S(D.j)), "definition", -NEG_LOG_SOFTMAX, "log_softmax_stable"),
        _proof("kernel_softmax", r"Kernel softmax $= S_j$", top,
               S(D.j), "definition", SOFTMAX, "softmax_stable"),
        _proof("kernel_nll_index", r"Kernel nll\_index $= L$ for a one-hot label", hot,
               L, "definition", NLL_INDEX, "loss_stable"),
        _proof("kernel_grad_true_argmax", "Kernel gradient at the true class when it is the argmax",
               top, S(D.k) - 1, r"$\partial L/\partial a_c = S_c - 1$ with $c = k$", -Quotient(TAIL, 1 + TAIL),
               "true_class_complement_stable"),
        _proof("kernel_grad_true_other", "Kernel gradient at the true class otherwise",
               top, S(D.c) - 1, r"$\partial L/\partial a_c = S_c - 1$", Take(SOFTMAX, C) - 1, "softmax_stable"),
        _proof("kernel_nll_soft", r"Kernel nll\_soft $= H(y, S)$", soft,
               D.cross_entropy(D.y, lambda u: S(u)), "definition of cross entropy",
               NLL_SOFT, "log_softmax_stable"),
    ]
    return {p.key: p for p in proofs}


def kernels() -> list[Kernel]:
    proofs = _proofs()
    P = lambda *keys: tuple(proofs[key] for key in keys)  # noqa: E731
    grad_index_doc = (
        "dL/da_j = S_j - delta_jc: S_j off the true class; at the true class\n"
        "-s'/(1 + s') when c is the argmax (no cancellation when S_c ~ 1), else S_c - 1.")
    return [
        Kernel("logsumexp", (A,), (M + L1P,),
               "log sum_j e^{a_j} = m + log1p(s'), one column per row.", P("kernel_logsumexp")),
        Kernel("log_softmax", (A,), (-NEG_LOG_SOFTMAX,),
               "log S_j = (a_j - m) - log1p(s').", P("kernel_log_softmax")),
        Kernel("softmax", (A,), (SOFTMAX,),
               "S_j = e^{a_j - m} / (1 + s').", P("kernel_softmax")),
        Kernel("nll_index", (A, C), (NLL_INDEX,),
               "L = (m - a_c) + log1p(s') for integer targets c (a column).", P("kernel_nll_index")),
        Kernel("nll_index_grad", (A, C), (GRAD_INDEX,), grad_index_doc,
               P("kernel_softmax", "kernel_grad_true_argmax", "kernel_grad_true_other")),
        Kernel("nll_index_with_grad", (A, C), (NLL_INDEX, GRAD_INDEX),
               "(nll_index, nll_index_grad) sharing one pass.",
               P("kernel_nll_index", "kernel_softmax", "kernel_grad_true_argmax",
                 "kernel_grad_true_other")),
        Kernel("nll_soft", (A, Y), (NLL_SOFT,),
               "L = sum_j y_j (-log S_j) for probability targets y (0 * inf = 0).",
               P("kernel_nll_soft")),
        Kernel("nll_soft_grad", (A, Y), (GRAD_SOFT,), "dL/da_j = S_j - y_j.", P("kernel_softmax")),
        Kernel("nll_soft_with_grad", (A, Y), (NLL_SOFT, GRAD_SOFT),
               "(nll_soft, nll_soft_grad) sharing one pass.", P("kernel_nll_soft", "kernel_softmax")),
    ]


def prove_kernels(numeric: bool = True) -> list[engine.DerivationReport]:
    """Check every kernel proof (raises StepRejected on the first failure)."""
    return [engine.check(proof, numeric=numeric) for proof in _proofs().values()]


# --------------------------------------------------------------------------- printing
class KernelPrinter(NumPyPrinter):
    """SymPy's NumPy printer, with ``numpy.`` as the module name."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})

    def _print_Symbol(self, expr):
        return expr.name


def _check_put_at_is_last_use(replacements, outputs):
    """PutAt changes its first argument in place: it must be that array's last use."""
    for node in [o for out in outputs for o in sp.preorder_traversal(out) if isinstance(o, PutAt)]:
        target = node.args[0]
        if not isinstance(target, sp.Symbol):
            continue
        uses = sum(expr.count(target) for _, expr in replacements)
        uses += sum(out.count(target) for out in outputs)
        inside = node.count(target)
        if uses != inside:
            raise AssertionError(f"{target} is used after the in-place PutAt in {node}")


def print_kernel(kernel: Kernel, printer: KernelPrinter) -> str:
    names = sp.numbered_symbols("t")
    replacements, outputs = sp.cse(list(kernel.outputs), symbols=names, order="canonical")
    _check_put_at_is_last_use(replacements, outputs)
    args = ", ".join(str(arg) for arg in kernel.args)
    lines = [f"def {kernel.name}({args}):"]
    doc = [kernel.doc, ""]
    for proof in kernel.proofs:
        doc.append(f"Proved: {proof.title} [{proof.key}].")
    doc.append("")
    for out in kernel.outputs:
        doc.append("Expression: " + sp.sstr(out))
    lines.append(textwrap.indent('"""' + "\n".join(doc).strip() + '\n"""', " " * 4))
    for sym, expr in replacements:
        lines.append(f"    {sym} = {printer.doprint(expr)}")
    results = ", ".join(printer.doprint(out) for out in outputs)
    lines.append(f"    return {results}")
    return "\n".join(lines)


HEADER = '''\
# Generated by softmax-derive -- do not edit.
# Regenerate with `{command}`; change derive/codegen.py, derive/functions.py or
# the catalogue instead of this file.
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
    printer = KernelPrinter()
    specs = kernels()
    helpers = helpers_used([out for kernel in specs for out in kernel.outputs])
    parts = [HEADER.format(command=COMMAND)]
    parts += helpers
    parts += [print_kernel(kernel, printer) for kernel in specs]
    parts.append("__all__ = [" + ", ".join(repr(k.name) for k in specs) + "]")
    return "\n\n\n".join(parts) + "\n"


def generate(check_only: bool = False, target: Path = TARGET) -> tuple[bool, str]:
    """Write (or compare) the generated module; (up to date, message)."""
    text = render()
    if check_only:
        current = target.read_text() if target.exists() else ""
        if current == text:
            return True, f"{target.relative_to(ROOT)} is up to date"
        return False, (f"{target.relative_to(ROOT)} is stale: run `{COMMAND}` and commit the result")
    target.write_text(text)
    return True, f"wrote {target.relative_to(ROOT)} ({len(text.splitlines())} lines)"
