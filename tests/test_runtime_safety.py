"""The runtime under fork, interpreter shutdown, re-entry from a signal handler, and
what it keeps allocated between calls (issue 11, defects 1-3)."""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import numeric
from numeric import _blocks

ROOT = Path(__file__).resolve().parent.parent
#: large enough to use the second thread (rows x T >= THREAD_MIN_ELEMENTS, several blocks)
POOLED = (512, 1000)


def _child_pooled_call(queue):
    a = np.random.default_rng(1).normal(size=POOLED)
    queue.put(float(numeric.softmax(a).sum()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_after_a_pooled_call_does_not_hang():
    a = np.random.default_rng(0).normal(size=POOLED)
    assert a.size >= _blocks.THREAD_MIN_ELEMENTS
    numeric.softmax(a)  # the parent has used the two-thread path
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_pooled_call, args=(queue,))
    child.start()
    child.join(timeout=30)
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    assert not hung, "the forked child hung on its next pooled call"
    assert child.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(POOLED[0])


def test_pooled_call_from_an_atexit_handler():
    code = textwrap.dedent(f"""
        import atexit
        import numpy as np
        import numeric

        def at_exit():
            a = np.random.default_rng(0).normal(size={POOLED})
            print(round(float(numeric.softmax(a).sum())))

        numeric.softmax(np.random.default_rng(1).normal(size={POOLED}))
        atexit.register(at_exit)
    """)
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(POOLED[0]), out.stderr


SIGNAL_SCRIPT = """
import signal, sys, time
import numpy as np
import numeric

shape = tuple(int(n) for n in sys.argv[1:3])
rng = np.random.default_rng(2)
outer_in, inner_in = rng.normal(0, 3, size=shape), rng.normal(0, 3, size=shape)
outer_want, inner_want = numeric.softmax(outer_in), numeric.softmax(inner_in)
inner_got = []

busy = []

def handler(signum, frame):
    if busy:  # a signal during the handler itself (a loaded machine): not a nested test
        return
    busy.append(True)
    try:
        inner_got.append(numeric.softmax(inner_in))
    finally:
        busy.pop()

start = time.perf_counter()
numeric.softmax(inner_in)
interval = 3 * (time.perf_counter() - start)  # the handler must leave the main thread time
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, interval, interval)
outer_got = [numeric.softmax(outer_in) for _ in range(200)]
signal.setitimer(signal.ITIMER_REAL, 0)
wrong_outer = sum(not np.array_equal(got, outer_want) for got in outer_got)
wrong_inner = sum(not np.array_equal(got, inner_want) for got in inner_got)
print(len(inner_got), wrong_outer, wrong_inner)
"""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
@pytest.mark.parametrize("shape", [(64, 1000), POOLED])
def test_call_from_a_signal_handler_during_a_call_of_the_same_shape(shape):
    """A handler calls numeric on other logits of the same shape while the main thread
    is inside a call; both results must be exact. (In a subprocess: a deadlock is a
    failure, not a stuck test run.)"""
    try:
        out = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT, *map(str, shape)], check=False,
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("a call from a signal handler deadlocked")
    assert out.returncode == 0, out.stderr
    handled, wrong_outer, wrong_inner = map(int, out.stdout.split())
    assert handled > 5, "the handler did not run often enough to test anything"
    assert (wrong_outer, wrong_inner) == (0, 0)


def test_memory_kept_between_calls_is_bounded():
    """What stays allocated after calls, whatever T was: at most KEEP_BYTES."""
    a = np.random.default_rng(3).normal(size=(2, 10**6)).astype(np.float32)
    c = np.array([0, 1])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        numeric.cross_entropy_with_grad(a, c, reduction="none")
        numeric.softmax(a)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept <= _blocks.KEEP_BYTES, f"{kept / 2**20:.1f} MB stay allocated"
    assert kept <= 1 << 20  # T = 10^6 rows are too wide to be worth keeping at all
