"""Timing helpers shared by the benchmarks: repeated runs, median and spread, one row format."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def measure(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1,
            number: int = 1) -> tuple[float, float, int]:
    """Time ``fn``: ``repeat`` runs of ``number`` calls after ``warmup`` calls.

    Returns:
        (median seconds per call, spread = (max - min)/2 seconds per call, repeat).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times), (max(times) - min(times)) / 2, repeat


def row(group: str, name: str, median_s: float, spread_s: float, n: int, notes: str = '',
        **extra: Any) -> dict[str, Any]:
    """Return one result row (the format every ``bench_*.run`` returns)."""
    return {'group': group, 'name': name, 'median_s': median_s, 'spread_s': spread_s, 'n': n,
            'notes': notes, **extra}


def skipped(group: str, name: str, reason: str) -> dict[str, Any]:
    """Return a row recording that a side was not measured, and why."""
    return {'group': group, 'name': name, 'median_s': None, 'spread_s': None, 'n': 0,
            'notes': f'skipped: {reason}'}
