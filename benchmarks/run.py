"""Speed of softmax-derive's numeric functions against the memory-bandwidth floor.

    python benchmarks/run.py [--quick] [--repeats N] [--write]

Every time is reported as a ratio to ``np.copyto`` of the same logits measured in the
same run (read + write once: what any function that reads the logits and writes a
result of the same size must at least pay), beside the same work done with
scipy.special, a plain NumPy max-shift, and PyTorch / JAX when they are installed.
Candidates are interleaved, each round runs every candidate once, and the table shows
medians over the rounds. Peak extra memory is traced with tracemalloc (NumPy reports
its allocations there) and shown beyond the size of the outputs.

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

SHAPES = [(256, 10), (4096, 1000), (65536, 32), (512, 32000)]
DTYPES = [np.float64, np.float32]
FUNCTIONS = ["cross_entropy_with_grad", "softmax", "log_softmax"]


def _maxshift():
    def softmax(a):
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        return e

    def log_softmax(a):
        d = a - a.max(axis=-1, keepdims=True)
        return d - np.log(np.exp(d).sum(axis=-1, keepdims=True))

    def fused(a, c):
        m = a.max(axis=-1, keepdims=True)
        e = np.exp(a - m)
        s = e.sum(axis=-1, keepdims=True)
        rows = np.arange(a.shape[0])
        loss = (np.log(s) + m)[:, 0] - a[rows, c]
        e /= s
        e[rows, c] -= 1
        return loss, e

    return {"softmax": softmax, "log_softmax": log_softmax, "cross_entropy_with_grad": fused}


def _scipy():
    try:
        from scipy import special
    except ImportError:
        return None

    def fused(a, c):
        rows = np.arange(a.shape[0])
        logp = special.log_softmax(a, axis=-1)
        grad = np.exp(logp)
        grad[rows, c] -= 1
        return -logp[rows, c], grad

    return {"softmax": lambda a: special.softmax(a, axis=-1),
            "log_softmax": lambda a: special.log_softmax(a, axis=-1),
            "cross_entropy_with_grad": fused}


def _torch():
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
    found = {"numeric": {"softmax": numeric.softmax, "log_softmax": numeric.log_softmax,
                         "cross_entropy_with_grad": numeric.cross_entropy_with_grad},
             "max-shift": _maxshift()}
    for name, make in (("scipy", _scipy), ("torch", _torch), ("jax", _jax)):
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


def bench(shape, dtype, function, impls, repeats, rng):
    a = rng.normal(0, 3, size=shape).astype(dtype)
    c = rng.integers(0, shape[1], shape[0])
    dst = np.empty_like(a)
    names = ["copy"] + list(impls)
    calls = {"copy": lambda: np.copyto(dst, a)}
    for name, impl in impls.items():
        calls[name] = (lambda fn=impl[function]: _call(fn, function, a, c))
    inner = max(1, int(2e6 // a.size))  # repeat tiny calls so one timing is >~1 ms
    times = {name: [] for name in names}
    for name in names:  # warm up
        calls[name]()
    for _ in range(repeats):
        for name in names:  # interleaved
            tic = time.perf_counter()
            for _ in range(inner):
                calls[name]()
            times[name].append((time.perf_counter() - tic) / inner)
    med = {name: float(np.median(ts)) for name, ts in times.items()}
    mem = {name: peak_extra(impl[function], function, a, c) for name, impl in impls.items()
           if name in ("numeric", "max-shift", "scipy")}
    return med, mem


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
    parser.add_argument("--quick", action="store_true", help="float64 fused loss+grad only, 5 repeats")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results.md and the README table")
    args = parser.parse_args(argv)
    impls = candidates()
    others = [n for n in impls if n != "numeric"]
    rng = np.random.default_rng(0)
    dtypes = [np.float64] if args.quick else DTYPES
    functions = ["cross_entropy_with_grad"] if args.quick else FUNCTIONS
    repeats = 5 if args.quick else args.repeats
    head = (["function", "dtype", "N x T", "copy", "numeric (x copy)"] + [f"{n} (x copy)" for n in others]
            + ["numeric extra memory", "max-shift extra memory"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for function in functions:
        for dtype in dtypes:
            for shape in SHAPES:
                med, mem = bench(shape, dtype, function, impls, repeats, rng)
                ratio = lambda n: med[n] / med["copy"]  # noqa: E731
                best_other = min(ratio(n) for n in others)
                ours = ratio("numeric")
                mark = "**" if ours < best_other else ""
                cells = [function, np.dtype(dtype).name, f"{shape[0]} x {shape[1]}",
                         _us(med["copy"]), f"{mark}{ours:.1f}{mark} ({_us(med['numeric'])})"]
                cells += [f"{ratio(n):.1f}" for n in others]
                cells += [_mb(mem.get("numeric")), _mb(mem.get("max-shift"))]
                lines.append("| " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    footer = (f"\nMedians of {repeats} interleaved rounds; bold: faster than every other candidate. "
              f"Machine: {versions()}.\n")
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
