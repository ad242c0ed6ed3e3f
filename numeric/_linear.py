"""The fully connected layer and the softmax loss in one call: logits = x W^T + b
(as ``torch.nn.functional.linear``), never held whole. Imports NumPy only.

The whole B x T logits are never held. Every call with finite logits (class
indices or probabilities, any option) goes in tiles of ``chunk`` classes (default:
as many as make :data:`LINEAR_TILE_BYTES` of float64 logits for the B rows, at least
:data:`LINEAR_MIN_TILE`), in two passes over the tiles, each computing the tile's
logits x W_tile^T + b_tile in float64 (W widened one tile at a time;
:mod:`numeric._tiles`):

1. per row and tile, the tile's largest logit m_t and the sum s_t of e^(a_j - m_t)
   over its classes other than its own argmax (and the target), the sums of
   u_j (m_t - a_j) and of u_j (probability targets, smoothing), the target logit a_c.
   Combined, with m = max_t m_t (``lse_split_classes``): Z e^-m = 1 + R with
   R = s_t* + sum_{t != t*} e^(m_t - m) (1 + s_t) (+ e^(a_c - m)), a sum of small
   terms, and the loss sigma log1p(R) + sum_j u_j (m - a_j)
   (``loss_split_true_class``): losses far below 1e-16 keep their digits, and none
   is negative;
2. the tile's G = e^a F - rho u with F = e^-m sigma rho / Z' rounded once (sigma =
   sum_j u_j, rho the reduction's factor), S_c - 1 as -sum_{j != c} e^(a_j - m) / Z'
   where c is the argmax (``true_class_complement_shifted``); then dW's rows of the
   tile = G_tile^T x (``fc_grad_W_class_tile``), rounded once into the result, db's
   entries, and dx += G_tile W_tile into a float64 B x N sum (``fc_batch_grad_x_tiles``).

Exponentials are e^a e^-m (each factor rounded once) in rows whose logits lie in
[-708, 708], and e^(a - m) with a - m carried with its rounding error (TwoSum)
elsewhere, so finite logits of any size stay on the tiles. Where a weight above 1
meets a number that would be subnormal (S_j, or R past a gap of 708), the
weight's power of two goes into the exponent first.

Memory beyond the inputs and outputs: the tile's logits, the tile of W and of dW in
float64, float64 copies of x and of dx (and one product G_tile W_tile), per-row
statistics of at most :data:`LINEAR_STAT_TILES` tiles, and a few cache blocks of
temporaries (probability targets are checked and read a block of a tile at a time:
no float64 copy of them). At B = 4096, N = 768, T = 50257 (float32): 136 MB for
class indices, 142 MB with a logit beyond 708, 145 MB for probability targets (8.7,
9.0 and 9.2 % of the 1.6 GB of float64 logits, which the whole computation at once
held 2.3 times over; benchmarks/linear_memory.py).

NaN, +inf, a row of only -inf, or -inf with smoothing or probability targets take
the row path instead: rows in chunks of :data:`LINEAR_CHUNK_BYTES` of float64
logits through :func:`numeric.cross_entropy_with_grad`, dW and db accumulated over the
chunks (``fc_batch_grad_W_chunks``), with a float64 copy of W and a float64 dW
(more memory: those calls' results are NaN or infinite where the input is;
``chunk`` does not apply there). Non-finite logits behave as in
:func:`numeric.cross_entropy`.

Accuracy (tests/test_linear_chunks.py, tests/test_tiles_accuracy.py, against
mpmath from the exact inputs). From given float64 logits (W = I, b = 0: the logits
are x exactly and dx is G) the loss is within 4 ULP, also far below 1e-16 (down to
1e-300), and each entry of G within 4 ULP of max(S_j sigma, u_j) rho (for plain
class indices: of itself) on every option, weights up to 1e300 included. The
logits themselves are BLAS's float64 sums of the products x_n W_jn: each is within
gamma_N sum_n |x_n W_jn| (gamma_N = N 2^-53 / (1 - N 2^-53)) of the exact logit,
and the loss, whose derivative in each row has 1-norm at most 2 sigma, moves by at
most twice that per unit of target mass. So with float32 inputs (every product
exact in float64) the results are within 1 ULP of float32 of the exact values
*when the dot products do not cancel*; in general the loss is within 1 ULP of
float32 plus 2 gamma_N max_j sum_n |x_n W_jn| per row (per unit of sigma) of the
exact loss -- logits that cancel (x_n W_jn of 1e17 summing to 1) can be off by
more than 1 even in float64. The per-row results agree with the row path's to a
few ULP, not bit for bit: another formula for the same math, and the sums of dW,
db and dx in another order.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from . import _tiles
from ._cross_entropy import _compute, _mean_denominator, _soft_tile
from ._rows import _finish, _quiet, _scalar
from ._typing import ArrayLike, Loss, NDArray, Reduction
from ._validation import IGNORE_INDEX, _array, _linear_inputs, _prepared_targets

#: the tiles (every call with finite logits) compute the logits of all B rows for a tile of
#: classes of about this many bytes of float64 at a time (twice: two passes). (Measured
#: on the loaded 2-core machine at B = 4096: tiles of 1536 classes ran 28.5-40 s where
#: 1024 ran 30-51 s, the whole logits 28-32 s: fewer, longer products lose less to the
#: other processes; the peak rises from 105 to 128 MB.)
LINEAR_TILE_BYTES = 48 * 2 ** 20


#: ... and at least this many classes per tile: narrower products run BLAS far below its
#: speed (so beyond B = LINEAR_TILE_BYTES / (8 * LINEAR_MIN_TILE) = 32768 rows a tile
#: holds more than LINEAR_TILE_BYTES)
LINEAR_MIN_TILE = 128


#: the per-row statistics of pass 1 are kept for at most this many tiles; then they are
#: combined into one column (the catalogue's ``lse_split_classes``) and pass 1 goes on
LINEAR_STAT_TILES = 64


#: the row path (calls with a NaN or infinite logit) takes rows in
#: chunks of this many bytes of float64 logits: with their gradient, about 2 x 64 MB
#: live, plus a float64 copy of W and a float64 dW (Smaller chunks cost time: BLAS
#: packs all of W for each chunk's products.)
LINEAR_CHUNK_BYTES = 64 * 2 ** 20


@_quiet
def linear_cross_entropy(x: ArrayLike, W: ArrayLike, b: ArrayLike | None, target: ArrayLike, *,
                         weight: ArrayLike | None = None, ignore_index: int | None = IGNORE_INDEX,
                         label_smoothing: float = 0.0, reduction: Reduction = "mean",
                         chunk: int | None = None) -> tuple[Loss, NDArray, NDArray, NDArray]:
    """The fully connected layer and the softmax loss in one call: ``(loss, dx, dW, db)``.

    Parameters
    ----------
    x : array_like
        Features, shape (..., N).
    W : array_like
        Weights, shape (T, N) (as ``torch.nn.functional.linear``).
    b : array_like or None
        Biases, shape (T,); None for none.
    target : array_like
        Class indices of shape x.shape[:-1], or probabilities of shape x.shape[:-1] + (T,).
    weight, ignore_index, label_smoothing, reduction
        As for :func:`cross_entropy`, PyTorch's defaults included.
    chunk : int or None, default None
        Classes per tile (>= 1); None: as many as make :data:`LINEAR_TILE_BYTES` of
        float64 logits for the batch, at least :data:`LINEAR_MIN_TILE`.

    Returns
    -------
    loss : ndarray or NumPy scalar
        :func:`cross_entropy` of the logits a = x W^T + b (classes last).
    dx, dW, db : ndarray
        The gradients of that loss ("none": of the sum of the losses), shaped as x, W
        and b (db (T,) also for b None); all in the promoted floating dtype of x, W, b.

    Raises
    ------
    ValueError, TypeError
        Shapes that do not fit (x (..., N), W (T, N), b (T,), T >= 1), a bad ``chunk``,
        and every error of :func:`cross_entropy`.

    Notes
    -----
    With G = dL/da (S sum_j u_j - u per row, scaled as the options say), the FC
    derivations give dW = G^T x, db = sum over the batch of G and dx = G W. The B x T
    logits are never held whole: two passes over tiles of classes (:mod:`numeric._linear`
    says how, and in what memory). From exact logits the loss and G are within 4 ULP.
    The logits are BLAS's, each within gamma_N sum_n |x_n W_jn| of the exact one
    (gamma_N = N 2^-53 / (1 - N 2^-53)), so the loss is within 1 ULP of float32 plus
    2 gamma_N max_j sum_n |x_n W_jn| per unit of target mass: with float32 inputs, within
    1 ULP of float32 when the dot products do not cancel.

    Examples
    --------
    >>> import numpy as np, numeric
    >>> x, W = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> loss, dx, dW, db = numeric.linear_cross_entropy(x, W, None, np.array([2]))
    >>> loss, db  # logits [1, 2, 3]: -log S_2 and S - e_2
    (np.float64(0.4076059644443803), array([ 0.09003057,  0.24472847, -0.33475904]))
    >>> numeric.linear_cross_entropy(x, W[:, :1], None, np.array([2]))
    Traceback (most recent call last):
    ValueError: x has 2 features but W has 1 columns (x (1, 2), W (3, 1); W is T x N)
    """
    return _linear(x, W, b, target, weight, ignore_index, label_smoothing, reduction, chunk)


def _linear(x, W, b, target, weight, ignore_index, label_smoothing, reduction, chunk, whole=False):
    """:func:`linear_cross_entropy`; with ``whole``, by the row path in one chunk of all
    rows (the whole logits at once: the computation the tiles replace, which
    benchmarks/run.py times against them)."""
    xs, Ws, bs, dtype = _linear_inputs(x, W, b)
    classes, lead = Ws.shape[0], xs.shape[:-1]
    flat = xs.reshape(math.prod(lead), xs.shape[-1])
    rows = flat.shape[0]
    tile = _tile_classes(chunk, classes, rows)
    tgt = _linear_targets(target, lead, classes)
    # the targets and options checked once for the whole batch (errors name batch rows)
    kind, rows_tgt, ignored, weight, eps, reduction = _prepared_targets(
        tgt, (rows, classes), 1, classes, weight, ignore_index, label_smoothing, reduction, widen=False)
    counted, denom = _mean_denominator(kind, rows_tgt, ignored, weight)
    options = (weight, ignore_index, eps)
    if whole:
        out = _linear_row_chunks(flat, Ws, bs, tgt, options, reduction, counted, denom, max(rows, 1))
    else:
        if kind == "index":
            targets = _tiles.IndexTargets(rows_tgt[:, 0], weight, eps, classes)
        else:
            targets = _tiles.SoftTargets(rows_tgt, functools.partial(_soft_tile, eps=eps, classes=classes,
                                                                     weight=weight))
        out = _tiles.linear_tiles(flat, Ws, bs, targets, reduction, counted, denom, tile, dtype,
                                  LINEAR_STAT_TILES)
    if out is None:  # a non-finite logit
        out = _linear_rows(flat, Ws, bs, tgt, options, reduction, counted, denom, dtype)
    losses, dx, dW, db = out
    if reduction == "none":
        loss = _finish(losses.reshape(lead), dtype)
    else:
        total = float(np.sum(losses))
        loss = _scalar(total if reduction == "sum" else (total / denom if denom else np.nan), dtype)
    return loss, _finish(dx.reshape(xs.shape), dtype), _finish(dW, dtype), _finish(db, dtype)


def _tile_classes(chunk, classes, rows):
    """Classes per tile: ``chunk`` validated, or (None) as many as make
    :data:`LINEAR_TILE_BYTES` of float64 logits for ``rows`` rows, at least
    :data:`LINEAR_MIN_TILE`; never more than ``classes`` (nor fewer than 1)."""
    if chunk is None:
        chunk = max(LINEAR_MIN_TILE, LINEAR_TILE_BYTES // (8 * max(rows, 1)))
    elif isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, numbers.Integral):
        raise TypeError(f"chunk must be a positive int (classes per tile) or None; got {chunk!r}")
    elif chunk < 1:
        raise ValueError(f"chunk must be at least 1 class per tile; got {chunk}")
    return max(1, min(int(chunk), classes))


def _linear_targets(target, lead, classes):
    """The targets with the batch axes of x flattened into one (class indices: rows;
    probabilities: rows x T); any other shape is left for the checks to name."""
    tgt = _array(target, "target")
    if tgt.dtype.kind in "iu" and tgt.shape == lead:
        return tgt.reshape(-1)
    if tgt.dtype.kind == "f" and tgt.shape == lead + (classes,):
        return tgt.reshape(-1, classes)
    return tgt


# --------------------------------------------------------------- the row path

def _linear_rows(flat, Ws, bs, tgt, options, reduction, counted, denom, dtype):
    """(per-row losses, dx, dW, db) in chunks of rows holding :data:`LINEAR_CHUNK_BYTES`
    of float64 logits each (at least one row): :func:`cross_entropy_with_grad` of each
    chunk's logits, dW and db accumulated (``fc_batch_grad_W_chunks``)."""
    return _linear_row_chunks(flat, Ws, bs, tgt, options, reduction, counted, denom,
                              max(1, LINEAR_CHUNK_BYTES // (8 * max(Ws.shape[0], 1))))


def _linear_row_chunks(flat, Ws, bs, tgt, options, reduction, counted, denom, chunk):
    """The row path with ``chunk`` rows per chunk (``chunk`` = B: the whole logits at
    once, the computation the tiled path replaces; benchmarks/run.py times it)."""
    Ws = Ws.astype(np.float64, copy=False)
    rows, classes = flat.shape[0], Ws.shape[0]
    losses = np.empty(rows)
    dx = np.empty(flat.shape)
    dW = np.zeros(Ws.shape)
    db = np.zeros(classes)
    # one buffer for every chunk's G^T x, a tile of classes at a time (a new T x N
    # array per chunk cost page faults; a whole T x N one, as much memory as dW)
    tile = max(1, LINEAR_CHUNK_BYTES // (8 * max(Ws.shape[1], 1)))
    product = np.empty((min(tile, classes), Ws.shape[1])) if rows > chunk else None
    for start in range(0, rows, chunk):
        part = slice(start, min(start + chunk, rows))
        losses[part], grad = _chunk_loss_and_gradient(
            flat[part], Ws, bs, tgt[part], options, reduction, denom, counted[part])
        _accumulate_chunk(grad, flat[part], Ws, dW, db, dx[part], product)
    return losses, dx, dW, db


def _chunk_loss_and_gradient(x_part, Ws, bs, tgt_part, options, reduction, denom, counted):
    """(per-row losses, G = dL/d logits in float64) for one chunk of rows: the logits
    x W^T + b and :func:`cross_entropy_with_grad` of them, G scaled for "mean" as the
    whole batch's loss is (by its denominator; NaN in counted rows when it is 0)."""
    weight, ignore_index, eps = options
    logits = x_part @ Ws.T
    logits += bs
    losses, grad = _compute(logits, tgt_part, -1, "both", weight, ignore_index, eps, "none")
    del logits
    grad = np.asarray(grad, dtype=np.float64)
    if reduction == "mean":
        if denom:
            grad /= denom
        else:  # d(0/0): NaN in counted rows, 0 in ignored ones (as unchunked)
            grad[counted > 0] = np.nan
    return losses, grad


def _accumulate_chunk(grad, x_part, Ws, dW, db, dx_part, product):
    """dW += G^T x, db += the column sums of G (``fc_batch_grad_W_chunks``) and the
    chunk's rows of dx = G W. ``product`` is the buffer for G^T x, filled for one
    tile of classes (its rows) at a time (None: the one chunk is the whole batch,
    written into dW directly)."""
    if product is None:
        np.matmul(grad.T, x_part, out=dW)
    else:
        tile = product.shape[0]
        for first in range(0, dW.shape[0], tile):
            last = min(first + tile, dW.shape[0])
            part = product[:last - first]
            np.matmul(grad[:, first:last].T, x_part, out=part)
            dW[first:last] += part
    db += grad.sum(axis=0)
    # (W^T G^T)^T, not G W: for few rows and many classes OpenBLAS takes G W (K = T)
    # several times slower (measured 94 s against 17 s per 4096 rows at T = 50257)
    dx_part[...] = (Ws.T @ grad.T).T
