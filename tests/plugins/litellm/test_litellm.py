"""The litellm plugin over real HTTP, against a local server speaking the OpenAI wire format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aigent import Agent, MissingSecret, ModelError, hookimpl
from tests.fixtures.openai_server import error, malformed, reply, slow, tool_call
from tests.plugins.litellm.conftest import CLI

KEY = "sk-test-4f9c2a7e1b3d5f60"
ROOT = Path(__file__).resolve().parents[3]


class Weather:
    @hookimpl
    def register_actions(self, register: Any) -> None:
        def get_weather(city: str) -> str:
            """The weather in a city."""
            return f"{city}: snow, -3°C"

        register(get_weather)


@pytest.fixture
def character(write_character, tmp_path, openai_server):  # type: ignore[no-untyped-def]
    def make(model: Any = None, **settings: Any) -> Path:
        model = model or {"model": "openai/stand-in", "api_base": openai_server.url}
        return write_character(
            {
                "name": "Remote",
                "system": "You are Remote.",
                "models": {"large": model},
                "secrets": {"OPENAI_API_KEY": KEY},
                "settings": {"litellm": {"retries": 2, **settings}},
                "memory": {"enabled": False},
                "data_dir": str(tmp_path / "data"),
            }
        )

    return make


async def test_a_plain_reply_with_tokens_and_the_key_sent(character, openai_server) -> None:
    async with Agent.from_file(character()) as agent:
        answer = await agent.chat("hello there")
    assert answer.text == "echo: hello there"
    assert answer.model == "openai/stand-in"
    assert answer.usage.completion_tokens == 3 and answer.usage.prompt_tokens > 0
    sent = openai_server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == "stand-in"
    assert sent.body["messages"][0]["role"] == "system"
    assert "You are Remote." in sent.body["messages"][0]["content"]
    assert sent.body["messages"][-1] == {"role": "user", "content": "hello there"}


async def test_cost_comes_from_the_local_price_list(character, openai_server) -> None:
    path = character({"model": "openai/gpt-4o-mini", "api_base": openai_server.url})
    async with Agent.from_file(path) as agent:
        answer = await agent.chat("price me")
    assert answer.usage.cost_usd is not None and answer.usage.cost_usd > 0


async def test_streamed_reply(character, openai_server) -> None:
    openai_server.queue(reply("one two three"))
    chunks: list[str] = []
    async with Agent.from_file(character()) as agent:
        answer = await agent.chat("count", on_text=chunks.append)
    assert chunks == ["one", " two", " three"]
    assert answer.text == "one two three"
    assert answer.usage.completion_tokens == 3
    assert openai_server.requests[0].body["stream"] is True


async def test_native_tool_call_round_trip(character, openai_server) -> None:
    openai_server.queue(tool_call("get_weather", {"city": "Oslo"}), reply("It snows in Oslo."))
    async with Agent.from_file(character(), plugins=[Weather()]) as agent:
        answer = await agent.chat("weather in Oslo?")
    assert answer.text == "It snows in Oslo."
    assert answer.actions[0].ok and answer.actions[0].output == "Oslo: snow, -3°C"
    first, second = openai_server.requests
    assert first.body["tools"][0]["function"]["name"] == "get_weather"
    assert second.body["messages"][-1]["role"] == "tool"
    assert second.body["messages"][-1]["content"] == "Oslo: snow, -3°C"
    assert second.body["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_json_in_text_tools_for_models_without_tool_support(character, openai_server) -> None:
    openai_server.queue(
        reply('{"tool": "get_weather", "arguments": {"city": "Lagos"}}'), reply("Hot in Lagos.")
    )
    async with Agent.from_file(character(tools="json"), plugins=[Weather()]) as agent:
        answer = await agent.chat("weather in Lagos?")
    assert answer.actions[0].output == "Lagos: snow, -3°C"
    assert answer.text == "Hot in Lagos."
    assert "tools" not in openai_server.requests[0].body
    assert "get_weather" in openai_server.requests[0].body["messages"][0]["content"]


async def test_malformed_tool_call_is_handled(character, openai_server) -> None:
    openai_server.queue(tool_call("get_weather", "{city: Oslo"), reply("Sorry, try again?"))
    async with Agent.from_file(character(), plugins=[Weather()]) as agent:
        answer = await agent.chat("weather?")
    assert answer.actions[0].ok is False
    assert "city: Field required" in answer.actions[0].output
    assert answer.text == "Sorry, try again?"


async def test_429_waits_for_retry_after(character, openai_server) -> None:
    openai_server.queue(error(429, "slow down", retry_after="1"), reply("done"))
    async with Agent.from_file(character()) as agent:
        started = time.monotonic()
        answer = await agent.chat("hi")
    assert answer.text == "done"
    assert time.monotonic() - started >= 1.0
    assert len(openai_server.requests) == 2


async def test_5xx_is_retried_then_reported(character, openai_server) -> None:
    openai_server.queue(error(500), error(503), reply("recovered"))
    async with Agent.from_file(character()) as agent:
        assert (await agent.chat("hi")).text == "recovered"
        openai_server.queue(error(500), error(500), error(500))
        with pytest.raises(ModelError, match="openai/stand-in"):
            await agent.chat("again")
    assert len(openai_server.requests) == 6


async def test_slow_or_malformed_answers_fall_back_to_the_next_model(
    character, openai_server
) -> None:
    first = {"model": "openai/primary", "api_base": openai_server.url, "timeout": 0.5}
    second = {"model": "openai/backup", "api_base": openai_server.url}
    openai_server.queue(slow(3), reply("from backup"), malformed(), reply("backup again"))
    async with Agent.from_file(character([first, second], retries=0)) as agent:
        timed_out = await agent.chat("hi")
        garbled = await agent.chat("hi again")
    assert (timed_out.text, timed_out.model) == ("from backup", "openai/backup")
    assert (garbled.text, garbled.model) == ("backup again", "openai/backup")


async def test_a_timeout_is_not_retried_the_chain_moves_on(character, openai_server) -> None:
    """README: timeouts move to the next model; retries are for 429 and 5xx."""
    first = {"model": "openai/primary", "api_base": openai_server.url, "timeout": 0.5}
    second = {"model": "openai/backup", "api_base": openai_server.url}
    openai_server.queue(slow(2), reply("from backup"))
    async with Agent.from_file(character([first, second], retries=3)) as agent:
        answer = await agent.chat("hi")
    assert answer.model == "openai/backup"
    assert [r.body["model"] for r in openai_server.requests] == ["primary", "backup"]


async def test_missing_key_says_how_to_fix(write_character, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    path = write_character({"name": "NoKey", "models": {"large": "openai/gpt-4o-mini"}})
    with pytest.raises(MissingSecret) as info:
        await Agent.from_file(path).start()
    message = str(info.value)
    assert "needs OPENAI_API_KEY, which is not set" in message
    assert '"models": {"large": "local"}' in message


def test_the_key_never_appears_in_logs_or_errors(character, openai_server, tmp_path) -> None:
    # Some servers echo the credential back in their error text; it must not reach the user.
    openai_server.queue(*[error(401, f"Incorrect API key provided: {KEY}")] * 2)
    env = {**os.environ, "AIGENT_LOG_LEVEL": "DEBUG"}
    result = subprocess.run(
        [*CLI, "-vv", "chat", str(character()), "-m", "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Incorrect API key provided: ***" in result.stderr
    assert KEY not in result.stderr + result.stdout


def test_litellm_is_imported_in_the_background_when_an_agent_needs_it(character) -> None:
    # anthropic/ is served by litellm alone, whatever else is installed.
    path = character({"model": "anthropic/claude-3-5-haiku-latest"})
    code = f"""
import json, sys, threading, time
import aigent_litellm
before = "litellm" in sys.modules
from aigent import Agent, Secrets
agent = Agent.from_file({str(path)!r}, secrets=Secrets({{"ANTHROPIC_API_KEY": "sk-ant-test"}}))
started = time.perf_counter()
agent.assemble()
assembled = time.perf_counter() - started
[importer] = [t for t in threading.enumerate() if t.name == "aigent-litellm-import"]
importer.join(120)
imported = time.perf_counter() - started
print(json.dumps([before, assembled, imported, "litellm" in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    before, assembled, imported, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before is False  # the plugin alone imports nothing heavy
    assert after is True
    assert assembled < imported / 2  # assembly did not wait for the import


@pytest.mark.parametrize("file", ["eliza0.character.json", "eliza1.json", "zerepy.json"])
def test_foreign_character_files_run_unchanged(file, openai_server, tmp_path) -> None:
    """Files in ElizaOS 0.x, 1.x and ZerePy formats answer through their OpenAI model, here
    pointed at the stand-in with OPENAI_API_BASE as litellm users do."""
    env = {**os.environ, "OPENAI_API_BASE": openai_server.url, "OPENAI_API_KEY": KEY}
    result = subprocess.run(
        [
            *CLI,
            "chat",
            str(ROOT / "tests/data/characters" / file),
            "-m",
            "gm",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: gm"
    system = openai_server.requests[0].body["messages"][0]["content"]
    name = json.loads((ROOT / "tests/data/characters" / file).read_text())["name"]
    assert name in system


async def test_a_cancelled_message_stops_waiting_and_the_agent_goes_on(
    character, openai_server
) -> None:
    import asyncio

    openai_server.queue(slow(3, "too late"))
    async with Agent.from_file(character()) as agent:
        task = asyncio.create_task(agent.chat("take your time"))
        for _ in range(500):  # cancel while the server is answering
            if openai_server.requests:
                break
            await asyncio.sleep(0.02)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0
        assert (await agent.chat("still there?")).text == "echo: still there?"
