"""Signed-in sessions, kept in the registry's SQLite so a restart signs nobody out.

The table holds a SHA-256 of each session id, never the id: whoever reads the file (a backup,
a stray copy) cannot act as anyone. The id is 256 random bits, so a fast hash is enough; a
slow one would only slow every request. The CSRF token is derived from the id the same way
and is never stored. Lookups are served from memory (one per request, on the event loop);
writes go to the file off the loop.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from aigent_server.registry import Registry

SESSION_SECONDS = 7 * 86400.0
RECENT = 60.0
"""Seconds a session opened here is kept by :meth:`Sessions.reload` though the read missed it."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "created_at REAL NOT NULL, expires_at REAL NOT NULL)"
)


def digest(secret: str, purpose: str = "session") -> str:
    return hashlib.sha256(f"{purpose}:{secret}".encode()).hexdigest()


@dataclass
class Session:
    key: str
    """The SHA-256 of the session id (the id itself is only in the caller's cookie)."""
    owner: str
    """A lower-case address, or OPERATOR."""
    csrf: str
    expires_at: float


class Sessions:
    def __init__(self, registry: Registry, seconds: float = SESSION_SECONDS) -> None:
        self._registry = registry
        self._seconds = seconds
        registry.execute(_SCHEMA)
        registry.execute("DELETE FROM sessions WHERE expires_at < ?", (time.time(),))
        self._live: dict[str, tuple[str, float]] = {
            key: (owner, expires)
            for key, owner, expires in registry.execute(
                "SELECT key, owner, expires_at FROM sessions"
            )
        }
        self._opened: dict[str, float] = {}

    async def reload(self) -> None:
        """The sessions as the database holds them: servers sharing it (see
        aigent_server.leases) know each other's sign-ins and sign-outs within a round."""
        now = time.time()
        rows = await self._registry.execute_async(
            "SELECT key, owner, expires_at FROM sessions WHERE expires_at >= ?", (now,)
        )
        live = {key: (owner, expires) for key, owner, expires in rows}
        # One opened here while the read was on its way is not signed out by it.
        self._opened = {k: at for k, at in self._opened.items() if at > now - RECENT}
        for key in self._opened.keys() - live.keys():
            if key in self._live:
                live[key] = self._live[key]
        self._live = live

    async def open(self, owner: str) -> tuple[str, Session]:
        """A new session for ``owner``: the id for the cookie, and the session."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        key = digest(sid)
        await self._registry.execute_async(
            "INSERT INTO sessions (key, owner, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (key, owner, now, now + self._seconds),
        )
        self._live[key] = (owner, now + self._seconds)
        self._opened[key] = now
        await self._prune(now)
        return sid, Session(key, owner, digest(sid, "csrf")[:32], now + self._seconds)

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        key = digest(sid)
        found = self._live.get(key)
        if found is None or found[1] < time.time():
            return None
        return Session(key, found[0], digest(sid, "csrf")[:32], found[1])

    async def end(self, session: Session) -> None:
        self._live.pop(session.key, None)
        self._opened.pop(session.key, None)
        await self._registry.execute_async("DELETE FROM sessions WHERE key = ?", (session.key,))

    async def _prune(self, now: float) -> None:
        stale = [k for k, (_, expires) in self._live.items() if expires < now]
        if stale:
            for key in stale:
                del self._live[key]
            await self._registry.execute_async("DELETE FROM sessions WHERE expires_at < ?", (now,))
