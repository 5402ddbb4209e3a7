"""How fast this shared machine is at the moment, for the benchmarks to print beside
their figures."""

from __future__ import annotations

import time


def machine_speed_ms() -> float:
    """CPU milliseconds of a fixed pure-Python loop: this shared machine's speed drifts
    by up to two times within an hour, so each run says how fast it was at the time."""
    started, total = time.process_time(), 0
    for i in range(2_000_000):
        total += i * i % 7
    return (time.process_time() - started) * 1000
