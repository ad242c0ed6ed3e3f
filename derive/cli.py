"""Command line: ``python -m derive {prove,generate,verify,report,gradient,all}``.

Each subcommand prints what it did in plain lines and exits non-zero on any failure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_JSON = Path(__file__).resolve().parent.parent / "reports" / "verification.json"


def _prove_one(key: str) -> tuple[bool, int, list[str]]:
    """Check one derivation of the catalogue: (passed, steps checked, lines to print)."""
    from . import catalogue, definitions as D, engine

    derivation = catalogue.by_key()[key]
    try:
        report = engine.check(derivation)
    except engine.StepRejected as err:
        kind = {engine.StepFalse: "false", engine.StepUnproved: "unproved",
                engine.StepUndefined: "undefined"}.get(type(err), "rejected")
        return False, 0, [f"FAIL {derivation.key} ({kind}): {engine.plain(derivation.title)}",
                          "     " + str(err).replace("\n", "\n     ")]
    counts = ",".join(str(n) for n in report.class_counts)
    has_t = any(D.T in step.expr.free_symbols for step in derivation.steps)
    where = ("concrete numbers" if derivation.concrete else
             f"symbolic T; checked at T in {{{counts}}}" if has_t else
             f"symbolic; checked on random instances (T in {{{counts}}})")
    lines = [f"ok   {derivation.key:<34} {report.seconds:5.2f}s  {where}"]
    for st in report.steps:
        at = ",".join(str(n) for n in st.class_counts)
        lines.append(f"       \u2713 {st.number}. {st.rel} {engine.plain(st.why)}  "
                     f"[{st.symbolic}; {st.instances} instances at T in {{{at}}}]")
    return True, len(report.steps), lines


def in_order(function, items: list, jobs: int):
    """Yield ``function(item)`` for every item, in order, computed in ``jobs`` spawned
    processes (each result as soon as it and every earlier one are done)."""
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
    from . import catalogue, verify

    keys = [d.key for d in catalogue.build()]
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
    jobs = verify.default_jobs() if args.jobs is None else max(1, args.jobs)
    failures, steps, start = 0, 0, time.perf_counter()
    for passed, count, lines in in_order(_prove_one, keys, jobs):
        failures += not passed
        steps += count
        print("\n".join(lines), flush=True)
    total = time.perf_counter() - start
    print(f"prove: {len(keys) - failures} of {len(keys)} derivations "
          f"({steps} steps) checked in {total:.1f}s ({jobs} processes); {failures} failed")
    return 1 if failures else 0


def cmd_generate(args) -> int:
    from . import codegen, engine

    tic = time.perf_counter()
    try:
        reports = codegen.prove_kernels()
    except engine.StepRejected as err:
        print("FAIL a kernel does not match its proved form:\n     " + str(err).replace("\n", "\n     "))
        return 1
    for report in reports:
        print(f"ok   {report.derivation.key:<28} proved against the catalogue ({report.seconds:.2f}s)")
    ok, message = codegen.generate(check_only=args.check)
    print(("ok   " if ok else "FAIL ") + message + f" ({time.perf_counter() - tic:.1f}s)")
    return 0 if ok else 1


def cmd_verify(args) -> int:
    from pathlib import Path

    from . import verify

    mode = "thorough" if args.thorough else "default"
    print(f"verify: {mode} suite, reference = the definitions in mpmath "
          f"(>= {verify.MIN_DIGITS} digits, more where a row needs it)")
    report = verify.run(thorough=args.thorough, out=sys.stderr, jobs=args.jobs)
    print(verify.table(report))
    for name, value in report.checks.items():
        ok = value if isinstance(value, bool) else value < 1e-6
        shown = value if isinstance(value, bool) else f"{value:.2e}"
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {shown}")
    bad_checks = [name for name, value in report.checks.items()
                  if (value is False) or (not isinstance(value, bool) and value >= 1e-6)]
    if not args.thorough:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(verify.to_json(report))
        print(f"wrote {out}")
    failures = report.failures
    print(f"verify: {sum(r.inputs for r in report.results if r.implementation == 'numeric')} "
          f"values checked in {report.seconds:.1f}s; {len(failures)} contract failures, "
          f"{len(bad_checks)} failed checks")
    return 1 if failures or bad_checks else 0


def cmd_report(args) -> int:
    from . import report

    try:
        lines = report.report(pdf=True if args.pdf else None)
    except (report.LatexError, FileNotFoundError) as err:
        print(f"FAIL {err}")
        return 1
    except ImportError as err:
        print(f"FAIL {err}: the figures need matplotlib; pip install -e '.[report]'")
        return 1
    for line in lines:
        print(line)
    return 0


_WRT = {"a": "a[i]", "W": "W[p, q]", "b": "b[p]", "x": "x[q]"}


def cmd_gradient(args) -> int:
    """Derive d(loss)/d(wrt) with the default rule set and print the checked chain."""
    import sympy as sp

    from . import definitions as D
    from . import engine
    from . import gradient as G

    try:
        loss, flags = G.parse_loss(args.loss)
        wrt, _ = G.parse_loss(_WRT.get(args.wrt, args.wrt))
    except ValueError as err:
        print(f"FAIL {err}", file=sys.stderr)
        return 2
    if not isinstance(wrt, sp.Indexed):
        print(f"FAIL --wrt must be a component such as a[i] or W[p, q], or one of "
              f"{', '.join(_WRT)}; got {args.wrt!r}", file=sys.stderr)
        return 2
    softmax = G.SOFTMAX
    if flags.get("scale") is not None:
        scale = flags["scale"]
        softmax = G.softmax_of(lambda u: D.a[u] / scale, "softmax_scaled",
                               rf"definition of $S_j = e^{{a_j/{scale}}} / \sum_k e^{{a_k/{scale}}}$")
    layer = None
    if wrt.base in (D.W, D.b, D.x):  # through the FC layer: a = W x + b
        layer = G.FC_LAYER
        loss = loss.replace(lambda e: isinstance(e, sp.Indexed) and e.base == D.a,
                            lambda e: D.fc_logit(e.indices[0]))
    rules = G.rule_set(softmax, layer)
    labels = {"soft": (D.SOFT_LABEL,), "onehot": (D.ONE_HOT,), "none": ()}[args.labels]
    tic = time.perf_counter()
    try:
        derivation = G.gradient(loss, wrt, (D.REAL_LOGITS, *labels), rules,
                                min_classes=args.min_classes)
    except engine.StepRejected as err:
        print("FAIL a produced step was rejected:\n     " + str(err).replace("\n", "\n     "))
        return 1
    print(f"d/d{wrt} of {G.pretty(loss)}   (Z: the sum of exponentials in the definition of S; "
          "a: W x + b where the loss goes through the FC layer)")
    print("assumptions: " + "; ".join(engine.plain(h.text) for h in derivation.assumptions))
    for part in derivation.parts:
        print(f"first, {engine.plain(part.title)}:")
        _print_chain(part, G, engine, indent="    ")
        print("then:")
    _print_chain(derivation, G, engine)
    state = "closed form" if derivation.closed else "NOT closed: the last form reached"
    print(f"{state}: {G.pretty(derivation.result)}   ({len(derivation.steps) - 1} steps, "
          f"each checked; {time.perf_counter() - tic:.1f}s)")
    return 0 if derivation.closed else 3


def _print_chain(derivation, G, engine, indent=""):
    print(f"{indent}   {G.pretty(derivation.start)}")
    report = derivation.report
    for step, checked in zip(derivation.steps[1:], report.steps if report else []):
        print(f"{indent} = {G.pretty(step.expr)}\n{indent}       \u2713 {engine.plain(step.why)}  "
              f"[{checked.symbolic}; {checked.instances} instances]")


def cmd_all(args) -> int:
    for name, command in STAGES:
        print(f"== {name}")
        status = command(args)
        if status:
            print(f"all: stopped, '{name}' failed (exit {status})")
            return status
    print("all: every stage passed")
    return 0


STAGES = [("prove", cmd_prove), ("generate --check", cmd_generate), ("verify", cmd_verify),
          ("report", cmd_report)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m derive", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prove = sub.add_parser("prove", help="check every derivation of the catalogue")
    prove.add_argument("only", nargs="*", help="keys of derivations to check (default: all)")
    prove.add_argument("--list", action="store_true", help="list the derivations' keys and stop")
    prove.add_argument("--jobs", type=int, default=None,
                       help="processes to check derivations in (default: every core)")
    prove.set_defaults(func=cmd_prove)
    gen = sub.add_parser("generate", help="prove the kernels and write numeric/_kernels.py")
    gen.add_argument("--check", action="store_true",
                     help="do not write; exit 1 if the committed file is stale")
    gen.set_defaults(func=cmd_generate)
    ver = sub.add_parser("verify", help="check the generated code against mpmath")
    ver.add_argument("--thorough", action="store_true",
                     help="many more inputs, with a progress display (writes no JSON)")
    ver.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results")
    ver.add_argument("--jobs", type=int, default=None,
                     help="processes for the reference rows (default: every core)")
    ver.set_defaults(func=cmd_verify)
    rep = sub.add_parser("report", help="write the LaTeX/Markdown reports (and PDF with TeX)")
    rep.add_argument("--pdf", action="store_true", help="a missing TeX engine is an error")
    rep.set_defaults(func=cmd_report)
    grad = sub.add_parser(
        "gradient", help="derive a gradient automatically, every step checked",
        description="Derive d(loss)/d(wrt): SymPy differentiates, named rewrite rules close the "
                    "form in S = softmax(a), y and your symbols, and the proof engine checks every "
                    "step. Names in LOSS: vectors a, y, x, W, b, u, w; free indices i j k l c p q; "
                    "summation indices r s n; sizes T, N; scalars tau (> 0), lam (real), gamma (>= 0), "
                    "eps; S(j) = softmax(a)_j, softmax(j, tau) = softmax(a/tau)_j, Z = sum_k e^(a_k), "
                    "logZ = log Z, fc(j) = (W x + b)_j, delta(i, j), Sum(f, (s, 1, T)), log, exp; "
                    "L = -sum_j y_j log S_j. Exit 0: closed; 3: not closed (last form shown); "
                    "1: a step rejected; 2: bad input.")
    grad.add_argument("loss", help='the loss, e.g. "L + lam*logZ**2"; put -- before a loss that starts with a minus: -- "-log(S(c))"')
    grad.add_argument("--wrt", default="a",
                      help="a (a[i]), W (W[p, q]), b (b[p]), x (x[q]: through a = W x + b), or a component")
    grad.add_argument("--labels", choices=("soft", "onehot", "none"), default="soft",
                      help="y is a probability vector (soft, default), one-hot at c, or nothing assumed")
    grad.add_argument("--min-classes", type=int, default=1,
                      help="the smallest T the statement is checked for (e.g. 2 for the focal loss)")
    grad.set_defaults(func=cmd_gradient)
    everything = sub.add_parser("all", help="every stage in order")
    everything.set_defaults(func=cmd_all, only=[], check=True, thorough=False, json=str(DEFAULT_JSON),
                            pdf=False)
    everything.add_argument("--jobs", type=int, default=None,
                            help="processes for the proofs and the reference rows (default: every core)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
