"""linear_cross_entropy in tiles of classes (class-index targets) and chunks of rows
(probability targets): the results of the whole logits at once to a few ULP, within
1 ULP of float32 (4 ULP of float64 for the loss) of mpmath, and memory bounded by the
tile, not by B x T."""
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
def test_tiles_give_the_unchunked_results(options, chunk):
    """chunk: classes per tile (1, 3, 7 of 9 classes: the targets fall in every tile;
    None and 1000: one tile) for class indices; probability targets take the row path."""
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
    # the same math by another formula (per-tile statistics, combined) and the sums
    # over the batch and the classes (dW, db, dx, a reduced loss) in another order
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
    with pytest.raises(ValueError, match="chunk must be at least 1 class per tile; got 0"):
        numeric.linear_cross_entropy(*args, chunk=0)
    with pytest.raises(ValueError, match="chunk must be at least 1 class per tile; got -3"):
        numeric.linear_cross_entropy(*args, chunk=-3)
    with pytest.raises(TypeError, match=r"chunk must be a positive int \(classes per tile\) or None; got 2.5"):
        numeric.linear_cross_entropy(*args, chunk=2.5)
    with pytest.raises(TypeError, match="chunk must be a positive int .* got True"):
        numeric.linear_cross_entropy(*args, chunk=True)


def _peak_beyond_outputs(call):
    call()  # warm up
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = call()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top - sum(np.asarray(o).nbytes for o in out)


def test_memory_does_not_grow_with_the_classes():
    """float64 inputs (no widened copies): what a call holds beyond its inputs and
    outputs is the tile's logits, its W and per-row statistics of at most
    LINEAR_STAT_TILES tiles, the same for 64 and 256 tiles; the whole logits at once
    (the row path in one chunk, as every call was before the tiles) grow with T."""
    rng = np.random.default_rng(6)
    B, N, tile = 256, 16, 64

    def peaks(T):
        x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)) / 4, rng.normal(size=T)
        target = rng.integers(0, T, B)
        tiled = _peak_beyond_outputs(lambda: numeric.linear_cross_entropy(x, W, b, target, chunk=tile))
        whole = _peak_beyond_outputs(lambda: api._linear(x, W, b, target, None, -100, 0.0, "mean", None,
                                                         whole=True))
        return tiled, whole

    (small, small_whole), (large, large_whole) = peaks(64 * tile), peaks(256 * tile)
    tile_bytes = B * tile * 8
    assert large - small < 0.1 * tile_bytes, (small, large)
    assert small < 3 * tile_bytes + api.LINEAR_STAT_TILES * 3 * 8 * B + 2 * B * N * 8 + 64 * 1024
    assert large_whole - small_whole > 1.5 * B * (256 - 64) * tile * 8  # the logits and more


def test_the_default_tile_at_vocabulary_size():
    # B = 4096 rows: tiles of 1024 classes (32 MB of float64 logits), 50 tiles of a
    # GPT-2 vocabulary, so the statistics are never combined early
    assert api._tile_classes(None, 50257, 4096) == 1024
    assert -(-50257 // 1024) <= api.LINEAR_STAT_TILES
    assert api._tile_classes(None, 50257, 10 ** 6) == api.LINEAR_MIN_TILE
    assert api._tile_classes(None, 10, 4096) == 10 and api._tile_classes(5000, 10, 1) == 10


def test_statistics_combined_early_give_the_same_results(monkeypatch):
    """More tiles than LINEAR_STAT_TILES: the kept columns are combined into one and
    pass 1 goes on (3 columns for 13 tiles of one class)."""
    rng = np.random.default_rng(8)
    B, N, T = 7, 3, 13
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)), rng.normal(size=T)
    target = rng.integers(0, T, B)
    weight = rng.uniform(0.5, 2, T)
    for options in ({}, {"label_smoothing": 0.3, "weight": weight, "reduction": "none"}):
        want = _unchunked(x, W, b, target, **options)
        monkeypatch.setattr(api, "LINEAR_STAT_TILES", 3)
        got = numeric.linear_cross_entropy(x, W, b, target, chunk=1, **options)
        monkeypatch.undo()
        for mine, theirs in zip(got, want):
            np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15)


def test_row_path_accumulates_dW_a_tile_of_classes_at_a_time(monkeypatch):
    """Probability targets take chunks of rows; the buffer for each chunk's G^T x holds
    a tile of classes, not all T of them: with tiles of 3 classes of T = 10 (and of 1),
    the results are those of the unchunked computation."""
    rng = np.random.default_rng(7)
    B, N, T = 11, 4, 10
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)), rng.normal(size=T)
    target = rng.dirichlet(np.ones(T), B)
    want = _unchunked(x, W, b, target)
    for tile in (3, 1):
        monkeypatch.setattr(api, "LINEAR_CHUNK_BYTES", 8 * N * tile)  # tile classes of N features
        got = numeric.linear_cross_entropy(x, W, b, target)
        for mine, theirs in zip(got, want):
            np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15)
