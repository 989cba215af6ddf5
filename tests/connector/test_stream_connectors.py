"""Our sender pays our receiver across three of our connectors joined by real BTP links:
alice (sender's node) -> hub -> bob (receiver's node). Both nodes are children of the hub."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aigent_connector.connector import Connector, Peer
from aigent_connector.ledger import SqliteLedger
from aigent_connector.packets import Fulfill, Prepare, Reject
from aigent_connector.stream import Incoming, StreamPaymentError, StreamReceiver, stream_pay


@pytest.fixture
async def path(tmp_path: Path) -> AsyncIterator[dict[str, Connector]]:
    hub = Connector("test.hub", SqliteLedger(tmp_path / "hub.sqlite"))
    hub.add_peer(Peer("alice", "child", max_packet_amount=400))
    hub.add_peer(Peer("bob", "child"))
    port = await hub.listen({"alice": "alice-token", "bob": "bob-token"})
    nodes = {"hub": hub}
    try:
        for name in ("alice", "bob"):
            node = Connector("", SqliteLedger(tmp_path / f"{name}.sqlite"))
            node.add_peer(Peer("hub", "parent"))
            node.routes.add("", "hub")
            await node.connect(f"ws://127.0.0.1:{port}", "hub", name, f"{name}-token")
            await node.fetch_address("hub")
            nodes[name] = node
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()


async def test_a_paid_request_across_our_connectors(path: dict[str, Connector]) -> None:
    alice, hub, bob = path["alice"], path["hub"], path["bob"]
    received: list[tuple[str | None, int]] = []

    async def answer(incoming: Incoming) -> bytes:
        return f"{incoming.data.decode()} = 42 (paid {incoming.amount})".encode()

    receiver = StreamReceiver(
        bob.address,
        os.urandom(32),
        on_request=answer,
        on_money=lambda tag, amount: received.append((tag, amount)),
    )
    bob.set_packet_handler(lambda account, prepare: receiver.handle(prepare))  # the one line
    destination, secret = receiver.credentials("question-1")
    result = await stream_pay(alice.send, destination, secret, 1000, b"6 * 7")
    # The hub takes at most 400 per packet from alice: the first try is F08, then 400+400+200.
    assert result.reply_data == b"6 * 7 = 42 (paid 400)"
    assert result.sent == result.delivered == 1000
    assert received == [("question-1", 400), ("question-1", 400), ("question-1", 200)]
    assert alice.ledger.account("hub").balance == -1000
    assert hub.ledger.account("alice").balance == 1000
    assert hub.ledger.account("bob").balance == -1000
    assert bob.ledger.account("hub").balance == 1000


async def test_a_hop_cannot_fulfil_a_stream_packet(path: dict[str, Connector]) -> None:
    alice, hub, bob = path["alice"], path["hub"], path["bob"]
    receiver = StreamReceiver(bob.address, os.urandom(32))
    destination, secret = receiver.credentials()
    seen: list[Prepare] = []

    async def greedy_hub(account: str, prepare: Prepare) -> Fulfill | Reject:
        # The hub holds the whole packet and tries to make a fulfillment from what it sees.
        seen.append(prepare)
        data, cond = prepare.data, prepare.execution_condition
        for guess in (
            hashlib.sha256(data).digest(),
            hmac.digest(cond, data, "sha256"),
            hmac.digest(data[:32], data, "sha256"),
            bytes(32),
        ):
            if hashlib.sha256(guess).digest() == cond:
                return Fulfill(guess)
        return Fulfill(hashlib.sha256(data).digest())  # a cheat: the hub's check makes it F05

    hub.peers.pop("bob")
    hub.routes.remove(bob.address)  # bob's addresses are now "local" to the hub: it answers
    hub.set_packet_handler(greedy_hub)
    with pytest.raises(StreamPaymentError, match="F05") as caught:
        await stream_pay(alice.send, destination, secret, 100)
    assert caught.value.result.sent == 0
    assert len(seen) == 1 and seen[0].destination == destination
    assert alice.ledger.account("hub").balance == 0 and hub.ledger.account("alice").balance == 0
