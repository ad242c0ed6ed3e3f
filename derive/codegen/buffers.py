"""The buffered form of a row kernel: its outputs as a list of statements after common
subexpression elimination (:func:`to_statements`), each full-size temporary assigned a
reusable scratch buffer (:func:`assign_buffers`), and printed into it (:func:`print_full`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy as sp
from sympy.codegen.cfunctions import log1p

from ..functions import (
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
)

if TYPE_CHECKING:
    from .printer import KernelPrinter


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
