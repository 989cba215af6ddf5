"""A2A under ``aigent serve``: the SDK's own client (a2a-sdk 1.x) reads the agent cards and sends
messages, plain and streamed, behind the same token as the REST API; a paid agent refuses a
stranger without payment and answers one when its character gives free access; ``ask_a2a``
(the action and ``Agent.ask_a2a``) asks one served agent from another, within the spending
allowlist."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, create_client
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest
from aigent_server.app import Settings

from aigent import Agent, Character, SpendDenied
from aigent.a2a import PRICE_EXTENSION, A2AError
from tests.fixtures.openai_server import OpenAIServer, reply, tool_call, trickle
from tests.server.conftest import TOKEN, Served, character, serve, stand_in
from tests.server.test_api import upload

BEARER = {"Authorization": f"Bearer {TOKEN}"}
PRICE = {"amount": 1000, "asset_code": "XRP", "asset_scale": 6}
SPENDS = {"XRP": {"per_day": 1_000_000}}


@pytest.fixture(scope="module")
def a2a_served(tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("a2a-characters")
    agents = {
        "ada": character(model, "Ada"),
        "seller": character(model, "Seller", price=PRICE),
        "freebie": character(model, "Freebie", price=PRICE, settings={"a2a": {"free": True}}),
        "asker": character(model, "Asker", spending=SPENDS),
        "picky": character(
            model,
            "Picky",
            spending={"XRP": {"per_day": 1_000_000, "allowlist": ["https://example.org/"]}},
        ),
    }
    files = []
    for slug, data in agents.items():
        path = folder / f"{slug}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        files.append(path)
    running = serve(
        Settings(
            data_dir=tmp_path_factory.mktemp("a2a-server"),
            files=files,
            token=TOKEN,
            a2a_default="Ada",
            allow_hosts=(stand_in(model),),  # the model, not the server itself
        )
    )
    try:
        with running.operator() as api:
            deadline = time.monotonic() + 60
            for data in agents.values():
                while api.get(f"/api/agents/{data['name']}").json()["state"] != "running":
                    assert time.monotonic() < deadline, f"{data['name']} did not start"
                    time.sleep(0.05)
        yield running
    finally:
        running.stop()


@asynccontextmanager
async def sdk_client(
    served: Served, name: str, *, token: bool = True, streaming: bool = False
) -> AsyncIterator[Any]:
    """The SDK's client, made the way its docs say: the card resolved from the agent's URL."""
    headers = BEARER if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        config = ClientConfig(streaming=streaming, httpx_client=http)
        client = await create_client(f"{served.url}/a2a/{name}", client_config=config)
        try:
            yield client
        finally:
            await client.close()


def _request(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


async def _ask(client: Any, text: str) -> list[Any]:
    return [event async for event in client.send_message(_request(text))]


# --- cards ---------------------------------------------------------------------------------------


async def test_the_default_agents_card_is_public_and_read_by_the_sdk(a2a_served: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as http:  # no token: a card needs no sign-in
        card = await A2ACardResolver(http, a2a_served.url).get_agent_card()
    assert card.name == "Ada"
    assert card.description == "Ada is a test agent"
    assert card.capabilities.streaming
    urls = {(i.protocol_binding, i.protocol_version, i.url) for i in card.supported_interfaces}
    assert ("JSONRPC", "1.0", f"{a2a_served.url}/a2a/Ada") in urls
    assert ("JSONRPC", "0.3", f"{a2a_served.url}/a2a/Ada") in urls
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    assert card.skills[0].id == "chat"
    (extension,) = card.capabilities.extensions
    assert extension.uri == PRICE_EXTENSION
    assert not extension.required  # Ada sells nothing
    assert extension.params["ilp_address"].startswith(("g.", "private.", "test."))


async def test_a_paid_agents_card_states_its_price_and_ilp_address(a2a_served: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{a2a_served.url}/a2a/Seller").get_agent_card()
        raw = (await http.get(f"{a2a_served.url}/a2a/Seller/.well-known/agent-card.json")).json()
    (extension,) = card.capabilities.extensions
    assert extension.required
    params = dict(extension.params)
    assert params["price"]["amount"] == "1000"
    assert params["price"]["text"] == "0.001 XRP"
    assert params["asset"] == "XRP"
    assert params["ilp_address"]
    assert params["x402"] == []  # filled in once x402 is wired in
    # The 0.3 fields are served beside 1.0's, for clients of either.
    assert raw["url"] == f"{a2a_served.url}/a2a/Seller"
    assert raw["protocolVersion"].startswith("0.3")
    # The asking side reads the same card.
    from aigent.a2a import parse_card

    parsed = parse_card(raw, a2a_served.url)
    assert parsed.charges and parsed.price_text() == "0.001 XRP" and parsed.version == "1.0"


def test_cards_of_unknown_agents_are_404(a2a_served: Served) -> None:
    with a2a_served.client() as http:
        answer = http.get("/a2a/Nobody/.well-known/agent-card.json")
    assert answer.status_code == 404
    assert "no agent named 'Nobody'" in answer.json()["detail"]


# --- messages ------------------------------------------------------------------------------------


async def test_the_sdk_client_sends_a_message_and_gets_the_reply(
    a2a_served: Served, model: OpenAIServer
) -> None:
    model.queue(reply("hello over A2A"))
    async with sdk_client(a2a_served, "Ada") as client:
        (event,) = await _ask(client, "hi Ada")
    assert event.HasField("message")
    assert event.message.role == Role.ROLE_AGENT
    assert event.message.parts[0].text == "hello over A2A"
    # Through the fleet: in the history, in a room of the A2A conversation.
    with a2a_served.operator() as api:
        rooms = api.get("/api/agents/Ada/messages").json()["rooms"]
        room = next(r for r in rooms if r.startswith("a2a-"))
        said = api.get("/api/agents/Ada/messages", params={"room": room}).json()["messages"]
    assert [m["text"] for m in said[-2:]] == ["hi Ada", "hello over A2A"]


async def test_the_sdk_client_streams_the_reply_as_it_comes(
    a2a_served: Served, model: OpenAIServer
) -> None:
    model.queue(trickle("one two three four", every=0.05))
    async with sdk_client(a2a_served, "Ada", streaming=True) as client:
        events = await _ask(client, "count")
    chunks = [
        e.artifact_update.artifact.parts[0].text for e in events if e.HasField("artifact_update")
    ]
    assert len(chunks) > 1, chunks  # streamed, not one block
    assert "".join(chunks) == "one two three four"
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    from a2a.types import TaskState

    assert states[-1] == TaskState.TASK_STATE_COMPLETED


def test_an_a2a_0_3_client_sends_message_send(a2a_served: Served, model: OpenAIServer) -> None:
    model.queue(reply("hello, 0.3"))
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m-1",
                "role": "user",
                "parts": [{"kind": "text", "text": "hi"}],
            }
        },
    }
    with a2a_served.operator() as api:
        answer = api.post("/a2a/Ada", json=body).json()
    assert answer["id"] == 7
    assert answer["result"]["kind"] == "message"
    assert answer["result"]["parts"][0]["text"] == "hello, 0.3"


def test_an_a2a_0_3_client_streams_with_message_stream(
    a2a_served: Served, model: OpenAIServer
) -> None:
    model.queue(trickle("streamed the old way", every=0.05))
    body = {
        "jsonrpc": "2.0",
        "id": "s-1",
        "method": "message/stream",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m-2",
                "role": "user",
                "parts": [{"kind": "text", "text": "stream"}],
            }
        },
    }
    events = []
    with (
        a2a_served.operator() as api,
        api.stream("POST", "/a2a/Ada", json=body, headers={"Accept": "text/event-stream"}) as sse,
    ):
        assert sse.headers["content-type"].startswith("text/event-stream")
        for line in sse.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:])["result"])
    chunks = [e["artifact"]["parts"][0]["text"] for e in events if e["kind"] == "artifact-update"]
    assert len(chunks) > 1 and "".join(chunks) == "streamed the old way"
    assert events[-1]["kind"] == "status-update" and events[-1]["status"]["state"] == "completed"


def test_a_card_lists_the_agents_actions_as_skills(a2a_served: Served) -> None:
    with a2a_served.client() as http:
        card = http.get("/a2a/Asker/.well-known/agent-card.json").json()
    skills = {s["id"]: s for s in card["skills"]}
    assert "ask_a2a" in skills
    assert skills["ask_a2a"]["description"].startswith("Ask another agent over A2A")


# --- who may -------------------------------------------------------------------------------------


async def test_an_owners_agent_refuses_a_client_without_a_token(a2a_served: Served) -> None:
    async with sdk_client(a2a_served, "Ada", token=False) as client:
        with pytest.raises(A2AClientError) as raised:
            await _ask(client, "hi")
    assert "401" in str(raised.value)
    with a2a_served.client(headers={"Authorization": "Bearer wrong"}) as http:
        answer = http.post("/a2a/Ada", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_paid_agent_refuses_a_stranger_who_does_not_pay(a2a_served: Served) -> None:
    async with sdk_client(a2a_served, "Seller", token=False) as client:
        with pytest.raises(A2AClientError) as raised:
            await _ask(client, "hi")
    assert "402" in str(raised.value)
    with a2a_served.client() as http:
        answer = http.post("/a2a/Seller", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage"})
    assert answer.status_code == 402
    assert "charges 0.001 XRP per message" in answer.json()["detail"]
    assert answer.json()["price"]["amount"] == "1000"


async def test_a_paid_agent_answers_its_owner(a2a_served: Served, model: OpenAIServer) -> None:
    model.queue(reply("for my owner, free"))
    async with sdk_client(a2a_served, "Seller") as client:
        (event,) = await _ask(client, "hi")
    assert event.message.parts[0].text == "for my owner, free"


async def test_free_access_lets_a_stranger_ask_a_paid_agent(
    a2a_served: Served, model: OpenAIServer
) -> None:
    model.queue(reply("free to all"))
    async with sdk_client(a2a_served, "Freebie", token=False) as client:
        (event,) = await _ask(client, "hi")
    assert event.message.parts[0].text == "free to all"


# --- asking other agents -------------------------------------------------------------------------


async def test_ask_a2a_from_one_served_agent_to_another(
    a2a_served: Served, model: OpenAIServer
) -> None:
    url = f"{a2a_served.url}/a2a/Freebie"
    model.queue(
        tool_call("ask_a2a", {"url": url, "question": "what is two and two?"}),
        reply("four, said Freebie"),  # Freebie's own model call
        reply("Freebie says four"),  # the asker's answer, after the tool's result
    )
    before = len(model.requests)
    with a2a_served.operator() as api:
        answer = api.post("/api/agents/Asker/messages", json={"text": "ask Freebie"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "Freebie says four"
    asked = [r.body for r in model.requests[before:]]
    assert any(m.get("content") == "what is two and two?" for m in asked[1]["messages"])
    tool_results = [m for m in asked[2]["messages"] if m["role"] == "tool"]
    assert tool_results[-1]["content"] == "four, said Freebie"


async def test_ask_a2a_off_the_allowlist_is_refused_before_anything_is_fetched(
    a2a_served: Served, model: OpenAIServer
) -> None:
    url = f"{a2a_served.url}/a2a/Freebie"
    model.queue(tool_call("ask_a2a", {"url": url, "question": "hi"}), reply("could not"))
    before = len(model.requests)
    with a2a_served.operator() as api:
        answer = api.post("/api/agents/Picky/messages", json={"text": "ask Freebie"})
    assert answer.status_code == 200, answer.text
    asked = [r.body for r in model.requests[before:]]
    assert len(asked) == 2  # Freebie was never asked
    result = [m for m in asked[1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert "not on spending.XRP.allowlist" in result


async def test_an_uploaded_agent_asks_only_hosts_the_server_allows(
    a2a_served: Served, model: OpenAIServer
) -> None:
    data = character(model, "Uppy", spending=SPENDS)
    with a2a_served.operator() as api:
        created = upload(api, data, "uppy.json")
        assert created.status_code == 201, created.text
        model.queue(
            tool_call("ask_a2a", {"url": f"{a2a_served.url}/a2a/Freebie", "question": "hi"}),
            reply("not allowed"),
        )
        before = len(model.requests)
        answer = api.post("/api/agents/Uppy/messages", json={"text": "ask Freebie"})
    assert answer.status_code == 200, answer.text
    asked = [r.body for r in model.requests[before:]]
    assert len(asked) == 2  # Freebie was never asked
    result = [m for m in asked[1]["messages"] if m["role"] == "tool"][-1]["content"]
    assert "ask_a2a was not run" in result
    assert "an uploaded character may not reach 127.0.0.1" in result


async def test_agent_ask_a2a_in_code(
    a2a_served: Served, model: OpenAIServer, tmp_path: Path
) -> None:
    """The embedding API: no agent needs to run to ask, only its spending policy."""
    agent = Agent(
        Character(name="Caller", spending={"XRP": {"per_day": 1_000_000}}),
        data_dir=tmp_path,
        load_installed=False,
    )
    try:
        model.queue(reply("answered in code"))
        answered = await agent.ask_a2a(f"{a2a_served.url}/a2a/Freebie", "hi")
        assert (answered.text, answered.rail) == ("answered in code", None)
        model.queue(reply("with a token"))
        ada = f"{a2a_served.url}/a2a/Ada/.well-known/agent-card.json"
        assert str(await agent.ask_a2a(ada, "hi", token=TOKEN)) == "with a token"
        with pytest.raises(A2AError, match="answered HTTP 401"):
            await agent.ask_a2a(ada, "hi")
        with pytest.raises(A2AError, match=r"charges 0\.001 XRP per message, more than max_price"):
            await agent.ask_a2a(f"{a2a_served.url}/a2a/Seller", "hi", max_price=999)
        # Seller's card offers no way to pay (no x402, no SPSP URL); test_a2a_pay.py pays.
        with pytest.raises(A2AError, match="its card offers no way to pay"):
            await agent.ask_a2a(f"{a2a_served.url}/a2a/Seller", "hi", max_price=1000)
    finally:
        agent.spending.close()
    picky = Agent(
        Character(
            name="Picky",
            spending={"XRP": {"per_day": 1, "allowlist": ["https://example.org/"]}},
        ),
        data_dir=tmp_path / "picky",
        load_installed=False,
    )
    try:
        # An address nothing answers at: refused by the allowlist, not by a timeout.
        with pytest.raises(SpendDenied, match=r"not on spending\.XRP\.allowlist"):
            await picky.ask_a2a("http://10.255.255.1/a2a/x", "hi")
    finally:
        picky.spending.close()


async def test_a_payment_hook_that_takes_payment_lets_a_stranger_in(
    a2a_served: Served, model: OpenAIServer
) -> None:
    """The seam x402 plugs into: ``A2ADoors.payment(request, hosted)`` returns what was paid
    (its ``payer`` names the caller to the agent) or the response to send instead."""
    from fastapi.responses import JSONResponse

    @dataclass
    class Paid:
        payer: str

    async def payment(request: Any, hosted: Any) -> Any:
        proof = request.headers.get("x-test-paid")
        if proof is None:
            return JSONResponse({"detail": f"pay {hosted.entry.name} first"}, status_code=402)
        return Paid(payer=proof)

    doors = a2a_served.server.config.app.state.a2a
    before, doors.payment = doors.payment, payment
    try:
        async with sdk_client(a2a_served, "Seller", token=False) as client:
            with pytest.raises(A2AClientError, match="402"):
                await _ask(client, "hi")
        model.queue(reply("paid for"))
        async with httpx.AsyncClient(headers={"x-test-paid": "rPayer"}, timeout=30) as http:
            config = ClientConfig(streaming=False, httpx_client=http)
            client = await create_client(f"{a2a_served.url}/a2a/Seller", client_config=config)
            (event,) = await _ask(client, "hi")
            await client.close()
        assert event.message.parts[0].text == "paid for"
    finally:
        doors.payment = before
    with a2a_served.operator() as api:
        rooms = api.get("/api/agents/Seller/messages").json()["rooms"]
        said = [
            m
            for room in rooms
            for m in api.get("/api/agents/Seller/messages", params={"room": room}).json()[
                "messages"
            ]
        ]
    assert any(m["user"] == "a2a:rPayer" and m["text"] == "hi" for m in said)
