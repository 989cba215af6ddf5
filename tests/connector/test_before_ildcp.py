"""A node that learns its address from its parent (IL-DCP), in the window before it has one:
the parent down at start, and a hostile child sending what it likes meanwhile."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aigent_connector import ildcp
from aigent_connector.btp import Client, Link
from aigent_connector.config import parse_config
from aigent_connector.node import Node
from aigent_connector.packets import Fulfill, Prepare, Reject, decode, encode

from tests.connector.test_interop_js import free_port

CONDITION = hashlib.sha256(bytes(32)).digest()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KID_BTP_TOKEN", "kid-" + os.urandom(8).hex())
    monkeypatch.setenv("GRANDKID_BTP_TOKEN", "grandkid-" + os.urandom(8).hex())


def hub(tmp: Path, port: int, relation: str = "child") -> Node:
    return Node(parse_config({
        "node_id": "hub", "address": "g.hub", "ledger_path": str(tmp / "hub.sqlite"),
        "listen": {"port": port},
        "peers": {"kid": {"relation": relation, "token_env": "KID_BTP_TOKEN"}},
    }))  # fmt: skip


def kid(tmp: Path, parent_port: int) -> Node:
    """A node with a parent (the hub) and a child of its own (the grandkid) that dials in."""
    return Node(parse_config({
        "node_id": "kid", "parent": "hub", "ledger_path": str(tmp / "kid.sqlite"),
        "listen": {"port": 0},
        "peers": {
            "hub": {"relation": "parent", "url": f"ws://127.0.0.1:{parent_port}",
                    "token_env": "KID_BTP_TOKEN"},
            "grandkid": {"relation": "child", "token_env": "GRANDKID_BTP_TOKEN"},
        },
    }))  # fmt: skip


async def grandkid_link(node: Node) -> tuple[Client, Link]:
    """A BTP link from the grandkid to ``node``, driven by hand: it sends what a test says."""
    for _ in range(250):  # the node listens before it asks its parent for an address
        if node.btp_port is not None:
            break
        await asyncio.sleep(0.02)
    links: list[Link] = []
    client = Client(f"ws://127.0.0.1:{node.btp_port}", "kid", "grandkid",
                    os.environ["GRANDKID_BTP_TOKEN"], lambda *_: None, links.append)  # fmt: skip
    client.start()
    await asyncio.wait_for(client.connected.wait(), 5)
    return client, links[0]


async def ask(link: Link, packet: bytes) -> Any:
    """Send raw packet bytes; the decoded answer."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    link.request(packet, 5, future.set_result)
    answer = await asyncio.wait_for(future, 6)
    return answer if isinstance(answer, Reject) else decode(answer)


def prepare(destination: str, amount: int = 0) -> Prepare:
    return Prepare(amount, datetime.now(UTC) + timedelta(seconds=10), CONDITION, destination)


@pytest.mark.slow
async def test_a_parent_down_at_start_is_retried_and_the_window_answers_sanely(
    tmp_path: Path, tokens: None
) -> None:
    port = free_port()  # nobody listens there yet: the parent is down
    node = kid(tmp_path, port)
    starting = asyncio.create_task(node.start())
    parent: Node | None = None
    client: Client | None = None
    try:
        client, link = await grandkid_link(node)
        # Before the node has an address: a malformed packet is F01, as at any other time...
        garbage = await ask(link, b"\x0c\x03abc")
        assert isinstance(garbage, Reject) and garbage.code == "F01", garbage
        assert garbage.triggered_by == ""  # no address of ours to name yet
        # ...a packet it cannot route is F02, and a child's IL-DCP request is told to retry
        # rather than handed an address under a placeholder.
        lost = await ask(link, encode(prepare("g.elsewhere")))
        assert isinstance(lost, Reject) and lost.code == "F02", lost
        early = await ask(link, encode(ildcp.request()))
        assert isinstance(early, Reject) and early.code.startswith("T"), early
        # The parent stays down past the first dial's 10 s wait; the node keeps trying.
        await asyncio.sleep(10.5)
        assert not starting.done(), starting
        parent = await hub(tmp_path, port).start()
        await asyncio.wait_for(starting, 30)
        assert node.connector.address == "g.hub.kid"
        answer = await ask(link, encode(ildcp.request()))
        assert isinstance(answer, Fulfill)
        assert ildcp.parse_response(answer).client_address == "g.hub.kid.grandkid"
    finally:
        if client is not None:
            await client.stop()
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await node.stop()
        if parent is not None:
            await parent.stop()


async def test_a_parent_that_refuses_il_dcp_stops_the_start_with_the_reason(
    tmp_path: Path, tokens: None
) -> None:
    port = free_port()
    parent = await hub(tmp_path, port, relation="peer").start()  # serves IL-DCP to children only
    node = kid(tmp_path, port)
    try:
        with pytest.raises(ConnectionError, match=r"refused IL-DCP: F02"):
            await asyncio.wait_for(node.start(), 10)
    finally:
        await node.stop()
        await parent.stop()


def test_no_address_that_is_not_one_becomes_ours() -> None:
    # A hostile (or broken) parent's IL-DCP answer: the address would name us in every Reject.
    from aigent_connector.connector import Connector
    from aigent_connector.ledger import Ledger
    from aigent_connector.packets import InvalidPacket

    with pytest.raises(InvalidPacket, match="not a valid ILP address"):
        ildcp.parse_response(ildcp.response(ildcp.Config("unset.kid", 6, "XRP")))
    with pytest.raises(ValueError, match="leave it empty"):
        Connector("unset", Ledger.__new__(Ledger))
