"""The Telegram client: long-polls the Bot API and answers private chats, mentions, replies to
its own messages, and forum topics or reply threads it has answered in, with the chat's
recent messages as context.

Guards: the update offset and the answered message ids are in the agent's store
``telegram`` (aigent.chat_state), so neither a restart nor a move to another server answers
one message twice; other bots are answered a few turns in a row at most, then not
until a person speaks; replies longer than 4096 characters are split at paragraph or sentence
boundaries; every reply goes through the response hooks with its ``chat:message`` id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aigent import Incoming, Observation, PluginContext, retry_delay, run_blocking
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
from aigent_telegram.api import TelegramApi, TelegramError

log = logging.getLogger("aigent.telegram")

LIMIT = 4096


class DryRunApi(DryRun):
    """No token: nothing is polled."""

    platform = "Telegram chat"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.me: dict[str, Any] = {"id": 0, "username": name}

    async def send(
        self, chat: int | str, text: str, reply_to: int | None = None, thread: int | None = None
    ) -> str:
        return self.show(str(chat), text)


class TelegramClient:
    name = "telegram"

    def __init__(self, ctx: PluginContext, agent: Any, *, api: Any = None) -> None:
        self.ctx = ctx
        self.agent = agent
        secret = (
            None if as_flag(ctx.settings.get("dry_run")) else ctx.secrets.get("TELEGRAM_BOT_TOKEN")
        )
        self.dry_run = secret is None and api is None
        self.api: Any = api or (
            DryRunApi(agent.name)
            if secret is None
            else TelegramApi(secret, base=setting(ctx, "api_base", "TELEGRAM_API_ROOT"))
        )
        self.chats = as_ids(setting(ctx, "allowed_chats", "TELEGRAM_ALLOWED_CHATS"))
        self.ignore_bots = as_flag(
            setting(ctx, "ignore_bots", "TELEGRAM_SHOULD_IGNORE_BOT_MESSAGES", False)
        )
        self.ignore_private = as_flag(
            setting(ctx, "ignore_direct_messages", "TELEGRAM_SHOULD_IGNORE_DIRECT_MESSAGES", False)
        )
        self.only_mentions = as_flag(
            setting(ctx, "only_mentions", "TELEGRAM_SHOULD_RESPOND_ONLY_TO_MENTIONS", False)
        )
        self.max_bot_turns = int(ctx.settings.get("max_bot_turns", 3))
        self.context_messages = int(ctx.settings.get("context_messages", 10))
        self.poll_timeout = int(ctx.settings.get("poll_timeout", 30))
        self.state = ChatState(ctx.storage, "telegram", ctx.data_dir / "telegram-state.json")
        self.log = ChannelLog()
        self.inbox = watched_inbox(ctx, "telegram")
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        # A store this aigent cannot use (a newer version) stops the agent as it starts.
        await run_blocking(POOL, self.state.ready)
        if self.dry_run:
            log.warning("%s on Telegram: dry run, not connected (set TELEGRAM_BOT_TOKEN)",
                        self.agent.name)  # fmt: skip
            return
        log.warning("%s on Telegram: polling for updates", self.agent.name)
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.api.close()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if not self.api.me:
                    await self.api.get_me()
                await self.poll_once()
                failures = 0
            except TelegramError as exc:
                if not exc.retryable:
                    log.error("%s on Telegram stopped: %s", self.agent.name, exc)
                    return
                failures += 1
                log.warning("Telegram: %s", exc)
                await asyncio.sleep(retry_delay(failures, None))

    async def poll_once(self) -> int:
        """One ``getUpdates``, every update in it handled; returns how many were answered."""
        last = await run_blocking(POOL, self.state.watermark, "updates")
        offset = int(last) + 1 if last is not None else None
        answered = 0
        for update in await self.api.get_updates(offset, self.poll_timeout):
            message = update.get("message")
            try:
                if isinstance(message, dict) and await self.on_message(message):
                    answered += 1
            except TelegramError as exc:
                if not exc.retryable:
                    log.warning("Telegram: not answered: %s", exc)
                else:
                    raise  # the update stays unconfirmed: tried again after the wait
            except Exception:
                log.exception("Telegram: answering update %s failed", update["update_id"])
            # Confirmed once handled: the next getUpdates' offset tells Telegram to drop it.
            await run_blocking(POOL, self.state.advance, "updates", str(update["update_id"]))
        return answered

    # --- messages --------------------------------------------------------------------------------

    async def on_message(self, message: dict[str, Any]) -> bool:
        chat = message.get("chat") or {}
        sender = message.get("from") or {}
        message_id = message.get("message_id")
        if not isinstance(chat, dict) or "id" not in chat or not isinstance(message_id, int):
            log.warning("Telegram: a message without chat or id; ignored")
            return False
        chat_id = chat["id"]
        thread = message.get("message_thread_id") if message.get("is_topic_message") else None
        key = f"{chat_id}:{message_id}"
        if await run_blocking(POOL, self.state.answered, key):
            return False
        channel = f"{chat_id}:{thread}" if thread is not None else str(chat_id)
        text = str(message.get("text") or message.get("caption") or "").strip()
        name = str(sender.get("username") or sender.get("first_name") or sender.get("id"))
        self.log.add(channel, name, text)
        if self.inbox is not None and text:
            at = float(message.get("date") or time.time())
            seen = {"kind": "message", "channel": channel, "author": name}
            self.inbox.put(Observation("telegram", key, at, f"{name} in {channel}: {text}", seen))
        me = self.api.me
        if not text or sender.get("id") == me.get("id"):
            return False
        if not await self._addressed(message, chat, channel, text, me):
            return False
        from_bot = bool(sender.get("is_bot"))
        if from_bot and self.ignore_bots:
            return False

        async def send(part: str, first: bool) -> str:
            return str(await self.api.send(chat_id, part, message_id if first else None,
                                           thread))  # fmt: skip

        recent = self.log.recent(channel, self.context_messages)[:-1]
        incoming = Incoming(text=text, user=str(sender.get("id")), room=f"telegram:{channel}",
                            client="telegram", metadata={"recent": recent, "telegram": {
                                "chat_id": chat_id, "message_id": message_id,
                                "chat_type": chat.get("type"), "author": name}})  # fmt: skip
        outgoing = await answer_once(
            self.agent, incoming, send, LIMIT, state=self.state, log=self.log, key=key,
            channel=channel, from_bot=from_bot, in_thread=thread is not None,
            max_bot_turns=self.max_bot_turns,
        )  # fmt: skip
        return outgoing is not None

    async def _addressed(
        self, message: dict[str, Any], chat: dict[str, Any], channel: str, text: str,
        me: dict[str, Any],
    ) -> bool:  # fmt: skip
        if chat.get("type") == "private":
            return not self.ignore_private
        if self.chats and str(chat["id"]) not in self.chats:
            return False
        username = me.get("username")
        if username and f"@{username}".lower() in text.lower():
            return True
        replied = message.get("reply_to_message") or {}
        if isinstance(replied, dict) and (replied.get("from") or {}).get("id") == me.get("id"):
            return True
        if self.only_mentions:
            return False
        # A forum topic the agent has answered in is a conversation it is part of.
        return message.get("is_topic_message") is True and await run_blocking(
            POOL, self.state.follows, channel
        )
