"""A running connector node built from a :class:`NodeConfig`: the ledger opened and recovered,
peers and their credit limits configured, BTP listening and dialing, the address fetched over
IL-DCP when a parent is named, static routes, and the admin API.

    node = await Node(config).start()      # or: async with Node(config) as node: ...
    await node.connector.send(prepare)
    await node.stop()
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from aigent_connector.config import ConfigError, NodeConfig, PeerConfig
from aigent_connector.connector import AddressUnavailable, Connector, Peer
from aigent_connector.ledger import Ledger, LedgerUnavailable, SqliteLedger
from aigent_connector.metrics import Metrics
from aigent_connector.rates import OneToOne, RateSource, StaticRates

if TYPE_CHECKING:
    from aigent_connector.admin import AdminServer
    from aigent_connector.ccp import RouteBroadcaster
    from aigent_connector.delivery import HttpDelivery

log = logging.getLogger("aigent.connector.node")

ILDCP_FIRST_RETRY = 0.5  # seconds; doubled after each failed IL-DCP attempt...
ILDCP_MAX_RETRY = 30.0  # ...up to this


def peer_from_config(account: str, cfg: PeerConfig) -> Peer:
    return Peer(
        account,
        cfg.relation,
        max_packet_amount=cfg.max_packet_amount,
        asset_code=cfg.asset_code,
        asset_scale=cfg.asset_scale,
        packets_per_second=cfg.packets_per_second,
        amount_per_second=cfg.amount_per_second,
    )


def open_ledger(config: NodeConfig) -> Ledger:
    """The node's ledger: in PostgreSQL when ``ledger_url`` is set, else the SQLite file."""
    if config.ledger_url is None:
        try:
            return SqliteLedger(config.ledger_path, durability=config.ledger_durability)
        except LedgerUnavailable as exc:  # in use by another process, or not a database
            raise ConfigError(f"ledger_path: {exc}") from None
    from aigent_connector.postgres_store import PostgresStore

    try:
        store = PostgresStore(config.ledger_url.get_secret_value(), schema=config.ledger_schema,
                              durability=config.ledger_durability)  # fmt: skip
    except ImportError as exc:  # psycopg is an optional extra
        raise ConfigError(f"ledger_url: {exc}") from None
    try:
        ledger = Ledger(store)
        # Earlier versions kept a PostgreSQL ledger's settlements in a file where ledger_path
        # points: a pending one there keeps its id, or it would be paid again under a new one.
        legacy = config.ledger_path.with_name(config.ledger_path.stem + "-settlements.sqlite")
        if legacy.exists():
            from aigent_connector.settlement import adopt_pending

            moved = adopt_pending(legacy, store.settlements())
            log.info("moved %d pending settlements from %s into the ledger's schema", moved,
                     legacy)  # fmt: skip
    except BaseException:
        store.close()  # its connection holds the schema's lock
        raise
    log.info("ledger in %s", store.name)  # the name never holds the password
    return ledger


def rate_source(config: NodeConfig) -> RateSource:
    if not config.rates:
        return OneToOne()
    return StaticRates((r.from_code, r.to_code, r.rate) for r in config.rates)


class Node:
    def __init__(self, config: NodeConfig, rates: RateSource | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.connector = Connector(
            config.address or "",  # until IL-DCP gives one
            open_ledger(config),
            asset_code=config.asset_code,
            asset_scale=config.asset_scale,
            expiry_margin=config.expiry_margin,
            max_hold=config.max_hold,
            rates=rates or rate_source(config),
            spread=Fraction(str(config.spread)),
            metrics=self.metrics,
        )
        self.btp_port: int | None = None
        self.admin: AdminServer | None = None
        self.ccp: RouteBroadcaster | None = None
        self.delivery: HttpDelivery | None = None
        self.tokens: dict[str, str] = {}
        self.token_envs: dict[str, str] = {}
        """The variable each peer's token came from, by account."""

    def token_owner(self, variable: str | None) -> str | None:
        """Whose token ``variable`` holds: a peer's account, ``"the admin API"``, or ``None``.
        Peers the config names keep their variables even after they are removed at run time."""
        if variable is None:
            return None
        admin = self.config.admin
        if admin is not None and admin.token_env == variable:
            return "the admin API"
        delivery = self.config.local_delivery
        if delivery is not None and delivery.token_env == variable:
            return "local delivery"
        owners = {n: p.token_env for n, p in self.config.peers.items()} | self.token_envs
        return next((name for name, env in owners.items() if env == variable), None)

    @property
    def admin_url(self) -> str | None:
        return self.admin.url if self.admin is not None else None

    async def start(self) -> Node:
        config = self.config
        # Every secret is resolved first: a missing variable stops us before anything listens.
        for name, peer in config.peers.items():
            token = peer.resolve_token(f"peers.{name}.token_env")
            assert token is not None  # PeerConfig requires one
            self.tokens[name] = token
        admin_token = (
            config.admin.resolve_token("admin.token_env") if config.admin is not None else None
        )
        delivery = config.local_delivery
        delivery_token = (
            delivery.resolve_token("local_delivery.token_env") if delivery is not None else None
        )
        ledger = self.connector.ledger
        recovered = ledger.recover()
        if recovered:
            log.info("reverted %d reservations of packets that expired while we were down",
                     recovered)  # fmt: skip
        try:
            if config.route_broadcast:
                from aigent_connector.ccp import RouteBroadcaster

                # Before any link opens: it asks each parent and peer for routes as they come up.
                self.ccp = RouteBroadcaster(
                    self.connector, config.broadcast_interval, config.route_expiry
                )
            for name, peer in config.peers.items():
                await self.add_peer(name, peer, connect=False)
            if config.listen is not None:
                incoming = {n: self.tokens[n] for n, p in config.peers.items() if p.url is None}
                listen = config.listen
                self.btp_port = await self.connector.listen(
                    incoming, listen.host, listen.port, listen.max_connections,
                    listen.max_unauthenticated, listen.max_unauthenticated_per_address,
                )  # fmt: skip
            if config.parent is not None:
                await self._join_parent(config.parent, config.peers[config.parent])
                self.connector.routes.add("", config.parent)
                # Children are routed under our address, known only now.
                for name, peer in config.peers.items():
                    if peer.relation == "child":
                        self.connector.routes.add(f"{self.connector.address}.{name}", name)
            await asyncio.gather(
                *(
                    self._dial(name, peer)
                    for name, peer in config.peers.items()
                    if peer.url is not None and name != config.parent
                )
            )
            for route in config.routes:
                self.connector.routes.add(route.prefix, route.account)
            if delivery is not None:
                from aigent_connector.delivery import HttpDelivery

                # Only now is the address known (IL-DCP): it names us in the service's rejects.
                self.delivery = HttpDelivery(
                    self.connector.address, delivery.url, delivery_token, delivery.timeout
                )
                self.connector.set_packet_handler(self.delivery)
            if self.ccp is not None:
                self.ccp.start()
            if config.admin is not None and admin_token is not None:
                from aigent_connector.admin import AdminServer

                self.admin = AdminServer(self, admin_token, config.admin.host, config.admin.port,
                                         allow_send=config.admin.allow_send)  # fmt: skip
                await self.admin.start()
        except BaseException:
            await self.stop()
            raise
        log.info("connector %s up as %s", config.node_id, self.connector.address)
        return self

    async def add_peer(self, name: str, peer: PeerConfig, *, connect: bool = True) -> None:
        """Add (or replace) a peer at run time: ledger limits, and a link if it has a url. A
        peer that dials us needs its token known to the BTP server, which takes it from
        ``self.tokens`` on each new connection."""
        if name not in self.tokens:
            token = peer.resolve_token(f"peers.{name}.token_env")
            if token is None:
                raise ConfigError(f"peers.{name}: no token")
            self.tokens[name] = token
        if peer.token_env:
            self.token_envs[name] = peer.token_env
        self.connector.add_peer(peer_from_config(name, peer))
        self.connector.ledger.configure(
            name,
            min_balance=peer.min_balance,
            max_balance=peer.max_balance,
            settle_threshold=peer.settle_threshold,
            settle_to=peer.settle_to,
        )
        if peer.url is None:
            for server in self.connector._servers:
                server.accounts[name] = self.tokens[name]
        elif connect:
            await self._dial(name, peer)

    async def _join_parent(self, name: str, peer: PeerConfig) -> None:
        """Dial the parent and get our address from it over IL-DCP, asking again with backoff
        while it is down or answers with a temporary error: a node started before its parent
        waits for it (saying so in the log). A refusal (an F code) stops the start."""
        assert peer.url is not None
        client = await self.connector.connect(
            peer.url, name, peer.username or self.config.node_id, self.tokens[name], wait=None
        )
        delay = ILDCP_FIRST_RETRY
        while True:
            try:
                await asyncio.wait_for(client.connected.wait(), delay)
            except TimeoutError:
                log.warning("parent %s at %s is not reachable yet (%s); our address waits "
                            "for it", name, peer.url, client.last_error)  # fmt: skip
            else:
                try:
                    given = (await self.connector.fetch_address(name)).client_address
                except AddressUnavailable as exc:
                    if not exc.temporary:
                        raise
                    log.warning("%s; asking again in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                else:
                    configured = self.config.address
                    if configured is not None and given != configured:
                        # The parent routes to the address it gives; one configured apart
                        # from it would be announced (SPSP, receipts) and never reached.
                        raise ConfigError(
                            f"address {configured!r} is configured, but parent {name} gives "
                            f"{given!r} over IL-DCP: leave address out to take the parent's, "
                            "or have the parent name this node's account to match"
                        )
                    return
            delay = min(delay * 2, ILDCP_MAX_RETRY)

    async def _dial(self, name: str, peer: PeerConfig) -> None:
        assert peer.url is not None
        try:
            await self.connector.connect(
                peer.url, name, peer.username or self.config.node_id, self.tokens[name]
            )
        except TimeoutError:
            # The client keeps retrying in the background; the node runs without it for now.
            log.warning("peer %s at %s is not reachable yet; still trying", name, peer.url)

    async def stop(self) -> None:
        if self.ccp is not None:
            await self.ccp.stop()
            self.ccp = None
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        await self.connector.stop()
        if self.delivery is not None:
            await self.delivery.close()
            self.delivery = None
        self.connector.ledger.close()

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def build(config: NodeConfig, rates: RateSource | None = None) -> Node:
    """A started :class:`Node` for ``config``."""
    return await Node(config, rates).start()
