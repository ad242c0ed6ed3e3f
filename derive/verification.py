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
from collections.abc import Callable
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from . import engine, symbols
from .measure import check_grads, ulp_error

#: digits of the reference evaluation
DIGITS = 50


@dataclass(frozen=True)
class Inputs:
    """One entry of a suite: ``make(rng)`` returns float64 logits, rows x T.

    Examples
    --------
    >>> from derive import DEFAULT_INPUTS, Inputs
    >>> suite = DEFAULT_INPUTS + (Inputs("wide", lambda rng: rng.normal(0, 30, (20, 7))),)
    >>> suite[-1].name
    'wide'
    """

    name: str
    make: Callable
    #: values for the other arguments, ``fixed(rng, logits) -> {symbol: value}``: a second
    #: logit vector as large as the first, a parameter at the end of its range, the target
    #: at the argmax (a tiny loss); what it does not give is drawn as before
    fixed: Callable | None = None


#: the default suite: moderate logits at a few class counts, and a wide spread
DEFAULT_INPUTS = (
    Inputs("moderate T=3", lambda rng: rng.normal(0, 2, (12, 3))),
    Inputs("moderate T=10", lambda rng: rng.normal(0, 3, (12, 10))),
    Inputs("spread T=6", lambda rng: rng.uniform(-40, 40, (8, 6))),
    Inputs("one class dominates", lambda rng: np.concatenate(
        [rng.normal(0, 1, (8, 4)), rng.uniform(20, 30, (8, 1))], axis=1)),
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
    ``classes`` is the symbol of the number of classes. ``gradient_of`` names a
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
    >>> verify_function(Verification("lse", naive_lse, lse, T, args=(g,), bound=4)).passed
    True
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


def bind(spec: Verification, module) -> Verification:
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


def _arguments(spec: Verification, logits: np.ndarray, rng, fixed: dict | None = None) -> tuple[list, list]:
    """(arrays for the function, per-row environments for the reference); ``fixed``
    gives some of them (:attr:`Inputs.fixed`)."""
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
            column = rng.integers(0, n, (rows, 1)) if column is None else column
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


def reference(expr: sp.Expr, env: dict, digits: int = DIGITS):
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
    loss, vector = spec.gradient_of.definition, spec.args[0]
    worst = mpmath.mpf(0)
    with mpmath.workdps(DIGITS + 2 * h_digits):
        h = mpmath.mpf(10) ** (-h_digits)
        for k in range(1, n + 1):
            moved = dict(env)
            moved[vector[k]] = env[vector[k]] + h
            up = reference(loss, moved, DIGITS + 2 * h_digits)
            moved[vector[k]] = env[vector[k]] - h
            down = reference(loss, moved, DIGITS + 2 * h_digits)
            fd = (up - down) / (2 * h)
            exact = reference(spec.definition, {**env, spec.index: k}, DIGITS + 2 * h_digits)
            worst = max(worst, abs(fd - exact) / max(abs(exact), mpmath.mpf(10) ** -30))
    return float(worst)


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
    for entry in spec.inputs:
        logits = np.asarray(entry.make(rng), dtype=np.float64)
        fixed = entry.fixed(rng, logits) if entry.fixed is not None else None
        arrays, per_row = _arguments(spec, logits, rng, fixed)
        with np.errstate(all="raise"):
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
