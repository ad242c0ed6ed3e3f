"""The proof engine: derivations as chains of checked steps.

A :class:`Derivation` is a title, its assumptions and a chain of :class:`Step` s. Each
step is an expression, the relation it has to the previous one (``=`` by default, or
``>``, ``>=``, ``<``, ``<=``, or ``~`` for a rounded number) and a one-line
justification. What "checked" means, exactly:

(a) **Numeric half.** Both sides are evaluated with mpmath at :data:`DIGITS` significant
    digits on :data:`SAMPLES_PER_T` random instances for every class count T of
    :func:`class_counts` (1, 2, 3, 5, 8 from ``min_classes`` up, plus ``min_classes``,
    ``min_classes + 1`` and one random T up to at least 12, with N and the content's
    other sizes from 1..3) and on the wide instances (one T from 13..17 with N and the
    other sizes in the tens, one T from 24..30; most free indices past the regular T),
    drawn from a seed that is a function of the derivation's key, so every run checks
    the same instances. The values satisfy the assumptions and nothing more (a vector
    that no assumption normalises is not normalised; half of the free indices copy an
    earlier one, so coincidences such as j = c are common; a scalar no assumption
    draws is drawn from its SymPy assumptions), and every instance is checked against
    them: each assumption's ``condition`` must be true there and its rewrite must keep
    the value of both sides (a derivation whose instances never satisfy its
    assumptions is vacuous, and rejected). The evaluator is the engine's own: sums
    are loops, indices are looked up, and every ``Derivative`` is evaluated by
    ``mpmath.diff`` (finite differences at raised precision) -- never by SymPy, so
    SymPy's index calculus cannot fool it. A sum that cancels below what the working
    precision can tell is evaluated again with the digits it needs (up to
    :data:`MAX_DIGITS`), so a value that "held" never cancelled. A step must hold on
    every instance; an instance that cannot be evaluated (a missing component, log 0,
    a division by zero, e^x beyond :data:`LARGEST_EXPONENT`, longer than
    :data:`INSTANCE_SECONDS`) is a rejection too, with the reason.
(b) **Closed numbers.** Between two closed numbers (no free symbol once the
    assumptions fix the given vectors: ``Values`` to the exact rationals of their
    text) the relation is decided by interval arithmetic (``mpmath.iv``) at rising
    precision (:data:`CLOSED_PRECISIONS`), not within a tolerance. A ``~`` step
    (rounding) needs such a closed ``previous`` (or one SymPy shows constant); the
    stated number must have at most ``decimals`` decimals and equal the exact value
    rounded, decided on intervals, never at a precision where the value cancelled.
(c) **Symbolic half.** SymPy shows the relation for symbolic T under the assumptions
    (:func:`symbolic_check`): successively stronger normal forms of the difference,
    and, where the sides branch on index equalities (Piecewise, Kronecker deltas of
    free indices), the same for every case (tried before SymPy's simplify of the
    whole difference, the slowest form). Summation variables are renamed to symbols
    that are integers and nothing else; each sum's range is used inside its own body
    only; ``log`` products are split only where the factors are provably positive; a
    square is non-negative only for a base SymPy shows real; a sum is positive only if
    it is provably non-empty for every T >= ``min_classes``. SymPy is not trusted on an
    index expression other than +-index + constant (:func:`untrusted_index`): such a
    step is shown only by algebra that leaves the indexed terms alone.

A step is accepted only when both halves pass. A cited lemma must have been checked
itself, consist of equalities only, and hold for every T the citing derivation claims
(its ``min_classes`` at most the derivation's); it rewrites its start expression into
its result, its free indices matching any distinct indices (those its assumptions name
stay fixed).

What the numeric half cannot see: sizes beyond those sampled (T past 30, N and other
sizes past 16), instances the random draw does not hit (an error confined to a thin set
of values, or to a coincidence of indices the draw misses), differences below the
tolerance (:data:`TOLERANCE`, relative) between values that are not closed numbers, an
assumption's rewrite that changes no value on the drawn instances, and anything about
floating point: both halves are about exact arithmetic, so numerical stability is
measured by verification, not proved here. That is why the symbolic half is still
required, and why verification exists.

What is remembered, and what the memo trusts: a link accepted once in a process is not
checked again when everything that decided it recurs (:data:`_LINKS_PROVED`, keyed by
:func:`_link_key`: the sides, relation, min_classes, class counts, seed, the cited
lemmas, what the assumptions, the samplers and the instance class *do*
(:func:`behaviour`: a callable's bytecode, constants, captured values and every global
it reads), the index ranges and the engine's settings); a link that depends on
something whose behaviour cannot be known is never remembered. Likewise a step SymPy
has shown is not shown again (:data:`_SHOWN`; the numeric half still runs on each
derivation's own instances). With :data:`MEMO_VARIABLE` set to a directory and
:data:`MEMO_KEY_VARIABLE` holding a secret, both are shared by the processes that hold
both (the test suite's session): every entry is JSON data (a sum's value as SymPy's
srepr, read by :func:`read_srepr`, which builds SymPy's own classes from literals and
runs nothing), read only if its HMAC under the secret is right and it names this
engine's version (:data:`ENGINE_VERSION`). The memo trusts whoever holds the secret.

A rejected step raises a :class:`StepRejected`: :class:`StepFalse` with a
counterexample (T, the values, both sides), :class:`StepUnproved` when every instance
held but SymPy could not show it (saying where it held), :class:`StepUndefined` when an
instance could not be evaluated or does not satisfy the assumptions, :class:`StepVacuous`
when none does. Each names the derivation, the step number, the justification and both
sides.

The package, by concern (each module imports only those above it):

* :mod:`~derive.engine.settings` -- how many instances, at which sizes and precision;
* :mod:`~derive.engine.remembered` -- a sum's free symbols and each Indexed, made once while a check runs;
* :mod:`~derive.engine.steps` -- Step, Derivation, the check reports and the rejections;
* :mod:`~derive.engine.memo` -- the proof memo shared by processes, the srepr reader;
* :mod:`~derive.engine.behaviour` -- what decided a verdict (the keys of remembered ones);
* :mod:`~derive.engine.summation` -- SymPy's Sum.doit, a sum it can only give back given back at once;
* :mod:`~derive.engine.forms` -- canonical forms, index ranges, normal forms, signs;
* :mod:`~derive.engine.lemmas` -- cited lemmas as rewrites;
* :mod:`~derive.engine.symbolic` -- the symbolic half;
* :mod:`~derive.engine.evaluator` -- the mpmath evaluator of a concrete instance;
* :mod:`~derive.engine.instances` -- the class counts and the instances drawn;
* :mod:`~derive.engine.closed` -- closed numbers by interval arithmetic;
* :mod:`~derive.engine.numeric` -- the numeric half;
* :mod:`~derive.engine.driver` -- :func:`check`, link by link.

Everything public is exported here; the settings are read from
:mod:`derive.engine.settings` when the engine runs (change them there).
"""
from __future__ import annotations

from .behaviour import (
    Unknowable,
    _assumptions_behaviour,
    _depends_on,
    _known_fingerprint,
    behaviour,
    fingerprint,
)
from .closed import Unclosed, closed, closed_relation, closed_rounding, enclose
from .driver import _link_key, check
from .evaluator import CANCELLATION_FLOOR, _Cancelled, _Evaluator, evaluate, evaluator
from .forms import (
    LAST_QUICK_FORM,
    _doit_remembering_sums,
    _sum_doit,
    canonical_bound,
    normal_forms,
    refine_ranges,
    sign,
)
from .instances import (
    MAX_PATTERN_INDICES,
    Draws,
    _class_counts,
    _instances,
    _set_partitions,
    class_counts,
    derivation_seed,
    instance_count,
)
from .lemmas import apply_lemma
from .memo import (
    ENGINE_VERSION,
    MEMO_KEY_VARIABLE,
    MEMO_VARIABLE,
    _memo_digest,
    _memo_mac,
    memo_read,
    memo_write,
    read_srepr,
)
from .numeric import NumericFailure, _show, numeric_check
from .settings import (
    CLASS_COUNTS,
    CLOSED_PRECISIONS,
    DEFAULT_SEED,
    DIGITS,
    INSTANCE_SECONDS,
    LARGEST_EXPONENT,
    LARGEST_RANDOM_T,
    MAX_DIGITS,
    SAMPLES_PER_T,
    TOLERANCE,
    WIDE_CLASSES,
    WIDE_SAMPLES,
    WIDE_SIZES,
)
from .steps import (
    RELATIONS,
    Derivation,
    DerivationCheck,
    EvaluationError,
    LemmaRefused,
    Step,
    StepCheck,
    StepFalse,
    StepRejected,
    StepUndefined,
    StepUnproved,
    StepVacuous,
    plain,
)
from .symbolic import MAX_CASE_PAIRS, OPAQUE_FORM, _index_pairs, symbolic_check, untrusted_index

__all__ = [
    "CANCELLATION_FLOOR", "CLASS_COUNTS", "CLOSED_PRECISIONS", "DEFAULT_SEED", "DIGITS",
    "ENGINE_VERSION", "INSTANCE_SECONDS", "LARGEST_EXPONENT", "LARGEST_RANDOM_T", "LAST_QUICK_FORM",
    "MAX_CASE_PAIRS", "MAX_DIGITS", "MAX_PATTERN_INDICES", "MEMO_KEY_VARIABLE", "MEMO_VARIABLE",
    "OPAQUE_FORM", "RELATIONS", "SAMPLES_PER_T", "TOLERANCE", "WIDE_CLASSES", "WIDE_SAMPLES",
    "WIDE_SIZES", "Derivation", "DerivationCheck", "Draws", "EvaluationError", "LemmaRefused",
    "NumericFailure", "Step", "StepCheck", "StepFalse", "StepRejected", "StepUndefined",
    "StepUnproved", "StepVacuous", "Unclosed", "Unknowable", "apply_lemma", "behaviour",
    "canonical_bound", "check", "class_counts", "closed", "closed_relation", "closed_rounding",
    "derivation_seed", "enclose", "evaluate", "evaluator", "fingerprint", "instance_count",
    "memo_read", "memo_write", "normal_forms", "numeric_check", "plain", "read_srepr",
    "refine_ranges", "sign", "symbolic_check", "untrusted_index",
    # internals that the tests and the verification's fingerprint read
    "_Cancelled", "_Evaluator", "_assumptions_behaviour", "_class_counts", "_depends_on", "_doit_remembering_sums",
    "_index_pairs", "_instances", "_known_fingerprint", "_link_key", "_memo_digest", "_memo_mac",
    "_set_partitions", "_show", "_sum_doit",
]
