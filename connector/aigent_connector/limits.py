"""Per-account token buckets: packets per second (T05 when exceeded) and amount per second
(T04, throughput), as the reference connector's rate-limit and throughput middlewares."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # refill per second
    capacity: float
    clock: Callable[[], float] = time.monotonic
    _level: float = field(default=-1.0, init=False)
    _at: float = field(default=0.0, init=False)

    def take(self, amount: float = 1.0) -> bool:
        now = self.clock()
        if self._level < 0:
            self._level, self._at = self.capacity, now
        self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
        self._at = now
        if amount > self._level:
            return False
        self._level -= amount
        return True
