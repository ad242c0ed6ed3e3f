"""The softmax content's language for :class:`derive.loss.Loss`: what a loss is written
in (the logits a, the target c or the soft label y, the softmax of any expression of
the logits) and how ``python -m derive loss NAME "EXPR"`` reads one.

In EXPR: the logits ``a``, the target ``c`` (onehot) or the label ``y`` (soft), the
inputs declared with ``--input`` (vectors) and the parameters declared with ``--param``
(any name, ``beta`` and ``gamma`` too); indices ``j`` (the output), ``s``, ``r`` (for
sums), ``T``; ``S(i)`` the softmax of a at ``i``; ``softmax(F, i)`` the softmax of any
expression F of the vectors (written bare: ``softmax(a/tau + v, c)``; ``onehot`` is
delta_{jc} inside F: ``softmax(s0*(a - mu*onehot), c)``); ``logsumexp(F)``;
``delta(i, k)``, ``Sum(f, (s, 1, T))``, ``log``, ``exp``.

>>> loss = read_loss("focal", "-(1 - S(c))**gamma*log(S(c))", ["gamma=0:4"], [], "onehot")
>>> loss.params
{gamma: (0.0, 4.0)}
"""
from __future__ import annotations

import sympy as sp
from sympy import Indexed, IndexedBase, KroneckerDelta, Sum, exp, log

from ..loss import Content, Loss, symbols_scalar
from ..symbols import vector
from . import definitions as D
from . import rules as R
from .notation import Y  # noqa: F401 - registers the kernels' arrays

ONEHOT = sp.Symbol("onehot")
_INDEX_NAMES = R.INDEX_NAMES


def _per_class(f, u):
    """F written over bare vectors, at class u (onehot: delta_{u c})."""
    def walk(e):
        if isinstance(e, IndexedBase):
            return e[u]
        if e == ONEHOT:
            return KroneckerDelta(u, D.c)
        if isinstance(e, Indexed) or not e.args:
            return e
        return e.func(*(walk(arg) for arg in e.args))
    return walk(sp.sympify(f))


def _parse_param(text: str):
    name, sep, rng = text.partition("=")
    lo, sep2, hi = rng.partition(":")
    if not (sep and sep2 and name.isidentifier()):
        raise ValueError(f"--param takes NAME=LO:HI (e.g. tau=0.25:4); got {text!r}")
    try:
        return name, float(lo), float(hi)
    except ValueError:
        raise ValueError(f"--param {text!r}: LO and HI must be numbers") from None


def _content():
    return CONTENT


def read_loss(name: str, text: str, params: list, inputs: list, labels: str = "onehot",
              min_classes: int = 1) -> Loss:
    """The :class:`derive.loss.Loss` that ``python -m derive loss`` declares (a
    ValueError naming the bad text for anything it cannot read)."""
    from sympy.parsing.sympy_parser import auto_number, factorial_notation, parse_expr, repeated_decimals

    if labels not in CONTENT.labels:
        raise ValueError(f"--labels must be one of {', '.join(CONTENT.labels)}; got {labels!r}")
    declared = {}
    for item in params:
        pname, lo, hi = _parse_param(item)
        declared[pname] = symbols_scalar(pname, lo, hi)
    vectors = {}
    for item in inputs:
        vname, _, rng = item.partition("=")
        if not vname.isidentifier() or vname in ("a", "y", "c", "S", "T"):
            raise ValueError(f"--input takes a new vector name (not a, y, c, S, T); got {item!r}")
        vectors[vname] = vector(vname, lambda r: r.normal(0, 2))
    names = {"a": D.a, "y": D.y, "T": D.T, "S": D.softmax, "delta": KroneckerDelta, "Sum": Sum,
             "log": log, "exp": exp, "onehot": ONEHOT,
             "softmax": lambda f, u: D.softmax(u, lambda v: _per_class(f, v)),
             "logsumexp": lambda f: D.logsumexp(lambda v: _per_class(f, v))}
    names.update({sym.name: sym for sym in _INDEX_NAMES})
    names.update(vectors)
    names.update(declared)  # a parameter may be called beta or gamma: the name is the parameter
    try:
        # no global names but the numbers' constructors: a name SymPy would take for one of
        # its functions (zeta, beta, gamma) is unknown unless declared
        numbers = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational}
        expr = parse_expr(text, local_dict=names, global_dict=numbers,
                          transformations=(auto_number, repeated_decimals, factorial_notation))
    except NameError as err:
        raise ValueError(f"unknown name in the loss {text!r}: {err} (declare parameters with "
                         "--param NAME=LO:HI and vectors with --input NAME)") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is reported with the text
        raise ValueError(f"cannot parse the loss {text!r}: {type(err).__name__}: {err}") from None
    if not isinstance(expr, sp.Expr):
        raise ValueError(f"the loss {text!r} is not an expression")
    R.check_indices(expr, text)
    if labels == "onehot" and expr.has(D.y):
        raise ValueError(f"the loss {text!r} uses y with --labels onehot: write it with the target c")
    if labels != "onehot" and expr.has(D.c):
        raise ValueError(f"the loss {text!r} uses the target c with --labels {labels}: use onehot")
    unused = [p for p in declared.values() if not expr.has(p)]
    if unused:
        raise ValueError(f"--param {unused[0]} is declared but the loss {text!r} does not use it")
    ranges = {sym: (float(lo), float(hi)) for sym, (lo, hi) in
              ((declared[n], _parse_param(item)[1:]) for n, item in zip(declared, params))}
    return Loss(name, expr, ranges, tuple(vectors.values()), labels, min_classes=min_classes, content=_content())


#: the softmax content, for :class:`derive.loss.Loss`
CONTENT = Content(
    logits=D.a, logits_array=sp.Symbol("A", real=True), target=D.c, target_array=sp.Symbol("C", integer=True),
    soft=D.y, soft_array=sp.Symbol("Y", real=True), index=D.j,
    labels={"onehot": (D.ONE_HOT,), "soft": (D.SOFT_LABEL,), "none": ()},
    base=(D.REAL_LOGITS,), rules_for=R.rules_for, recognise=R.recognise, parse=read_loss)
