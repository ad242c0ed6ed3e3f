"""Speed of softmax-derive's numeric functions, as ratios measured in one run.

    python benchmarks/run.py [--quick] [--repeats N] [--no-vocab] [--write]

Three tables, every candidate interleaved with its baselines (each round runs every
candidate once; medians over the rounds):

1. small batches (what people train with in NumPy): time as a multiple of a plain
   six-line NumPy max-shift, beside SciPy and PyTorch (when installed); target <= 1;
2. large shapes: multiples of ``np.copyto`` of the same logits (read + write once, the
   memory floor) and of one ``np.exp`` pass over them (the transcendental work no
   softmax can avoid); target <= 1.5 exp passes at T >= 1000, <= 2.5 at 65536 x 32;
3. vocabulary-sized ``linear_cross_entropy`` (B = 4096 tokens, N = 768, T = 50257,
   float32): time and traced peak memory beyond the inputs and outputs, the default
   (two passes over tiles of classes) against the whole logits at once (the computation
   it replaced); target: <= 10 % of the full float64 logits in memory, <= 1.1x the
   time of the whole logits.

Peak extra memory is traced with tracemalloc (NumPy reports its allocations there) and
shown beyond the size of the outputs.

With --write the table goes to benchmarks/results.md and into README.md between the
benchmark-table markers. Not part of the test suite: this machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numeric  # noqa: E402

SMALL = [(1437, 10), (256, 10), (64, 1000)]
SHAPES = [(4096, 1000), (65536, 32), (512, 32000)]
VOCAB = (4096, 768, 50257)  # tokens, features, classes (GPT-2's vocabulary)
DTYPES = [np.float64, np.float32]
FUNCTIONS = ["cross_entropy_with_grad", "softmax", "log_softmax"]


def _torch():
    # PyTorch's OpenMP threads otherwise spin for a while after each call, on the core
    # the next candidate runs on (measured: every candidate timed after PyTorch slowed
    # by up to 2x on this 2-core machine, PyTorch itself 30-270x the max-shift)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except (ImportError, OSError):
        return None
    torch.set_num_threads(2)

    def fused(a, c):
        t = torch.from_numpy(a).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(t, torch.from_numpy(c), reduction="none")
        loss.sum().backward()
        return loss.detach().numpy(), t.grad.numpy()

    return {"softmax": lambda a: torch.softmax(torch.from_numpy(a), -1).numpy(),
            "log_softmax": lambda a: torch.log_softmax(torch.from_numpy(a), -1).numpy(),
            "cross_entropy_with_grad": fused}


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except (ImportError, OSError):
        return None
    jax.config.update("jax_enable_x64", True)
    loss = lambda a, c: -jnp.take_along_axis(jax.nn.log_softmax(a, -1), c[:, None], -1)[:, 0]  # noqa: E731
    both = jax.jit(lambda a, c: (loss(a, c), jax.grad(lambda x: loss(x, c).sum())(a)))
    soft, logsoft = jax.jit(lambda a: jax.nn.softmax(a, -1)), jax.jit(lambda a: jax.nn.log_softmax(a, -1))
    return {"softmax": lambda a: soft(a).block_until_ready(),
            "log_softmax": lambda a: logsoft(a).block_until_ready(),
            "cross_entropy_with_grad": lambda a, c: [x.block_until_ready() for x in both(a, c)]}


def candidates():
    """The verification's table of implementations (derive.softmax.verify.implementations: the
    generated code, the max-shift, SciPy), plus PyTorch and JAX where installed."""
    from derive.softmax import verify

    table = verify.implementations()
    keep = ("softmax", "log_softmax", "cross_entropy_with_grad")
    found = {"numeric": table["numeric"], "max-shift": table["max-shift"]}
    if "scipy.special" in table:
        found["scipy"] = table["scipy.special"]
    found = {name: {f: impl[f] for f in keep} for name, impl in found.items()}
    for name, make in (("torch", _torch), ("jax", _jax)):
        impl = make()
        if impl is not None:
            found[name] = impl
    return found


def _call(fn, function, a, c):
    return fn(a, c) if function == "cross_entropy_with_grad" else fn(a)


def peak_extra(fn, function, a, c) -> float:
    """Peak traced allocation during one call beyond its outputs, in bytes."""
    _call(fn, function, a, c)
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = _call(fn, function, a, c)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return peak - sum(np.asarray(o).nbytes for o in outs)


def interleaved(calls: dict, repeats: int, size: int) -> dict[str, float]:
    """Median seconds per call of each candidate, the candidates interleaved per round."""
    inner = max(1, int(2e6 // size))  # repeat tiny calls so one timing is >~1 ms
    times = {name: [] for name in calls}
    for call in calls.values():  # warm up
        call()
    for _ in range(repeats):
        for name, call in calls.items():
            tic = time.perf_counter()
            for _ in range(inner):
                call()
            times[name].append((time.perf_counter() - tic) / inner)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def bench(shape, dtype, function, impls, repeats, rng):
    a = rng.normal(0, 3, size=shape).astype(dtype)
    c = rng.integers(0, shape[1], shape[0])
    dst, exp_out = np.empty_like(a), np.empty_like(a)
    calls = {"copy": lambda: np.copyto(dst, a), "exp": lambda: np.exp(a, out=exp_out)}
    for name, impl in impls.items():
        calls[name] = (lambda fn=impl[function]: _call(fn, function, a, c))
    med = interleaved(calls, repeats, a.size)
    mem = {name: peak_extra(impl[function], function, a, c) for name, impl in impls.items()
           if name in ("numeric", "max-shift", "scipy")}
    return med, mem


def max_shift_loss(a, c):
    """The loss alone by the plain max-shift, as a hand-written loop computes it."""
    m = a.max(axis=-1, keepdims=True)
    return (np.log(np.exp(a - m).sum(axis=-1)) + m[:, 0]) - a[np.arange(a.shape[0]), c]


def small_table(impls, repeats, rng) -> list[str]:
    """Fused loss + gradient against the six-line max-shift (and SciPy, PyTorch), and
    the loss alone (``cross_entropy``) against the max-shift's loss alone."""
    others = [n for n in impls if n not in ("numeric", "max-shift")]
    head = (["N x T", "max-shift", "numeric (x max-shift)"] + [f"{n} (x max-shift)" for n in others]
            + ["loss only: max-shift", "numeric.cross_entropy (x max-shift)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    loss_only = {"max-shift loss": max_shift_loss,
                 "numeric loss": lambda a, c: numeric.cross_entropy(a, c, reduction="none")}
    for shape in SMALL:
        a = rng.normal(0, 3, size=shape)
        c = rng.integers(0, shape[1], shape[0])
        calls = {name: (lambda fn=impl["cross_entropy_with_grad"], a=a, c=c: fn(a, c))
                 for name, impl in impls.items()}
        calls.update({name: (lambda fn=fn, a=a, c=c: fn(a, c)) for name, fn in loss_only.items()})
        med = interleaved(calls, repeats, a.size)
        ratio = lambda n, base="max-shift", med=med: med[n] / med[base]  # noqa: E731
        mark = lambda r: f"**{r:.2f}**" if r <= 1.0 else f"{r:.2f}"  # noqa: E731
        cells = [f"{shape[0]} x {shape[1]}", _us(med["max-shift"]),
                 f"{mark(ratio('numeric'))} ({_us(med['numeric'])})"]
        cells += [f"{ratio(n):.2f}" for n in others]
        cells += [_us(med["max-shift loss"]),
                  f"{mark(ratio('numeric loss', 'max-shift loss'))} ({_us(med['numeric loss'])})"]
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def large_table(impls, repeats, rng, functions, dtypes) -> list[str]:
    others = [n for n in impls if n != "numeric"]
    head = (["function", "dtype", "N x T", "copy", "exp pass (x copy)", "numeric (x copy)",
             "numeric (x exp)"] + [f"{n} (x exp)" for n in others]
            + ["numeric extra memory", "max-shift extra memory"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for function in functions:
        for dtype in dtypes:
            for shape in SHAPES:
                med, mem = bench(shape, dtype, function, impls, repeats, rng)
                per_exp = lambda n, med=med: med[n] / med["exp"]  # noqa: E731
                best_other = min(per_exp(n) for n in others)
                mark = "**" if per_exp("numeric") < best_other else ""
                cells = [function, np.dtype(dtype).name, f"{shape[0]} x {shape[1]}", _us(med["copy"]),
                         f"{med['exp'] / med['copy']:.1f}",
                         f"{med['numeric'] / med['copy']:.1f} ({_us(med['numeric'])})",
                         f"{mark}{per_exp('numeric'):.2f}{mark}"]
                cells += [f"{per_exp(n):.2f}" for n in others]
                cells += [_mb(mem.get("numeric")), _mb(mem.get("max-shift"))]
                lines.append("| " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    return lines


def peak_beyond_outputs(call, warm: bool = False) -> int:
    """The peak memory (tracemalloc) of one ``call()`` beyond the arrays it returns
    (``warm``: after a first call, so that one-time allocations are not counted)."""
    if warm:
        call()
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - sum(np.asarray(o).nbytes for o in out)


def vocab_table(repeats, rng) -> list[str]:
    """linear_cross_entropy at language-model size: the default (two passes over tiles of
    classes) against the computation it replaced, the whole logits at once (the row path
    in one chunk of all B rows: numeric._linear._linear(..., whole=True))."""
    from numeric import _linear

    B, N, T = VOCAB
    x = rng.standard_normal((B, N), dtype=np.float32)
    W = (rng.standard_normal((T, N), dtype=np.float32) / np.float32(np.sqrt(N)))
    b = rng.standard_normal(T, dtype=np.float32) * np.float32(0.1)
    target = rng.integers(0, T, B)
    full_logits = B * T * 8  # the float64 logits the whole computation holds
    whole = "whole logits at once (before)"
    calls = {"tiles of classes (default)": lambda: numeric.linear_cross_entropy(x, W, b, target),
             whole: lambda: _linear._linear(x, W, b, target, None, _linear.IGNORE_INDEX, 0.0, "mean", None, whole=True)}
    med = interleaved(calls, repeats, 10 ** 9)
    head = ["B x N x T (float32)", "mode", "time", "time (x whole logits)",
            "peak beyond inputs and outputs", "(% of float64 logits)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, call in calls.items():
        extra = peak_beyond_outputs(call)
        cells = [f"{B} x {N} x {T}", name, f"{med[name]:.2f} s", f"{med[name] / med[whole]:.2f}",
                 _mb(extra), f"{100 * extra / full_logits:.1f} %"]
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load:
        lines.append(f"\nLoad average during the table: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min) "
                     f"on {os.cpu_count()} cores.")
        print(lines[-1].strip(), flush=True)
    return lines


def versions() -> str:
    parts = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for mod in ("scipy", "torch", "jax"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except (ImportError, OSError):
            parts.append(f"{mod} not installed")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores; " + ", ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true",
                        help="float64 fused loss+grad only, 5 repeats, no vocabulary-sized table")
    parser.add_argument("--no-vocab", action="store_true", help="skip the vocabulary-sized table")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results.md and the README table")
    parser.add_argument("--only", choices=("small", "large", "vocab"),
                        help="one table only (for measuring while working; not with --write)")
    args = parser.parse_args(argv)
    impls = candidates()
    rng = np.random.default_rng(0)
    dtypes = [np.float64] if args.quick else DTYPES
    functions = ["cross_entropy_with_grad"] if args.quick else FUNCTIONS
    repeats = 5 if args.quick else args.repeats
    want = {args.only} if args.only else {"small", "large", "vocab"}
    if args.quick or args.no_vocab:
        want.discard("vocab")
    if args.write and want != {"small", "large", "vocab"}:
        parser.error("--write needs every table (no --only, --quick or --no-vocab)")
    parts = []
    if "small" in want:
        parts += ["## Small batches: float64, reduction=\"none\", time as a multiple of the plain "
                  "max-shift's (target <= 1): fused loss + gradient, and the loss alone\n",
                  *small_table(impls, repeats, rng)]
    if "large" in want:
        parts += ["\n## Large shapes: multiples of one np.copyto and of one np.exp pass over the "
                  "same logits (target <= 1.5 exp passes at T >= 1000, <= 2.5 at 65536 x 32)\n",
                  *large_table(impls, repeats, rng, functions, dtypes)]
    if "vocab" in want:
        parts += ["\n## Vocabulary-sized linear cross entropy (loss, dx, dW, db), medians of "
                  f"{max(3, repeats // 5)} rounds\n", *vocab_table(max(3, repeats // 5), rng)]
    table = "\n".join(parts)
    footer = (f"\nMedians of {repeats} interleaved rounds; bold: the target met (small batches) "
              f"or faster than every other candidate (large shapes). Machine: {versions()}.\n")
    if args.write:
        (ROOT / "benchmarks" / "results.md").write_text("# Benchmark results\n\n" + table + "\n" + footer)
        readme = ROOT / "README.md"
        text = readme.read_text()
        start, end = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"
        if start in text and end in text:
            text = text[:text.index(start) + len(start)] + "\n" + table + "\n" + footer + text[text.index(end):]
            readme.write_text(text)
        print("wrote benchmarks/results.md and the README table")
    return 0


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-2 else f"{seconds * 1e3:.1f} ms"


def _mb(value) -> str:
    if value is None:
        return "-"
    return f"{max(value, 0) / 2**20:.1f} MB"


if __name__ == "__main__":
    sys.exit(main())
