"""A hostile peer floods a connector over loopback: sockets that never authenticate, large
frames before auth, side-protocol Messages, ``peer.*`` packets. Each flood is bounded in count
and time; what is checked is that the connector's memory and tasks stay capped and that
honest peers still get through."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aigent_connector import btp_packets as btp
from aigent_connector.btp import (
    MAX_SIDE_IN_FLIGHT,
    MAX_UNAUTHENTICATED,
    MAX_UNAUTHENTICATED_PER_ADDRESS,
    BtpError,
    Client,
    Link,
)
from aigent_connector.connector import Connector, Peer
from aigent_connector.ledger import SqliteLedger
from aigent_connector.packets import Fulfill, Prepare, Reject

from tests.connector.test_ws import Raw

CONDITION = hashlib.sha256(bytes(32)).digest()


class Hub:
    """A connector listening on loopback for one child, ``kid``, with token ``kid-token``."""

    def __init__(self, connector: Connector, port: int) -> None:
        self.connector, self.port = connector, port
        self.clients: list[Client] = []

    def open_sockets(self) -> int:
        return len(self.connector._servers[0]._server.connections)  # type: ignore[union-attr]

    async def link(self) -> Link:
        """An honest, authenticated link from kid."""
        links: list[Link] = []
        client = Client(f"ws://127.0.0.1:{self.port}", "hub", "kid", "kid-token",
                        lambda *_: None, links.append)  # fmt: skip
        self.clients.append(client)
        client.start()
        await asyncio.wait_for(client.connected.wait(), 10)
        return links[-1]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    connector = Connector("g.hub", SqliteLedger(tmp_path / "hub.sqlite"))
    connector.add_peer(Peer("kid", "child"))
    port = await connector.listen({"kid": "kid-token"})
    hub = Hub(connector, port)
    try:
        yield hub
    finally:
        for client in hub.clients:
            await client.stop()
        await connector.stop()
        connector.ledger.close()


async def test_sockets_that_never_authenticate_are_capped(hub: Hub) -> None:
    """From many addresses (127.0.0.0/8 is all loopback): the cap of all strangers holds."""
    flood: list[asyncio.StreamWriter] = []
    refused = 0
    try:
        for i in range(MAX_UNAUTHENTICATED + 100):
            source = (f"127.0.1.{i % 200 + 1}", 0)
            reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, local_addr=source)
            flood.append(writer)
            writer.write(b"GET / HTTP/1.1\r\n")  # and never finishes the handshake
            try:
                answer = await asyncio.wait_for(reader.read(100), 0.02)
            except TimeoutError:
                continue  # held open, waiting for us to go on
            assert answer.startswith(b"HTTP/1.1 503"), answer
            refused += 1
        assert hub.open_sockets() <= MAX_UNAUTHENTICATED
        assert refused >= 100
        # An honest peer is refused too while the flood holds every slot...
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", hub.port, local_addr=("127.0.2.1", 0)
        )
        flood.append(writer)
        assert (await asyncio.wait_for(reader.read(100), 5)).startswith(b"HTTP/1.1 503")
    finally:
        for writer in flood:
            writer.close()
    # ...and gets in once it is gone.
    for _ in range(100):
        if hub.open_sockets() == 0:
            break
        await asyncio.sleep(0.02)
    link = await hub.link()
    assert not link.closed.is_set()


async def test_one_address_cannot_take_every_strangers_slot(hub: Hub) -> None:
    """A host that opens sockets and never authenticates holds its own few slots, not the
    others': a peer dialing from another address still gets in."""
    flood: list[asyncio.StreamWriter] = []
    refused = 0
    try:
        for _ in range(MAX_UNAUTHENTICATED):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", hub.port, local_addr=("127.0.3.1", 0)
            )
            flood.append(writer)
            writer.write(b"GET / HTTP/1.1\r\n")
            try:
                answer = await asyncio.wait_for(reader.read(100), 0.02)
            except TimeoutError:
                continue
            assert answer.startswith(b"HTTP/1.1 503"), answer
            refused += 1
        assert hub.open_sockets() == MAX_UNAUTHENTICATED_PER_ADDRESS
        assert refused == MAX_UNAUTHENTICATED - MAX_UNAUTHENTICATED_PER_ADDRESS
        link = await hub.link()  # the honest child dials from 127.0.0.1
        assert not link.closed.is_set()
    finally:
        for writer in flood:
            writer.close()


async def test_a_large_frame_before_auth_is_refused_unread(hub: Hub) -> None:
    raw, _ = await Raw.open(hub.port)
    raw.frame(0x2, b"\0" * 200_000)  # a megabyte was allowed before auth
    assert await raw.closed_with() == 1009
    raw.writer.close()


async def test_side_protocol_floods_run_a_bounded_number_of_handlers(hub: Hub) -> None:
    running, most = 0, 0
    release = asyncio.Event()

    async def slow(account: str, data: bytes) -> bytes:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await release.wait()
        finally:
            running -= 1
        return b"ok"

    hub.connector.on_side_protocol("slow", slow)
    link = await hub.link()
    flood = [asyncio.create_task(link.send_side("slow", b"", wait=10)) for _ in range(200)]
    await asyncio.sleep(0.5)
    refused = [t for t in flood if t.done()]
    assert most == MAX_SIDE_IN_FLIGHT
    assert len(refused) == 200 - MAX_SIDE_IN_FLIGHT
    for task in refused:
        error = task.exception()
        assert isinstance(error, BtpError) and error.code == "T00", error
        assert "in flight" in error.data.decode()
    release.set()
    answers = await asyncio.wait_for(asyncio.gather(*flood, return_exceptions=True), 5)
    assert answers.count(b"ok") == MAX_SIDE_IN_FLIGHT


def peer_prepare(destination: str = "peer.flood") -> Prepare:
    return Prepare(0, datetime.now(UTC) + timedelta(seconds=10), CONDITION, destination)


async def test_peer_protocol_packets_meet_the_rate_limit(hub: Hub) -> None:
    hub.connector.add_peer(Peer("kid", "child", packets_per_second=5))
    link = await hub.link()
    answers = await asyncio.gather(*(link.send_prepare(peer_prepare(), 5) for _ in range(40)))
    codes = [a.code for a in answers if isinstance(a, Reject)]
    assert codes.count("T05") >= 30, codes  # 5 a second, with a burst of 5


async def test_packets_answered_here_are_capped_per_peer(hub: Hub) -> None:
    hub.connector.max_answering = 20
    release = asyncio.Event()
    started = 0

    async def stuck(source: str, prepare: Prepare) -> Fulfill | Reject:
        nonlocal started
        started += 1
        await release.wait()
        return Reject("F99", "g.hub", "done")

    hub.connector.peer_protocols["peer.flood"] = stuck
    link = await hub.link()
    flood = [asyncio.create_task(link.send_prepare(peer_prepare(), 10)) for _ in range(200)]
    await asyncio.sleep(0.5)
    assert started == 20 and len(hub.connector._tasks) == 20
    busy = [t.result() for t in flood if t.done()]
    assert len(busy) == 180 and {a.code for a in busy} == {"T03"}
    release.set()
    rest = await asyncio.wait_for(asyncio.gather(*flood), 5)
    assert [a.code for a in rest].count("F99") == 20
    # The slots are free again.
    assert (await link.send_prepare(peer_prepare(), 5)).code == "F99"


def test_the_largest_ilp_message_fits_before_auth() -> None:
    # A peer may send a Prepare right behind its auth, before it hears the answer.
    from aigent_connector.btp import AUTH_MAX_SIZE
    from aigent_connector.packets import encode

    biggest = Prepare(2**64 - 1, datetime.now(UTC), CONDITION, "g." + "a" * 1021,
                      os.urandom(32767))  # fmt: skip
    frame = btp.ilp_frame(btp.MESSAGE, 1, encode(biggest))
    assert len(frame) < AUTH_MAX_SIZE


async def test_a_flood_of_route_requests_gets_one_answer_in_flight(hub: Hub) -> None:
    # Each SYNC asks for our whole table; a send per request would be a task per packet.
    from aigent_connector.ccp import CONTROL, SYNC, ControlRequest, RouteBroadcaster, encode_control

    hub.connector.add_peer(Peer("kid", "peer"))
    ccp = RouteBroadcaster(hub.connector, 30, 45)
    sends = 0
    release = asyncio.Event()

    async def send_routes(to: str) -> None:
        nonlocal sends
        sends += 1
        await release.wait()

    ccp.send_routes = send_routes  # type: ignore[method-assign]
    link = await hub.link()
    control = Prepare(0, datetime.now(UTC) + timedelta(seconds=10), CONDITION, CONTROL,
                      encode_control(ControlRequest(SYNC, str(uuid.uuid4()), 0, ())))  # fmt: skip
    answers = await asyncio.gather(*(link.send_prepare(control, 5) for _ in range(100)))
    assert all(isinstance(a, Fulfill) for a in answers)
    assert sends == 1  # the rest found it under way
    release.set()
    await ccp.stop()
