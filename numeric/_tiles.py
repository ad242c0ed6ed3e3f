"""The tiles of :func:`numeric.linear_cross_entropy` (hand-written; NumPy only).

The loss and its gradient for logits x W^T + b that are never held whole: two passes
over tiles of classes, each computing the tile's logits (float64, one reused buffer).
Pass 1 keeps per-row statistics of each tile, pass 2 forms the gradient G of the tile
and from it dW's rows, db's entries and dx's share. Targets are class indices (with
weights and label smoothing) or probabilities (read one tile at a time).

With m = max_j a_j at its first index k, the statistics reach the kernels' forms
(``loss_split_true_class``, ``lse_split_classes``):

    Z e^-m = 1 + R,   R = sum_{j != k} e^(a_j - m),   -log S_j = (m - a_j) + log1p(R),
    L = sigma log1p(R) + sum_j u_j (m - a_j),   G_j = rho (S_j sigma - u_j)

with u the (weighted, smoothed) target, sigma = sum_j u_j and rho the reduction's
factor. Each tile keeps its own largest logit m_t and the sum s_t of e^(a_j - m_t) over
its classes *other than its own argmax* (and the target), so that the term that is
exactly 1 never goes through a rounding: R comes out of the tiles as a sum of small
terms and log1p keeps its digits (issue 20: log(R + 1) gave a negative loss).

Exponentials: e^(a - m_t) is e^a e^-m_t (each factor rounded once) for rows whose
logits all lie in [-708, 708] (:data:`TILE_MODERATE`, e^a and e^-m normal); other rows
take e^(a - m) with a - m carried with its rounding error (TwoSum; :func:`numeric._exact.exp_scaled`),
which any finite logits allow. Where a result is a large factor times a number that
would be subnormal (weights up to 1e300 times S_j or R past a gap of 708), the
factor's power of two goes into the exponent (:func:`numeric._exact.exp_scaled`) so that the product
is formed at full precision.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from . import _blocks, _kernels
from ._exact import _two_product, _two_sum_error, _zero_times, exp_scaled, split_power

#: logits in [-TILE_MODERATE, TILE_MODERATE] take e^a e^-m (e^a and e^-m normal)
TILE_MODERATE = 708.0
#: R below this: log1p(R) = R to 2^-970, and a weight > 1 times R is formed as
#: sum_j e^(a_j - m) sigma from the exponents (R itself may be subnormal)
TINY_TAIL = 2.0 ** -969
_NORMAL = np.finfo(np.float64).tiny


# --------------------------------------------------------------------------- targets
class IndexTargets:
    """Class indices c (ignored rows: any class, counted 0), u = w_c (1 - eps) e_c +
    (eps / T) w. ``one_hot`` = w_c (1 - eps) per row."""

    soft = False

    def __init__(self, tgt, weight, eps, classes):
        self.tgt, self.weight, self.eps, self.classes = tgt, weight, eps, classes
        w_c = np.ones(tgt.shape) if weight is None else weight[tgt]
        self.one_hot = w_c * (1.0 - eps)
        self.order = np.argsort(tgt, kind="stable")  # rows by target, for each tile's hits
        self.sorted_tgt = tgt[self.order]
        self.sum_w = float(classes) if weight is None else math.fsum(weight)
        self.sigma = _sigma(w_c, eps, classes, self.sum_w) if eps else self.one_hot

    def hits(self, first, last):
        """(rows whose target is in classes first..last-1 (sorted), their columns)."""
        lo, hi = np.searchsorted(self.sorted_tgt, (first, last))
        hit = np.sort(self.order[lo:hi])
        return hit, self.tgt[hit] - first

    def class_weights(self, first, last):
        return None if self.weight is None else self.weight[first:last]


def _sigma(w_c, eps, classes, sum_w):
    """sum_j u_j = w_c (1 - eps) + (eps / T) sum_w, rounded about once (each product
    carried as a double-double: TwoSum, Dekker's TwoProduct)."""
    keep = 1.0 - eps
    keep_lo = _two_sum_error(1.0, -eps, keep)
    share = eps / classes
    share_lo = (eps - share * classes) / classes  # (approximately: the quotient's rest)
    a_hi, a_lo = _two_product(w_c, keep)
    a_lo = a_lo + w_c * keep_lo
    b_hi, b_lo = _two_product(np.float64(share), np.float64(sum_w))
    b_lo = b_lo + share_lo * sum_w
    hi = a_hi + b_hi
    fine = hi + (_two_sum_error(a_hi, b_hi, hi) + (a_lo + b_lo))
    return np.where(np.isfinite(fine), fine, w_c * keep + share * sum_w)  # (w beyond 2^996: plain)


def product_quotient(a, b, c, c_lo=0.0):
    """a b / (c + c_lo) rounded about once: a b carried as a double-double (Dekker) and
    the quotient corrected by its exact remainder; where that overflows (a b beyond
    2^996) the plain (a b) / c."""
    p, e = _two_product(a, b)
    q = p / c
    qp, qe = _two_product(q, c)
    fine = q + ((((p - qp) - qe) + e) - q * c_lo) / c
    return np.where(np.isfinite(fine), fine, (a * b) / c)


class SoftTargets:
    """Probability targets y (rows x T, any float dtype, validated), read a block of a
    tile at a time: u = ``u_of(y block, first class, last class)`` in float64."""

    soft = True
    eps = 0.0

    def __init__(self, y, u_of):
        self.y, self.u_of = y, u_of

    def block(self, rows, first, last):
        return self.u_of(self.y[rows, first:last], first, last)


# --------------------------------------------------------------------------- pass 1
class _Stats:
    """Per row and kept tile: m_t, s_t (sum over the tile of e^(a_j - m_t) without its
    argmax and the target), h_t (the target is the tile's argmax), p_t (sum_j u_j
    (m_t - a_j), or sum_j w_j (m_t - a_j) for smoothed class indices), sigma_t (soft
    targets: sum_j u_j over the tile); and the rows that need the row path."""

    def __init__(self, rows, keep, spread, soft):
        self.top = np.empty((rows, keep))
        self.tail = np.empty((rows, keep))
        self.hit = np.zeros((rows, keep))
        self.spread = np.empty((rows, keep)) if spread else None
        self.mass = np.empty((rows, keep)) if soft else None
        self.bad = np.zeros(rows, dtype=bool)
        self.immoderate = np.zeros(rows, dtype=bool)  # a logit outside [-708, 708]
        self.weights = np.empty(keep)  # sum of w_j over each kept tile's classes

    def columns(self, count):
        def pick(a):
            return None if a is None else a[:, :count]
        return (pick(self.top), pick(self.tail), pick(self.hit), pick(self.spread), pick(self.mass),
                self.weights[:count])


def combine(top, tail, hit, spread, mass, weights):
    """One virtual tile from several (``lse_split_classes``): m = max_t m_t, t* the first
    tile holding it; s = s_t* + sum_{t != t*} e^(m_t - m) ((1 - h_t) + s_t), h = h_t*
    (each tile's own argmax term, 1 unless it is the target, rescaled with its sum;
    the term 1 of t* is the new argmax's, left out); p moved by (m - m_t) sum_(j in t) u_j."""
    star = np.argmax(top, axis=1)
    rows = np.arange(top.shape[0])
    m = top[rows, star]
    finite_m = np.where(np.isfinite(m), m, 0.0)[:, None]
    factor = np.where(top == finite_m, 1.0, exp_scaled(top, finite_m))
    ones = factor * (1.0 - hit)
    ones[rows, star] = 0.0  # (the new argmax's term, 1)
    parts = np.concatenate([ones, factor * tail], axis=1)
    new_tail = _kernels._accurate_sum(parts)[:, 0]  # (each product rounded once, the sum about once)
    new_hit = hit[rows, star]
    new_spread = None
    if spread is not None:
        moved = (finite_m - top) * (weights if mass is None else mass)
        moved[top == -np.inf] = 0.0  # (an all-masked tile: its spread is the row path's)
        new_spread = np.sum(spread + moved, axis=1)
    new_mass = None if mass is None else _kernels._accurate_sum(mass)[:, 0]
    return m, new_tail, new_hit, new_spread, new_mass


def _moderate_rows(part, top):
    """Rows of the block whose logits all lie in [-TILE_MODERATE, TILE_MODERATE]
    (-inf, a masked class, counts as moderate: e^-inf = 0); NaN is not."""
    low = np.where(part == -np.inf, 0.0, part).min(axis=1)
    return (low >= -TILE_MODERATE) & (top <= TILE_MODERATE)


#: rows whose largest logit is at most this sum e^a first and scale by e^-m_t once
#: (the sum of T terms e^a stays finite, T < e^100)
SUM_FIRST = 600.0


def _tail_sums(part, top, moderate, arg):
    """sum_{j != k_t} e^(a_j - m_t) per row, leaving e^a (or e^(a - m_t)) in ``part``:
    e^-m_t sum_j e^a_j (two exps and one product per term fewer roundings than
    e^a e^-m_t term by term) where the row is moderate and m_t <= SUM_FIRST, the
    product form up to 708, the TwoSum form elsewhere (``moderate``: a row mask, or
    True for all). The target's column is -inf in ``part`` already (its term 0)."""
    rows = np.arange(part.shape[0])
    if moderate is not True:
        slow = ~moderate
        for group in _groups(np.flatnonzero(slow)):
            part[group] = exp_scaled(part[group], top[group, None])
        fast = np.flatnonzero(moderate)
        part[fast] = np.exp(part[fast])
    else:
        np.exp(part, out=part)
        slow = None
    part[rows, arg] = 0.0  # the tile's argmax: its term is 1, kept exactly
    scale = np.exp(-top)
    high = top > SUM_FIRST
    if slow is not None:
        scale[slow] = 1.0
        high &= ~slow
    if high.any():
        part[high] *= scale[high, None]
        scale[high] = 1.0
    # (summed to about one rounding: a plain sum of 22 equal terms was 4 ULP off, and a
    # tiny loss is this sum)
    return _kernels._accurate_sum(part)[:, 0] * scale


def _tile_statistics(ctx, logits, hit, cols, w_tile, col, first):
    """Pass 1 on rows first.. of one tile, into column ``col`` of ``ctx.stats``."""
    stats, targets = ctx.stats, ctx.targets
    last = min(first + ctx.block, logits.shape[0])
    part = logits[first:last]
    n = last - first
    arg = part.argmax(axis=1)
    rows = np.arange(n)
    top = part[rows, arg]
    moderate = True
    if not (part.min() >= -TILE_MODERATE and top.max() <= TILE_MODERATE):  # (NaN fails too)
        # NaN, +inf or a row of only -inf: the row path; -inf with a spread to keep
        # (smoothing, probability targets) too (its terms are 0 * inf)
        bad = ~(top < np.inf) | (top == -np.inf)
        if stats.spread is not None:
            bad |= (part == -np.inf).any(axis=1)
        stats.bad[first:last] |= bad
        moderate = _moderate_rows(part, top)
        if bad.any():
            part[bad] = 0.0
            top = np.where(bad, 0.0, top)
            moderate &= ~bad
        stats.immoderate[first:last] |= ~moderate
        if moderate.all():
            moderate = True
    stats.top[first:last, col] = top
    u = None
    if targets.soft:
        u = targets.block(slice(first, last), ctx.first, ctx.last)
        stats.mass[first:last, col] = _kernels._accurate_sum(u)[:, 0]  # (sigma: ~1 rounding)
    if stats.spread is not None:
        spread = top[:, None] - part
        if u is not None:
            stats.spread[first:last, col] = np.einsum("ij,ij->i", u, spread)
        else:
            stats.spread[first:last, col] = spread.sum(axis=1) if w_tile is None else spread @ w_tile
    if hit is not None:
        rows_in, cols_in = _block_hits(hit, cols, first, last)
        part[rows_in, cols_in] = -np.inf  # the target's term is kept apart (e^-inf = 0)
        stats.hit[first + rows_in, col] = cols_in == arg[rows_in]
    stats.tail[first:last, col] = _tail_sums(part, top, moderate, arg)


def _block_hits(hit, cols, first, last):
    """The hits among rows first..last-1, as (rows within the block, columns)."""
    lo, hi = np.searchsorted(hit, (first, last))
    return hit[lo:hi] - first, cols[lo:hi]


# --------------------------------------------------------------------------- pass 2
#: rows of a block taken at once by the TwoSum form (its temporaries: ~8 arrays of them)
SLOW_GROUP = 32


def _groups(indices):
    """``indices`` in groups of at most SLOW_GROUP."""
    return (indices[i:i + SLOW_GROUP] for i in range(0, len(indices), SLOW_GROUP))


def _tile_gradient(ctx, logits, hit, cols, w_tile, first):
    """Pass 2 on rows first.. of one tile: G = e^a F - rho u with F = e^-m q, q = rho
    sigma / Z' (rows where F is not normal, or not moderate, or whose loss needs R
    times a weight: e^(a - m) 2^E f from the exponent, q = f 2^E); G at the target
    columns as given; the block's column sums into ``ctx.column_sums``."""
    row = ctx.rowwise
    last = min(first + ctx.block, logits.shape[0])
    part = logits[first:last]
    slow = np.flatnonzero(row.slow[first:last])
    if slow.size:
        slow_g = np.empty((slow.size, part.shape[1]))
        for group in _groups(np.arange(slow.size)):
            rows = first + slow[group]
            a, m = part[slow[group]], row.top[rows, None]
            if ctx.tiny_sums is not None:
                tiny = row.tiny[rows]
                if tiny.any():  # sigma R from the exponents: sum_{j != k} e^(a_j - m) 2^E f
                    at, mt = a[tiny], m[tiny]
                    terms = exp_scaled(at, mt, row.sigma_exp[rows[tiny], None])
                    terms[at == mt] = 0.0  # the argmax (unique: R < 1)
                    terms *= row.sigma_frac[rows[tiny], None]
                    ctx.tiny_sums[rows[tiny], ctx.tile_index] = terms.sum(axis=1)
            slow_g[group] = exp_scaled(a, m, row.q_exp[rows, None]) * row.q_frac[rows, None]
    np.exp(part, out=part)
    part *= row.F[first:last, None]
    if slow.size:
        part[slow] = slow_g
    if ctx.targets.soft:
        part -= row.rho[first:last, None] * ctx.targets.block(slice(first, last), ctx.first, ctx.last)
    elif row.smooth is not None:
        part -= row.smooth[first:last, None] * (1.0 if w_tile is None else w_tile)
    if hit is not None:
        rows_in, cols_in = _block_hits(hit, cols, first, last)
        part[rows_in, cols_in] = row.at_target[rows_in + first]
    part.sum(axis=0, out=ctx.column_sums[first // ctx.block, :part.shape[1]])  # db, while in cache


class _Rowwise:
    """The per-row factors of pass 2 (see :func:`_tile_gradient`)."""


def _factors(stats_final, targets, counted, reduction, denom, classes):
    """(per-row losses without the tiny rows' fix, _Rowwise) from the combined statistics."""
    m = stats_final[0]
    row = _Rowwise()
    finite_m = np.where(np.isfinite(m), m, 0.0)
    sigma, tail, other, true_e, losses = _row_losses(stats_final, finite_m, targets, classes)
    total = 1.0 + tail
    # the reduction's factor rho per row, folded into F = e^-m sigma rho / Z' and
    # q = sigma rho / Z' with one rounding each (issue 20: rho, sigma rho, / Z' and
    # e^-m q rounded one by one took the gradient to 4.3 ULP)
    total_lo = _two_sum_error(1.0, tail, total)  # Z' = total + total_lo exactly
    if reduction == "mean":
        rho = counted / denom if denom else np.where(counted > 0, np.nan, 0.0)
        divisor, divisor_lo = _two_product(total, float(denom or 1.0))
        divisor_lo = divisor_lo + total_lo * float(denom or 1.0)
    else:
        rho = counted
        divisor, divisor_lo = total, total_lo
    sigma = np.broadcast_to(sigma, m.shape)
    row.rho = rho
    row.top = m
    q = np.where(rho == 0, 0.0, product_quotient(sigma, np.ones_like(sigma), divisor, divisor_lo))
    row.F = np.where(rho == 0, 0.0, product_quotient(sigma, np.exp(-finite_m), divisor, divisor_lo))
    nothing = np.isnan(rho)  # a mean over nothing: NaN in the rows that count
    q[nothing] = row.F[nothing] = np.nan
    moderate = (finite_m >= -TILE_MODERATE) & (finite_m <= TILE_MODERATE) & ~targets.immoderate
    normal = (row.F >= _NORMAL) & (row.F < np.inf)
    row.slow = ~(moderate & (normal | (q == 0))) & ~np.isnan(q)
    row.q_frac, row.q_exp = split_power(q)
    row.tiny = (tail < TINY_TAIL) & (sigma > 1.0)
    row.slow |= row.tiny
    row.sigma_frac, row.sigma_exp = split_power(np.broadcast_to(sigma, m.shape).astype(np.float64))
    row.smooth = None
    if not targets.soft:
        row.smooth = rho * (targets.eps / classes) if targets.eps else None
        row.at_target = _at_target(targets, stats_final[2], other, true_e, total, sigma, (divisor, divisor_lo),
                                   rho, reduction, denom, classes)
    return losses, row


def _row_losses(stats_final, finite_m, targets, classes):
    """(sigma, R, sum_{j != c} e^(a_j - m) (None for soft targets), e^(a_c - m)
    (None), per-row losses) from the combined statistics."""
    m, rest, h, spread, mass = stats_final
    if targets.soft:
        sigma = mass
        tail = rest  # R: no target apart
        other = true_e = None
    else:
        sigma = targets.sigma
        a_c = targets.target_logit
        # e^(a_c - m) to an ULP (item 4: subtracting first cost 353 ULP at the target)
        true_e = np.where(a_c == m, 1.0, exp_scaled(a_c, finite_m))
        tail = rest + (1.0 - h) * true_e  # R = Z e^-m - 1: the target's term unless it is the argmax
        other = rest + (1.0 - h)  # sum_{j != c} e^(a_j - m)
    log_z = np.log1p(tail)
    if targets.soft:
        losses = _zero_times(sigma, log_z) + spread
    else:
        gap = np.where(h > 0, 0.0, m - targets.target_logit)  # m - a_c (exactly 0 at the argmax)
        losses = _zero_times(sigma, log_z) + _zero_times(targets.one_hot, gap)
        if targets.eps:
            losses = losses + (targets.eps / classes) * spread
    return sigma, tail, other, true_e, losses


def _at_target(targets, h, other, true_e, total, sigma, divisor_pair, rho, reduction, denom, classes):
    """G at each row's target class (class indices), rounded about once."""
    divisor, divisor_lo = divisor_pair
    smooth = rho * (targets.eps / classes) if targets.eps else None
    w_c = np.ones(h.shape) if targets.weight is None else targets.weight[targets.tgt]
    at_target = np.empty(h.shape)
    top = h > 0
    # the target the argmax: S_c - 1 = -sum_{j != c} e^(a_j - m) / Z'
    # (``true_class_complement_shifted``) times rho w_c (1 - eps), rounded once
    at_target[top] = -product_quotient(targets.one_hot[top], other[top], divisor[top], divisor_lo[top])
    if targets.eps:
        at_target[top] += smooth[top] * ((true_e[top] / total[top]) * targets.sum_w - w_c[top])
    # any other target: S_c <= 1/2, and S_c sigma rho - u_c rho cancels at most by half
    low = ~top
    u_c = _sigma(w_c[low], targets.eps, classes, w_c[low]) if targets.eps else w_c[low]
    at_target[low] = (product_quotient(true_e[low], sigma[low], divisor[low], divisor_lo[low])
                      - u_c / (float(denom) if reduction == "mean" and denom else 1.0))
    at_target[rho == 0] = 0.0
    at_target[np.isnan(rho)] = np.nan
    return at_target


# --------------------------------------------------------------------------- the passes
class _Call:
    """One call's tiles: the logits of a tile (float64, one reused buffer), its W rows
    widened to float64 (another)."""

    def __init__(self, flat, Ws, bs, tile):
        self.flat, self.Ws, self.bs, self.tile = np.ascontiguousarray(flat), Ws, bs, tile
        rows, features = flat.shape
        width = min(tile, Ws.shape[0])
        self.width = width
        self.logits_buf = np.empty(rows * width)
        self.w_buf = None if Ws.dtype == np.float64 else np.empty(width * features)
        self.starts = range(0, Ws.shape[0], tile)
        self.block = max(1, _blocks.BLOCK_BYTES // (8 * width))  # rows per cache block

    def logits(self, first):
        """(last class + 1, W_t in float64, the tile's logits)."""
        rows, features = self.flat.shape
        last = min(first + self.tile, self.Ws.shape[0])
        width = last - first
        if self.w_buf is None:  # float64 already: W's own rows
            w_tile = self.Ws[first:last]
        else:
            w_tile = self.w_buf[:width * features].reshape(width, features)
            np.copyto(w_tile, self.Ws[first:last])
        logits = self.logits_buf[:rows * width].reshape(rows, width)
        np.matmul(self.flat, w_tile.T, out=logits)
        logits += self.bs[first:last]
        return last, w_tile, logits


def linear_tiles(flat, Ws, bs, targets, reduction, counted, denom, tile, dtype, stat_tiles):
    """(per-row losses, dx in float64, dW in ``dtype``, db in float64), or None when a
    logit is NaN or +inf, a row is all -inf, or -inf meets a spread (smoothing,
    probability targets): the row path then takes the call."""
    rows, features = flat.shape
    call = _Call(flat, Ws, bs, tile)
    dx = np.zeros((rows, features))
    product = np.empty((rows, features))
    db = np.empty(Ws.shape[0])
    dW = np.empty(Ws.shape, dtype)
    wide = np.empty(call.width * features) if dtype != np.float64 else None

    def sink(first, last, grad, w_tile64, column_sums):
        """dW's rows, db's entries and dx's share of the tile's G."""
        if wide is None:
            np.matmul(grad.T, call.flat, out=dW[first:last])
        else:  # computed in float64, rounded once
            part = wide[:(last - first) * features].reshape(last - first, features)
            np.matmul(grad.T, call.flat, out=part)
            dW[first:last] = part
        db[first:last] = column_sums.sum(axis=0)
        np.matmul(grad, w_tile64, out=product)
        np.add(dx, product, out=dx)

    losses = _passes(call, targets, reduction, counted, denom, stat_tiles, sink)
    return None if losses is None else (losses, dx, dW, db)


class _Rows:
    """The logits given as rows (rows x T, float64; one tile of all classes): the
    tiles' arithmetic for :func:`rows_with_grad`."""

    def __init__(self, logits):
        self.source = logits
        rows, classes = logits.shape
        self.width = classes
        self.buf = np.empty((rows, classes))
        self.starts = range(0, max(classes, 1), max(classes, 1))
        self.block = max(1, _blocks.BLOCK_BYTES // (8 * max(classes, 1)))

    def logits(self, first):
        np.copyto(self.buf, self.source)
        return self.source.shape[1], None, self.buf


def rows_with_grad(logits, targets, reduction, counted, denom):
    """(per-row losses, G) of finite logits given as rows, by the tiles' forms (for rows
    whose results the generated kernels round past the contract: a weight above 1
    times a subnormal S_j or log1p(s')); None if a row is not finite."""
    call = _Rows(logits)
    grad = np.empty(logits.shape)

    def sink(first, last, tile_grad, w_tile64, column_sums):
        grad[:, first:last] = tile_grad

    losses = _passes(call, targets, reduction, counted, denom, 1, sink)
    return None if losses is None else (losses, grad)


def _passes(call, targets, reduction, counted, denom, stat_tiles, sink):
    """The two passes over ``call``'s tiles: per-row losses (0 where not counted),
    each tile's G handed to ``sink(first, last, G, W_tile, column sums)``."""
    rows = call.buf.shape[0] if isinstance(call, _Rows) else call.flat.shape[0]
    classes = call.source.shape[1] if isinstance(call, _Rows) else call.Ws.shape[0]
    keep = min(len(call.starts), stat_tiles)
    stats = _Stats(rows, keep, targets.soft or bool(targets.eps), targets.soft)
    ctx = _Context(call.block, stats, targets)
    if not targets.soft:
        targets.target_logit = np.empty(rows)
    col = _first_pass(call, ctx, keep, rows)
    if stats.bad.any():
        return None
    final = combine(*stats.columns(col))
    targets.immoderate = stats.immoderate
    losses, rowwise = _factors(final, targets, counted, reduction, denom, classes)
    del stats
    ctx.rowwise = rowwise
    ctx.tiny_sums = np.zeros((rows, len(call.starts))) if rowwise.tiny.any() else None
    ctx.column_sums = np.empty((-(-rows // call.block), call.width))
    _second_pass(call, ctx, rows, sink)
    if ctx.tiny_sums is not None:
        _tiny_losses(losses, ctx.tiny_sums, rowwise.tiny, final, targets, classes)
    return _zero_times(counted, losses)


def _first_pass(call, ctx, keep, rows):
    """Pass 1: per-row statistics, a tile at a time, into ``ctx.stats``; the kept
    columns combined into the first one whenever all ``keep`` are full. Returns the
    number of columns in use."""
    stats, targets = ctx.stats, ctx.targets
    col = 0
    for first in call.starts:
        if col == keep:
            _merge_kept(stats, col)
            col = 1
        last, _, logits = call.logits(first)
        stats.hit[:, col] = 0.0
        hit = cols = None
        if not targets.soft:
            hit, cols = targets.hits(first, last)
            targets.target_logit[hit] = logits[hit, cols]
        w_tile = None if targets.soft else targets.class_weights(first, last)
        stats.weights[col] = (last - first) if w_tile is None else w_tile.sum()
        ctx.first, ctx.last = first, last
        _blocks.each(functools.partial(_tile_statistics, ctx, logits, hit, cols, w_tile, col),
                     range(0, rows, call.block), logits.size)
        col += 1
    return col


def _merge_kept(stats, col):
    """The first ``col`` columns of ``stats`` combined into column 0 (:func:`combine`)."""
    merged = combine(*stats.columns(col))
    stats.top[:, 0], stats.tail[:, 0], stats.hit[:, 0] = merged[:3]
    if stats.spread is not None:
        stats.spread[:, 0] = merged[3]
    if stats.mass is not None:
        stats.mass[:, 0] = merged[4]
    stats.weights[0] = stats.weights[:col].sum()


def _second_pass(call, ctx, rows, sink):
    """Pass 2: each tile's G (:func:`_tile_gradient`), then ``sink`` makes dW, db, dx."""
    targets = ctx.targets
    for ctx.tile_index, first in enumerate(call.starts):
        last, w_tile64, logits = call.logits(first)
        hit = cols = None
        if not targets.soft:
            hit, cols = targets.hits(first, last)
        w_tile = None if targets.soft else targets.class_weights(first, last)
        ctx.first, ctx.last = first, last
        _blocks.each(functools.partial(_tile_gradient, ctx, logits, hit, cols, w_tile),
                     range(0, rows, call.block), logits.size)
        sink(first, last, logits, w_tile64, ctx.column_sums[:, :last - first])


def _tiny_losses(losses, tiny_sums, tiny_rows, final, targets, classes):
    """The losses of the rows where R is tiny and sigma > 1: sigma log1p(R) = sigma R
    there, formed from the exponents in pass 2 (``tiny_sums``), plus the rest of
    the loss as :func:`_factors` forms it."""
    tiny = np.flatnonzero(tiny_rows)
    fixed = tiny_sums[tiny].sum(axis=1)
    if targets.soft:
        rest = final[3][tiny]
    else:
        gap = np.where(final[2][tiny] > 0, 0.0, final[0][tiny] - targets.target_logit[tiny])
        rest = _zero_times(targets.one_hot[tiny], gap)
        if targets.eps:
            rest = rest + (targets.eps / classes) * final[3][tiny]
    losses[tiny] = fixed + rest


class _Context:
    """What the blocks of one pass share."""

    def __init__(self, block, stats, targets):
        self.block, self.stats, self.targets = block, stats, targets
        self.first = self.last = 0
        self.tile_index = 0
        self.rowwise = self.tiny_sums = self.column_sums = None
