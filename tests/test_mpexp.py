"""The references' exponential (derive/mpexp.py) and mpmath's arithmetic backend.

:func:`derive.mpexp.exp` is mpmath's exp by another road for integer arguments at
high precision: its values agree with mpmath's to the working precision, and the
references kept from them are the same float64 parts. gmpy2 (in the
report, dask and test extras) makes mpmath's integers GMP's: the references are the
same bytes with it and without it (``MPMATH_NOGMPY=1``, mpmath's own switch)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive import mpexp
from derive.measure import exact_parts
from derive.precise import reference
from derive.references import digits_for

INTEGERS = [2, -2, 3, 700, -700, 708, -745, 1000, -1000, 21240, 2 ** 60, 1e300, -1e300]


@pytest.mark.parametrize("digits", [50, 200, 400, 708, 2000])
def test_exp_agrees_with_mpmaths_to_the_working_precision(digits):
    with mpmath.workdps(digits):
        for x in [mpmath.mpf(v) for v in INTEGERS] + [mpmath.mpf("0.5"), mpmath.mpf("-3.25"), mpmath.mpf(1)]:
            ours, theirs = mpexp.exp(x), mpmath.exp(x)
            if mpmath.mp.prec <= mpexp.SLOW_PRECISION:  # mpmath's own road: its value
                assert ours == theirs, (digits, x)
            assert abs(ours / theirs - 1) <= mpmath.ldexp(1, 2 - mpmath.mp.prec), (digits, x)
            assert np.array_equal(exact_parts([ours]), exact_parts([theirs])), (digits, x)


def test_exp_leaves_what_is_not_a_real_integer_to_mpmath():
    with mpmath.workdps(400):
        assert mpexp.exp(mpmath.mpf(0)) == 1 and mpexp.exp(mpmath.mpf(1)) == mpmath.e
        assert mpexp.exp(mpmath.mpf("-inf")) == 0 and mpexp.exp(mpmath.mpf("inf")) == mpmath.inf
        assert mpmath.isnan(mpexp.exp(mpmath.nan))
        z = mpmath.mpc(700, 1)
        assert mpexp.exp(z) == mpmath.exp(z)


def test_lambdify_prints_exp_as_the_references_exponential():
    x = sp.Symbol("x")
    f = sp.lambdify([x], sp.exp(x) * sp.log(x), mpexp.MPMATH)
    assert f.__globals__["exp"] is mpexp.exp and f.__globals__["log"] is mpmath.log


#: rows of logits with integer values and gaps that need hundreds of digits, and a scaled
#: margin that cancels past them; each a reference that the two backends must agree on
_G = sp.IndexedBase("g")
_T, _S = sp.Symbol("T", integer=True, positive=True), sp.Symbol("s", integer=True)
_LSE = sp.log(sp.Sum(sp.exp(_G[_S]), (_S, 1, _T)))
_ROWS = [[700.0, -700.0, 0.0], [20000.0, 0.0, -3.0], [-1000.0, 5.0, 2.0, 2.0], [0.5, 0.25, -0.125]]
_PROGRAM = """
import json, sys
import mpmath, sympy as sp
from derive.measure import exact_parts
from derive.precise import reference
from derive.references import digits_for
import numpy as np
G = sp.IndexedBase("g"); T = sp.Symbol("T", integer=True, positive=True); s = sp.Symbol("s", integer=True)
lse = sp.log(sp.Sum(sp.exp(G[s]), (s, 1, T)))
rows = json.loads(sys.argv[1]); out = []
for row in rows:
    env = {T: len(row), **{G[k + 1]: v for k, v in enumerate(row)}}
    digits = digits_for(np.array(row))
    for expr in (lse, lse - G[1], 30 * (lse - G[1])):
        out.append(exact_parts([reference(expr, env, digits)]).tolist())
print(json.dumps([mpmath.libmp.BACKEND, out]))
"""


def _references(environment: dict) -> tuple[str, list]:
    done = subprocess.run([sys.executable, "-c", _PROGRAM, json.dumps(_ROWS)], capture_output=True, text=True,
                          env=environment, check=True)
    backend, values = json.loads(done.stdout)
    return backend, values


def test_references_are_the_same_bytes_with_and_without_gmpy2():
    pytest.importorskip("gmpy2", reason="gmpy2 (in the test extras) is not installed")
    plain = {k: v for k, v in os.environ.items() if k != "MPMATH_NOGMPY"}
    python_backend, python_values = _references({**plain, "MPMATH_NOGMPY": "1"})
    assert python_backend == "python"
    assert mpmath.libmp.BACKEND == "gmpy"  # this process: the backend of the tests' references
    ours = []
    for row in _ROWS:
        env = {_T: len(row), **{_G[k + 1]: v for k, v in enumerate(row)}}
        for expr in (_LSE, _LSE - _G[1], 30 * (_LSE - _G[1])):
            ours.append(exact_parts([reference(expr, env, digits_for(np.array(row)))]).tolist())
    assert json.dumps(ours) == json.dumps(python_values)
