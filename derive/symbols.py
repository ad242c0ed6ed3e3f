"""Symbols with samplers, and assumptions that carry their rewrite, sampler and LaTeX.

The proof engine checks every step on random concrete instances, so every symbol a
derivation uses needs a way to be drawn. The built-in content draws its own symbols;
a new one is declared here, once, with its sampler:

* :func:`scalar` -- a real scalar (``tau``, ``gamma``, ``lam``) and how to draw it;
* :func:`vector` -- a vector over the classes (components 1..T) and how to draw a
  component.

A symbol that a derivation uses but nobody declared is a :class:`MissingSampler`
error that says how to declare it.

Declarations (samplers, index ranges, the instance class) go to the active
:class:`derive.notation.Notation` (the catalogue's while its file is loaded and while
the stages run it; :data:`derive.notation.DEFAULT` elsewhere), never to a table of this
module: ``INDEX_RANGES`` reads and writes the active notation's.

An :class:`Assumption` is a hypothesis of a derivation, used twice by the engine: its
``rewrite`` is a sound symbolic substitution (it only substitutes what the hypothesis
states), its ``sample`` adjusts a concrete instance so that the hypothesis holds.
``latex`` is how the reports print it.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import keyword
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

import mpmath
import sympy as sp

from . import notation

#: digits of the values drawn for a concrete instance
INSTANCE_DIGITS = 60

#: every declared symbol (a Symbol or an IndexedBase) -> its sampler ``draw(rng) -> float``,
#: in the active notation (:mod:`derive.notation`); assigning declares a sampler there
_SAMPLERS = notation.ActiveTable("samplers", lambda active, atom, draw: active.declare_sampler(atom, draw))

#: the number of classes and of features: every vector is indexed 1..T (or 1..N)
CLASSES = sp.Symbol("T", integer=True, positive=True)
FEATURES = sp.Symbol("N", integer=True, positive=True)
#: every index symbol that may appear free in a derivation -> the size it ranges up to, in
#: the active notation (:mod:`derive.notation`); assigning declares an index there
INDEX_RANGES = notation.ActiveTable("index_ranges", lambda active, sym, upto: active.declare_index(sym, upto))

# the notation table's index names: over the classes i, j, k, l (free) and r, s
# (summation), over the features n, q. Plain symbols: content that lets one of them
# appear free declares its range in its notation (:meth:`derive.notation.Notation.index`,
# or :func:`index` in the active one).
i, j, k, l, r, s = sp.symbols("i j k l r s", integer=True, positive=True)  # noqa: E741 - the textbook's l
n, q = sp.symbols("n q", integer=True, positive=True)


def index(name: str, upto: sp.Symbol = CLASSES) -> sp.Symbol:
    """A free index symbol ranging over 1..``upto`` (the classes by default), declared
    in the active notation (:func:`derive.notation.current`).

    Examples
    --------
    >>> from derive.symbols import index
    >>> m = index("m_idx")
    >>> m.is_integer and m.is_positive
    True
    """
    return notation.current().index(name, upto)


class MissingSampler(ValueError):
    """A derivation uses a symbol that has no sampler (the engine cannot draw it).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import MissingSampler
    >>> from derive.symbols import how_to_declare
    >>> print(how_to_declare(sp.Symbol("gamma", positive=True)).split(":")[0])
    no sampler for the symbol gamma
    """


def scalar(name: str, sample: Callable, **assumptions) -> sp.Symbol:
    """A real scalar symbol, declared with how the engine draws it.

    ``sample(rng)`` returns one value (``rng`` is a :class:`numpy.random.Generator`);
    it must respect the SymPy ``assumptions`` (``positive=True`` and so on), which the
    symbolic half uses. The name must be a Python identifier (it is an argument name
    in generated code); reports print Greek names as letters (``"tau"``; ``"lamda"``
    for lambda, SymPy's spelling, as ``lambda`` is a Python keyword).

    Examples
    --------
    >>> from derive import scalar
    >>> tau = scalar("tau", lambda rng: rng.uniform(0.2, 5.0), positive=True)
    >>> tau.is_positive
    True
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"scalar {name!r}: the name must be a Python identifier and not a keyword "
                         "(it names an argument of generated code); for lambda write 'lamda'")
    if not callable(sample):
        raise TypeError(f"scalar {name!r}: sample must be a function rng -> float, got {sample!r}")
    assumptions.setdefault("real", True)
    symbol = sp.Symbol(name, **assumptions)
    notation.current().declare_sampler(symbol, sample)
    return symbol


def vector(name: str, sample: Callable, **assumptions) -> sp.IndexedBase:
    """A vector over the classes (components 1..T), declared with how to draw a component.

    Examples
    --------
    >>> from derive import vector
    >>> g = vector("g", lambda rng: rng.uniform(0.0, 2.0))
    >>> g[1]
    g[1]
    """
    if not callable(sample):
        raise TypeError(f"vector {name!r}: sample must be a function rng -> float, got {sample!r}")
    assumptions.setdefault("real", True)
    base = sp.IndexedBase(name, **assumptions)
    notation.current().declare_sampler(base, sample)
    return base


def sampler(atom):
    """The declared sampler of a Symbol or IndexedBase in the active notation, or None."""
    return notation.current().samplers.get(atom)


#: the range (lo, hi) that :func:`draw_size` draws a size (N, a batch B) from; the
#: engine widens it for its wide instances (:func:`sizes`)
_SIZE_RANGE: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("derive_sizes", default=(1, 3))


def draw_size(rng) -> int:
    """A size other than T (the features N, a content's batch B) for one instance:
    1..3 on most instances, in the tens on the engine's wide ones.

    Examples
    --------
    >>> import numpy as np
    >>> from derive.symbols import draw_size, sizes
    >>> with sizes(10, 20):
    ...     10 <= draw_size(np.random.default_rng(0)) <= 20
    True
    """
    lo, hi = _SIZE_RANGE.get()
    return int(rng.integers(lo, hi + 1))


@contextlib.contextmanager
def sizes(lo: int, hi: int):
    """Draw every size of the instances made inside from lo..hi (in this thread or task
    only: checks running in threads side by side do not change each other's sizes)."""
    token = _SIZE_RANGE.set((lo, hi))
    try:
        yield
    finally:
        _SIZE_RANGE.reset(token)


class Instance(dict):
    """Concrete values for one numeric check: T, N, the free indices, the declared
    symbols (added by :func:`draw_declared`). Content that draws more symbols of its own
    subclasses it and installs the subclass in its notation
    (:meth:`derive.notation.Notation.use_instance`)."""

    def __init__(self, rng, n_classes: int, n_features: int):
        super().__init__()
        self.rng = rng
        self.T, self.N = n_classes, n_features
        self[CLASSES], self[FEATURES] = n_classes, n_features
        for sym, size in notation.current().index_ranges.items():
            hi = {CLASSES: n_classes, FEATURES: n_features}.get(size)
            if hi is not None:
                self[sym] = int(rng.integers(1, hi + 1))

    def distinct(self, first, second):
        """Make the indices ``first`` and ``second`` differ (redraw the second)."""
        if self.T < 2:
            raise ValueError(f"{first} != {second} needs T >= 2")
        if self[first] == self[second]:
            choices = [idx for idx in range(1, self.T + 1) if idx != self[first]]
            self[second] = int(self.rng.choice(choices))


def use_instance(cls) -> None:
    """Draw every instance with ``cls`` (a subclass of :class:`Instance`), in the active
    notation."""
    notation.current().use_instance(cls)


def new_instance(rng, n_classes: int, n_features: int) -> Instance:
    """A fresh instance of the active notation's :class:`Instance` class."""
    return notation.current().instance_class(rng, n_classes, n_features)


def _mpf(value) -> mpmath.mpf:
    with mpmath.workdps(INSTANCE_DIGITS):
        return mpmath.mpf(value)


def how_to_declare(atom) -> str:
    """The message of a :class:`MissingSampler`: what to write to declare ``atom``."""
    if isinstance(atom, sp.IndexedBase):
        return (f"no sampler for the vector {atom}: declare it with "
                f"{atom} = derive.vector({str(atom)!r}, lambda rng: rng.normal(0, 2)) "
                "(any function of a numpy Generator that returns one component)")
    facts = ", positive=True" if atom.is_positive else ", nonnegative=True" if atom.is_nonnegative else ""
    return (f"no sampler for the symbol {atom}: declare it with "
            f"{atom} = derive.scalar({atom.name!r}, lambda rng: rng.uniform(0.1, 4.0){facts}) "
            "(any function of a numpy Generator that returns a value allowed by its assumptions)")


def draw_declared(env, exprs, rng) -> None:
    """Give ``env`` a value for every declared symbol and vector component ``exprs`` use
    that it has none for (vectors: components 1..T)."""
    samplers = notation.current().samplers
    for atom in _used(exprs):
        draw = samplers.get(atom)
        if draw is None:
            continue
        if isinstance(atom, sp.IndexedBase):
            for idx in range(1, env.T + 1):
                item = component(atom, (idx,))
                if item not in env:
                    env[item] = _mpf(draw(rng))
        elif atom not in env:
            env[atom] = _mpf(draw(rng))


def missing(env, exprs) -> list:
    """Real scalars and vectors that ``exprs`` use and ``env`` cannot give a value for."""
    out, bases = [], None
    for atom in _used(exprs):
        if isinstance(atom, sp.IndexedBase):
            if bases is None:  # the vectors env has a component of (one pass over its keys)
                bases = {key.base for key in env if isinstance(key, sp.Indexed)}
            if atom not in bases:
                out.append(atom)
        elif not atom.is_integer and atom not in env:
            out.append(atom)
    return out


def _used(exprs) -> tuple:
    """The declared-or-not symbols and vectors ``exprs`` use, in a fixed order (the
    order values are drawn in). Asked for every instance of every step with the same
    chain: remembered per chain (expressions are immutable)."""
    return _used_in(tuple(exprs))


@functools.lru_cache(maxsize=1024)
def _used_in(exprs: tuple) -> tuple:
    found = set()
    for expr in exprs:
        bases = {item.base for item in expr.atoms(sp.Indexed)}
        labels = {base.label for base in bases}
        found |= bases | {sym for sym in expr.free_symbols
                          if isinstance(sym, sp.Symbol) and sym not in labels}
    return tuple(sorted(found, key=sp.default_sort_key))


_COMPONENTS: dict = {}


def component(base: sp.IndexedBase, idx: tuple) -> sp.Indexed:
    """``base[idx]`` for a tuple of integer indices, made once per process: SymPy takes
    about 30 microseconds to build an Indexed (it deduces its assumptions), a numeric
    check reads hundreds of thousands of components, and an Indexed is immutable."""
    key = (base, idx)
    found = _COMPONENTS.get(key)
    if found is None:
        found = _COMPONENTS[key] = base[idx] if len(idx) > 1 else base[idx[0]]
    return found


@dataclass(frozen=True)
class Assumption:
    """A hypothesis of a derivation: its text, its rewrite, its sampler and its LaTeX.

    ``rule(expr)`` turns an expression into an equal one *given the hypothesis* (it must
    only substitute what the hypothesis states; default: nothing). ``draw(env)`` adjusts
    a concrete instance (a dict from symbols and vector components to mpmath numbers,
    with ``env.T`` classes and ``env.rng`` a numpy Generator) so that the hypothesis
    holds (default: nothing). ``latex`` is how reports print it (default: ``text``).
    ``condition`` (optional) is the hypothesis as a SymPy relation (``T >= 2``,
    ``tau > 1``): the engine evaluates it on every instance, and a derivation whose
    instances never satisfy it is rejected as vacuous. Whatever the condition, the
    engine also checks on every instance that ``rewrite`` keeps the value of the
    step's sides (an instance where it does not, does not satisfy the hypothesis).
    Subclasses may override :meth:`rewrite` and :meth:`sample` instead.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Assumption, scalar
    >>> gamma = scalar("gamma", lambda rng: rng.uniform(0, 4), nonnegative=True)
    >>> NO_FOCUS = Assumption("gamma = 0", rule=lambda e: e.subs(gamma, 0),
    ...                       draw=lambda env: env.__setitem__(gamma, 0), latex=r"$\\gamma = 0$")
    >>> NO_FOCUS.rewrite(gamma + 1)
    1
    """

    text: str
    _: KW_ONLY
    rule: Callable | None = None
    draw: Callable | None = None
    latex: str = ""
    condition: sp.Basic | None = None

    def __post_init__(self):
        if self.condition is not None and sp.sympify(self.condition) is sp.false:
            raise ValueError(f"Assumption({self.text!r}): its condition can never hold (SymPy "
                             "decides it false from the symbols' own assumptions)")
        rewrites = self.rule is not None or type(self).rewrite is not Assumption.rewrite
        samples = self.draw is not None or type(self).sample is not Assumption.sample
        if rewrites and not samples and self.condition is None:
            raise ValueError(f"Assumption({self.text!r}) rewrites but neither draws instances that "
                             "satisfy it nor states its condition: no instance could be checked "
                             "against it (give draw= or condition=)")

    def rewrite(self, expr: sp.Expr) -> sp.Expr:
        return expr if self.rule is None else self.rule(expr)

    def sample(self, env) -> None:
        if self.draw is not None:
            self.draw(env)


def implied(assumption: Assumption) -> bool:
    """True for an assumption that neither rewrites nor samples ("the logits are real"):
    it states what every instance satisfies anyway, so a lemma that makes it may be
    cited without repeating it."""
    return (type(assumption) is Assumption and assumption.rule is None
            and assumption.draw is None and assumption.condition is None)


@dataclass(frozen=True)
class Distinct(Assumption):
    """Two indices differ: rewrites delta(first, second) to 0, samples them distinct."""

    first: sp.Symbol = None
    second: sp.Symbol = None

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.first, sp.Symbol) and isinstance(self.second, sp.Symbol)):
            raise ValueError(f"Distinct({self.text!r}): two index symbols are needed, got "
                             f"{self.first!r} and {self.second!r}")
        if self.first == self.second:
            raise ValueError(f"Distinct({self.text!r}): {self.first} != {self.second} can never "
                             f"hold (the same index twice); name two different indices")

    def rewrite(self, expr):
        return expr.subs(sp.KroneckerDelta(self.first, self.second), 0)

    def sample(self, env):
        env.distinct(self.first, self.second)
