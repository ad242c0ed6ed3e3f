"""linear_cross_entropy in tiles of classes (class-index targets) and chunks of rows
(probability targets): the results of the whole logits at once to a few ULP, within
1 ULP of float32 (4 ULP of float64 for the loss) of mpmath, and memory bounded by the
tile, not by B x T."""
from __future__ import annotations

import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

import numeric
from derive import ulp_error
from numeric import _blocks, _linear, _tiles

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from run import peak_beyond_outputs  # noqa: E402 - benchmarks/run.py, the same measure


def _unchunked(x, W, b, target, **options):
    """The computation chunking replaces: all logits at once, through cross_entropy."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1, W.shape[1])
    with np.errstate(invalid="ignore", over="ignore"):  # (inf or NaN inputs)
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
        tiled = peak_beyond_outputs(warm=True, call=lambda: numeric.linear_cross_entropy(x, W, b, target, chunk=tile))
        whole = peak_beyond_outputs(warm=True, call=lambda: _linear._linear(x, W, b, target, None, -100, 0.0, "mean",
                                                                            None, whole=True))
        return tiled, whole

    (small, small_whole), (large, large_whole) = peaks(64 * tile), peaks(256 * tile)
    tile_bytes = B * tile * 8
    assert large - small < 0.1 * tile_bytes, (small, large)
    # (per-row statistics: a dozen columns of LINEAR_STAT_TILES, with the temporaries of
    # combining them accurately)
    assert small < 3 * tile_bytes + _linear.LINEAR_STAT_TILES * 12 * 8 * B + 2 * B * N * 8 + 64 * 1024
    assert large_whole - small_whole > 1.5 * B * (256 - 64) * tile * 8  # the logits and more


def test_the_default_tile_at_vocabulary_size():
    # B = 4096 rows: tiles of 1536 classes (48 MB of float64 logits), 33 tiles of a
    # GPT-2 vocabulary, so the statistics are never combined early
    assert _linear._tile_classes(None, 50257, 4096) == 1536
    assert -(-50257 // 1536) <= _linear.LINEAR_STAT_TILES
    assert _linear._tile_classes(None, 50257, 10 ** 6) == _linear.LINEAR_MIN_TILE
    assert _linear._tile_classes(None, 10, 4096) == 10 and _linear._tile_classes(5000, 10, 1) == 10


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
        monkeypatch.setattr(_linear, "LINEAR_STAT_TILES", 3)
        got = numeric.linear_cross_entropy(x, W, b, target, chunk=1, **options)
        monkeypatch.undo()
        for mine, theirs in zip(got, want):
            np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15)


def test_row_path_accumulates_dW_a_tile_of_classes_at_a_time(monkeypatch):
    """The row path (taken for non-finite logits; forced here) goes in chunks of rows;
    the buffer for each chunk's G^T x holds a tile of classes, not all T of them: with
    tiles of 3 classes of T = 10 (and of 1), the results are those of the unchunked
    computation."""
    rng = np.random.default_rng(7)
    B, N, T = 11, 4, 10
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)), rng.normal(size=T)
    monkeypatch.setattr(_tiles, "linear_tiles", lambda *args: None)
    for target in (rng.dirichlet(np.ones(T), B), rng.integers(0, T, B)):
        want = _unchunked(x, W, b, target)
        for tile in (3, 1):
            monkeypatch.setattr(_linear, "LINEAR_CHUNK_BYTES", 8 * N * tile)  # tile classes of N features
            got = numeric.linear_cross_entropy(x, W, b, target)
            for mine, theirs in zip(got, want):
                np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15)


def test_probability_targets_hold_a_tile_of_logits_not_all_of_them(monkeypatch):
    """Issue 20, item 6: probability targets took the row path with a float64 copy of
    all targets, B x T masks and float64 copies of W and dW (152 % of the float64
    logits at the README's size). They now take the tiles (here of 1 MB of float64
    logits): the targets are checked and read a block at a time, and what a call holds
    beyond its inputs and outputs is a few tiles, far below the whole logits."""
    rng = np.random.default_rng(9)
    B, N, T = 2048, 4, 4096
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)), rng.normal(size=T)
    target = rng.dirichlet(np.ones(T), B).astype(np.float32)
    full = B * T * 8
    monkeypatch.setattr(_linear, "LINEAR_TILE_BYTES", 2 ** 20)
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 2 ** 18)  # (smoothing's temporaries: ~10 blocks)
    tile = B * 128 * 8  # (LINEAR_MIN_TILE classes)
    statistics = 8 * B * (T // 128)  # one float64 per row and tile
    for options in ({}, {"label_smoothing": 0.1, "weight": rng.uniform(0.5, 2, T)}):
        chunked = peak_beyond_outputs(
            lambda options=options: numeric.linear_cross_entropy(x, W, b, target, **options), warm=True)
        # the tile's logits, a few block-sized temporaries, and a dozen columns of per-row
        # statistics: 7.7 and 10.2 MB, 12 and 16 % of the logits
        assert chunked < 3 * tile + 12 * statistics, (options, chunked)
    whole = peak_beyond_outputs(warm=True, call=lambda: _linear._linear(x, W, b, target, None, -100, 0.0, "mean", None,
                                                                        whole=True))
    assert whole > 1.5 * full, whole


# --------------------------------------------------------------------------- accuracy
def _exact(x, W, b, target, weight=None, label_smoothing=0.0, ignore_index=-100, reduction="mean", digits=60):
    """(loss, dx, dW, db) from the definitions in mpmath (``digits``), from the exact
    inputs: logits = x W^T + b, u = w ((1 - eps) e_c + eps / T), L_beta = sum_j
    u_j (log Z - a_j), G = rho (S sum u - u) (rho: 0 if ignored, 1 / the weight sum for
    "mean"), dW = G^T x, db = sum_beta G, dx = G W."""
    B, N = x.shape
    T = W.shape[0]
    w = np.ones(T) if weight is None else weight
    eps = label_smoothing
    with mpmath.workdps(digits):
        X = [[mpmath.mpf(float(v)) for v in row] for row in x]
        Wm = [[mpmath.mpf(float(v)) for v in row] for row in W]
        bm = [mpmath.mpf(float(v)) for v in b]
        losses, grads, denom = [], [], mpmath.mpf(0)
        for beta in range(B):
            a = [mpmath.fsum(X[beta][n] * Wm[j][n] for n in range(N)) + bm[j] for j in range(T)]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a))
            c = int(target[beta])
            if c == ignore_index:
                losses.append(mpmath.mpf(0))
                grads.append([mpmath.mpf(0)] * T)
                continue
            denom += mpmath.mpf(float(w[c]))
            u = [mpmath.mpf(float(w[j])) * ((1 - mpmath.mpf(eps)) * (j == c) + mpmath.mpf(eps) / T)
                 for j in range(T)]
            losses.append(mpmath.fsum(u[j] * (lse - a[j]) for j in range(T)))
            total = mpmath.fsum(u)
            grads.append([mpmath.exp(a[j] - lse) * total - u[j] for j in range(T)])
        if reduction == "mean":
            grads = [[g / denom for g in row] for row in grads]
            loss = mpmath.fsum(losses) / denom
        else:
            loss = mpmath.fsum(losses) if reduction == "sum" else losses
        dW = [[mpmath.fsum(grads[beta][j] * X[beta][n] for beta in range(B)) for n in range(N)] for j in range(T)]
        db = [mpmath.fsum(grads[beta][j] for beta in range(B)) for j in range(T)]
        dx = [[mpmath.fsum(grads[beta][j] * Wm[j][n] for j in range(T)) for n in range(N)] for beta in range(B)]
    return loss, dx, dW, db


def _worst_ulps(got, exact, dtype):
    """The largest ULP error (in ``dtype``) of the four results against ``_exact``."""
    errs = []
    for mine, ref in zip(got, exact):
        mine = np.atleast_1d(np.asarray(mine, dtype=np.float64)).ravel()
        ref = np.atleast_1d(np.array(ref, dtype=object)).ravel()
        errs.append(max(ulp_error(v, r, dtype) for v, r in zip(mine, ref)))
    return errs


def _naive_float32(x, W, b, target):
    """The six-line float32 max-shift (mean over the batch), as a NumPy user writes it."""
    a = x @ W.T + b
    e = np.exp(a - a.max(axis=1, keepdims=True))
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(target))
    loss = np.mean(np.log(total[:, 0]) - (a[rows, target] - a.max(axis=1)))
    G = e / total
    G[rows, target] -= 1
    G /= len(target)
    return loss, G @ W, G.T @ x, G.sum(axis=0)


F32_CASES = [
    {},
    {"reduction": "none", "weight": True, "ignore_index": 3},
    {"reduction": "sum", "label_smoothing": 0.1},
    {"reduction": "mean", "label_smoothing": 0.25, "weight": True},
]


@pytest.mark.parametrize("options", F32_CASES, ids=[str(o) for o in F32_CASES])
@pytest.mark.parametrize("chunk", [2, None])
def test_float32_results_are_within_one_ulp_of_mpmath(options, chunk):
    """Computed in float64, rounded once: where the dot products do not cancel, the loss
    and every entry of dx, dW and db within 1 ULP of float32 of the exact values; the
    plain float32 max-shift is not."""
    rng = np.random.default_rng(11)
    B, N, T = 12, 6, 7
    x = rng.normal(size=(B, N)).astype(np.float32)
    W = (rng.normal(size=(T, N)) * 2).astype(np.float32)
    b = rng.normal(size=T).astype(np.float32)
    target = rng.integers(0, T, B)
    target[[2, 7]] = 3
    options = dict(options)
    if options.get("weight"):
        options["weight"] = rng.uniform(0.2, 2.0, T)
    got = numeric.linear_cross_entropy(x, W, b, target, chunk=chunk, **options)
    assert all(np.asarray(r).dtype == np.float32 for r in got)
    exact = _exact(x, W, b, target, **options)
    assert max(_worst_ulps(got, exact, np.float32)) <= 1
    if not options:
        assert max(_worst_ulps(_naive_float32(x, W, b, target), exact, np.float32)) > 1


def test_the_float32_bound_that_holds_for_cancelling_dot_products():
    """Issue 20, item 7: "every output within 1 ULP of float32 of the exact value" cannot
    hold where the dot products cancel (the float64 sum of x_n W_jn of 2^60 rounds away
    a 1.5). The bound stated instead: each logit within gamma_N sum_n |x_n W_jn| of the
    exact one, so the loss within 1 ULP of float32 plus twice that; it holds here, and
    the documentation says so."""
    x = np.array([[2.0 ** 60, 1.5, 2.0 ** 60], [1.0, 2.0, 3.0]], dtype=np.float32)
    W = np.array([[1.0, 1.0, -1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    target = np.array([0, 1])
    loss = numeric.linear_cross_entropy(x, W, None, target, reduction="none")[0]
    N = x.shape[1]
    gamma = N * 2.0 ** -53 / (1 - N * 2.0 ** -53)
    mass = np.abs(x.astype(np.float64)) @ np.abs(W.astype(np.float64)).T  # sum_n |x_n W_jn|
    with mpmath.workdps(60):
        for row in range(2):
            logits = [mpmath.fsum(mpmath.mpf(float(x[row, n])) * mpmath.mpf(float(W[j, n])) for n in range(N))
                      for j in range(2)]
            exact = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in logits)) - logits[target[row]]
            bound = np.spacing(np.float32(float(exact))) + 2 * gamma * mass[row].max()
            assert abs(mpmath.mpf(float(loss[row])) - exact) <= bound, (row, loss[row], exact, bound)
    doc = numeric.linear_cross_entropy.__doc__
    assert "gamma_N sum_n |x_n W_jn|" in doc and "do not cancel" in doc


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_float64_losses_far_below_1e16_keep_their_digits(chunk):
    """W = I: the logits are x + b exactly (products by 0 and 1, sums with zeros), so
    mpmath from the logits is the exact reference of the whole call. Losses of 1e-18 to
    1e-300 (a true class 40 to 690 above the rest) within 4 ULP, and dx = G (G I = G) within
    4 ULP of the row's largest |G|; the float64 max-shift gives them 0, and G_c = S_c - 1
    cancels to 0 or -1.1e-16."""
    rng = np.random.default_rng(12)
    B, T = 9, 7
    logits = rng.normal(size=(B, T)) * 3
    target = rng.integers(0, T, B)
    rows = np.arange(B)
    logits[rows, target] = logits.max(axis=1) + np.linspace(40, 690, B)
    logits[0, target[0]] = logits[0].max() - 2.5  # a row where the target is not the max
    x, W, b = logits, np.eye(T), np.zeros(T)
    loss, dx, _, _ = numeric.linear_cross_entropy(x, W, b, target, chunk=chunk, reduction="sum")
    per_row, _, _, _ = numeric.linear_cross_entropy(x, W, b, target, chunk=chunk, reduction="none")
    exact_rows, exact_dx, _, _ = _exact(x, W, b, target, reduction="none", digits=400)
    assert max(ulp_error(v, r) for v, r in zip(per_row, exact_rows)) <= 4
    assert float(per_row[-1]) > 0 and float(per_row[-1]) < 1e-290
    _, sum_dx, _, _ = _exact(x, W, b, target, reduction="sum", digits=400)
    for mine, ref in zip(dx, sum_dx):
        scale = max(abs(v) for v in ref)
        assert max(ulp_error(v, r, scale=scale) for v, r in zip(mine, ref)) <= 4
        assert max(ulp_error(v, r) for v, r in zip(mine, ref) if abs(r) == scale) <= 4
    # the naive float64 max-shift: losses of 0, and S_c - 1 cancelled
    m = logits.max(axis=1)
    naive = np.log(np.exp(logits - m[:, None]).sum(axis=1)) - (logits[rows, target] - m)
    assert max(ulp_error(v, r) for v, r in zip(naive, exact_rows)) > 4
    S = np.exp(logits - m[:, None]) / np.exp(logits - m[:, None]).sum(axis=1, keepdims=True)
    S[rows, target] -= 1
    assert max(ulp_error(S[beta, target[beta]], exact_dx[beta][target[beta]]) for beta in range(1, B)) > 4


def test_masked_classes_stay_on_the_tiles_and_the_rest_takes_the_row_path(monkeypatch):
    """A -inf bias masks a class: the tiles handle it (e^-inf = 0; a masked target
    gives +inf, gradient -1 there), and finite logits beyond 708 (the TwoSum form).
    NaN and +inf take the row path,
    whose results are cross_entropy's; a NaN row is NaN and the others are untouched."""
    rng = np.random.default_rng(9)
    B, N, T = 6, 3, 8
    x, W, b = rng.normal(size=(B, N)), rng.normal(size=(T, N)), rng.normal(size=T)
    target = rng.integers(0, T, B)
    b[[1, 4]] = -np.inf
    target[(target == 1) | (target == 4)] = 0
    target[0] = 4
    calls = []
    real_rows = _linear._linear_rows
    monkeypatch.setattr(_linear, "_linear_rows", lambda *args: calls.append(1) or real_rows(*args))
    got = numeric.linear_cross_entropy(x, W, b, target, chunk=3, reduction="none")
    assert not calls and got[0][0] == np.inf and np.isfinite(got[0][1:]).all()
    want = _unchunked(x, W, b, target, reduction="none")
    for mine, theirs in zip(got, want):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15)
    for bad in ("nan", "inf", "far"):
        xb = x.copy()
        xb[2] = {"nan": np.nan, "inf": np.inf, "far": 1e4}[bad]
        calls.clear()
        got = numeric.linear_cross_entropy(xb, W, b, target, chunk=3, reduction="none")
        assert calls == ([] if bad == "far" else [1])  # (finite logits beyond 708: the tiles)
        if bad == "nan":
            assert np.isnan(got[0][2]) and np.isnan(got[1][2]).all()
            assert np.isfinite(got[0][[1, 3, 4, 5]]).all() and np.isfinite(got[1][[0, 1, 3, 4, 5]]).all()
        else:
            want = _unchunked(xb, W, b, target, reduction="none")
            np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
