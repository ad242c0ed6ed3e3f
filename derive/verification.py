"""Verification of a function against the mpmath reference of a definition.

The reference is the definition itself (or a proved result), evaluated by the proof
engine's own evaluator with mpmath at :data:`DIGITS` digits from the exact float64
inputs: never a second hand-written formula. Errors are measured in ULPs of the
correctly rounded exact value (floor: the smallest normal number). A gradient is
checked twice more: its reference against central differences of the loss's reference
at high precision, and the function against float64 directional differences of the
loss function it is the gradient of.

Inputs come from a suite: a tuple of :class:`Inputs` (a name and a maker of logits),
which users extend by concatenation: ``MY_SUITE = DEFAULT_INPUTS + (Inputs("wide",
lambda rng: rng.normal(0, 30, (20, 7))),)``.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from types import ModuleType

import mpmath
import numpy as np
import sympy as sp

from . import results, symbols
from .measure import check_grads
from .precise import _CLASSES_KEY, DIGITS, reference, references
from .references import central_differences, digits_for


@dataclass(frozen=True)
class Inputs:
    """One entry of a suite: ``make(rng)`` returns float64 logits, rows x T.

    ``target`` is where an index argument (the true class) points: ``"random"``, or
    ``"argmax"`` (the dominating class: the losses far below 1e-16). ``fd``: whether the
    finite-difference checks of a gradient run on this entry (they need moderate logits).

    Examples
    --------
    >>> from derive import DEFAULT_INPUTS, Inputs
    >>> suite = DEFAULT_INPUTS + (Inputs("wide", lambda rng: rng.normal(0, 30, (20, 7))),)
    >>> suite[-1].name
    'wide'
    """

    name: str
    make: Callable
    target: str = "random"
    fd: bool = False
    #: values for the other arguments, ``fixed(rng, logits) -> {symbol: value}``: a second
    #: logit vector as large as the first, a parameter at the end of its range, the target
    #: at the argmax (a tiny loss); what it does not give is drawn as before
    fixed: Callable | None = None


def _dominated(rng, rows: int, classes: int, low: float, high: float) -> np.ndarray:
    """Moderate logits with one class (the last) ahead of the others by ``low..high``."""
    logits = rng.normal(0, 1, (rows, classes))
    logits[:, -1] = logits[:, :-1].max(axis=1) + rng.uniform(low, high, rows)
    return logits


def _ties(rng, rows: int, classes: int) -> np.ndarray:
    """Small integers: several classes share the maximum (and every other value)."""
    return rng.integers(-2, 3, (rows, classes)).astype(np.float64)


#: the default suite, the same for every catalogue: moderate logits at a few class
#: counts, then the inputs that break kernels -- logits spread over +-1000 (the naive
#: e^a overflows; a max-shift loses the rounding error of a_j - m), one class dominating,
#: losses far below 1e-16, logits near +-708 (where e^a leaves the float64 range), ties
#: and a large T (100: a gradient's reference costs T^2 terms per row). Every declared
#: parameter range adds entries of its own (:func:`parameter_inputs`).
DEFAULT_INPUTS = (
    Inputs("moderate T=3", lambda rng: rng.normal(0, 2, (8, 3)), fd=True),
    Inputs("moderate T=10", lambda rng: rng.normal(0, 3, (8, 10)), fd=True),
    Inputs("spread +-1000", lambda rng: rng.uniform(-1000, 1000, (8, 6))),
    Inputs("one class dominates", lambda rng: _dominated(rng, 8, 5, 20, 30)),
    Inputs("tiny losses", lambda rng: _dominated(rng, 8, 5, 40, 700), target="argmax"),
    Inputs("near +708", lambda rng: 708 + rng.normal(0, 1.5, (8, 5))),
    Inputs("near -708", lambda rng: -708 + rng.normal(0, 1.5, (8, 5))),
    Inputs("ties", lambda rng: _ties(rng, 8, 5)),
    Inputs("large T=100", lambda rng: rng.normal(0, 4, (1, 100))),
)


class _Row(dict):
    """The values of one row for the engine's evaluator (T classes)."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.T, self.N = n_classes, 1


@dataclass
class Verification:
    """Check ``function`` against the reference ``definition``.

    ``function`` is a NumPy function or a :class:`derive.Kernel` (the function of that
    name in the generated module, bound by :func:`bind`; ``args`` then default to the
    kernel's arguments in index notation). ``args`` are the symbols the function's
    arguments stand for, in order: a vector
    (IndexedBase; a float64 rows x T array), an index (integer Symbol; an int64 rows x 1
    column, 0-based), a real scalar (Symbol; a float drawn by its declared sampler,
    fixed per suite entry). ``index`` is the class index of a vector-valued output
    (``definition`` is then its component ``index``); None for one value per row.
    ``classes`` is the symbol of the number of classes. ``ranges`` maps a scalar
    argument to its declared range (lo, hi): the suite then also runs at lo, the middle
    and hi (:func:`parameter_inputs`). ``gradient_of`` names a
    Verification of the loss this is the gradient of (with respect to the first
    argument): then central differences are checked too. ``assumptions`` rewrite the
    definition first (a one-hot label: ``y_j = delta_jc`` with ``c`` the target
    column). ``bound`` is in ULPs.

    Examples
    --------
    >>> import numpy as np
    >>> import sympy as sp
    >>> from derive import Verification, vector, verify_function
    >>> from derive.symbols import CLASSES as T, s
    >>> g = vector("g", lambda rng: rng.normal(0, 1))
    >>> def naive_lse(x):
    ...     return np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
    >>> lse = sp.log(sp.Sum(sp.exp(g[s]), (s, 1, T)))
    >>> result = verify_function(Verification("lse", naive_lse, lse, T, args=(g,), bound=4))
    >>> result.passed, result.worst["moderate T=3"] <= 4, result.worst["near +708"]  # e^a overflows
    (False, True, inf)
    """

    name: str
    function: Callable
    definition: sp.Expr
    classes: sp.Symbol
    args: tuple = ()
    index: sp.Symbol | None = None
    bound: float = 4.0
    inputs: tuple = DEFAULT_INPUTS
    gradient_of: Verification | None = None
    assumptions: tuple = ()
    seed: int = 20240611
    ranges: dict = field(default_factory=dict)
    #: errors in ULPs of max(|exact|, |scale|) instead of |exact| (a sum whose terms cancel
    #: is measured against the sum of their magnitudes, stated in its report entry)
    scale: sp.Expr | None = None

    def __post_init__(self):
        # the assumptions' rewrites are sound: the reference is the definition under them
        # (a one-hot label y_j = delta_jc, say, which the inputs then satisfy)
        for assumption in self.assumptions:
            self.definition = assumption.rewrite(self.definition)
            if self.scale is not None:
                self.scale = assumption.rewrite(self.scale)


@dataclass
class Result:
    """The outcome of one :class:`Verification`: worst ULP error per suite entry and
    the finite-difference checks (relative differences)."""

    name: str
    bound: float
    worst: dict = field(default_factory=dict)  # suite entry -> worst ULP
    values: int = 0
    fd_reference: float | None = None  # reference gradient vs high-precision differences
    fd_function: float | None = None  # function vs float64 directional differences
    seconds: float = 0.0

    @property
    def max_ulp(self) -> float:
        return max(self.worst.values(), default=0.0)

    @property
    def passed(self) -> bool:
        fd_ok = all(v is None or v < 1e-6 for v in (self.fd_reference, self.fd_function))
        return self.max_ulp <= self.bound and fd_ok

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        return cls(data["name"], data["bound_ulp"], dict(data["worst_ulp"]), data["values"],
                   data["fd_reference"], data["fd_function"])

    def as_dict(self) -> dict:
        return {"name": self.name, "bound_ulp": self.bound, "max_ulp": self.max_ulp,
                "worst_ulp": self.worst, "values": self.values, "fd_reference": self.fd_reference,
                "fd_function": self.fd_function, "passed": self.passed}


def bind(spec: Verification, module: ModuleType) -> Verification:
    """``spec`` with a :class:`derive.Kernel` replaced by the function of that name in the
    generated ``module`` (and ``args`` taken from the kernel where not given)."""
    from .codegen import Kernel
    from .functions import to_indexed

    changes = {}
    if isinstance(spec.function, Kernel):
        kernel = spec.function
        changes["function"] = getattr(module, kernel.name)
        if not spec.args:
            forms = [to_indexed(arg, sp.Symbol("_j", integer=True)) for arg in kernel.args]
            changes["args"] = tuple(f.base if isinstance(f, sp.Indexed) else f for f in forms)
    if spec.gradient_of is not None:
        changes["gradient_of"] = bind(spec.gradient_of, module)
    return dataclasses.replace(spec, **changes)


def _arguments(spec: Verification, logits: np.ndarray, rng, target: str = "random",
               fixed: dict | None = None) -> tuple[list, list]:
    """(arrays for the function, per-row environments for the reference). An index
    argument points at a random class, or at the row's maximum (``target="argmax"``);
    an argument in ``fixed`` (:attr:`Inputs.fixed`, a declared range's value) takes
    that value, any other its sampler's draw."""
    fixed = fixed or {}
    rows, n = logits.shape
    arrays, per_row = [], [_Row(n) for _ in range(rows)]
    for env in per_row:
        env[spec.classes] = n
    vectors = 0
    for arg in spec.args:
        if isinstance(arg, sp.IndexedBase):
            values = logits if vectors == 0 else fixed.get(arg, None)
            values = rng.normal(0, 2, logits.shape) if values is None else values
            vectors += 1
            arrays.append(np.ascontiguousarray(values, dtype=np.float64))
            components = [symbols.component(arg, (k,)) for k in range(1, n + 1)]  # made once each
            for env, row in zip(per_row, values):
                for component, v in zip(components, row):
                    env[component] = mpmath.mpf(float(v))
        elif arg.is_integer:
            column = fixed.get(arg, None)
            if column is None:
                column = (np.argmax(logits, axis=1)[:, None] if target == "argmax"
                          else rng.integers(0, n, (rows, 1)))
            column = np.asarray(column).reshape(rows, 1).astype(np.int64)
            arrays.append(column)
            for env, value in zip(per_row, column[:, 0]):
                env[arg] = int(value) + 1
        else:
            draw = symbols.sampler(arg)
            if draw is None and arg not in fixed:
                raise symbols.MissingSampler(symbols.how_to_declare(arg))
            value = float(fixed[arg]) if arg in fixed else float(draw(rng))
            arrays.append(value)
            for env in per_row:
                env[arg] = mpmath.mpf(value)
    return arrays, per_row


def _fd_reference(spec: Verification, env, n: int, h_digits: int = 20) -> float:
    """Relative difference of the gradient reference and central differences of the
    loss reference (both at high precision)."""
    loss, vector, digits = spec.gradient_of.definition, spec.args[0], DIGITS + 2 * h_digits
    return central_differences(
        lambda k, shift: reference(loss, {**env, vector[k]: env[vector[k]] + shift}, digits),
        lambda k: reference(spec.definition, {**env, spec.index: k}, digits), range(1, n + 1), digits, h_digits)


def _fd_function(spec: Verification, logits: np.ndarray, rest: list) -> float:
    """Relative difference of the function and float64 directional central differences
    of the loss function it is the gradient of (the other arguments fixed)."""
    loss = spec.gradient_of.function
    # a step of 1e-5 sqrt(max |a|) and Richardson's extrapolation: the rounding of a + h v
    # is still far below h near |a| = 1000, and the truncation error stays small where the
    # loss curves fast (a softmax of 30 a; the plain step 1e-5 max |a| left 1e-4 there)
    step = 1e-5 * max(1.0, float(np.max(np.abs(logits)))) ** 0.5
    return check_grads(lambda x: loss(np.ascontiguousarray(x), *rest),
                       lambda x: spec.function(np.ascontiguousarray(x), *rest), logits, rtol=1.0,
                       step=step, richardson=True)


def verify_function(spec: Verification, executor: Executor | None = None) -> Result:
    """Run ``spec`` over its suite and declared parameter ranges: the worst ULP error per
    entry, and for a gradient the two finite-difference checks (on the entries marked
    ``fd``). The inputs, the reference values (from the reference cache, else computed
    by ``executor``) and the errors are those of :func:`run`, which measures the same
    draws.

    Examples
    --------
    >>> import numpy as np
    >>> import sympy as sp
    >>> from derive import Verification, vector, verify_function
    >>> from derive.symbols import CLASSES as T, s
    >>> g = vector("g", lambda rng: rng.normal(0, 1))
    >>> def max_shift(x):
    ...     m = x.max(axis=-1, keepdims=True)
    ...     return m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
    >>> lse = sp.log(sp.Sum(sp.exp(g[s]), (s, 1, T)))
    >>> verify_function(Verification("lse", max_shift, lse, T, args=(g,))).max_ulp <= 4
    True
    """
    tic = time.perf_counter()
    plans, tasks = _plan([spec], thorough=False)
    exact = references(tasks, executor)
    result = Result(spec.name, spec.bound)
    for plan in plans:
        parts, unit = _exact_of(plan, exact)
        result.worst[plan.entry.name] = _worst(spec.function, plan.arrays, parts, unit)
        result.values += int(parts.shape[1])
    fd = _fd_checks(plans)
    if spec.gradient_of is not None:
        result.fd_reference, result.fd_function = fd.get(spec.name, (0.0, 0.0))
    result.seconds = time.perf_counter() - tic
    return result


@dataclass
class _Plan:
    """One suite entry of one verification, drawn: the function's arrays, the reference's
    per-row environments, and where its reference task (and its scale's) is."""

    spec: Verification
    entry: Inputs
    logits: np.ndarray
    arrays: list
    per_row: list
    task: int


def _plan(specs: list, thorough: bool) -> tuple[list[_Plan], list]:
    """The draws of every entry of every spec (from each spec's own seed, in suite order:
    the same inputs whoever measures them) and the reference tasks they need."""
    plans, tasks = [], []
    for spec in specs:
        rng = np.random.default_rng(spec.seed)
        for entry, fixed in _entries(spec, thorough):
            logits = np.asarray(entry.make(rng), dtype=np.float64)
            if entry.fixed is not None:  # a declared range's value wins over the entry's draw
                fixed = {**entry.fixed(rng, logits), **fixed}
            arrays, per_row = _arguments(spec, logits, rng, entry.target, fixed)
            digits = [digits_for(row) for row in logits]
            envs = [dict({**env, _CLASSES_KEY: logits.shape[1]}) for env in per_row]
            plans.append(_Plan(spec, entry, logits, arrays, per_row, len(tasks)))
            tasks.append((spec.definition, spec.index, envs, digits))
            if spec.scale is not None:
                tasks.append((spec.scale, spec.index, envs, digits))
    return plans, tasks


def _exact_of(plan: _Plan, exact: list) -> tuple[np.ndarray, np.ndarray | None]:
    """The exact parts of a plan's values, and the unit they are measured in: None (ULPs
    of the value), or max(|exact|, |scale|) for a stated scale."""
    parts, unit = exact[plan.task], None
    if plan.spec.scale is not None:
        unit = parts.copy()
        unit[0] = np.maximum(np.abs(parts[0]), np.abs(exact[plan.task + 1][0]))
    return parts, unit


def _worst(function: Callable, arrays: list, parts: np.ndarray, unit) -> float:
    """The worst error in ULPs of ``function`` on ``arrays`` (inf where it raises)."""
    from .measure import ulp_errors

    try:
        with np.errstate(all="ignore"):  # measured by their values, warnings or not
            computed = np.asarray(function(*arrays), dtype=np.float64).reshape(-1)
        errors = ulp_errors(computed, parts, scale=unit)
        return float(np.max(errors)) if errors.size else 0.0
    except (FloatingPointError, ValueError, OverflowError, ZeroDivisionError):
        return np.inf


def _fd_checks(plans: list[_Plan]) -> dict:
    """{gradient name: (reference vs high-precision differences, function vs float64
    directional differences)}, the worst over the entries marked ``fd``."""
    fd = {}
    for plan in plans:
        spec = plan.spec
        if spec.gradient_of is not None and plan.entry.fd:
            ref, fun = fd.get(spec.name, (0.0, 0.0))
            fd[spec.name] = (max(ref, _fd_reference(spec, plan.per_row[0], plan.logits.shape[1])),
                             max(fun, _fd_function(spec, plan.logits, plan.arrays[1:])))
    return fd


# --------------------------------------------------------------------------- the suite of a catalogue
#: the implementations every run measures: the generated function, and the definition
#: evaluated as written in float64 (the naive formula, the baseline it must beat)
TESTED, NAIVE = "generated", "naive"


def parameter_inputs(spec: Verification) -> list[tuple[Inputs, dict]]:
    """For each declared range of ``spec``: its low end, middle and high end, each on
    moderate logits and on logits where one class dominates (the true class at it)."""
    out = []
    # the other arguments as the suite's own entries give them (a declaration's soft labels
    # or second logits), the parameter at the value of the range
    base = next((entry.fixed for entry in spec.inputs if entry.fixed is not None), None)
    for symbol, (low, high) in spec.ranges.items():
        for value in (low, (low + high) / 2, high):
            label = f"{symbol} = {value:g}"
            out.append((Inputs(label, lambda rng: rng.normal(0, 3, (6, 5)), fd=True, fixed=base), {symbol: value}))
            out.append((Inputs(f"{label}, dominated", lambda rng: _dominated(rng, 6, 5, 30, 400), "argmax",
                               fixed=base), {symbol: value}))
    return out


def _naive_function(spec: Verification) -> Callable:
    """The definition evaluated as written, in float64, one row (and class) at a time:
    sums are loops, vectors 1-based, as in the definition."""
    index = [spec.index] if spec.index is not None else []
    function = sp.lambdify([*spec.args, *index, spec.classes], spec.definition, "numpy")

    def naive(*arrays):
        rows, n = np.shape(arrays[0])
        out = np.empty((rows, n if spec.index is not None else 1))
        for r in range(rows):
            values = []
            for arg, array in zip(spec.args, arrays):
                if isinstance(arg, sp.IndexedBase):
                    values.append(np.concatenate([[np.nan], np.asarray(array[r], dtype=np.float64)]))
                elif arg.is_integer:
                    values.append(int(array[r, 0]) + 1)
                else:
                    values.append(np.float64(array))
            with np.errstate(all="ignore"):
                if spec.index is None:
                    out[r, 0] = function(*values, n)
                else:
                    out[r] = [function(*values, k, n) for k in range(1, n + 1)]
        return out
    return naive


def _entries(spec: Verification, thorough: bool) -> list[tuple[Inputs, dict]]:
    entries = [(entry, {}) for entry in spec.inputs] + parameter_inputs(spec)
    if thorough:  # every entry again, from other draws
        entries += [(dataclasses.replace(entry, name=entry.name + " (2)"), fixed) for entry, fixed in entries]
    return entries


def run(specs: Iterable[Verification], executor: Executor | None = None, thorough: bool = False,
        progress: Callable | None = None) -> results.VerificationTable:
    """Every verification (bound to the generated module) over its suite and declared
    parameter ranges: the generated function and the naive formula, each against the
    reference, in ULPs; for a gradient the finite-difference checks too. The reference
    values are computed by ``executor`` (None: here) and kept in the reference cache;
    the same inputs give the same table whichever executor ran them.

    Examples
    --------
    >>> import numpy as np
    >>> import sympy as sp
    >>> from derive import Inputs, Verification, vector
    >>> from derive.symbols import CLASSES as T, s
    >>> from derive.verification import run
    >>> g = vector("g", lambda rng: rng.normal(0, 1))
    >>> def max_shift(x):
    ...     m = x.max(axis=-1, keepdims=True)
    ...     return m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
    >>> lse = sp.log(sp.Sum(sp.exp(g[s]), (s, 1, T)))
    >>> table = run([Verification("lse", max_shift, lse, T, args=(g,),
    ...                           inputs=(Inputs("far", lambda rng: rng.uniform(700, 720, (4, 3))),))])
    >>> [(r.implementation, r.passed) for r in table.results]
    [('generated', True), ('naive', False)]
    """
    tic = time.perf_counter()
    specs = list(specs)
    plans, tasks = _plan(specs, thorough)
    exact = references(tasks, executor, progress)
    table = results.VerificationTable(tested=TESTED)
    naive = {id(spec): _naive_function(spec) for spec in specs}
    for plan in plans:
        parts, unit = _exact_of(plan, exact)
        for name, function in ((TESTED, plan.spec.function), (NAIVE, naive[id(plan.spec)])):
            table.results.append(results.Result(name, plan.spec.name, plan.entry.name, int(parts.shape[1]),
                                                _worst(function, plan.arrays, parts, unit), plan.spec.bound))
    for name, (ref, fun) in _fd_checks(plans).items():
        table.checks[f"{name}: reference against high-precision central differences"] = ref
        table.checks[f"{name}: float64 directional differences of the loss"] = fun
    table.seconds = time.perf_counter() - tic
    return table
