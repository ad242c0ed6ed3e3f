"""Imports run one way: numeric/ (the runtime) never imports derive/ or SymPy, and the
machinery directly under derive/ never imports the built-in content derive.softmax
(DESIGN.md: "nothing in the machinery names a softmax symbol"). Checked on the source
(every import statement, at module level or inside a function) and, for numeric/, on a
fresh interpreter's sys.modules too."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def imported_modules(path: Path, package: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` anywhere in ``path`` names,
    absolute (relative imports resolved against ``package``, the file's package);
    ``from X import name`` counts both X and X.name, as name may be a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _names_content(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "derive.softmax" or m.startswith("derive.softmax.")}


def test_the_machinery_never_imports_the_built_in_content():
    offenders = {}
    for path in sorted((ROOT / "derive").rglob("*.py")):
        inner = path.parent.relative_to(ROOT / "derive").parts
        if inner[:1] == ("softmax",):
            continue
        bad = _names_content(imported_modules(path, ".".join(("derive", *inner))))
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"machinery importing derive.softmax: {offenders}"


def test_the_layering_check_sees_every_form_of_import(tmp_path):
    module = tmp_path / "m.py"
    for line in ("from .softmax import definitions as D", "from . import softmax",
                 "from derive.softmax.kernels import A", "import derive.softmax",
                 "def f():\n    from .softmax import kernels\n    return kernels"):
        module.write_text(line + "\n")
        assert _names_content(imported_modules(module, "derive")), line
    module.write_text("from .symbols import j\nfrom . import engine\nimport sympy\n")
    assert not _names_content(imported_modules(module, "derive"))


def test_numeric_never_imports_derive():
    code = ("import sys, numeric, numeric.api, numeric._kernels, numeric._blocks; "
            "bad = sorted(m for m in sys.modules if m == 'derive' or m.startswith(('derive.', 'sympy'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the package of this checkout
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    for path in sorted((ROOT / "numeric").glob("*.py")):
        imported = imported_modules(path, "numeric")
        assert not {m for m in imported if m.split(".")[0] in ("derive", "sympy")}, path
