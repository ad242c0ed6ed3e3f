"""The built-in content's own generate, verify and report stages, and its gradient command.

The built-in catalogue keeps its generated module inside the package
(``numeric/_kernels.py``, compared byte for byte), measures it against its own suite and
baselines (:mod:`derive.verify`), and writes its two documents (:mod:`derive.report`).
The CLI calls these through ``CATALOGUE.stages``; ``where`` is the output directory, or
None for the source checkout's own places.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def generate_stage(args, where: Path | None) -> int:
    from .. import engine
    from . import kernels as SK

    catalogue_name = "softmax"
    tic = time.perf_counter()
    try:
        reports = SK.prove_kernels()
    except engine.StepRejected as err:
        print("FAIL a kernel does not match its proved form:\n     " + str(err).replace("\n", "\n     "))
        return 1
    for report in reports:
        print(f"ok   {report.derivation.key:<28} proved against the catalogue ({report.seconds:.2f}s)")
    ok, message = SK.generate(check_only=args.check or where is not None)
    print(("ok   " if ok else "FAIL ") + message + f" ({time.perf_counter() - tic:.1f}s)")
    if where is not None:
        path = where / f"{catalogue_name}_kernels.py"
        path.write_text(SK.render())
        print(f"wrote {path}")
    return 0 if ok else 1


def verify_stage(args, where: Path | None) -> int:
    from ..cli import DEFAULT_JSON
    from . import verify

    json_path = Path(args.json) if args.json else where / "verification.json" if where else DEFAULT_JSON

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
        out = json_path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(verify.to_json(report))
        print(f"wrote {out}")
    failures = report.failures
    print(f"verify: {sum(r.inputs for r in report.results if r.implementation == 'numeric')} "
          f"values checked in {report.seconds:.1f}s; {len(failures)} contract failures, "
          f"{len(bad_checks)} failed checks")
    return 1 if failures or bad_checks else 0


def report_stage(args, where: Path | None) -> int:
    from . import report

    try:
        if where is None:
            lines = report.report(pdf=True if args.pdf else None)
        else:
            lines = report.report(pdf=True if args.pdf else None, out_dir=where,
                                  data=where / "verification.json", readme=False)
    except (report.LatexError, FileNotFoundError) as err:
        print(f"FAIL {err}")
        return 1
    for line in lines:
        print(line)
    return 0


_WRT = {"a": "a[i]", "W": "W[p, q]", "b": "b[p]", "x": "x[q]"}


def gradient_stage(args, where: Path | None) -> int:
    """``python -m derive gradient``: derive d(loss)/d(wrt) with the default rule set
    and print the checked chain (``where`` is unused: it writes nothing)."""
    import sympy as sp

    from .. import engine
    from .. import gradient as G
    from . import definitions as D

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
