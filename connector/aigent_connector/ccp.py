"""Route broadcast between connectors: the ILPv4 CCP of ``ilp-protocol-ccp``, as the reference
connector speaks it (RFC 10 in the RFC repo is the deprecated ILPv1 stub).

Two peer-protocol Prepares (amount 0, the zero-fulfillment condition, answered by a Fulfill of
32 zero bytes): ``peer.route.control`` asks a peer to start (SYNC) or stop (IDLE) sending us its
routes; ``peer.route.update`` carries a routing table's routes since an epoch, and the ones it
withdrew. Routes are exchanged with parents and peers, not children (the reference defaults).

What we learn goes into the connector's routing table under the speaker's account, never over
a static route or a route at or under our own address, and never with our address in its path
(a loop). Learned routes expire when their speaker goes quiet for its hold-down time. What we
send is always our whole table (from epoch 0), with what we no longer advertise withdrawn.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aigent_connector.ildcp import CONDITION, FULFILLMENT
from aigent_connector.oer import OerError, Reader, var_octets, var_uint
from aigent_connector.packets import Fulfill, InvalidPacket, Prepare, Reject, valid_address

if TYPE_CHECKING:
    from aigent_connector.connector import Connector

log = logging.getLogger("aigent.connector.ccp")

CONTROL = "peer.route.control"
UPDATE = "peer.route.update"
IDLE, SYNC = 0, 1
OPTIONAL, TRANSITIVE, PARTIAL, UTF8 = 0x80, 0x40, 0x20, 0x10


@dataclass(frozen=True)
class RouteProp:
    id: int
    value: bytes
    optional: bool = False
    transitive: bool = True
    partial: bool = False
    utf8: bool = True


@dataclass(frozen=True)
class Route:
    prefix: str
    path: tuple[str, ...] = ()
    auth: bytes = bytes(32)
    props: tuple[RouteProp, ...] = ()


@dataclass(frozen=True)
class ControlRequest:
    mode: int
    last_known_routing_table_id: str = "00000000-0000-0000-0000-000000000000"
    last_known_epoch: int = 0
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateRequest:
    routing_table_id: str
    current_epoch: int
    from_epoch: int
    to_epoch: int
    hold_down_time: int  # milliseconds
    speaker: str
    new_routes: tuple[Route, ...] = ()
    withdrawn_routes: tuple[str, ...] = ()


# --- codec -----------------------------------------------------------------------------------


def _uuid_bytes(value: str) -> bytes:
    return uuid.UUID(value).bytes


def _strings(values: tuple[str, ...] | list[str]) -> bytes:
    return var_uint(len(values)) + b"".join(var_octets(v.encode()) for v in values)


def _read_strings(r: Reader, what: str) -> tuple[str, ...]:
    return tuple(r.var_octets(what).decode() for _ in range(r.var_uint(what + " count")))


def encode_control(request: ControlRequest) -> bytes:
    return (
        bytes([request.mode])
        + _uuid_bytes(request.last_known_routing_table_id)
        + request.last_known_epoch.to_bytes(4, "big")
        + _strings(request.features)
    )


def decode_control(data: bytes) -> ControlRequest:
    try:
        r = Reader(data)
        mode = r.uint(1, "mode")
        if mode not in (IDLE, SYNC):
            raise OerError(f"mode: {mode} is neither IDLE (0) nor SYNC (1)")
        table = str(uuid.UUID(bytes=r.read(16, "lastKnownRoutingTableId")))
        epoch = r.uint(4, "lastKnownEpoch")
        features = _read_strings(r, "features")
    except (OerError, UnicodeDecodeError) as exc:
        raise InvalidPacket(f"route control: {exc}") from None
    return ControlRequest(mode, table, epoch, features)


def _encode_route(route: Route) -> bytes:
    props = b"".join(
        bytes([(OPTIONAL if p.optional else 0) | (TRANSITIVE if p.transitive else 0)
               | (PARTIAL if p.partial else 0) | (UTF8 if p.utf8 else 0)])
        + p.id.to_bytes(2, "big") + var_octets(p.value)
        for p in route.props
    )  # fmt: skip
    return (
        var_octets(route.prefix.encode())
        + _strings(route.path)
        + route.auth
        + var_uint(len(route.props))
        + props
    )


def encode_update(request: UpdateRequest) -> bytes:
    return (
        _uuid_bytes(request.routing_table_id)
        + request.current_epoch.to_bytes(4, "big")
        + request.from_epoch.to_bytes(4, "big")
        + request.to_epoch.to_bytes(4, "big")
        + request.hold_down_time.to_bytes(4, "big")
        + var_octets(request.speaker.encode())
        + var_uint(len(request.new_routes))
        + b"".join(_encode_route(route) for route in request.new_routes)
        + _strings(request.withdrawn_routes)
    )


def decode_update(data: bytes) -> UpdateRequest:
    try:
        r = Reader(data)
        table = str(uuid.UUID(bytes=r.read(16, "routingTableId")))
        current, start, end, hold = (r.uint(4, name) for name in (
            "currentEpochIndex", "fromEpochIndex", "toEpochIndex", "holdDownTime"))  # fmt: skip
        speaker = r.var_octets("speaker").decode("ascii")
        routes = []
        for _ in range(r.var_uint("newRoutes count")):
            prefix = r.var_octets("prefix").decode("ascii")
            path = _read_strings(r, "path")
            auth = r.read(32, "auth")
            props = []
            for _ in range(r.var_uint("props count")):
                meta = r.uint(1, "prop meta")
                props.append(RouteProp(r.uint(2, "prop id"), r.var_octets("prop value"),
                                       bool(meta & OPTIONAL), bool(meta & TRANSITIVE),
                                       bool(meta & PARTIAL), bool(meta & UTF8)))  # fmt: skip
            routes.append(Route(prefix, path, auth, tuple(props)))
        withdrawn = _read_strings(r, "withdrawnRoutes")
    except (OerError, UnicodeDecodeError) as exc:
        raise InvalidPacket(f"route update: {exc}") from None
    return UpdateRequest(table, current, start, end, hold, speaker, tuple(routes), withdrawn)


def peer_prepare(destination: str, data: bytes, expires_in: float = 60.0) -> Prepare:
    return Prepare(0, datetime.now(UTC) + timedelta(seconds=expires_in), CONDITION,
                   destination, data)  # fmt: skip


# --- the controller --------------------------------------------------------------------------


@dataclass
class _Learned:
    table_id: str = ""
    epoch: int = 0
    hold_down: float = 45.0
    heard: float = 0.0
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # prefix -> path


class RouteBroadcaster:
    """Speaks CCP for a connector: answers control and update packets, tells parents and peers
    our routes every ``interval`` seconds (and at once when they ask), learns theirs."""

    def __init__(self, connector: Connector, interval: float = 30.0, hold_down: float = 45.0):
        self.connector = connector
        self.interval = interval
        self.hold_down = hold_down
        self.table_id = str(uuid.uuid4())
        self.epoch = 0
        self._secret = os.urandom(32)
        self._advertised: dict[str, set[str]] = {}  # peer -> prefixes it last heard from us
        self._last_table: frozenset[tuple[str, tuple[str, ...]]] = frozenset()
        self.learned: dict[str, _Learned] = {}
        self.syncing: set[str] = set()  # peers that asked for our routes
        self.asked: set[str] = set()  # peers that accepted our request for theirs
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[tuple[str, str]] = set()  # (what, peer) sends under way
        connector.peer_protocols[CONTROL] = self.handle
        connector.peer_protocols[UPDATE] = self.handle
        connector.on_link_up(self._link_up)

    def speaks_with(self, account: str) -> bool:
        peer = self.connector.peers.get(account)
        return peer is not None and peer.relation in ("parent", "peer")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        for account, link in list(self.connector.links.items()):
            if not link.closed.is_set():
                self._link_up(account)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- incoming ------------------------------------------------------------------------------

    async def handle(self, source: str, prepare: Prepare) -> Fulfill | Reject:
        if not self.speaks_with(source):
            return Reject("F02", self.connector.address, "routes are not exchanged with "
                          f"{source}")  # fmt: skip
        try:
            if prepare.destination == CONTROL:
                self._on_control(source, decode_control(prepare.data))
            else:
                self._on_update(source, decode_update(prepare.data))
        except InvalidPacket as exc:
            return Reject("F01", self.connector.address, str(exc))
        return Fulfill(FULFILLMENT)

    def _on_control(self, source: str, request: ControlRequest) -> None:
        if request.mode == SYNC:
            self.syncing.add(source)
            if request.last_known_routing_table_id != self.table_id:
                self._advertised.pop(source, None)  # it knows nothing of this table
            self._spawn(self.send_routes(source), ("routes", source))
        else:
            self.syncing.discard(source)

    def _on_update(self, source: str, update: UpdateRequest) -> None:
        state = self.learned.setdefault(source, _Learned())
        if state.table_id != update.routing_table_id:
            self._forget(source)  # a new table (the peer restarted): start over
            state = self.learned[source] = _Learned(update.routing_table_id)
        if update.from_epoch > state.epoch:
            # A gap: we missed updates. Ask again from what we know (the reference's way).
            self._spawn(self.send_control(source, SYNC), ("control", source))
            return
        state.heard = time.monotonic()
        state.hold_down = update.hold_down_time / 1000
        own = self.connector.address
        routes = self.connector.routes
        for prefix in update.withdrawn_routes:
            if (
                state.routes.pop(prefix, None) is not None
                and dict(routes.items()).get(prefix) == source
            ):
                routes.remove(prefix)
        current = dict(routes.items())
        for route in update.new_routes:
            if (
                route.prefix == own
                or route.prefix.startswith(own + ".")
                or own in route.path
                or (route.prefix in current and route.prefix not in self._learned_prefixes())
            ):
                continue  # ours, a loop, or a static route: ours wins
            state.routes[route.prefix] = route.path
            routes.add(route.prefix, source)
        state.epoch = max(state.epoch, update.to_epoch)

    def _learned_prefixes(self) -> set[str]:
        return {prefix for state in self.learned.values() for prefix in state.routes}

    def _forget(self, source: str) -> None:
        state = self.learned.pop(source, None)
        if state is None:
            return
        table = dict(self.connector.routes.items())
        for prefix in state.routes:
            if table.get(prefix) == source:
                self.connector.routes.remove(prefix)

    # --- outgoing ------------------------------------------------------------------------------

    def table(self, to: str) -> dict[str, tuple[str, ...]]:
        """What we tell ``to``: our address, our children and what we learned from others,
        each with our address first in its path; nothing learned from ``to`` itself."""
        own = self.connector.address
        if not valid_address(own):
            return {}  # no address yet (IL-DCP pending): nothing to say
        out: dict[str, tuple[str, ...]] = {own: (own,)}
        learned_from = {p: a for a, s in self.learned.items() for p in s.routes}
        for prefix, account in self.connector.routes.items():
            if account == to or prefix == "":
                continue
            peer = self.connector.peers.get(account)
            if prefix in learned_from:
                out[prefix] = (own, *self.learned[learned_from[prefix]].routes[prefix])
            elif peer is not None and peer.relation == "child":
                out[prefix] = (own,)
        return out

    async def send_routes(self, to: str) -> bool:
        table = self.table(to)
        snapshot = frozenset(table.items())
        if snapshot != self._last_table:
            self._last_table = snapshot
            self.epoch += 1
        withdrawn = tuple(sorted(self._advertised.get(to, set()) - set(table)))
        routes = tuple(
            Route(prefix, path, self._auth(prefix)) for prefix, path in sorted(table.items())
        )
        update = UpdateRequest(self.table_id, self.epoch, 0, self.epoch,
                               int(self.hold_down * 1000), self.connector.address, routes,
                               withdrawn)  # fmt: skip
        ok = await self._send(to, UPDATE, encode_update(update))
        if ok:
            self._advertised[to] = set(table)
        return ok

    async def send_control(self, to: str, mode: int = SYNC) -> bool:
        state = self.learned.get(to)
        request = ControlRequest(
            mode,
            state.table_id if state and state.table_id else "00000000-0000-0000-0000-000000000000",
            state.epoch if state else 0,
        )
        ok = await self._send(to, CONTROL, encode_control(request))
        if ok and mode == SYNC:
            self.asked.add(to)
        return ok

    def _auth(self, prefix: str) -> bytes:
        return hmac.new(self._secret, prefix.encode(), hashlib.sha256).digest()

    async def _send(self, to: str, destination: str, data: bytes) -> bool:
        link = self.connector.links.get(to)
        if link is None or link.closed.is_set():
            return False
        try:
            answer = await link.send_prepare(peer_prepare(destination, data), 10.0)
        except InvalidPacket as exc:
            log.info("%s to %s failed: %s", destination, to, exc)
            return False
        if not isinstance(answer, Fulfill):
            log.info("%s refused %s: %s", to, destination, answer)
            return False
        return True

    def _link_up(self, account: str) -> None:
        self.asked.discard(account)  # a new link: the peer may have restarted
        if self.speaks_with(account):
            self._spawn(self.send_control(account, SYNC), ("control", account))

    def _spawn(self, coro: Coroutine[Any, Any, Any], key: tuple[str, str]) -> None:
        """Run ``coro`` unless the same send to the same peer is under way: a peer that floods
        us with requests gets one answer in flight, not a task per request."""
        if key in self._busy:
            coro.close()
            return
        self._busy.add(key)
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._busy.discard(key))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            for account, state in list(self.learned.items()):
                if state.heard and now - state.heard > state.hold_down:
                    log.info("routes from %s expired", account)
                    self._forget(account)
            for account in sorted(self.syncing):
                await self.send_routes(account)
            # A peer may refuse our first request (the reference connector does, if it has not
            # yet registered the link): ask again each round until it accepts.
            for account, link in list(self.connector.links.items()):
                if account not in self.asked and not link.closed.is_set():
                    if self.speaks_with(account):
                        await self.send_control(account, SYNC)
