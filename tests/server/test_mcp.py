"""MCP over streamable HTTP under ``aigent serve`` (``/mcp/<name>``): the SDK's own client
reaches a hosted agent, behind the same token or session as the REST API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from aigent_server.app import Settings
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.fixtures.openai_server import OpenAIServer, reply
from tests.server.conftest import TOKEN, Served, character, serve, sign_in
from tests.server.test_api import upload

TOOLS = '''
from aigent import hookimpl


def weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny"


@hookimpl
def register_actions(register):
    register(weather)
'''


@pytest.fixture(scope="module")
def mcp_served(tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("mcp-characters")
    (folder / "tools.py").write_text(TOOLS, encoding="utf-8")
    plain = folder / "ada.json"
    plain.write_text(json.dumps(character(model, "Ada")), encoding="utf-8")
    tooled = folder / "tooly.json"
    tooled.write_text(
        json.dumps(
            character(
                model, "Tooly", plugins=["tools.py"], settings={"mcp": {"expose_actions": True}}
            )
        ),
        encoding="utf-8",
    )
    data = tmp_path_factory.mktemp("mcp-server")
    running = serve(Settings(data_dir=data, files=[plain, tooled], token=TOKEN))
    try:
        with running.operator() as api:
            for name in ("Ada", "Tooly"):
                _wait_running(api, name)
        yield running
    finally:
        running.stop()


def _wait_running(api: httpx.Client, name: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while api.get(f"/api/agents/{name}").json()["state"] != "running":
        assert time.monotonic() < deadline, f"{name} did not start"
        time.sleep(0.05)


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=headers or {}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def test_the_sdk_client_asks_a_hosted_agent(mcp_served: Served, model: OpenAIServer) -> None:
    model.queue(reply("Ada here"))
    async with mcp_client(f"{mcp_served.url}/mcp/Ada", BEARER) as client:
        tools = await client.list_tools()
        result = await client.call_tool("ask", {"text": "who are you?", "room": "ide"})
    assert [t.name for t in tools.tools] == ["ask"]
    assert not result.is_error
    assert result.content[0].text == "Ada here"  # type: ignore[union-attr]
    assert result.structured_content is not None and "receipts" in result.structured_content
    # Through the fleet: in the room's history and the live events, from the channel "mcp".
    with mcp_served.operator() as operator:
        said = operator.get("/api/agents/Ada/messages", params={"room": "ide"}).json()
        assert [m["text"] for m in said["messages"]] == ["who are you?", "Ada here"]
        with operator.stream(
            "GET", "/api/events", params={"agent": "Ada", "kind": "message.in"}
        ) as events:
            line = next(line for line in events.iter_lines() if line.startswith("data:"))
    assert '"client": "mcp"' in line and "who are you?" in line


async def test_actions_are_tools_when_the_character_exposes_them(mcp_served: Served) -> None:
    async with mcp_client(f"{mcp_served.url}/mcp/Tooly", BEARER) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        weather = await client.call_tool("weather", {"city": "Lima"})
    assert names[0] == "ask" and "weather" in names
    assert weather.content[0].text == "Lima: sunny"  # type: ignore[union-attr]


def test_no_token_no_mcp(mcp_served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    with mcp_served.client() as anonymous:
        refused = anonymous.post("/mcp/Ada", json=body)
    with mcp_served.client(headers={"Authorization": "Bearer wrong"}) as wrong:
        bad_token = wrong.post("/mcp/Ada", json=body)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "sign in first" in refused.json()["detail"]
    assert bad_token.status_code == 401


async def test_the_sdk_client_without_a_token_is_refused(mcp_served: Served) -> None:
    with pytest.raises(BaseExceptionGroup) as caught:
        async with mcp_client(f"{mcp_served.url}/mcp/Ada") as client:
            await client.list_tools()
    refused = caught.value
    while isinstance(refused, BaseExceptionGroup):
        refused = refused.exceptions[0]
    assert isinstance(refused, MCPError)  # the SDK's word for the 401 it was given


def test_another_users_agent_is_as_absent_as_a_missing_one(mcp_served: Served) -> None:
    client, _ = sign_in(mcp_served)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    theirs = client.post("/mcp/Ada", json=body)
    client.close()
    with mcp_served.operator() as api:
        missing = api.post("/mcp/Nobody", json=body)
    assert theirs.status_code == 404 and missing.status_code == 404
    assert missing.json()["detail"] == "no agent named 'Nobody'"


async def test_a_stopped_agent_says_so_over_mcp(mcp_served: Served) -> None:
    with mcp_served.operator() as api:
        assert api.post("/api/agents/Ada/stop").status_code == 200
        try:
            async with mcp_client(f"{mcp_served.url}/mcp/Ada", BEARER) as client:
                result = await client.call_tool("ask", {"text": "hello?"})
        finally:
            api.post("/api/agents/Ada/start")
            _wait_running(api, "Ada")
    assert result.is_error
    assert "agent 'Ada' is stopped: start it first" in result.content[0].text  # type: ignore[union-attr]


def test_an_uploaded_character_may_not_run_an_mcp_server_command(mcp_served: Served) -> None:
    # A stdio server is a program the host would run for whoever uploaded the file.
    runs = {"name": "Runner", "settings": {"mcp": {"servers": {"sh": {"command": "sh"}}}}}
    reaches = {"name": "Reacher", "settings": {"mcp": {"servers": {"w": {"url": "https://x/mcp"}}}}}
    with mcp_served.operator() as api:
        refused = upload(api, runs, "runner.json")
        file = {"file": ("reacher.json", json.dumps(reaches))}
        elsewhere = api.post("/api/agents", files=file, data={"start": "false"})
    assert refused.status_code == 422
    assert "may not name settings.mcp.servers.sh.command" in refused.json()["detail"]
    # A URL server is a host like any other: only one the operator allows (confine.py).
    assert elsewhere.status_code == 422
    detail = elsewhere.json()["detail"]
    assert "settings.mcp.servers.w.url" in detail and "--allow-host" in detail
