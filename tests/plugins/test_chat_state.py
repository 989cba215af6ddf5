"""The Discord and Telegram clients' state in the agent's stores ``discord`` and ``telegram``
(aigent.chat_state), on SQLite and on the database a fleet shares: what one server answered is
there for the next, a server killed between the platform taking a reply and marking it leaves
nothing to answer twice, two servers at once answer each message once, a refused reply is
forgotten and answered later, and the JSON file from before is imported once.

Each client runs against its platform's wire-format stand-in; "a server" is the agent built
on one more storage from ``servers`` (closed when that server goes away)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aigent_discord.client import DiscordClient
from aigent_discord.rest import DiscordApi, DiscordError
from aigent_telegram.api import TelegramApi, TelegramError
from aigent_telegram.client import TelegramClient

from aigent import Agent
from aigent.chat_state import SENDING, SENT, ChatState
from aigent.storage import Storage
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.discord_api import TOKEN as DISCORD_TOKEN
from tests.fixtures.discord_api import DiscordServer
from tests.fixtures.stores import Servers, pg, servers  # noqa: F401
from tests.fixtures.telegram_api import TOKEN as TELEGRAM_TOKEN
from tests.fixtures.telegram_api import TelegramServer


class Killed(BaseException):
    """The server dies here (SIGKILL): nothing after runs, nothing is cleaned up."""


class DiesAfterSending:
    """The platform takes the reply; the server dies before it hears back."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)

    async def send(self, *args: Any, **kwargs: Any) -> str:
        await self.api.send(*args, **kwargs)
        raise Killed


class Discord:
    """Direct messages to the bot, each delivered again on every round (as a resumed
    session replays them)."""

    name = "discord"
    refusal = DiscordError

    def __init__(self, server: DiscordServer) -> None:
        self.server = server
        self.messages: list[dict[str, Any]] = []

    def client(self, ctx: Any, agent: Agent) -> DiscordClient:
        return DiscordClient(ctx, agent, api=DiscordApi(DISCORD_TOKEN, base=self.server.url))

    def say(self, text: str) -> str:
        message_id = self.server.new_id()
        self.messages.append({"id": message_id, "channel_id": "300", "content": text,
                              "author": {"id": "2000", "username": "ann"}})  # fmt: skip
        return message_id

    async def round(self, client: Any) -> int:
        return sum([await client.on_message(m) for m in self.messages])

    def answered(self) -> list[str]:
        return [m["message_reference"]["message_id"] for m in self.server.sent]

    def refuse_next(self) -> None:
        self.server.fail("/api/v10/channels/300/messages", 403,
                         b'{"message": "Missing Permissions", "code": 50013}')  # fmt: skip


class Telegram:
    """Private messages to the bot, polled: an update stays until a poll confirms it."""

    name = "telegram"
    refusal = TelegramError

    def __init__(self, server: TelegramServer) -> None:
        self.server = server

    def client(self, ctx: Any, agent: Agent) -> TelegramClient:
        client = TelegramClient(ctx, agent, api=TelegramApi(TELEGRAM_TOKEN, base=self.server.url))
        client.poll_timeout = 0
        return client

    def say(self, text: str) -> str:
        return str(self.server.message(text))

    async def round(self, client: Any) -> int:
        if not client.api.me:
            await client.api.get_me()
        return int(await client.poll_once())

    def answered(self) -> list[str]:
        return [str(s["reply_parameters"]["message_id"]) for s in self.server.sent]

    def refuse_next(self) -> None:
        # Too long to wait: refused, and the update stays unconfirmed for the next poll.
        self.server.fail("sendMessage", 429, json.dumps({
            "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 900",
            "parameters": {"retry_after": 900}}).encode())  # fmt: skip


Platform = Discord | Telegram


@pytest.fixture(params=["discord", "telegram"])
async def platform(request: pytest.FixtureRequest) -> AsyncIterator[Platform]:
    if request.param == "discord":
        discord = await DiscordServer().start()
        try:
            yield Discord(discord)
        finally:
            await discord.stop()
    else:
        telegram = await TelegramServer().start()
        try:
            yield Telegram(telegram)
        finally:
            await telegram.stop()


_servers = itertools.count()


@pytest.fixture
async def client_on(write_character: Any, tmp_path: Path, platform: Platform) -> AsyncIterator[Any]:
    """The agent's client as one server runs it: its stores in ``storage``, a data directory
    of its own."""
    made: list[Any] = []

    async def make(storage: Storage, die: bool = False) -> Any:
        path = write_character({
            "name": "Agent", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
            "memory": {"enabled": False}, "connector": {"enabled": False},
            "data_dir": str(tmp_path / f"server-{next(_servers)}"),
        }, name=f"agent-{next(_servers)}.json")  # fmt: skip
        agent = Agent.from_file(path, storage=storage)
        agent.assemble()
        client = platform.client(agent.ctx.for_plugin(platform.name), agent)
        made.append(client.api)
        await asyncio.to_thread(client.state.ready)
        if die:
            client.api = DiesAfterSending(client.api)
        return client

    yield make
    for api in made:
        await api.close()


async def test_what_one_server_answered_is_there_for_the_next(
    servers: Servers,  # noqa: F811
    platform: Platform,
    client_on: Any,
) -> None:
    said = [platform.say("one"), platform.say("two")]
    one = servers()
    assert await platform.round(await client_on(one)) == 2
    one.close()  # type: ignore[attr-defined]  # the server goes away

    client = await client_on(servers())
    assert await platform.round(client) == 0  # both come again: neither is answered twice
    said.append(platform.say("three"))
    assert await platform.round(client) == 1
    assert platform.answered() == said


async def test_a_server_killed_after_sending_leaves_nothing_to_answer_twice(
    servers: Servers,  # noqa: F811
    platform: Platform,
    client_on: Any,
) -> None:
    said = platform.say("are you there?")
    one = servers()
    dying = await client_on(one, die=True)
    with pytest.raises(Killed):
        await platform.round(dying)
    one.close()  # type: ignore[attr-defined]
    assert platform.answered() == [said]  # the platform has the reply; the server never heard

    client = await client_on(servers())
    key = said if platform.name == "discord" else f"5000:{said}"
    assert client.state.state_of(key) == SENDING  # its intent, outcome unknown
    assert await platform.round(client) == 0  # delivered again: not answered again
    assert platform.answered() == [said]


async def test_two_servers_at_once_answer_each_message_once(
    servers: Servers,  # noqa: F811
    platform: Platform,
    client_on: Any,
) -> None:
    """A hand-over where both servers still run the agent for a moment."""
    said = [platform.say(f"question {i}") for i in range(6)]
    a, b = await client_on(servers()), await client_on(servers())
    done = await asyncio.gather(platform.round(a), platform.round(b))
    assert sum(done) == 6
    assert sorted(platform.answered()) == sorted(said)


async def test_a_refused_reply_is_forgotten_and_answered_later(
    servers: Servers,  # noqa: F811
    platform: Platform,
    client_on: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    said = platform.say("hello?")
    client = await client_on(servers())
    platform.refuse_next()
    with pytest.raises(platform.refusal):
        await platform.round(client)
    assert platform.answered() == []
    key = said if platform.name == "discord" else f"5000:{said}"
    assert client.state.state_of(key) is None  # known not to have gone out: forgotten
    assert await platform.round(client) == 1
    assert platform.answered() == [said]
    assert client.state.state_of(key) == SENT


def test_two_servers_writing_the_intent_at_once_one_answers(
    servers: Servers,  # noqa: F811
) -> None:
    a, b = ChatState(servers(), "telegram"), ChatState(servers(), "telegram")
    a.ready()
    b.ready()
    # Both saw the message unanswered before asking the model; only one may send.
    assert a.may_answer("1:7", "1", False, 3) is None and b.may_answer("1:7", "1", False, 3) is None
    assert a.begin_reply("1:7", "1", False, 3) is None
    assert b.begin_reply("1:7", "1", False, 3) == "message 1:7 was answered before"


def test_what_one_server_kept_is_there_for_the_next(
    servers: Servers,  # noqa: F811
) -> None:
    one = servers()
    state = ChatState(one, "discord")
    state.ready()
    state.advance("100", "900")
    state.advance("100", "899")  # never back
    for message in ("901", "902"):  # another bot, twice in a row
        assert state.may_answer(message, "100", True, 2) is None
        assert state.begin_reply(message, "100", True, 2) is None
        state.finish_reply(message, f"r{message}", thread="100")
    state.save_session({"session_id": "s-1", "seq": 41, "user": {"id": "9"}})
    one.close()  # type: ignore[attr-defined]

    state = ChatState(servers(), "discord")
    assert state.watermark("100") == "900"
    assert state.seen("850", "100") and state.seen("902") and not state.seen("903", "100")
    assert state.follows("100") and not state.follows("200")
    assert state.session() == {"session_id": "s-1", "seq": 41, "user": {"id": "9"}}
    assert state.may_answer("903", "100", True, 2) == (
        "another bot was answered 2 times in a row in 100"
    )
    assert state.may_answer("904", "100", False, 2) is None  # a person speaks
    assert state.bot_turns("100") == 0
    # A reply that never went out gives its bot turn back.
    assert state.begin_reply("905", "100", True, 2) is None and state.bot_turns("100") == 1
    state.abandon_reply("905")
    assert state.bot_turns("100") == 0 and not state.answered("905")
    state.abandon_reply("902")  # sent: never forgotten
    assert state.answered("902")


def test_a_state_file_from_before_is_imported_once(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "discord-state.json"
    legacy.write_text(json.dumps({
        "path": "ignored", "watermarks": {"100": "5000", "200": "7"},
        "replied": ["4990", "5000"], "bot_turns": {"100": 2}, "threads": ["555"],
        "session": {"session_id": "session-1", "seq": 12, "resume_url": "ws://x"},
    }), encoding="utf-8")  # fmt: skip
    one = servers()
    state = ChatState(one, "discord", legacy)
    state.ready()
    assert state.watermark("100") == "5000" and state.watermark("200") == "7"
    assert state.answered("4990") and state.state_of("5000") == SENT
    assert state.bot_turns("100") == 2 and state.follows("555")
    assert state.session()["session_id"] == "session-1"
    assert state.may_answer("5001", "100", False, 3) is None  # a person resets the turns
    one.close()  # type: ignore[attr-defined]

    again = ChatState(servers(), "discord", legacy)  # the file is still there
    again.ready()
    assert again.bot_turns("100") == 0  # not imported twice


def test_an_unreadable_state_file_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aigent.storage import FileStorage, StorageError

    legacy = tmp_path / "telegram-state.json"
    legacy.write_text("{not json", encoding="utf-8")
    state = ChatState(FileStorage(tmp_path), "telegram", legacy)
    state.ready()
    assert "telegram-state.json cannot be read" in caplog.text
    assert state.watermark("updates") is None
    with pytest.raises(StorageError, match="lower-case letters"):
        ChatState(FileStorage(tmp_path), "my-client")
