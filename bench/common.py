"""Timing helpers shared by the benchmarks: repeated runs, median and spread, one row format."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any


def summarize(times: list[float]) -> tuple[float, float, int]:
    """Return (median, spread = (max - min)/2, count) of timed runs [s].

    Raises:
        ValueError: if `times` is empty.
    """
    if not times:
        raise ValueError('times: no timed runs')
    return statistics.median(times), (max(times) - min(times)) / 2, len(times)


def measure(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, number: int = 1,
            budget_s: float | None = None,
            clock: Callable[[], float] = time.perf_counter) -> tuple[float, float, int]:
    """Time ``fn``: ``repeat`` runs of ``number`` calls after ``warmup`` calls.

    Args:
        fn: the work to time.
        repeat: timed runs (at most, with `budget_s`).
        warmup: untimed calls first (first-call costs: imports, code generation, allocator).
        number: calls per timed run (the time is divided by it).
        budget_s: when set, stop repeating once the warm-up and the runs so far took this long
            (at least one timed run is always made); keeps slow rows of ``--quick`` short.
        clock: monotonic clock [s] (a fake one in tests).

    Returns:
        (median seconds per call, spread = (max - min)/2 seconds per call, timed runs made).
    """
    start = clock()
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(repeat):
        t0 = clock()
        for _ in range(number):
            fn()
        t1 = clock()
        times.append((t1 - t0) / number)
        if budget_s is not None and t1 - start >= budget_s:
            break
    return summarize(times)


def measure_interleaved(fns: dict[str, Callable[[], Any]], *, repeat: int = 5, warmup: int = 1,
                        number: int = 1, clock: Callable[[], float] = time.perf_counter
                        ) -> dict[str, tuple[float, float, int]]:
    """Time several functions in alternation (A B, B A, A B, ...) so that they share the same
    machine load: the way to compare two sides on a busy machine.

    Args:
        fns: name -> the work to time.
        repeat: timed runs of each function.
        warmup: untimed calls of each function first.
        number: calls per timed run (the time is divided by it).
        clock: monotonic clock [s] (a fake one in tests).

    Returns:
        name -> (median seconds per call, spread = (max - min)/2, runs), see :func:`summarize`.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for k in range(repeat):
        for name in (names if k % 2 == 0 else names[::-1]):
            fn = fns[name]
            t0 = clock()
            for _ in range(number):
                fn()
            times[name].append((clock() - t0) / number)
    return {name: summarize(t) for name, t in times.items()}


def stop_child(child: Any, timeout: float) -> None:
    """Terminate a benchmark's helper process; kill it if it does not exit within ``timeout`` s."""
    child.terminate()
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()


def row(group: str, name: str, median_s: float, spread_s: float, n: int, notes: str = '',
        **extra: Any) -> dict[str, Any]:
    """Return one result row (the format every ``bench_*.run`` returns)."""
    return {'group': group, 'name': name, 'median_s': median_s, 'spread_s': spread_s, 'n': n,
            'notes': notes, **extra}


def skipped(group: str, name: str, reason: str) -> dict[str, Any]:
    """Return a row recording that a side was not measured, and why."""
    return {'group': group, 'name': name, 'median_s': None, 'spread_s': None, 'n': 0,
            'notes': f'skipped: {reason}'}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; the previous setting is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
