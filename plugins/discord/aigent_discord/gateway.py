"""Discord's gateway: one WebSocket that delivers events, kept alive by heartbeats.

HELLO gives the heartbeat interval; IDENTIFY (or RESUME, with the session id and the last
sequence number) starts the session; READY names the bot and the URL to resume at. When the
connection drops, a heartbeat goes unanswered, or Discord asks (op 7), the gateway resumes,
and Discord replays what was missed; an invalid session (op 9, or close codes 4007/4009)
starts a new one. Close codes that no retry can fix (a bad token, intents not enabled) stop
the client with a message that says what to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from aigent import is_local_url, retry_delay
from aigent_discord.rest import DiscordError

log = logging.getLogger("aigent.discord")

VERSION = 10
# GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT
INTENTS = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15)

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    0, 1, 2, 6, 7, 9, 10, 11,
)  # fmt: skip
FATAL_CLOSES = {
    4004: "Discord refused the bot token: check DISCORD_BOT_TOKEN",
    4010: "invalid shard",
    4011: "this bot is in too many servers for one connection (sharding is not supported yet)",
    4012: "invalid gateway version",
    4013: "invalid intents",
    4014: (
        "the Message Content intent is not enabled for this bot: turn it on in the Developer "
        "Portal (your application → Bot → Privileged Gateway Intents)"
    ),
}
NEW_SESSION_CLOSES = {4007, 4009}  # invalid sequence, session timed out: identify again

Dispatch = Callable[[str, dict[str, Any]], Awaitable[None]]


def check_gateway_url(url: str) -> str:
    """The token is sent over this socket: only wss, or ws to this machine (a stand-in)."""
    scheme = urlsplit(url).scheme
    if scheme == "wss" or (scheme == "ws" and is_local_url(url)):
        return url
    raise DiscordError(f"refusing to send the bot token to gateway {url!r} (not wss://)")


class Gateway:
    def __init__(
        self,
        token: str,
        url: Callable[[], Awaitable[str]],
        on_dispatch: Dispatch,
        session: dict[str, Any],
        *,
        on_session: Callable[[], Awaitable[None]] | None = None,
        intents: int = INTENTS,
    ) -> None:
        self._token = token
        self._url = url
        self.on_dispatch = on_dispatch
        self.session = session  # session_id, seq, resume_url: kept by the caller across restarts
        self.on_session = on_session  # called when the session starts or ends, to keep it
        self.intents = intents
        self.user: dict[str, Any] = {}
        self.ready = asyncio.Event()
        self.connections = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._acked = True

    async def run(self) -> None:
        """Connect, and reconnect, until cancelled or a fatal close."""
        failures = 0
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    code = await self._connect_once(http)
                    failures = 0
                except DiscordError as exc:
                    if not exc.retryable:
                        raise
                    log.warning("Discord gateway: %s", exc)
                    code = None
                    failures += 1
                except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                    log.warning("Discord gateway unreachable: %s", type(exc).__name__)
                    code = None
                    failures += 1
                if code in FATAL_CLOSES:
                    raise DiscordError(f"Discord closed the gateway ({code}): {FATAL_CLOSES[code]}")
                if code in NEW_SESSION_CLOSES:
                    await self._forget_session()
                self.ready.clear()
                await asyncio.sleep(retry_delay(failures, None) if failures else 0.2)

    async def _connect_once(self, http: aiohttp.ClientSession) -> int | None:
        resuming = bool(self.session.get("session_id") and self.session.get("resume_url"))
        base = self.session["resume_url"] if resuming else await self._url()
        url = check_gateway_url(base).rstrip("/") + f"/?v={VERSION}&encoding=json"
        async with http.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
            self._ws = ws
            self.connections += 1
            beat: asyncio.Task[None] | None = None
            try:
                async for frame in ws:
                    if frame.type != aiohttp.WSMsgType.TEXT:
                        if frame.type == aiohttp.WSMsgType.ERROR:
                            break
                        continue
                    try:
                        payload = json.loads(frame.data)
                        op = payload["op"]
                    except (ValueError, KeyError, TypeError):
                        log.warning("Discord gateway sent a frame that is not a payload; ignored")
                        continue
                    if payload.get("s") is not None:
                        self.session["seq"] = payload["s"]
                    if op == HELLO:
                        interval = float(payload["d"]["heartbeat_interval"]) / 1000
                        beat = asyncio.create_task(self._heartbeat(ws, interval))
                        await ws.send_json(self._resume() if resuming else self._identify())
                    elif op == HEARTBEAT:
                        await ws.send_json({"op": HEARTBEAT, "d": self.session.get("seq")})
                    elif op == HEARTBEAT_ACK:
                        self._acked = True
                    elif op == RECONNECT:
                        await ws.close(code=4000)  # not 1000: that would end the session
                    elif op == INVALID_SESSION:
                        if not payload.get("d"):
                            await self._forget_session()
                        await asyncio.sleep(random.uniform(1, 5) if payload.get("d") else 0.5)
                        await ws.close(code=4000)
                    elif op == DISPATCH:
                        await self._dispatch(str(payload.get("t")), payload.get("d"))
            finally:
                if beat is not None:
                    beat.cancel()
                self._ws = None
            return ws.close_code

    async def _dispatch(self, event: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if event == "READY":
            self.user = data.get("user") or {}
            self.session["user"] = self.user  # a resumed session gets no READY: who we are
            self.session["session_id"] = data.get("session_id")
            self.session["resume_url"] = data.get("resume_gateway_url")
            await self._session_changed()
            self.ready.set()
        elif event == "RESUMED":
            self.ready.set()
        await self.on_dispatch(event, data)

    def _identify(self) -> dict[str, Any]:
        return {
            "op": IDENTIFY,
            "d": {
                "token": self._token,
                "intents": self.intents,
                "properties": {"os": "linux", "browser": "aigent", "device": "aigent"},
            },
        }

    def _resume(self) -> dict[str, Any]:
        return {
            "op": RESUME,
            "d": {
                "token": self._token,
                "session_id": self.session["session_id"],
                "seq": self.session.get("seq"),
            },
        }

    async def _forget_session(self) -> None:
        for key in ("session_id", "resume_url", "seq"):
            self.session.pop(key, None)
        await self._session_changed()

    async def _session_changed(self) -> None:
        if self.on_session is not None:
            await self.on_session()

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        # The first beat after a random part of the interval, as Discord asks, so that many
        # bots reconnecting at once do not beat in step.
        await asyncio.sleep(interval * random.random())
        self._acked = True
        while not ws.closed:
            if not self._acked:
                log.warning("Discord gateway missed a heartbeat ACK: reconnecting")
                await ws.close(code=4000)
                return
            self._acked = False
            await ws.send_json({"op": HEARTBEAT, "d": self.session.get("seq")})
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close(code=4000)
