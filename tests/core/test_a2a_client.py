"""The core's A2A asking side (aigent.a2a) against cards and answers of both protocol versions,
and against a hostile server: redirects not followed, oversized cards refused, a paid card's
SPSP URL on another host not paid. (Paying itself: tests/server/test_a2a_pay.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from aigent.a2a import A2AError, Means, answer_text, ask, card_url, parse_card

CARD_0_3 = {
    "name": "Old",
    "url": "http://old.example/rpc",
    "protocolVersion": "0.3.0",
    "capabilities": {},
}


def test_a_0_3_card_is_asked_with_message_send() -> None:
    card = parse_card(CARD_0_3, "http://old.example")
    assert (card.rpc_url, card.version, card.price) == ("http://old.example/rpc", "0.3", None)
    assert not card.charges


def test_a_card_without_json_rpc_is_refused_by_name() -> None:
    with pytest.raises(A2AError, match="offers no JSON-RPC interface"):
        parse_card({"name": "Grpc", "supportedInterfaces": [{"protocolBinding": "GRPC"}]}, "u")
    with pytest.raises(A2AError, match="is not http"):
        parse_card({"name": "F", "url": "file:///etc/passwd"}, "u")
    with pytest.raises(A2AError, match="price is not amount"):
        parse_card(
            {
                **CARD_0_3,
                "capabilities": {
                    "extensions": [{"uri": "urn:aigent:price:v1", "params": {"price": "free"}}]
                },
            },
            "u",
        )


def test_answers_of_both_versions() -> None:
    assert answer_text({"kind": "message", "parts": [{"kind": "text", "text": "a"}]}, "x") == "a"
    assert answer_text({"message": {"parts": [{"text": "b"}, {"text": "c"}]}}, "x") == "bc"
    done = {"status": {"state": "completed"}, "artifacts": [{"parts": [{"text": "d"}]}]}
    assert answer_text(done, "x") == "d"
    assert answer_text({"task": {**done, "status": {"state": "TASK_STATE_COMPLETED"}}}, "x") == "d"
    failed = {"status": {"state": "failed", "message": {"parts": [{"text": "no model"}]}}}
    with pytest.raises(A2AError, match=r"did not complete the task \(state failed\): no model"):
        answer_text(failed, "x")


def test_card_url() -> None:
    assert (
        card_url("http://a.example/a2a/X/") == "http://a.example/a2a/X/.well-known/agent-card.json"
    )
    assert card_url("http://a.example/card.json") == "http://a.example/card.json"


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data")

    async def huge(request: web.Request) -> web.Response:
        return web.json_response({"name": "x" * 200_000})

    async def rpc_error(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        assert body["method"] == "message/send"
        return web.json_response(
            {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32000, "message": "busy"}}
        )

    async def card(request: web.Request) -> web.Response:
        return web.json_response({**CARD_0_3, "url": f"{base}/rpc"})

    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response({**CARD_0_3, "url": "http://127.0.0.1:1/admin"})

    app = web.Application()
    app.router.add_get("/redirect/.well-known/agent-card.json", redirect)
    app.router.add_get("/huge/.well-known/agent-card.json", huge)
    app.router.add_get("/busy/.well-known/agent-card.json", card)
    app.router.add_get("/elsewhere/.well-known/agent-card.json", elsewhere)
    app.router.add_post("/rpc", rpc_error)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        yield base
    finally:
        await runner.cleanup()


async def test_a_hostile_server_is_not_followed_nor_read_past_the_cap(hostile: str) -> None:
    with pytest.raises(A2AError, match="answered HTTP 302"):
        await ask(f"{hostile}/redirect", "hi")
    with pytest.raises(A2AError, match="answered more than 65536 bytes"):
        await ask(f"{hostile}/huge", "hi")
    with pytest.raises(A2AError, match=r"Old refused the message: busy \(JSON-RPC error -32000\)"):
        await ask(f"{hostile}/busy", "hi")
    with pytest.raises(A2AError, match=r"sends messages to another host \(http://127\.0\.0\.1:1\)"):
        await ask(f"{hostile}/elsewhere", "hi")
    with pytest.raises(A2AError, match="not an http"):
        await ask("ftp://x", "hi")


@pytest.fixture
async def seller() -> AsyncIterator[str]:
    """A paid agent's card whose SPSP URL is on another host, and whose JSON-RPC is never
    reached: refusals come from the card alone."""

    def priced(**params: Any) -> dict[str, Any]:
        price = {"amount": "1000", "asset_code": "XRP", "asset_scale": 6}
        extension = {"uri": "urn:aigent:price:v1", "params": {"price": price, **params}}
        return {**CARD_0_3, "url": f"{base}/rpc", "capabilities": {"extensions": [extension]}}

    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response(priced(spsp_url="http://10.0.0.9/.well-known/pay"))

    async def unpayable(request: web.Request) -> web.Response:
        return web.json_response(priced())

    async def rpc(request: web.Request) -> web.Response:
        raise AssertionError("nothing is sent to a paid agent this side will not pay")

    app = web.Application()
    app.router.add_get("/elsewhere/.well-known/agent-card.json", elsewhere)
    app.router.add_get("/unpayable/.well-known/agent-card.json", unpayable)
    app.router.add_post("/rpc", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        yield base
    finally:
        await runner.cleanup()


class NeverPays:
    """A payment node that must not be reached."""

    async def ask(self, receiver: str, text: str, *, max_price: int | None = None) -> Any:
        raise AssertionError(f"paid {receiver}")

    async def pay(self, receiver: str, amount: int) -> int:
        raise AssertionError(f"paid {receiver}")


async def test_a_paid_card_is_paid_only_within_max_price_and_on_its_own_host(seller: str) -> None:
    async def means() -> Means:
        return Means(ilp=NeverPays())

    with pytest.raises(
        A2AError,
        match=r"per message: pass max_price of at least 1000 \(in the smallest unit of XRP\)",
    ):
        await ask(f"{seller}/elsewhere", "hi", means=means)
    with pytest.raises(A2AError, match=r"an SPSP URL on another host \(http://10\.0\.0\.9/"):
        await ask(f"{seller}/elsewhere", "hi", max_price=1000, means=means)
    with pytest.raises(A2AError, match="its card offers no way to pay"):
        await ask(f"{seller}/unpayable", "hi", max_price=1000, means=means)
