"""The softmax content's rewrite rules for :func:`derive.gradient`, and its rule sets.

Written against the machinery of :mod:`derive.autodiff` (``Rule``, ``Define``,
``through``, ``BEFORE_DIFF``...) as a user's own rules would be: the definition of the
softmax S as a named quantity (:data:`SOFTMAX`, or :func:`softmax_of` other logits such
as a/tau), what is known about it (``log S_j = a_j - log Z``, ``d log Z/da_i = S_i``,
``sum_j S_j = 1``), how a result is closed in S, and the FC layer a = W x + b for the
chain rule. The sets, in priority order:

* :data:`RULES` -- a loss of the logits a, closed in S = softmax(a), y and the user's
  symbols;
* :data:`FC_RULES` -- a loss of the FC layer's logits, differentiated by W, b or x
  through the chain rule (dL/da derived on its own);
* :func:`rule_set` -- either, for the softmax of other logits (``softmax_of``).

Users extend a set by concatenation (``RULES + (my_define,)``). :data:`LANGUAGE` is how
``python -m derive gradient`` reads a loss in this content's names.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import sympy as sp
from sympy import Derivative, Indexed, IndexedBase, KroneckerDelta, Sum, exp, log

from .. import engine
from ..autodiff import (
    ASSUMPTIONS,
    COUNT,
    DELTA_SUM,
    DERIVATIVE_LINEARITY,
    DIFF,
    SLOT,
    SUM_LINEARITY,
    Define,
    Language,
    Question,
    Rule,
    readable,
    through,
)
from ..symbols import scalar
from . import definitions as D


# --------------------------------------------------------------------------- matchers
def _is_partition(e) -> bool:
    """A sum of exponentials over one index, sum_r e^{g_r}: positive when non-empty."""
    return isinstance(e, Sum) and len(e.limits) == 1 and isinstance(e.function, exp)


def _is_inverse_partition(f, any_power: bool = False) -> bool:
    """1 / sum_r e^{g_r} (or, with ``any_power``, any negative integer power of it)."""
    if not (isinstance(f, sp.Pow) and _is_partition(f.base)):
        return False
    return f.exp == -1 or (any_power and f.exp.is_Integer and f.exp < 0)


def _log_of_softmax(e) -> bool:
    if not (isinstance(e, log) and isinstance(e.args[0], sp.Mul)):
        return False
    factors = sp.Mul.make_args(e.args[0])
    return (any(isinstance(f, exp) for f in factors) and any(_is_inverse_partition(f) for f in factors)
            and all(isinstance(f, exp) or _is_inverse_partition(f) for f in factors))


def _split_log_of_softmax(e, _context):
    """log(e^u / sum_r e^{g_r}) = u - log sum_r e^{g_r} (the denominator is positive)."""
    return sp.Add(*(f.args[0] if isinstance(f, exp) else -log(f.base) for f in sp.Mul.make_args(e.args[0])))


def _d_log_partition(e) -> bool:
    return (isinstance(e, Derivative) and len(e.variables) == 1 and isinstance(e.expr, log)
            and _is_partition(e.expr.args[0]))


def _diff_log_partition(e, _context):
    """d log sum_r e^{g_r} / dv = sum_r e^{g_r} dg_r/dv / sum_r e^{g_r}."""
    total, var = e.expr.args[0], e.variables[0]
    (r_, lo, hi), = total.limits
    g = total.function.args[0]
    return Sum(exp(g) * sp.diff(g, var), (r_, lo, hi)) / total


def _softmax_names(context) -> list:
    """The names defined as a softmax e^{g_u} / sum_r e^{g_r} (of any logits g)."""
    names = []
    for define in context.defines:
        num, den = sp.fraction(define.template)
        if isinstance(num, exp) and _is_partition(den):
            names.append(define)
    return names


def _unit_sum(e, context):
    if not (isinstance(e, Sum) and len(e.limits) == 1 and isinstance(e.function, Indexed)):
        return None
    var, lo, hi = e.limits[0]
    if any(e.function.base == d.base for d in _softmax_names(context)) \
            and e.function.indices == (var,) and (lo, hi) == (1, D.T):
        return sp.Integer(1)
    return None


def _fold_log(e, context):
    """u_j - log sum_r e^{u_r} -> log N_j for a name N defined as softmax(u), inside
    a sum of terms (the rest kept)."""
    if not isinstance(e, sp.Add):
        return None
    for define in _softmax_names(context):
        num, den = sp.fraction(define.template)
        g = num.args[0]
        wild = sp.Wild("u_", properties=[lambda x: x.is_Symbol or x.is_Integer])
        pattern = g.xreplace({SLOT: wild})
        if -log(den) not in e.args:
            continue
        for term in e.args:
            found = term.match(pattern)
            if found is not None and wild in found:
                return e - term + log(den) + log(define.base[found[wild]])
    return None


def _into_sum(e) -> bool:
    """(sum_r f_r) / Z with f_r holding e^{g_r}: the factor 1/Z may move inside."""
    if not isinstance(e, sp.Mul):
        return False
    sums = [f for f in e.args if isinstance(f, Sum) and len(f.limits) == 1 and f.function.has(exp)]
    return bool(sums) and any(_is_inverse_partition(f, any_power=True) for f in e.args)


def _move_into_sum(e, _context):
    """c sum_r f_r = sum_r c f_r for c free of r (renamed apart first)."""
    target = next(f for f in e.args if isinstance(f, Sum) and len(f.limits) == 1 and f.function.has(exp))
    outside = [f for f in e.args if f is not target]
    var = target.limits[0][0]
    if any(var in f.free_symbols for f in outside):
        return None
    return Sum(target.function * sp.Mul(*outside), target.limits[0])


def _distributable(e) -> bool:
    """(f + g) / Z with an exponential in f + g: distributing lets e^{a_u}/Z become S_u."""
    return (isinstance(e, sp.Mul) and any(_is_inverse_partition(f) for f in e.args)
            and any(isinstance(f, sp.Add) and f.has(exp) for f in e.args))


def _logit_inverse(define, u):
    """a_u in terms of log S_u and log Z, for S = softmax(g) with g linear in a_u."""
    num, den = sp.fraction(define.template)
    g = num.args[0]
    logits = [item for item in g.atoms(Indexed) if SLOT in item.indices]
    if len(logits) != 1:
        return None
    slot = sp.Dummy("t")
    g_t = g.xreplace({logits[0]: slot})
    if not g_t.is_polynomial(slot) or sp.degree(g_t, slot) != 1:
        return None
    # g(a_u) = log S_u + log Z  =>  a_u = (log S_u + log Z - g(0)) / g'(0)
    slope, offset = sp.diff(g_t, slot), g_t.xreplace({slot: 0})
    value = (log(define.base[u]) + log(den) - offset) / slope
    return logits[0].xreplace({SLOT: u}), value


def _unfold_logit(e, context):
    for define in _softmax_names(context):
        for u in e.indices:
            found = _logit_inverse(define, u)
            if found is not None and found[0] == e:
                return found[1]
    return None


class _UnfoldLogits(Rule):
    """Last resort when logits are left: a_u = log S_u + log Z (S = softmax(a)), for
    the logits outside exponentials (those inside are the partition function's own)."""

    def apply(self, expr, context):
        def walk(e):
            if isinstance(e, Indexed):
                return _unfold_logit(e, context) or e
            if not isinstance(e, sp.Basic) or e.is_Atom or isinstance(e, (exp, Derivative)):
                return e
            args = [walk(arg) for arg in e.args]
            return e if all(x is y for x, y in zip(args, e.args)) else e.func(*args)
        return walk(expr)



def _open_in_softmax(define: Define, expr: sp.Expr) -> bool:
    """``expr`` still holds what S stands for: an exponential, or a logit outside
    ``log Z`` (the closed forms are in S, the target and the user's symbols)."""
    logits = {item.base for item in define.template.atoms(Indexed)}
    partition = engine.canonical_bound(sp.fraction(define.template)[1])
    bare = engine.canonical_bound(expr).replace(
        lambda e: isinstance(e, log) and e.args[0] == partition, lambda e: sp.Integer(1))
    return bare.has(exp) or any(item.base in logits for item in bare.atoms(Indexed))


#: the name of the softmax outputs
S = IndexedBase("S", real=True)


def softmax_of(logits: Callable[[sp.Expr], sp.Expr], name: str, text: str) -> Define:
    """A Define rule naming S the softmax of the given logits (for a rule set that
    replaces :data:`SOFTMAX`), e.g. ``softmax_of(lambda u: a[u] / tau, ...)``; a form
    is closed once no exponential and no logit is left outside its log-partition."""
    return Define(name, text, base=S, body=lambda u: D.softmax(u, logits), is_open=_open_in_softmax)


# --------------------------------------------------------------------------- rules
#: log(e^u / sum_r e^{g_r}) = u - log sum_r e^{g_r}
LOG_OF_SOFTMAX = Rule("log_softmax", r"$\log S_j = a_j - \log Z$", _log_of_softmax, _split_log_of_softmax)
#: d log Z / da_i = S_i (for Z = sum_r e^{g_r}: sum_r e^{g_r} dg_r/dv / Z)
D_LOG_PARTITION = Rule("d_log_partition",
                       r"$\partial \log Z/\partial v = \sum_r e^{g_r}\,\partial g_r/\partial v \,/\, Z$ "
                       r"(so $\partial \log Z/\partial a_i = S_i$)", _d_log_partition, _diff_log_partition)
#: the softmax S_j = e^{a_j} / sum_k e^{a_k}
SOFTMAX = softmax_of(lambda u: D.a[u], "softmax", r"the definition $S_j = e^{a_j} / \sum_k e^{a_k}$")
#: sum_j S_j = 1 for a name defined as a softmax
UNIT_SUM = Rule("sums_to_one", r"softmax outputs sum to one: $\sum_j S_j = 1$",
                lambda e: isinstance(e, Sum), lambda e, context: _unit_sum(e, context) or e,
                inside_derivatives=False)
#: (sum_r f_r) / Z = sum_r f_r / Z, so that e^{g_r} / Z can become S_r inside
INTO_SUM = Rule("into_sum", r"a factor that does not depend on the summation index moves into $\sum$",
                _into_sum, lambda e, context: _move_into_sum(e, context) or e, inside_derivatives=False)
#: (f + g) / Z = f / Z + g / Z
DISTRIBUTE = Rule("distribute", "multiply out over $1/Z$", _distributable,
                  lambda e, _c: sp.expand_mul(e, deep=False), inside_derivatives=False)
#: a_u = log S_u + log Z, when logits are left and nothing else applies
UNFOLD_LOGITS = _UnfoldLogits("unfold_logits",
                              r"$a_j = \log S_j + \log Z$ (the definition of $S_j$, solved for $a_j$)",
                              inside_derivatives=False)
#: u_j - log sum_r e^{u_r} = log S_j
FOLD_LOG_SOFTMAX = Rule("fold_log_softmax", r"$a_j - \log Z = \log S_j$",
                        lambda e: isinstance(e, sp.Add), lambda e, context: _fold_log(e, context) or e,
                        inside_derivatives=False)
def _reciprocal_of_softmax(e, context):
    """e^{-g_u} sum_r e^{g_r} (times anything) = 1/S_u for a name S defined as softmax(g):
    the quotient rule leaves Z/e^{g_c} beside S_c^gamma when S_c is raised to a power."""
    for define in _softmax_names(context):
        inverse = sp.Pow(e, -1)
        folded = define.fold(inverse)
        if folded != inverse and folded.has(define.base):
            return sp.Pow(folded, -1)
    return None


def _has_partition_factor(e) -> bool:
    return isinstance(e, sp.Mul) and any(
        _is_partition(f) or (isinstance(f, sp.Pow) and _is_partition(f.base) and f.exp.is_positive)
        for f in e.args) and any(isinstance(f, exp) for f in e.args)


#: e^{-g_u} sum_r e^{g_r} = 1/S_u (a power of S_c differentiated)
RECIPROCAL = Rule("reciprocal_softmax", r"$e^{-a_c} \sum_r e^{a_r} = 1/S_c$ (the definition of $S_c$, inverted)",
                  _has_partition_factor, lambda e, context: _reciprocal_of_softmax(e, context) or e,
                  inside_derivatives=False)
#: the fully connected layer a_u = sum_n W_un x_n + b_u, as a named quantity
FC_LAYER = Define("fc_layer", r"$a = W x + b$: $a_j = \sum_n W_{jn} x_n + b_j$", base=D.a,
                  body=D.fc_logit)

# --------------------------------------------------------------------------- rule sets
#: how a body is prepared for differentiation, and the derivatives known in closed form
BEFORE_DIFF = (ASSUMPTIONS, LOG_OF_SOFTMAX, DELTA_SUM, SUM_LINEARITY, COUNT,
               DERIVATIVE_LINEARITY, D_LOG_PARTITION)
#: closing the result: the names, sums that equal one, logs of softmax outputs
AFTER_DIFF = (SOFTMAX, RECIPROCAL, UNIT_SUM, FOLD_LOG_SOFTMAX, INTO_SUM, DISTRIBUTE)
#: the last resort when logits are left: a_u = log S_u + log Z
LAST_RESORT = (UNFOLD_LOGITS,)


def rule_set(softmax: Define = SOFTMAX, layer: Define | None = None, others: tuple = ()) -> tuple:
    """The softmax content's rules, in priority order, with ``softmax`` as the
    definition of S (the softmax of other logits: :func:`softmax_of`) and, given a
    ``layer`` (such as :data:`FC_LAYER`), the chain rule through it: the layer defined
    before S, sums kept from splitting its instances, and dL/da derived on its own.
    ``others`` are further named softmaxes (a teacher's, :func:`recognise`), folded
    before S."""
    after = tuple(rule for r in AFTER_DIFF for rule in ((*others, softmax) if r is SOFTMAX else (r,)))
    if layer is None:
        return BEFORE_DIFF + DIFF + after + LAST_RESORT
    # the body is brought to sum-of-terms form with the layer whole, then the chain rule
    # fires; the assumptions (y_j = delta_jc, ...) are the sub-derivation's business
    rest = tuple(rule for rule in BEFORE_DIFF if rule not in (LOG_OF_SOFTMAX, SUM_LINEARITY))
    return through(layer, rule_set(softmax, others=others), first=(LOG_OF_SOFTMAX,),
                     after=rest + DIFF + after + LAST_RESORT)


#: the rule set for a loss of the logits a (the first rule that changes the form fires)
RULES = rule_set()
#: the rule set for a loss of the FC layer's logits: the body simplified, then the chain
#: rule through a = Wx + b (dL/da derived on its own), then as for the logits
FC_RULES = rule_set(layer=FC_LAYER)


# --------------------------------------------------------------------------- any softmax
#: the names of further softmaxes in one loss (a teacher's), in order of appearance
OTHER_NAMES = (IndexedBase("P", real=True), IndexedBase("Q", real=True))


def partitions(expr: sp.Expr) -> list:
    """The partition functions sum_r e^{g_r} in ``expr`` (each once, bound variable
    canonical), in a fixed order."""
    found = []
    for e in sp.preorder_traversal(expr):
        if _is_partition(e) and e.limits[0][1:] == (1, D.T):
            canon = engine.canonical_bound(e)
            if canon not in found:
                found.append(canon)
    return found


def logits_of(partition: Sum) -> Callable[[sp.Expr], sp.Expr]:
    """u -> g_u for the partition function sum_r e^{g_r}."""
    var, body = partition.limits[0][0], partition.function.args[0]
    return lambda u: body.xreplace({var: u})


def recognise(loss: sp.Expr, wrt: IndexedBase = D.a) -> tuple[Define, tuple]:
    """Every e^{f_j} / sum_k e^{f_k} of ``loss`` recognised as the softmax of f: (the
    Define naming S the softmax whose logits hold ``wrt``, the Defines naming the others
    P, Q). The first partition function holding ``wrt`` gives S (the plain softmax of a
    when there is none).

    Examples
    --------
    >>> from derive.softmax import definitions as D
    >>> import sympy as sp
    >>> tau = sp.Symbol("tau", positive=True)
    >>> S, others = recognise(-sp.log(D.softmax(D.c, lambda u: D.a[u] / tau)))
    >>> S.body(D.j), others
    (exp(a[j]/tau)/Sum(exp(a[r]/tau), (r, 1, T)), ())
    """
    found = partitions(loss)
    mine = [p for p in found if p.function.has(wrt)]
    rest = [p for p in found if not p.function.has(wrt)]
    if not mine or logits_of(mine[0])(D.j) == D.a[D.j]:
        main = SOFTMAX
    else:
        f = logits_of(mine[0])
        main = softmax_of(f, "softmax_f", rf"definition of $S_j = e^{{{sp.latex(f(D.j))}}} / "
                                         rf"\sum_k e^{{{sp.latex(f(D.k))}}}$")
    others = []
    for name, p in zip(OTHER_NAMES, rest + mine[1:]):
        g = logits_of(p)
        others.append(Define(f"softmax_{name}", rf"definition of ${name}_j = e^{{{sp.latex(g(D.j))}}} / "
                                                rf"\sum_k e^{{{sp.latex(g(D.k))}}}$",
                             base=name, body=lambda u, g=g: D.softmax(u, g), is_open=_open_in_softmax))
    return main, tuple(others)


def rules_for(loss: sp.Expr, wrt: IndexedBase = D.a) -> tuple:
    """The rule set closing d loss/d wrt in the softmaxes the loss holds (:func:`recognise`)."""
    main, others = recognise(loss, wrt)
    return rule_set(main, others=others)


# --------------------------------------------------------------------------- the command line
def _is_logit_partition(e) -> bool:
    """sum_r e^{a_r / k} for a k free of r: the partition function of a softmax of a."""
    if not _is_partition(e):
        return False
    var, arg = e.limits[0][0], e.function.args[0]
    return arg.has(D.a[var]) and not (arg / D.a[var]).has(var)


def pretty(expr: sp.Expr) -> str:
    """A one-line plain form for terminals: the FC layer's sum_n W_jn x_n + b_j written
    a[j], partition functions sum_r e^{a_r/k} written Z (for reading only: the steps
    keep their full form)."""
    if expr.has(D.W):
        expr = readable(FC_LAYER.fold(expr, inside_derivatives=True))
    return sp.sstr(expr.replace(_is_logit_partition, lambda e: sp.Symbol("Z")))


@functools.lru_cache(maxsize=1)
def _scalars() -> dict:
    """The scalars a loss on the command line may use, declared when the command reads
    one (a catalogue declares its own: examples/temperature.py's tau, ...). SymPy
    spells lambda "lamda" (``lambda`` is a Python keyword) and prints it as a lambda."""
    return {"tau": scalar("tau", lambda rng: rng.uniform(0.05, 4.0), positive=True),
            "lam": scalar("lamda", lambda rng: rng.normal(0.0, 3.0)),
            "gamma": scalar("gamma", lambda rng: rng.uniform(0.0, 4.0), nonnegative=True)}


def cli_namespace(flags: dict) -> dict:
    """Names for parsing a loss: vectors a, y, x, W, b, u, w; indices i j k l c p q
    (free) and r s n (for sums); sizes T, N; scalars tau (> 0), lam (real), gamma
    (>= 0), eps; functions S(j) (softmax of a), softmax(j, tau) (softmax of a/tau,
    which makes S that softmax), Z (sum_k e^{a_k}), logZ, fc(j) (W x + b at j),
    delta(i, j), Sum, log, exp; L (the softmax loss -sum_j y_j log S_j)."""
    def scaled_softmax(idx, scale=1):
        if scale != 1:
            flags["scale"] = scale
        return D.softmax(idx, lambda u: D.a[u] / scale)
    names = {"a": D.a, "y": D.y, "x": D.x, "W": D.W, "b": D.b, "u": D.u, "w": D.w,
             "T": D.T, "N": D.N, "eps": D.eps, **_scalars(),
             "S": D.softmax, "softmax": scaled_softmax, "Z": D.partition(), "logZ": D.logsumexp(),
             "fc": D.fc_logit, "delta": KroneckerDelta, "Sum": Sum, "log": log, "exp": exp,
             "L": D.softmax_loss()}
    names.update({sym.name: sym for sym in (D.i, D.j, D.k, D.l, D.c, D.p, D.q, D.r, D.s, D.n)})
    return names


#: the index names of the language (an index selects a component or runs a sum)
INDEX_NAMES = (D.i, D.j, D.k, D.l, D.c, D.p, D.q, D.r, D.s, D.n)


def check_indices(expr: sp.Expr, text: str) -> None:
    """An index used as a number (an exponent, a factor) is an error, not a silent symbol.

    >>> check_indices(parse_loss("S(c)**2")[0], "S(c)**2")
    >>> check_indices(parse_loss("S(c)**2")[0] ** D.c, "S(c)**c")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the index c is used as a number in 'S(c)**c': an index only selects a ...
    """
    def walk(e, bound):
        if isinstance(e, (Indexed, KroneckerDelta)):
            return
        if isinstance(e, Sum):
            walk(e.function, bound | {lim[0] for lim in e.limits})
            return
        if isinstance(e, sp.Symbol) and e in INDEX_NAMES:
            what = "summation index" if e in bound else "index"
            raise ValueError(f"the {what} {e} is used as a number in {text!r}: an index only selects a "
                             "component (a[c], S(c), delta(j, c)) or runs a Sum")
        for arg in e.args:
            walk(arg, bound)
    walk(expr, frozenset())


def parse_loss(text: str, names: dict | None = None) -> tuple[sp.Expr, dict]:
    """A loss expression in the names of :func:`cli_namespace` and ``names`` (declared
    parameters, a catalogue's own names: they take precedence, so a parameter may be
    called beta or gamma); (expression, flags)."""
    from sympy.parsing.sympy_parser import (
        auto_number,
        factorial_notation,
        lambda_notation,
        parse_expr,
        repeated_decimals,
    )

    flags: dict = {}
    try:  # SymPy's standard transformations without auto_symbol: an unknown name is an error
        expr = parse_expr(text, local_dict={**cli_namespace(flags), **(names or {})}, transformations=(
            lambda_notation, auto_number, repeated_decimals, factorial_notation))
    except NameError as err:  # a name the content does not define (it has no sampler either)
        raise ValueError(f"unknown name in the loss {text!r}: {err} (python -m derive gradient "
                         "--names lists the names a loss may use)") from None
    except Exception as err:  # noqa: BLE001 - any parse failure is reported with the text
        raise ValueError(f"cannot parse the loss {text!r}: {type(err).__name__}: {err} "
                         "(python -m derive gradient --help lists the names)") from None
    if isinstance(expr, sp.Expr):
        check_indices(expr, text)
    return expr, flags


_WRT = {"a": "a[i]", "W": "W[p, q]", "b": "b[p]", "x": "x[q]"}
_LABELS = {"soft": (D.SOFT_LABEL,), "onehot": (D.ONE_HOT,), "none": ()}


def declare(params) -> dict:
    """{name: parameter} for ``--param NAME=LO:HI`` texts (drawn uniformly over the range)."""
    from ..loss import symbols_scalar

    out = {}
    for text in params:
        name, sep, bounds = text.partition("=")
        lo, sep2, hi = bounds.partition(":")
        if not (sep and sep2 and name.isidentifier()):
            raise ValueError(f"--param takes NAME=LO:HI (e.g. beta=0:1); got {text!r}")
        try:
            out[name] = symbols_scalar(name, float(lo), float(hi))
        except ValueError:
            raise ValueError(f"--param {text!r}: LO and HI must be numbers, LO <= HI") from None
    return out


def read(loss_text: str, wrt_text: str, labels: str, params=(), names: dict | None = None) -> Question:
    """The question ``python -m derive gradient`` asks: the loss parsed (in the
    language's names, a catalogue's ``names`` and the declared ``params``), the variable
    (a, W, b, x or a component), the label assumption, and the rule set -- every softmax
    of the loss recognised (:func:`recognise`; the softmax of a/tau where the loss says
    softmax(j, tau)), the chain rule through a = W x + b for W, b and x."""
    loss, flags = parse_loss(loss_text, {**(names or {}), **declare(params)})
    wrt, _ = parse_loss(_WRT.get(wrt_text, wrt_text))
    if not isinstance(wrt, Indexed):
        raise ValueError(f"--wrt must be a component such as a[i] or W[p, q], or one of "
                         f"{', '.join(_WRT)}; got {wrt_text!r}")
    if labels not in _LABELS:
        raise ValueError(f"--labels must be one of {', '.join(_LABELS)}; got {labels!r}")
    softmax, others = recognise(loss)
    if flags.get("scale") is not None:
        scale = flags["scale"]
        softmax = softmax_of(lambda u: D.a[u] / scale, "softmax_scaled",
                             rf"definition of $S_j = e^{{a_j/{sp.latex(scale)}}} / \sum_k e^{{a_k/{sp.latex(scale)}}}$")
    layer = None
    if wrt.base in (D.W, D.b, D.x):  # through the FC layer: a = W x + b
        layer = FC_LAYER
        loss = loss.replace(lambda e: isinstance(e, Indexed) and e.base == D.a,
                            lambda e: D.fc_logit(e.indices[0]))
    return Question(loss, wrt, (D.REAL_LOGITS, *_LABELS[labels]),
                    rule_set(softmax, layer, others=() if layer else others))


#: how ``python -m derive gradient`` reads a loss in the softmax content's names
def legend(question: Question) -> str:
    """What the printed names mean: Z always, a = W x + b where the question goes
    through the FC layer."""
    through = question.wrt.base in (D.W, D.b, D.x)
    return "Z: the sum of exponentials in the definition of S" + (
        "; a: W x + b, the FC layer the loss goes through" if through else "")


LANGUAGE = Language(
    read, pretty, labels=tuple(_LABELS), wrt="a", legend=legend,
    names="Names in LOSS: vectors a, y, x, W, b, u, w; free indices i j k l c p q; summation "
          "indices r s n; sizes T, N; scalars tau (> 0), lam (real), gamma (>= 0), eps; "
          "S(j) = softmax(a)_j, softmax(j, tau) = softmax(a/tau)_j, Z = sum_k e^(a_k), "
          "logZ = log Z, fc(j) = (W x + b)_j, delta(i, j), Sum(f, (s, 1, T)), log, exp; "
          "L = -sum_j y_j log S_j. --wrt: a (a[i]), W (W[p, q]), b (b[p]), x (x[q]: through "
          "a = W x + b), or a component. --labels: soft (y a probability vector, the "
          "default), onehot (at c), none.")
