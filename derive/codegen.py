"""Code generation: proved array expressions, printed to NumPy.

A :class:`Kernel` is a named function of array expressions over the functions of
:mod:`derive.functions`, each output with its :class:`Claim`. Before anything is printed,
each output is *proved* equal to what its claim states: a derivation whose last step
cites the claim's lemmas and ends in the kernel's own index form
(``functions.to_indexed``), checked by the same engine as any derivation. Only then is it
printed with SymPy's NumPy printer (after common subexpression elimination with
deterministic names) by :func:`render` / :func:`write_module`. The output depends on
nothing but the kernels and the SymPy version: the same inputs give the same bytes. The
built-in kernels are content: :mod:`derive.softmax.kernels`.
"""
from __future__ import annotations

import inspect
import textwrap
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import log1p
from sympy.printing.numpy import NumPyPrinter

from . import engine
from . import kernel_helpers as H
from .engine import Derivation, Step
from .functions import (
    MEANINGS,
    A,
    C,
    DiffHi,
    ExpDiff,
    PutAt,
    Quotient,
    RowArgmax,
    RowSum,
    SelectArgmax,
    SumExceptMax,
    Take,
    Y,
    ZeroTimes,
    helpers_used,
    to_indexed,
)


@dataclass(frozen=True)
class Claim:
    """What an output of a kernel is: ``definition`` under ``assumptions``.

    The proof of a claim about an output is a derivation from the definition (through
    the intermediate steps ``via``, if any) to the index form of *that very output
    expression* (``functions.to_indexed``), the last step citing the catalogue's
    ``lemmas`` (keys; applied in order). Nothing about the output is typed twice.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Claim, vector
    >>> from derive.symbols import CLASSES as T, s
    >>> g = vector("g", lambda rng: rng.normal(0, 1))
    >>> claim = Claim("kernel_total", "Kernel total", (), sp.Sum(g[s], (s, 1, T)), "definition",
    ...               ("total_as_printed",))
    >>> claim.lemmas
    ('total_as_printed',)
    """

    key: str
    title: str
    assumptions: tuple
    definition: sp.Expr
    why: str
    lemmas: tuple
    via: tuple = ()  # Steps between the definition and the kernel's form
    index: sp.Symbol = sp.Symbol("j", integer=True, positive=True)  # the output's class index
    min_classes: int = 1  # the smallest T the claim makes sense for


@dataclass
class Kernel:
    """A generated function: its name, arguments, outputs and what each output is.

    ``claims[n]`` is the claim (or a tuple of claims) proved about ``outputs[n]``.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Claim, Kernel, vector
    >>> from derive.functions import RowSum
    >>> from derive.symbols import CLASSES as T, s
    >>> g, G = vector("g", lambda rng: rng.normal(0, 1)), sp.Symbol("G", real=True)
    >>> claim = Claim("kernel_total", "Kernel total", (), sp.Sum(g[s], (s, 1, T)), "definition", ())
    >>> Kernel("total", (G,), (RowSum(G),), "sum_j g_j", (claim,)).name
    'total'
    """

    name: str
    args: tuple
    outputs: tuple
    doc: str
    claims: tuple = ()
    rows: bool = True  # a row kernel (buffered, run in blocks) or an elementwise one
    #: the same outputs in a faster form that is accurate only for moderate logits (the
    #: caller's ``moderate=True``), each proved against the same claims; () for none
    moderate: tuple = ()
    #: run under numpy.errstate(all="ignore") (a kernel called directly, not through a
    #: runtime that sets it: underflow to a subnormal is not an error there)
    quiet: bool = False

    def __post_init__(self):
        if len(self.claims) != len(self.outputs):
            raise ValueError(f"kernel {self.name!r}: {len(self.outputs)} outputs but "
                             f"{len(self.claims)} claims; every output needs its claim")
        if self.moderate and len(self.moderate) != len(self.outputs):
            raise ValueError(f"kernel {self.name!r}: {len(self.outputs)} outputs but "
                             f"{len(self.moderate)} in its moderate form")

    @property
    def claim_list(self) -> tuple:
        """Every claim of every output, in order, each once."""
        found = []
        for claims in self.claims:
            for claim in (claims if isinstance(claims, tuple) else (claims,)):
                if claim not in found:
                    found.append(claim)
        return tuple(found)

    @property
    def proofs(self) -> tuple:
        """One derivation per (output, claim), built from the printed expression; the
        moderate form's under the claim's key and title marked as such."""
        found = []
        for output, claims in zip(self.outputs, self.claims):
            for claim in (claims if isinstance(claims, tuple) else (claims,)):
                found.append(kernel_proof(claim, output))
        for output, claims in zip(self.moderate, self.claims):
            for claim in (claims if isinstance(claims, tuple) else (claims,)):
                found.append(kernel_proof(moderate_claim(claim), output))
        return tuple(found)


def moderate_claim(claim: Claim) -> Claim:
    """``claim`` about the moderate form of an output (its own key and title)."""
    return replace(claim, key=f"{claim.key}_moderate", title=f"{claim.title} (moderate form)")


def kernel_proof(claim: Claim, output: sp.Expr) -> Derivation:
    """The derivation that ``output`` (an array expression) is what ``claim`` states."""
    keys = [lem for lem in claim.lemmas if isinstance(lem, str)]
    if keys:
        raise ValueError(f"claim {claim.key!r} cites {', '.join(keys)} by key: register its kernel "
                         "with Catalogue.kernel, which resolves keys to derivations")
    lemmas = tuple(claim.lemmas)
    names = ", ".join(f"'{lemma.title}'" for lemma in lemmas)
    try:
        form = to_indexed(output, claim.index)
    except ValueError as err:
        raise engine.StepRejected(claim.title, len(claim.via) + 1, "the kernel's form",
                                  claim.definition, sp.Symbol(str(output)),
                                  f"the kernel expression has no index form: {err}") from None
    return Derivation(claim.key, claim.title, claim.assumptions, [
        Step(claim.definition, claim.why), *claim.via,
        Step(form, f"the kernel's printed form, by {names}", lemma=lemmas),
    ], min_classes=claim.min_classes, section="kernels")


def kernel_proofs(specs: Iterable[Kernel]) -> list[Derivation]:
    """The proof of every output of every kernel, each distinct proof once."""
    proofs, seen = [], set()
    for kernel in specs:
        for proof in kernel.proofs:
            key = engine._known_fingerprint(proof)  # None: its assumptions cannot be compared
            if key is None or key not in seen:
                seen.add(key)
                proofs.append(proof)
    return proofs


def prove_kernels(specs: Iterable[Kernel], numeric: bool = True) -> list[engine.DerivationCheck]:
    """Check the proof of every output of every kernel, and (``numeric``) run the printed
    NumPy of every kernel against the index form of its outputs (raises a StepRejected
    on the first failure)."""
    specs = list(specs)
    reports = [engine.check(proof, numeric=numeric) for proof in kernel_proofs(specs)]
    if numeric:
        check_printed(specs)
    return reports


# --------------------------------------------------------------------------- the printed code
#: the class counts (from the claims' min_classes up) and rows the printed NumPy of every
#: kernel is run on; its outputs must agree with their index form, evaluated by the
#: engine at high precision on the same values, to this relative tolerance (float64
#: against the exact value: a kernel that computes something else misses it by far)
PRINTED_CLASSES = (1, 6, 14)
PRINTED_ROWS = 3
PRINTED_TOLERANCE = 1e-8


def check_printed(specs, seed: int = engine.DEFAULT_SEED) -> None:
    """Run the printed NumPy of every kernel (both forms, with ``moderate``) on values
    drawn as the proofs draw them (the content's instance, the claims' assumptions: one
    instance per row) and compare every output with its index form (what an
    ArrayFunction's ``indexed`` says it computes) evaluated by the engine on the same
    values. A kernel whose printed code computes something else is rejected: the proof
    is about the index form, so the two must be the same function.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Claim, Kernel, define_arrays, vector
    >>> from derive.codegen import check_printed
    >>> from derive.functions import RowSum
    >>> from derive.symbols import CLASSES as T, s
    >>> g, G = vector("g", lambda rng: rng.normal(0, 1)), sp.Symbol("G", real=True)
    >>> define_arrays({G: g})
    >>> claim = Claim("kernel_total", "Kernel total", (), sp.Sum(g[s], (s, 1, T)), "definition", ())
    >>> check_printed([Kernel("total", (G,), (RowSum(G),), "sum_j g_j", (claim,))])
    """
    specs = list(specs)
    namespace: dict = {}
    exec(compile(render(specs, "import numpy"), "<printed kernels>", "exec"), namespace)  # noqa: S102 - our own printed code
    for kernel in specs:
        forms = [(False, kernel.outputs)] + ([(True, kernel.moderate)] if kernel.moderate else [])
        low = max([1] + [claim.min_classes for claim in kernel.claim_list])
        rng = np.random.default_rng(seed + zlib.crc32(kernel.name.encode()))
        for n_classes in sorted({max(low, n) for n in PRINTED_CLASSES}):
            envs = _printed_instances(kernel, n_classes, rng)
            if envs is None:
                continue
            args = _printed_arguments(kernel, envs)
            for moderate, outputs in forms:
                call = {"moderate": True} if moderate else {}
                try:
                    got = namespace[kernel.name](*args, **call) if kernel.rows else namespace[kernel.name](*args)
                except Exception as err:  # noqa: BLE001 - the printed code fails: a rejection
                    raise _printed_rejection(kernel, f"its printed NumPy raises {type(err).__name__}: "
                                                     f"{err} (T = {n_classes})") from None
                got = got if isinstance(got, tuple) else (got,)
                for number, (output, value) in enumerate(zip(outputs, got)):
                    _compare_printed(kernel, number, output, np.asarray(value), envs, moderate)


def _claim_index(kernel: Kernel) -> sp.Symbol:
    return kernel.claim_list[0].index if kernel.claim_list else Claim.index


def _printed_instances(kernel: Kernel, n_classes: int, rng) -> list | None:
    """One instance per row, drawn as the engine draws the proofs' instances (the
    scalars that are arguments of a row kernel are the same on every row)."""
    from . import symbols

    assumptions = list(dict.fromkeys(h for claim in kernel.claim_list for h in claim.assumptions))
    forms = [to_indexed(out, _claim_index(kernel)) for out in kernel.outputs + kernel.moderate]
    envs = []
    for _ in range(PRINTED_ROWS):
        env = symbols.new_instance(rng, n_classes, symbols.draw_size(rng))
        symbols.draw_declared(env, forms, rng)
        if envs and kernel.rows:
            for arg in kernel.args:
                if arg not in MEANINGS and arg in envs[0]:
                    env[arg] = envs[0][arg]
        try:
            for assumption in assumptions:
                assumption.sample(env)
        except Exception:  # noqa: BLE001 - not drawable at this T: the proofs say where
            return None
        envs.append(env)
    return envs


def _printed_arguments(kernel: Kernel, envs: list) -> list:
    """The kernel's arguments built from the instances: a vector's components as a row,
    an index (the target) as a 0-based int64 column, a scalar of a row kernel as a
    Python float (elementwise kernels: one entry per instance)."""
    from . import symbols

    args = []
    for arg in kernel.args:
        meaning = MEANINGS.get(arg, arg)
        if isinstance(meaning, sp.IndexedBase):
            args.append(np.array([[float(env[symbols.component(meaning, (j,))]) for j in range(1, env.T + 1)]
                                  for env in envs], dtype=np.float64))
        elif meaning in symbols.INDEX_RANGES:
            args.append(np.array([[int(env[meaning]) - 1] for env in envs], dtype=np.int64))
        elif kernel.rows:
            args.append(float(engine.evaluate(meaning, envs[0])))
        else:
            args.append(np.array([float(engine.evaluate(meaning, env)) for env in envs]))
    return args


def _printed_rejection(kernel: Kernel, reason: str, form=sp.S.Zero, number: int = 0):
    claim = kernel.claim_list[0] if kernel.claim_list else None
    return engine.StepRejected(
        claim.title if claim else kernel.name, len(claim.via) + 1 if claim else 1,
        "the kernel's printed NumPy", form, sp.Symbol(f"{kernel.name}(...)[{number}]"),
        f"kernel {kernel.name!r}: {reason}")


def _compare_printed(kernel: Kernel, number: int, output, value, envs: list, moderate: bool) -> None:
    index = _claim_index(kernel)
    form = to_indexed(output, index)
    which = "moderate form" if moderate else "form"
    if value.size not in (len(envs), len(envs) * envs[0].T):
        raise _printed_rejection(kernel, f"the printed NumPy ({which}, output {number}) returns shape "
                                         f"{value.shape} for {len(envs)} rows of T = {envs[0].T}", form, number)
    value = value.reshape(len(envs), -1)
    for row, env in enumerate(envs):
        shared = engine.evaluator(env)
        for col in range(value.shape[1]):
            try:
                exact = engine.evaluate(form.xreplace({index: sp.Integer(col + 1)}), env, shared)
            except engine.EvaluationError:
                continue  # no exact value here: the proofs decide what the form means
            got = float(value[row, col])
            if np.isfinite(got) and abs(got - float(mpmath.re(exact))) <= PRINTED_TOLERANCE * (1 + abs(exact)):
                continue
            raise _printed_rejection(
                kernel, f"the printed NumPy ({which}, output {number}) gives {got!r} at row {row + 1}, "
                f"column {col + 1} (T = {env.T}), where its index form {sp.sstr(form)} is "
                f"{mpmath.nstr(exact, 15)}: the code an ArrayFunction prints must compute what its "
                "indexed form says", form, number)


#: the range of logits the runtime calls "moderate" (``moderate=True``): e^a and e^-a
#: are normal there, and so are T e^m and e^-m / T for any T below e^100
MODERATE = (-708.0, 600.0)


# --------------------------------------------------------------------------- printing
class KernelPrinter(NumPyPrinter):
    """SymPy's NumPy printer, with ``numpy.`` as the module name and the class axis
    (``axis``: -1, the last; the array functions print reductions along it)."""

    def __init__(self, axis: int = -1):
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False})
        self.axis = axis
        #: index column -> the name of its flat index in the kernel being printed
        self.flat_names: dict = {}

    def _print_Symbol(self, expr):
        return expr.name


# --------------------------------------------------------------------------- buffered form
_COLUMN_FUNCS = (RowArgmax, RowSum, SumExceptMax, Take, SelectArgmax)


def is_full(expr, temps) -> bool:
    """True if ``expr`` has the shape of the logits (rows x T), False for a column."""
    if expr in (A, Y):
        return True
    if isinstance(expr, sp.Symbol):
        return temps.get(expr, False)
    if expr.is_Number or isinstance(expr, _COLUMN_FUNCS) or getattr(expr, "is_column", False) or expr == C:
        return False
    return any(is_full(arg, temps) for arg in expr.args)


@dataclass
class Statement:
    target: sp.Symbol
    expr: sp.Expr
    full: bool
    buffer: str = ""  # where a full value lives: "scratch[i]" or "out[i]"
    extra: tuple = ()  # scratch buffers a helper uses during the statement


def to_statements(outputs):
    """CSE, then every full-shape composite subexpression in its own statement, so that
    each can write into a preallocated buffer (``out=``) instead of a fresh array."""
    names = sp.numbered_symbols("t")
    replacements, reduced = sp.cse(list(outputs), symbols=names, order="canonical")
    statements, temps = [], {}

    def hoist(expr, top):
        if expr.is_Atom:
            return expr
        args = [hoist(arg, False) for arg in expr.args]
        node = expr.func(*args, evaluate=False) if isinstance(expr, (sp.Add, sp.Mul)) else expr.func(*args)
        if not top and is_full(node, temps):
            sym = next(names)
            statements.append(Statement(sym, node, True))
            temps[sym] = True
            return sym
        return node

    for sym, expr in replacements:
        body = hoist(expr, True)
        full = is_full(body, temps)
        statements.append(Statement(sym, body, full))
        temps[sym] = full
    results = []
    for expr in reduced:
        body = hoist(expr, True)
        if body.is_Atom:
            results.append(body)
            continue
        sym = next(names)
        full = is_full(body, temps)
        statements.append(Statement(sym, body, full))
        temps[sym] = full
        results.append(sym)
    return statements, results


def assign_buffers(statements, results) -> int:
    """Give each full-shape value a buffer, reusing dead ones; returns the scratch count.

    A full result goes straight into ``out[i]``. PutAt changes its first argument in
    place, so its value takes over that argument's buffer (which must be dead after).
    """
    last_use = {}
    for index, st in enumerate(statements):
        for sym in st.expr.free_symbols:
            last_use[sym] = index
    for sym in results:
        last_use[sym] = len(statements)
    holder, free, count = {}, [], [0]
    # a value that an in-place PutAt (or a chain of them) turns into a result is written
    # into that result's output array from the start
    bound = {}
    for st in reversed(statements):  # (a PutAt's source comes before it)
        if isinstance(st.expr, PutAt) and (st.target in results or st.target in bound):
            bound[st.expr.args[0]] = (f"out[{results.index(st.target)}]" if st.target in results
                                      else bound[st.target])

    def take():
        if free:
            free.sort()
            return free.pop(0)
        count[0] += 1
        return count[0] - 1

    for index, st in enumerate(statements):
        dying = [sym for sym in st.expr.free_symbols if last_use.get(sym) == index and sym in holder]
        if st.full:
            if isinstance(st.expr, PutAt):
                source = st.expr.args[0]
                if last_use.get(source) != index:
                    raise AssertionError(f"{source} is used after the in-place PutAt in {st.expr}")
                st.buffer = holder.pop(source)
                dying = [sym for sym in dying if sym != source]
            elif st.target in results:
                st.buffer = f"out[{results.index(st.target)}]"
            elif st.target in bound:
                st.buffer = bound[st.target]
            else:
                st.buffer = f"scratch[{take()}]"
            if isinstance(st.expr, ExpDiff):
                st.extra = tuple(f"scratch[{take()}]" for _ in range(3))
                free.extend(int(b[8:-1]) for b in st.extra)
            holder[st.target] = st.buffer
        for sym in dying:
            buf = holder.pop(sym)
            if buf.startswith("scratch["):
                free.append(int(buf[8:-1]))
    for st in statements:  # the callers read full results from out (and reuse scratch)
        if st.full and st.target in results and st.buffer != f"out[{results.index(st.target)}]":
            raise AssertionError(f"the full result {st.target} = {st.expr} would be left in {st.buffer}")
    return count[0]


def print_full(st: Statement, printer: KernelPrinter) -> str:
    """One statement that writes a full-shape value into its buffer."""
    e, out = st.expr, st.buffer
    p = printer.doprint
    if hasattr(e, "_numpycode_into"):  # a function that prints its own buffered form
        return e._numpycode_into(printer, out)
    if isinstance(e, ExpDiff):
        return f"_exp_difference({p(e.args[0])}, {p(e.args[1])}, {out}, {', '.join(st.extra)}, moderate)"
    if isinstance(e, PutAt):
        return p(e)
    if isinstance(e, DiffHi):
        return f"numpy.subtract({p(e.args[0])}, {p(e.args[1])}, out={out})"
    if isinstance(e, Quotient):
        return f"numpy.divide({p(e.args[0])}, {p(e.args[1])}, out={out})"
    if isinstance(e, ZeroTimes):
        return f"_zero_safe_product({p(e.args[0])}, {p(e.args[1])}, {out})"
    if isinstance(e, (sp.exp, log1p)):
        name = "exp" if isinstance(e, sp.exp) else "log1p"
        return f"numpy.{name}({p(e.args[0])}, out={out})"
    if isinstance(e, sp.Mul):
        factors = list(e.args)
        if len(factors) == 2 and factors[0] == -1:
            return f"numpy.negative({p(factors[1])}, out={out})"
        first = f"numpy.multiply({p(factors[0])}, {p(factors[1])}, out={out})"
        return "; ".join([first] + [f"numpy.multiply({out}, {p(f)}, out={out})" for f in factors[2:]])
    if isinstance(e, sp.Add):
        plus = [t for t in e.args if not (isinstance(t, sp.Mul) and t.args[0] == -1)]
        minus = [-t for t in e.args if isinstance(t, sp.Mul) and t.args[0] == -1]
        if not plus:
            plus, minus = [-minus[0]], minus[1:]
        ops = [("add", t) for t in plus[1:]] + [("subtract", t) for t in minus]
        head = plus[0]
        parts = []
        for k, (op, term) in enumerate(ops):
            left = p(head) if k == 0 else out
            parts.append(f"numpy.{op}({left}, {p(term)}, out={out})")
        return "; ".join(parts)
    if isinstance(e, sp.Pow):  # x**2, x**-1, x**(1/2): one NumPy power into the buffer
        return f"numpy.power({p(e.base)}, {p(e.exp)}, out={out})"
    raise NotImplementedError(f"no buffered printing for {type(e).__name__}: {e}")


#: the functions that address one entry per row through an index column (their second
#: argument: the argmax, the targets), by its flat index
_INDEXED = (Take, SumExceptMax, PutAt)


def index_columns(expr) -> list:
    """The index columns that ``expr`` addresses through the helpers, in order of use:
    the ones that are names (after CSE) get their flat index computed once per call."""
    found = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, _INDEXED) and isinstance(node.args[1], sp.Symbol) and node.args[1] not in found:
            found.append(node.args[1])
    return found


def _bind_flat_indices(expr, printer, first_arg) -> list[str]:
    """Lines that compute the flat index of each index column ``expr`` is the first to
    use (``at_<column> = <column>[:, 0] + starts``, with ``starts`` where each row of
    the logits begins, computed once), bound in ``printer``."""
    lines = []
    for column in index_columns(expr):
        if column not in printer.flat_names:
            if not printer.flat_names:
                lines.append(f"    starts = numpy.arange(0, {first_arg}.size, {first_arg}.shape[-1])")
            printer.flat_names[column] = f"at_{column.name}"
            lines.append(f"    at_{column.name} = {column.name}[:, 0] + starts"
                         f"  # _flat_index({first_arg}, {column.name})")
    return lines


def scratch_count(kernel: Kernel) -> int:
    counts = []
    for outputs in (kernel.outputs, kernel.moderate):
        if outputs:
            statements, results = to_statements(outputs)
            counts.append(assign_buffers(statements, results))
    return max(counts)


def _docstring(kernel: Kernel, extra=()) -> str:
    doc = [kernel.doc, "", *extra]
    for claim in kernel.claim_list:
        doc.append(f"Proved: {engine.plain(claim.title)} [{claim.key}].")
    doc.append("")
    for out in kernel.outputs:
        doc.append("Expression: " + sp.sstr(out))
    return textwrap.indent('"""' + "\n".join(doc).strip() + '\n"""', " " * 4)


def print_elementwise_kernel(kernel: Kernel, printer: KernelPrinter) -> str:
    """An elementwise kernel: CSE and plain NumPy expressions (any broadcastable shapes)."""
    names = sp.numbered_symbols("t")
    replacements, outputs = sp.cse(list(kernel.outputs), symbols=names, order="canonical")
    args = ", ".join(str(arg) for arg in kernel.args)
    lines = [f"def {kernel.name}({args}):", _docstring(kernel)]
    lines += [f"    {sym} = {printer.doprint(expr)}" for sym, expr in replacements]
    lines.append(f"    return {', '.join(printer.doprint(out) for out in outputs)}")
    return "\n".join(lines)


def _print_body(outputs, printer: KernelPrinter, first_arg, indent: str = "    "):
    """The statements computing ``outputs`` into their buffers, and the return line:
    (lines, scratch count, which results are shaped like the logits)."""
    statements, results = to_statements(outputs)
    scratch = assign_buffers(statements, results)
    lines = []
    printer.flat_names = {}
    for st in statements:
        lines += _bind_flat_indices(st.expr, printer, first_arg)
        if st.full:
            code = print_full(st, printer)
            if isinstance(st.expr, PutAt) or ";" in code or hasattr(st.expr, "_numpycode_into"):
                lines += [f"    {part}" for part in code.split("; ")]
                lines.append(f"    {st.target} = {st.buffer}")
            else:
                lines.append(f"    {st.target} = {code}")
        else:
            lines.append(f"    {st.target} = {printer.doprint(st.expr)}")
    for r in results:
        lines += _bind_flat_indices(r, printer, first_arg)
    lines.append(f"    return {', '.join(printer.doprint(r) for r in results)}")
    full = [is_full(r, {st.target: st.full for st in statements}) for r in results]
    return [indent + line[4:] for line in lines], scratch, full


def print_kernel(kernel: Kernel, printer: KernelPrinter, name: str | None = None) -> str:
    if not kernel.rows:
        return print_elementwise_kernel(kernel, printer)
    first = kernel.args[0]
    body, scratch, full_results = _print_body(kernel.outputs, printer, first)
    fast = []
    if kernel.moderate:
        fast, fast_scratch, fast_full = _print_body(kernel.moderate, printer, first, " " * 8)
        if fast_full != full_results:
            raise ValueError(f"kernel {kernel.name!r}: its moderate form has outputs of other shapes")
        scratch = max(scratch, fast_scratch)
    args = ", ".join(str(arg) for arg in kernel.args)
    fname = name or kernel.name
    lines = [f"def {fname}({args}, out=None, scratch=None, moderate=False):"]
    doc = [kernel.doc, ""]
    doc += [f"out: {len(full_results)} arrays (or None) for the results; scratch: {scratch} arrays "
            f"shaped like the logits; moderate: every logit is in [{MODERATE[0]:g}, {MODERATE[1]:g}] "
            + ("(then the moderate form below runs)." if kernel.moderate else
               "(e^(a - m) as e^a e^-m, see _exp_difference)."), ""]
    for claim in kernel.claim_list:
        doc.append(f"Proved: {engine.plain(claim.title)} [{claim.key}].")
    for claim in (kernel.claim_list if kernel.moderate else ()):
        doc.append(f"Proved: {engine.plain(moderate_claim(claim).title)} [{moderate_claim(claim).key}].")
    doc.append("")
    for out in kernel.outputs:
        doc.append("Expression: " + sp.sstr(out))
    for out in kernel.moderate:
        doc.append("Moderate form: " + sp.sstr(out))
    lines.append(textwrap.indent('"""' + "\n".join(doc).strip() + '\n"""', " " * 4))
    lines.append(f"    scratch = _scratch({first}, {scratch}) if scratch is None else scratch")
    lines.append(f"    out = _outputs({first}, {full_results!r}) if out is None else out")
    if fast:
        lines.append("    if moderate:")
        lines += fast
    lines += body
    return "\n".join(lines)


def print_quiet(kernel: Kernel) -> str:
    """A kernel whose body runs under numpy.errstate(all="ignore"): the body printed as
    ``_NAME_body``, and ``NAME`` calling it."""
    body = print_kernel(kernel, KernelPrinter(-1), name=f"_{kernel.name}_body")
    args = ", ".join(str(arg) for arg in kernel.args)
    return (f"{body}\n\n\ndef {kernel.name}({args}, out=None, scratch=None, moderate=False):\n"
            f'    """{kernel.doc.splitlines()[0]} (floating-point exceptions ignored: see _{kernel.name}_body)."""\n'
            f"    with numpy.errstate(all=\"ignore\"):\n"
            f"        return _{kernel.name}_body({args}, out, scratch, moderate)")


BUFFER_HELPERS = "\n\n\n".join(inspect.getsource(f).strip() for f in (H._scratch, H._outputs))


def render(specs: Iterable[Kernel], header: str) -> str:
    """The source of a generated module: ``header``, the helpers the kernels use, the
    kernels, and the tables ``SCRATCH`` (scratch arrays per row kernel) and ``OUTPUTS``
    (per kernel, which outputs are shaped like the logits rather than a column)."""
    specs = list(specs)
    helpers = helpers_used([out for kernel in specs for out in kernel.outputs + kernel.moderate])
    parts = [header, BUFFER_HELPERS]
    parts += helpers
    parts += [print_quiet(kernel) if kernel.quiet else print_kernel(kernel, KernelPrinter(-1)) for kernel in specs]
    names = [k.name for k in specs]
    counts = ", ".join(f"{k.name!r}: {scratch_count(k)}" for k in specs if k.rows)
    parts.append("#: scratch arrays (shaped like the logits) each kernel needs\nSCRATCH = {" + counts + "}")
    shapes = ", ".join(f"{k.name!r}: {output_shapes(k)!r}" for k in specs if k.rows)
    parts.append("#: per row kernel, which outputs are shaped like the logits (the others are\n"
                 "#: columns, one value per row)\nOUTPUTS = {" + shapes + "}")
    parts.append("__all__ = [" + ", ".join(repr(n) for n in names) + "]")
    return "\n\n\n".join(parts) + "\n"


def output_shapes(kernel: Kernel) -> tuple:
    """For each output of a row kernel: True if shaped like the logits, False if a column."""
    statements, results = to_statements(kernel.outputs)
    full = {st.target: st.full for st in statements}
    return tuple(is_full(r, full) for r in results)


USER_HEADER = '''\
# Generated by softmax-derive from the catalogue {name!r} -- do not edit (SymPy {sympy}).
# Regenerate with `python -m derive generate --catalogue {source} --out DIR`.
"""{title}: kernels generated from proved forms.

Row kernels take C-contiguous float64 arrays with the classes along the last axis
(rows x T); integer targets are int64 columns (rows x 1, 0-based); row-level results
are columns (rows x 1). Scalars are Python floats.
"""
import numpy
'''


def write_module(specs: Iterable[Kernel], path: str | Path, title: str = "Generated kernels", name: str = "kernels",
                 source: str = "FILE", check_only: bool = False) -> tuple[bool, str]:
    """Prove every kernel, then write its NumPy module to ``path`` (or, with
    ``check_only``, compare). Returns (up to date, message); a kernel that does not
    match its claim raises a :class:`derive.StepRejected`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import sympy as sp
    >>> from derive import Claim, Kernel, define_arrays, vector, write_module
    >>> from derive.functions import RowSum
    >>> from derive.symbols import CLASSES as T, s
    >>> g, G = vector("g", lambda rng: rng.normal(0, 1)), sp.Symbol("G", real=True)
    >>> define_arrays({G: g})  # the array G is the vector g: G[row, j - 1] = g_j
    >>> claim = Claim("kernel_total", "Kernel total", (), sp.Sum(g[s], (s, 1, T)), "definition", ())
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "k.py"
    >>> ok, message = write_module([Kernel("total", (G,), (RowSum(G),), "sum_j g_j", (claim,))], path)
    >>> ok, "def total(G" in path.read_text()
    (True, True)
    """
    specs = list(specs)
    prove_kernels(specs)
    text = render(specs, USER_HEADER.format(name=name, source=source, title=title,
                                            sympy=sp.__version__))
    path = Path(path)
    if check_only:
        current = path.read_text() if path.exists() else ""
        if current == text:
            return True, f"{path} is up to date"
        return False, f"{path} is stale: run `python -m derive generate` and commit the result"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True, f"wrote {path} ({len(text.splitlines())} lines)"
