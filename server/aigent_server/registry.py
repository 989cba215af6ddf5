"""The server's registry, in its database (SQLite under its data directory, or PostgreSQL: see
aigent_server.database): which agents it hosts, who owns each, the state each should be in,
and the conversations it saw. It survives a restart: an
agent that was running is started again, one that was stopped stays stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigent import blocking
from aigent_server.database import Database, SqliteDatabase

log = logging.getLogger("aigent.server")

WRITE_DELAY = 0.05
"""Seconds a message waits in the queue for others to share its write."""

OPERATOR = "operator"
"""The owner of agents loaded from files on the command line, and of the API token."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    source TEXT NOT NULL,
    uploaded INTEGER NOT NULL,
    desired TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent TEXT NOT NULL,
    room TEXT NOT NULL,
    "user" TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    at REAL NOT NULL,
    message_id TEXT,
    receipts TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_room ON messages (agent, room, id);
"""
_INDEXES = "CREATE INDEX IF NOT EXISTS messages_by_id ON messages (agent, message_id);"


@dataclass
class Entry:
    """One hosted agent as the registry knows it."""

    name: str
    owner: str
    source: Path
    """The character file the agent is loaded from (read again at each start)."""
    uploaded: bool
    """Uploaded through the API: the server keeps the file and deletes it with the agent."""
    desired: str
    """``running`` or ``stopped``: what the operator or owner asked for last."""
    created_at: float


@dataclass
class Said:
    """One message for the history: who said it, and for a reply its id and receipts."""

    user: str
    role: str
    text: str
    message_id: str | None = None
    receipts: dict[str, Any] | None = None


class Registry:
    def __init__(self, where: Path | Database) -> None:
        self.db = SqliteDatabase(where) if isinstance(where, Path) else where
        if isinstance(self.db, SqliteDatabase):  # PostgreSQL's tables come from its migrations
            self.db.executescript(_SCHEMA)
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(messages)")}
            for column in ("message_id", "receipts"):
                if column not in columns:  # a registry from before replies kept their receipts
                    self.db.execute(f"ALTER TABLE messages ADD COLUMN {column} TEXT")
            self.db.executescript(_INDEXES)
        self._pending: list[tuple[Any, ...]] = []
        self._writer: asyncio.Task[None] | None = None
        self._now = asyncio.Event()
        """Set by a read (or the close) that needs the queue written at once."""

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, args)

    async def _do(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # A durable write must not stall every agent on the loop while it syncs.
        return await blocking.run("records", self._run, sql, args)

    # The server's other tables (sessions, API keys) live in the same database, through these.
    execute = _run
    execute_async = _do

    def entries(self) -> list[Entry]:
        rows = self._run(
            "SELECT name, owner, source, uploaded, desired, created_at FROM agents ORDER BY name"
        )
        return [Entry(r[0], r[1], Path(r[2]), bool(r[3]), r[4], r[5]) for r in rows]

    async def add(self, entry: Entry) -> None:
        await self._do(
            "INSERT INTO agents (name, owner, source, uploaded, desired, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET source = excluded.source",
            (
                entry.name,
                entry.owner,
                str(entry.source),
                int(entry.uploaded),
                entry.desired,
                entry.created_at,
            ),
        )
        await self._keep(entry.name, entry.source)

    async def _keep(self, name: str, source: Path) -> None:
        """In a shared database, the file's text too: another server may not have the file."""
        if not isinstance(self.db, SqliteDatabase):
            content = await asyncio.to_thread(source.read_text, encoding="utf-8")
            await self._do("UPDATE agents SET content = ? WHERE name = ?", (content, name))

    async def set_desired(self, name: str, desired: str) -> None:
        await self._do("UPDATE agents SET desired = ? WHERE name = ?", (desired, name))

    async def set_source(self, name: str, source: Path) -> None:
        await self._do("UPDATE agents SET source = ? WHERE name = ?", (str(source), name))
        await self._keep(name, source)

    async def remove(self, name: str) -> None:
        await self.drain()  # none of its messages written after the delete
        await self._do("DELETE FROM agents WHERE name = ?", (name,))
        await self._do("DELETE FROM messages WHERE agent = ?", (name,))

    def record(self, agent: str, room: str, *rows: Said) -> None:
        """Messages of one room, in order, written behind the reply: queued here, then written
        by a task of their own, a batch at a time, a moment after the first of them (so the
        write never competes with sending the reply, and a busy server writes many messages in
        one transaction). Reads wait for what is queued, so a history asked for after a reply
        shows it; a killed server loses at most that moment's messages (the agents' own memory
        keeps the conversation too)."""
        now = time.time()
        self._pending.extend(
            (agent, room, r.user, r.role, r.text, now, r.message_id,
             json.dumps(r.receipts) if r.receipts is not None else None)
            for r in rows
        )  # fmt: skip
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_behind())

    async def _write_behind(self) -> None:
        while self._pending:
            if not self._now.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._now.wait(), WRITE_DELAY)
            batch, self._pending = self._pending, []
            try:
                await blocking.run("records", self._record, batch)
            except Exception as exc:  # the disk is full or gone: say so, keep serving
                log.error("history: %d messages not written: %s", len(batch), exc)
        self._now.clear()

    async def drain(self) -> None:
        """Write every queued message now, and wait until it is written."""
        while self._writer is not None and not self._writer.done():
            self._now.set()
            await asyncio.shield(self._writer)

    def _record(self, args: list[tuple[Any, ...]]) -> None:
        self.db.executemany(
            'INSERT INTO messages (agent, room, "user", role, text, at, message_id, receipts) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            args,
        )

    async def history(self, agent: str, room: str, limit: int) -> list[dict[str, Any]]:
        await self.drain()
        rows = await self._do(
            'SELECT "user", role, text, at, message_id FROM messages WHERE agent = ? AND room = ? '
            "ORDER BY id DESC LIMIT ?",
            (agent, room, limit),
        )
        return [
            {"user": r[0], "role": r[1], "text": r[2], "at": r[3], "id": r[4]}
            for r in reversed(rows)
        ]

    async def receipts(self, agent: str, message_id: str) -> dict[str, Any] | None:
        """The receipts an agent's reply came with (None: no such reply of this agent's)."""
        await self.drain()
        rows = await self._do(
            "SELECT receipts FROM messages WHERE agent = ? AND message_id = ? LIMIT 1",
            (agent, message_id),
        )
        if not rows:
            return None
        stored: dict[str, Any] = json.loads(rows[0][0] or "{}")
        return stored

    async def rooms(self, agent: str) -> list[str]:
        await self.drain()
        rows = await self._do(
            "SELECT room FROM messages WHERE agent = ? GROUP BY room ORDER BY MAX(id) DESC",
            (agent,),
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        self.db.close()
