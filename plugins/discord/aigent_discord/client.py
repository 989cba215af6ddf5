"""The Discord client: answers direct messages, mentions (and replies to its own messages),
and follows threads it has answered in, with the channel's recent messages as context.

Guards: a message is answered at most once, even after a restart or on another server
(answered ids, per-channel watermarks and the gateway session in the agent's store
``discord``, aigent.chat_state; a restart resumes the session, so Discord replays what was
missed and nothing is answered twice); other bots are answered a few turns in a row at most,
then not until a person speaks; replies longer than 2000 characters are split at paragraph or
sentence boundaries; every reply goes through the response hooks with its message id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aigent import Incoming, Observation, PluginContext, run_blocking
from aigent.conversations import (
    POOL,
    ChannelLog,
    ChatState,
    DryRun,
    answer_once,
    as_flag,
    as_ids,
    setting,
    watched_inbox,
)
from aigent_discord.gateway import Gateway
from aigent_discord.rest import DiscordApi, DiscordError

log = logging.getLogger("aigent.discord")

LIMIT = 2000
THREAD_TYPES = {10, 11, 12}  # announcement, public and private threads


def token(ctx: PluginContext) -> str | None:
    # DISCORD_API_TOKEN is ElizaOS's name, DISCORD_TOKEN ZerePy's.
    for name in ("DISCORD_BOT_TOKEN", "DISCORD_API_TOKEN", "DISCORD_TOKEN"):
        value = ctx.secrets.get(name)
        if value:
            return value
    return None


class DryRunApi(DryRun):
    """No token: nothing is connected."""

    platform = "Discord channel"

    async def send(self, channel: str, text: str, reply_to: str | None = None) -> str:
        return self.show(channel, text)


class DiscordClient:
    name = "discord"

    def __init__(self, ctx: PluginContext, agent: Any, *, api: Any = None) -> None:
        self.ctx = ctx
        self.agent = agent
        secret = None if as_flag(ctx.settings.get("dry_run")) else token(ctx)
        self.dry_run = secret is None and api is None
        rest = None if secret is None else DiscordApi(secret, base=ctx.settings.get("api_base"))
        self.api: Any = api or rest or DryRunApi(agent.name)
        self.state = ChatState(ctx.storage, "discord", ctx.data_dir / "discord-state.json")
        self.session: dict[str, Any] = {}  # the gateway's, filled from the store as it starts
        self.gateway: Gateway | None = None
        if secret is not None and rest is not None:
            self.gateway = Gateway(secret, rest.gateway_url, self.on_event, self.session,
                                   on_session=self._save_session)  # fmt: skip
        self.channels = as_ids(setting(ctx, "channels", "CHANNEL_IDS"))
        self.listen_only = as_ids(setting(ctx, "listen_channels", "DISCORD_LISTEN_CHANNEL_IDS"))
        self.ignore_bots = as_flag(
            setting(ctx, "ignore_bots", "DISCORD_SHOULD_IGNORE_BOT_MESSAGES", False)
        )
        self.ignore_dms = as_flag(
            setting(ctx, "ignore_direct_messages", "DISCORD_SHOULD_IGNORE_DIRECT_MESSAGES", False)
        )
        self.only_mentions = as_flag(
            setting(ctx, "only_mentions", "DISCORD_SHOULD_RESPOND_ONLY_TO_MENTIONS", False)
        )
        self.max_bot_turns = int(ctx.settings.get("max_bot_turns", 3))
        self.context_messages = int(ctx.settings.get("context_messages", 10))
        self.log = ChannelLog()
        self.inbox = watched_inbox(ctx, "discord")
        self.threads: set[str] = set()
        self.user: dict[str, Any] = {}
        # Each message with the session and sequence number it came in (see _mark).
        self.queue: asyncio.Queue[tuple[Any, Any, dict[str, Any]]] = asyncio.Queue()
        self._session_lock = asyncio.Lock()
        self._writing: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        # A store this aigent cannot use (a newer version) stops the agent as it starts.
        await run_blocking(POOL, self.state.ready)
        self.session.update(await run_blocking(POOL, self.state.session))
        self.user = dict(self.session.get("user") or {})  # a resumed session gets no READY
        if self.gateway is None:
            log.warning("%s on Discord: dry run, not connected (set DISCORD_BOT_TOKEN)",
                        self.agent.name)  # fmt: skip
            return
        log.warning("%s on Discord: connecting", self.agent.name)
        self._tasks = [asyncio.create_task(self._run_gateway()),
                       asyncio.create_task(self._work())]  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._writing is not None:  # a session being kept as the client stopped
            await asyncio.wait([self._writing])
        await self.api.close()

    async def _run_gateway(self) -> None:
        assert self.gateway is not None
        try:
            await self.gateway.run()
        except DiscordError as exc:
            log.error("%s on Discord stopped: %s", self.agent.name, exc)

    async def _work(self) -> None:
        # One message at a time: the gateway keeps reading (and beating) while the model thinks.
        while True:
            session, seq, data = await self.queue.get()
            try:
                await self.on_message(data, (session, seq))
            except DiscordError as exc:
                log.warning("Discord: %s", exc)
            except Exception:
                log.exception("Discord: answering message %s failed", data.get("id"))

    # --- events ----------------------------------------------------------------------------------

    async def on_event(self, event: str, data: dict[str, Any]) -> None:
        if event == "READY":
            self.user = data.get("user") or {}
        elif event == "MESSAGE_CREATE":
            self.queue.put_nowait((self.session.get("session_id"), self.session.get("seq"), data))
        elif event in {"THREAD_CREATE", "THREAD_UPDATE"} and data.get("type") in THREAD_TYPES:
            self.threads.add(str(data.get("id")))
        elif event == "GUILD_CREATE":
            self.threads.update(str(t.get("id")) for t in data.get("threads") or ())

    async def on_message(
        self, data: dict[str, Any], position: tuple[Any, Any] = (None, None)
    ) -> bool:
        """Answer one MESSAGE_CREATE if it is for the agent; True when answered. ``position``:
        the gateway session and sequence number it came in."""
        message_id, channel = str(data.get("id", "")), str(data.get("channel_id", ""))
        author = data.get("author") or {}
        if not message_id or not channel or not isinstance(author, dict):
            log.warning("Discord: a message without id, channel or author; ignored")
            return False
        me = str(self.user.get("id", ""))
        text = self._readable(str(data.get("content") or ""), me)
        name = str(author.get("global_name") or author.get("username") or author.get("id"))
        if await run_blocking(POOL, self.state.seen, message_id, channel):
            return False
        self.log.add(channel, name, text)
        if self.inbox is not None and text:
            at = _sent_at(data)
            seen = {"kind": "message", "channel": channel, "author": name}
            self.inbox.put(Observation("discord", f"{channel}:{message_id}", at,
                                       f"{name} in {channel}: {text}", seen))  # fmt: skip
        from_bot = bool(author.get("bot"))
        if (
            str(author.get("id")) == me
            or not text
            or not await self._addressed(data, channel, me)
            or (from_bot and self.ignore_bots)
        ):
            return await self._mark(channel, message_id, position)

        async def send(part: str, first: bool) -> str:
            return str(await self.api.send(channel, part, message_id if first else None))

        recent = self.log.recent(channel, self.context_messages)[:-1]
        incoming = Incoming(text=text, user=str(author.get("id")), room=f"discord:{channel}",
                            client="discord", metadata={"recent": recent, "discord": {
                                "message_id": message_id, "channel_id": channel,
                                "guild_id": data.get("guild_id"), "author": name}})  # fmt: skip
        outgoing = await answer_once(
            self.agent, incoming, send, LIMIT, state=self.state, log=self.log, key=message_id,
            channel=channel, from_bot=from_bot, in_thread=channel in self.threads,
            max_bot_turns=self.max_bot_turns,
        )  # fmt: skip
        await self._mark(channel, message_id, position)
        return outgoing is not None

    async def _addressed(self, data: dict[str, Any], channel: str, me: str) -> bool:
        if self.channels and channel not in self.channels and data.get("guild_id"):
            return False
        if channel in self.listen_only:
            return False
        if not data.get("guild_id"):
            return not self.ignore_dms
        mentions = data.get("mentions") or []
        if any(isinstance(m, dict) and str(m.get("id")) == me for m in mentions):
            return True
        replied = data.get("referenced_message") or {}
        if isinstance(replied, dict) and str((replied.get("author") or {}).get("id")) == me:
            return True
        if self.only_mentions:
            return False
        return await run_blocking(POOL, self.state.follows, channel)

    async def _mark(self, channel: str, message_id: str, position: tuple[Any, Any]) -> bool:
        """``message_id`` is handled: the channel's watermark moves to it, and a restart
        resumes the session after it. Not after the newest event received: messages still in
        the queue when the server dies are replayed, not missed."""
        session, seq = position
        kept = None
        if seq is not None and session is not None and session == self.session.get("session_id"):
            kept = {**self.session, "seq": seq}
        await self._write(self._handled, channel, message_id, kept)
        return False

    def _handled(self, channel: str, message_id: str, session: dict[str, Any] | None) -> None:
        self.state.advance(channel, message_id)
        if session is not None:
            self.state.save_session(session)

    async def _save_session(self) -> None:
        await self._write(self.state.save_session, dict(self.session))

    async def _write(self, fn: Callable[..., None], *args: Any) -> None:
        """Writes of the session in the order made, each one finished even when the client
        stops during it (stop waits for it): the next start reads what this one kept."""
        async with self._session_lock:
            self._writing = asyncio.ensure_future(run_blocking(POOL, fn, *args))
            await asyncio.shield(self._writing)

    def _readable(self, text: str, me: str) -> str:
        if me:
            text = re.sub(rf"<@!?{re.escape(me)}>", f"@{self.agent.name}", text)
        return text.strip()


def _sent_at(data: dict[str, Any]) -> float:
    """When a message was sent (its ISO 8601 ``timestamp``), else now."""
    try:
        return datetime.fromisoformat(str(data["timestamp"])).timestamp()
    except (KeyError, ValueError):
        return time.time()
