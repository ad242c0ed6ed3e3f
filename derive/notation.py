"""A content's notation: what its symbols range over and mean, as one object.

A :class:`Notation` holds what the engine and the stages must know about a content's
symbols beyond their SymPy form:

* the **index ranges**: every index that may appear free -> the size it ranges up to
  (i over 1..T, q over 1..N), which the symbolic half uses as facts and the instances
  draw;
* the **samplers**: every declared scalar or vector -> how an instance draws it;
* the **instance class** that draws the rest of a concrete instance;
* the **report notation**: the parts by which the reports print beyond SymPy's LaTeX
  (abbreviations, what summation indices are called, ...; see
  :class:`derive.printing.ReportNotation`), declared by :func:`derive.extend_notation`;
* the **array meanings**: array symbol -> its index form (an IndexedBase, component j,
  or an expression the same for every j), for :func:`derive.functions.to_indexed`, and
  the index that names the argmax of the logits.

It works as mpmath's contexts do: there is a default notation (:data:`DEFAULT`), the
module-level helpers (:func:`derive.symbols.index`, :func:`derive.scalar`,
:func:`derive.vector`, :func:`derive.functions.define_arrays`) declare into the
*active* one, and the tables ``derive.symbols.INDEX_RANGES`` and
``derive.functions.MEANINGS`` read it. ``with notation.active():`` makes another one
active (a :class:`contextvars.ContextVar`: per thread and per task). A catalogue
carries its notation (``catalogue.notation``) and the stages run under it, so two
catalogues loaded in one process never see each other's declarations.

A notation ``uses`` others (the notations of the catalogues whose lemmas it cites): it
sees their declarations, and its own take precedence over theirs.

Examples
--------
>>> import sympy as sp
>>> from derive.notation import Notation, current
>>> from derive.symbols import CLASSES, FEATURES
>>> mine = Notation("mine")
>>> m = mine.index("m_idx", FEATURES)
>>> with mine.active():
...     current() is mine, current().index_ranges[m] == FEATURES
(True, True)
>>> current() is mine
False
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping

import sympy as sp

#: bumped by every declaration in any notation: a merged table is rebuilt only then
_GENERATION = itertools.count()
_NOW = [next(_GENERATION)]


def _changed() -> None:
    _NOW[0] = next(_GENERATION)


class Notation:
    """Index ranges, samplers, the instance class and array meanings of a content.

    ``uses``: the notations whose declarations this one sees (below its own).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Notation
    >>> from derive.symbols import CLASSES, FEATURES
    >>> base = Notation("base")
    >>> m = base.index("m_example")  # over the classes
    >>> mine = Notation("mine", uses=[base])
    >>> _ = mine.declare_index(m, FEATURES)  # the same name, another range: its own wins
    >>> base.index_ranges[m], mine.index_ranges[m]
    (T, N)
    """

    def __init__(self, name: str = "notation", uses: Iterable[Notation] = ()):
        self.name = name
        self._uses: list[Notation] = []
        self._ranges: dict = {}
        self._samplers: dict = {}
        self._meanings: dict = {}
        self._argmax: sp.Symbol | None = None
        self._instance: type | None = None
        self._printing: dict = {}
        self._merged: dict = {}
        self.include(*uses)

    def __repr__(self):
        return (f"Notation({self.name!r}: {len(self.index_ranges)} indices, {len(self.samplers)} "
                f"samplers, {len(self.meanings)} arrays)")

    # ---------------------------------------------------------------- what it sees
    @property
    def uses(self) -> tuple:
        """The notations it sees, in order (a later one's declarations win)."""
        return tuple(self._uses)

    @uses.setter
    def uses(self, notations) -> None:
        self._uses = []
        _changed()
        self.include(*notations)

    def include(self, *others: Notation) -> None:
        """See the declarations of ``others`` too (after those already included)."""
        for other in others:
            if not isinstance(other, Notation):
                raise TypeError(f"a notation uses notations, not {type(other).__name__}")
            if other is self or self in other.chain():
                raise ValueError(f"the notation {other.name!r} already sees {self.name!r}: "
                                 "including it would make a cycle")
            if other not in self._uses:
                self._uses.append(other)
                _changed()

    def replace(self, other: Notation) -> None:
        """See ``other`` instead of an earlier notation of the same name (a file loaded
        again), last."""
        self.uses = [*(n for n in self._uses if n.name != other.name), other]

    def chain(self) -> list[Notation]:
        """This notation and every one it sees, each once (depth first, in order)."""
        out = [self]
        for other in self._uses:
            out += [n for n in other.chain() if n not in out]
        return out

    def _merge(self, field: str) -> Mapping:
        """The declarations of ``field`` it sees: those of the notations it uses first,
        in order, then its own (so its own win, and the order is that of declaration)."""
        cached = self._merged.get(field)
        if cached is not None and cached[0] == _NOW[0]:
            return cached[1]
        merged = {}
        for other in self._uses:
            merged.update(other._merge(field))
        merged.update(getattr(self, field))
        view = types.MappingProxyType(merged)  # read-only: declare through the methods
        self._merged[field] = (_NOW[0], view)
        return view

    @property
    def index_ranges(self) -> Mapping:
        """Every index that may appear free -> the size it ranges up to."""
        return self._merge("_ranges")

    @property
    def samplers(self) -> Mapping:
        """Every declared symbol (a Symbol or an IndexedBase) -> ``draw(rng) -> float``."""
        return self._merge("_samplers")

    @property
    def meanings(self) -> Mapping:
        """Array symbol -> its index form (an IndexedBase, or the same expression for
        every component)."""
        return self._merge("_meanings")

    @property
    def argmax(self) -> sp.Symbol | None:
        """The index that names the (first) argmax of the logits A, or None."""
        return self._last("_argmax")

    @property
    def instance_class(self) -> type:
        """The class that draws a concrete instance (:class:`derive.symbols.Instance`
        unless the content installed its own)."""
        found = self._last("_instance")
        if found is None:
            from .symbols import Instance
            return Instance
        return found

    def _last(self, field: str):
        """Its own value of ``field``, else that of the last notation it uses that has one."""
        own = getattr(self, field)
        if own is not None:
            return own
        for other in reversed(self._uses):
            found = other._last(field)
            if found is not None:
                return found
        return None

    @property
    def declares(self) -> bool:
        """Whether it holds a declaration of its own."""
        return bool(self._ranges or self._samplers or self._meanings or self._argmax is not None
                    or self._instance is not None or self._printing)

    @property
    def printing(self) -> dict:
        """The report notation's parts it sees: name -> a tuple (those of the notations it
        uses first, in order, then its own; each entry once) or a table (its own win)."""
        return self._merge_parts()

    def _merge_parts(self) -> dict:
        cached = self._merged.get("_printing")
        if cached is not None and cached[0] == _NOW[0]:
            return cached[1]
        merged: dict = {}
        for part in [*(other._merge_parts() for other in self._uses), self._printing]:
            for name, value in part.items():
                merged[name] = _joined(merged.get(name), value)
        self._merged["_printing"] = (_NOW[0], merged)
        return merged

    # ---------------------------------------------------------------- declaring
    def declare_index(self, symbol: sp.Symbol, upto: sp.Expr) -> sp.Symbol:
        """``symbol`` is an index that may appear free, ranging over 1..``upto``."""
        if not (isinstance(symbol, sp.Symbol) and symbol.is_integer):
            raise TypeError(f"an index is an integer Symbol, not {symbol!r}")
        self._ranges[symbol] = upto
        _changed()
        return symbol

    def index(self, name: str, upto: sp.Expr | None = None) -> sp.Symbol:
        """A free index symbol ranging over 1..``upto`` (the classes T by default)."""
        if upto is None:
            from .symbols import CLASSES
            upto = CLASSES
        return self.declare_index(sp.Symbol(name, integer=True, positive=True), upto)

    def declare_sampler(self, atom, sample: Callable) -> None:
        """The engine draws ``atom`` (a Symbol, or an IndexedBase: each component) with
        ``sample(rng)``."""
        if not callable(sample):
            raise TypeError(f"{atom}: sample must be a function rng -> float, got {sample!r}")
        self._samplers[atom] = sample
        _changed()

    def use_instance(self, cls: type) -> None:
        """Draw every instance with ``cls`` (a subclass of :class:`derive.symbols.Instance`)."""
        from .symbols import Instance
        if not (isinstance(cls, type) and issubclass(cls, Instance)):
            raise TypeError(f"an instance class is a subclass of derive.symbols.Instance, not {cls!r}")
        self._instance = cls
        _changed()

    def define_arrays(self, meanings: Mapping, argmax: sp.Symbol | None = None) -> None:
        """What array symbols mean in index notation (see
        :func:`derive.functions.define_arrays`); defining a symbol again replaces it."""
        self._meanings.update(meanings)
        if argmax is not None:
            self._argmax = argmax
        _changed()

    def extend_printing(self, **parts) -> None:
        """Add to the report notation (:func:`derive.extend_notation` checks the names):
        tuples are extended (an entry already there is not added twice), tables merged."""
        for name, value in parts.items():
            self._printing[name] = _joined(self._printing.get(name), value)
        _changed()

    # ---------------------------------------------------------------- being active
    @contextlib.contextmanager
    def active(self) -> Iterator[Notation]:
        """Make this the notation that the helpers declare into and the engine reads,
        inside the ``with`` block (restored after, also on an exception)."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


def _joined(current, value):
    """``value`` after ``current``: a table merged (``value`` wins), a tuple concatenated
    without repeating an entry."""
    if isinstance(value, Mapping):
        return {**(current or {}), **value}
    out = list(current or ())
    for item in value:
        if item not in out:
            out.append(item)
    return tuple(out)


#: the notations of libraries of content (the built-in's): every file that
#: :func:`derive.load_catalogue` runs sees them, and so does :data:`DEFAULT`
LIBRARY = Notation("library")
#: the notation of code that activates none (a user's script, an interactive session, the
#: tests): it sees :data:`LIBRARY` and what every loaded file declared (the last loaded
#: winning), as the former module-level tables did; a catalogue's own notation sees only
#: its file's declarations and those of the catalogues it uses
DEFAULT = Notation("default", uses=[LIBRARY])
_ACTIVE: contextvars.ContextVar[Notation] = contextvars.ContextVar("derive_notation", default=DEFAULT)


def current() -> Notation:
    """The active notation (:data:`DEFAULT` unless a ``with notation.active():`` says
    otherwise)."""
    return _ACTIVE.get()


class ActiveTable(MutableMapping):
    """A table of the active notation, as a module-level mapping: reading sees what the
    active notation sees, writing declares into it. Kept so that code written against
    the former module-level dictionaries (``symbols.INDEX_RANGES[m] = N``) works."""

    def __init__(self, field: str, declare: Callable[[Notation, object, object], None]):
        self._field, self._declare = field, declare

    def _table(self) -> Mapping:
        return getattr(current(), self._field)

    def __getitem__(self, key):
        return self._table()[key]

    def __setitem__(self, key, value) -> None:
        self._declare(current(), key, value)

    def __delitem__(self, key) -> None:
        raise TypeError("a declaration cannot be removed; make another Notation instead")

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __contains__(self, key) -> bool:
        return key in self._table()

    def get(self, key, default=None):
        return self._table().get(key, default)

    def __repr__(self):
        return f"<{self._field} of {current()!r}>"
