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


def _module_level_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` (the module ``name``) imports when it is
    loaded: statements at module level, not in a function or an ``if`` (TYPE_CHECKING)
    block; ``from PKG import mod`` counts the submodule, not the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, (base, node.module)))
            subs = {f"{module}.{alias.name}" for alias in node.names} & known
            found |= subs or {module}
    return (found & known) - {name}


def _cycles(root: Path, package: str) -> list[list[str]]:
    """The module-level import cycles among the modules of ``root/package``."""
    paths = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: _module_level_imports(path, name, set(paths)) for name, path in paths.items()}
    cycles = []

    def visit(name, trail):
        if name in trail:
            cycles.append(trail[trail.index(name):] + [name])
            return
        if graph.get(name) is None:  # done
            return
        for other in sorted(graph[name]):
            visit(other, trail + [name])
        graph[name] = None
    for name in sorted(graph):
        visit(name, [])
    return cycles


def test_no_module_of_derive_imports_another_in_a_cycle():
    assert not _cycles(ROOT, "derive")


def test_the_cycle_check_finds_a_cycle(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from .sub import b\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    assert not _cycles(tmp_path, "pkg")  # an import inside a function is not a cycle
    (tmp_path / "pkg" / "sub" / "b.py").write_text("from .. import a\n")
    assert _cycles(tmp_path, "pkg") == [["pkg.a", "pkg.sub.b", "pkg.a"]]


#: what a fresh interpreter may not import while it runs numeric: the symbolic side and
#: every other third-party package of the test environment (NumPy is all numeric needs)
NOT_NUMPY = ("sympy", "mpmath", "derive", "scipy", "matplotlib", "hypothesis", "dask", "distributed",
             "sklearn", "torch", "pytest")
#: the child: those imports blocked, then every public function's Examples run (each
#: function called, edge cases and errors included), and sys.modules checked
_NUMPY_ALONE = """
import sys
blocked = set(sys.argv[1].split(","))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is blocked: numeric must run with NumPy alone")

sys.meta_path.insert(0, Block())
import doctest
import numeric, numeric.api
failed = attempted = 0
for name in numeric.__all__[1:]:
    for test in doctest.DocTestFinder(recurse=False).find(getattr(numeric, name), name, globs={}):
        result = doctest.DocTestRunner().run(test)
        failed, attempted = failed + result.failed, attempted + result.attempted
loaded = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
print(attempted, failed, loaded)
sys.exit(1 if failed or loaded or not attempted else 0)
"""


def test_numeric_runs_with_numpy_alone():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", _NUMPY_ALONE, ",".join(NOT_NUMPY)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
