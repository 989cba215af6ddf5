"""Live events across a fleet: what happens to an agent on one server reaches the pages and SSE
clients of every server, through PostgreSQL's LISTEN/NOTIFY on the installation's channel.

Each server sends the events published on it (from a thread of its own: the agents never wait
on the database for an event) and listens for the others', which it delivers to its own
subscribers only (never sent on again). An event too large for a notification (PostgreSQL's
limit is 8000 bytes) goes with its data cut to what fits, marked ``truncated``. Events are
live news, not records: one sent while the database is unreachable is dropped, and a server
that reconnects sees what happens from then on (the history, payments and anchors themselves
are in the database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable

from aigent_server.database import PostgresDatabase
from aigent_server.events import Event, EventBus

log = logging.getLogger("aigent.server")

_LIMIT = 7900  # bytes of payload: PostgreSQL refuses 8000 and more
_RETRY = 2.0
_BATCH = 100


class Relay:
    def __init__(
        self,
        bus: EventBus,
        db: PostgresDatabase,
        server: str,
        others: Callable[[], bool] = lambda: True,
    ) -> None:
        self.bus, self.db, self.server = bus, db, server
        self.others = others
        """Whether another server is live to hear: a server alone sends nothing (the message
        path pays nothing for a fleet of one)."""
        self.channel = f"{db.schema}_events"
        self._out: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.bus.relays.append(self._send)
        for target, name in ((self._sender, "send"), (self._listener, "listen")):
            thread = threading.Thread(
                target=target, args=(loop,), name=f"events {name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _send(self, event: Event) -> None:
        if not self.others():
            return
        envelope = {"server": self.server, "kind": event.kind, "agent": event.agent,
                    "owner": event.owner, "data": event.data, "at": event.at}  # fmt: skip
        payload = json.dumps(envelope, default=str)
        if len(payload.encode()) > _LIMIT:
            envelope["data"] = {"truncated": True}
            payload = json.dumps(envelope)
        self._out.put(payload)

    def _sender(self, loop: asyncio.AbstractEventLoop) -> None:
        conn = None
        while (payload := self._out.get()) is not None:
            batch = [payload]  # what queued meanwhile goes in the same round trip
            while len(batch) < _BATCH and not self._out.empty():
                more = self._out.get()
                if more is None:
                    self._out.put(None)
                    break
                batch.append(more)
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self.db.connect()
                conn.execute(
                    "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) WITH ORDINALITY AS t(p, n) "
                    "ORDER BY n",
                    (self.channel, batch),
                )
            except Exception as exc:  # the database is away: live news is dropped, not kept
                log.debug("fleet events: not sent: %s", exc)
                conn = None
        if conn is not None:
            conn.close()

    def _listener(self, loop: asyncio.AbstractEventLoop) -> None:
        from psycopg import sql

        while not self._stop.is_set():
            conn = None
            try:
                conn = self.db.connect()
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                while not self._stop.is_set():  # a second's wait: close() is heard soon
                    for note in conn.notifies(timeout=1.0):
                        self._receive(loop, note.payload)
            except Exception as exc:  # the database is away, or the connection broke
                log.debug("fleet events: not listening: %s", exc)
            finally:
                if conn is not None:
                    conn.close()
            self._stop.wait(_RETRY)

    def _receive(self, loop: asyncio.AbstractEventLoop, payload: str) -> None:
        try:
            envelope = json.loads(payload)
            if envelope["server"] == self.server:
                return  # our own, delivered when published
            args = (envelope["kind"], envelope["agent"], envelope["owner"], envelope["data"])
        except (ValueError, KeyError, TypeError):
            return  # not one of ours: another program on the channel
        loop.call_soon_threadsafe(self.bus.deliver, *args)

    def close(self) -> None:
        self._stop.set()
        if self._send in self.bus.relays:
            self.bus.relays.remove(self._send)
        self._out.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
