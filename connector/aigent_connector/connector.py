"""The connector: receives Prepares from peers, delivers locally or forwards along routes,
and keeps the ledger in step with every Fulfill and Reject.

Switching rules (RFC 27 and the reference connector): an expired or too-short Prepare is
rejected R02, a Prepare not answered before its expiry R00; the forwarded expiry is shortened by
a safety margin; a Fulfill whose fulfillment does not hash to the condition becomes F05; a packet
over the maximum amount F08 with its data; credit limits T04; no route F02.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from aigent_connector import btp_packets, ildcp
from aigent_connector.btp import Client, Link, Server
from aigent_connector.ledger import LedgerError, SqliteLedger
from aigent_connector.limits import TokenBucket
from aigent_connector.packets import AmountTooLarge, Fulfill, Packet, Prepare, Reject
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

    def __post_init__(self) -> None:
        if self.packets_per_second:
            self._rate = TokenBucket(self.packets_per_second, self.packets_per_second)
        if self.amount_per_second:
            self._throughput = TokenBucket(self.amount_per_second, self.amount_per_second)


@dataclass
class Connector:
    address: str
    ledger: SqliteLedger
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
        if peer.relation == "child":
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
            await link.ws.close()  # type: ignore[attr-defined]
        return known or link is not None

    def set_settlement_engine(self, account: str, engine: SettlementEngine) -> None:
        """Settle with ``account`` through ``engine`` whenever what we owe it crosses the
        account's settle threshold (see :mod:`aigent_connector.settlement`)."""
        if self._settler is None:
            from aigent_connector.settlement import Settler

            self._settler = Settler(self.ledger, metrics=self.metrics)
        self._settler.set_engine(account, engine)

    @property
    def settler(self) -> Settler | None:
        return self._settler

    async def listen(self, tokens: dict[str, str], host: str = "127.0.0.1", port: int = 0) -> int:
        """Accept BTP peers; ``tokens`` maps each account (its auth_username) to its token."""
        server = Server(tokens, self.handle_prepare, self._on_link, host, port)
        self._servers.append(server)
        return await server.start()

    async def connect(self, url: str, account: str, username: str, token: str) -> Client:
        client = Client(url, account, username, token, self.handle_prepare, self._on_link)
        self._clients.append(client)
        client.start()
        await asyncio.wait_for(client.connected.wait(), 10)
        return client

    async def fetch_address(self, parent: str) -> ildcp.Config:
        """IL-DCP: learn this node's address (and asset) from its parent."""
        answer = await self._forward(parent, ildcp.request())
        if not isinstance(answer, Fulfill):
            raise ConnectionError(f"parent {parent} refused IL-DCP: {answer}")
        config = ildcp.parse_response(answer)
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
        self.links[link.account] = link
        for listener in self._link_listeners:
            try:
                listener(link.account)
            except Exception:  # a listener's bug must not stop the link from opening
                log.exception("link listener failed for %s", link.account)

    # --- switching -------------------------------------------------------------------------------

    async def send(self, prepare: Prepare) -> Packet:
        """Send a packet that starts here (an agent paying another, say)."""
        account = self.routes.lookup(prepare.destination)
        if account is None:
            return self._reject("F02", f"no route to {prepare.destination}")
        answer = await self._forward(account, prepare)
        await self.ledger.durable()  # what we paid is on disk before the caller hears of it
        return answer

    async def handle_prepare(self, source: str, prepare: Prepare) -> Fulfill | Reject:
        """A Prepare from peer ``source``: answer with a Fulfill or a Reject, never raise."""
        started = time.monotonic()
        if self.metrics is not None:
            self.metrics.in_flight += 1
        try:
            answer = await self._switch(source, prepare)
        except Exception:
            log.exception("internal error switching a packet from %s", source)
            answer = self._reject("T00", "internal error")
        finally:
            if self.metrics is not None:
                self.metrics.in_flight -= 1
        if self.metrics is not None:
            code = answer.code if isinstance(answer, Reject) else None
            self.metrics.packet(
                source, "incoming", code, prepare.amount, time.monotonic() - started
            )
        return answer

    async def _switch(self, source: str, prepare: Prepare) -> Fulfill | Reject:
        peer = self._peer(source)
        if ildcp.is_request(prepare):
            if peer.relation != "child":
                return self._reject("F02", "IL-DCP is served to children only")
            return ildcp.response(
                ildcp.Config(f"{self.address}.{source}", self.asset_scale, self.asset_code)
            )
        peer_protocol = self.peer_protocols.get(prepare.destination)
        if peer_protocol is not None:
            return await peer_protocol(source, prepare)
        if prepare.destination.startswith("peer."):
            # Peer protocols we do not speak (CCP's peer.route.*): refuse, never forward.
            return self._reject("F02", f"{prepare.destination} is not served here")
        if peer._rate is not None and not peer._rate.take():
            return self._reject(
                "T05", f"rate limit of {peer.packets_per_second} packets/s exceeded"
            )
        # The reference connector's order: rate limit, max packet amount, then throughput (so
        # a packet refused F08 does not use up the peer's throughput).
        if peer.max_packet_amount is not None and prepare.amount > peer.max_packet_amount:
            data = AmountTooLarge(prepare.amount, peer.max_packet_amount).encode()
            return Reject("F08", self.address, "packet amount too large", data)
        if peer._throughput is not None and not peer._throughput.take(prepare.amount):
            return self._reject("T04", f"throughput limit of {peer.amount_per_second}/s exceeded")
        left = (prepare.expires_at - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return self._reject("R02", "the packet expired before it arrived")
        transfer = f"in:{source}:{uuid.uuid4().hex}"
        try:
            await self.ledger.areserve(
                transfer, source, "in", prepare.amount, prepare.expires_at.timestamp()
            )
        except LedgerError as exc:
            return self._reject(exc.code, str(exc))
        next_hop = self.routes.lookup(prepare.destination)
        if self._is_local(prepare.destination, next_hop):
            answer = await self._deliver(source, prepare, left)
        elif next_hop is None:
            answer = self._reject("F02", f"no route to {prepare.destination}")
        elif left <= self.expiry_margin:
            answer = self._reject("R02", f"expiry too soon: {left:.3f}s left, "
                                  f"{self.expiry_margin}s needed")  # fmt: skip
        else:
            amount = self._exchange(peer, next_hop, prepare.amount)
            if isinstance(amount, Reject):
                answer = amount
            else:
                shorter = prepare.expires_at - timedelta(seconds=self.expiry_margin)
                forwarded = Prepare(amount, shorter, prepare.execution_condition,
                                    prepare.destination, prepare.data)  # fmt: skip
                answer = await self._forward(next_hop, forwarded)
        if isinstance(answer, Fulfill):
            await self.ledger.acommit(transfer)
        else:
            await self.ledger.arevert(transfer)
        return answer

    def _exchange(self, source: Peer, next_hop: str, amount: int) -> int | Reject:
        """The amount to forward to ``next_hop``: converted between the two peers' assets,
        less the spread, rounded down (R01 when that leaves nothing of a positive amount)."""
        target = self._peer(next_hop)
        same = (source.asset_code, source.asset_scale) == (target.asset_code, target.asset_scale)
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
        if destination == self.address:
            return True
        below = destination.startswith(self.address + ".")
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
        return self._checked(prepare, answer)

    async def _forward(self, account: str, prepare: Prepare) -> Fulfill | Reject:
        link = self.links.get(account)
        if link is None or link.closed.is_set():
            return self._reject("T01", f"peer {account} is not connected")
        left = (prepare.expires_at - datetime.now(UTC)).total_seconds()
        transfer = f"out:{account}:{uuid.uuid4().hex}"
        try:
            await self.ledger.areserve(
                transfer, account, "out", prepare.amount, prepare.expires_at.timestamp()
            )
        except LedgerError as exc:
            return self._reject(exc.code, str(exc))
        try:
            answer = await link.send_prepare(prepare, max(0.0, min(left, self.max_hold)))
        except TimeoutError:
            answer = self._reject("R00", f"{account} did not answer before the packet expired")
        except ConnectionError as exc:
            answer = self._reject("T01", str(exc))
        if isinstance(answer, Prepare):
            answer = self._reject("F01", f"{account} answered a Prepare with a Prepare")
        answer = self._checked(prepare, answer)
        if isinstance(answer, Fulfill):
            # Written with the caller's durable commit (_switch's, or send()'s): one write.
            settlement = self.ledger.commit_nowait(transfer)
            if settlement is not None:
                log.info(
                    "account %s is due a settlement of %d", settlement.account, settlement.amount
                )
                if self._settler is not None:
                    self._settler.due(settlement.account)
        else:
            await self.ledger.arevert(transfer)
        if self.metrics is not None:
            code = answer.code if isinstance(answer, Reject) else None
            self.metrics.packet(account, "outgoing", code, prepare.amount, None)
        return answer

    def _checked(self, prepare: Prepare, answer: Fulfill | Reject) -> Fulfill | Reject:
        if isinstance(answer, Fulfill):
            if hashlib.sha256(answer.fulfillment).digest() != prepare.execution_condition:
                return self._reject("F05", "fulfillment does not match the condition")
            if datetime.now(UTC) > prepare.expires_at:
                return self._reject("R00", "fulfilled after the packet expired")
        return answer

    def _reject(self, code: str, message: str) -> Reject:
        return Reject(code, self.address, message)
