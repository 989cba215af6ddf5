"""The connector: receives Prepares from peers, delivers locally or forwards along routes,
and keeps the ledger in step with every Fulfill and Reject.

Switching rules (RFC 27 and the reference connector): an expired or too-short Prepare is
rejected R02, a Prepare not answered before its expiry R00; the forwarded expiry is shortened by
a safety margin; a Fulfill whose fulfillment does not hash to the condition becomes F05; a packet
over the maximum amount F08 with its data; credit limits T04; no route F02.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import partial
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aigent_connector import btp_packets, ildcp
from aigent_connector.btp import (
    MAX_CONNECTIONS,
    MAX_UNAUTHENTICATED,
    MAX_UNAUTHENTICATED_PER_ADDRESS,
    RESPONSE_TIMEOUT,
    Client,
    Link,
    Server,
)
from aigent_connector.errors import ConnectorError
from aigent_connector.ledger import Ledger, LedgerError, Settlement
from aigent_connector.limits import TokenBucket
from aigent_connector.packets import (
    AmountTooLarge,
    Fulfill,
    InvalidPacket,
    Packet,
    Prepare,
    PrepareFields,
    Reject,
    decode,
    encode,
    forwarded,
    fulfillment_of,
    peek_prepare,
    reject_code,
    reject_invalid,
    valid_address,
)
from aigent_connector.rates import NoRate, OneToOne, RateSource, convert
from aigent_connector.routing import RoutingTable

if TYPE_CHECKING:
    from aigent_connector.metrics import Metrics
    from aigent_connector.settlement import SettlementEngine, Settler

log = logging.getLogger("aigent.connector")

Relation = Literal["parent", "peer", "child"]
LocalHandler = Callable[[str, Prepare], Awaitable[Fulfill | Reject]]
SideProtocolHandler = Callable[[str, bytes], Awaitable[bytes]]
"""(peer account, data) -> answer data; raise btp.SideProtocolRefused to answer F00."""
LinkListener = Callable[[str], None]
Reply = Callable[[bytes], None]
"""Takes the answer (a Fulfill's or Reject's bytes) to a Prepare that arrived."""
Answered = Callable[[bytes, bool], None]
"""Takes the checked answer to a Prepare sent on, and whether it was fulfilled."""


class AddressUnavailable(ConnectorError, ConnectionError):
    """IL-DCP gave us no address: ``temporary`` when worth asking again (the parent is not
    connected, busy or slow: a T or R code), not when it refused (an F code)."""

    def __init__(self, message: str, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


@dataclass
class Peer:
    account: str
    relation: Relation = "peer"
    max_packet_amount: int | None = None
    asset_code: str = "XRP"
    asset_scale: int = 6
    packets_per_second: float | None = None
    """Incoming packets allowed per second (bursts up to one second's worth); T05 beyond."""
    amount_per_second: int | None = None
    """Incoming amount allowed per second (throughput); T04 beyond."""
    _rate: TokenBucket | None = field(default=None, init=False, repr=False)
    _throughput: TokenBucket | None = field(default=None, init=False, repr=False)

    @property
    def limited(self) -> bool:
        """Whether packets from this peer meet a limit before they are switched."""
        return bool(self.max_packet_amount is not None or self._rate or self._throughput)

    def __post_init__(self) -> None:
        if self.packets_per_second:
            self._rate = TokenBucket(self.packets_per_second, self.packets_per_second)
        if self.amount_per_second:
            self._throughput = TokenBucket(self.amount_per_second, self.amount_per_second)


@dataclass
class Connector:
    address: str
    """Our ILP address; ``""`` until IL-DCP gives us one (:meth:`fetch_address`)."""
    ledger: Ledger
    asset_code: str = "XRP"
    asset_scale: int = 6
    expiry_margin: float = 1.0
    max_hold: float = 30.0
    peers: dict[str, Peer] = field(default_factory=dict)
    routes: RoutingTable = field(default_factory=RoutingTable)
    links: dict[str, Link] = field(default_factory=dict)
    _handler: LocalHandler | None = None
    _servers: list[Server] = field(default_factory=list)
    _clients: list[Client] = field(default_factory=list)
    rates: RateSource = field(default_factory=OneToOne)
    """Converts between peers' assets when forwarding (1:1 for the same asset, by scale)."""
    spread: Decimal | Fraction = Decimal(0)
    """Kept from every forwarded amount (0.002 is 0.2 %), the reference connector's fee."""
    metrics: Metrics | None = None
    _settler: Settler | None = None
    peer_protocols: dict[str, LocalHandler] = field(default_factory=dict)
    """Handlers for ``peer.*`` destinations (CCP's ``peer.route.*``), by exact destination."""
    _side_handlers: dict[str, SideProtocolHandler] = field(default_factory=dict)
    _link_listeners: list[LinkListener] = field(default_factory=list)
    settlements_path: Path | None = None
    """A SQLite file for pending settlements; when not given they go with the ledger (its
    PostgreSQL schema, or a file beside its SQLite file)."""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _transfers: int = 0
    max_answering: int = 256
    """Packets from one peer answered here (delivered locally, IL-DCP, ``peer.*``) at once,
    each a task; more are refused T03 until some are answered."""
    _answering: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every Reject names us: an address that is no address would make each one fail.
        if self.address and not valid_address(self.address):
            raise ValueError(
                f'{self.address!r} is not a valid ILP address; leave it empty ("") until '
                "IL-DCP gives one"
            )

    # --- wiring ----------------------------------------------------------------------------------

    def set_packet_handler(self, handler: LocalHandler) -> None:
        """Packets addressed to this node (or below it) go to ``handler(account, prepare)``."""
        self._handler = handler

    def on_side_protocol(self, name: str, handler: SideProtocolHandler) -> None:
        """BTP Messages whose primary protocol is ``name`` (``claim``, say) go to
        ``handler(account, data)``; its return value is the Response's data."""
        self._side_handlers[name] = handler

    def on_link_up(self, listener: LinkListener) -> None:
        """``listener(account)`` runs whenever a link to a peer opens (or reopens)."""
        self._link_listeners.append(listener)

    async def _handle_side(self, account: str, entry: btp_packets.ProtocolData) -> bytes:
        handler = self._side_handlers.get(entry.name)
        if handler is None:
            raise LookupError(entry.name)  # the link answers F00 NotAcceptedError
        return await handler(account, entry.data)

    def add_peer(self, peer: Peer) -> None:
        self.peers[peer.account] = peer
        if peer.relation == "child" and self.address:  # else routed once IL-DCP gives one
            self.routes.add(f"{self.address}.{peer.account}", peer.account)

    async def remove_peer(self, account: str) -> bool:
        """Forget a peer: its routes go, its link closes, its ledger account stays."""
        known = self.peers.pop(account, None) is not None
        for prefix, hop in self.routes.items():
            if hop == account:
                self.routes.remove(prefix)
        for client in [c for c in self._clients if c.account == account]:
            self._clients.remove(client)
            await client.stop()
        link = self.links.pop(account, None)
        if link is not None:
            await link.ws.close()
        return known or link is not None

    def set_settlement_engine(self, account: str, engine: SettlementEngine) -> None:
        """Settle with ``account`` through ``engine`` whenever what we owe it crosses the
        account's settle threshold (see :mod:`aigent_connector.settlement`)."""
        if self._settler is None:
            from aigent_connector.settlement import Settler

            self._settler = Settler(self.ledger, metrics=self.metrics, path=self.settlements_path)
        self._settler.set_engine(account, engine)

    @property
    def settler(self) -> Settler | None:
        return self._settler

    # --- for settlement engines ------------------------------------------------------------------
    #
    # What an engine that talks to its peer (payment-channel claims over BTP) may use, besides
    # on_side_protocol, on_link_up and set_settlement_engine above: nothing else of the
    # connector is its business.

    def connected(self, account: str) -> bool:
        """Whether a BTP link to peer ``account`` is open now."""
        link = self.links.get(account)
        return link is not None and not link.closed.is_set()

    def peer_asset(self, account: str) -> tuple[str, int] | None:
        """(asset code, asset scale) that peer ``account``'s balance is kept in; None for an
        account that is not configured as a peer."""
        peer = self.peers.get(account)
        return None if peer is None else (peer.asset_code, peer.asset_scale)

    async def send_side(
        self,
        account: str,
        protocol: str,
        data: bytes,
        content_type: int = btp_packets.OCTET_STREAM,
        wait: float = RESPONSE_TIMEOUT,
    ) -> bytes:
        """Send peer ``account`` a BTP Message whose primary protocol data is ``protocol``
        (``claim``, say) and return the data it answered under that name. :class:`BtpError`
        when the peer answers with a BTP Error (its handler raised
        :class:`SideProtocolRefused`, say); :class:`ConnectionError` when no link to it is
        open, or it closes first; :class:`TimeoutError` when no answer comes in ``wait``."""
        link = self.links.get(account)
        if link is None:
            raise ConnectionError(f"no BTP link to {account} is open")
        return await link.send_side(protocol, data, content_type, wait)

    def settlement_received(self, account: str, amount: int, settlement_id: str) -> bool:
        """Peer ``account`` settled ``amount`` with us (claims received over a channel, say):
        what it owes moves down by that much. The same ``settlement_id`` again counts nothing,
        so an engine may repeat it after a crash; returns whether the balance moved."""
        return self.ledger.settled(account, -amount, settlement_id)

    async def listen(
        self,
        tokens: dict[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = MAX_CONNECTIONS,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
        max_unauthenticated_per_address: int = MAX_UNAUTHENTICATED_PER_ADDRESS,
    ) -> int:
        """Accept BTP peers; ``tokens`` maps each account (its auth_username) to its token."""
        server = Server(tokens, self._on_prepare, self._on_link, host, port,
                        max_connections, max_unauthenticated,
                        max_unauthenticated_per_address)  # fmt: skip
        self._servers.append(server)
        return await server.start()

    async def connect(
        self, url: str, account: str, username: str, token: str, wait: float | None = 10
    ) -> Client:
        """Dial a peer (and keep redialing it); wait up to ``wait`` seconds for the link
        (:class:`TimeoutError` after that, while the client keeps trying), or not at all."""
        client = Client(url, account, username, token, self._on_prepare, self._on_link)
        self._clients.append(client)
        client.start()
        if wait is not None:
            await asyncio.wait_for(client.connected.wait(), wait)
        return client

    async def fetch_address(self, parent: str) -> ildcp.Config:
        """IL-DCP: learn this node's address (and asset) from its parent. Raises
        :class:`AddressUnavailable` when the parent does not give one."""
        answer = await self._forward(parent, ildcp.request())
        if not isinstance(answer, Fulfill):
            raise AddressUnavailable(
                f"parent {parent} refused IL-DCP: {answer.code} {answer.message}",
                temporary=answer.code[0] in "TR",
            )
        try:
            config = ildcp.parse_response(answer)
        except InvalidPacket as exc:
            raise AddressUnavailable(f"parent {parent} answered IL-DCP badly: {exc}",
                                     temporary=False) from None  # fmt: skip
        self.address = config.client_address
        self.asset_code, self.asset_scale = config.asset_code, config.asset_scale
        return config

    async def stop(self) -> None:
        if self._settler is not None:
            await self._settler.stop()
            self._settler = None
        for client in self._clients:
            await client.stop()
        for server in self._servers:
            await server.stop()

    def _on_link(self, link: Link) -> None:
        link.side_handler = self._handle_side
        older = self.links.get(link.account)
        self.links[link.account] = link
        if older is not None and older is not link and not older.closed.is_set():
            # The peer authenticated again while its older link still looks open: a node that
            # moved to another host (its old one died without closing the socket, so only a
            # missed ping would tell), or a second node with the same token. The newest link
            # carries the account's packets; the older one is closed, so nothing reaches the
            # account (nor comes from it) by two ways at once.
            log.warning("%s connected again: closing its older link", link.account)
            task = asyncio.get_running_loop().create_task(older.ws.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for listener in self._link_listeners:
            try:
                listener(link.account)
            except Exception:  # a listener's bug must not stop the link from opening
                log.exception("link listener failed for %s", link.account)

    # --- switching -------------------------------------------------------------------------------
    #
    # A packet is switched in the callback that read it: checked, held in the ledger and written
    # to the next link as bytes (its amount and expiry patched), with no task, future or timer
    # per packet but the link's own. Its answer is handled in the callback that reads it; a
    # Fulfill goes back only once the group commit holding both its legs is written. Packets
    # for this node (local delivery, IL-DCP, peer protocols) go to tasks, as their handlers
    # may wait.

    async def send(self, prepare: Prepare) -> Packet:
        """Send a packet that starts here (an agent paying another, say)."""
        account = self.routes.lookup(prepare.destination)
        if account is None:
            return self._reject("F02", f"no route to {prepare.destination}")
        answer = await self._forward(account, prepare)
        await self.ledger.durable()  # what we paid is on disk before the caller hears of it
        return answer

    async def handle_prepare(self, source: str, prepare: Prepare) -> Fulfill | Reject:
        """A Prepare from peer ``source``, as if its link had carried it: the answer."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._on_packet(source, encode(prepare), future.set_result)
        answer = decode(await future)
        assert not isinstance(answer, Prepare)  # the switch answers Fulfills and Rejects
        return answer

    def _on_prepare(self, link: Link, request_id: int, packet: bytes) -> None:
        self._on_packet(link.account, packet, partial(link.answer, request_id))

    def _on_packet(self, source: str, packet: bytes, reply: Reply) -> None:
        try:
            fields = peek_prepare(packet)  # read once: the switch and the metrics use it
        except InvalidPacket as exc:
            fields, invalid = None, exc
        if self.metrics is not None:
            reply = self._metered(source, fields.amount if fields else 0, reply, self.metrics)
        if fields is None:
            reply(encode(reject_invalid(invalid, self.address)))
            return
        try:
            self._switch(source, packet, fields, reply)
        except Exception:
            log.exception("internal error switching a packet from %s", source)
            reply(encode(self._reject("T00", "internal error")))

    def _metered(self, source: str, amount: int, reply: Reply, metrics: Metrics) -> Reply:
        started = time.monotonic()
        metrics.in_flight += 1

        def metered(answer: bytes) -> None:
            metrics.in_flight -= 1
            metrics.packet(source, "incoming", reject_code(answer), amount,
                           time.monotonic() - started)  # fmt: skip
            reply(answer)

        return metered

    def _switch(self, source: str, packet: bytes, fields: PrepareFields, reply: Reply) -> None:
        destination = fields.destination
        peer = self.peers.get(source) or Peer(source)
        if peer.limited:  # every packet, peer protocols too: each of those costs a task
            refused = self._admit(peer, fields.amount)
            if refused is not None:
                reply(encode(refused))
                return
        if destination.startswith("peer."):  # IL-DCP and peer protocols: answered here
            if self._busy(source):
                reply(encode(self._too_busy(source)))
            else:
                self._spawn(source, self._answer_peer(source, packet, reply))
            return
        left = fields.expires_ms - time.time() * 1000
        if left <= 0:
            reply(encode(self._reject("R02", "the packet expired before it arrived")))
            return
        self._transfers = incoming = self._transfers + 1
        try:
            self.ledger.hold(incoming, source, "in", fields.amount, fields.expires_ms / 1000)
        except LedgerError as exc:
            reply(encode(self._reject(exc.code, str(exc))))
            return
        next_hop = self.routes.lookup(destination)
        if self._is_local(destination, next_hop):
            if self._busy(source):
                self._refuse(incoming, reply, self._too_busy(source))
            else:
                self._spawn(source, self._deliver_local(source, packet, incoming, left / 1000,
                                                        reply))  # fmt: skip
            return
        if next_hop is None:
            self._refuse(incoming, reply, self._reject("F02", f"no route to {destination}"))
            return
        margin = round(self.expiry_margin * 1000)
        if left <= margin:
            self._refuse(incoming, reply, self._reject(
                "R02", f"expiry too soon: {left / 1000:.3f}s left, {self.expiry_margin}s needed"
            ))  # fmt: skip
            return
        amount = self._exchange(peer, next_hop, fields.amount)
        if isinstance(amount, Reject):
            self._refuse(incoming, reply, amount)
            return
        expires_ms = fields.expires_ms - margin

        def answered(answer: bytes, fulfilled: bool) -> None:
            if not fulfilled:
                self.ledger.release(incoming)
                reply(answer)
                return
            self.ledger.commit_nowait(incoming, record=False)
            # Both legs are written (one group commit) before anyone upstream hears of it.
            self.ledger.when_durable(
                lambda error: reply(answer if error is None else self._unwritten(error))
            )

        self._send_packet(next_hop, forwarded(packet, fields, amount, expires_ms), amount,
                          fields.condition, expires_ms, answered)  # fmt: skip

    def _refuse(self, incoming: int, reply: Reply, reject: Reject) -> None:
        self.ledger.release(incoming)
        reply(encode(reject))

    def _admit(self, peer: Peer, amount: int) -> Reject | None:
        """The incoming peer's limits, in the reference connector's order: rate, maximum
        packet amount, then throughput (so a packet refused F08 does not use throughput)."""
        if peer._rate is not None and not peer._rate.take():
            return self._reject(
                "T05", f"rate limit of {peer.packets_per_second} packets/s exceeded"
            )
        if peer.max_packet_amount is not None and amount > peer.max_packet_amount:
            data = AmountTooLarge(amount, peer.max_packet_amount).encode()
            return Reject("F08", self.address, "packet amount too large", data)
        if peer._throughput is not None and not peer._throughput.take(amount):
            return self._reject("T04", f"throughput limit of {peer.amount_per_second}/s exceeded")
        return None

    def _send_packet(
        self, account: str, packet: bytes, amount: int, condition: bytes, expires_ms: int,
        answered: Answered,
    ) -> None:  # fmt: skip
        """Send a Prepare (its bytes) to ``account`` on its link, holding ``amount`` against
        what the peer lets us owe; ``answered(answer, fulfilled)`` gets the checked answer."""
        link = self.links.get(account)
        if link is None or link.closed.is_set():
            answered(encode(self._reject("T01", f"peer {account} is not connected")), False)
            return
        if link.busy:  # it reads slower than we write: queueing more would only grow memory
            answered(encode(self._reject("T03", f"peer {account} is not keeping up")), False)
            return
        self._transfers = outgoing = self._transfers + 1
        try:
            self.ledger.hold(outgoing, account, "out", amount, expires_ms / 1000)
        except LedgerError as exc:
            answered(encode(self._reject(exc.code, str(exc))), False)
            return

        def checked(answer: bytes | Reject) -> None:
            fulfilled = False
            if isinstance(answer, Reject):  # made by the link: R00 or T01
                answer = encode(self._reject(answer.code, answer.message))
            else:
                try:
                    fulfillment = fulfillment_of(answer)
                except InvalidPacket as exc:
                    answer = encode(self._reject("F01", f"{account} answered badly: {exc}"))
                else:
                    wrong = self._wrong_fulfillment(fulfillment, condition, expires_ms)
                    if wrong is not None:
                        answer = encode(wrong)
                    else:  # a Reject goes back as it came
                        fulfilled = fulfillment is not None
            if fulfilled:
                settlement = self.ledger.commit_nowait(outgoing, record=False)
                if settlement is not None:
                    self._settlement_due(settlement)
            else:
                self.ledger.release(outgoing)
            if self.metrics is not None:
                self.metrics.packet(account, "outgoing", reject_code(answer), amount, None)
            answered(answer, fulfilled)

        left = (expires_ms - time.time() * 1000) / 1000
        link.request(packet, max(0.0, min(left, self.max_hold)), checked)

    async def _forward(self, account: str, prepare: Prepare) -> Fulfill | Reject:
        """:meth:`_send_packet`, awaitable, for packets that start here."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        expires_ms = round(prepare.expires_at.timestamp() * 1000)
        self._send_packet(account, encode(prepare), prepare.amount,
                          prepare.execution_condition, expires_ms,
                          lambda answer, _: future.set_result(answer))  # fmt: skip
        answer = decode(await future)
        assert not isinstance(answer, Prepare)  # _send_packet answers Fulfills and Rejects
        return answer

    def _settlement_due(self, settlement: Settlement) -> None:
        log.info("account %s is due a settlement of %d", settlement.account, settlement.amount)
        if self._settler is not None:
            self._settler.due(settlement.account)

    def _unwritten(self, error: LedgerError) -> bytes:
        log.error("a Fulfill was not passed on: %s", error)
        return encode(self._reject("T00", "the ledger could not record the payment"))

    async def _answer_peer(self, source: str, packet: bytes, reply: Reply) -> None:
        """IL-DCP for children, and the peer protocols this node speaks (CCP)."""
        prepare = decode(packet)
        assert isinstance(prepare, Prepare)  # peek_prepare said so
        if ildcp.is_request(prepare):
            if self._peer(source).relation != "child":
                answer: Fulfill | Reject = self._reject("F02", "IL-DCP is served to children only")
            elif not self.address:  # our parent has not told us ours: the child asks again
                answer = self._reject("T00", "no address to give yet: ours is still to come "
                                             "from our parent over IL-DCP")  # fmt: skip
            else:
                config = ildcp.Config(f"{self.address}.{source}", self.asset_scale,
                                      self.asset_code)  # fmt: skip
                answer = ildcp.response(config)
        else:
            handler = self.peer_protocols.get(prepare.destination)
            if handler is None:  # peer protocols we do not speak: refuse, never forward
                answer = self._reject("F02", f"{prepare.destination} is not served here")
            else:
                answer = await handler(source, prepare)
        reply(encode(answer))

    async def _deliver_local(
        self, source: str, packet: bytes, incoming: int, left: float, reply: Reply
    ) -> None:
        """A packet for this node (or below it): the packet handler's answer, checked."""
        prepare = decode(packet)
        assert isinstance(prepare, Prepare)  # peek_prepare said so
        answer = await self._deliver(source, prepare, left)
        if isinstance(answer, Fulfill):
            self.ledger.commit_nowait(incoming, record=False)
            try:
                await self.ledger.durable()
            except LedgerError as exc:
                answer = self._reject("T00", "the ledger could not record the payment")
                log.error("a Fulfill was not passed on: %s", exc)
        else:
            self.ledger.release(incoming)
        reply(encode(answer))

    def _busy(self, source: str) -> bool:
        return self._answering.get(source, 0) >= self.max_answering

    def _too_busy(self, source: str) -> Reject:
        return self._reject("T03", f"{self.max_answering} packets from {source} are being "
                                   "answered here; retry later")  # fmt: skip

    def _spawn(self, source: str, work: Coroutine[Any, Any, None]) -> None:
        """Answer a packet from ``source`` in a task, counted against ``max_answering``."""
        self._answering[source] = self._answering.get(source, 0) + 1
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._answered(source))

    def _answered(self, source: str) -> None:
        left = self._answering[source] - 1
        if left:
            self._answering[source] = left
        else:
            del self._answering[source]  # no entry per peer that ever sent one

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("internal error answering a packet")

    def _exchange(self, source: Peer, next_hop: str, amount: int) -> int | Reject:
        """The amount to forward to ``next_hop``: converted between the two peers' assets,
        less the spread, rounded down (R01 when that leaves nothing of a positive amount)."""
        target = self._peer(next_hop)
        same = source.asset_code == target.asset_code and source.asset_scale == target.asset_scale
        if same and not self.spread:
            return amount
        try:
            rate = self.rates.rate(
                source.asset_code, source.asset_scale, target.asset_code, target.asset_scale
            )
        except NoRate as exc:
            return self._reject("F02", str(exc))
        converted = convert(amount, rate, self.spread)
        if amount > 0 and converted <= 0:
            return self._reject("R01", f"amount {amount} is worth nothing after exchange")
        return converted

    def _peer(self, account: str) -> Peer:
        """The configured peer, or a default one for an account we know nothing about (built
        only then: this is on every packet's path)."""
        peer = self.peers.get(account)
        return peer if peer is not None else Peer(account)

    def _is_local(self, destination: str, next_hop: str | None) -> bool:
        """Ours: our address, or below it and not routed to a child (an agent's sub-addresses,
        STREAM connections and the like)."""
        address = self.address
        if not destination.startswith(address):
            return False  # the common case, forwarding: settled in one test
        if destination == address:
            return True
        below = destination.startswith(address + ".")
        to_child = next_hop is not None and self._peer(next_hop).relation == "child"
        return below and not to_child

    async def _deliver(self, source: str, prepare: Prepare, left: float) -> Fulfill | Reject:
        if self._handler is None:
            return self._reject("F02", f"no receiver at {prepare.destination}")
        try:
            answer = await asyncio.wait_for(
                self._handler(source, prepare), min(left, self.max_hold)
            )
        except TimeoutError:
            return self._reject("R00", "the receiver did not answer before the packet expired")
        if isinstance(answer, Fulfill):
            expires_ms = round(prepare.expires_at.timestamp() * 1000)
            wrong = self._wrong_fulfillment(answer.fulfillment, prepare.execution_condition,
                                            expires_ms)  # fmt: skip
            if wrong is not None:
                return wrong
        return answer

    def _wrong_fulfillment(
        self, fulfillment: bytes | None, condition: bytes, expires_ms: int
    ) -> Reject | None:
        """Why a Fulfill may not be passed on (F05, R00), or ``None`` if it may (or if it is
        no Fulfill: ``fulfillment`` is ``None`` for a Reject)."""
        if fulfillment is None:
            return None
        if sha256(fulfillment).digest() != condition:
            return self._reject("F05", "fulfillment does not match the condition")
        if time.time() * 1000 > expires_ms:
            return self._reject("R00", "fulfilled after the packet expired")
        return None

    def _reject(self, code: str, message: str) -> Reject:
        return Reject(code, self.address, message)
