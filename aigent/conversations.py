"""What a chat client (Discord, Telegram, ...) keeps about its conversations: the recent
messages of each channel (offered to the model as context), where it has read up to and what
it answered (in the agent's store, aigent.chat_state: neither a restart nor a move to another
server answers one message twice), how many turns in a row it has spent answering other bots
(the loop breaker), and replies cut to a platform's limit.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aigent.blocking import run as run_blocking
from aigent.chat_state import POOL, ChatState
from aigent.knowledge import chunks
from aigent.messages import Outgoing

if TYPE_CHECKING:
    from aigent.interfaces import PluginContext
    from aigent.messages import Incoming
    from aigent.watch import Inbox

_log = logging.getLogger("aigent.conversations")
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
    max_bot_turns: int,
) -> Outgoing | None:
    """Answer ``message`` (its id ``key``) at most once, across restarts and the servers that
    may run the agent, and deliver the reply through the response hooks: ``send(part,
    first)`` posts one part of at most ``limit`` characters and returns its platform id; the
    first part's id is the reply's ``channel_id`` (what anchoring records). None when the
    agent does not answer (answered before, another bot answered ``max_bot_turns`` times in a
    row in ``channel``, nothing to say).

    The intent to answer is written after the model and before anything is sent, checked
    again in the same transaction, and marked sent after. A reply the platform refused (the
    first part's ``send`` raised an exception whose ``refused`` is true) or that never reached
    ``send`` (a hook blocked it) is forgotten, so the message can be answered later; one whose
    outcome is unknown (the connection failed mid-send, the server died) is never sent again.
    A thread answered in is followed; the reply joins the channel's recent messages."""
    why = await run_blocking(POOL, state.may_answer, key, channel, from_bot, max_bot_turns)
    if why is not None:
        _log.info("%s: not answering %s: %s", message.client, key, why)
        return None
    reply = await agent.handle(message, publish=False)
    if not reply.text.strip():
        return None
    # Checked again with the intent: another server may have answered while the model thought.
    why = await run_blocking(POOL, state.begin_reply, key, channel, from_bot, max_bot_turns)
    if why is not None:
        _log.info("%s: not answering %s: %s", message.client, key, why)
        return None
    first: str | None = None
    unknown = False

    async def deliver(outgoing: Outgoing) -> str | None:
        nonlocal first, unknown
        for part in split_message(outgoing.text, limit):
            try:
                sent = await send(part, first is None)
            except BaseException as exc:
                unknown = first is None and getattr(exc, "refused", False) is not True
                raise
            first = first or sent
        return first

    outgoing = Outgoing(text=reply.text, agent=agent.name, client=message.client,
                        room=message.room, in_reply_to=message.id)  # fmt: skip
    thread = channel if in_thread else None
    try:
        await agent.publish(outgoing, deliver=deliver)
    except BaseException as exc:
        if first is not None:  # part of the reply went out: answered
            await run_blocking(POOL, state.finish_reply, key, first, thread)
        elif unknown:
            _log.warning("%s: whether the reply to %s went out is unknown (%s); it is not "
                         "sent again", message.client, key, type(exc).__name__)  # fmt: skip
        else:
            await run_blocking(POOL, state.abandon_reply, key)
        raise
    if first is None:  # a hook left nothing to send
        await run_blocking(POOL, state.abandon_reply, key)
        return None
    await run_blocking(POOL, state.finish_reply, key, first, thread)
    log.add(channel, agent.name, outgoing.text)
    return outgoing


class DryRun:
    """A chat client's stand-in for its platform when it has no token: nothing is connected,
    and what would be sent is shown instead (``sent`` keeps it, for tests)."""

    platform = "the platform"

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, str]] = []

    def show(self, where: str, text: str) -> str:
        """Say what would go to ``where``; a message id for it."""
        self.sent.append((where, text))
        print(f"[dry run] {self.name} would send to {self.platform} {where}: {text}",
              file=sys.stderr, flush=True)  # fmt: skip
        return f"dry-run-{len(self.sent)}"

    async def close(self) -> None:
        return None


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
