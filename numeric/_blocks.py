"""Cache-blocked, two-thread execution of the generated kernels (hand-written; small).

The generated kernels (``_kernels.py``) write into preallocated arrays (``out=``,
``scratch=``). This helper runs them on blocks of rows small enough that a block, its
scratch arrays and its outputs stay in the cache, so the kernel's several NumPy
passes read cache instead of memory; the logits are read from memory once and the
outputs written once. Large calls share their blocks with one helper thread started
for that call (NumPy releases the GIL inside its loops). (A transposed layout for few
classes, classes along axis 0, was tried and measured slower than plain row blocks:
the transposes cost more than the short per-row reductions they save.)

Safety: no thread outlives a call (so ``fork`` in any state after a call, and calls
from ``atexit`` handlers, work; if a thread cannot be started, the call runs on one),
and every block computation takes its scratch arrays for itself while it runs (a call
from a signal handler in the middle of another call gets its own). Between calls at
most ``KEEP_SETS`` sets of scratch arrays of at most ``BLOCK_BYTES`` each are kept:
``KEEP_BYTES`` (32 MB) in all, whatever the shapes were; wider blocks are freed.

Results are bit-for-bit the same for any block size, thread count or batch: every
value depends on its own row only.
"""
from __future__ import annotations

import itertools
import math
import os
import threading

import numpy as np

from . import _kernels as K

#: target bytes of one block-sized array: a kernel keeps ~6 of them live, so a block
#: works in the L3 cache (measured best on this 2-core machine: 2-4 MB; smaller
#: blocks lose more to per-call overhead than they gain from L2)
BLOCK_BYTES = 2 * 1024 * 1024
#: below this many elements, no threads (their start-up costs more than they save)
THREAD_MIN_ELEMENTS = 1 << 17
THREADS = max(1, min(2, os.cpu_count() or 1))
#: most scratch arrays one block computation uses (5 for a kernel, 3 to widen float32)
MAX_SCRATCH = 8
#: scratch sets kept between calls (one per thread), each of at most MAX_SCRATCH
#: arrays of at most BLOCK_BYTES: KEEP_BYTES in all
KEEP_SETS = THREADS
KEEP_BYTES = KEEP_SETS * MAX_SCRATCH * BLOCK_BYTES

#: the logits the generated kernels call moderate (``moderate=True``, the range of
#: derive.codegen.MODERATE): e^a and e^-a are normal for every a in it (e^-a is
#: subnormal past 708.40, and its lost digits cost up to 4.3 ULP), and so are T e^m
#: and e^-m / T for any T below e^100, which the moderate forms' row sums need
MODERATE_LOW, MODERATE_HIGH = -708.0, 600.0

#: scratch sets not in use, as ((count, shape), arrays). Only list.pop and
#: list.append touch it (atomic under the GIL, and safe in a signal handler, which a
#: lock would not be: the handler could wait for its own thread forever).
_free: list = []
#: how many calls are running on each thread (more than one: a signal handler's call)
_calls = threading.local()


def take_scratch(count: int, shape: tuple) -> list[np.ndarray]:
    """``count`` float64 arrays of ``shape`` owned by the caller until given back."""
    try:
        key, arrays = _free.pop()
    except IndexError:
        key, arrays = None, None
    if key != (count, shape):
        arrays = [np.empty(shape) for _ in range(count)]
    return arrays


def give_back(count: int, shape: tuple, arrays: list[np.ndarray]) -> None:
    """Keep ``arrays`` for later calls if they are small and few sets are kept."""
    if count <= MAX_SCRATCH and 8 * math.prod(shape) <= BLOCK_BYTES:
        _free.append(((count, shape), arrays))
        while len(_free) > KEEP_SETS:
            try:
                _free.pop(0)
            except IndexError:
                break


def _in_parallel(work, starts) -> None:
    """``work(begin)`` for every begin, shared between this thread and one helper
    thread started for this call (joined before returning, errors re-raised)."""
    jobs = list(starts)
    counter = itertools.count()  # next() on it is atomic under the GIL
    errors = []

    def worker() -> None:
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                for i in iter(counter.__next__, None):
                    if i >= len(jobs):
                        return
                    work(jobs[i])
        except BaseException as err:  # noqa: BLE001 -- re-raised in the calling thread
            errors.append(err)

    helper = threading.Thread(target=worker, name="numeric", daemon=True)
    try:
        helper.start()
    except RuntimeError:  # no new threads (interpreter shutdown): one thread does it all
        helper = None
    worker()
    if helper is not None:
        helper.join()
    if errors:
        raise errors[0]


def each(work, starts, elements: int) -> None:
    """``work(begin)`` for every begin of ``starts``, on two threads when the call is
    large (``elements`` at least :data:`THREAD_MIN_ELEMENTS`) and has several blocks.

    A call made while another is running on this thread (from a signal handler) runs on
    this thread alone: starting a thread inside Thread.start of the interrupted call
    breaks CPython's threading bookkeeping (KeyError in _limbo, seen in the tests)."""
    depth = getattr(_calls, "depth", 0)
    _calls.depth = depth + 1
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            if depth == 0 and THREADS > 1 and elements >= THREAD_MIN_ELEMENTS and len(starts) > 1:
                _in_parallel(work, starts)
            else:
                for begin in starts:
                    work(begin)
    finally:
        _calls.depth = depth


class _Job:
    """One call of :func:`run`: the kernel, its scratch count, which results are full
    rows, the block size, and whether results are narrowed to another dtype."""

    def __init__(self, kernel, full, dtype, moderate_form, block, classes, narrow):
        self.kernel, self.full, self.dtype, self.moderate_form = kernel, full, dtype, moderate_form
        self.count = K.SCRATCH[kernel.__name__]
        self.block, self.classes, self.narrow = block, classes, narrow

    def compute(self, a_part, extra_parts, out_parts, moderate: bool) -> None:
        """The kernel on some rows; results written into ``out_parts``."""
        n, count, full = a_part.shape[0], self.count, self.full
        need = count + (1 + sum(full) if self.narrow else 0)
        scratch = take_scratch(need, (self.block, self.classes))
        try:  # the scratch is this computation's alone until given back
            if self.narrow:  # widen the block, compute in float64, round each result once
                wide = scratch[count][:n]
                np.copyto(wide, a_part)
                a_part = wide
                spare = iter(scratch[count + 1:])
                targets = [next(spare)[:n] if f else None for f in full]
            else:
                targets = [out if f else None for out, f in zip(out_parts, full)]
            results = self.kernel(a_part, *extra_parts, out=targets, scratch=[s[:n] for s in scratch[:count]],
                                  moderate=moderate and self.moderate_form)
            results = results if isinstance(results, tuple) else (results,)
            for out, res, f in zip(out_parts, results, full):
                if self.narrow or not f:
                    np.copyto(out, res, casting="same_kind")
        finally:
            give_back(need, (self.block, self.classes), scratch)

    def mixed(self, part, extra_parts, out_parts) -> None:
        """A block with a logit outside [MODERATE_LOW, MODERATE_HIGH] (or NaN): the
        TwoSum form, then the rows that are moderate by themselves again in the
        moderate form, so that a row's result never depends on the other rows of its
        block."""
        self.compute(part, extra_parts, out_parts, False)
        with np.errstate(invalid="ignore"):
            calm = np.flatnonzero((part.min(axis=1) >= MODERATE_LOW) & (part.max(axis=1) <= MODERATE_HIGH))
        if calm.size:
            sub_outs = [np.empty((calm.size, out.shape[1]), self.dtype) for out in out_parts]
            self.compute(np.ascontiguousarray(part[calm]), [x[calm] for x in extra_parts], sub_outs, True)
            for out, sub in zip(out_parts, sub_outs):
                out[calm] = sub


def run(kernel, a: np.ndarray, extra: tuple, full: tuple[bool, ...],
        dtype=np.float64, moderate_form: bool = True) -> tuple[list[np.ndarray], bool]:
    """Run ``kernel`` (a function of the generated module) on the rows of ``a`` (C-contiguous, rows x T; float16 and
    float32 blocks are widened to float64 one block at a time) and return results of
    ``dtype``, each rounded once from float64.

    ``extra`` holds the per-row target arrays (C: rows x 1 int64, or Y: rows x T);
    ``full`` says which results have the logits' shape (the others are columns).
    A row whose logits all lie in [MODERATE_LOW, MODERATE_HIGH] = [-708, 600] is
    *moderate*: the kernel may form e^(a - m) as e^a e^-m, or take its moderate form
    (the factor e^-m applied to row-level values); the other rows take the TwoSum form. A block checks its
    smallest and largest logit first, so only mixed blocks look at single rows.

    ``moderate_form`` False keeps every row on the TwoSum form (e^(a - m) to about one
    ULP instead of the 1.5 of e^a e^-m): for the weighted gradient, where a row of
    tied logits shares one rounding of that product in every entry and of the sum
    they make (4.8 ULP of max(S_j sum u, u_j) in the moderate form, 3.8 without).

    Returns the results and whether every logit was moderate (then no row holds a
    NaN or an infinity, and the caller needs no scan of its own for them).
    """
    rows, classes = a.shape
    outs = [np.empty((rows, classes), dtype) if f else np.empty((rows, 1), dtype) for f in full]
    if rows == 0:
        return outs, True
    block = max(1, min(rows, BLOCK_BYTES // (8 * classes)))
    job = _Job(kernel, full, dtype, moderate_form, block, classes,
               narrow=a.dtype != np.float64 or dtype != np.float64)
    immoderate = []  # blocks with a logit outside [MODERATE_LOW, MODERATE_HIGH] (or NaN)

    def work(begin: int) -> None:
        end = min(begin + block, rows)
        part = a[begin:end]
        extra_parts = [x[begin:end] for x in extra]
        out_parts = [out[begin:end] for out in outs]
        if MODERATE_LOW <= part.min() and part.max() <= MODERATE_HIGH:  # all moderate (and no NaN)
            job.compute(part, extra_parts, out_parts, True)
        else:
            immoderate.append(begin)  # (list.append: atomic under the GIL)
            job.mixed(part, extra_parts, out_parts)

    each(work, range(0, rows, block), rows * classes)
    return outs, not immoderate
