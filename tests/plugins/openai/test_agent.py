"""The direct path inside an Agent: fallback chains, streaming, and winning over litellm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aigent import Agent
from tests.fixtures.openai_server import malformed, reply, slow
from tests.plugins.openai.conftest import KEY


def only_this_plugin(path: Path) -> Agent:
    """An agent whose only model plugin is this one, whatever else is installed."""
    return Agent.from_file(path, load_installed=False)


def character(write_character, tmp_path, models: Any, **settings: Any) -> Path:  # type: ignore[no-untyped-def]
    return write_character(
        {
            "name": "Wire",
            "system": "You are Wire.",
            "models": {"large": models},
            "plugins": ["openai"],
            "secrets": {"OPENAI_API_KEY": KEY},
            "settings": {"openai": settings},
            "memory": {"enabled": False},
            "data_dir": str(tmp_path / "data"),
        }
    )


async def test_a_slow_or_garbled_model_falls_back_to_the_next(
    write_character, tmp_path, openai_server
) -> None:
    first = {"model": "openai/primary", "api_base": openai_server.url, "timeout": 0.3}
    second = {"model": "openai/backup", "api_base": openai_server.url}
    path = character(write_character, tmp_path, [first, second], retries=0)
    openai_server.queue(slow(2), reply("from backup"), malformed(), reply("backup again"))
    async with only_this_plugin(path) as agent:
        timed_out = await agent.chat("hi")
        garbled = await agent.chat("hi again")
    assert (timed_out.text, timed_out.model) == ("from backup", "openai/backup")
    assert (garbled.text, garbled.model) == ("backup again", "openai/backup")
    assert [r.body["model"] for r in openai_server.requests] == [
        "primary",
        "backup",
        "primary",
        "backup",
    ]


async def test_replies_stream_through_the_agent(write_character, tmp_path, openai_server) -> None:
    path = character(
        write_character, tmp_path, {"model": "openai/x", "api_base": openai_server.url}
    )
    openai_server.queue(reply("one two three"))
    chunks: list[str] = []
    async with only_this_plugin(path) as agent:
        answer = await agent.chat("count", on_text=chunks.append)
    assert chunks == ["one", " two", " three"] and answer.text == "one two three"
    assert answer.usage.completion_tokens == 3


def test_with_litellm_installed_too_the_direct_plugin_serves_and_litellm_stays_out(
    write_character, tmp_path, openai_server
) -> None:
    # In a fresh process, so that no other test's imports count.
    path = write_character(
        {
            "name": "Wire",
            "models": {"large": {"model": "openai/stand-in", "api_base": openai_server.url}},
            "memory": {"enabled": False},
            "data_dir": str(tmp_path / "data"),
        }
    )
    code = f"""
import asyncio, json, sys
from aigent import Agent

async def main():
    async with Agent.from_file({str(path)!r}) as agent:
        installed = sorted(agent.plugins.info)
        answer = await agent.chat("who serves?")
        return {{"installed": installed, "text": answer.text,
                 "model": type(agent.model).__module__,
                 "litellm": "litellm" in sys.modules}}

print(json.dumps(asyncio.run(main())))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"litellm", "openai"} <= set(result["installed"])
    assert result["text"] == "echo: who serves?"
    assert result["model"] == "aigent_openai.model"
    assert result["litellm"] is False
    assert openai_server.requests[0].headers["user-agent"].startswith("python-httpx/")
