"""The built-in content's own generate, verify and report stages.

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
