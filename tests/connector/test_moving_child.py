"""A child that moves to another host: it authenticates again from the new one while the hub
may still hold its old link (a host that died without closing its sockets), and it keeps the
address its parent gives it; an address configured apart from the parent's is refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aigent_connector import btp_packets as btp
from aigent_connector import ws as websocket
from aigent_connector.btp import auth_frame
from aigent_connector.config import ConfigError
from aigent_connector.node import Node
from aigent_connector.packets import Fulfill, Prepare

from tests.connector.test_admin import CONDITION, Network, child_config, start_network
from tests.connector.test_admin import tokens as tokens  # a fixture, used by name


@pytest.fixture
async def net(tmp_path: Path, tokens: None) -> AsyncIterator[Network]:
    network = await start_network(tmp_path)
    try:
        yield network
    finally:
        await network.stop()


async def pay_bob(net: Network) -> Fulfill:
    expires = datetime.now(UTC) + timedelta(seconds=10)
    answer = await net.alice.connector.send(Prepare(100, expires, CONDITION, "g.hub.bob"))
    assert isinstance(answer, Fulfill), answer
    return answer


async def test_the_newest_link_of_a_child_replaces_one_left_open(
    net: Network, tmp_path: Path
) -> None:
    assert net.hub.btp_port is not None
    await net.bob.stop()  # bob leaves this host...
    # ...and what the hub still holds is a link that stays open and silent, as one to a host
    # that died with its sockets open would until pings time out (the ws layer answers pings).
    stale = await websocket.connect(f"ws://127.0.0.1:{net.hub.btp_port}")
    await stale.send(btp.encode(auth_frame("bob", os.environ["BOB_BTP_TOKEN"])))
    assert isinstance(btp.decode(await stale.recv()), btp.Response)  # authenticated as bob
    held = net.hub.connector.links["bob"]

    moved = await Node(child_config(tmp_path / "new-host", "bob", net.hub.btp_port)).start()
    try:
        assert moved.connector.address == "g.hub.bob"  # the parent names the account
        await asyncio.wait_for(stale.wait_closed(), 5)  # the hub closed the one left open
        assert held.closed.is_set() and net.hub.connector.links["bob"] is not held
        net.bob = moved
        Network.__init__(net, net.hub, net.alice, moved)  # bob's packet handler, on the new node
        await pay_bob(net)
        assert [p.amount for p in net.received] == [100]
        assert net.hub.connector.ledger.account("bob").balance == -100
    finally:
        await stale.close()


async def test_a_configured_address_must_be_the_one_the_parent_gives(
    net: Network, tmp_path: Path
) -> None:
    assert net.hub.btp_port is not None
    await net.bob.stop()
    wrong = child_config(tmp_path / "wrong", "bob", net.hub.btp_port)
    wrong.address = "g.elsewhere.bob"
    with pytest.raises(ConfigError) as refused:
        await Node(wrong).start()
    message = str(refused.value)
    assert "'g.elsewhere.bob' is configured" in message and "'g.hub.bob'" in message
    assert "leave address out" in message

    same = child_config(tmp_path / "same", "bob", net.hub.btp_port)
    same.address = "g.hub.bob"
    net.bob = await Node(same).start()
    Network.__init__(net, net.hub, net.alice, net.bob)
    await pay_bob(net)
