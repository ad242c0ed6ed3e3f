"""linear_cross_entropy in chunks of rows: the same per-row results as one chunk holding
the whole logits, and memory bounded by the chunk, not by B x T."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import numeric
from numeric import api


def _unchunked(x, W, b, target, **options):
    """The computation chunking replaces: all logits at once, through cross_entropy."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1, W.shape[1])
    logits = flat @ np.asarray(W, dtype=np.float64).T + b
    loss, grad = numeric.cross_entropy_with_grad(logits, target, **options)
    grad = np.asarray(grad, dtype=np.float64)
    return loss, grad @ W, grad.T @ flat, grad.sum(axis=0)


OPTIONS = [
    {},
    {"reduction": "none"},
    {"reduction": "sum", "label_smoothing": 0.1},
    {"weight": "w", "ignore_index": 2, "reduction": "mean"},
    {"weight": "w", "label_smoothing": 0.2, "reduction": "none"},
    {"soft": True},
    {"soft": True, "reduction": "none", "label_smoothing": 0.05},
]


@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
@pytest.mark.parametrize("chunk", [1, 3, 7, None, 1000])
def test_chunks_give_the_unchunked_results(options, chunk):
    rng = np.random.default_rng(4)
    B, N, T = 13, 5, 9
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)), rng.normal(size=T)
    options = dict(options)
    if options.pop("soft", False):
        target = rng.dirichlet(np.ones(T), B)
    else:
        target = rng.integers(0, T, B)
        target[[1, 5]] = 2  # rows for ignore_index
    if options.get("weight") == "w":
        options["weight"] = rng.uniform(0.2, 2.0, T)
    loss, dx, dW, db = numeric.linear_cross_entropy(x, W, b, target, chunk=chunk, **options)
    want = _unchunked(x, W, b, target, **options)
    # the same computation row by row; only BLAS may sum the N (or T) products of a row
    # in another order for another number of rows (gemv for one row, gemm for more), and
    # the sums over the batch (dW, db, a reduced loss) run in another order: a few ULPs
    np.testing.assert_allclose(loss, want[0], rtol=1e-13, atol=0)
    np.testing.assert_allclose(dx, want[1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dW, want[2], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(db, want[3], rtol=1e-13, atol=1e-15)


def test_a_mean_over_nothing_is_nan_in_chunks_as_unchunked():
    rng = np.random.default_rng(5)
    x, W, b = rng.normal(size=(6, 3)), rng.normal(size=(4, 3)), np.zeros(4)
    target = np.full(6, -100)
    loss, dx, dW, db = numeric.linear_cross_entropy(x, W, b, target, chunk=2)
    want = _unchunked(x, W, b, target)
    assert np.isnan(loss) and np.isnan(want[0])
    assert not np.isnan(dx).any() and not dx.any() and not want[1].any()  # every row ignored: 0
    zero_weight = numeric.linear_cross_entropy(x, W, b, np.arange(6) % 4, weight=np.zeros(4), chunk=2)
    assert np.isnan(zero_weight[1]).all()  # d(0/0) in the counted rows


def test_bad_chunk_is_named():
    args = (np.ones((2, 3)), np.ones((4, 3)), np.zeros(4), np.array([0, 1]))
    with pytest.raises(ValueError, match="chunk must be at least 1 row; got 0"):
        numeric.linear_cross_entropy(*args, chunk=0)
    with pytest.raises(TypeError, match="chunk must be a positive int"):
        numeric.linear_cross_entropy(*args, chunk=2.5)
    with pytest.raises(TypeError, match="chunk must be a positive int"):
        numeric.linear_cross_entropy(*args, chunk=True)


def test_memory_is_bounded_by_the_chunk_not_by_the_logits():
    # float64 inputs (no widened copies): what a call holds beyond its inputs and
    # outputs is about one chunk of logits and its gradient; one chunk of the whole
    # batch (today's unchunked computation) holds the whole logits twice
    rng = np.random.default_rng(6)
    B, N, T = 1024, 16, 8192
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)) / 4, rng.normal(size=T)
    target = rng.integers(0, T, B)
    full = B * T * 8  # 64 MB of float64 logits

    def peak(**kw):
        numeric.linear_cross_entropy(x, W, b, target, **kw)  # warm up
        tracemalloc.start()
        tracemalloc.reset_peak()
        out = numeric.linear_cross_entropy(x, W, b, target, **kw)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top - sum(np.asarray(o).nbytes for o in out)

    chunk = 16  # 1 MB of logits per chunk
    assert peak(chunk=chunk) < 0.1 * full
    assert peak(chunk=B) > 1.5 * full
    assert api.LINEAR_CHUNK_BYTES // (8 * T) >= 1  # the default takes whole rows


def test_dW_is_accumulated_a_tile_of_classes_at_a_time(monkeypatch):
    """The buffer for each chunk's G^T x holds a tile of classes, not all T of them
    (at T = 50257, N = 768 a whole one is 309 MB, as much as dW): with tiles of 3
    classes of T = 10 (and of 1), the results are those of the unchunked computation."""
    rng = np.random.default_rng(7)
    B, N, T = 11, 4, 10
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)), rng.normal(size=T)
    target = rng.integers(0, T, B)
    want = _unchunked(x, W, b, target)
    for tile in (3, 1):
        monkeypatch.setattr(api, "LINEAR_CHUNK_BYTES", 8 * N * tile)  # tile classes of N features
        got = numeric.linear_cross_entropy(x, W, b, target, chunk=4)
        for mine, theirs in zip(got, want):
            np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15)
    # and the buffer is a tile: peak memory well below one T x N float64 array
    B, N, T = 64, 256, 4096
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)) / 16, rng.normal(size=T)
    target = rng.integers(0, T, B)
    monkeypatch.setattr(api, "LINEAR_CHUNK_BYTES", 8 * N * 128)  # 128-class tiles; chunks of 8 rows
    numeric.linear_cross_entropy(x, W, b, target, chunk=8)
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = numeric.linear_cross_entropy(x, W, b, target, chunk=8)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    extra = top - sum(np.asarray(o).nbytes for o in out)
    assert extra < 0.5 * T * N * 8, f"{extra / 2**20:.1f} MB beyond the outputs"
