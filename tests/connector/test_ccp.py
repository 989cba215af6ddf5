"""Route broadcast (CCP): the ilp-protocol-ccp vectors byte for byte, and two nodes that learn
each other's routes over BTP, withdraw them, and refuse loops and children."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aigent_connector.ccp import (
    CONTROL,
    SYNC,
    UPDATE,
    ControlRequest,
    Route,
    UpdateRequest,
    decode_control,
    decode_update,
    encode_control,
    encode_update,
    peer_prepare,
)
from aigent_connector.config import parse_config
from aigent_connector.connector import Connector, Peer
from aigent_connector.ledger import SqliteLedger
from aigent_connector.node import Node
from aigent_connector.packets import Fulfill, InvalidPacket, Prepare, Reject, decode

from tests.connector.test_admin import CONDITION, FULFILLMENT, _soon
from tests.connector.test_interop_js import JsConnector, btp_server_account, free_port, wait_port
from tests.connector.test_interop_js import node_modules as node_modules  # a fixture

VECTORS = {
    v["id"]: v
    for v in json.loads((Path(__file__).parents[1] / "data" / "ilp-vectors.json").read_text())[
        "ccp"
    ]
}


def test_route_control_vector() -> None:
    v = VECTORS["ccp/route_control_request_payload"]
    control = decode_control(bytes.fromhex(v["hex"]))
    assert control == ControlRequest(SYNC, "70d1a134-a0df-4f47-964f-6e19e2ab3790", 32,
                                     ("foo", "bar"))  # fmt: skip
    assert encode_control(control).hex() == v["hex"]
    prepare = decode(bytes.fromhex(VECTORS["ccp/route_control_request_ilp_prepare"]["hex"]))
    assert isinstance(prepare, Prepare) and prepare.destination == CONTROL
    assert prepare.data.hex() == v["hex"] and prepare.execution_condition == peer_prepare(
        CONTROL, b"").execution_condition  # fmt: skip


def test_route_update_vectors() -> None:
    v = VECTORS["ccp/route_update_request_payload_simple"]
    simple = decode_update(bytes.fromhex(v["hex"]))
    assert simple == UpdateRequest("21e55f8e-abcd-4e97-9ab9-bf0ff00a224c", 52, 52, 52, 30000,
                                   "example.alice")  # fmt: skip
    assert encode_update(simple).hex() == v["hex"]
    raw = VECTORS["ccp/route_update_request_ilp_prepare_complex"]
    prepare = decode(bytes.fromhex(raw["hex"]))
    assert isinstance(prepare, Prepare) and prepare.destination == UPDATE
    update = decode_update(prepare.data)
    fields = raw["fields"]
    assert (update.current_epoch, update.from_epoch, update.to_epoch) == (52, 46, 50)
    assert update.withdrawn_routes == tuple(fields["withdrawnRoutes"])
    for route, want in zip(update.new_routes, fields["newRoutes"], strict=True):
        assert route.prefix == want["prefix"] and list(route.path) == want["path"]
        assert route.auth == base64.b64decode(want["auth_b64"])
    props = update.new_routes[1].props
    assert props[0].value == b"hello world" and props[0].transitive and props[0].utf8
    assert props[1].value == bytes.fromhex("a0a0a0a0") and props[1].optional
    assert props[1].partial and not props[1].utf8 and props[1].id == 1
    assert encode_update(update) == prepare.data


def test_malformed_ccp_data_is_an_invalid_packet() -> None:
    with pytest.raises(InvalidPacket, match="mode"):
        decode_control(bytes([7]) + bytes(20) + b"\x01\x00")
    with pytest.raises(InvalidPacket, match="route update"):
        decode_update(b"\x00" * 10)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("A_B", "KID"):
        monkeypatch.setenv(f"{name}_BTP_TOKEN", f"{name.lower()}-token-value")


def a_config(tmp: Path) -> dict[str, Any]:
    return {"node_id": "a", "address": "g.a", "ledger_path": str(tmp / "a.sqlite"),
            "listen": {"port": 0}, "route_broadcast": True, "broadcast_interval": 0.2,
            "peers": {"b": {"relation": "peer", "token_env": "A_B_BTP_TOKEN"},
                      "kid": {"relation": "child", "token_env": "KID_BTP_TOKEN"}}}  # fmt: skip


async def until(check: Callable[[], bool], within: float = 10) -> None:
    for _ in range(int(within / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


@pytest.fixture
async def pair(tmp_path: Path, env: None) -> AsyncIterator[tuple[Node, Node, Node]]:
    a = await Node(parse_config(a_config(tmp_path))).start()
    url = f"ws://127.0.0.1:{a.btp_port}"
    b = await Node(parse_config({
        "node_id": "b", "address": "g.b", "ledger_path": str(tmp_path / "b.sqlite"),
        "route_broadcast": True, "broadcast_interval": 0.2,
        "peers": {"a": {"relation": "peer", "url": url, "token_env": "A_B_BTP_TOKEN"}},
    })).start()  # fmt: skip
    kid = await Node(parse_config({
        "node_id": "kid", "parent": "a", "ledger_path": str(tmp_path / "kid.sqlite"),
        "peers": {"a": {"relation": "parent", "url": url, "token_env": "KID_BTP_TOKEN"}},
    })).start()  # fmt: skip
    try:
        yield a, b, kid
    finally:
        for node in (kid, b, a):
            await node.stop()


async def test_peers_learn_each_others_routes_and_pay_along_them(
    pair: tuple[Node, Node, Node],
) -> None:
    a, b, kid = pair

    async def kid_receives(source: str, prepare: Prepare) -> Fulfill | Reject:
        return Fulfill(FULFILLMENT, b"kid got it")

    kid.connector.set_packet_handler(kid_receives)
    await until(lambda: ("g.a.kid", "a") in b.connector.routes.items())
    assert ("g.a", "a") in b.connector.routes.items()
    assert ("g.b", "b") in a.connector.routes.items()
    # b has no static route to a's child: the learned one carries the payment.
    answer = await b.connector.send(Prepare(40, _soon(), CONDITION, "g.a.kid"))
    assert isinstance(answer, Fulfill) and answer.data == b"kid got it"
    # The child was never asked for routes and never sent any.
    assert kid.connector.routes.items() == [("", "a")]
    # a forgets its child: the next broadcast withdraws g.a.kid from b.
    await a.connector.remove_peer("kid")
    await until(lambda: "g.a.kid" not in dict(b.connector.routes.items()))
    assert ("g.a", "a") in b.connector.routes.items()


async def test_loops_static_routes_and_strangers(pair: tuple[Node, Node, Node]) -> None:
    a, b, _ = pair
    assert a.ccp is not None
    await until(lambda: ("g.b", "b") in a.connector.routes.items())
    a.connector.routes.add("g.static", "b")
    update = UpdateRequest(
        b.ccp.table_id if b.ccp else "", 99, 0, 99, 45000, "g.b",
        (Route("g.loop", ("g.b", "g.a", "g.x")), Route("g.a.mine", ("g.b",)),
         Route("g.static", ("g.b", "g.other")), Route("g.fresh", ("g.b", "g.c"))),
    )  # fmt: skip
    answer = await a.connector.handle_prepare("b", peer_prepare(UPDATE, encode_update(update)))
    assert isinstance(answer, Fulfill)
    routes = dict(a.connector.routes.items())
    assert "g.loop" not in routes and "g.a.mine" not in routes  # a loop; under our address
    assert routes["g.fresh"] == "b" and routes["g.static"] == "b"
    assert "g.static" not in a.ccp.learned["b"].routes  # static stays static
    # A child may not push routes; garbage is F01.
    stranger = await a.connector.handle_prepare("kid", peer_prepare(UPDATE, encode_update(update)))
    assert isinstance(stranger, Reject) and stranger.code == "F02"
    garbage = await a.connector.handle_prepare("b", peer_prepare(CONTROL, b"\x09"))
    assert isinstance(garbage, Reject) and garbage.code == "F01"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for ilp-connector")
async def test_routes_are_exchanged_with_the_reference_connector(
    node_modules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ilp-connector (test.js, with a child 'sender') peers with our node (test.py, with a
    child 'bob'); neither side has a static route to the other, CCP supplies both."""
    monkeypatch.setenv("JS_BTP_TOKEN", "js-token")
    monkeypatch.setenv("BOB_BTP_TOKEN", "bob-token-value")
    ports = {"sender": free_port(), "py": free_port()}
    py = await Node(parse_config({
        "node_id": "py", "address": "test.py", "ledger_path": str(tmp_path / "py.sqlite"),
        "listen": {"port": ports["py"]}, "route_broadcast": True, "broadcast_interval": 0.5,
        "peers": {"js": {"relation": "peer", "token_env": "JS_BTP_TOKEN"},
                  "bob": {"relation": "child", "token_env": "BOB_BTP_TOKEN"}},
    })).start()  # fmt: skip
    js = JsConnector({
        "ilpAddress": "test.js", "backend": "one-to-one", "spread": 0,
        "routeBroadcastInterval": 500,
        "accounts": {
            "sender": btp_server_account(ports["sender"], "sender-secret"),
            "py": {"relation": "peer", "assetCode": "XRP", "assetScale": 6,
                   "plugin": "ilp-plugin-btp",
                   "options": {"server": f"btp+ws://js:js-token@127.0.0.1:{ports['py']}"}},
        },
    }, tmp_path / "ilp-connector.log")  # fmt: skip
    nodes: list[Any] = []
    try:
        await wait_port(ports["sender"])  # ilp-connector is READY once its child is connected
        sender = Connector("", SqliteLedger(tmp_path / "sender.sqlite"))
        nodes.append(sender)
        sender.add_peer(Peer("parent", "parent"))
        sender.routes.add("", "parent")
        await sender.connect(f"ws://127.0.0.1:{ports['sender']}", "parent", "sender",
                             "sender-secret")  # fmt: skip
        await js.ready()
        await sender.fetch_address("parent")
        bob = Connector("test.py.bob", SqliteLedger(tmp_path / "bob.sqlite"))
        nodes.append(bob)
        bob.add_peer(Peer("py", "parent"))
        await bob.connect(f"ws://127.0.0.1:{ports['py']}", "py", "bob", "bob-token-value")

        async def fulfil(source: str, p: Prepare) -> Fulfill | Reject:
            return Fulfill(FULFILLMENT, b"got it")

        bob.set_packet_handler(fulfil)
        sender.set_packet_handler(fulfil)
        await until(lambda: ("test.js", "js") in py.connector.routes.items(), 30)
        # ilp-connector learned test.py (and bob under it) from us: the packet reaches bob.
        for _ in range(60):
            answer = await sender.send(Prepare(30, _soon(), CONDITION, "test.py.bob"))
            if isinstance(answer, Fulfill) or answer.code != "F02":
                break
            await asyncio.sleep(0.5)  # its routing table updates on its own schedule
        assert isinstance(answer, Fulfill) and answer.data == b"got it", answer
        back = await py.connector.send(Prepare(20, _soon(), CONDITION, "test.js.sender"))
        assert isinstance(back, Fulfill) and back.data == b"got it"
        assert py.connector.ledger.account("js").balance == 30 - 20
    finally:
        for node in nodes:
            await node.stop()
        await py.stop()
        js.stop()
