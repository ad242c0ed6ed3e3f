"""What decided a verdict: a print of what an object *does* (:func:`behaviour`: a
callable's bytecode, constants, captured values and every global it reads), so that a
remembered verdict is reused only when everything that decided it is identical
(:func:`fingerprint` of a derivation, :func:`_depends_on` of expressions)."""
from __future__ import annotations

import builtins
import dataclasses
import dis
import functools
import types

import mpmath
import numpy as np
import sympy as sp

from .. import notation, symbols
from .steps import Derivation


class Unknowable(Exception):
    """What an object does cannot be known from what it holds (an object of an unknown
    kind, a callable reaching one): a verdict that depends on it is never reused."""


#: modules whose classes and functions are taken as they are (by name): the libraries
_LIBRARIES = ("builtins", "sympy", "mpmath", "numpy", "math", "fractions", "functools",
              "itertools", "operator", "collections", "typing", "dataclasses", "re")


#: modules the engine version covers (their source is hashed into it)
_VERSIONED = ("derive.engine", "derive.symbols")
_LOADS_GLOBAL = ("LOAD_GLOBAL", "LOAD_NAME")
_MAX_DEPTH = 8


def _library(module: str | None) -> bool:
    return module is not None and (module.split(".")[0] in _LIBRARIES or module in _VERSIONED
                                   or module.startswith("derive.engine."))


@functools.lru_cache(maxsize=1 << 14)
def srepr(expr: sp.Basic) -> str:
    """SymPy's ``srepr(expr)``, printed once per expression: a check prints every step's
    sides into its keys (and the lemmas' steps, for every step that cites them), and an
    expression is immutable. Equal expressions (SymPy's ``==``: the same tree, the same
    assumptions) are the same to every check, whichever of their prints is remembered."""
    return sp.srepr(expr)


def behaviour(obj, _depth: int = 0, _seen: tuple = ()) -> tuple:
    """A print of what ``obj`` does, from everything it holds: SymPy objects by their
    srepr, numbers and strings by value, containers by their contents (at this moment),
    functions (lambdas too) by their bytecode, constants, captured values and every
    global name they read (recursively), classes by their methods and data, dataclass
    instances by their class and fields, library modules, classes and functions by
    name. Two objects with the same print compute the same thing; an object that can
    do anything (one of an unknown kind, or a function reaching one) raises
    :class:`Unknowable`.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine import behaviour
    >>> x = sp.Symbol("x")
    >>> behaviour(lambda e: e.subs(x, 1)) == behaviour(lambda e: e.subs(x, 2))
    False
    """
    if _depth > _MAX_DEPTH:
        raise Unknowable("nested too deeply")
    deeper = functools.partial(behaviour, _depth=_depth + 1, _seen=_seen)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, repr(obj))
    if isinstance(obj, sp.Basic):
        return ("sympy", srepr(obj))
    if isinstance(obj, (mpmath.mpf, mpmath.mpc)):
        return ("mpmath", repr(obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, *(deeper(item) for item in obj))
    if isinstance(obj, (set, frozenset)):
        return ("set", *sorted((deeper(item) for item in obj), key=repr))
    if isinstance(obj, (dict, notation.ActiveTable)):  # a table of the active notation: as it is now
        return ("dict", *sorted(((deeper(k), deeper(v)) for k, v in obj.items()), key=repr))
    if isinstance(obj, types.ModuleType):
        if not (_library(obj.__name__) or obj.__name__.startswith("derive")):
            raise Unknowable(f"the module {obj.__name__}")
        return ("module", obj.__name__)  # (its functions are read as attributes: by name)
    if isinstance(obj, np.ndarray):
        return ("ndarray", str(obj.dtype), obj.shape, obj.tobytes())
    if isinstance(obj, type):
        return _class_behaviour(obj, _depth, _seen)
    if isinstance(obj, (staticmethod, classmethod)):
        return deeper(obj.__func__)
    if isinstance(obj, property):
        return ("property", deeper(obj.fget), deeper(obj.fset))
    if isinstance(obj, types.FunctionType):
        return _function_behaviour(obj, _depth, _seen)
    if isinstance(obj, types.MethodType):
        return ("method", deeper(obj.__func__), deeper(obj.__self__))
    if isinstance(obj, functools.partial):
        return ("partial", deeper(obj.func), deeper(obj.args), deeper(obj.keywords))
    home = getattr(obj, "__module__", None) or "builtins"
    if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)) and _library(home):
        return ("builtin", home, obj.__name__)
    if dataclasses.is_dataclass(obj):
        return ("dataclass", _class_behaviour(type(obj), _depth, _seen),
                *((f.name, deeper(getattr(obj, f.name))) for f in dataclasses.fields(obj)))
    if _library(type(obj).__module__) and type(obj).__module__.split(".")[0] in ("sympy", "mpmath"):
        return ("value", type(obj).__qualname__, repr(obj))
    raise Unknowable(f"an object of type {type(obj).__qualname__}")


def _class_behaviour(cls: type, depth: int, seen: tuple) -> tuple:
    if _library(cls.__module__):
        return ("class", cls.__module__, cls.__qualname__)
    if cls in seen:
        return ("class", cls.__module__, cls.__qualname__, "(recursive)")
    seen = (*seen, cls)
    parts = []
    for klass in cls.__mro__:
        if _library(klass.__module__):
            parts.append(("base", klass.__module__, klass.__qualname__))
            continue
        for name, value in sorted(vars(klass).items()):
            generated = "__create_fn__" in getattr(value, "__qualname__", "")  # a dataclass's
            if generated or (name.startswith("__") and name not in ("__init__", "__call__", "__new__")):
                continue
            parts.append((klass.__qualname__, name, behaviour(value, depth + 1, seen)))
    return ("class", cls.__module__, cls.__qualname__, *parts)


@functools.lru_cache(maxsize=4096)
def _code_print(code: types.CodeType) -> tuple:
    consts = tuple(_code_print(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars)


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> frozenset:
    """The global names ``code`` (and the code nested in it) reads (code objects are
    immutable: remembered per code object)."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in _LOADS_GLOBAL}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return frozenset(names)


def _function_behaviour(fn: types.FunctionType, depth: int, seen: tuple) -> tuple:
    if _library(fn.__module__) and "<" not in fn.__qualname__:  # a named library function
        return ("function", fn.__module__, fn.__qualname__)
    if fn in seen:
        return ("function", fn.__qualname__, "(recursive)")
    seen = (*seen, fn)
    deeper = functools.partial(behaviour, _depth=depth + 1, _seen=seen)
    reads = []
    for name in sorted(_global_names(fn.__code__)):
        if name in fn.__globals__:
            reads.append((name, deeper(fn.__globals__[name])))
        elif hasattr(builtins, name):
            reads.append((name, "builtin"))
        else:
            raise Unknowable(f"the name {name} that {fn.__qualname__} reads is not defined")
    cells = tuple(deeper(cell.cell_contents) for cell in (fn.__closure__ or ()))
    return ("function", _code_print(fn.__code__), tuple(reads), cells,
            deeper(fn.__defaults__), deeper(fn.__kwdefaults__))


#: while a check runs: id -> (object, its behaviour or the Unknowable it raised), so
#: that the assumptions of a derivation are read once per check, not once per step
_BEHAVIOUR_CACHE: list = [None]


def _cached_behaviour(obj) -> tuple:
    cache = _BEHAVIOUR_CACHE[0]
    if cache is None:
        return behaviour(obj)
    hit = cache.get(id(obj))
    if hit is None or hit[0] is not obj:
        try:
            hit = (obj, behaviour(obj))
        except Unknowable as err:
            hit = (obj, err)
        cache[id(obj)] = hit
    if isinstance(hit[1], Unknowable):
        raise hit[1]
    return hit[1]


def _assumptions_behaviour(assumptions) -> tuple:
    return tuple(_cached_behaviour(h) for h in assumptions)


def _depends_on(exprs) -> tuple:
    """What a check of ``exprs`` depends on beyond their text: the range of every index
    they hold (an index ranges over 1..T, or 1..N: facts the symbolic half uses), what
    the sampler of every declared symbol they use does, what every class of their nodes
    that is not a library's does, and the instance class that draws the rest
    (:func:`behaviour`; raises :class:`Unknowable`)."""
    found = set()
    for expr in exprs:
        found |= expr.atoms(sp.Symbol)
    active = notation.current()
    ranges = tuple(sorted((srepr(sym), srepr(active.index_ranges[sym]))
                          for sym in found if sym in active.index_ranges))
    drawn = tuple((srepr(atom), _cached_behaviour(symbols.sampler(atom)))
                  for atom in symbols._used(exprs) if symbols.sampler(atom) is not None)
    # a class of the content's own prints as its name alone (two classes called g that
    # evaluate differently have one srepr): what it does is part of the key
    foreign = {type(node) for expr in exprs for node in sp.preorder_traversal(expr)
               if not _library(type(node).__module__)}
    classes = tuple(sorted((_cached_behaviour(cls) for cls in foreign), key=repr))
    return ranges, drawn, classes, _cached_behaviour(active.instance_class)


def fingerprint(derivation: Derivation) -> tuple:
    """Everything a check of ``derivation`` depends on: key, what its assumptions are and
    do (:func:`behaviour`), min_classes and every step (expression, relation, decimals,
    cited lemmas). Raises :class:`Unknowable` where an assumption's behaviour cannot be
    known."""
    return (derivation.key, _assumptions_behaviour(derivation.assumptions), derivation.min_classes,
            tuple((srepr(step.expr), step.rel, step.decimals,
                   tuple(fingerprint(lem) for lem in step.lemmas)) for step in derivation.steps))


def _known_fingerprint(derivation: Derivation) -> tuple | None:
    try:
        return fingerprint(derivation)
    except Unknowable:
        return None
