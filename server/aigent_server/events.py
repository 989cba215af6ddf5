"""Live events: what happens to the hosted agents, for the explorer and any SSE client.

Each subscriber gets its own bounded queue; a subscriber too slow to keep up loses its oldest
events rather than slowing the agents down. The last events are kept so that a page opened
after the fact still shows what just happened.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aigent.observe import KINDS as OBSERVED

KINDS = (
    "message.in",
    "message.out",
    "agent.state",
    "agent.error",
    "confirmation.pending",
    "confirmation.resolved",
    *OBSERVED,  # what agents tell their observers: payments, paid messages, settlements, anchors
    "plugin.event",  # a plugin's own observation kind, named in ``event``
    "token",
)


@dataclass
class Event:
    id: int
    kind: str
    agent: str
    owner: str
    data: dict[str, Any]
    at: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        # The envelope last: no data key can stand in for the id a client resumes from.
        return {**self.data, "id": self.id, "kind": self.kind, "agent": self.agent, "at": self.at}


Filter = Callable[[Event], bool]


class EventBus:
    def __init__(self, keep: int = 500, queue_size: int = 1000) -> None:
        self._ids = itertools.count(1)
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size
        self.relays: list[Callable[[Event], None]] = []
        """Told every event published here (a fleet passes them to its other servers)."""

    def publish(self, kind: str, agent: str, owner: str, /, **data: Any) -> Event:
        event = self.deliver(kind, agent, owner, data)
        for relay in self.relays:
            relay(event)
        return event

    def deliver(self, kind: str, agent: str, owner: str, data: dict[str, Any]) -> Event:
        """An event to this server's subscribers only (one another server published)."""
        event = Event(next(self._ids), kind, agent, owner, data)
        self._recent.append(event)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # the slow reader loses its oldest event, not the agents' time
            queue.put_nowait(event)
        return event

    def recent(self, accept: Filter) -> list[Event]:
        return [e for e in self._recent if accept(e)]

    @contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[Event]]:
        """A queue of every event published while the block runs (filter when reading)."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
