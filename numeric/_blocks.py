"""Cache-blocked, two-thread execution of the generated kernels (hand-written; small).

The generated kernels (``_kernels.py``) write into preallocated arrays (``out=``,
``scratch=``). This helper runs them on blocks of rows small enough that a block, its
scratch arrays and its outputs stay in the L2 cache, so the kernel's several NumPy
passes read cache instead of memory; the logits are read from memory once and the
outputs written once. Blocks are shared between two threads (NumPy releases the GIL
inside its loops). (A transposed layout for few classes, classes along axis 0, was
tried and measured slower than plain row blocks: the transposes cost more than the
short per-row reductions they save.)

Results are bit-for-bit the same for any block size, thread count or batch: every
value depends on its own row only.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _kernels as K

#: target bytes of one block-sized array: a kernel keeps ~6 of them live, so a block
#: works in the L3 cache (measured best on this 2-core machine: 2-4 MB; smaller
#: blocks lose more to per-call overhead than they gain from L2)
BLOCK_BYTES = 2 * 1024 * 1024
#: below this many elements, no threads (their start-up costs more than they save)
THREAD_MIN_ELEMENTS = 1 << 17
THREADS = max(1, min(2, os.cpu_count() or 1))

_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="numeric")
        return _pool


def _workspace(count: int, shape: tuple) -> list[np.ndarray]:
    """Per-thread scratch arrays, reused across calls."""
    cache = getattr(_local, "arrays", None)
    if cache is None or cache[0] != (count, shape):
        cache = ((count, shape), [np.empty(shape) for _ in range(count)])
        _local.arrays = cache
    return cache[1]


def run(name: str, a: np.ndarray, extra: tuple, full: tuple[bool, ...],
        dtype=np.float64) -> list[np.ndarray]:
    """Run kernel ``name`` on the rows of ``a`` (C-contiguous, rows x T; float16 and
    float32 blocks are widened to float64 one block at a time) and return results of
    ``dtype``, each rounded once from float64.

    ``extra`` holds the per-row target arrays (C: rows x 1 int64, or Y: rows x T);
    ``full`` says which results have the logits' shape (the others are columns).
    A row whose logits all lie in [-708, 709] is *moderate*: the kernel may form
    e^(a - m) as e^a e^-m; the other rows take the TwoSum form. A block checks its
    smallest and largest logit first, so only mixed blocks look at single rows.
    """
    rows, classes = a.shape
    outs = [np.empty((rows, classes), dtype) if f else np.empty((rows, 1), dtype) for f in full]
    narrow = a.dtype != np.float64 or dtype != np.float64
    if rows == 0:
        return outs
    kernel = getattr(K, name)
    count = K.SCRATCH[name]
    block = max(1, min(rows, BLOCK_BYTES // (8 * classes)))
    starts = range(0, rows, block)

    def compute(a_part, extra_parts, out_parts, moderate: bool) -> None:
        """The kernel on some rows; results written into ``out_parts``."""
        n = a_part.shape[0]
        scratch = _workspace(count + (1 + sum(full) if narrow else 0), (block, classes))
        if narrow:  # widen the block, compute in float64, round each result once
            wide = scratch[count][:n]
            np.copyto(wide, a_part)
            a_part = wide
            spare = iter(scratch[count + 1:])
            targets = [next(spare)[:n] if f else None for f in full]
        else:
            targets = [out if f else None for out, f in zip(out_parts, full)]
        results = kernel(a_part, *extra_parts, out=targets, scratch=[s[:n] for s in scratch[:count]],
                         moderate=moderate)
        results = results if isinstance(results, tuple) else (results,)
        for out, res, f in zip(out_parts, results, full):
            if narrow or not f:
                np.copyto(out, res, casting="same_kind")

    def work(begin: int) -> None:
        end = min(begin + block, rows)
        part = a[begin:end]
        extra_parts = [x[begin:end] for x in extra]
        out_parts = [out[begin:end] for out in outs]
        if -708.0 <= part.min() and part.max() <= 709.0:  # all moderate (and no NaN)
            compute(part, extra_parts, out_parts, True)
            return
        compute(part, extra_parts, out_parts, False)
        # rows that are moderate by themselves get the moderate form too, so that a
        # row's result never depends on the other rows of its block
        with np.errstate(invalid="ignore"):
            calm = np.flatnonzero((part.min(axis=1) >= -708.0) & (part.max(axis=1) <= 709.0))
        if calm.size:
            sub_outs = [np.empty((calm.size, out.shape[1]), dtype) for out in outs]
            compute(np.ascontiguousarray(part[calm]), [x[calm] for x in extra_parts], sub_outs, True)
            for out, sub in zip(out_parts, sub_outs):
                out[calm] = sub

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if THREADS > 1 and rows * classes >= THREAD_MIN_ELEMENTS and len(starts) > 1:
            list(_executor().map(_with_errstate, [work] * len(starts), starts))
        else:
            for begin in starts:
                work(begin)
    return outs


def _with_errstate(work, begin):
    # errstate is thread-local: set it in the worker too
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        work(begin)
