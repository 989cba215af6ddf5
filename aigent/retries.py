"""When to try a call to a remote service again, and how long to wait first: one rule for
every model plugin (and any plugin calling an HTTP API)."""

from __future__ import annotations

import email.utils
import random
import time

MAX_DELAY = 30.0
_RETRY_STATUSES = frozenset({408, 409, 429})


def retryable(status: int) -> bool:
    """Timeouts at the server, conflicts, rate limits and every 5xx are worth another try."""
    return status in _RETRY_STATUSES or status >= 500


def delay(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before retry ``attempt + 1``: the server's ``Retry-After`` when it sent
    one, else exponential backoff with jitter; never more than :data:`MAX_DELAY`."""
    wait = parse_retry_after(retry_after)
    if wait is None:
        wait = min(MAX_DELAY, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
    return min(wait, MAX_DELAY)


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds, whether it holds a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
