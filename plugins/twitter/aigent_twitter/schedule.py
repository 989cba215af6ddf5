"""The autonomous loop's choices, in the ZerePy manner: a weighted task every ``delay``
seconds, with time-of-day multipliers and jitter. Pure functions of a clock and a random
generator, so tests control time instead of sleeping."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from aigent import Loop

POST = {"post-tweet", "post"}
REPLY = {"reply-to-tweet", "respond-to-mentions", "reply"}
ENGAGE = {"like-tweet", "like", "repost", "retweet", "quote"}


@dataclass
class Scheduler:
    loop: Loop
    rng: random.Random

    def weights(self, now: datetime) -> list[tuple[str, float]]:
        """Task weights at local time ``now``: ZerePy's night multiplier for posting between
        01:00 and 05:00, its day multiplier for engagement between 08:00 and 20:00."""
        out = []
        m = self.loop.time_multipliers
        for task in self.loop.tasks:
            weight = task.weight
            if self.loop.use_time_multipliers:
                if task.name in POST and 1 <= now.hour < 5:
                    weight *= m.get("tweet_night_multiplier", 1.0)
                if (task.name in REPLY or task.name in ENGAGE) and 8 <= now.hour < 20:
                    weight *= m.get("engagement_day_multiplier", 1.0)
            out.append((task.name, weight))
        return out

    def pick(self, now: datetime) -> str | None:
        weights = [(name, w) for name, w in self.weights(now) if w > 0]
        if not weights:
            return None
        names, values = zip(*weights, strict=True)
        return self.rng.choices(names, weights=values)[0]

    def delay(self, failed: bool = False) -> float:
        """Seconds to the next task: ``delay`` ± ``jitter``; a minute after a failure, as
        ZerePy does, but never more than the usual delay."""
        base = min(60.0, self.loop.delay) if failed else self.loop.delay
        spread = base * self.loop.jitter
        return max(1.0, base + self.rng.uniform(-spread, spread))
