"""Nodes built from configuration, talking BTP to each other, driven through the real admin
HTTP API with aiohttp's client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aigent_connector.config import NodeConfig, parse_config
from aigent_connector.node import Node
from aigent_connector.packets import Fulfill, Prepare, Reject

ADMIN_TOKEN = "admin-" + os.urandom(8).hex()
SECRET = os.urandom(32)
FULFILLMENT = hashlib.sha256(SECRET).digest()
CONDITION = hashlib.sha256(FULFILLMENT).digest()


def hub_config(
    tmp: Path, peers: dict[str, dict[str, Any]] | None = None, **fields: Any
) -> NodeConfig:
    """``peers`` add to (or replace) the hub's; ``fields`` set node-level settings."""
    return parse_config({
        "node_id": "hub", "address": "g.hub", "ledger_path": str(tmp / "hub.sqlite"),
        "listen": {"port": 0}, "expiry_margin": 0.5,
        "admin": {"port": 0, "token_env": "HUB_ADMIN_TOKEN"},
        "peers": {
            "alice": {"relation": "child", "token_env": "ALICE_BTP_TOKEN",
                      "max_packet_amount": 1000, "max_balance": 5000},
            "bob": {"relation": "child", "token_env": "BOB_BTP_TOKEN"},
            **(peers or {}),
        },
        **fields,
    })  # fmt: skip


def child_config(tmp: Path, name: str, port: int, **fields: Any) -> NodeConfig:
    return parse_config({
        "node_id": name, "parent": "hub", "ledger_path": str(tmp / f"{name}.sqlite"),
        "peers": {"hub": {"relation": "parent", "url": f"ws://127.0.0.1:{port}",
                          "token_env": f"{name.upper()}_BTP_TOKEN", **fields}},
    })  # fmt: skip


class Network:
    """hub (g.hub, admin API) with children alice and bob, each a Node from configuration."""

    def __init__(self, hub: Node, alice: Node, bob: Node) -> None:
        self.hub, self.alice, self.bob = hub, alice, bob
        self.received: list[Prepare] = []

        async def bob_receives(source: str, prepare: Prepare) -> Fulfill | Reject:
            self.received.append(prepare)
            if prepare.execution_condition != CONDITION:
                return Reject("F99", "g.hub.bob", "unknown condition")
            return Fulfill(FULFILLMENT, b"thanks")

        bob.connector.set_packet_handler(bob_receives)

    @property
    def admin(self) -> str:
        assert self.hub.admin_url is not None
        return self.hub.admin_url

    async def stop(self) -> None:
        for node in (self.alice, self.bob, self.hub):
            await node.stop()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("ALICE_BTP_TOKEN", "alice-" + os.urandom(8).hex())
    monkeypatch.setenv("BOB_BTP_TOKEN", "bob-" + os.urandom(8).hex())
    monkeypatch.setenv("CAROL_BTP_TOKEN", "carol-" + os.urandom(8).hex())


async def start_network(
    tmp: Path, peers: dict[str, dict[str, Any]] | None = None, **fields: Any
) -> Network:
    hub = await Node(hub_config(tmp, peers, **fields)).start()
    assert hub.btp_port is not None
    alice = await Node(child_config(tmp, "alice", hub.btp_port)).start()
    bob = await Node(child_config(tmp, "bob", hub.btp_port)).start()
    return Network(hub, alice, bob)


@pytest.fixture
async def net(tmp_path: Path, tokens: None) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    try:
        yield network
    finally:
        await network.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as s:
        yield s


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_children_learn_their_address_from_the_configured_parent(net: Network) -> None:
    assert net.alice.connector.address == "g.hub.alice"
    assert net.bob.connector.address == "g.hub.bob"
    assert dict(net.hub.connector.routes.items()) == {"g.hub.alice": "alice", "g.hub.bob": "bob"}


async def test_every_route_but_health_needs_the_token(net: Network) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{net.admin}/health") as r:
            assert r.status == 200
            health = await r.json()
        assert health["status"] == "ok" and health["address"] == "g.hub"
        assert health["peers_connected"] == 2
        for method, path in (("GET", "/balances"), ("GET", "/metrics"), ("POST", "/send"),
                             ("GET", "/peers"), ("DELETE", "/routes/g.hub.bob")):  # fmt: skip
            async with anonymous.request(method, f"{net.admin}{path}") as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer " + ADMIN_TOKEN[:-1] + "x"}
        async with anonymous.get(f"{net.admin}/balances", headers=wrong) as r:
            assert r.status == 401
    assert ("g.hub.bob", "bob") in net.hub.connector.routes.items()  # the DELETE did nothing


async def test_send_a_packet_through_the_api(
    tmp_path: Path, tokens: None, http: aiohttp.ClientSession
) -> None:
    net = await start_network(
        tmp_path, admin={"port": 0, "token_env": "HUB_ADMIN_TOKEN", "allow_send": True}
    )
    try:
        await _send_through_the_api(net, http)
    finally:
        await net.stop()


async def _send_through_the_api(net: Network, http: aiohttp.ClientSession) -> None:
    body = {"destination": "g.hub.bob", "amount": 250, "data": b64(b"hi"),
            "condition": b64(CONDITION), "expires_in": 10}  # fmt: skip
    async with http.post(f"{net.admin}/send", json=body) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["type"] == "fulfill"
    assert base64.b64decode(answer["fulfillment"]) == FULFILLMENT
    assert base64.b64decode(answer["data"]) == b"thanks"
    assert net.received[-1].amount == 250 and net.received[-1].data == b"hi"
    async with http.get(f"{net.admin}/balances") as r:
        balances = await r.json()
    assert balances["bob"]["balance"] == -250  # the hub owes bob now
    # A generated condition is a probe nobody can fulfill: the Reject comes back as JSON.
    probe = {"destination": "g.hub.bob", "amount": 1}
    async with http.post(f"{net.admin}/send", json=probe) as r:
        answer = await r.json()
    assert answer["type"] == "reject" and answer["code"] == "F99"
    assert answer["triggered_by"] == "g.hub.bob"
    assert len(base64.b64decode(answer["condition"])) == 32
    async with http.post(f"{net.admin}/send", json={**probe, "destination": "g.nowhere"}) as r:
        assert (await r.json())["code"] == "F02"


async def test_bad_requests_get_400_with_the_reason(
    net: Network, http: aiohttp.ClientSession
) -> None:
    cases = [
        ({"destination": "g.hub.bob"}, "amount"),
        ({"destination": "g.hub.bob", "amount": -1}, "amount"),
        ({"destination": "nowhere", "amount": 1}, "not a valid ILP address"),
        ({"destination": "g.hub.bob", "amount": 1, "data": "***"}, "base64"),
        ({"destination": "g.hub.bob", "amount": 1, "condition": b64(b"short")}, "32 bytes"),
    ]
    for body, reason in cases:
        async with http.post(f"{net.admin}/send", json=body) as r:
            assert r.status == 400, body
            assert reason in (await r.json())["error"]
    async with http.post(f"{net.admin}/send", data=b"{not json") as r:
        assert r.status == 400 and "not JSON" in (await r.json())["error"]


async def test_peers_and_routes_change_at_run_time(
    tmp_path: Path, net: Network, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{net.admin}/peers") as r:
        peers = {p["account"]: p for p in await r.json()}
    assert peers["alice"]["connected"] and peers["alice"]["max_packet_amount"] == 1000
    # Add carol over the API; she dials in with her token and gets an address over IL-DCP.
    new = {"account": "carol", "relation": "child", "token_env": "CAROL_BTP_TOKEN"}
    async with http.post(f"{net.admin}/peers", json=new) as r:
        assert r.status == 201
    assert net.hub.btp_port is not None
    carol = await Node(child_config(tmp_path, "carol", net.hub.btp_port)).start()
    try:
        assert carol.connector.address == "g.hub.carol"
        async with http.post(f"{net.admin}/peers", json=new) as r:
            assert r.status == 409
        async with http.get(f"{net.admin}/peers") as r:
            assert any(p["account"] == "carol" and p["connected"] for p in await r.json())
        # A static route: g.elsewhere goes through bob.
        async with http.post(f"{net.admin}/routes", json={"prefix": "g.elsewhere",
                                                          "account": "bob"}) as r:  # fmt: skip
            assert r.status == 201
        # Bob has no route onward, so his F02 shows the hub forwarded the packet to him.
        net.bob.connector.routes.remove("")
        via_bob = await net.alice.connector.send(Prepare(5, _soon(), CONDITION, "g.elsewhere.x"))
        assert isinstance(via_bob, Reject) and via_bob.triggered_by == "g.hub.bob"
        async with http.get(f"{net.admin}/routes") as r:
            assert {"prefix": "g.elsewhere", "account": "bob"} in await r.json()
        async with http.delete(f"{net.admin}/routes/g.elsewhere") as r:
            assert r.status == 204
        gone = await net.alice.connector.send(Prepare(5, _soon(), CONDITION, "g.elsewhere.x"))
        assert isinstance(gone, Reject) and gone.code == "F02" and gone.triggered_by == "g.hub"
        async with http.post(f"{net.admin}/routes", json={"prefix": "g.x", "account": "zed"}) as r:
            assert r.status == 400
        # Removing carol closes her link and drops her route.
        async with http.delete(f"{net.admin}/peers/carol") as r:
            assert r.status == 204
        await asyncio.wait_for(carol.connector.links["hub"].closed.wait(), 5)
        assert "g.hub.carol" not in dict(net.hub.connector.routes.items())
        async with http.delete(f"{net.admin}/peers/carol") as r:
            assert r.status == 404
    finally:
        await carol.stop()


async def test_metrics_count_packets_amounts_and_balances(
    net: Network, http: aiohttp.ClientSession
) -> None:
    ok = await net.alice.connector.send(Prepare(100, _soon(), CONDITION, "g.hub.bob"))
    big = await net.alice.connector.send(Prepare(2000, _soon(), CONDITION, "g.hub.bob"))
    assert isinstance(ok, Fulfill) and isinstance(big, Reject) and big.code == "F08"
    async with http.get(f"{net.admin}/metrics") as r:
        assert r.status == 200 and r.content_type == "text/plain"
        text = await r.text()
    lines = set(text.splitlines())
    incoming = 'ilp_connector_packets_total{account="alice",direction="incoming"'
    # Alice's IL-DCP request (amount 0) was her first fulfilled packet, the payment her second.
    assert incoming + ',result="fulfilled",code=""} 2' in lines
    assert incoming + ',result="rejected",code="F08"} 1' in lines
    assert ('ilp_connector_packets_total{account="bob",direction="outgoing",'
            'result="fulfilled",code=""} 1') in lines  # fmt: skip
    assert 'ilp_connector_amount_total{account="alice",direction="incoming"} 100' in lines
    assert 'ilp_connector_balance{account="alice"} 100' in lines
    assert 'ilp_connector_balance{account="bob"} -100' in lines
    assert "ilp_connector_packets_in_flight 0" in lines
    # Answered: two IL-DCP requests, the payment and the F08.
    assert 'ilp_connector_packet_duration_seconds_bucket{le="+Inf"} 4' in lines
    assert "ilp_connector_packet_duration_seconds_count 4" in lines


async def test_a_missing_token_variable_stops_the_node_before_it_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOB_BTP_TOKEN", raising=False)
    monkeypatch.setenv("ALICE_BTP_TOKEN", "alice-token-value")
    monkeypatch.setenv("HUB_ADMIN_TOKEN", ADMIN_TOKEN)
    from aigent_connector.config import ConfigError

    with pytest.raises(ConfigError, match="BOB_BTP_TOKEN is not set"):
        await Node(hub_config(tmp_path)).start()


def _soon() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=10)


async def test_limits_from_the_config_hold_over_btp(tmp_path: Path, tokens: None) -> None:
    network = await start_network(tmp_path, peers={"alice": {
        "relation": "child", "token_env": "ALICE_BTP_TOKEN", "amount_per_second": 150,
        "max_packet_amount": 120}})  # fmt: skip
    try:
        send = network.alice.connector.send
        assert isinstance(await send(Prepare(100, _soon(), CONDITION, "g.hub.bob")), Fulfill)
        over = await send(Prepare(100, _soon(), CONDITION, "g.hub.bob"))
        assert isinstance(over, Reject) and over.code == "T04" and "throughput" in over.message
        big = await send(Prepare(121, _soon(), CONDITION, "g.hub.bob"))
        assert isinstance(big, Reject) and big.code == "F08"
    finally:
        await network.stop()


# --- a hostile holder of the admin token ---------------------------------------------------------


class Catcher:
    """A WebSocket server on loopback that keeps every frame a client sends it: where a secret
    would land if the node could be made to dial out with it."""

    def __init__(self) -> None:
        self.frames: list[bytes | str] = []
        self.server: Any = None

    async def start(self) -> str:
        from aigent_connector import ws

        async def keep(sock: ws.WebSocket) -> None:
            async for message in sock:
                self.frames.append(message)

        self.server = await ws.serve(keep, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_a_peer_added_over_the_api_cannot_carry_off_another_secret(
    net: Network, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_API_KEY", "sk-not-a-btp-token")
    alice_token = os.environ["ALICE_BTP_TOKEN"]
    catcher = Catcher()
    url = await catcher.start()
    try:
        # Any variable: the node would dial the caller's server and present it as auth_token.
        steal = {"account": "evil", "relation": "peer", "url": url, "token_env": "MODEL_API_KEY"}
        async with http.post(f"{net.admin}/peers", json=steal) as r:
            assert r.status == 400
            error = (await r.json())["error"]
        assert "_BTP_TOKEN" in error and "token" in error  # says how to do it right
        # Another peer's BTP token: named right, but alice's, not the new peer's.
        steal["token_env"] = "ALICE_BTP_TOKEN"
        async with http.post(f"{net.admin}/peers", json=steal) as r:
            assert r.status == 400
            error = (await r.json())["error"]
        assert "alice" in error and "its own" in error
        await asyncio.sleep(0.3)  # a dial, had one started, would have sent its auth by now
        sent = b"".join(f if isinstance(f, bytes) else f.encode() for f in catcher.frames)
        assert b"sk-not-a-btp-token" not in sent and alice_token.encode() not in sent
        assert "evil" not in net.hub.connector.peers
        # What is meant works: a variable of its own, named as a BTP token.
        monkeypatch.setenv("EVIL_BTP_TOKEN", "evil-token")
        steal["token_env"] = "EVIL_BTP_TOKEN"
        async with http.post(f"{net.admin}/peers", json=steal) as r:
            assert r.status == 201
    finally:
        await catcher.stop()


async def test_send_moves_no_value_unless_the_config_allows_it(
    net: Network, http: aiohttp.ClientSession
) -> None:
    paid = {"destination": "g.hub.bob", "amount": 250, "condition": b64(CONDITION)}
    async with http.post(f"{net.admin}/send", json=paid) as r:
        assert r.status == 403
        assert "allow_send" in (await r.json())["error"]
    assert net.received == [] and net.hub.connector.ledger.account("bob").balance == 0
    # A zero-amount packet (a probe, a ping) moves nothing, so it is always allowed.
    async with http.post(f"{net.admin}/send", json={**paid, "amount": 0}) as r:
        assert r.status == 200 and (await r.json())["type"] == "fulfill"


def test_an_empty_admin_token_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    from aigent_connector.admin import AdminServer
    from aigent_connector.config import ConfigError

    for token in ("", "   "):
        with pytest.raises(ConfigError, match=r"admin\.token.*empty"):
            hub_config(tmp_path, admin={"port": 0, "token": token})
        with pytest.raises(ConfigError, match=r"peers\.alice\.token.*empty"):
            hub_config(tmp_path, peers={"alice": {"relation": "child", "token": token}})
    with pytest.raises(ValueError, match="empty"):
        AdminServer(None, "")  # type: ignore[arg-type]


async def test_an_empty_token_variable_stops_the_node(
    tmp_path: Path, tokens: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aigent_connector.config import ConfigError

    monkeypatch.setenv("HUB_ADMIN_TOKEN", " ")
    with pytest.raises(ConfigError, match="HUB_ADMIN_TOKEN is empty"):
        await Node(hub_config(tmp_path)).start()
