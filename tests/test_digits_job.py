"""The first client job of issue 11, run from the README's example: softmax regression
on scikit-learn's digits, fitted with SciPy's L-BFGS through ``linear_cross_entropy``
at its defaults plus scikit-learn's L2 penalty, converges to LogisticRegression's
solution.

LogisticRegression(C) minimizes mean_i L_i + ||W||^2 / (2 C n) (the intercept is not
penalized). The reference solution is fitted with solver="newton-cg" and tol=1e-12
(gradient ~1e-13 at its end); the default lbfgs solver stops earlier (gradient ~4e-9,
intercepts ~1.5e-5 from the optimum), too early for a 1e-5 comparison of the weights,
but it gives the same test accuracy.
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (example,) = [b for b in blocks if "load_digits" in b]
    return example


def test_readme_digits_example_matches_logistic_regression():
    # imported here: scikit-learn and SciPy take a second or two to import, on the
    # worker that runs this test only (not at every worker's collection)
    LogisticRegression = pytest.importorskip("sklearn.linear_model").LogisticRegression  # noqa: N806
    names = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(_readme_example(), "README.md (digits example)", "exec"), names)  # noqa: S102
    fit, W, b = names["fit"], names["W"], names["b"]
    x_train, y_train, x_test, y_test = (names[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    assert fit.success, fit.message

    reference = LogisticRegression(C=1.0, solver="newton-cg", tol=1e-12, max_iter=1000).fit(x_train, y_train)
    ours = np.mean(np.argmax(x_test @ W.T + b, axis=1) == y_test)
    assert ours == reference.score(x_test, y_test)
    assert float(printed.getvalue()) == ours
    np.testing.assert_allclose(W, reference.coef_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(b, reference.intercept_, rtol=0, atol=1e-5)
    # scikit-learn's default solver: the same test accuracy
    assert ours == LogisticRegression(max_iter=1000).fit(x_train, y_train).score(x_test, y_test)
