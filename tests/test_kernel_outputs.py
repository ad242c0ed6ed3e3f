"""Every generated kernel writes each full-array result into the ``out`` array it is
given, in its general and its moderate form, and returns that array: the runtime's
blocks read the results from ``out`` and hand the scratch arrays to the next call, so a
result left in scratch would be overwritten (a second PutAt on an array the first one
wrote was once printed into scratch, and the gradient of a block with a NaN row was off
by 5)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from numeric import _kernels

_rng = np.random.default_rng(7)
A = _rng.normal(0, 3, (6, 5))
_EXTRA = {"C": np.array([[0], [4], [2], [2], [1], [3]]), "Y": _rng.dirichlet(np.ones(5), 6),
          "U": _rng.uniform(0, 2, (6, 5)), "BW": _rng.uniform(0.5, 2, (6, 5))}


@pytest.mark.parametrize("moderate", [False, True])
@pytest.mark.parametrize("name", sorted(_kernels.OUTPUTS))
def test_full_results_land_in_out_and_nowhere_else(name, moderate):
    kernel = getattr(_kernels, name)
    args = [_EXTRA[p] for p in list(inspect.signature(kernel).parameters)[1:] if p in _EXTRA]
    full = _kernels.OUTPUTS[name]
    out = [np.full(A.shape, np.nan) if f else None for f in full]
    scratch = [np.empty_like(A) for _ in range(_kernels.SCRATCH[name])]
    got = kernel(A, *args, out=out, scratch=scratch, moderate=moderate)
    got = got if isinstance(got, tuple) else (got,)
    expected = kernel(A, *args)  # fresh arrays of its own
    expected = expected if isinstance(expected, tuple) else (expected,)
    for f, o, g, e in zip(full, out, got, expected):
        if not f:
            continue
        assert g is o, f"{name}: a full result is not the out array"
        assert not any(np.shares_memory(g, s) for s in scratch)
        for s in scratch:  # what the next call does to the scratch arrays
            s.fill(np.inf)
        if moderate:
            assert np.isfinite(o).all() and np.allclose(o, e, rtol=1e-14, atol=1e-300)
        else:
            assert np.array_equal(o, e)
