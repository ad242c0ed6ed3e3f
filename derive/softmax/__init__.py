"""The built-in content: softmax, the softmax loss and cross entropy.

Written against the public face of :mod:`derive`, as a user's catalogue would be:

* :mod:`derive.softmax.definitions` -- the symbols and formulas (logits ``a``, label
  ``y``, true class ``c``, class count ``T``; ``softmax``, ``softmax_loss``, ...);
* :mod:`derive.softmax.catalogue` -- the derivations, by section;
* :mod:`derive.softmax.kernels` -- the array-level stable forms and the kernels of
  ``numeric/_kernels.py``;
* :mod:`derive.softmax.notation` -- what the kernels' arrays are in index notation (in
  the built-in's own :class:`derive.Notation`, ``definitions.NOTATION``, which its
  catalogue carries) and how the reports abbreviate (registered on import).
* :mod:`derive.softmax.rules` -- the rewrite rules and rule sets with which
  :func:`derive.gradient` closes a gradient in S = softmax(a) (and the names
  ``python -m derive gradient`` reads);
* :mod:`derive.softmax.automatic` -- the catalogue's gradient results derived
  automatically.

``CATALOGUE`` (built on first use) is the :class:`derive.Catalogue` that
``python -m derive`` runs when no ``--catalogue`` is given. It declares what it has --
derivations, kernels, its verification suite, its two documents with their figures and
tables, where its generated module and reports live in a source checkout -- and goes
through the same stages (:mod:`derive.stages`) as any user's catalogue. A user's catalogue cites
its derivations as lemmas by key (``Catalogue("mine", uses=[CATALOGUE])``).
"""
from __future__ import annotations

import functools

from . import notation  # noqa: F401 - registers the kernels' arrays and the reports' notation


@functools.lru_cache(maxsize=1)
def _catalogue():
    from ..registry import Catalogue
    from .definitions import NOTATION

    with NOTATION.active():  # whatever importing and building it declares is its own
        from . import catalogue, documents, kernels, losses, report, rules, verify

        cat = Catalogue("softmax", "Softmax, the softmax loss and cross entropy", notation=NOTATION)
        cat.add(*catalogue.build())
        cat.kernels = list(kernels.KERNELS)
        cat.verification(verify.Suite())
        cat.language = rules.LANGUAGE
        cat.documents = documents.DOCUMENTS
        cat.figures, cat.blocks, cat.computed = report.FIGURES, report.BLOCKS, report.computed
        cat.module_header, cat.results_name = kernels.HEADER, "verification.json"
        if (report.ROOT / "pyproject.toml").is_file() and report.REPORTS.is_dir():
            # a source checkout: the committed generated module, reports and README are its home
            cat.module, cat.home, cat.readme = kernels.TARGET, report.REPORTS, report.ROOT / "README.md"
        cat.loss_content = losses.CONTENT  # how `python -m derive loss` reads a loss
    return cat


def __getattr__(name):
    if name == "CATALOGUE":
        return _catalogue()
    if name == "LOSS_CONTENT":  # how `python -m derive loss` reads a loss (derive.loss.Content)
        from .losses import CONTENT
        return CONTENT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
