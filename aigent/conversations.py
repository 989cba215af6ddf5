"""What a chat client (Discord, Telegram, ...) keeps about its conversations: the recent
messages of each channel (offered to the model as context), where it has read up to and what
it answered (on disk, so a restart never answers one message twice), how many turns in a row
it has spent answering other bots (the loop breaker), and replies cut to a platform's limit.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigent.knowledge import chunks
from aigent.messages import Outgoing

if TYPE_CHECKING:
    from aigent.interfaces import PluginContext
    from aigent.messages import Incoming
    from aigent.watch import Inbox

KEEP = 5000  # remembered replied-to ids (oldest dropped first)
RECENT = 20  # messages kept per channel for context


def split_message(text: str, limit: int) -> list[str]:
    """``text`` as messages of at most ``limit`` characters, cut at a paragraph, sentence or
    word boundary where one is near (a word longer than the limit is cut hard)."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    return [part for part in chunks(iter([text]), size=limit, overlap=0) if part]


def setting(ctx: PluginContext, key: str, eliza_name: str, default: Any = None) -> Any:
    """``settings.<plugin>.<key>``, else the ElizaOS setting of that meaning (an environment
    variable, a ``.env`` line, or an ElizaOS 1.x file's ``settings``), else ``default``."""
    if key in ctx.settings:
        return ctx.settings[key]
    value = ctx.secrets.get(eliza_name)
    return default if value is None else value


def as_flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def as_ids(value: Any) -> set[str]:
    """Ids from a list, a comma-separated string or a JSON array string (ElizaOS uses all
    three)."""
    if value is None or value == "":
        return set()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text.strip("[]").split(",")
        else:
            value = text.split(",")
    if isinstance(value, int | float):
        value = [value]
    return {str(v).strip().strip("\"'") for v in value if str(v).strip()}


async def reply_through_hooks(
    agent: Any,
    message: Incoming,
    send: Callable[[str, bool], Awaitable[str]],
    limit: int,
) -> Outgoing | None:
    """Answer ``message`` and deliver the reply through the response hooks: ``send(part,
    first)`` posts one part of at most ``limit`` characters and returns its platform id; the
    first part's id is the reply's ``channel_id`` (what anchoring records). None when the
    agent had nothing to say."""
    reply = await agent.handle(message, publish=False)
    if not reply.text.strip():
        return None

    async def deliver(outgoing: Outgoing) -> str | None:
        first: str | None = None
        for part in split_message(outgoing.text, limit):
            sent = await send(part, first is None)
            first = first or sent
        return first

    outgoing = Outgoing(text=reply.text, agent=agent.name, client=message.client,
                        room=message.room, in_reply_to=message.id)  # fmt: skip
    return await agent.publish(outgoing, deliver=deliver)  # type: ignore[no-any-return]


async def answer_once(
    agent: Any,
    message: Incoming,
    send: Callable[[str, bool], Awaitable[str]],
    limit: int,
    *,
    state: ChatState,
    log: ChannelLog,
    key: str,
    channel: str,
    from_bot: bool,
    in_thread: bool,
) -> Outgoing | None:
    """:func:`reply_through_hooks` for a chat client, with its bookkeeping: the message
    ``key`` counts as answered as soon as the first part is sent (saved at once: at most one
    reply, even if the rest fails or the agent is stopped), a bot's turn is counted, a thread
    answered in is joined, and the reply joins the channel's recent messages. The caller saves
    its state after (with its own watermark)."""

    async def send_once(part: str, first: bool) -> str:
        sent = await send(part, first)
        if first:
            state.record_reply(key)
            state.save()
        return sent

    outgoing = await reply_through_hooks(agent, message, send_once, limit)
    if not state.answered(key):
        state.record_reply(key)
    if from_bot:
        state.count_bot_turn(channel)
    if in_thread:
        state.join_thread(channel)
    if outgoing is not None:
        log.add(channel, agent.name, outgoing.text)
    return outgoing


@dataclass
class ChatState:
    """A chat client's memory across restarts, saved atomically as JSON in the data dir."""

    path: Path
    watermarks: dict[str, str] = field(default_factory=dict)
    """Per source (a channel, or the update stream): the last id seen."""
    replied: list[str] = field(default_factory=list)
    bot_turns: dict[str, int] = field(default_factory=dict)
    """Per channel: replies in a row to other bots, since a person last spoke there."""
    threads: list[str] = field(default_factory=list)
    """Threads (and topics) the agent has answered in: it follows them without a mention."""
    session: dict[str, Any] = field(default_factory=dict)
    """Whatever the platform needs to pick up where it left off (a gateway session)."""

    @classmethod
    def load(cls, path: Path) -> ChatState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return cls(path)
        if not isinstance(data, dict):
            return cls(path)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "path"}
        return cls(path, **known)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("path")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash keeps the old state or the new one

    def answered(self, message_id: str) -> bool:
        return message_id in self.replied

    def record_reply(self, message_id: str) -> None:
        self.replied = [*self.replied, message_id][-KEEP:]

    def join_thread(self, thread: str) -> None:
        if thread not in self.threads:
            self.threads = [*self.threads, thread][-KEEP:]

    def bot_turn_allowed(self, channel: str, from_bot: bool, limit: int) -> bool:
        """Whether the agent may answer in ``channel`` now: a person speaking resets the count;
        a bot may be answered ``limit`` times in a row, then not until a person speaks (two
        agents that answer each other would otherwise never stop)."""
        if not from_bot:
            self.bot_turns.pop(channel, None)
            return True
        return self.bot_turns.get(channel, 0) < limit

    def count_bot_turn(self, channel: str) -> None:
        self.bot_turns[channel] = self.bot_turns.get(channel, 0) + 1


def watched_inbox(ctx: PluginContext, client: str) -> Inbox | None:
    """The watcher a chat client feeds the channel messages it sees into, when the character
    asks for it (``settings.<plugin>.watch``): one per agent, shared by the client and the
    plugin's ``register_watchers`` through ``ctx.state``."""
    if not as_flag(ctx.settings.get("watch")):
        return None
    from aigent.watch import Inbox

    inbox: Inbox = ctx.state.setdefault("watched", Inbox(client))
    return inbox


class ChannelLog:
    """The last messages seen in each channel, whoever wrote them (kept in memory)."""

    def __init__(self, size: int = RECENT) -> None:
        self.size = size
        self._channels: dict[str, deque[tuple[str, str]]] = {}

    def add(self, channel: str, author: str, text: str) -> None:
        log = self._channels.setdefault(channel, deque(maxlen=self.size))
        log.append((author, text))

    def recent(self, channel: str, count: int | None = None) -> list[tuple[str, str]]:
        items = list(self._channels.get(channel, ()))
        return items[-count:] if count else items


class RecentMessages:
    """Context provider: the conversation around a message from chat client ``client``,
    which puts ``(author, text)`` pairs in ``message.metadata["recent"]``."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.name = f"{client}-conversation"

    async def get(self, message: Incoming, agent: Any) -> str | None:
        recent = message.metadata.get("recent")
        if message.client != self.client or not recent:
            return None
        lines = "\n".join(f"{author}: {text}" for author, text in recent)
        return f"The conversation so far in this {message.client} channel:\n{lines}"
