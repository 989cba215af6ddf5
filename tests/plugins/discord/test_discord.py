"""The Discord client against a local server speaking Discord's gateway WebSocket and REST wire
format (tests/fixtures/discord_api.py), the agent started as users start it."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aigent_discord.client import LIMIT, DiscordClient

from aigent import Action, Agent, Outgoing, hookimpl, moves_value
from aigent.conversations import split_message
from tests.conftest import SCRIPTED_MODEL
from tests.fixtures.discord_api import BOT, TOKEN, DiscordServer


@pytest.fixture
async def discord() -> AsyncIterator[DiscordServer]:
    server = await DiscordServer().start()
    try:
        yield server
    finally:
        await server.stop()


class Receipts:
    """Stands in for an anchoring plugin: it sees every published reply and its message id."""

    def __init__(self) -> None:
        self.seen: list[Outgoing] = []

    @hookimpl
    def after_publish(self, message: Outgoing) -> None:
        message.receipts["test"] = {"message": message.channel_id}
        self.seen.append(message)


@pytest.fixture
def make_agent(write_character, tmp_path, discord):  # type: ignore[no-untyped-def]
    def make(plugins: list[Any] | None = None, secrets: dict[str, str] | None = None,
             **settings: Any) -> Agent:  # fmt: skip
        path = write_character({
            "name": "Agent", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
            "memory": {"enabled": False}, "data_dir": str(tmp_path / "data"),
            "connector": {"enabled": False}, "clients": ["discord"],
            "secrets": {"DISCORD_BOT_TOKEN": TOKEN} if secrets is None else secrets,
            "settings": {"discord": {"api_base": discord.url, **settings}},
        })  # fmt: skip
        return Agent.from_file(path, plugins=plugins or [])

    return make


def client_of(agent: Agent) -> DiscordClient:
    client = next(c for c in agent.clients if c.name == "discord")
    assert isinstance(client, DiscordClient)
    return client


async def test_mentions_and_dms_are_answered_through_the_hooks(make_agent, discord) -> None:
    receipts = Receipts()
    async with make_agent(plugins=[receipts]) as agent:
        assert client_of(agent).dry_run is False
        await discord.ready()
        identify = discord.identifies[0]
        assert identify["token"] == TOKEN and identify["intents"] & (1 << 15)
        await discord.message("just chatting, not for the bot")
        mention = await discord.message(f"<@{BOT['id']}> what is interledger?", mention=True)
        dm = await discord.message("hello in private", channel="300", guild=None)
        await discord.wait_for(lambda: len(discord.sent) == 2)
    by_channel = {m["channel_id"]: m for m in discord.sent}
    assert by_channel["100"]["content"] == "echo: @Agent what is interledger?"
    assert by_channel["100"]["message_reference"]["message_id"] == mention
    assert by_channel["100"]["allowed_mentions"] == {"parse": [], "replied_user": True}
    assert by_channel["300"]["content"] == "echo: hello in private"
    assert by_channel["300"]["message_reference"]["message_id"] == dm
    # The response hooks saw each reply with the id Discord gave it.
    assert sorted(r.channel_id or "" for r in receipts.seen) == sorted(
        m["id"] for m in discord.sent
    )
    assert all(r.client == "discord" for r in receipts.seen)
    assert all(h.get("Authorization") == f"Bot {TOKEN}" for _, _, h in discord.requests)


async def test_the_channel_is_the_context(make_agent, discord) -> None:
    async with make_agent():
        await discord.ready()
        await discord.message("the harbour is teal today", author={"id": "7", "username": "bo"})
        await discord.message(f"<@{BOT['id']}> what colour is it?", mention=True)
        await discord.wait_for(lambda: len(discord.sent) == 1)
    scripted = next(m for n, m in sys.modules.items() if n.startswith("aigent_local_plugin_scr"))
    system = scripted.CALLS[-1]["messages"][0].content
    assert "The conversation so far in this discord channel:" in system
    assert "bo: the harbour is teal today" in system


async def test_a_restart_never_answers_twice_and_resumes(make_agent, discord) -> None:
    async with make_agent():
        await discord.ready()
        first = await discord.message("<@900> one", mention=True)
        await discord.wait_for(lambda: len(discord.sent) == 1)
    # While the agent is down, a message arrives; the restart resumes the saved session and
    # Discord replays every event after the saved sequence number, the answered one included.
    await discord.message("<@900> two", mention=True)
    async with make_agent():
        await discord.wait_for(lambda: len(discord.sent) == 2)
        await asyncio.sleep(0.3)
    assert discord.resumes and discord.resumes[-1]["session_id"] == "session-1"
    assert [m["content"] for m in discord.sent] == ["echo: @Agent one", "echo: @Agent two"]
    assert discord.sent[0]["message_reference"]["message_id"] == first
    # Even a replay of an old message (a fresh session this time) is not answered again.
    async with make_agent() as agent:
        await client_of(agent).on_message({"id": first, "channel_id": "100", "guild_id": "10",
                                           "author": {"id": "2000"}, "content": "<@900> one",
                                           "mentions": [BOT]})  # fmt: skip
    assert len(discord.sent) == 2


async def test_a_message_received_but_not_handled_is_replayed_after_a_restart(
    make_agent, discord
) -> None:
    """The session is kept as of the last message handled, not the last received: what
    waited in the queue when the server went away is replayed by the next resume."""
    async with make_agent() as agent:
        await discord.ready()
        client = client_of(agent)
        client._tasks[1].cancel()  # the worker stops; the gateway keeps reading
        first = await discord.message("<@900> one", mention=True)
        await discord.message("<@900> two", mention=True)
        await discord.wait_for(lambda: client.queue.qsize() == 2)
        session, seq, data = client.queue.get_nowait()
        assert data["id"] == first
        assert await client.on_message(data, (session, seq))  # one handled, two still queued
    async with make_agent():
        await discord.wait_for(lambda: len(discord.sent) == 2)
        await asyncio.sleep(0.3)
    assert [m["content"] for m in discord.sent] == ["echo: @Agent one", "echo: @Agent two"]


async def test_a_dropped_connection_resumes_and_misses_nothing(make_agent, discord) -> None:
    async with make_agent():
        await discord.ready()
        await discord.drop(1001)
        await discord.message("<@900> while you were away", mention=True)
        await discord.wait_for(lambda: len(discord.sent) == 1)
    assert len(discord.identifies) == 1 and len(discord.resumes) == 1
    assert discord.sent[0]["content"] == "echo: @Agent while you were away"


async def test_heartbeats_are_sent_and_an_unanswered_one_reconnects(make_agent, discord) -> None:
    discord.heartbeat_interval_ms = 100
    async with make_agent():
        await discord.ready()
        await discord.wait_for(lambda: discord.heartbeats >= 3)
        assert discord.resumes == []
        discord.ack = False  # the connection went quiet: a zombie
        await discord.wait_for(lambda: len(discord.resumes) == 1)
        discord.ack = True
        await discord.message("<@900> back?", mention=True)
        await discord.wait_for(lambda: len(discord.sent) == 1)


async def test_an_expired_session_identifies_again(make_agent, discord) -> None:
    async with make_agent():
        await discord.ready()
    discord.session_id = "forgotten-by-discord"
    async with make_agent():
        await discord.wait_for(lambda: len(discord.identifies) == 2)
        await discord.ready()
        await discord.message("<@900> new session", mention=True)
        await discord.wait_for(lambda: len(discord.sent) == 1)
    assert discord.resumes[-1]["session_id"] == "session-1"


async def test_a_bad_token_stops_with_a_clear_message(make_agent, discord, caplog) -> None:
    caplog.set_level(logging.ERROR, "aigent.discord")
    async with make_agent(secrets={"DISCORD_BOT_TOKEN": "wrong-token-000000"}):
        await discord.wait_for(lambda: "refused the bot token" in caplog.text)
    assert "wrong-token" not in caplog.text


async def test_bots_are_answered_a_few_turns_then_not(make_agent, discord) -> None:
    other = {"id": "3000", "username": "otherbot", "bot": True}
    async with make_agent(max_bot_turns=2):
        await discord.ready()
        for i in range(4):
            await discord.message(f"<@900> round {i}", mention=True, author=other)
        await asyncio.sleep(0.5)
        assert len(discord.sent) == 2
        await discord.message("<@900> a person speaks", mention=True)  # resets the count
        await discord.message("<@900> round 5", mention=True, author=other)
        await discord.wait_for(lambda: len(discord.sent) == 4)


async def test_threads_it_answered_in_are_followed(make_agent, discord) -> None:
    async with make_agent():
        await discord.ready()
        await discord.dispatch("THREAD_CREATE", {"id": "555", "type": 11, "parent_id": "100"})
        await discord.message("<@900> start", mention=True, channel="555")
        await discord.wait_for(lambda: len(discord.sent) == 1)
        await discord.message("and a follow-up without a mention", channel="555")
        await discord.wait_for(lambda: len(discord.sent) == 2)
        await discord.message("a channel is not a thread", channel="100")
        await asyncio.sleep(0.3)
    assert [m["channel_id"] for m in discord.sent] == ["555", "555"]


async def test_elizaos_channel_settings_are_read_from_the_secrets(make_agent, discord) -> None:
    """ElizaOS 1.x keeps CHANNEL_IDS and friends in its settings, which become secrets."""
    secrets = {"DISCORD_API_TOKEN": TOKEN, "CHANNEL_IDS": "100,101",
               "DISCORD_LISTEN_CHANNEL_IDS": "101"}  # fmt: skip
    async with make_agent(secrets=secrets):
        await discord.ready()
        await discord.message("<@900> not one of my channels", mention=True, channel="999")
        await discord.message("<@900> a listen-only channel", mention=True, channel="101")
        await discord.message("<@900> mine", mention=True, channel="100")
        await discord.wait_for(lambda: len(discord.sent) == 1)
        await asyncio.sleep(0.3)
    assert [m["channel_id"] for m in discord.sent] == ["100"]


async def test_long_replies_are_split_under_2000(make_agent, discord) -> None:
    paragraph = " ".join(["Interledger moves value between ledgers."] * 30)
    text = "\n\n".join([paragraph] * 3)  # about 3.7k characters
    async with make_agent() as agent:
        await discord.ready()
        await discord.message(f"<@900> {text}", mention=True)
        await discord.wait_for(lambda: len(discord.sent) >= 3)
        await asyncio.sleep(0.2)
    assert all(len(m["content"]) <= LIMIT for m in discord.sent)
    assert "".join(m["content"] for m in discord.sent).replace(" ", "").replace("\n", "") == (
        f"echo: @{agent.name} {text}".replace(" ", "").replace("\n", "")
    )
    assert discord.sent[0]["message_reference"] and not discord.sent[1]["message_reference"]
    # Cuts fall on boundaries: no part starts or ends inside a word.
    assert all(m["content"].endswith(".") for m in discord.sent[:-1])
    assert split_message("x" * 4500, 2000) == ["x" * 2000, "x" * 2000, "x" * 500]


async def test_rate_limit_headers_and_429s_are_honoured(make_agent, discord) -> None:
    discord.limit, discord.reset_after = 2, 0.5
    async with make_agent() as agent:
        await discord.ready()
        client = client_of(agent)
        started = time.monotonic()
        for i in range(3):
            await client.api.send("100", f"part {i}")
        # The third waited for the bucket's reset instead of earning a 429.
        assert discord.rate_limited == 0
        assert discord.send_times[2] - discord.send_times[0] >= 0.45
        # A 429 (say, a global limit the headers did not announce) is waited out, then retried.
        discord.fail("/api/v10/channels/100/messages", 429,
                     json.dumps({"message": "You are being rate limited.", "retry_after": 0.3,
                                 "global": True}).encode())  # fmt: skip
        before = time.monotonic()
        await client.api.send("100", "after the 429")
        assert time.monotonic() - before >= 0.3
        assert discord.sent[-1]["content"] == "after the 429"
        assert time.monotonic() - started < 5


async def test_malformed_bodies_and_errors_do_not_crash(make_agent, discord, caplog) -> None:
    from aigent_discord.rest import DiscordError

    async with make_agent() as agent:
        await discord.ready()
        client = client_of(agent)
        discord.fail("/api/v10/channels/100/messages", 200, b"{not json")
        with pytest.raises(DiscordError, match="not JSON"):
            await client.api.send("100", "x")
        discord.fail("/api/v10/channels/100/messages", 403,
                     b'{"message": "Missing Permissions", "code": 50013}')  # fmt: skip
        await discord.message("<@900> can you answer here?", mention=True)
        await discord.wait_for(lambda: "Missing Permissions" in caplog.text)
        # A frame that is not JSON on the gateway is skipped; the next message is answered.
        assert discord._ws is not None
        await discord._ws.send_str("{garbage")
        await discord.message("<@900> still there?", mention=True)
        await discord.wait_for(lambda: len(discord.sent) == 1)
        # An event with a missing author or id is ignored, not fatal.
        assert await client.on_message({"channel_id": "100", "content": "x"}) is False


async def test_value_moving_actions_are_not_offered_on_discord(make_agent, discord) -> None:
    @moves_value
    def send_money(to: str) -> str:
        """Send money."""
        return "sent"

    class Money:
        @hookimpl
        def register_actions(self, register: Any) -> None:
            register(Action.from_function(send_money))

    async with make_agent(plugins=[Money()]):
        await discord.ready()
        await discord.message("<@900> please send_money to me", mention=True)
        await discord.wait_for(lambda: len(discord.sent) == 1)
    scripted = next(m for n, m in sys.modules.items() if n.startswith("aigent_local_plugin_scr"))
    assert "send_money" not in [t.name for t in scripted.CALLS[-1]["tools"]]
    assert discord.sent[0]["content"].startswith("echo:")


def test_api_base_must_be_local() -> None:
    from aigent_discord.rest import DiscordError, api_base

    with pytest.raises(DiscordError, match="not on this machine"):
        api_base("http://discord.example.com/api/v10")
    from aigent_discord.gateway import check_gateway_url

    with pytest.raises(DiscordError, match="not wss"):
        check_gateway_url("ws://gateway.example.com")


def test_runs_dry_without_a_token(tmp_path) -> None:
    character = tmp_path / "dry.json"
    character.write_text(json.dumps({
        "name": "Dry", "models": {"large": "scripted"}, "plugins": [str(SCRIPTED_MODEL)],
        "clients": ["discord"], "memory": {"enabled": False}, "data_dir": str(tmp_path / "d"),
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
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DISCORD_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Dry on Discord: dry run, not connected (set DISCORD_BOT_TOKEN)" in result.stderr
