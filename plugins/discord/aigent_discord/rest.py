"""Discord's REST API, the few endpoints the client uses, with its rate limits honoured.

Every answer's ``X-RateLimit-*`` headers are remembered per bucket, and a call to an exhausted
bucket waits for its reset; a 429 waits the body's ``retry_after`` (global or not) and tries
again. The bot token goes only to discord.com or to a stand-in on this machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from aigent import is_local_url, retry_delay, retryable

log = logging.getLogger("aigent.discord")

API = "https://discord.com/api/v10"
ATTEMPTS = 5
MAX_WAIT = 60.0  # a longer retry_after means the bot is being throttled hard: give up this one


class DiscordError(Exception):
    """Discord refused or failed; ``retryable`` says whether waiting may help, ``refused``
    that Discord answered with a refusal (so the call did nothing; otherwise it may have)."""

    def __init__(self, message: str, retryable: bool = False, refused: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.refused = refused


def api_base(configured: str | None) -> str:
    """Where REST calls go: Discord, or (tests, a local proxy) a server on this machine."""
    if not configured:
        return API
    if not is_local_url(configured):
        raise DiscordError(
            f"settings.discord.api_base {configured!r} is not on this machine: the bot token "
            "goes only to Discord or to a local stand-in (localhost); remove api_base to talk "
            "to Discord"
        )
    return configured.rstrip("/")


class DiscordApi:
    def __init__(
        self,
        token: str,
        *,
        base: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base = api_base(base)
        self._headers = {
            "Authorization": f"Bot {token}",
            "User-Agent": "DiscordBot (https://github.com/aigent, 0.1) aigent-discord",
        }
        self.sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._buckets: dict[str, str] = {}  # route -> Discord's bucket id
        self._limits: dict[str, tuple[int, float]] = {}  # bucket -> (remaining, reset, monotonic)
        self._global_until = 0.0

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, route: str, path: str, body: Any = None) -> Any:
        """One call; ``route`` names it for rate limiting (``POST /channels/{id}/messages``
        with the channel id in it: Discord's buckets are per channel)."""
        for attempt in range(ATTEMPTS):
            await self._wait_for(route)
            try:
                async with self.session.request(method, self.base + path, json=body) as resp:
                    raw = await resp.read()
                    self._remember(route, resp.headers)
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt + 1 == ATTEMPTS:
                    raise DiscordError(f"Discord unreachable for {route}: {type(exc).__name__}",
                                       True) from None  # fmt: skip
                await self.sleep(retry_delay(attempt, None))
                continue
            data = _json(raw)
            if status == 429:
                wait = _retry_after(data, resp.headers)
                if isinstance(data, dict) and data.get("global"):
                    self._global_until = time.monotonic() + wait
                log.warning("Discord rate limit on %s: waiting %.2fs", route, wait)
                if wait > MAX_WAIT or attempt + 1 == ATTEMPTS:
                    raise DiscordError(f"rate limited on {route} for {wait:.0f}s", True, True)
                await self.sleep(wait)
                continue
            if status == 401:
                raise DiscordError(
                    "Discord refused the bot token (401): check DISCORD_BOT_TOKEN "
                    "(Developer Portal → your application → Bot → Reset Token)",
                    refused=True,
                )
            if retryable(status) and attempt + 1 < ATTEMPTS:
                await self.sleep(retry_delay(attempt, resp.headers.get("Retry-After")))
                continue
            if status >= 400:
                message = data.get("message") if isinstance(data, dict) else None
                # A server error may come after the message was made: only a 4xx says not.
                raise DiscordError(
                    f"Discord refused {route} ({status}): {message or raw[:200]!r}",
                    retryable(status),
                    refused=status < 500,
                )
            if data is _MALFORMED:
                raise DiscordError(f"Discord answered {route} with a body that is not JSON", True)
            return data
        raise DiscordError(f"Discord kept failing {route}", True)  # pragma: no cover

    async def _wait_for(self, route: str) -> None:
        now = time.monotonic()
        until = self._global_until
        bucket = self._buckets.get(route)
        if bucket is not None:
            remaining, reset = self._limits.get(bucket, (1, 0.0))
            if remaining <= 0:
                until = max(until, reset)
        if until > now:
            wait = min(until - now, MAX_WAIT)
            log.info("Discord bucket for %s exhausted: waiting %.2fs", route, wait)
            await self.sleep(wait)

    def _remember(self, route: str, headers: Any) -> None:
        bucket = headers.get("X-RateLimit-Bucket")
        remaining = headers.get("X-RateLimit-Remaining")
        reset_after = headers.get("X-RateLimit-Reset-After")
        if bucket is None or remaining is None or reset_after is None:
            return
        try:
            self._buckets[route] = bucket
            self._limits[bucket] = (int(remaining), time.monotonic() + float(reset_after))
        except ValueError:
            log.debug("unreadable rate-limit headers on %s", route)

    # --- the endpoints the client uses -----------------------------------------------------------

    async def gateway_url(self) -> str:
        data = await self.request("GET", "GET /gateway/bot", "/gateway/bot")
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str):
            raise DiscordError(f"unexpected /gateway/bot answer: {str(data)[:200]}", True)
        return url

    async def me(self) -> dict[str, Any]:
        data = await self.request("GET", "GET /users/@me", "/users/@me")
        if not isinstance(data, dict) or "id" not in data:
            raise DiscordError(f"unexpected /users/@me answer: {str(data)[:200]}", True)
        return data

    async def send(self, channel: str, text: str, reply_to: str | None = None) -> str:
        body: dict[str, Any] = {
            "content": text,
            # Model output never pings @everyone, roles or users; the person answered is.
            "allowed_mentions": {"parse": [], "replied_user": True},
        }
        if reply_to:
            body["message_reference"] = {"message_id": reply_to, "fail_if_not_exists": False}
        route = f"POST /channels/{channel}/messages"
        data = await self.request("POST", route, f"/channels/{channel}/messages", body)
        if not isinstance(data, dict) or "id" not in data:
            raise DiscordError(f"unexpected answer to {route}: {str(data)[:200]}", True)
        return str(data["id"])


_MALFORMED = object()


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _MALFORMED


def _retry_after(data: Any, headers: Any) -> float:
    if isinstance(data, dict) and isinstance(data.get("retry_after"), int | float):
        return max(0.0, float(data["retry_after"]))
    for name in ("Retry-After", "X-RateLimit-Reset-After"):
        try:
            return max(0.0, float(headers.get(name)))
        except (TypeError, ValueError):
            continue
    return 1.0
