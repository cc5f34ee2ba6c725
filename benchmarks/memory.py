"""Peak memory of a piece of work, for the benchmarks: RSS sampled every millisecond by a thread
(the process's lifetime peak, ru_maxrss, can predate the work: imports and code generation
allocate and free memory too). Run it in a child process so earlier work does not count."""

from __future__ import annotations

import resource
import threading
import time
from typing import Any, Callable


def rss_mib() -> float:
    """The process's resident set size now (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_above_start(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``work()``; returns its result, its peak RSS above the level before it (MiB), and its
    wall time (s)."""
    before = rss_mib()
    peak, done = [before], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.001)

    thread = threading.Thread(target=sample)
    thread.start()
    t0 = time.perf_counter()
    try:
        result = work()
    finally:
        seconds = time.perf_counter() - t0
        done.set()
        thread.join()
    return result, max(peak[0], rss_mib()) - before, seconds
