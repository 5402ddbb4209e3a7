"""Backoff: exponential delays from 1 s capped at 60 s, jittered downwards, reset after success."""

from __future__ import annotations

import random

from intake.sources.backoff import Backoff


def test_delays_double_up_to_the_cap_without_jitter():
    """With no jitter the delays are 1, 2, 4 … and never above the maximum."""
    b = Backoff(initial=1, maximum=60, jitter=0)
    assert [b.next() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_jitter_only_shortens_and_stays_within_its_fraction():
    """Jittered delays lie in [base × (1 - jitter), base] and are not all equal."""
    b = Backoff(initial=1, maximum=60, jitter=0.25, rng=random.Random(7))
    bases = [1, 2, 4, 8, 16, 32, 60, 60]
    delays = [b.next() for _ in bases]
    assert all(base * 0.75 <= d <= base for base, d in zip(bases, delays))
    capped = [Backoff(jitter=0.25, rng=random.Random(seed), failures=20).next() for seed in range(5)]
    assert len(set(capped)) > 1


def test_reset_starts_again_from_the_initial_delay():
    """After reset() the next delay is the initial one again."""
    b = Backoff(initial=1, maximum=60, jitter=0)
    for _ in range(5):
        b.next()
    b.reset()
    assert b.failures == 0 and b.next() == 1


def test_many_failures_do_not_overflow():
    """Thousands of failures in a row still give the cap, not an overflow."""
    b = Backoff(initial=1, maximum=60, jitter=0, failures=10_000)
    assert b.next() == 60
