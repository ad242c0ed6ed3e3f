"""Printing a kernel: SymPy's NumPy printer with the class axis (:class:`KernelPrinter`),
the buffered form of a row kernel (:func:`print_kernel`, which writes into ``out`` and
``scratch`` buffers) and the plain elementwise form.
"""
from __future__ import annotations

import inspect
import textwrap
from collections.abc import Iterable

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from .. import engine
from .. import kernel_helpers as H
from ..functions import PutAt, SumExceptMax, Take, helpers_used
from .buffers import assign_buffers, is_full, print_full, to_statements
from .claims import Kernel, moderate_claim

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
