"""The catalogue: the content that the stages take as their argument.

A :class:`Catalogue` holds derivations (checked by :func:`check_all`), kernels (proved
and printed by :func:`derive.codegen.write_module`), verifications (run by
:func:`derive.verify_function`) and report sections (written by
:func:`derive.publish.build_report`). Content registers itself into one; the stages
never name it. :func:`load_catalogue` finds the catalogue of a module or a file, so
that ``python -m derive all --catalogue my_loss.py --out DIR`` runs a user's content.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from . import engine
from .engine import Derivation, Step
from .notation import DEFAULT, LIBRARY, Notation, current

if TYPE_CHECKING:  # the catalogue holds them; the stages import their modules
    from .codegen import Kernel
    from .verification import Verification

#: the module holding the built-in catalogue (``--catalogue`` default)
BUILT_IN = "derive.softmax"


class Catalogue:
    """Named content: derivations, kernels, verifications and report sections.

    ``uses`` are catalogues whose derivations this one cites as lemmas by key (the
    built-in softmax catalogue, say). A step's ``lemma`` may be a key (or a tuple of
    keys): :meth:`add` resolves it here first, then in ``uses``.

    ``notation`` (a :class:`derive.notation.Notation`) holds its index ranges,
    samplers, instance class and array meanings; the stages run under it. By default
    a notation of its own that sees those of ``uses`` and, above them, the notation
    active where the catalogue is made (where its file's ``scalar``, ``vector`` and
    ``index`` declarations went: :func:`load_catalogue` gives each file a fresh one).

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Catalogue, Step, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> cat = Catalogue("toy", "A toy loss")
    >>> d = cat.derivation("square", "A square", [
    ...     Step((x + 1) ** 2, "definition"),
    ...     Step(x ** 2 + 2 * x + 1, "expand")])
    >>> cat.keys()
    ['square']
    """

    def __init__(self, name: str, title: str = "", uses: Iterable[Catalogue] = (),
                 intro: str = "", notation: Notation | None = None):
        if not name.isidentifier():
            raise ValueError(f"a catalogue name is a Python identifier (it names files); got {name!r}")
        self.name, self.title, self.intro = name, title or name, intro
        self.uses = tuple(uses)
        used = [other.notation for other in self.uses]
        if notation is None:  # its own, whose declarations win over those it sees
            notation = Notation(name, uses=[*used, current()])
        else:
            notation.include(*used)
        self.notation = notation
        self.derivations: dict[str, Derivation] = {}
        self.kernels: list = []
        self.verifications: list = []
        self.sections: list[tuple[str, str]] = []
        #: the documents of its report (:class:`derive.document.Document`); none: the
        #: machinery writes one document of its intro, sections, derivations, kernels,
        #: verification table and error figures (:func:`derive.publish.default_document`)
        self.documents: tuple = ()
        #: figure key -> draw(path, rendering), block key -> (latex, markdown) renderers:
        #: added to the machinery's own ("errors"; "verification", "kernels")
        self.figures: dict = {}
        self.blocks: dict = {}
        #: values(rendering) -> dict: what the documents' @name@ placeholders and own blocks
        #: need, computed when the report is written (None: nothing beyond the machinery's)
        self.computed = None
        #: the committed generated module in a source checkout (the built-in's
        #: numeric/_kernels.py) and its header; None: OUT/NAME_kernels.py with a generic header
        self.module: Path | None = None
        self.module_header: str | None = None
        #: where its outputs go in a source checkout when no --out is given (None: the
        #: current directory), and a README whose verification table is kept current there
        self.home: Path | None = None
        self.readme: Path | None = None
        #: the file name of its verification results
        self.results_name = f"{name}_verification.json"
        #: how ``python -m derive gradient`` reads a loss in this content's names
        #: (a :class:`derive.Language`; None: that of a catalogue it uses)
        self.language = None

    # ---------------------------------------------------------------- derivations
    def lookup(self, key: str) -> Derivation:
        """The derivation ``key`` of this catalogue or of one it uses."""
        if key in self.derivations:
            return self.derivations[key]
        for other in self.uses:
            try:
                return other.lookup(key)
            except KeyError:
                continue
        known = ", ".join(self.keys()) or "none"
        raise KeyError(f"no derivation {key!r} in the catalogue {self.name!r} or those it uses "
                       f"(its own keys: {known})")

    def _resolved(self, step: Step) -> Step:
        lemmas = step.lemma
        if lemmas is None:
            return step
        many = isinstance(lemmas, (tuple, list))
        found = tuple(self.lookup(lem) if isinstance(lem, str) else lem
                      for lem in (lemmas if many else (lemmas,)))
        return dataclasses.replace(step, lemma=found if many else found[0])

    def add(self, *derivations: Derivation) -> Derivation:
        """Register derivations (lemma keys resolved); returns the last one."""
        for d in derivations:
            if d.key in self.derivations:
                raise ValueError(f"the catalogue {self.name!r} already has a derivation {d.key!r}")
            d.steps = [self._resolved(step) for step in d.steps]
            self.derivations[d.key] = d
        return derivations[-1]

    def derivation(self, key: str, title: str, steps: list, assumptions: Iterable = (), **options) -> Derivation:
        """Make a :class:`Derivation` and register it (``options``: ``matrix``,
        ``min_classes``, ``section``)."""
        return self.add(Derivation(key, title, tuple(assumptions), list(steps), **options))

    def keys(self) -> list[str]:
        return list(self.derivations)

    def __getitem__(self, key: str) -> Derivation:
        return self.lookup(key)

    def __iter__(self):
        return iter(self.derivations.values())

    def __len__(self):
        return len(self.derivations)

    # ---------------------------------------------------------------- other content
    def kernel(self, kernel: Kernel) -> Kernel:
        """Register a :class:`derive.codegen.Kernel` (lemma keys in its claims resolved);
        returns it."""
        claims = []
        for output_claims in kernel.claims:
            many = isinstance(output_claims, tuple)
            resolved = tuple(dataclasses.replace(
                c, lemmas=tuple(self.lookup(lem) if isinstance(lem, str) else lem for lem in c.lemmas),
                via=tuple(self._resolved(step) for step in c.via))
                for c in (output_claims if many else (output_claims,)))
            claims.append(resolved if many else resolved[0])
        kernel.claims = tuple(claims)
        self.kernels.append(kernel)
        return kernel

    def verification(self, spec: Verification) -> Verification:
        """Register a :class:`derive.verification.Verification` (or a suite of one's own:
        an object whose ``run(executor, thorough, out)`` returns a
        :class:`derive.results.VerificationTable`)."""
        self.verifications.append(spec)
        return spec

    def section(self, heading: str, text: str) -> None:
        """Add a report section (Markdown; ``$...$`` is math in both outputs)."""
        self.sections.append((heading, text))

    def __repr__(self):
        return (f"Catalogue({self.name!r}: {len(self.derivations)} derivations, "
                f"{len(self.kernels)} kernels, {len(self.verifications)} verifications)")


def check_all(derivations: Iterable[Derivation], seed: int = engine.DEFAULT_SEED
              ) -> list[tuple[Derivation, engine.DerivationCheck | engine.StepRejected]]:
    """Check every derivation; a list of (derivation, report or the rejection).

    Unlike :func:`derive.check`, a rejection does not stop the others. A catalogue's
    derivations are checked under its notation.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Catalogue, Step, check_all, scalar
    >>> x = scalar("x", lambda rng: rng.normal(0, 2))
    >>> cat = Catalogue("toy")
    >>> _ = cat.derivation("square", "A square", [Step((x + 1) ** 2, "definition"),
    ...                                          Step(x ** 2 + 2 * x + 1, "expand")])
    >>> [type(outcome).__name__ for _, outcome in check_all(cat)]
    ['DerivationCheck']
    """
    out = []
    notation = derivations.notation if isinstance(derivations, Catalogue) else current()
    with notation.active():
        for d in derivations:
            try:
                out.append((d, engine.check(d, seed=seed)))
            except engine.StepRejected as err:
                out.append((d, err))
    return out


def load_catalogue(spec: str | None = None) -> Catalogue:
    """The catalogue of a module name (``derive.softmax``) or a Python file's path:
    its ``CATALOGUE`` attribute, else its only module-level :class:`Catalogue`.

    The module runs under a fresh :class:`~derive.notation.Notation` that sees the
    library's (the built-in's): what it declares (``scalar``, ``vector``, ``index``,
    ``define_arrays``) is its catalogue's, never another catalogue's. Code that
    activates no notation sees it too afterwards (the default notation sees every
    loaded file's, the last loaded winning).

    Examples
    --------
    >>> from derive import load_catalogue
    >>> load_catalogue().name
    'softmax'
    """
    spec = spec or BUILT_IN
    declared = Notation(f"declared by {spec}", uses=[LIBRARY])
    with declared.active():
        module = _load_module(spec)
    if declared.declares:
        DEFAULT.replace(declared)
    found = getattr(module, "CATALOGUE", None)
    if found is None:
        found = [value for value in vars(module).values() if isinstance(value, Catalogue)]
        if len(found) != 1:
            raise ValueError(f"--catalogue {spec}: define CATALOGUE = derive.Catalogue(...) in it "
                             f"(found {len(found)} catalogues)")
        found = found[0]
    if not isinstance(found, Catalogue):
        raise TypeError(f"--catalogue {spec}: CATALOGUE is a {type(found).__name__}, not a derive.Catalogue")
    return found


def _load_module(spec: str):
    """The module of a file's path (run now) or of a module name (imported)."""
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"--catalogue {spec}: no such file")
        name = f"_derive_catalogue_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path.resolve())
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)
