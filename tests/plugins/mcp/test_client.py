"""aigent-mcp as a client: a real MCP server's tools become the agent's actions, called by its
model over the OpenAI wire format, under before_action and the spending policy."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import pytest

from aigent import Agent, Incoming, PluginError, hookimpl
from tests.fixtures.openai_server import reply, tool_call
from tests.plugins.mcp.conftest import MCP_SERVER, stdio_server


def tool_output(openai_server: Any) -> str:
    """What the model was told the tool said, in the request after the tool call."""
    messages = openai_server.requests[-1].body["messages"]
    return next(m["content"] for m in reversed(messages) if m["role"] == "tool")


async def test_a_stdio_servers_tools_are_actions_the_model_calls(
    mcp_character, openai_server
) -> None:
    path = mcp_character({"calc": stdio_server()})
    openai_server.queue(tool_call("calc_add", {"a": 2, "b": 40}), reply("it is 42"))
    async with Agent.from_file(path) as agent:
        answer = await agent.chat("what is 2 + 40?")
    tools = openai_server.requests[0].body["tools"]
    offered = {t["function"]["name"]: t["function"] for t in tools}
    assert {"calc_add", "calc_shout", "calc_buy", "calc_hang"} <= set(offered)
    add = offered["calc_add"]
    assert add["description"] == "Add two numbers."
    assert add["parameters"]["required"] == ["a", "b"]
    assert add["parameters"]["properties"]["a"]["type"] == "integer"
    assert answer.text == "it is 42"
    assert answer.actions[0].ok and answer.actions[0].output == "42"
    assert tool_output(openai_server) == "42"
    assert "calc_add" not in agent.actions  # the tools went with the server


async def test_a_streamable_http_server_with_a_bearer_token(
    mcp_character, openai_server, http_server
) -> None:
    path = mcp_character({"shop": {"url": http_server.url, "bearer_secret": "SHOP_TOKEN"}})
    openai_server.queue(tool_call("shop_shout", {"text": "hello"}), reply("done"))
    async with Agent.from_file(path) as agent:
        answer = await agent.chat("shout hello")
    assert answer.actions[0].output == "HELLO!"


async def test_a_server_that_refuses_the_token_is_named(
    mcp_character, openai_server, http_server
) -> None:
    path = mcp_character(
        {"shop": {"url": http_server.url, "bearer_secret": "WRONG"}},
        secrets={"OPENAI_API_KEY": "sk-test-mcp", "WRONG": "not-the-token"},
    )
    with pytest.raises(PluginError) as caught:
        await Agent.from_file(path).start()
    message = str(caught.value)
    assert f"MCP server 'shop' ({http_server.url}) could not start" in message
    assert "not-the-token" not in message


async def test_before_action_blocks_a_tool_which_then_never_runs(
    mcp_character, openai_server, ledger
) -> None:
    class NoYachts:
        @hookimpl
        def before_action(self, action: str, arguments: dict[str, Any]) -> bool:
            return not (action == "shop_buy" and arguments.get("item") == "yacht")

    path = mcp_character({"shop": stdio_server(env={"MCP_TEST_LEDGER": str(ledger)})})
    openai_server.queue(tool_call("shop_buy", {"item": "yacht"}), reply("I may not"))
    async with Agent.from_file(path, plugins=[NoYachts()]) as agent:
        answer = await agent.chat("buy me a yacht")
        bread = await agent.run_action("shop_buy", {"item": "bread"}, None)
        code = await agent.run_action("shop_buy", {"item": "yacht"}, None)
    assert answer.actions[0].ok is False
    assert "shop_buy was not run: blocked by" in answer.actions[0].output
    assert bread.ok and not code.ok  # code is held to the same policy as the model
    assert ledger.read_text().split() == ["bread"]


async def test_a_tool_that_hangs_times_out_and_the_server_still_answers(
    mcp_character, openai_server
) -> None:
    path = mcp_character({"slow": stdio_server(timeout=0.5)})
    async with Agent.from_file(path) as agent:
        hung = await agent.run_action("slow_hang", {"seconds": 30})
        after = await agent.run_action("slow_add", {"a": 1, "b": 1})
    assert hung.output == "error: slow_hang timed out after 0.5s"
    assert after.ok and after.output == "2"


async def test_a_tool_error_and_bad_arguments_reach_the_model(mcp_character, openai_server) -> None:
    path = mcp_character({"calc": stdio_server()})
    async with Agent.from_file(path) as agent:
        broken = await agent.run_action("calc_broken", {})
        wrong = await agent.run_action("calc_add", {"a": "two"})
    assert not broken.ok and "out of stock" in broken.output
    assert not wrong.ok and wrong.output.startswith("error: calc_add failed:")


async def test_servers_start_and_stop_with_the_agent(mcp_character, openai_server) -> None:
    path = mcp_character({"a": stdio_server(), "b": stdio_server()})
    agent = Agent.from_file(path)
    pids = []
    for _ in range(2):  # stopped and started again: new processes, same actions
        async with agent:
            pids.append(int((await agent.run_action("a_pid", {})).output))
            pids.append(int((await agent.run_action("b_pid", {})).output))
        for pid in pids[-2:]:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    assert len(set(pids)) == 4


async def test_a_server_that_dies_is_named_when_its_tool_is_called(
    mcp_character, openai_server
) -> None:
    path = mcp_character({"calc": stdio_server()})
    async with Agent.from_file(path) as agent:
        pid = int((await agent.run_action("calc_pid", {})).output)
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.3)
        after = await agent.run_action("calc_add", {"a": 1, "b": 1})
    assert not after.ok
    assert f"MCP server 'calc' ({sys.executable} " in after.output


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (
            {"command": sys.executable, "args": [str(MCP_SERVER), "crash"]},
            "no database configured (set SHOP_DB)",
        ),
        ({"command": "no-such-mcp-server-binary"}, ""),
    ],
)
async def test_a_server_that_fails_to_start_fails_the_agent_and_is_named(
    mcp_character, openai_server, server, said
) -> None:
    path = mcp_character({"calc": stdio_server(), "db": server})
    agent = Agent.from_file(path)
    with pytest.raises(PluginError) as caught:
        await agent.start()
    message = str(caught.value)
    where = " ".join([server["command"], *server.get("args", [])])
    assert f"MCP server 'db' ({where}) could not start" in message
    assert said in message
    assert "calc_add" not in agent.actions


async def test_a_server_that_never_answers_times_out_and_is_named(
    mcp_character, openai_server
) -> None:
    mute = {"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"]}
    path = mcp_character({"mute": {**mute, "start_timeout": 1}})
    with pytest.raises(PluginError, match=r"MCP server 'mute' \(.*\) could not start: did not "):
        await Agent.from_file(path).start()


async def test_a_value_moving_tool_pays_its_price_under_the_spending_policy(
    mcp_character, openai_server, ledger
) -> None:
    priced = {"buy": {"price": {"amount": 3000, "asset_code": "XRP", "asset_scale": 6}}}
    path = mcp_character(
        {"shop": stdio_server(tools=priced, env={"MCP_TEST_LEDGER": str(ledger)})},
        spending={"XRP": {"max_per_payment": 5000, "per_day": 5000}},
    )
    async with Agent.from_file(path) as agent:
        assert agent.actions["shop_buy"].moves_value
        first = await agent.run_action("shop_buy", {"item": "bread"}, Incoming(text="buy"))
        second = await agent.run_action("shop_buy", {"item": "jam"}, Incoming(text="buy"))
        posted = await agent.run_action(
            "shop_buy", {"item": "cake"}, Incoming(text="buy", client="twitter")
        )
        spent = agent.spending.spent("XRP", 86400)
    assert first.ok and first.output == "bought bread"
    assert not second.ok and "the daily cap of 0.005 XRP would be exceeded" in second.output
    assert not posted.ok and "spend_from" in posted.output
    assert spent == 3000
    assert ledger.read_text().split() == ["bread"]


async def test_an_elizaos_1x_character_with_plugin_mcp_works_unchanged(
    write_character, tmp_path, openai_server
) -> None:
    path = write_character(
        {
            "name": "Eliza",
            "bio": "an ElizaOS 1.x character",
            "plugins": ["@elizaos/plugin-openai", "@elizaos/plugin-mcp"],
            "settings": {
                "OPENAI_BASE_URL": openai_server.url,
                "OPENAI_LARGE_MODEL": "stand-in",
                "mcp": {
                    "servers": {
                        "calc": {
                            "type": "stdio",
                            "name": "Calculator",
                            "command": sys.executable,
                            "args": [str(MCP_SERVER), "stdio"],
                        }
                    }
                },
            },
            "secrets": {"OPENAI_API_KEY": "sk-test-mcp"},
        },
        "eliza.json",
    )
    agent = Agent.from_file(path, data_dir=tmp_path / "data")
    assert agent.character.format == "eliza-1.x"
    assert not any("settings.mcp" in w for w in agent.character.warnings)
    openai_server.queue(tool_call("calc_add", {"a": 1, "b": 2}), reply("three"))
    async with agent:
        answer = await agent.chat("1 + 2?")
    assert answer.actions[0].output == "3"


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ({"x": {"args": ["a"]}}, "settings.mcp.servers.x: Value error, give either command"),
        ({"x": {"url": "ftp://a"}}, "must start with http:// or https://"),
        ({"x y": {"command": "a"}}, "server name 'x y'"),
        ({"x": {"command": "a", "tols": {}}}, "settings.mcp.servers.x.tols: Extra inputs"),
        ({"x": {"type": "sse", "url": "http://127.0.0.1:1/sse"}}, "legacy SSE transport"),
        (
            {"x": {"url": "http://gpu-box:9000/mcp", "bearer_secret": "SHOP_TOKEN"}},
            "over plain http to http://gpu-box:9000/mcp",
        ),
    ],
)
async def test_bad_settings_are_named(mcp_character, openai_server, servers, expected) -> None:
    agent = Agent.from_file(mcp_character(servers))
    with pytest.raises(PluginError, match="plugin 'mcp'") as caught:
        await agent.start()
    assert expected in str(caught.value)
