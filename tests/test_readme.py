"""The README's "Your own derivations" code runs as written and names every public name."""
from __future__ import annotations

import re
from pathlib import Path

import derive

README = Path(__file__).resolve().parent.parent / "README.md"


def test_your_own_derivations_starts_from_one_declaration():
    section = _section()
    assert section.index("python -m derive loss") < section.index("```python")
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert code.index("Loss(") < code.index("run(")
    underneath = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    first = underneath.index("gradient(")
    assert first < underneath.index("Catalogue(") and first < underneath.index("Kernel(")


def _section() -> str:
    text = README.read_text()
    start = text.index("## Your own derivations")
    return text[start:text.index("\n## ", start + 3)]


def test_the_readme_example_runs_as_written(capsys):
    declaration, code = re.findall(r"```python\n(.*?)```", _section(), re.S)[:2]
    exec(compile(declaration, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "beta*S[j] ('scaled_product'" in printed and "every stage passed" in printed
    assert printed.strip().endswith("0")
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert "beta*S[j] True" in printed  # the gradient derived, closed, every step checked
    assert "[rule softmax]" in printed
    assert "['DerivationCheck', 'DerivationCheck']" in printed
    assert "rejected at T =" in printed
    assert "('mine', " in printed and "True)" in printed and "False)" not in printed


def test_the_readme_names_every_public_name():
    section = _section()
    missing = [name for name in derive.__all__ if f"`{name}`" not in section]
    assert not missing


def test_every_public_name_has_a_docstring_with_an_example():
    lacking = [name for name in derive.__all__ if not isinstance(getattr(derive, name), tuple)
               and "Examples" not in (getattr(derive, name).__doc__ or "")]
    assert not lacking, lacking


def test_the_public_examples_run():
    import doctest
    import importlib

    for name in ("derive", "derive.symbols", "derive.engine", "derive.registry", "derive.codegen",
                 "derive.codegen.claims", "derive.codegen.printed", "derive.codegen.module",
                 "derive.functions", "derive.printing", "derive.verification", "derive.measure",
                 "derive.publish", "derive.testing", "derive.autodiff", "derive.autodiff.rewriting",
                 "derive.autodiff.driver", "derive.autodiff.language", "derive.softmax.rules",
                 "derive.softmax.kernels", "derive.document", "derive.executors", "derive.results",
                 "derive.stable", "derive.loss", "derive.softmax.losses", "derive.references"):
        failed, _ = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert failed == 0, name
