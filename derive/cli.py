"""Command line: ``softmax-derive`` (or ``python -m derive``) with the subcommands
``prove``, ``generate``, ``verify``, ``report``, ``all`` and ``gradient``.

Every subcommand takes ``--catalogue MODULE_OR_FILE`` (default: the built-in softmax
catalogue, :data:`derive.registry.BUILT_IN`), ``--out DIR`` (relative to the current
directory or absolute: where the derivations' log, the generated module, the
verification results and the report go) and ``--jobs N`` / ``--scheduler ADDRESS``
(where the independent work runs: N local processes, or a Dask cluster). Without
``--out``, the built-in content in a source checkout goes to its own places
(``numeric/_kernels.py``, ``reports/``); anything else goes to the current directory.
Exit status: 0 on success, 1 on a failed check, 2 on bad input (one line on stderr),
3 for a gradient that is not closed.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from . import stages


class BadInput(Exception):
    """Input the command line cannot use: one line on stderr, exit 2."""


def _catalogue(args):
    """The catalogue ``--catalogue`` names (a failing import is bad input, not a traceback)."""
    from .registry import load_catalogue

    spec = getattr(args, "catalogue", None)
    if getattr(args, "_loaded", None) is not None:  # a file is executed once per command
        return args._loaded
    try:
        args._loaded = load_catalogue(spec)
        return args._loaded
    except Exception as err:  # anything the user's file raises on import is reported, not shown as a traceback
        message = str(err) if str(err).startswith("--catalogue") else f"--catalogue {spec}: {err}"
        raise BadInput(f"{type(err).__name__}: {message}".replace("\n", " ")) from err


def _spec(args) -> str | None:
    """How a worker loads the catalogue again: a file as an absolute path."""
    spec = getattr(args, "catalogue", None)
    if spec is not None and (spec.endswith(".py") or Path(spec).exists()):
        return str(Path(spec).resolve())
    return spec


@contextlib.contextmanager
def _run(args):
    """The :class:`derive.stages.Run` of these arguments; its executor is shut down after."""
    from . import executors

    catalogue = _catalogue(args)
    out, at_home = stages.where(catalogue, getattr(args, "out", None))
    out.mkdir(parents=True, exist_ok=True)
    try:
        executor = executors.make(getattr(args, "jobs", None), getattr(args, "scheduler", None))
    except executors.SchedulerError as err:
        raise BadInput(str(err)) from err
    try:
        yield stages.Run(catalogue, _spec(args), out, executor, at_home)
    finally:
        if executor is not None:
            executor.shutdown()


def cmd_prove(args) -> int:
    catalogue = _catalogue(args)
    keys = catalogue.keys()
    if args.only:
        unknown = [key for key in args.only if key not in keys]
        if unknown:
            raise BadInput(f"no derivation named {', '.join(unknown)} (python -m derive prove --list lists them)")
        keys = [key for key in keys if key in args.only]
    if args.list:
        for key in keys:
            print(f"{key:<34} {stages.statement(catalogue[key])}")
        return 0
    with _run(args) as run:
        return stages.prove(run, keys)


def cmd_generate(args) -> int:
    with _run(args) as run:
        return stages.generate(run, check=args.check)


def cmd_verify(args) -> int:
    with _run(args) as run:
        return stages.verify(run, thorough=args.thorough, json_path=Path(args.json).resolve() if args.json else None)


def cmd_report(args) -> int:
    with _run(args) as run:
        return stages.report(run, pdf=True if args.pdf else None)


def cmd_all(args) -> int:
    """Every stage in order, one executor for all of them; the committed generated
    module (the built-in's, at home) is compared, any other written."""
    if args.pdf:  # the last stage would fail: say so before the first runs
        from .latex import LatexError
        from .publish import require_tex

        try:
            require_tex(True)
        except LatexError as err:
            print(f"FAIL {err}")
            return 1
    with _run(args) as run:
        steps = [("prove", lambda: stages.prove(run)),
                 ("generate", lambda: stages.generate(run, check=run.at_home and run.catalogue.module is not None)),
                 ("verify", lambda: stages.verify(run)),
                 ("report", lambda: stages.report(run, pdf=True if args.pdf else None))]
        for name, stage in steps:
            print(f"== {name}", flush=True)
            status = stage()
            if status:
                print(f"all: stopped, '{name}' failed (exit {status})")
                return status
    print("all: every stage passed")
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
    """One loss through every stage (derive.loss), in the language of the catalogue (or
    of one it uses; the built-in one's by default)."""
    from .loss import main
    from .registry import load_catalogue

    catalogue = _catalogue(args)
    content = next((c.loss_content for c in (catalogue, *catalogue.uses) if getattr(c, "loss_content", None)),
                   None) or load_catalogue(None).loss_content
    return main(args, content)


def _common(parser) -> None:
    parser.add_argument("--catalogue", default=None, metavar="MODULE_OR_FILE",
                        help="the content: a module name or a .py file defining CATALOGUE "
                             "(default: the built-in softmax catalogue)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to write, relative to the current directory or absolute (default: "
                             "the source checkout's own places for the built-in catalogue, else the "
                             "current directory)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="local processes for the independent work (default: every core)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the independent work on the Dask cluster whose scheduler is at "
                             "ADDRESS (tcp://host:port; pip install 'softmax-derive[dask]')")


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per stage, ``all``, ``gradient`` and ``loss``, each
    with the options every command takes (:func:`_common`)."""
    parser = argparse.ArgumentParser(prog="softmax-derive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"softmax-derive {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = [*_stage_parsers(sub), _gradient_parser(sub), _loss_parser(sub)]
    everything = sub.add_parser("all", help="every stage in order")
    everything.set_defaults(func=cmd_all)
    everything.add_argument("--pdf", action="store_true", help="a missing TeX engine is an error")
    for command in (*commands, everything):
        _common(command)
    return parser


def _stage_parsers(sub) -> list[argparse.ArgumentParser]:
    """prove, generate, verify and report."""
    prove = sub.add_parser("prove", help="check every derivation of the catalogue")
    prove.add_argument("only", nargs="*", help="keys of derivations to check (default: all)")
    prove.add_argument("--list", action="store_true", help="list each derivation's key and statement, and stop")
    prove.set_defaults(func=cmd_prove)
    gen = sub.add_parser("generate", help="prove the kernels and write the generated module")
    gen.add_argument("--check", action="store_true",
                     help="do not write; exit 1 if the committed file is stale")
    gen.set_defaults(func=cmd_generate)
    ver = sub.add_parser("verify", help="check the generated code against mpmath")
    ver.add_argument("--thorough", action="store_true",
                     help="many more inputs, with a progress display (writes no JSON)")
    ver.add_argument("--json", default=None,
                     help="where to write the results (default: in DIR, named after the catalogue)")
    ver.set_defaults(func=cmd_verify)
    rep = sub.add_parser("report", help="write the LaTeX/Markdown reports (and PDF with TeX)")
    rep.add_argument("--pdf", action="store_true", help="a missing TeX engine is an error")
    rep.set_defaults(func=cmd_report)
    return [prove, gen, ver, rep]


def _gradient_parser(sub) -> argparse.ArgumentParser:
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
    return grad


def _loss_parser(sub) -> argparse.ArgumentParser:
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
    return lss


def _version() -> str:
    from . import __version__
    return __version__


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status (2 with one line on stderr for bad input)."""
    from .notation import Notation

    args = build_parser().parse_args(argv)
    try:
        # under the catalogue's notation; what the command itself declares (a loss's
        # parameters) goes to a notation of its own
        command = Notation(f"the command {args.func.__name__}", uses=[_catalogue(args).notation])
        with command.active():
            return args.func(args)
    except BadInput as err:
        print(f"softmax-derive: {err}", file=sys.stderr)
        return 2
