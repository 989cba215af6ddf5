"""Two connectors on loopback over BTP: auth, delivery, forwarding, the RFC 27 error rules."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aigent_connector import btp_packets as btp
from aigent_connector.btp import auth_frame
from aigent_connector.connector import Connector, Peer
from aigent_connector.ledger import SqliteLedger
from aigent_connector.packets import AmountTooLarge, Fulfill, Prepare, Reject

SECRET = os.urandom(32)
FULFILLMENT = hashlib.sha256(SECRET).digest()
CONDITION = hashlib.sha256(FULFILLMENT).digest()


def prepare(destination: str, amount: int = 10, seconds: float = 10) -> Prepare:
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    return Prepare(amount, expires, CONDITION, destination, b"hello")


class Nodes:
    """hub (g.hub) <- BTP -> alice (child g.hub.alice) and bob (child g.hub.bob)."""

    def __init__(self, tmp: Path) -> None:
        self.hub = Connector("g.hub", SqliteLedger(tmp / "hub.sqlite"), expiry_margin=0.5)
        self.alice = Connector("", SqliteLedger(tmp / "alice.sqlite"))
        self.bob = Connector("", SqliteLedger(tmp / "bob.sqlite"))
        self.received: list[Prepare] = []

    async def start(self) -> None:
        self.hub.add_peer(Peer("alice", "child", max_packet_amount=1000))
        self.hub.add_peer(Peer("bob", "child"))
        self.hub.ledger.configure("alice", max_balance=500)
        self.port = await self.hub.listen({"alice": "alice-token", "bob": "bob-token"})
        url = f"ws://127.0.0.1:{self.port}"
        for node, name in ((self.alice, "alice"), (self.bob, "bob")):
            node.add_peer(Peer("hub", "parent"))
            node.routes.add("", "hub")
            await node.connect(url, "hub", name, f"{name}-token")
            await node.fetch_address("hub")  # IL-DCP from the parent

        async def bob_receives(source: str, p: Prepare) -> Fulfill | Reject:
            self.received.append(p)
            if p.data == b"wrong":
                return Fulfill(bytes(32))
            if p.data == b"slow":
                await asyncio.sleep(5)
            return Fulfill(FULFILLMENT, b"thanks")

        self.bob.set_packet_handler(bob_receives)

    async def stop(self) -> None:
        for node in (self.alice, self.bob, self.hub):
            await node.stop()


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    n = Nodes(tmp_path)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def test_children_get_addresses_and_pay_each_other(nodes: Nodes) -> None:
    assert nodes.alice.address == "g.hub.alice" and nodes.bob.address == "g.hub.bob"
    sent = prepare("g.hub.bob", 100)
    answer = await nodes.alice.send(sent)
    assert isinstance(answer, Fulfill) and answer.data == b"thanks"
    assert nodes.received[0].amount == 100
    # The hub shortened the expiry by its safety margin (0.5 s; timestamps carry milliseconds).
    shortened = sent.expires_at - nodes.received[0].expires_at
    assert timedelta(seconds=0.5) <= shortened < timedelta(seconds=0.501)
    assert nodes.hub.ledger.account("alice").balance == 100  # alice owes the hub
    assert nodes.hub.ledger.account("bob").balance == -100  # the hub owes bob
    assert nodes.alice.ledger.account("hub").balance == -100


async def test_switching_errors(nodes: Nodes) -> None:
    wrong = await nodes.alice.send(Prepare(10, datetime.now(UTC) + timedelta(seconds=5),
                                           CONDITION, "g.hub.bob", b"wrong"))  # fmt: skip
    assert isinstance(wrong, Reject) and wrong.code == "F05"
    unknown = await nodes.alice.send(prepare("g.hub.carol"))
    assert isinstance(unknown, Reject) and unknown.code == "F02"
    big = await nodes.alice.send(prepare("g.hub.bob", 1001))
    assert isinstance(big, Reject) and big.code == "F08"
    assert AmountTooLarge.decode(big.data) == AmountTooLarge(1001, 1000)
    over_credit = await nodes.alice.send(prepare("g.hub.bob", 600))
    assert isinstance(over_credit, Reject) and over_credit.code == "T04"
    too_short = await nodes.alice.send(prepare("g.hub.bob", seconds=0.3))
    assert isinstance(too_short, Reject) and too_short.code == "R02"
    slow = await nodes.alice.send(Prepare(10, datetime.now(UTC) + timedelta(seconds=2),
                                          CONDITION, "g.hub.bob", b"slow"))  # fmt: skip
    assert isinstance(slow, Reject) and slow.code == "R00"
    # Nothing rejected moved a balance.
    assert nodes.hub.ledger.account("alice").balance == 0
    assert nodes.hub.ledger.account("alice").reserved_in == 0


async def test_a_wrong_token_gets_an_error_and_is_dropped(nodes: Nodes) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(f"ws://127.0.0.1:{nodes.port}") as ws:
        await ws.send(btp.encode(auth_frame("alice", "not-the-token")))
        answer = btp.decode(await ws.recv())
        assert isinstance(answer, btp.Error) and answer.code == "F00"
        with pytest.raises(ConnectionClosed):  # and the server drops the connection
            await asyncio.wait_for(ws.recv(), 5)
    async with connect(f"ws://127.0.0.1:{nodes.port}") as ws:
        # Anything but auth first is refused too.
        await ws.send(btp.encode(btp.Message(7, [btp.ProtocolData("ilp", 0, b"")])))
        answer = btp.decode(await ws.recv())
        assert isinstance(answer, btp.Error) and answer.request_id == 7


async def test_malformed_ilp_in_btp_is_answered_f01(nodes: Nodes) -> None:
    link = nodes.hub.links["alice"]
    request = btp.Message(42, [btp.ProtocolData("ilp", 0, b"\x0c\x03abc")])
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    # alice's answer comes back on the hub's side of the link
    link._requests[42] = (future.set_result, loop.time() + 5)
    await link.ws.send(btp.encode(request))  # the hub sends garbage to alice
    packet = await asyncio.wait_for(future, 5)
    from aigent_connector import decode

    reject = decode(packet)
    assert isinstance(reject, Reject) and reject.code == "F01"


async def test_clients_reconnect_after_the_server_restarts(tmp_path: Path) -> None:
    server = Connector("g.srv", SqliteLedger(tmp_path / "s.sqlite"))
    server.add_peer(Peer("kid", "child"))
    port = await server.listen({"kid": "t"})
    kid = Connector("g.kid", SqliteLedger(tmp_path / "k.sqlite"))
    client = await kid.connect(f"ws://127.0.0.1:{port}", "srv", "kid", "t")
    await server.stop()
    await asyncio.sleep(0.3)
    assert not client.connected.is_set()
    again = Connector("g.srv", SqliteLedger(tmp_path / "s2.sqlite"))
    again.add_peer(Peer("kid", "child"))
    await again.listen({"kid": "t"}, port=port)
    await asyncio.wait_for(client.connected.wait(), 10)
    assert client.attempts >= 2
    await kid.stop()
    await again.stop()


async def test_rate_and_throughput_limits(tmp_path: Path) -> None:
    hub = Connector("g.hub", SqliteLedger(tmp_path / "h.sqlite"))
    hub.add_peer(Peer("fast", "child", packets_per_second=5))
    hub.add_peer(Peer("rich", "child", amount_per_second=1000))

    async def fulfil(source: str, p: Prepare) -> Fulfill | Reject:
        return Fulfill(FULFILLMENT)

    hub.set_packet_handler(fulfil)
    answers = [await hub.handle_prepare("fast", prepare("g.hub")) for _ in range(8)]
    codes = [a.code if isinstance(a, Reject) else "ok" for a in answers]
    assert codes[:5] == ["ok"] * 5 and set(codes[5:]) == {"T05"}
    big = [await hub.handle_prepare("rich", prepare("g.hub", 400)) for _ in range(3)]
    assert [isinstance(a, Fulfill) for a in big] == [True, True, False]
    assert isinstance(big[2], Reject) and big[2].code == "T04"


async def test_a_peer_that_does_not_read_gets_no_more_packets(nodes: Nodes) -> None:
    # bob stopped reading: the hub refuses at once (T03) rather than queueing without end, and
    # forwards again once bob drains. The transport's pause is set by hand, as asyncio would
    # set it (filling a real loopback socket takes megabytes and seconds).
    link = nodes.hub.links["bob"]
    link.ws.paused = True
    busy = await nodes.alice.send(prepare("g.hub.bob"))
    assert isinstance(busy, Reject) and busy.code == "T03" and busy.triggered_by == "g.hub"
    assert nodes.hub.ledger.account("alice").reserved_in == 0  # its hold was released
    link.ws.paused = False
    assert isinstance(await nodes.alice.send(prepare("g.hub.bob")), Fulfill)


async def test_the_ledger_keeps_balances_not_a_row_per_packet(nodes: Nodes) -> None:
    for _ in range(20):
        assert isinstance(await nodes.alice.send(prepare("g.hub.bob", 5)), Fulfill)
    store = nodes.hub.ledger.store
    rows = store._db.execute("SELECT COUNT(*) FROM transfers").fetchone()  # type: ignore[attr-defined]
    assert rows == (0,)  # the file does not grow with the traffic
    balances = dict(store._db.execute("SELECT id, balance FROM accounts"))  # type: ignore[attr-defined]
    assert balances["alice"] == 100 and balances["bob"] == -100


def test_routes_changed_at_run_time_take_effect_at_once() -> None:
    from aigent_connector.routing import RoutingTable

    table = RoutingTable()
    assert table.lookup("g.a.b.c") is None  # looked up (and remembered) before any route
    table.add("", "parent")
    assert table.lookup("g.a.b.c") == "parent"
    table.add("g.a", "x")
    assert table.lookup("g.a.b.c") == "x"
    table.add("g.a.b", "y")  # longer prefix wins
    assert (table.lookup("g.a.b.c"), table.lookup("g.a.bc")) == ("y", "x")
    table.remove("g.a.b")
    assert table.lookup("g.a.b.c") == "x"
