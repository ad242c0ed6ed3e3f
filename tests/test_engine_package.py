"""The engine as a package (derive/engine/): it exports every name the single module
did, its modules stay small enough to read, and the proof memo's version covers the
text of every one of its modules, so that an edit anywhere in the engine makes every
remembered verdict unreadable."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from derive import engine, notation, symbols
from derive.engine import memo

ENGINE = Path(engine.__file__).resolve().parent

#: every public name derive/engine.py exported before it became a package
PUBLIC = """CLASS_COUNTS LARGEST_RANDOM_T SAMPLES_PER_T DIGITS TOLERANCE DEFAULT_SEED WIDE_CLASSES
WIDE_SIZES WIDE_SAMPLES INSTANCE_SECONDS MAX_DIGITS RELATIONS plain StepRejected StepFalse
StepUnproved StepUndefined StepVacuous EvaluationError LemmaRefused Step Derivation StepCheck
DerivationCheck canonical_bound refine_ranges normal_forms LAST_QUICK_FORM apply_lemma
MAX_CASE_PAIRS symbolic_check untrusted_index OPAQUE_FORM sign derivation_seed class_counts
instance_count MAX_PATTERN_INDICES CANCELLATION_FLOOR evaluator evaluate NumericFailure Draws
numeric_check Unclosed CLOSED_PRECISIONS LARGEST_EXPONENT enclose closed closed_relation
closed_rounding Unknowable behaviour MEMO_VARIABLE MEMO_KEY_VARIABLE ENGINE_VERSION memo_read
memo_write read_srepr fingerprint check""".split()


def test_every_name_of_the_former_module_is_exported():
    missing = [name for name in PUBLIC if not hasattr(engine, name)]
    assert not missing
    assert set(PUBLIC) <= set(engine.__all__)


def test_the_engine_modules_are_small():
    """No module over 600 lines, no function (docstring included) over 60."""
    too_long = {}
    for path in sorted(ENGINE.glob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 600:
            too_long[path.name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - first + 1 > 60:
                    too_long[f"{path.name}:{node.name}"] = node.end_lineno - first + 1
    assert not too_long


def test_the_version_hashes_every_engine_module_symbols_and_notation():
    sources = memo.engine_sources()
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) >= 10  # the package, not a stray single file
    assert [Path(p).resolve() for p in sources] == [*modules, Path(symbols.__file__).resolve(),
                                                    Path(notation.__file__).resolve()]
    assert memo._engine_version() == engine.ENGINE_VERSION


@pytest.fixture
def copies(tmp_path):
    """A copy of every source the version hashes, under the same file names."""
    out = []
    for n, path in enumerate(memo.engine_sources()):
        folder = tmp_path / f"{n:02d}"
        folder.mkdir()
        out.append(Path(shutil.copy(path, folder / Path(path).name)))
    return out


def test_an_edit_to_any_one_engine_module_changes_the_version(copies):
    assert memo._engine_version(copies) == engine.ENGINE_VERSION  # the copies hash the same
    seen = {engine.ENGINE_VERSION}
    for path in copies:
        text = path.read_text()
        path.write_text(text.replace("return", "return ", 1) if "return" in text else text + "\n")
        version = memo._engine_version(copies)
        assert version not in seen, f"an edit to {path.name} left the version unchanged"
        seen.add(version)
        path.write_text(text)
    assert memo._engine_version(copies) == engine.ENGINE_VERSION


def test_moving_text_between_two_modules_changes_the_version(copies):
    first, second = copies[0], copies[1]
    a, b = first.read_text(), second.read_text()
    first.write_text(a[:-1])
    second.write_text(a[-1] + b)
    assert memo._engine_version(copies) != engine.ENGINE_VERSION
