"""Kernels and their claims: a :class:`Kernel` is a named function of array expressions,
each output with the :class:`Claim` it is proved against (:func:`kernel_proof`: a
derivation that cites the claim's lemmas and ends in the kernel's own index form);
:func:`prove_kernels` proves them all and checks the printed code.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import sympy as sp

from .. import engine
from ..engine import Derivation, Step
from ..functions import to_indexed


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
