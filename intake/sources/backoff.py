"""Exponential backoff with jitter, for sources that reconnect after an error."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of initial, 2×initial, 4×initial … capped at `maximum`, each shortened
    by up to `jitter` (a fraction) so that many sources do not reconnect in step."""

    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random, repr=False)
    failures: int = 0

    def next(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        base = min(self.maximum, self.initial * 2 ** min(self.failures, 32))
        self.failures += 1
        return base * (1 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """After a success: the next failure waits `initial` again."""
        self.failures = 0
