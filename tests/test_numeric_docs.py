"""numeric documents itself: every public function has a NumPy-style docstring
(Parameters, Returns, Raises, Notes, Examples) and type hints, and its Examples are
run here as doctests -- an example whose output is not what the code gives fails
(test_a_wrong_example_fails shows the runner catches one). The examples run again with
NumPy alone in tests/test_layering.py."""
from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import typing

import pytest

import numeric
from numeric import api

PUBLIC = [name for name in numeric.__all__ if name != "__version__"]
#: every hand-written module of the package (the generated _kernels holds no examples)
MODULES = ["numeric"] + sorted(f"numeric.{m.name}" for m in pkgutil.iter_modules(numeric.__path__)
                               if m.name != "_kernels")
SECTIONS = ("Parameters", "Returns", "Raises", "Notes", "Examples")


def _run(test: doctest.DocTest) -> tuple[doctest.TestResults, str]:
    """The doctest's results and its report (what failed, expected and got)."""
    report = []
    results = doctest.DocTestRunner(verbose=False).run(test, out=report.append)
    return results, "".join(report)


def _examples(function) -> doctest.DocTest:
    """The doctest of ``function``'s docstring, with no names given: each example
    imports what it uses."""
    tests = doctest.DocTestFinder(recurse=False).find(function, function.__name__, globs={})
    assert len(tests) == 1, function.__name__
    return tests[0]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_function_has_numpy_style_sections_and_type_hints(name):
    function = getattr(numeric, name)
    doc = inspect.getdoc(function)
    for section in SECTIONS:
        assert f"\n{section}\n{'-' * len(section)}\n" in doc, (name, section)
    assert "$" not in doc, name  # (a shared section left unfilled)
    hints = typing.get_type_hints(function)  # (every annotation resolves)
    parameters = inspect.signature(function).parameters
    assert set(parameters) <= set(hints) and "return" in hints, (name, set(parameters) - set(hints))
    assert getattr(api, name) is function  # numeric.api keeps every public name


@pytest.mark.parametrize("name", PUBLIC)
def test_the_examples_of_every_public_function_give_what_they_show(name):
    test = _examples(getattr(numeric, name))
    results, report = _run(test)
    assert results.attempted >= 2, (name, results)  # (a call and an edge case, at least)
    assert results.failed == 0, report


@pytest.mark.parametrize("module", MODULES)
def test_the_examples_anywhere_in_the_package_give_what_they_show(module):
    for test in doctest.DocTestFinder().find(importlib.import_module(module)):
        results, report = _run(test)
        assert results.failed == 0, report


def test_a_wrong_example_fails():
    """An example whose shown output differs from the code's in one digit, or whose
    error message differs, is a failure of the runner used above."""
    original = _examples(numeric.softmax)
    for good, bad in (("0.66524096", "0.66524097"), ("array([1., 0.])", "array([nan, 0.])")):
        assert good in original.docstring
        wrong = doctest.DocTestParser().get_doctest(original.docstring.replace(good, bad, 1), {},
                                                    "wrong", None, 0)
        results, report = _run(wrong)
        assert results.failed == 1 and bad in report, report
    raising = _examples(numeric.cross_entropy).docstring
    wrong = doctest.DocTestParser().get_doctest(raising.replace("in [0, 3)", "in [0, 4)"), {}, "wrong", None, 0)
    results, report = _run(wrong)
    assert results.failed == 1, report
