"""API keys for scripts: a signed-in user mints them (``/api/auth/tokens``), a script sends one
as ``Authorization: Bearer <key>`` and acts as that user (no cookie, so no CSRF check).

Only a session may mint a key: a leaked key cannot breed more. The key is shown once; the
registry keeps its SHA-256 (the key is 240 random bits: a slow hash would guard nothing more
and slow every request), its name, a short prefix to tell keys apart, and when it was created,
expires and was last used. The operator's ``AIGENT_SERVE_TOKEN`` is separate and keeps working.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from aigent_server.app import Who
from aigent_server.registry import Registry
from aigent_server.sessions import RECENT, digest

PREFIX = "aik_"
SHOWN = 12
"""Characters of a key kept and shown to tell keys apart (the prefix and 8 random ones)."""
USED_EVERY = 60.0
"""``last_used_at`` is written at most this often per key: not a write per request."""
MAX_KEYS = 100

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "name TEXT NOT NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, "
    "created_at REAL NOT NULL, expires_at REAL, last_used_at REAL)"
)


@dataclass
class ApiKey:
    id: str
    owner: str
    name: str
    prefix: str
    hash: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    written_at: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
        }


class ApiKeys:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        registry.execute(_SCHEMA)
        rows = registry.execute(
            "SELECT id, owner, name, prefix, hash, created_at, expires_at, last_used_at "
            "FROM api_keys"
        )
        self._by_hash = {r[4]: ApiKey(*r) for r in rows}
        self._writes: set[asyncio.Task[Any]] = set()

    async def reload(self) -> None:
        """The keys as the database holds them: servers sharing it (see aigent_server.leases)
        honour each other's new and revoked keys within a round."""
        rows = await self._registry.execute_async(
            "SELECT id, owner, name, prefix, hash, created_at, expires_at, last_used_at "
            "FROM api_keys"
        )
        now = time.time()
        fresh = {r[4]: self._by_hash.get(r[4]) or ApiKey(*r) for r in rows}
        for digest_, key in self._by_hash.items():  # made here while the read was on its way
            if digest_ not in fresh and key.created_at > now - RECENT:
                fresh[digest_] = key
        self._by_hash = fresh

    async def create(self, owner: str, name: str, expires_at: float | None) -> tuple[str, ApiKey]:
        if len(self.owned(owner)) >= MAX_KEYS:
            raise HTTPException(409, f"you have {MAX_KEYS} API tokens: revoke one first")
        secret = PREFIX + secrets.token_urlsafe(30)
        key = ApiKey(
            uuid.uuid4().hex[:12], owner, name, secret[:SHOWN], digest(secret, "api-key"),
            time.time(), expires_at, None,
        )  # fmt: skip
        await self._registry.execute_async(
            "INSERT INTO api_keys (id, owner, name, prefix, hash, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key.id, owner, name, key.prefix, key.hash, key.created_at, expires_at),
        )
        self._by_hash[key.hash] = key
        return secret, key

    def owner_of(self, secret: str) -> str | None:
        """Who ``secret`` acts as, or None (unknown, revoked or expired). Notes the use."""
        key = self._by_hash.get(digest(secret, "api-key"))
        now = time.time()
        if key is None or (key.expires_at is not None and key.expires_at < now):
            return None
        key.last_used_at = now
        if now - key.written_at >= USED_EVERY:
            key.written_at = now
            task = asyncio.get_running_loop().create_task(
                self._registry.execute_async(
                    "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key.id)
                )
            )
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        return key.owner

    def owned(self, owner: str) -> list[ApiKey]:
        return sorted(
            (k for k in self._by_hash.values() if k.owner == owner), key=lambda k: k.created_at
        )

    async def revoke(self, owner: str, key_id: str) -> bool:
        for key in self.owned(owner):
            if key.id == key_id:
                del self._by_hash[key.hash]
                await self._registry.execute_async("DELETE FROM api_keys WHERE id = ?", (key_id,))
                return True
        return False


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    """What the token is for (a script's name, say)."""
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)
    """None: until revoked."""


router = APIRouter(prefix="/api/auth/tokens", tags=["auth"])


def _keys(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.apikeys
    return keys


@router.post("", status_code=201)
async def create_token(who: Who, body: TokenIn, request: Request) -> dict[str, Any]:
    """A new API token for the signed-in user, shown this once (only its prefix is kept)."""
    if who.session is None:
        raise HTTPException(
            403, "only a signed-in session may create API tokens: sign in on the wallet page"
        )
    expires = time.time() + body.expires_in_days * 86400 if body.expires_in_days else None
    secret, key = await _keys(request).create(who.owner, body.name.strip(), expires)
    return {**key.public(), "token": secret}


@router.get("")
async def list_tokens(who: Who, request: Request) -> list[dict[str, Any]]:
    """The caller's tokens: name, prefix, created, expires, last used (never the token)."""
    return [k.public() for k in _keys(request).owned(who.owner)]


@router.delete("/{key_id}", status_code=204)
async def revoke_token(who: Who, key_id: str, request: Request) -> Response:
    if not await _keys(request).revoke(who.owner, key_id):
        raise HTTPException(404, f"no API token {key_id!r} of yours")
    return Response(status_code=204)
