"""Where the stages' independent work runs: a :class:`concurrent.futures.Executor`.

The stages submit their independent pieces (one derivation, one row of reference
values) to an executor and read the results back in order, so the output is the same
whichever executor ran them: the standard library's process pool by default
(:func:`local`), a Dask distributed cluster's executor with ``--scheduler ADDRESS``
(:func:`dask`, the ``[dask]`` extra), or none at all (``jobs=1``: in this process).

Examples
--------
>>> from derive.executors import in_order
>>> list(in_order(None, abs, [-1, 2, -3]))
[1, 2, 3]
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor


def default_jobs() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def local(jobs: int | None = None) -> Executor | None:
    """A process pool of ``jobs`` workers (default: every core), or None for one job.

    Spawned, not forked: the parent may hold threads, and a forked child of a threaded
    process can deadlock."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    if jobs <= 1:
        return None
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


class SchedulerError(RuntimeError):
    """``--scheduler`` could not be used (Dask missing, or no scheduler at the address)."""


def dask(address: str) -> Executor:
    """The executor of a Dask distributed client connected to ``address`` (a scheduler's
    ``tcp://host:port``, or a :class:`distributed.LocalCluster`)."""
    try:
        from distributed import Client
    except ImportError as err:
        raise SchedulerError("--scheduler needs Dask: pip install 'softmax-derive[dask]'") from err
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise SchedulerError(f"--scheduler {address}: no Dask scheduler answered ({err})") from err
    return client.get_executor()


def make(jobs: int | None = None, scheduler: str | None = None) -> Executor | None:
    """The executor the command line asked for: Dask at ``scheduler``, else :func:`local`."""
    return dask(scheduler) if scheduler else local(jobs)


def workers(executor: Executor | None) -> str:
    """How the work runs, for a log line."""
    if executor is None:
        return "1 process"
    count = getattr(executor, "_max_workers", None)
    return f"{count} processes" if count else type(executor).__name__


def in_order(executor: Executor | None, function: Callable, items: Iterable) -> Iterator:
    """Yield ``function(item)`` for every item, in order, each as soon as it and every
    earlier one are done: computed by ``executor``, or here when it is None or there is
    only one item. ``function`` and the items must pickle (a module-level function)."""
    items = list(items)
    if executor is None or len(items) <= 1:
        for item in items:
            yield function(item)
        return
    futures = [executor.submit(function, item) for item in items]
    for future in futures:
        yield future.result()


class Progress:
    """``progress(done, total)``: a rewritten line on a terminal, a plain line every
    few seconds elsewhere (so that a log never shows a long silent stretch)."""

    def __init__(self, what: str, out=sys.stderr, every: float = 5.0):
        self.what, self.out, self.every = what, out, every
        self.start = self.last = time.perf_counter()
        self.tty = out is not None and hasattr(out, "isatty") and out.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.out is None:
            return
        now = time.perf_counter()
        if self.tty:
            end = "\n" if done == total else ""
            print(f"\r  {self.what} {done}/{total} ({now - self.start:.0f}s)", end=end,
                  file=self.out, flush=True)
        elif now - self.last >= self.every or done == total:
            print(f"  {self.what} {done}/{total} ({now - self.start:.0f}s)", file=self.out, flush=True)
            self.last = now


def cache_dir():
    """Where reference values are kept between runs (the command lines and the tests
    share them): ``$SOFTMAX_DERIVE_CACHE``, or ``~/.cache/softmax-derive``;
    ``SOFTMAX_DERIVE_CACHE=off`` keeps none. Entries are keyed by a hash of the inputs
    and of the reference code, so a changed definition never reads a stale value."""
    from pathlib import Path

    setting = os.environ.get("SOFTMAX_DERIVE_CACHE", "")
    if setting.lower() in ("off", "0", "no", "none"):
        return None
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    base = Path(setting) if setting else cache_home / "softmax-derive"
    return base / "reference"


def shown_path(path) -> str:
    """A path for a log line: relative to the current directory when inside it (as the
    user gave ``--out``), else absolute."""
    from pathlib import Path

    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
