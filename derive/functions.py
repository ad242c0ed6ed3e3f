"""Array-level SymPy functions: the vocabulary of the generated NumPy kernels.

Stock ``lambdify`` prints ``log(Sum(exp(a[j]), (j, 1, T)))`` as the naive, overflowing
formula and cannot vectorize over an arbitrary number of classes. The kernels are
therefore written over whole arrays -- ``A`` (logits, shape rows x T), ``C`` (integer
targets, rows x 1) and ``Y`` (probability targets, rows x T) -- with the functions
below. Each class carries all of its forms in one place:

* ``indexed(j, tr)`` -- its meaning in index notation (component ``j``; row-level
  values do not depend on ``j``), built from the index forms of *all* of its arguments
  (an index column is used, never assumed to be the target or the argmax). The code
  generator proves every output of every kernel, in this form, equal to its stated
  definition.
* ``fdiff`` -- its derivative, where it has one.
* ``_eval_rewrite_as_elementary`` -- the same value in elementary functions (exact
  arithmetic: a rounding error is 0 there).
* ``_latex`` and ``_numpycode`` -- how reports and generated code print it.
* ``helper`` -- the NumPy source of a helper it calls, emitted once into the generated
  module (which then imports nothing but NumPy).

What the arrays themselves mean in index notation is content: the content that writes
kernels registers it with :func:`define_arrays` (``A`` is component ``j`` of its logits,
``C`` its true class, and which index names the argmax of the logits), and
:func:`to_indexed` uses it.
"""
from __future__ import annotations

import inspect

import sympy as sp
from sympy import Function, KroneckerDelta, Sum

from . import kernel_helpers as H
from . import notation
from .symbols import CLASSES, s

#: the array symbols the code generator knows the shapes of (content adds its own
#: arguments, which print by name)
A = sp.Symbol("A", real=True)  # logits, rows x T
C = sp.Symbol("C", integer=True)  # integer targets, rows x 1
Y = sp.Symbol("Y", real=True)  # probability targets, rows x T

def AXIS_OF(printer) -> str:
    return f"axis={printer.axis}, keepdims=True"


def operand(printer, arg) -> str:
    """``arg`` printed for use as an operand: parenthesized unless it is atomic."""
    text = printer.doprint(arg)
    return text if (arg.is_Atom or isinstance(arg, Function)) else f"({text})"


def flat_index(printer, x, k) -> str:
    """The index column ``k`` printed as the flat index the helpers take (see
    ``kernel_helpers._flat_index``): the name a row kernel bound it to once per call
    (``printer.flat_names``, filled by the code generator), else computed in place
    from the array ``x`` it indexes."""
    name = getattr(printer, "flat_names", {}).get(k)
    return name if name is not None else f"_flat_index({printer.doprint(x)}, {printer.doprint(k)})"


class ArrayFunction(Function):
    """Base class: a function of whole arrays along the class axis (the last one).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.functions import A, RowSum
    >>> from derive.symbols import j
    >>> g = sp.IndexedBase("g")
    >>> RowSum(A).indexed(j, lambda e, j: g[j] if e == A else e)
    Sum(g[s], (s, 1, T))
    """

    helpers: tuple = ()  # NumPy helpers (functions of derive.kernel_helpers) it prints calls to
    helper_name: str = ""

    def indexed(self, j, tr):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _numpycode(self, printer):
        args = ", ".join(printer.doprint(arg) for arg in self.args)
        return f"{self.helper_name}({args})"


class RowArgmax(ArrayFunction):
    """k = the first index of a largest logit (per row, a column of int64).

    Indexed: k, the index that the assumption 'k is the argmax of a' names -- so only
    the argmax of the logits themselves, or of the logits times a positive factor
    (a/tau with tau > 0: the same index), has an index form (of anything else there is
    no closed form to prove against)."""

    nargs = 1

    def indexed(self, j, tr):
        logits, top = tr(A, j), notation.current().argmax
        if top is None or not isinstance(logits, sp.Indexed):
            raise ValueError(f"RowArgmax of {self.args[0]} has no index form: no content has "
                             "registered the logits A and their argmax index (define_arrays)")
        of = tr(self.args[0], j)
        factor = sp.simplify(of / logits)
        if not (factor.is_positive and not factor.has(logits.base) and j not in factor.free_symbols):
            raise ValueError(f"RowArgmax of {self.args[0]} has no index form: only the argmax "
                             f"of the logits A is known (as {top}), not of {sp.sstr(of)}")
        return top

    def _latex(self, printer):
        return r"\operatorname{argmax}_j " + printer.doprint(self.args[0]) + "_j"

    def _numpycode(self, printer):
        # the method, not numpy.argmax(..., keepdims=True): 1-2 us less per call, which
        # counts on small batches
        return f"{operand(printer, self.args[0])}.argmax(axis=-1)[:, None]"


class RowSum(ArrayFunction):
    """sum_j x_j (per row, kept as a column), pairwise summation."""

    nargs = 1
    def indexed(self, j, tr):
        return Sum(tr(self.args[0], s), (s, 1, CLASSES))

    def fdiff(self, argindex=1):
        return sp.Integer(1)

    def _latex(self, printer):
        return r"\sum_j " + printer.parenthesize(self.args[0], 1000)

    def _numpycode(self, printer):
        return f"numpy.sum({printer.doprint(self.args[0])}, {AXIS_OF(printer)})"


class Take(ArrayFunction):
    """x_c: the entry of each row at the index in a column (the target c, the argmax k)."""

    nargs = 2
    helper_name = "_take"
    helpers = (H._flat_index, H._take, H._put)

    def indexed(self, j, tr):
        return tr(self.args[0], tr(self.args[1], j))  # the index column: c or k

    def _latex(self, printer):
        return printer.doprint(self.args[0]) + "_{" + printer.doprint(self.args[1]) + "}"

    def _numpycode(self, printer):
        x, cls = self.args
        return f"_take({printer.doprint(x)}, {flat_index(printer, x, cls)})"


class DiffHi(ArrayFunction):
    """fl(x - y): the difference rounded to float64. Exact value: x - y."""

    nargs = 2

    def indexed(self, j, tr):
        return tr(self.args[0], j) - tr(self.args[1], j)

    def fdiff(self, argindex=1):
        return sp.Integer(1) if argindex == 1 else sp.Integer(-1)

    def _eval_rewrite_as_elementary(self, x, y, **kwargs):
        return x - y

    def _latex(self, printer):
        return r"\operatorname{fl}\left(%s - %s\right)" % tuple(printer.doprint(arg) for arg in self.args)

    def _numpycode(self, printer):
        x, y = (operand(printer, arg) for arg in self.args)
        return f"({x} - {y})"


class DiffLo(ArrayFunction):
    """(x - y) - fl(x - y): the rounding error of the difference, exactly (TwoSum).

    0 in exact arithmetic, so it adds nothing to the proved formula; in floating point
    it restores the bits that ``exp`` would otherwise amplify. 0 where the difference
    is not finite.
    """

    nargs = 2
    helper_name = "_difference_error"
    helpers = (H._difference_error,)

    def indexed(self, j, tr):
        return sp.Integer(0)

    def fdiff(self, argindex=1):
        return sp.Integer(0)

    def _eval_rewrite_as_elementary(self, x, y, **kwargs):
        return sp.Integer(0)

    def _latex(self, printer):
        return r"\operatorname{err}\left(%s - %s\right)" % tuple(printer.doprint(arg) for arg in self.args)


class ExpDiff(ArrayFunction):
    """e^{x - y}, computed as e^{hi} (1 + lo) with hi + lo = x - y exactly.

    The plain ``exp(x - y)`` has a relative error of |x - y| times the rounding error
    of the subtraction: hundreds of ULPs when logits are spread over thousands.
    """

    nargs = 2
    helper_name = "_exp_difference"
    helpers = (H._exp_difference,)

    def indexed(self, j, tr):
        return sp.exp(tr(self.args[0], j) - tr(self.args[1], j))

    def fdiff(self, argindex=1):
        return self if argindex == 1 else -self

    def _eval_rewrite_as_elementary(self, x, y, **kwargs):
        return sp.exp(x - y)

    def _latex(self, printer):
        return r"e^{%s - %s}" % tuple(printer.doprint(arg) for arg in self.args)


class SumExceptMax(ArrayFunction):
    """sum_{j != k} e_j with k the (first) argmax of the logits: the tail s' of Z e^{-m}.

    Arguments: e and the argmax column k. Summed with the term k left out (not
    subtracted afterwards), so a tail far below one ULP of 1 keeps all of its digits.
    """

    nargs = 2
    helper_name = "_sum_except"
    helpers = (H._row_sum, H._sum_except)

    def indexed(self, j, tr):
        e, skip = self.args
        return Sum(tr(e, s) * (1 - KroneckerDelta(s, tr(skip, j))), (s, 1, CLASSES))

    def _latex(self, printer):
        return r"\sum_{j \ne k} " + printer.parenthesize(self.args[0], 1000)

    def _numpycode(self, printer):
        e, k = self.args
        return f"_sum_except({printer.doprint(e)}, {flat_index(printer, e, k)})"


class SumExcept(SumExceptMax):
    """sum_{j != k} x_j for any terms x (e^{a_j} in the moderate forms, whose term k is
    e^m, not 1): summed with the term k left out, which is then given back its value.
    Arguments: x and the argmax column k."""

    helper_name = "_sum_except_keep"
    helpers = (H._row_sum, H._sum_except_keep)

    def _numpycode(self, printer):
        x, k = self.args
        return f"_sum_except_keep({printer.doprint(x)}, {flat_index(printer, x, k)})"


class Quotient(ArrayFunction):
    """x / y as one correctly rounded division (never x * (1/y), which rounds twice)."""

    nargs = 2

    def indexed(self, j, tr):
        return tr(self.args[0], j) / tr(self.args[1], j)

    def fdiff(self, argindex=1):
        x, y = self.args
        return 1 / y if argindex == 1 else -x / y ** 2

    def _eval_rewrite_as_elementary(self, x, y, **kwargs):
        return x / y

    def _latex(self, printer):
        return r"\frac{%s}{%s}" % tuple(printer.doprint(arg) for arg in self.args)

    def _numpycode(self, printer):
        x, y = (operand(printer, arg) for arg in self.args)
        return f"({x} / {y})"


class ZeroTimes(ArrayFunction):
    """y x with 0 * x = 0 even for x = +inf (a class with zero target weight)."""

    nargs = 2
    helper_name = "_zero_safe_product"
    helpers = (H._zero_safe_product,)

    def indexed(self, j, tr):
        return tr(self.args[0], j) * tr(self.args[1], j)

    def _eval_rewrite_as_elementary(self, y, x, **kwargs):
        return y * x

    def _latex(self, printer):
        return printer.doprint(self.args[0] * self.args[1])


class SelectArgmax(ArrayFunction):
    """if c = k (the target is the argmax) then u else w, per row. Arguments: c, k, u, w."""

    nargs = 4

    def indexed(self, j, tr):
        cls, top, if_max, otherwise = self.args
        return sp.Piecewise((tr(if_max, j), sp.Eq(tr(cls, j), tr(top, j))), (tr(otherwise, j), True))

    def _latex(self, printer):
        _, _, u, w = (printer.doprint(arg) for arg in self.args)
        return r"\begin{cases} %s & c = k \\ %s & c \ne k \end{cases}" % (u, w)

    def _numpycode(self, printer):
        cls, top, u, w = (printer.doprint(arg) for arg in self.args)
        return f"numpy.where({cls} == {top}, {u}, {w})"


class PutAt(ArrayFunction):
    """x with its entry at the target c replaced by u (per row)."""

    nargs = 3
    helper_name = "_put_at_target"
    helpers = (H._put_at_target,)

    def indexed(self, j, tr):
        x, where, u = self.args
        return sp.Piecewise((tr(u, j), sp.Eq(j, tr(where, j))), (tr(x, j), True))

    def _latex(self, printer):
        x, u = printer.doprint(self.args[0]), printer.doprint(self.args[2])
        at = "k" if isinstance(self.args[1], RowArgmax) else "c"  # (the largest entry, or the target)
        return r"%s\big|_{%s \leftarrow %s}" % (x, at, u)

    def _numpycode(self, printer):
        x, c, u = self.args
        return f"_put_at_target({printer.doprint(x)}, {flat_index(printer, x, c)}, {printer.doprint(u)})"


def softplus(x: sp.Expr) -> sp.Expr:
    """softplus(x) = log(1 + e^x), in elementary functions."""
    return sp.log(1 + sp.exp(x))


def sigmoid(x: sp.Expr) -> sp.Expr:
    """sigma(x) = 1 / (1 + e^{-x}), in elementary functions."""
    return 1 / (1 + sp.exp(-x))


class Softplus(ArrayFunction):
    """softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}) (elementwise)."""

    nargs = 1
    helper_name = "_softplus"
    helpers = (H._softplus,)

    def indexed(self, j, tr):
        return softplus(tr(self.args[0], j))

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def _eval_rewrite_as_elementary(self, x, **kwargs):
        return softplus(x)

    def _latex(self, printer):
        return r"\operatorname{softplus}\left(%s\right)" % printer.doprint(self.args[0])


class Sigmoid(ArrayFunction):
    """sigma(x) = 1 / (1 + e^{-x}), from e^{-|x|} on either side (elementwise)."""

    nargs = 1
    helper_name = "_sigmoid"
    helpers = (H._sigmoid,)

    def indexed(self, j, tr):
        return sigmoid(tr(self.args[0], j))

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0]) * (1 - Sigmoid(self.args[0]))

    def _eval_rewrite_as_elementary(self, x, **kwargs):
        return sigmoid(x)

    def _latex(self, printer):
        return r"\sigma\left(%s\right)" % printer.doprint(self.args[0])


class AccurateRowSum(RowSum):
    """sum_j x_j (per row, a column) to within about one rounding of the exact sum, by
    splitting each term at a per-row power of two sigma into a part whose sum is exact
    and a tiny remainder (Rump's ExtractVector). For sums that the gradient multiplies
    (S_j sum_j u_j): a plain sum of T terms can be off by a few ULPs (5.6 ULP in the
    weighted gradient on near ties)."""

    helper_name = "_accurate_sum"
    helpers = (H._accurate_sum,)

    def _numpycode(self, printer):
        return f"_accurate_sum({printer.doprint(self.args[0])}, axis={printer.axis})"


class AccurateSumExcept(SumExceptMax):
    """sum_{j != k} x_j, accurate to about one rounding (terms of either sign: the
    weighted log-sum-exp). Arguments: x (a temporary of the kernel, changed in place)
    and the argmax column k."""

    helper_name = "_accurate_sum_except"
    helpers = (H._accurate_sum_except,)

    def _numpycode(self, printer):
        x, k = self.args
        return f"_accurate_sum_except({printer.doprint(x)}, {flat_index(printer, x, k)})"


class LogAbsSum(ArrayFunction):
    """log |x + y| for columns x, y, with x + y carried exactly as hi + lo (TwoSum):
    log|hi| + lo/hi, so a sum within an ULP of 1 keeps its digits as log1p would.
    Exact value: log |x + y|."""

    nargs = 2
    helper_name = "_log_abs_sum"
    helpers = (H._log_abs_sum,)

    def indexed(self, j, tr):
        return sp.log(sp.Abs(tr(self.args[0], j) + tr(self.args[1], j)))

    def _eval_rewrite_as_elementary(self, x, y, **kwargs):
        return sp.log(sp.Abs(x + y))

    def _latex(self, printer):
        return r"\log \left\lvert %s + %s \right\rvert" % tuple(printer.doprint(arg) for arg in self.args)


class SignSum(ArrayFunction):
    """sign(x + y) for columns x, y: the rounded sum has the exact sum's sign (and is 0
    only when it is)."""

    nargs = 2

    def indexed(self, j, tr):
        return sp.sign(tr(self.args[0], j) + tr(self.args[1], j))

    def _latex(self, printer):
        return r"\operatorname{sign}(%s + %s)" % tuple(printer.doprint(arg) for arg in self.args)

    def _numpycode(self, printer):
        x, y = (operand(printer, arg) for arg in self.args)
        return f"numpy.sign({x} + {y})"


# --------------------------------------------------------------------------- index notation
#: array symbol -> what it is in index notation: an IndexedBase (component j of it) or
#: an expression (the same for every j: an index column such as the target c, a scalar),
#: in the active notation (:mod:`derive.notation`); assigning defines an array there
MEANINGS = notation.ActiveTable("meanings", lambda active, array, meaning: active.define_arrays({array: meaning}))


def define_arrays(meanings: dict, argmax: sp.Symbol | None = None) -> None:
    """Register what array symbols mean in index notation, for :func:`to_indexed`: a
    vector (an IndexedBase: component ``j``) or an expression the same for every ``j``
    (an index column, a scalar); ``argmax`` is the index that the content's assumption
    "a_k is a largest logit" names, the index form of ``RowArgmax(A)``. Registering a
    symbol again replaces its meaning. Registered in the active notation
    (:func:`derive.notation.current`; a content's own: ``notation.define_arrays``).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.functions import RowSum, define_arrays, to_indexed
    >>> from derive.symbols import j
    >>> G = sp.Symbol("G", real=True)
    >>> define_arrays({G: sp.IndexedBase("g")})
    >>> to_indexed(RowSum(G) - G, j)
    -g[j] + Sum(g[s], (s, 1, T))
    """
    notation.current().define_arrays(meanings, argmax)


def to_indexed(expr: sp.Expr, j: sp.Symbol) -> sp.Expr:
    """Component ``j`` of an array expression, in the notation :func:`define_arrays`
    registered."""
    meaning = notation.current().meanings.get(expr)
    if meaning is not None:
        return meaning[j] if isinstance(meaning, sp.IndexedBase) else meaning
    if isinstance(expr, ArrayFunction):
        return expr.indexed(j, to_indexed)
    if not expr.args:
        return expr
    return expr.func(*[to_indexed(arg, j) for arg in expr.args])


def helpers_used(exprs) -> list[str]:
    """NumPy sources of the helpers the expressions need, dependencies first."""
    order = [Take, DiffLo, ExpDiff, SumExceptMax, SumExcept, ZeroTimes, PutAt, Softplus, Sigmoid, AccurateRowSum,
             AccurateSumExcept, LogAbsSum]
    used = {type(f) for e in exprs for f in e.atoms(ArrayFunction)} | {Take}
    if AccurateSumExcept in used:
        used.add(AccurateRowSum)
    if ExpDiff in used:
        used.add(DiffLo)
    # then the helpers of any other function (derive.stable's), in a fixed order
    order += sorted((cls for cls in used if cls not in order and cls.helpers), key=lambda cls: cls.__name__)
    functions = [f for cls in order if cls in used for f in cls.helpers]
    return [inspect.getsource(f).strip() for f in dict.fromkeys(functions)]  # each once
