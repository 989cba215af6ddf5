"""The Telegram client against a local server speaking the Bot API's wire format
(tests/fixtures/telegram_api.py), the agent started as users start it."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aigent_telegram.client import LIMIT, TelegramClient

from aigent import Action, Agent, Outgoing, hookimpl, moves_value
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.telegram_api import TOKEN, TelegramServer


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramServer]:
    server = await TelegramServer().start()
    try:
        yield server
    finally:
        await server.stop()


class Receipts:
    def __init__(self) -> None:
        self.seen: list[Outgoing] = []

    @hookimpl
    def after_publish(self, message: Outgoing) -> None:
        self.seen.append(message)


@pytest.fixture
def make_agent(write_character, tmp_path, telegram):  # type: ignore[no-untyped-def]
    def make(plugins: list[Any] | None = None, secrets: dict[str, str] | None = None,
             spend_from: list[str] | None = None, **settings: Any) -> Agent:  # fmt: skip
        path = write_character({
            "name": "Agent", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
            "memory": {"enabled": False}, "data_dir": str(tmp_path / "data"),
            "connector": {"enabled": False}, "clients": ["telegram"],
            "secrets": {"TELEGRAM_BOT_TOKEN": TOKEN} if secrets is None else secrets,
            "settings": {"telegram": {"api_base": telegram.url, "poll_timeout": 1, **settings}},
            "spend_from": spend_from or ["direct"],
        })  # fmt: skip
        return Agent.from_file(path, plugins=plugins or [])

    return make


def client_of(agent: Agent) -> TelegramClient:
    client = next(c for c in agent.clients if c.name == "telegram")
    assert isinstance(client, TelegramClient)
    return client


async def test_private_chats_and_mentions_are_answered_through_the_hooks(
    make_agent, telegram
) -> None:
    receipts = Receipts()
    private = telegram.message("hello there")
    telegram.message("group chatter, not for the bot", chat=-100, chat_type="supergroup")
    mention = telegram.message("@agent_bot what is STREAM?", chat=-100, chat_type="supergroup")
    reply = telegram.message("and ILP?", chat=-100, chat_type="supergroup", reply_to_bot=True)
    async with make_agent(plugins=[receipts]):
        await telegram.wait_for(lambda: len(telegram.sent) == 3)
    texts = {(s["chat"]["id"], s["reply_parameters"]["message_id"]): s["text"]
             for s in telegram.sent}  # fmt: skip
    assert texts == {
        (5000, private): "echo: hello there",
        (-100, mention): "echo: @agent_bot what is STREAM?",
        (-100, reply): "echo: and ILP?",
    }
    assert sorted(r.channel_id or "" for r in receipts.seen) == sorted(
        f"{s['chat']['id']}:{s['message_id']}" for s in telegram.sent
    )
    assert {m for m, _ in telegram.calls} >= {"getMe", "getUpdates", "sendMessage"}


async def test_offsets_confirm_updates_and_a_restart_never_answers_twice(
    make_agent, telegram
) -> None:
    telegram.message("one")
    async with make_agent():
        await telegram.wait_for(lambda: len(telegram.sent) == 1)
    telegram.message("two")
    async with make_agent() as agent:
        await telegram.wait_for(lambda: len(telegram.sent) == 2)
        await asyncio.sleep(0.3)
        offsets = [p.get("offset") for m, p in telegram.calls if m == "getUpdates"]
        assert offsets[0] is None and 2 in offsets and 3 in offsets
        # A message seen again (Telegram re-sends updates not yet confirmed) is not answered.
        client = client_of(agent)
        first = {"message_id": 101, "chat": {"id": 5000, "type": "private"},
                 "from": {"id": 42, "is_bot": False}, "text": "one"}  # fmt: skip
        assert await client.on_message(first) is False
    assert [s["text"] for s in telegram.sent] == ["echo: one", "echo: two"]


async def test_topics_are_answered_in_their_thread_and_followed(make_agent, telegram) -> None:
    telegram.message("@agent_bot hi in the topic", chat=-200, chat_type="supergroup", thread=9)
    async with make_agent():
        await telegram.wait_for(lambda: len(telegram.sent) == 1)
        telegram.message("a follow-up without a mention", chat=-200, chat_type="supergroup",
                         thread=9)  # fmt: skip
        await telegram.wait_for(lambda: len(telegram.sent) == 2)
        telegram.message("another topic", chat=-200, chat_type="supergroup", thread=10)
        await asyncio.sleep(0.3)
    assert [s["message_thread_id"] for s in telegram.sent] == [9, 9]


async def test_the_chat_is_the_context(make_agent, telegram) -> None:
    telegram.message(
        "the harbour is teal today",
        chat=-300,
        chat_type="group",
        user={"id": 8, "is_bot": False, "first_name": "Bo", "username": "bo"},
    )
    telegram.message("@agent_bot what colour is it?", chat=-300, chat_type="group")
    async with make_agent():
        await telegram.wait_for(lambda: len(telegram.sent) == 1)
    scripted = next(m for n, m in sys.modules.items() if n.startswith("aigent_local_plugin_scr"))
    system = scripted.CALLS[-1]["messages"][0].content
    assert "The conversation so far in this telegram channel:" in system
    assert "bo: the harbour is teal today" in system


async def test_bots_are_answered_a_few_turns_then_not(make_agent, telegram) -> None:
    other = {"id": 31, "is_bot": True, "first_name": "Other", "username": "other_bot"}
    for i in range(4):
        telegram.message(f"round {i}", user=other, chat=-400, chat_type="group",
                         reply_to_bot=True)  # fmt: skip
    async with make_agent(max_bot_turns=2):
        await telegram.wait_for(lambda: len(telegram.sent) == 2)
        await asyncio.sleep(0.3)
        assert len(telegram.sent) == 2
        telegram.message("a person", chat=-400, chat_type="group", reply_to_bot=True)
        telegram.message("round 5", user=other, chat=-400, chat_type="group", reply_to_bot=True)
        await telegram.wait_for(lambda: len(telegram.sent) == 4)


async def test_long_replies_are_split_under_4096(make_agent, telegram) -> None:
    sentence = "Telegram splits nothing for you. "
    telegram.message((sentence * 300).strip())  # about 10k characters
    async with make_agent():
        await telegram.wait_for(lambda: len(telegram.sent) >= 3)
        await asyncio.sleep(0.2)
    assert len(telegram.sent) == 3
    assert all(len(s["text"]) <= LIMIT for s in telegram.sent)
    assert all(s["text"].endswith(".") for s in telegram.sent)
    assert telegram.sent[0]["reply_parameters"] and telegram.sent[1]["reply_parameters"] is None


async def test_429_and_malformed_bodies_are_waited_out(make_agent, telegram) -> None:
    telegram.fail("getUpdates", 200, b"<html>bad gateway</html>")
    telegram.fail("sendMessage", 429, json.dumps({
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1}}).encode())  # fmt: skip
    telegram.message("hello")
    async with make_agent():
        await telegram.wait_for(lambda: len(telegram.sent) == 1, within=15)
    sends = [m for m, _ in telegram.calls if m == "sendMessage"]
    assert len(sends) == 2  # the 429, then the retry after retry_after
    assert telegram.sent[0]["text"] == "echo: hello"


async def test_refusals_are_reported_and_the_update_is_not_retried(
    make_agent, telegram, caplog
) -> None:
    caplog.set_level(logging.WARNING, "aigent.telegram")
    telegram.fail("sendMessage", 403, json.dumps({
        "ok": False, "error_code": 403,
        "description": "Forbidden: bot was blocked by the user"}).encode())  # fmt: skip
    telegram.message("are you there?")
    telegram.message("second")
    async with make_agent():
        await telegram.wait_for(lambda: len(telegram.sent) == 1)
    assert "bot was blocked by the user" in caplog.text
    assert [s["text"] for s in telegram.sent] == ["echo: second"]


async def test_a_bad_token_stops_with_a_clear_message_and_is_never_logged(
    make_agent, telegram, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_agent(secrets={"TELEGRAM_BOT_TOKEN": "999:wrong-token-xyz"}):
        await telegram.wait_for(lambda: "refused the bot token" in caplog.text)
    assert "wrong-token" not in caplog.text and TOKEN not in caplog.text


def test_api_base_must_be_telegram_or_local() -> None:
    from aigent_telegram.api import TelegramError, api_base

    assert api_base(None) == "https://api.telegram.org"
    with pytest.raises(TelegramError, match="not on this machine"):
        api_base("https://telegram-proxy.example.com")


def test_runs_dry_without_a_token(tmp_path) -> None:
    character = tmp_path / "dry.json"
    character.write_text(json.dumps({
        "name": "Dry", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
        "clients": ["telegram"], "memory": {"enabled": False}, "data_dir": str(tmp_path / "d"),
        "connector": {"enabled": False},
    }))  # fmt: skip
    code = (
        "import asyncio, logging\nfrom aigent import Agent\n"
        "logging.basicConfig()\n"
        f"agent = Agent.from_file({str(character)!r})\n"
        "async def main():\n"
        "    async with agent:\n"
        "        await asyncio.sleep(0.2)\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TELEGRAM_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Dry on Telegram: dry run, not connected (set TELEGRAM_BOT_TOKEN)" in result.stderr


@pytest.mark.parametrize(("spend_from", "offered"), [(None, False), (["telegram"], True)])
async def test_value_moving_actions_are_offered_on_telegram_only_if_allowed(
    make_agent, telegram, spend_from: list[str] | None, offered: bool
) -> None:
    @moves_value
    def send_money(to: str) -> str:
        """Send money."""
        return "sent"

    class Money:
        @hookimpl
        def register_actions(self, register: Any) -> None:
            register(Action.from_function(send_money))

    telegram.message("please send_money to me")
    async with make_agent(plugins=[Money()], spend_from=spend_from):
        await telegram.wait_for(lambda: len(telegram.sent) == 1)
    scripted = next(m for n, m in sys.modules.items() if n.startswith("aigent_local_plugin_scr"))
    assert ("send_money" in [t.name for t in scripted.CALLS[-1]["tools"]]) is offered
