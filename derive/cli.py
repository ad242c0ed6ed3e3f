"""Command line: ``python -m derive {prove,generate,verify,report,gradient,all}``.

Every subcommand takes ``--catalogue MODULE_OR_FILE`` (default: the built-in softmax
catalogue, :data:`derive.registry.BUILT_IN`) and ``--out DIR``: where the derivations'
log, the generated module, the verification results and the report go. Without
``--out``, the built-in content in a source checkout goes where it always did
(``numeric/_kernels.py``, ``reports/``); anything else goes to the current directory.
Nothing is ever written next to an installed package. Each subcommand prints what it
did in plain lines and exits non-zero on any failure.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

#: the source checkout the package runs from, or None when it is installed
_CHECKOUT = Path(__file__).resolve().parent.parent
SOURCE_CHECKOUT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "reports").is_dir() else None
DEFAULT_JSON = SOURCE_CHECKOUT / "reports" / "verification.json" if SOURCE_CHECKOUT else None


def _catalogue(args):
    from .registry import load_catalogue

    return load_catalogue(getattr(args, "catalogue", None))


def _built_in(args) -> bool:
    return getattr(_catalogue(args), "built_in", False)


def out_dir(args) -> Path | None:
    """Where this run writes: ``--out``; else None (the source checkout's own places) for
    the built-in content in a source checkout; else the current directory."""
    if getattr(args, "out", None):
        path = Path(args.out)
    elif _built_in(args) and SOURCE_CHECKOUT is not None:
        return None
    else:
        path = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _prove_one(item: tuple[str | None, str]) -> tuple[bool, int, list[str]]:
    """Check the derivation ``key`` of the catalogue ``spec`` (a module or file, loaded
    again in a worker process): (passed, steps checked, lines to print)."""
    from . import engine, symbols
    from .registry import load_catalogue

    spec, key = item
    derivation = load_catalogue(spec)[key]
    try:
        report = engine.check(derivation)
    except engine.StepRejected as err:
        kind = {engine.StepFalse: "false", engine.StepUnproved: "unproved",
                engine.StepUndefined: "undefined"}.get(type(err), "rejected")
        return False, 0, [f"FAIL {derivation.key} ({kind}): {engine.plain(derivation.title)}",
                          "     " + str(err).replace("\n", "\n     ")]
    counts = ",".join(str(n) for n in report.class_counts)
    has_t = any(symbols.CLASSES in step.expr.free_symbols for step in derivation.steps)
    where = ("concrete numbers" if derivation.concrete else
             f"symbolic T; checked at T in {{{counts}}}" if has_t else
             f"symbolic; checked on random instances (T in {{{counts}}})")
    lines = [f"ok   {derivation.key:<34} {report.seconds:5.2f}s  {where}"]
    for st in report.steps:
        at = ",".join(str(n) for n in st.class_counts)
        lines.append(f"       \u2713 {st.number}. {st.rel} {engine.plain(st.why)}  "
                     f"[{st.symbolic}; {st.instances} instances at T in {{{at}}}]")
    return True, len(report.steps), lines


def default_jobs() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)



def in_order(function, items: list, jobs: int):
    """Yield ``function(item)`` for every item, in order, computed in ``jobs`` spawned
    processes (each result as soon as it and every earlier one are done). Spawned, not
    forked: the parent may hold threads, and a forked child of a threaded process can
    deadlock."""
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            yield function(item)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(jobs, len(items)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(function, item) for item in items]
        for future in futures:
            yield future.result()


def cmd_prove(args) -> int:
    catalogue = _catalogue(args)
    keys = catalogue.keys()
    if args.only:
        unknown = [key for key in args.only if key not in keys]
        if unknown:
            print(f"no derivation named {', '.join(unknown)} (python -m derive prove --list "
                  f"lists them)", file=sys.stderr)
            return 2
        keys = [key for key in keys if key in args.only]
    if getattr(args, "list", False):
        for key in keys:
            print(key)
        return 0
    jobs = default_jobs() if args.jobs is None else max(1, args.jobs)
    failures, steps, start = 0, 0, time.perf_counter()
    log = []
    spec = getattr(args, "catalogue", None)
    for passed, count, lines in in_order(_prove_one, [(spec, key) for key in keys], jobs):
        failures += not passed
        steps += count
        log += lines
        print("\n".join(lines), flush=True)
    total = time.perf_counter() - start
    summary = (f"prove: {len(keys) - failures} of {len(keys)} derivations "
               f"({steps} steps) checked in {total:.1f}s ({jobs} processes); {failures} failed")
    print(summary)
    where = out_dir(args)
    if where is not None:
        path = where / f"{catalogue.name}_derivations.txt"
        path.write_text("\n".join(log + [summary]) + "\n")
        print(f"wrote {path}")
    return 1 if failures else 0


def cmd_generate(args) -> int:
    from . import codegen, engine

    catalogue = _catalogue(args)
    where = out_dir(args)
    if "generate" in catalogue.stages:  # content that generates its own way (the built-in)
        return catalogue.stages["generate"](args, where)
    tic = time.perf_counter()
    path = where / f"{catalogue.name}_kernels.py"
    check = args.check and args.command != "all"  # `all` writes a user's module
    try:
        ok, message = codegen.write_module(catalogue.kernels, path, catalogue.title, catalogue.name,
                                           getattr(args, "catalogue", None) or "FILE", check_only=check)
    except engine.StepRejected as err:
        print("FAIL a kernel does not match its proved form:\n     " + str(err).replace("\n", "\n     "))
        return 1
    except NotImplementedError as err:  # an expression the generator has no NumPy form for
        print(f"FAIL the generator cannot print a kernel: {err}")
        return 1
    for kernel in catalogue.kernels:
        print(f"ok   {kernel.name:<28} proved against its claims")
    print(("ok   " if ok else "FAIL ") + message + f" ({time.perf_counter() - tic:.1f}s)")
    return 0 if ok else 1


def _load_generated(catalogue, where: Path):
    import importlib.util

    path = where / f"{catalogue.name}_kernels.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m derive generate` with the same "
                                "--catalogue and --out first")
    spec = importlib.util.spec_from_file_location(f"_generated_{catalogue.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verify_user(args, catalogue) -> int:
    import json

    from . import verification

    where = out_dir(args)
    module = _load_generated(catalogue, where)
    results = []
    print(f"verify: {len(catalogue.verifications)} functions against the mpmath reference of "
          f"their definitions ({verification.DIGITS} digits)")
    for spec in catalogue.verifications:
        result = verification.verify_function(verification.bind(spec, module))
        results.append(result)
        fd = ("" if result.fd_function is None else
              f"; finite differences: reference {result.fd_reference:.1e}, float64 {result.fd_function:.1e}")
        print(f"{'ok  ' if result.passed else 'FAIL'} {result.name:<28} {result.values} values, "
              f"worst {result.max_ulp:.2f} ULP (bound {result.bound:g}){fd}")
    path = where / f"{catalogue.name}_verification.json"
    path.write_text(json.dumps([r.as_dict() for r in results], indent=1) + "\n")
    print(f"wrote {path}")
    failed = [r for r in results if not r.passed]
    print(f"verify: {len(results) - len(failed)} of {len(results)} passed")
    return 1 if failed else 0


def cmd_verify(args) -> int:
    catalogue = _catalogue(args)
    if "verify" in catalogue.stages:
        return catalogue.stages["verify"](args, out_dir(args))
    return _verify_user(args, catalogue)


def cmd_report(args) -> int:
    catalogue = _catalogue(args)
    if "report" in catalogue.stages:
        return catalogue.stages["report"](args, out_dir(args))
    return _report_user(args, catalogue)


def _report_user(args, catalogue) -> int:
    import json

    from . import codegen, publish, verification

    where = out_dir(args)
    path = where / f"{catalogue.name}_verification.json"
    if not path.is_file():
        print(f"FAIL {path} is missing: run `python -m derive verify` with the same --catalogue "
              "and --out first")
        return 1
    results = [verification.Result.from_dict(item) for item in json.loads(path.read_text())]
    proofs = codegen.kernel_proofs(catalogue.kernels)
    written = publish.build_report(catalogue.title, [*catalogue, *proofs], results, where,
                                   catalogue.name, catalogue.sections, catalogue.intro)
    for written_path in written:
        print(f"wrote {written_path}")
    return 0


def _language(catalogue):
    """The gradient language of ``catalogue`` or of the first catalogue it uses that has
    one; else the built-in content's."""
    todo, seen = [catalogue], set()
    while todo:
        cat = todo.pop(0)
        if id(cat) in seen:
            continue
        seen.add(id(cat))
        if getattr(cat, "language", None) is not None:
            return cat.language
        todo += list(cat.uses)
    from .registry import load_catalogue

    return load_catalogue(None).language


def cmd_gradient(args) -> int:
    """Derive d(loss)/d(wrt) with the content's rules and print the checked chain."""
    from . import engine
    from .autodiff import gradient

    language = _language(_catalogue(args))
    if args.names or args.loss is None:
        print(language.names)
        return 0 if args.names else 2
    try:
        extra = {}
        names = _catalogue_names(_catalogue(args))
        if args.param or names:  # a language that reads declared parameters and a catalogue's names
            import inspect
            accepted = inspect.signature(language.read).parameters
            extra = {k: v for k, v in (("params", args.param or []), ("names", names)) if k in accepted}
        question = language.read(args.loss, args.wrt or language.wrt, args.labels or language.labels[0], **extra)
    except ValueError as err:
        print(f"FAIL {err}", file=sys.stderr)
        return 2
    tic = time.perf_counter()
    try:
        derivation = gradient(question.loss, question.wrt, question.assumptions, question.rules,
                              min_classes=args.min_classes)
    except engine.StepRejected as err:
        print("FAIL a produced step was rejected:\n     " + str(err).replace("\n", "\n     "))
        return 1
    pretty = language.pretty
    legend = language.legend(question)
    print(f"d/d{question.wrt} of {pretty(question.loss)}" + (f"   ({legend})" if legend else ""))
    print("assumptions: " + "; ".join(engine.plain(h.text) for h in derivation.assumptions))
    for part in derivation.parts:
        print(f"first, {engine.plain(part.title)}:")
        _print_chain(part, pretty, engine, indent="    ")
        print("then:")
    _print_chain(derivation, pretty, engine)
    state = "closed form" if derivation.closed else "NOT closed: the last form reached"
    print(f"{state}: {pretty(derivation.result)}   ({len(derivation.steps) - 1} steps, "
          f"each checked; {time.perf_counter() - tic:.1f}s)")
    return 0 if derivation.closed else 3


def _catalogue_names(catalogue) -> dict:
    """The declared symbols and vectors a catalogue's own derivations use, by name (a
    loss on the command line may use them: examples/temperature.py's tau)."""
    import sympy as sp

    from . import symbols

    if getattr(catalogue, "built_in", False):
        return {}
    found = {}
    for derivation in catalogue:
        for step in derivation.steps:
            for atom in step.expr.atoms(sp.Symbol, sp.IndexedBase):
                if symbols.sampler(atom) is not None:
                    found[str(atom)] = atom
    return found


def _print_chain(derivation, pretty, engine, indent=""):
    print(f"{indent}   {pretty(derivation.start)}")
    report = derivation.report
    for step, checked in zip(derivation.steps[1:], report.steps if report else []):
        print(f"{indent} = {pretty(step.expr)}\n{indent}       \u2713 {engine.plain(step.why)}  "
              f"[{checked.symbolic}; {checked.instances} instances]")


def cmd_loss(args) -> int:
    """One loss through every stage (derive.loss), in the catalogue's language."""
    from .loss import main

    catalogue = _catalogue(args)
    content = next((c.loss_content for c in (catalogue, *catalogue.uses) if getattr(c, "loss_content", None)),
                   None) or __import__("derive.registry").registry.load_catalogue(None).loss_content
    return main(args, content)


def cmd_all(args) -> int:
    for name, command in STAGES:
        print(f"== {name}")
        status = command(args)
        if status:
            print(f"all: stopped, '{name}' failed (exit {status})")
            return status
    print("all: every stage passed")
    return 0


STAGES = [("prove", cmd_prove), ("generate", cmd_generate), ("verify", cmd_verify),
          ("report", cmd_report)]


def _common(parser) -> None:
    parser.add_argument("--catalogue", default=None, metavar="MODULE_OR_FILE",
                        help="the content: a module name or a .py file defining CATALOGUE "
                             "(default: the built-in softmax catalogue)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to write (default: the source checkout's own places for the "
                             "built-in catalogue, else the current directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m derive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prove = sub.add_parser("prove", help="check every derivation of the catalogue")
    prove.add_argument("only", nargs="*", help="keys of derivations to check (default: all)")
    prove.add_argument("--list", action="store_true", help="list the derivations' keys and stop")
    prove.add_argument("--jobs", type=int, default=None,
                       help="processes to check derivations in (default: every core)")
    prove.set_defaults(func=cmd_prove)
    gen = sub.add_parser("generate", help="prove the kernels and write the generated module")
    gen.add_argument("--check", action="store_true",
                     help="do not write; exit 1 if the committed file is stale")
    gen.set_defaults(func=cmd_generate)
    ver = sub.add_parser("verify", help="check the generated code against mpmath")
    ver.add_argument("--thorough", action="store_true",
                     help="many more inputs, with a progress display (writes no JSON)")
    ver.add_argument("--json", default=None,
                     help="where to write the built-in results (default: DIR/verification.json)")
    ver.add_argument("--jobs", type=int, default=None,
                     help="processes for the reference rows (default: every core)")
    ver.set_defaults(func=cmd_verify)
    rep = sub.add_parser("report", help="write the LaTeX/Markdown reports (and PDF with TeX)")
    rep.add_argument("--pdf", action="store_true", help="a missing TeX engine is an error")
    rep.set_defaults(func=cmd_report)
    grad = sub.add_parser(
        "gradient", help="derive a gradient automatically, every step checked",
        description="Derive d(loss)/d(wrt): SymPy differentiates, the content's named rewrite rules "
                    "close the form (for the built-in softmax content: in S = softmax(a), y and your "
                    "symbols), and the proof engine checks every step. The names a loss may use are "
                    "the content's (the catalogue's language; the built-in softmax one by default): "
                    "--names lists them. Exit 0: closed; 3: not closed (last form shown); 1: a step "
                    "rejected; 2: bad input.")
    grad.add_argument("loss", nargs="?", help='the loss, e.g. "L + lam*logZ**2"; put -- before a '
                                              'loss that starts with a minus: -- "-log(S(c))"')
    grad.add_argument("--names", action="store_true",
                      help="list the names a loss may use (and --wrt, --labels) and stop")
    grad.add_argument("--wrt", default=None,
                      help="the variable (built-in content: a, W, b, x or a component; default a)")
    grad.add_argument("--labels", default=None,
                      help="what the target is (built-in content: soft (default), onehot or none)")
    grad.add_argument("--param", action="append", metavar="NAME=LO:HI",
                      help="declare a parameter and its range (any name: beta and gamma too)")
    grad.add_argument("--min-classes", type=int, default=1,
                      help="the smallest T the statement is checked for (e.g. 2 for the focal loss)")
    grad.set_defaults(func=cmd_gradient)
    lss = sub.add_parser("loss", help="one loss through every stage, from one declaration",
                         description="Derive the gradient of NAME's loss EXPR, derive stable kernels for the "
                                     "loss and its gradient, prove them, verify them against mpmath over the "
                                     "declared ranges and write the report: DIR/NAME_kernels.py (NAME(logits, "
                                     "target, **inputs), NAME_grad(...)), DIR/NAME_verification.json, "
                                     "DIR/NAME.md/.tex. Exit 0: ok; 1: a failed check; 2: bad input; 3: not "
                                     "closed, or no stable form within the bound (the reason is printed).")
    lss.add_argument("name", help="the loss's name (a Python identifier)")
    lss.add_argument("expr", help='the loss of one row, e.g. "-(1 - S(c))**gamma*log(S(c))"')
    lss.add_argument("--param", action="append", metavar="NAME=LO:HI", help="a parameter and its range")
    lss.add_argument("--input", action="append", metavar="NAME", help="an extra per-class vector (teacher logits)")
    lss.add_argument("--labels", default="onehot", help="onehot (target c, default), soft (y) or none")
    lss.add_argument("--min-classes", type=int, default=1, help="the smallest T the loss is stated for")
    lss.set_defaults(func=cmd_loss)
    everything = sub.add_parser("all", help="every stage in order")
    everything.set_defaults(func=cmd_all, only=[], check=True, thorough=False, json=None, pdf=False)
    everything.add_argument("--jobs", type=int, default=None,
                            help="processes for the proofs and the reference rows (default: every core)")
    for command in (prove, gen, ver, rep, grad, lss, everything):
        _common(command)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
