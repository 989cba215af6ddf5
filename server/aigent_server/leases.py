"""Several ``aigent serve`` processes on one PostgreSQL share the agents: each agent runs on
exactly one server at a time, the one that holds its lease.

A lease is a row (agent, server, expires_at) that its server renews every third of a lease
period; any server may take one whose time has run out. All times are the database's clock, so
the servers' clocks do not matter. A lease table rather than advisory locks, because a session
lock ends the moment the database sees the connection drop, while the server that lost it may
still be running the agent: another server would start it at once and it would run twice. A
lease lapses at a known time instead, and its holder, counting from when it last asked (before
the database stamped the renewal), stops the agent a third of a period before that: a server
that cannot reach the database stops its agents rather than running them twice. The table is
also what the API shows: which server runs which agent.

Servers split the agents: each takes free agents up to its share (the agents that should run
over the live servers, rounded up) and gives back what it holds above it, so a server that
joins gets work and a dead one's agents are taken by the others once their leases lapse.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigent import blocking
from aigent_server.database import DatabaseError, PostgresDatabase
from aigent_server.registry import Entry

if TYPE_CHECKING:
    from aigent_server.fleet import Fleet

log = logging.getLogger("aigent.server")

LEASE_SECONDS = 15.0
RETRY_FAILED = 30.0
"""Seconds before a server again takes an agent that failed to start on it."""
_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"


@dataclass
class Server:
    """One ``aigent serve`` of the installation, as its heartbeats tell."""

    id: str
    name: str
    pid: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    agents: int
    healthy: bool
    url: str | None = None

    def public(self, me: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "pid": self.pid,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "stopped_at": self.stopped_at,
            "agents": self.agents,
            "healthy": self.healthy,
            "url": self.url,
            "this": self.id == me,
        }


@dataclass
class _Round:
    """What one round with the database found."""

    now: float
    held: set[str]
    taken: set[str]
    entries: list[Entry]
    contents: dict[str, str]
    """Agent name -> its character file's text, as the server that registered it read it."""
    runners: dict[str, str]
    """Agent name -> the name of the server that holds its lease."""
    servers: list[Server]
    share: int


class Leases:
    def __init__(
        self,
        fleet: Fleet,
        db: PostgresDatabase,
        name: str | None = None,
        seconds: float = LEASE_SECONDS,
        url: str | None = None,
    ) -> None:
        self.fleet, self.db, self.seconds, self.url = fleet, db, seconds, url
        self.id = uuid.uuid4().hex[:12]
        self.name = name or f"{socket.gethostname()}/{os.getpid()}"
        self.held: set[str] = set()
        """The agents whose lease this server holds (as of its last good round)."""
        self.runners: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        """Server name -> the URL it is reached at (live servers that said one)."""
        self.servers: list[Server] = []
        self.valid_until = 0.0
        """Monotonic time by which this server's agents must be stopped, short of a renewal."""
        self.lost: str | None = None
        """Why the database cannot be reached, while it cannot."""
        self.followers: list[Callable[[], Awaitable[None]]] = []
        """Called after each good round: what else follows the shared database (sign-ins)."""
        self._failed: dict[str, float] = {}
        self._took: dict[str, float] = {}
        """Agents taken by :meth:`take` (a user's start), when: a round already on its way
        when one was taken does not know it yet."""
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- what the API shows ---------------------------------------------------------------------

    def runner(self, agent: str) -> str | None:
        """The name of the server that runs ``agent`` (None: none holds its lease)."""
        return self.name if agent in self.held else self.runners.get(agent)

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Renew, take and give back leases every third of a period, until cancelled."""
        while True:
            try:
                await self.round()
            except Exception:  # a bug here must not end the renewals: say so, go on
                log.exception("fleet: a lease round failed")
                if time.monotonic() >= self.valid_until and self._running():
                    await self._stop_all()
            await asyncio.sleep(self.seconds / 3)

    async def round(self) -> None:
        asked = time.monotonic()
        try:
            found = await asyncio.wait_for(
                blocking.run("leases", self.db.transaction, self._exchange),
                timeout=max(0.1, self.valid_until - time.monotonic()) if self.held else None,
            )
        except (DatabaseError, TimeoutError) as exc:
            reason = str(exc) or "no answer in time"
            if self.lost is None:
                log.error("fleet: the database cannot be reached: %s", reason)
            self.lost = reason
            if time.monotonic() >= self.valid_until and self.held | self._running():
                await self._stop_all()
            return
        if self.lost is not None:
            log.warning("fleet: the database is back")
            self.lost = None
        # The database stamped the renewal after we asked: the lease lasts at least this long.
        self.valid_until = asked + self.seconds * 2 / 3
        await self._apply(found, asked)
        for follow in self.followers:
            try:
                await follow()
            except DatabaseError as exc:  # the next round tries again
                log.warning("fleet: %s", exc)

    def _running(self) -> set[str]:
        return {n for n, h in self.fleet.hosted.items() if h.agent is not None}

    def _exchange(self, execute: Callable[..., list[tuple[Any, ...]]]) -> _Round:
        """One transaction: the heartbeat, renewals, taking free agents up to this server's
        share, and what the API shows (the agents, who runs each, the servers)."""
        now = float(execute(_NOW)[0][0])
        until = now + self.seconds
        execute(
            "INSERT INTO servers (id, name, pid, started_at, heartbeat_at, url) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            (self.id, self.name, os.getpid(), now, now, self.url),
        )
        # Servers silent for a day are history: their rows would only grow the list.
        execute("DELETE FROM servers WHERE heartbeat_at < ?", (now - 86400,))
        held = {
            r[0]
            for r in execute(
                "UPDATE leases SET expires_at = ? WHERE server = ? AND expires_at >= ? "
                "RETURNING agent",
                (until, self.id, now),
            )
        }
        rows = execute(
            "SELECT name, owner, source, uploaded, desired, created_at, content FROM agents "
            "ORDER BY name"
        )
        entries = [Entry(r[0], r[1], Path(r[2]), bool(r[3]), r[4], r[5]) for r in rows]
        contents = {r[0]: r[6] for r in rows if r[6] is not None}
        live = execute(
            "SELECT count(*) FROM servers WHERE stopped_at IS NULL AND heartbeat_at >= ?",
            (now - self.seconds,),
        )[0][0]
        wanted = [e.name for e in entries if e.desired == "running"]
        share = math.ceil(len(wanted) / max(1, int(live)))
        taken: set[str] = set()
        room = share - len(held & set(wanted))
        if room > 0:
            free = [
                r[0]
                for r in execute(
                    "SELECT a.name FROM agents a LEFT JOIN leases l ON l.agent = a.name "
                    "WHERE a.desired = 'running' AND (l.agent IS NULL OR l.expires_at < ?) "
                    "ORDER BY a.name",
                    (now,),
                )
                if self._failed.get(r[0], 0.0) < time.monotonic()
            ]
            for agent in free[:room]:
                taken |= {r[0] for r in execute(_TAKE, (agent, self.id, now, until, now))}
        runners = {
            r[0]: r[1]
            for r in execute(
                "SELECT l.agent, s.name FROM leases l JOIN servers s ON s.id = l.server "
                "WHERE l.expires_at >= ?",
                (now,),
            )
        }
        servers = [
            Server(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]),
                   r[5] is None and r[4] >= now - self.seconds, r[7])
            for r in execute(
                "SELECT s.id, s.name, s.pid, s.started_at, s.heartbeat_at, s.stopped_at, "
                "(SELECT count(*) FROM leases l WHERE l.server = s.id AND l.expires_at >= ?), "
                "s.url FROM servers s WHERE s.stopped_at IS NULL OR s.stopped_at >= ? "
                "ORDER BY s.started_at",
                (now, now - 3600),
            )
        ]  # fmt: skip
        return _Round(now, held, taken, entries, contents, runners, servers, share)

    async def _apply(self, found: _Round, asked: float) -> None:
        fleet = self.fleet
        self._took = {n: at for n, at in self._took.items() if at >= asked}
        self.held = found.held | found.taken | set(self._took)
        self.runners, self.servers = found.runners, found.servers
        self.urls = {s.name: s.url for s in found.servers if s.healthy and s.url}
        await asyncio.to_thread(self._local_files, found)
        await fleet.follow(found.entries)
        wanted = {e.name for e in found.entries if e.desired == "running"}
        # Above its share (a server joined), stopped by its owner, or no longer ours: give back.
        extra = sorted(self.held & wanted, reverse=True)[: max(0, len(self.held & wanted) -
                                                             found.share)]  # fmt: skip
        for name in (self.held - wanted) | set(extra):
            self._spawn(self._give_back(name))
        for name in self._running() - self.held:
            hosted = fleet.hosted.get(name)
            if hosted is not None:
                log.warning("fleet: %s: its lease is no longer this server's; stopping it", name)
                self._spawn(fleet.stop(hosted, remember=False))
        for name in self.held & wanted:
            hosted = fleet.hosted.get(name)
            if name not in extra and hosted is not None and hosted.state in ("stopped",):
                self._spawn(self._start(name))

    def _local_files(self, found: _Round) -> None:
        """An agent whose file this server lacks (uploaded to another, or a file given only to
        another) is run from the text the registry keeps, written under this data directory."""
        from aigent_server.fleet import slug

        for entry in found.entries:
            content = found.contents.get(entry.name)
            if content is None or entry.source.exists():
                continue
            local = self.fleet.data_dir / "shared" / slug(entry.name) / entry.source.name
            if not local.exists() or local.read_text(encoding="utf-8") != content:
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(content, encoding="utf-8")
            entry.source = local

    async def _start(self, name: str) -> None:
        hosted = self.fleet.hosted.get(name)
        if hosted is None:
            return
        await self.fleet.start(hosted, remember=False)
        if hosted.state == "failed":  # let another server try, and this one later
            self._failed[name] = time.monotonic() + RETRY_FAILED
            await self._release(name)

    async def _give_back(self, name: str) -> None:
        hosted = self.fleet.hosted.get(name)
        if hosted is not None:
            await self.fleet.stop(hosted, remember=False)
        await self._release(name)

    async def _release(self, name: str) -> None:
        self.held.discard(name)
        try:
            await blocking.run(
                "leases", self.db.execute,
                "DELETE FROM leases WHERE agent = ? AND server = ?", (name, self.id),
            )  # fmt: skip
        except DatabaseError as exc:  # it lapses by itself
            log.warning("fleet: %s: lease not given back: %s", name, exc)

    async def _stop_all(self) -> None:
        log.error("fleet: no lease renewal in time: stopping this server's agents so that no "
                  "other server runs them twice")  # fmt: skip
        self.held.clear()
        fleet = self.fleet
        await asyncio.gather(
            *(fleet.stop(fleet.hosted[n], remember=False) for n in self._running())
        )

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- asked by the fleet -----------------------------------------------------------------

    async def take(self, name: str) -> bool:
        """Whether this server may run ``name`` now: it holds the lease or just took it."""
        if name in self.held:
            return True

        def take(execute: Callable[..., list[tuple[Any, ...]]]) -> bool:
            now = float(execute(_NOW)[0][0])
            return bool(execute(_TAKE, (name, self.id, now, now + self.seconds, now)))

        try:
            if await blocking.run("leases", self.db.transaction, take):
                self.held.add(name)
                self._took[name] = time.monotonic()
                return True
        except DatabaseError as exc:
            log.warning("fleet: %s: cannot take its lease: %s", name, exc)
        return False

    async def close(self) -> None:
        """At shutdown (the agents already stopped): give the leases back and say so, so the
        other servers take the agents at once rather than after a lease period."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

        def leave(execute: Callable[..., list[tuple[Any, ...]]]) -> None:
            execute("DELETE FROM leases WHERE server = ?", (self.id,))
            execute(f"UPDATE servers SET stopped_at = ({_NOW}) WHERE id = ?", (self.id,))

        try:
            await blocking.run("leases", self.db.transaction, leave)
        except DatabaseError as exc:
            log.warning("fleet: leases not given back at shutdown: %s", exc)
        self.held.clear()


_TAKE = (
    "INSERT INTO leases (agent, server, taken_at, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (agent) DO UPDATE SET server = excluded.server, taken_at = excluded.taken_at, "
    "expires_at = excluded.expires_at WHERE leases.expires_at < ? RETURNING agent"
)
