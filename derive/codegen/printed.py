"""The printed code checked against what it claims: the NumPy a kernel prints, run on
drawn values, must agree with its index form evaluated by the engine at high precision
(the proofs are about the index form, so the two must be the same function).
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable

import mpmath
import numpy as np
import sympy as sp

from .. import engine
from ..functions import MEANINGS, to_indexed
from .claims import Claim, Kernel, kernel_proofs
from .printer import render

# --------------------------------------------------------------------------- the printed code
#: the class counts (from the claims' min_classes up) and rows the printed NumPy of every
#: kernel is run on; its outputs must agree with their index form, evaluated by the
#: engine at high precision on the same values, to this relative tolerance (float64
#: against the exact value: a kernel that computes something else misses it by far)
PRINTED_CLASSES = (1, 6, 14)
PRINTED_ROWS = 3
PRINTED_TOLERANCE = 1e-8


def check_printed(specs, seed: int = engine.DEFAULT_SEED) -> None:
    """Run the printed NumPy of every kernel (both forms, with ``moderate``) on values
    drawn as the proofs draw them (the content's instance, the claims' assumptions: one
    instance per row) and compare every output with its index form (what an
    ArrayFunction's ``indexed`` says it computes) evaluated by the engine on the same
    values. A kernel whose printed code computes something else is rejected: the proof
    is about the index form, so the two must be the same function.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive import Claim, Kernel, define_arrays, vector
    >>> from derive.codegen import check_printed
    >>> from derive.functions import RowSum
    >>> from derive.symbols import CLASSES as T, s
    >>> g, G = vector("g", lambda rng: rng.normal(0, 1)), sp.Symbol("G", real=True)
    >>> define_arrays({G: g})
    >>> claim = Claim("kernel_total", "Kernel total", (), sp.Sum(g[s], (s, 1, T)), "definition", ())
    >>> check_printed([Kernel("total", (G,), (RowSum(G),), "sum_j g_j", (claim,))])
    """
    specs = list(specs)
    namespace: dict = {}
    exec(compile(render(specs, "import numpy"), "<printed kernels>", "exec"), namespace)  # noqa: S102 - our own printed code
    for kernel in specs:
        forms = [(False, kernel.outputs)] + ([(True, kernel.moderate)] if kernel.moderate else [])
        low = max([1] + [claim.min_classes for claim in kernel.claim_list])
        rng = np.random.default_rng(seed + zlib.crc32(kernel.name.encode()))
        for n_classes in sorted({max(low, n) for n in PRINTED_CLASSES}):
            envs = _printed_instances(kernel, n_classes, rng)
            if envs is None:
                continue
            args = _printed_arguments(kernel, envs)
            for moderate, outputs in forms:
                call = {"moderate": True} if moderate else {}
                try:
                    got = namespace[kernel.name](*args, **call) if kernel.rows else namespace[kernel.name](*args)
                except Exception as err:  # noqa: BLE001 - the printed code fails: a rejection
                    raise _printed_rejection(kernel, f"its printed NumPy raises {type(err).__name__}: "
                                                     f"{err} (T = {n_classes})") from None
                got = got if isinstance(got, tuple) else (got,)
                for number, (output, value) in enumerate(zip(outputs, got)):
                    _compare_printed(kernel, number, output, np.asarray(value), envs, moderate)


def _claim_index(kernel: Kernel) -> sp.Symbol:
    return kernel.claim_list[0].index if kernel.claim_list else Claim.index


def _printed_instances(kernel: Kernel, n_classes: int, rng) -> list | None:
    """One instance per row, drawn as the engine draws the proofs' instances (the
    scalars that are arguments of a row kernel are the same on every row)."""
    from .. import symbols

    assumptions = list(dict.fromkeys(h for claim in kernel.claim_list for h in claim.assumptions))
    forms = [to_indexed(out, _claim_index(kernel)) for out in kernel.outputs + kernel.moderate]
    envs = []
    for _ in range(PRINTED_ROWS):
        env = symbols.new_instance(rng, n_classes, symbols.draw_size(rng))
        symbols.draw_declared(env, forms, rng)
        if envs and kernel.rows:
            for arg in kernel.args:
                if arg not in MEANINGS and arg in envs[0]:
                    env[arg] = envs[0][arg]
        try:
            for assumption in assumptions:
                assumption.sample(env)
        except Exception:  # noqa: BLE001 - not drawable at this T: the proofs say where
            return None
        envs.append(env)
    return envs


def _printed_arguments(kernel: Kernel, envs: list) -> list:
    """The kernel's arguments built from the instances: a vector's components as a row,
    an index (the target) as a 0-based int64 column, a scalar of a row kernel as a
    Python float (elementwise kernels: one entry per instance)."""
    from .. import symbols

    args = []
    for arg in kernel.args:
        meaning = MEANINGS.get(arg, arg)
        if isinstance(meaning, sp.IndexedBase):
            args.append(np.array([[float(env[symbols.component(meaning, (j,))]) for j in range(1, env.T + 1)]
                                  for env in envs], dtype=np.float64))
        elif meaning in symbols.INDEX_RANGES:
            args.append(np.array([[int(env[meaning]) - 1] for env in envs], dtype=np.int64))
        elif kernel.rows:
            args.append(float(engine.evaluate(meaning, envs[0])))
        else:
            args.append(np.array([float(engine.evaluate(meaning, env)) for env in envs]))
    return args


def _printed_rejection(kernel: Kernel, reason: str, form=sp.S.Zero, number: int = 0):
    claim = kernel.claim_list[0] if kernel.claim_list else None
    return engine.StepRejected(
        claim.title if claim else kernel.name, len(claim.via) + 1 if claim else 1,
        "the kernel's printed NumPy", form, sp.Symbol(f"{kernel.name}(...)[{number}]"),
        f"kernel {kernel.name!r}: {reason}")


def _compare_printed(kernel: Kernel, number: int, output, value, envs: list, moderate: bool) -> None:
    index = _claim_index(kernel)
    form = to_indexed(output, index)
    which = "moderate form" if moderate else "form"
    if value.size not in (len(envs), len(envs) * envs[0].T):
        raise _printed_rejection(kernel, f"the printed NumPy ({which}, output {number}) returns shape "
                                         f"{value.shape} for {len(envs)} rows of T = {envs[0].T}", form, number)
    value = value.reshape(len(envs), -1)
    for row, env in enumerate(envs):
        shared = engine.evaluator(env)
        for col in range(value.shape[1]):
            try:
                exact = engine.evaluate(form.xreplace({index: sp.Integer(col + 1)}), env, shared)
            except engine.EvaluationError:
                continue  # no exact value here: the proofs decide what the form means
            got = float(value[row, col])
            if np.isfinite(got) and abs(got - float(mpmath.re(exact))) <= PRINTED_TOLERANCE * (1 + abs(exact)):
                continue
            raise _printed_rejection(
                kernel, f"the printed NumPy ({which}, output {number}) gives {got!r} at row {row + 1}, "
                f"column {col + 1} (T = {env.T}), where its index form {sp.sstr(form)} is "
                f"{mpmath.nstr(exact, 15)}: the code an ArrayFunction prints must compute what its "
                "indexed form says", form, number)


def prove_kernels(specs: Iterable[Kernel], numeric: bool = True) -> list[engine.DerivationCheck]:
    """Check the proof of every output of every kernel, and (``numeric``) run the printed
    NumPy of every kernel against the index form of its outputs (raises a StepRejected
    on the first failure)."""
    specs = list(specs)
    reports = [engine.check(proof, numeric=numeric) for proof in kernel_proofs(specs)]
    if numeric:
        check_printed(specs)
    return reports
