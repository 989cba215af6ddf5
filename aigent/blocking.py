"""Blocking work, off the event loop, in small dedicated thread pools.

The event loop carries every agent, connector and client in the process, so an fsync, a
network round trip to a database or a chain, or a long scan must never run on it. Each kind
of work gets its own bounded pool, so one kind that hangs (a chain send that waits 120 s for a
receipt) cannot take the threads another kind needs (the spending record's commit), as it can
in asyncio's one default executor.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

SIZES = {"records": 2, "actions": 8}
"""Workers per pool: ``records`` for durable local writes (spending, earnings), ``actions``
for synchronous action functions. Plugins name their own pools (e.g. ``"trn-send"``)."""

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def pool(name: str, workers: int | None = None) -> ThreadPoolExecutor:
    """The process's pool called ``name`` (made on first use with ``workers`` threads)."""
    with _lock:
        found = _pools.get(name)
        if found is None:
            size = workers or SIZES.get(name, 2)
            found = _pools[name] = ThreadPoolExecutor(size, thread_name_prefix=f"aigent-{name}")
        return found


async def run(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in pool ``name``; awaiting it can be cancelled, the call itself
    finishes in its thread (so work that must not be abandoned records its own outcome)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool(name), functools.partial(fn, *args, **kwargs))
