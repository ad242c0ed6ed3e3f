"""Memory and time of linear_cross_entropy at the README's size, one case per fresh process.

    python benchmarks/linear_memory.py CASE [--B 4096 --N 768 --T 50257] [--repeats 3]

CASE is one of ``index`` (class-index targets, the tiles), ``beyond708`` (the same with
one bias of 750: the TwoSum form on the tiles), ``soft`` (float32 probability targets,
the tiles), ``whole`` (the whole float64 logits at once: the row path in one chunk, the
computation the tiles replace). Prints the peak traced allocation beyond the inputs and
outputs (tracemalloc, measured on a call after a warm-up call in this process) in MB
and as a share of the float64 logits, and the median time of ``--repeats`` calls.
Inputs are float32, as in the README's table.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from run import peak_beyond_outputs  # benchmarks/run.py, beside this script

import numeric
from numeric import _linear


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=("index", "beyond708", "soft", "whole"))
    parser.add_argument("--B", type=int, default=4096)
    parser.add_argument("--N", type=int, default=768)
    parser.add_argument("--T", type=int, default=50257)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    B, N, T = args.B, args.N, args.T
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, N), dtype=np.float32)
    W = rng.standard_normal((T, N), dtype=np.float32) / np.float32(np.sqrt(N))
    b = rng.standard_normal(T, dtype=np.float32) * np.float32(0.1)
    target = rng.integers(0, T, B)
    if args.case == "beyond708":
        b[11] = 750.0
    if args.case == "soft":
        target = np.zeros((B, T), dtype=np.float32)
        target[np.arange(B), rng.integers(0, T, B)] = 0.9
        target += np.float32(0.1 / T)
    if args.case == "whole":
        def call():
            return _linear._linear(x, W, b, target, None, _linear.IGNORE_INDEX, 0.0, "mean", None, whole=True)
    else:
        def call():
            return numeric.linear_cross_entropy(x, W, b, target)
    times = []
    for _ in range(args.repeats):
        tic = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - tic)
        del out
    extra = peak_beyond_outputs(call)
    logits = B * T * 8
    print(f"{args.case}: B={B} N={N} T={T} peak beyond inputs and outputs {extra / 2 ** 20:.0f} MB "
          f"({100 * extra / logits:.1f} % of the {logits / 2 ** 20:.0f} MB float64 logits); "
          + (f"median {np.median(times):.2f} s of {args.repeats} ({', '.join(f'{t:.2f}' for t in times)}); "
             if times else "")
          + f"load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
