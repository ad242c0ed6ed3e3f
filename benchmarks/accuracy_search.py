"""An accuracy search over the fast paths and every option (issue 20).

Each path of cross entropy -- the small direct path, the general (blocked) path, the
tiles of ``linear_cross_entropy`` (class indices and probability targets) -- is fed
adversarial rows (weights up to 1e300, gaps past 708, smoothing 0 ... 1, losses far
below 1e-16, near ties, a target whose own mass is 0) and compared with mpmath at 60
digits from the exact inputs. ``linear_cross_entropy`` is run with W = I, b = 0, so its
logits are x exactly and dx = G W is the gradient G exactly.

Errors are ULPs of float64 with an absolute floor at the smallest normal number: the
loss per row against max(|L|, tiny); the gradient per entry against |G_j| for plain
class-index targets (each component) and against max(S_j sum u, u_j) (times the
reduction's factor) with weights, smoothing or probability targets (the contract).

    python benchmarks/accuracy_search.py [--rows N] [--seed S]

prints the worst loss and gradient ULPs per path and option set; exits 1 if any
exceeds 4.
"""
from __future__ import annotations

import argparse
import sys

import mpmath
import numpy as np

import numeric
from numeric import _cross_entropy

TINY = np.finfo(np.float64).tiny
BOUND = 4.0


def ulps(got, exact, scale):
    """|got - exact| in ULPs of max(|scale|, tiny) (exact, scale: mpf)."""
    unit = mpmath.mpf(np.spacing(max(float(abs(scale)), TINY)))
    return float(abs(mpmath.mpf(float(got)) - exact) / unit)


def reference(logits, target, weight, eps, ignore_index, reduction):
    """Exact per-row losses, the reduced loss, G, and the scale of each G entry."""
    rows, classes = logits.shape
    with mpmath.workdps(60):
        w = [mpmath.mpf(1)] * classes if weight is None else [mpmath.mpf(float(v)) for v in weight]
        losses, u_rows, s_rows, counted = [], [], [], []
        for r in range(rows):
            a = [mpmath.mpf(float(v)) for v in logits[r]]
            k = int(np.argmax(logits[r]))
            top = a[k]
            # Z e^-m = 1 + tail: log1p(tail) and 1 / (1 + tail) keep every digit where
            # the tail is far below 10^-60 (a plain sum would round it away)
            tail = mpmath.fsum(mpmath.exp(v - top) for j, v in enumerate(a) if j != k)
            log1p_tail = mpmath.log1p(tail)
            if target.ndim == 1:
                c = int(target[r])
                ignored = ignore_index is not None and c == ignore_index
                y = [mpmath.mpf(int(j == c)) for j in range(classes)]
            else:
                ignored = False
                y = [mpmath.mpf(float(v)) for v in target[r]]
            u = [w[j] * ((1 - mpmath.mpf(eps)) * y[j] + mpmath.mpf(eps) / classes) for j in range(classes)]
            if target.ndim == 1 and eps == 0:
                u = [w[c] * y[j] for j in range(classes)] if not ignored else u
            counted.append(0 if ignored else 1)
            s = [mpmath.exp(v - top) / (1 + tail) for v in a]
            losses.append(0 if ignored else
                          mpmath.fsum(u[j] * ((top - a[j]) + log1p_tail) for j in range(classes) if u[j]))
            u_rows.append(u)
            s_rows.append((s, k, tail))
        if target.ndim == 1:
            denom = mpmath.fsum(counted[r] * (w[int(target[r])] if counted[r] else 0) for r in range(rows)) \
                if weight is not None else mpmath.mpf(sum(counted))
        else:
            denom = mpmath.mpf(rows)
        if reduction == "mean" and not denom:
            return None  # a mean over nothing: NaN (tests/test_options.py)
        rho = (1 / denom) if reduction == "mean" else mpmath.mpf(1)
        grads, scales = [], []
        for r in range(rows):
            u, (s, k, tail) = u_rows[r], s_rows[r]
            su = mpmath.fsum(u)
            # at the argmax, S_k sum u - u_k = ((sum u - u_k) - u_k tail) / (1 + tail): no
            # cancellation at 60 digits where S_k ~ 1
            g = [counted[r] * rho * ((mpmath.fsum(u[i] for i in range(classes) if i != k) - u[k] * tail)
                                     / (1 + tail) if j == k else s[j] * su - u[j]) for j in range(classes)]
            if target.ndim == 1 and weight is None and eps == 0:
                sc = [abs(v) for v in g]
            else:
                sc = [counted[r] * rho * max(s[j] * su, u[j]) for j in range(classes)]
            grads.append(g)
            scales.append(sc)
        total = mpmath.fsum(losses)
        reduced = total if reduction == "sum" else total * rho
        return losses, reduced, grads, scales


def worst(loss, grad, exact, reduction):
    losses, reduced, grads, scales = exact
    if reduction == "none":
        lw = max(ulps(loss[r], losses[r], losses[r]) for r in range(len(losses)))
    else:
        lw = ulps(loss, reduced, reduced)
    gw = max(ulps(grad[r, j], grads[r][j], scales[r][j])
             for r in range(grad.shape[0]) for j in range(grad.shape[1]))
    return lw, gw


def direct(logits, target, options):
    return numeric.cross_entropy_with_grad(logits, target, **options)


def general(logits, target, options):
    small = _cross_entropy.SMALL_ELEMENTS
    _cross_entropy.SMALL_ELEMENTS = 0
    try:
        return numeric.cross_entropy_with_grad(logits, target, **options)
    finally:
        _cross_entropy.SMALL_ELEMENTS = small


def tiles(chunk):
    def run(logits, target, options):
        classes = logits.shape[1]
        loss, dx, _, _ = numeric.linear_cross_entropy(logits, np.eye(classes), None, target, chunk=chunk,
                                                      **options)
        return loss, dx
    return run


PATHS = {"direct": direct, "general": general, "tiles (chunk 3)": tiles(3), "tiles (one tile)": tiles(None)}


def adversarial_rows(rng, rows, classes):
    """Rows of logits in [-708, 708] that stress each rounding: gaps past 708, near
    ties and exact ties, one dominant class (tiny losses), spreads over hundreds."""
    out = np.empty((rows, classes))
    for r in range(rows):
        kind = r % 7
        if kind == 0:  # dominant class, gaps 30 .. 1400
            row = rng.uniform(-708, 708 - rng.uniform(30, 1400), classes)
            row[rng.integers(classes)] = 708 - rng.uniform(0, 5)
        elif kind == 1:  # near ties
            row = rng.normal(0, 1e-3, classes) + rng.uniform(-700, 700)
        elif kind == 2:  # spread over the whole range
            row = rng.uniform(-708, 708, classes)
        elif kind == 3:  # ordinary
            row = rng.normal(0, 4, classes)
        elif kind == 4:  # gaps just past 708 from a low maximum
            row = np.full(classes, -708.0) + rng.uniform(0, 2, classes)
            row[rng.integers(classes)] = rng.uniform(0.5, 8)
        elif kind == 5:  # two blocks far apart
            row = np.where(rng.random(classes) < 0.5, rng.uniform(-708, -600, classes),
                           rng.uniform(40, 60, classes))
        else:  # exact ties (clipped or padded classes)
            row = np.clip(rng.uniform(-708, 708, classes), -300, rng.uniform(-300, 300))
        out[r] = row
    return out


def option_sets(rng, classes):
    heavy = 10.0 ** rng.uniform(-3, 300, classes)
    yield "plain", {}
    yield "weight 1e300", {"weight": heavy}
    yield "weight 100", {"weight": np.full(classes, 100.0)}
    yield "weight with zeros", {"weight": np.where(rng.random(classes) < 0.3, 0.0, heavy)}
    for eps in (1e-6, 0.1, 0.5, 1.0):
        yield f"smoothing {eps}", {"label_smoothing": eps}
        yield f"smoothing {eps} + weight", {"label_smoothing": eps, "weight": heavy}
    yield "ignore_index", {"ignore_index": 1}
    for reduction in ("none", "sum"):
        yield f"reduction {reduction}", {"reduction": reduction}
        yield f"reduction {reduction} + weight", {"reduction": reduction, "weight": heavy}


def inputs(rows, classes, seed):
    """(logits, class indices, probabilities, [(name, options)]) of one search."""
    rng = np.random.default_rng(seed)
    logits = adversarial_rows(rng, rows, classes)
    index = rng.integers(0, classes, rows)
    index[::4] = logits[::4].argmax(axis=1)  # the target the largest logit: tiny losses
    probs = rng.dirichlet(np.full(classes, 0.3), rows)
    probs[1] = np.eye(classes)[index[1]]
    return logits, index, probs, list(option_sets(rng, classes))


def search(rows=24, classes=7, seed=0, paths=PATHS, soft=True):
    logits, index, probs, options_list = inputs(rows, classes, seed)
    results = {}
    for name, options in options_list:
        targets = [("index", index)]
        if soft and "ignore_index" not in options:
            targets.append(("probabilities", probs))
        for kind, target in targets:
            red = options.get("reduction", "mean")
            exact = reference(logits, target, options.get("weight"), options.get("label_smoothing", 0.0),
                              options.get("ignore_index", -100), red)
            if exact is None:
                continue
            for path, run in paths.items():
                if path == "direct" and (kind != "index" or set(options) - {"reduction"}):
                    continue  # (the direct path takes plain calls only: the rest is the general path's)
                with np.errstate(all="raise"):
                    loss, grad = run(logits, target, options)
                key = (path, kind)
                lw, gw = worst(loss, grad, exact, red)
                prev = results.get(key, (0.0, "", 0.0, ""))
                results[key] = (max(prev[0], lw), name if lw >= prev[0] else prev[1],
                                max(prev[2], gw), name if gw >= prev[2] else prev[3])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    total = {}
    for seed in range(args.seeds):
        for classes in (2, 7, 19):
            for key, (lw, ln, gw, gn) in search(args.rows, classes, seed).items():
                prev = total.get(key, (0.0, "", 0.0, ""))
                total[key] = (max(prev[0], lw), ln if lw >= prev[0] else prev[1],
                              max(prev[2], gw), gn if gw >= prev[2] else prev[3])
    bad = False
    print(f"{'path':<18} {'targets':<14} {'loss ULP':>9}  {'(worst options)':<28} {'grad ULP':>9}  (worst options)")
    for (path, kind), (lw, ln, gw, gn) in sorted(total.items()):
        print(f"{path:<18} {kind:<14} {lw:9.2f}  {ln:<28} {gw:9.2f}  {gn}")
        bad |= lw > BOUND or gw > BOUND
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
