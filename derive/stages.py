"""The stages, one set for every catalogue: prove -> generate -> verify -> report.

Each stage is a function of a :class:`Run` (a catalogue, where its outputs go, the
executor that takes its independent work) and returns an exit status: 0 on success,
1 on a failed check. The catalogue is data: what it declares (derivations, kernels,
verifications, documents, figures, where its generated module lives) decides what is
done, never a stage of its own. The built-in softmax content goes through here exactly
as a user's file does.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from . import codegen, engine, results, symbols
from .executors import Progress, in_order, shown_path, workers
from .registry import Catalogue, load_catalogue
from .verification import Verification


@dataclass
class Run:
    """One run of the stages: the ``catalogue``, how a worker process loads it again
    (``spec``: a module name or an absolute file path; None for the built-in one), the
    directory ``out`` its outputs go to (``at_home``: that is the catalogue's own place
    in a source checkout, where the committed files live), and the ``executor``
    (None: in this process)."""

    catalogue: Catalogue
    spec: str | None
    out: Path
    executor: Executor | None = None
    at_home: bool = False


def where(catalogue: Catalogue, out: str | Path | None) -> tuple[Path, bool]:
    """The output directory of a run, absolute, and whether it is the catalogue's home:
    ``out`` (relative to the current directory) if given, else the catalogue's home in
    a source checkout, else the current directory."""
    if out is not None:
        return Path(out).resolve(), False
    if catalogue.home is not None and catalogue.home.is_dir():
        return catalogue.home, True
    return Path.cwd(), False


# --------------------------------------------------------------------------- prove
def _prove_one(item: tuple[str | None, str]) -> tuple[bool, int, list[str]]:
    """Check the derivation ``key`` of the catalogue ``spec`` (loaded again in a worker):
    (passed, steps checked, lines to print)."""
    spec, key = item
    catalogue = load_catalogue(spec)
    derivation = catalogue[key]
    try:
        with catalogue.notation.active():
            report = engine.check(derivation)
    except engine.StepRejected as err:
        kind = {engine.StepFalse: "false", engine.StepUnproved: "unproved",
                engine.StepUndefined: "undefined"}.get(type(err), "rejected")
        return False, 0, [f"FAIL {derivation.key} ({kind}): {engine.plain(derivation.title)}",
                          "     " + str(err).replace("\n", "\n     ")]
    counts = ",".join(str(n) for n in report.class_counts)
    has_t = any(symbols.CLASSES in step.expr.free_symbols for step in derivation.steps)
    kind = ("concrete numbers" if derivation.concrete else
            f"symbolic T; checked at T in {{{counts}}}" if has_t else
            f"symbolic; checked on random instances (T in {{{counts}}})")
    lines = [f"ok   {derivation.key:<34} {report.seconds:5.2f}s  {kind}"]
    for st in report.steps:
        at = ",".join(str(n) for n in st.class_counts)
        lines.append(f"       \u2713 {st.number}. {st.rel} {engine.plain(st.why)}  "
                     f"[{st.symbolic}; {st.instances} instances at T in {{{at}}}]")
    return True, len(report.steps), lines


def statement(derivation) -> str:
    """What a derivation shows, on one line: its title, its first and last forms."""
    last = derivation.steps[-1]
    return f"{engine.plain(derivation.title)}: {derivation.start} {last.rel} {last.expr}"


def _under_notation(stage: Callable) -> Callable:
    """The stage run under the notation of its run's catalogue (its index ranges,
    samplers, instance class and arrays; never another catalogue's)."""
    @functools.wraps(stage)
    def run_stage(run: Run, *args, **kwargs):
        with run.catalogue.notation.active():
            return stage(run, *args, **kwargs)
    return run_stage


@_under_notation
def prove(run: Run, keys: list[str] | None = None) -> int:
    """Check every derivation (or those named), each in the executor; writes the log
    ``NAME_derivations.txt`` unless the run is at the catalogue's home."""
    keys = run.catalogue.keys() if keys is None else keys
    failures, steps, start, log = 0, 0, time.perf_counter(), []
    progress = Progress("derivations", sys.stderr)
    items = [(run.spec, key) for key in keys]
    for done, (passed, count, lines) in enumerate(in_order(run.executor, _prove_one, items), 1):
        failures += not passed
        steps += count
        log += lines
        print("\n".join(lines), flush=True)
        progress(done, len(items))
    summary = (f"prove: {len(keys) - failures} of {len(keys)} derivations ({steps} steps) checked in "
               f"{time.perf_counter() - start:.1f}s ({workers(run.executor)}); {failures} failed")
    print(summary)
    if not run.at_home:
        path = run.out / f"{run.catalogue.name}_derivations.txt"
        path.write_text("\n".join(log + [summary]) + "\n")
        print(f"wrote {path}")
    return 1 if failures else 0


# --------------------------------------------------------------------------- generate
def module_path(run: Run) -> Path:
    """Where the catalogue's generated module is: its declared place at home (the
    built-in's numeric/_kernels.py), else ``OUT/NAME_kernels.py``."""
    if run.at_home and run.catalogue.module is not None:
        return run.catalogue.module
    return run.out / f"{run.catalogue.name}_kernels.py"


def render_module(run: Run) -> str:
    """The source of the generated module (the kernels must be proved first)."""
    import sympy as sp

    cat = run.catalogue
    header = cat.module_header or codegen.USER_HEADER
    return codegen.render(cat.kernels, header.format(name=cat.name, source=run.spec or "MODULE",
                                                     title=cat.title, sympy=sp.__version__,
                                                     command="python -m derive generate"))


@_under_notation
def generate(run: Run, check: bool = False) -> int:
    """Prove every kernel against its claims, then write the generated module (or, with
    ``check``, compare it with the file there: exit 1 if it differs by a byte)."""
    tic = time.perf_counter()
    try:
        for proof in codegen.kernel_proofs(run.catalogue.kernels):
            report = engine.check(proof)
            print(f"ok   {proof.key:<28} proved against its claims ({report.seconds:.2f}s)")
        text = render_module(run)
    except engine.StepRejected as err:
        print("FAIL a kernel does not match its proved form:\n     " + str(err).replace("\n", "\n     "))
        return 1
    except NotImplementedError as err:  # an expression the generator has no NumPy form for
        print(f"FAIL the generator cannot print a kernel: {err}")
        return 1
    path = module_path(run)
    shown = shown_path(path)
    if check:
        ok = path.is_file() and path.read_text() == text
        message = (f"{shown} is up to date" if ok else
                   f"{shown} is stale: run `python -m derive generate` and commit the result")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        ok, message = True, f"wrote {shown} ({len(text.splitlines())} lines)"
    print(("ok   " if ok else "FAIL ") + message + f" ({time.perf_counter() - tic:.1f}s)")
    return 0 if ok else 1


def load_generated(run: Run):
    """The catalogue's generated module, imported from its file."""
    path = module_path(run)
    if not path.is_file():
        raise FileNotFoundError(f"{shown_path(path)} is missing: run `python -m derive generate` with the same "
                                "--catalogue and --out first")
    spec = importlib.util.spec_from_file_location(f"_generated_{run.catalogue.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- verify
def _functions(catalogue: Catalogue) -> tuple[list[str], list[str], str]:
    """(functions in table order, implementations shown, the tested implementation)."""
    functions, shown, tested = [], [], None
    for item in catalogue.verifications:
        if isinstance(item, Verification):
            functions.append(item.name)
            shown += [name for name in (codegen_tested(), "naive") if name not in shown]
            tested = tested or codegen_tested()
        else:
            functions += list(item.functions)
            shown += [name for name in item.shown if name not in shown]
            tested = tested or item.tested
    return functions, shown, tested or codegen_tested()


def codegen_tested() -> str:
    from .verification import TESTED
    return TESTED


@_under_notation
def verify(run: Run, thorough: bool = False, json_path: Path | None = None) -> int:
    """Run every verification the catalogue declares (its :class:`Verification` specs
    over the adversarial suites and their parameter ranges, against the naive formula;
    any suite of its own), print the table and write the results as JSON."""
    from . import verification

    cat = run.catalogue
    functions, shown, tested = _functions(cat)
    specs = [item for item in cat.verifications if isinstance(item, Verification)]
    suites = [item for item in cat.verifications if not isinstance(item, Verification)]
    print(f"verify: {'thorough' if thorough else 'default'} suite of {cat.name!r}, reference = the "
          f"definitions in mpmath (>= {verification.DIGITS} digits, more where a row needs it)")
    table = results.VerificationTable(tested=tested)
    failures, min_digits = [], verification.DIGITS
    if specs:
        try:
            module = load_generated(run)
        except FileNotFoundError as err:
            print(f"FAIL {err}")
            return 1
        bound = [verification.bind(spec, module) for spec in specs]
        part = verification.run(bound, run.executor, thorough, Progress("reference values", sys.stderr))
        failures += part.failures
        table.results += part.results
        table.checks.update(part.checks)
    for suite in suites:
        part = suite.run(executor=run.executor, thorough=thorough, out=sys.stderr)
        failures += part.failures
        table.results += part.results
        table.checks.update(part.checks)
        min_digits = suite.min_digits
    print(results.table(table, functions, shown, tested))
    for name, value in table.checks.items():
        ok = name not in table.failed_checks
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {value if isinstance(value, bool) else f'{value:.2e}'}")
    if not thorough:
        path = json_path or run.out / cat.results_name
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if tested == "numeric" else {"tested": tested}
        path.write_text(results.to_json(table, min_digits, extra))
        print(f"wrote {shown_path(path)}")
    checked = sum(r.inputs for r in table.results if r.implementation == tested)
    print(f"verify: {checked} values checked; {len(failures)} contract failures, "
          f"{len(table.failed_checks)} failed checks")
    return 1 if failures or table.failed_checks else 0


# --------------------------------------------------------------------------- report
@_under_notation
def report(run: Run, pdf: bool | None = None) -> int:
    """Write the catalogue's documents (.tex, .md, figures; the PDF where a TeX engine
    exists, an error with ``pdf=True`` where none does) from its verification results;
    at home, also the verification table of its README."""
    from .latex import LatexError

    data_path = run.out / run.catalogue.results_name
    if not data_path.is_file():
        print(f"FAIL {shown_path(data_path)} is missing: run `python -m derive verify` with the same "
              "--catalogue and --out first")
        return 1
    try:
        lines = write_reports(run, json.loads(data_path.read_text()), pdf)
    except LatexError as err:
        print(f"FAIL {err}")
        return 1
    for line in lines:
        print(line)
    return 0


def write_reports(run: Run, data: dict, pdf: bool | None = None) -> list[str]:
    """The report stage's work: the catalogue's documents into ``run.out`` from the
    verification results ``data`` and, at home, the README's verification table; the
    lines to print (a :class:`derive.latex.LatexError` when the PDF fails, or ``pdf=True``
    without a TeX engine)."""
    from . import publish

    publish.require_tex(pdf)  # before any document is built
    cat = run.catalogue
    docs, rendering = publish.rendering(cat, data, run.spec)
    lines = publish.write_documents(docs, rendering, run.out, pdf=pdf, also_checked=rendering.extra.get("kernels", ()))
    if run.at_home and cat.readme is not None:
        functions, shown, tested = _functions(cat)
        text = results.table(results.from_json(data, tested), functions, shown, tested)
        if publish.update_readme(cat.readme, text):
            lines.append(f"updated the verification table in {cat.readme.name}")
    return lines
