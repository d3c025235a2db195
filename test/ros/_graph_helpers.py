"""Helpers of the graph tests: spin an executor until a predicate holds (never sleep-poll)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def spin_until(executor: Any, predicate: Callable[[], bool], timeout: float,
               what: str = 'condition') -> None:
    """Spin ``executor`` (0.05 s slices) until ``predicate()`` is true.

    Raises:
        AssertionError: naming ``what``, when ``timeout`` s of wall time pass first.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'{what}: not reached within {timeout} s')
        executor.spin_once(timeout_sec=0.05)

