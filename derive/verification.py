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

from . import engine, results, symbols
from .measure import check_grads, ulp_error
from .references import central_differences, digits_for, keep, load_cached

#: digits of the reference evaluation
DIGITS = 50


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
            for env, row in zip(per_row, values):
                for k, v in enumerate(row, start=1):
                    env[arg[k]] = mpmath.mpf(float(v))
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


def reference(expr: sp.Expr, env: dict, digits: int = DIGITS) -> mpmath.mpf:
    """``expr`` on the values ``env`` (symbols and vector components -> numbers), by the
    engine's evaluator at ``digits`` digits.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import reference
    >>> from derive.symbols import CLASSES as T, s
    >>> g = sp.IndexedBase("g")
    >>> row = {T: 2, g[1]: 0.0, g[2]: 0.0}
    >>> float(reference(sp.log(sp.Sum(sp.exp(g[s]), (s, 1, T))), row))  # log 2
    0.6931471805599453
    """
    with mpmath.workdps(digits):
        return +engine._Evaluator(env)(expr)


def rising_reference(expr: sp.Expr, env: dict, digits: int = DIGITS, most: int = 1600):
    """``expr`` at rising precision: evaluations at 30 and 60 digits, then 2x, 4x...
    until two agree to 25 digits, the last returned (a definition that cancels, 1 - S_c
    with S_c within 1e-200 of 1, needs more than 50 digits; one that divides by it
    cannot be evaluated at 50 digits at all; a 0 may be a cancellation and rises too).
    At least ``digits`` digits are used for the value returned."""
    last, work = None, 30
    while work <= most:
        try:
            value = reference(expr, env, max(work, digits) if last is not None else work)
        except engine.EvaluationError:
            value = None
        if value is not None and last is not None and value != 0:
            with mpmath.workdps(max(work, digits)):
                if abs(value - last) <= abs(value) * mpmath.mpf(10) ** -25:
                    return value
        last, work = value, work * 2
    if last is None:
        return reference(expr, env, most)  # raises the evaluator's own error
    return last


def _values(spec: Verification, env, n: int, expr=None) -> list:
    expr = spec.definition if expr is None else expr
    if spec.index is None:
        return [rising_reference(expr, env)]
    return [rising_reference(expr, {**env, spec.index: k}) for k in range(1, n + 1)]


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


def verify_function(spec: Verification) -> Result:
    """Run ``spec`` over its suite: the worst ULP error per entry, and for a gradient the
    two finite-difference checks. See :class:`Verification` for an example.

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
    result = Result(spec.name, spec.bound)
    rng = np.random.default_rng(spec.seed)
    fd_ref, fd_fun = 0.0, 0.0
    for entry, fixed in _entries(spec, thorough=False):
        logits = np.asarray(entry.make(rng), dtype=np.float64)
        if entry.fixed is not None:  # a declared range's value wins over the entry's draw
            fixed = {**entry.fixed(rng, logits), **fixed}
        arrays, per_row = _arguments(spec, logits, rng, entry.target, fixed)
        with np.errstate(all="ignore"):  # measured by the values it returns
            computed = spec.function(*arrays)
        computed = np.asarray(computed, dtype=np.float64).reshape(logits.shape[0], -1)
        worst = 0.0
        for out_row, env in zip(computed, per_row):
            scales = (_values(spec, env, logits.shape[1], spec.scale) if spec.scale is not None
                      else [None] * len(out_row))
            for got, exact, scale in zip(out_row, _values(spec, env, logits.shape[1]), scales):
                unit = None if scale is None else max(abs(exact), abs(scale))
                worst = max(worst, ulp_error(got, exact, scale=unit))
                result.values += 1
        result.worst[entry.name] = worst
        if spec.gradient_of is not None:
            fd_ref = max(fd_ref, _fd_reference(spec, per_row[0], logits.shape[1]))
            fd_fun = max(fd_fun, _fd_function(spec, logits, arrays[1:]))
    if spec.gradient_of is not None:
        result.fd_reference, result.fd_function = fd_ref, fd_fun
    result.seconds = time.perf_counter() - tic
    return result


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


def _row_values(definition, index, row: dict, n: int, digits: int, classes=None) -> list:
    """The values of one row at ``digits`` digits: one, or one per class (of ``classes``:
    default every class)."""
    with mpmath.workdps(digits):
        if index is None:
            return [reference(definition, row, digits)]
        return [reference(definition, {**row, index: k}, digits) for k in (classes or range(1, n + 1))]


def _sample(n: int, index_values) -> list[int]:
    """The classes whose values decide a row's precision: the ends, the middle and every
    class an index argument points at (the true class, where a gradient cancels)."""
    return sorted({1, n, (n + 1) // 2, *(k for k in index_values if 1 <= k <= n)})


#: digits that resolve any float64 result (down to the smallest subnormal, 4.9e-324) of a
#: sum of terms up to about 1e70 that cancels to it
_RESOLVES_FLOAT64 = 400


def _settled(low: list, high: list, digits: int) -> bool:
    """Whether the values at ``digits`` digits (``low``) and at more (``high``) agree to
    far more digits than float64 resolves. A value that vanishes at this precision may
    be a cancellation that more digits resolve, so it settles only at
    :data:`_RESOLVES_FLOAT64` digits."""
    for a, b in zip(low, high):
        if mpmath.isnan(a) or mpmath.isnan(b):
            if not (mpmath.isnan(a) and mpmath.isnan(b)):
                return False
            continue
        if abs(b) < mpmath.mpf(10) ** (20 - digits) and digits < _RESOLVES_FLOAT64:
            return False
        if abs(a - b) > max(abs(b) * mpmath.mpf(10) ** -25, mpmath.mpf(10) ** -340):
            return False
    return True


def _reference_task(task) -> np.ndarray:
    """The exact values of the rows of one suite entry, as :func:`exact_parts` (3, rows * k):
    a module-level function of plain data, so that any executor can run it.

    Each row is evaluated at rising precision until two precisions agree: a parameter
    such as a temperature can make a row cancel more digits than its logits suggest."""
    from .measure import exact_parts

    definition, index, envs, digits = task
    values, top = [], DIGITS
    for env, row_digits in zip(envs, digits):
        n = env[_CLASSES_KEY]
        row = {key: value for key, value in env.items() if key != _CLASSES_KEY}
        # rising precision on a few classes, then every class at the precision they settle at
        sample = None if index is None else _sample(n, [v for v in row.values() if isinstance(v, int)])
        low = _row_values(definition, index, row, n, row_digits, sample)
        while True:
            high = _row_values(definition, index, row, n, row_digits + 40, sample)
            if _settled(low, high, row_digits) or row_digits > 4000:
                break
            row_digits, low = 2 * row_digits, high
        values += high if index is None else _row_values(definition, index, row, n, row_digits + 40)
        top = max(top, row_digits + 40)
    with mpmath.workdps(top):
        return exact_parts(values)


_CLASSES_KEY = "__classes__"


def _task_key(task, fingerprint: str) -> str:
    import hashlib

    definition, index, envs, digits = task
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(sp.srepr(definition).encode())
    digest.update(repr(index).encode())
    for env, row_digits in zip(envs, digits):
        digest.update(repr(sorted((str(k), repr(v)) for k, v in env.items())).encode())
        digest.update(str(row_digits).encode())
    return digest.hexdigest()[:32]


def _fingerprint() -> str:
    """What a reference value depends on besides its task: the evaluator and mpmath."""
    import hashlib
    import inspect

    sources = [inspect.getsource(f) for f in (_reference_task, _row_values, _sample, _settled, reference,
                                              engine._Evaluator)]
    return hashlib.sha256("\n".join(sources + [mpmath.__version__, str(DIGITS)]).encode()).hexdigest()


def references(tasks: list, executor: Executor | None = None, progress: Callable | None = None
               ) -> list[np.ndarray]:
    """The exact values of every task (one suite entry of one verification each), read
    from the reference cache where they are, else computed by ``executor`` and kept."""
    from .executors import cache_dir, in_order

    where, fingerprint = cache_dir(), _fingerprint()
    paths = [where / f"v-{_task_key(task, fingerprint)}.npy" if where else None for task in tasks]
    found = [load_cached(path) for path in paths]
    todo = [k for k in range(len(tasks)) if found[k] is None]
    for done, (k, parts) in enumerate(zip(todo, in_order(executor, _reference_task, [tasks[k] for k in todo])), 1):
        found[k] = parts
        if progress:
            progress(done, len(todo))
        keep(paths[k], parts)
    return found


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
    from .measure import ulp_errors

    tic = time.perf_counter()
    specs = list(specs)
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
            plans.append((spec, entry, logits, arrays, per_row, len(tasks)))
            tasks.append((spec.definition, spec.index, envs, digits))
            if spec.scale is not None:
                tasks.append((spec.scale, spec.index, envs, digits))
    exact = references(tasks, executor, progress)
    table = results.VerificationTable(tested=TESTED)
    fd = {}
    naive = {id(spec): _naive_function(spec) for spec in specs}
    for spec, entry, logits, arrays, per_row, task in plans:
        parts, unit = exact[task], None
        if spec.scale is not None:  # ULPs of max(|exact|, |scale|)
            unit = parts.copy()
            unit[0] = np.maximum(np.abs(parts[0]), np.abs(exact[task + 1][0]))
        for name, function in ((TESTED, spec.function), (NAIVE, naive[id(spec)])):
            try:
                with np.errstate(all="ignore"):  # measured by their values, warnings or not
                    computed = np.asarray(function(*arrays), dtype=np.float64).reshape(-1)
                errors = ulp_errors(computed, parts, scale=unit)
                worst = float(np.max(errors)) if errors.size else 0.0
            except (FloatingPointError, ValueError, OverflowError, ZeroDivisionError):
                worst = np.inf
            table.results.append(results.Result(name, spec.name, entry.name, int(parts.shape[1]), worst, spec.bound))
        if spec.gradient_of is not None and entry.fd:
            ref, fun = fd.get(spec.name, (0.0, 0.0))
            fd[spec.name] = (max(ref, _fd_reference(spec, per_row[0], logits.shape[1])),
                             max(fun, _fd_function(spec, logits, arrays[1:])))
    for name, (ref, fun) in fd.items():
        table.checks[f"{name}: reference against high-precision central differences"] = ref
        table.checks[f"{name}: float64 directional differences of the loss"] = fun
    table.seconds = time.perf_counter() - tic
    return table
