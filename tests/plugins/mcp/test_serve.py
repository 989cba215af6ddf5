"""``aigent mcp serve FILE``: the SDK's own client starts it as a stdio server, as any MCP host
(an IDE, a desktop assistant) would, and talks to the agent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from tests.fixtures.openai_server import reply

AIGENT = str(Path(sys.executable).parent / "aigent")

TOOLS_PLUGIN = '''
from aigent import hookimpl, moves_value


def weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny"


@moves_value
def tip(to: str, amount: int) -> str:
    """Tip someone."""
    return f"tipped {to} {amount}"


@hookimpl
def register_actions(register):
    print("tools loaded")  # stray stdout, as native libraries write: must not reach the client
    register(weather)
    register(tip)
'''


def served(write_character: Callable[..., Path], tmp_path: Path, model: Any, **fields: Any) -> Path:
    (tmp_path / "tools.py").write_text(TOOLS_PLUGIN, encoding="utf-8")
    data: dict[str, Any] = {
        "name": "Served",
        "bio": ["an agent reached over MCP"],
        "models": {"large": {"model": "openai/stand-in", "api_base": model.url}},
        "plugins": ["tools.py"],
        "secrets": {"OPENAI_API_KEY": "sk-test-mcp"},
        "memory": {"enabled": False},
        "connector": {"enabled": False},
        "data_dir": str(tmp_path / "data"),
        **fields,
    }
    return write_character(data)


def command(path: Path, *flags: str) -> StdioServerParameters:
    return StdioServerParameters(command=AIGENT, args=["mcp", "serve", str(path), *flags])


async def test_the_sdk_client_asks_the_agent_over_stdio(
    write_character, tmp_path, openai_server
) -> None:
    path = served(write_character, tmp_path, openai_server)
    openai_server.queue(reply("hello from the agent"))
    async with Client(command(path)) as client:
        tools = await client.list_tools()
        result = await client.call_tool("ask", {"text": "hi there", "user": "ide"})
        empty = await client.call_tool("ask", {"text": " "})
    assert [t.name for t in tools.tools] == ["ask"]  # actions only with --actions
    assert tools.tools[0].input_schema["required"] == ["text"]
    assert not result.is_error
    assert result.content[0].text == "hello from the agent"  # type: ignore[union-attr]
    assert result.structured_content is not None
    assert result.structured_content["text"] == "hello from the agent"
    sent = openai_server.requests[-1].body["messages"]
    assert sent[-1] == {"role": "user", "content": "hi there"}
    assert empty.is_error and "ask needs text" in empty.content[0].text  # type: ignore[union-attr]


async def test_with_actions_value_moving_ones_need_mcp_in_spend_from(
    write_character, tmp_path, openai_server
) -> None:
    path = served(write_character, tmp_path, openai_server)
    async with Client(command(path, "--actions")) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        weather = await client.call_tool("weather", {"city": "Oslo"})
        tip = await client.call_tool("tip", {"to": "bob", "amount": 5})
    assert "weather" in names and "tip" not in names
    assert weather.content[0].text == "Oslo: sunny"  # type: ignore[union-attr]
    assert tip.is_error and "no tool 'tip'" in tip.content[0].text  # type: ignore[union-attr]

    spender = served(write_character, tmp_path, openai_server, spend_from=["direct", "mcp"])
    async with Client(command(spender, "--actions")) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        tip = await client.call_tool("tip", {"to": "bob", "amount": 5})
    assert "tip" in names
    assert tip.content[0].text == "tipped bob 5"  # type: ignore[union-attr]


def test_stdout_carries_only_the_protocol(write_character, tmp_path, openai_server) -> None:
    # The SDK's client skips lines it cannot parse; a stricter host would not: read the wire.
    path = served(write_character, tmp_path, openai_server)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "strict-host", "version": "1"},
        },
    }
    process = subprocess.Popen(
        [AIGENT, "mcp", "serve", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(json.dumps(initialize) + "\n", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    first = json.loads(out.splitlines()[0])
    assert first["id"] == 1 and first["result"]["serverInfo"]["name"] == "Served"
    assert "tools loaded" in err and "tools loaded" not in out
