"""softmax-derive, the symbolic side: a toolkit for checked derivations, generated
NumPy kernels, high-precision verification and reports, for anyone's loss.

The public face (``from derive import ...``):

* one declaration per loss -- :class:`Loss` (the gradient derived, stable kernels
  derived by :mod:`derive.stable`, their proofs, verifications and report entries;
  ``python -m derive loss NAME "EXPR"``);
* symbols and assumptions -- :func:`scalar`, :func:`vector` (a symbol with the
  sampler the engine draws it by), :class:`Assumption` (its rewrite, sampler and
  LaTeX in one place), :class:`MissingSampler`; :class:`Notation` (a content's index
  ranges, samplers and array meanings as one object: a catalogue carries its own, and
  these helpers declare into the active one, as mpmath's functions use its context);
* derivations -- :class:`Step`, :class:`Derivation`, :class:`Catalogue`,
  :func:`load_catalogue`, :func:`check`, :func:`check_all`, the rejections
  :class:`StepRejected`, :class:`StepFalse` (with its counterexample) and
  :class:`StepUnproved`, and :func:`derivation_tests` for pytest;
* code generation -- :class:`Kernel`, :class:`Claim`, :class:`ArrayFunction` (the
  vocabulary in :mod:`derive.functions`, the built-in stable forms in
  :mod:`derive.softmax.kernels`), :func:`define_arrays` (what the arrays of one's
  kernels are in index notation), :func:`write_module`;
* verification -- :class:`Verification`, :class:`Inputs`, :data:`DEFAULT_INPUTS`,
  :func:`verify_function`, :func:`reference`, :func:`ulp_error`, :func:`check_grads`;
* automatic gradients -- :func:`gradient` (a loss in, a checked chain of produced
  steps out, closed form or not), :func:`jacobian`, and the rules it applies:
  :class:`Rule` (a named rewrite with its justification), :class:`Define` (a named
  quantity such as S), collected in tuples extended by concatenation; the softmax
  content's sets are :mod:`derive.softmax.rules`; :class:`Language` is how
  ``python -m derive gradient`` reads a loss in a content's names;
* reports -- :func:`build_report`, :func:`extend_notation` (one's abbreviations and
  index names in the printed formulas).

The built-in content (softmax, the softmax loss, cross entropy) is the library
:mod:`derive.softmax`, written against this face. Stages, each in its own module, data
flowing one way: engine (proofs) -> codegen -> verification -> publish; ``python -m
derive all [--catalogue FILE] [--out DIR]`` runs them in that order.
"""
from .autodiff import Define, Language, Rule, gradient, jacobian
from .codegen import Claim, Kernel, write_module
from .engine import Derivation, Step, StepFalse, StepRejected, StepUnproved, check
from .functions import ArrayFunction, define_arrays
from .loss import Loss
from .measure import check_grads, ulp_error
from .notation import Notation
from .printing import extend_notation
from .publish import build_report
from .registry import Catalogue, check_all, load_catalogue
from .symbols import Assumption, MissingSampler, scalar, vector
from .testing import derivation_tests
from .verification import DEFAULT_INPUTS, Inputs, Verification, reference, verify_function


def _installed_version() -> str:
    """The version of the installed distribution (one number for derive and numeric)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("softmax-derive")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()

__all__ = [
    "Assumption", "ArrayFunction", "Catalogue", "Claim", "DEFAULT_INPUTS", "Define", "Derivation",
    "Inputs", "Kernel", "Language", "Loss", "MissingSampler", "Notation", "Rule", "Step", "StepFalse", "StepRejected",
    "StepUnproved", "Verification", "build_report", "check", "check_all", "check_grads",
    "define_arrays", "derivation_tests", "extend_notation", "gradient", "jacobian",
    "load_catalogue", "reference", "scalar", "vector", "ulp_error", "verify_function",
    "write_module",
]
