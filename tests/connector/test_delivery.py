"""Business logic in another process: a node hands packets for its address to a service over
HTTP (``POST /handle-packet``, agent-runtime's shape) and takes sends on its admin API
(``POST /ilp/send``). The service here is a small aiohttp app started by the test, the way a
service in any language would answer; the packets cross real BTP between two nodes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aigent_connector.config import ConfigError, parse_config
from aigent_connector.node import Node
from aiohttp import web

from tests.connector.test_admin import ADMIN_TOKEN, b64, hub_config

SERVICE_TOKEN = "service-" + os.urandom(8).hex()
Behaviour = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


@dataclass
class Service:
    """The business-logic server: records what it is sent, answers as ``behaviour`` says."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    behaviour: Behaviour | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(body)
        self.headers.append(dict(request.headers))
        if self.behaviour is not None:
            return await self.behaviour(body)
        return web.json_response(
            {"accept": True, "data": b64(b"receipt:" + body["amount"].encode())}
        )


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    svc = Service()
    app = web.Application()
    app.add_routes([web.post("/handle-packet", svc.handle)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    svc.url = f"http://127.0.0.1:{port}"
    try:
        yield svc
    finally:
        await runner.cleanup()


@dataclass
class Pair:
    hub: Node
    shop: Node

    @property
    def admin(self) -> str:
        assert self.hub.admin_url is not None
        return self.hub.admin_url


async def start_pair(tmp: Path, service: Service, **delivery: Any) -> Pair:
    hub = await Node(
        hub_config(
            tmp,
            {"shop": {"relation": "child", "token_env": "SHOP_BTP_TOKEN"}},
            admin={"port": 0, "token_env": "HUB_ADMIN_TOKEN", "allow_send": True},
        )
    ).start()
    assert hub.btp_port is not None
    shop = await Node(
        parse_config(
            {
                "node_id": "shop",
                "parent": "hub",
                "ledger_path": str(tmp / "shop.sqlite"),
                "peers": {
                    "hub": {
                        "relation": "parent",
                        "url": f"ws://127.0.0.1:{hub.btp_port}",
                        "token_env": "SHOP_BTP_TOKEN",
                    }
                },
                "local_delivery": {
                    "url": service.url,
                    "token_env": "SHOP_SERVICE_TOKEN",
                    **delivery,
                },
            }
        )
    ).start()
    return Pair(hub, shop)


@pytest.fixture
async def pair(
    tmp_path: Path, service: Service, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pair]:
    for name in ("ALICE", "BOB", "SHOP"):
        monkeypatch.setenv(f"{name}_BTP_TOKEN", f"{name.lower()}-" + os.urandom(8).hex())
    monkeypatch.setenv("HUB_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("SHOP_SERVICE_TOKEN", SERVICE_TOKEN)
    running = await start_pair(tmp_path, service, timeout=1.0)
    try:
        yield running
    finally:
        await running.shop.stop()
        await running.hub.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as s:
        yield s


async def ilp_send(
    http: aiohttp.ClientSession, pair: Pair, amount: str = "100", data: bytes = b"order #1",
    **extra: Any,
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    body = {"destination": "g.hub.shop", "amount": amount, "data": b64(data), **extra}
    async with http.post(f"{pair.admin}/ilp/send", json=body) as r:
        return r.status, await r.json()


def reply(body: dict[str, Any], status: int = 200) -> Behaviour:
    async def answer(_: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return answer


async def test_a_service_is_paid_through_the_connector(
    pair: Pair, service: Service, http: aiohttp.ClientSession
) -> None:
    status, answer = await ilp_send(http, pair, "100", b"order #1")
    assert status == 200
    assert answer["accepted"] is True and answer["fulfilled"] is True
    assert base64.b64decode(answer["fulfillment"]) == hashlib.sha256(b"order #1").digest()
    assert base64.b64decode(answer["data"]) == b"receipt:100"
    [seen] = service.seen
    assert seen["destination"] == "g.hub.shop" and seen["amount"] == "100"
    assert base64.b64decode(seen["data"]) == b"order #1"
    assert seen["expiresAt"].endswith("Z") and seen["paymentId"] and seen["sourcePeer"] == "hub"
    assert service.headers[0]["Authorization"] == f"Bearer {SERVICE_TOKEN}"
    # The money moved on both ledgers: the shop is owed by nobody, the hub owes the shop.
    assert pair.shop.connector.ledger.account("hub").balance == 100
    assert pair.hub.connector.ledger.account("shop").balance == -100


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ({"code": "insufficient_funds", "message": "out of stock"}, "T04"),
        ({"code": "invalid_amount", "message": "pay 200"}, "F03"),
        ({"code": "F08", "message": "too much at once"}, "F08"),
        ({"code": "no-such-code", "message": "odd"}, "F99"),
        (None, "F99"),
    ],
)
async def test_a_refusal_maps_to_its_ilp_code_and_moves_nothing(
    pair: Pair,
    service: Service,
    http: aiohttp.ClientSession,
    reason: dict[str, str] | None,
    code: str,
) -> None:
    refusal: dict[str, Any] = {"accept": False, "data": b64(b"why")}
    if reason is not None:
        refusal["rejectReason"] = reason
    service.behaviour = reply(refusal)
    status, answer = await ilp_send(http, pair)
    assert status == 200 and answer["accepted"] is False and answer["code"] == code
    assert answer["message"] == (reason["message"] if reason else "rejected by the packet handler")
    assert base64.b64decode(answer["data"]) == b"why"
    assert pair.shop.connector.ledger.account("hub").balance == 0
    assert pair.hub.connector.ledger.account("shop").balance == 0


async def _slow(_: dict[str, Any]) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.json_response({"accept": True})


@pytest.mark.parametrize(
    ("behaviour", "code", "says"),
    [
        (reply({"detail": "db down: password=hunter2"}, status=500), "T00", "HTTP 500"),
        (reply({"accepted": True}), "T00", 'no boolean "accept"'),
        (reply({"accept": "yes"}), "T00", 'no boolean "accept"'),
        (reply({"accept": True, "data": "%%%"}), "T00", "data is not valid base64"),
        (reply({"accept": True, "data": b64(b"x" * 40_000)}), "T00", "over 32767"),
        (reply({"accept": True, "fulfillment": b64(b"\x01" * 32)}), "F99", "does not match"),
        (_slow, "R00", "did not answer in time"),
    ],
    ids=[
        "500",
        "no-accept",
        "accept-not-bool",
        "bad-data",
        "big-data",
        "wrong-fulfillment",
        "slow",
    ],
)
async def test_a_broken_service_rejects_the_packet_never_the_node(
    pair: Pair,
    service: Service,
    http: aiohttp.ClientSession,
    behaviour: Behaviour,
    code: str,
    says: str,
) -> None:
    service.behaviour = behaviour
    status, answer = await ilp_send(http, pair)
    assert status == 200 and answer["accepted"] is False
    assert answer["code"] == code and says in answer["message"], answer
    assert "hunter2" not in answer["message"]  # a failing service's body stays in the log
    assert pair.shop.connector.ledger.account("hub").balance == 0
    # The node still serves the next packet.
    service.behaviour = None
    status, answer = await ilp_send(http, pair)
    assert answer["accepted"] is True


async def test_a_body_that_is_not_json_is_refused(
    pair: Pair, service: Service, http: aiohttp.ClientSession
) -> None:
    async def text(_: dict[str, Any]) -> web.StreamResponse:
        return web.Response(text="OK")

    service.behaviour = text
    _, answer = await ilp_send(http, pair)
    assert answer["code"] == "T00" and "not JSON" in answer["message"]


async def test_a_service_may_fulfil_a_condition_it_holds(
    pair: Pair, service: Service, http: aiohttp.ClientSession
) -> None:
    """A sender with its own condition (not SHA-256 of the data): the service sends the
    preimage it agreed with the sender, and the connector checks it."""
    preimage = os.urandom(32)
    service.behaviour = reply({"accept": True, "fulfillment": b64(preimage)})
    body = {"destination": "g.hub.shop", "amount": 5, "data": b64(b"invoice 7"),
            "condition": b64(hashlib.sha256(preimage).digest())}  # fmt: skip
    async with http.post(f"{pair.admin}/send", json=body) as r:
        answer = await r.json()
    assert answer["type"] == "fulfill", answer
    # Without the preimage, the data's hash cannot fulfil that condition: F99, not a bad Fulfill.
    service.behaviour = None
    async with http.post(f"{pair.admin}/send", json=body) as r:
        answer = await r.json()
    assert answer["type"] == "reject" and answer["code"] == "F99"
    assert "SHA-256(SHA-256(data))" in answer["message"]


async def test_an_unreachable_service_is_a_temporary_error(
    tmp_path: Path, service: Service, monkeypatch: pytest.MonkeyPatch,
    http: aiohttp.ClientSession,
) -> None:  # fmt: skip
    for name in ("ALICE", "BOB", "SHOP"):
        monkeypatch.setenv(f"{name}_BTP_TOKEN", f"{name.lower()}-" + os.urandom(8).hex())
    monkeypatch.setenv("HUB_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("SHOP_SERVICE_TOKEN", SERVICE_TOKEN)
    service.url = "http://127.0.0.1:9"  # discard: nothing listens
    pair = await start_pair(tmp_path, service)
    try:
        _, answer = await ilp_send(http, pair)
        assert answer["code"] == "T00" and "could not be reached" in answer["message"]
    finally:
        await pair.shop.stop()
        await pair.hub.stop()


async def test_ilp_send_refuses_bad_requests(pair: Pair, http: aiohttp.ClientSession) -> None:
    for body, says in (
        ({"destination": "g.hub.shop", "amount": "-1", "data": ""}, "amount"),
        ({"destination": "g.hub.shop", "amount": "1", "data": "%%"}, "base64"),
        ({"destination": "not an address", "amount": "1", "data": ""}, "address"),
        ({"destination": "g.hub.shop", "amount": "1"}, "data"),
        ({"destination": "g.hub.shop", "amount": "1", "data": "", "timeoutMs": 0}, "timeoutMs"),
    ):
        async with http.post(f"{pair.admin}/ilp/send", json=body) as r:
            assert r.status == 400, body
            assert says in (await r.json())["error"], body


async def test_ilp_send_answers_by_its_timeout(
    pair: Pair, service: Service, http: aiohttp.ClientSession
) -> None:
    """A service that never answers holds the sender no longer than ``timeoutMs``: either the
    connectors' expiry rejects the packet first (R00), or nothing came back and it is 408. Which
    one depends on the machine's timing, never the outcome: nothing is fulfilled."""
    service.behaviour = _slow
    started = time.monotonic()
    status, answer = await ilp_send(http, pair, timeoutMs=300)
    assert time.monotonic() - started < 3
    if status == 408:
        assert "300 ms" in answer["error"]
    else:
        assert status == 200 and answer["accepted"] is False and answer["code"] == "R00"
    assert pair.shop.connector.ledger.account("hub").balance == 0


async def test_ilp_send_with_an_amount_needs_allow_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession
) -> None:
    for name in ("ALICE", "BOB"):
        monkeypatch.setenv(f"{name}_BTP_TOKEN", f"{name.lower()}-" + os.urandom(8).hex())
    monkeypatch.setenv("HUB_ADMIN_TOKEN", ADMIN_TOKEN)
    hub = await Node(hub_config(tmp_path)).start()
    try:
        body = {"destination": "g.hub.bob", "amount": "1", "data": ""}
        async with http.post(f"{hub.admin_url}/ilp/send", json=body) as r:
            assert r.status == 403 and "allow_send" in (await r.json())["error"]
    finally:
        await hub.stop()


def test_the_service_url_and_token_are_checked_at_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base = {"node_id": "n", "address": "g.n", "ledger_path": str(tmp_path / "n.sqlite")}
    with pytest.raises(ConfigError, match=r"local_delivery\.url"):
        parse_config({**base, "local_delivery": {"url": "ftp://x"}})
    delivery = {"url": "http://127.0.0.1:1", "token_env": "NOT_SET_ANYWHERE"}
    config = parse_config({**base, "local_delivery": delivery})
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"local_delivery\.token_env"):
        asyncio.run(Node(config).start())
