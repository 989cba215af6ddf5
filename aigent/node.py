"""The payment node inside every agent: its ILP connector, paid messages in, paid questions out.

A paid message is a STREAM packet (RFC 29) whose money pays the agent's price and whose
``StreamData`` carries the question; the agent answers inside the encrypted Fulfill. The
condition comes from the STREAM shared secret, which only the sender and this agent know (the
sender got it over SPSP), so no connector on the path can fulfil the packet and keep the money
without the agent having answered. See README.md, "Paid messages".

The connector is imported when the agent starts, never by ``import aigent``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from aigent import blocking, tracing
from aigent.amounts import format_amount
from aigent.errors import AigentError
from aigent.messages import PaidAnswer
from aigent.observe import Observers
from aigent.storage import FileStorage, Migration, Storage, Store, kept_secret

if TYPE_CHECKING:
    from aigent.character import Character, ConnectorSettings, Price
    from aigent.messages import Incoming, Reply
    from aigent.secrets import Secrets
    from aigent.spending import SpendingPolicy

log = logging.getLogger("aigent.node")

PAID_CLIENT = "ilp"
ASK_TIMEOUT = 60.0
BUCKETS = {"hour": 3600, "day": 86400}
MAX_BUCKETS = 2000


class PaymentError(AigentError):
    """A paid question could not be asked, or the other agent refused it; says why."""


class PaidRequest(BaseModel):
    """What a paid message carries (JSON in the STREAM data)."""

    model_config = ConfigDict(extra="ignore")
    text: str
    sender: str = ""
    """Who asks (a name or an ILP address); only shown to the agent, never trusted."""


@dataclass
class _Sale:
    """Set while one paid message is answered, so the earning is booked only on Fulfill."""

    amount: int = 0
    sender: str = ""
    message_id: str = ""
    answered: bool = False


MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE IF NOT EXISTS sales (message_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
        amount BIGINT NOT NULL, asset TEXT NOT NULL, sender TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS spent (key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
        rail TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS sales_by_time ON sales (at);
    """,
    # 2: the rail that paid; a ledger from before x402 sold everything over ILP (a file from
    # before stores were versioned may have the column already)
    "ALTER TABLE sales ADD COLUMN rail TEXT NOT NULL DEFAULT 'ilp'",
    # 3: where a payment's one answer stands (see Earnings.take); a key claimed before answers
    # were tracked was claimed for good, so it reads as answered
    """
    ALTER TABLE spent ADD COLUMN payment TEXT;
    ALTER TABLE spent ADD COLUMN state TEXT NOT NULL DEFAULT 'answered';
    ALTER TABLE spent ADD COLUMN deadline DOUBLE PRECISION;
    ALTER TABLE spent ADD COLUMN attempt TEXT;
    ALTER TABLE spent ADD COLUMN settled TEXT;
    ALTER TABLE spent ADD COLUMN message_id TEXT;
    CREATE INDEX IF NOT EXISTS spent_by_payment ON spent (payment);
    """,
)
"""The earnings store (aigent.storage): ``sales`` and the payments already ``spent``."""

ANSWERING, OPEN, ANSWERED = "answering", "open", "answered"
"""A payment's claim: being answered (until its deadline), open again (its attempt failed
before a reply, so a retry with it is answered), answered (for good)."""


@dataclass(frozen=True)
class Taken:
    """What :meth:`Earnings.take` found. ``outcome``: ``taken`` (first use), ``retaken`` (an
    earlier attempt died or failed: this one answers), ``answering`` (another attempt is
    answering it until ``deadline``), ``used`` (answered, or its keys belong to another
    payment)."""

    outcome: str
    attempt: str = ""
    deadline: float = 0.0
    settled: str = ""
    """The settlement an earlier attempt recorded (its transaction), "" when none was."""

    @property
    def held(self) -> bool:
        return self.outcome in ("taken", "retaken")


class Earnings:
    """A durable record of what paid messages brought in, and of the payments already used.
    Blocking: call it off the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.earned: tuple[int, int] | None = None
        """(amount, messages) as last read or booked here: for views that must not wait on
        the database (listing a fleet's agents). None until read once."""
        self._earned_lock = threading.Lock()

    @classmethod
    def open(cls, storage: Storage) -> Earnings:
        """The agent's earnings: ``earnings.sqlite`` in its data directory, or its schema in
        the database a fleet shares (so a payment used on one server stays used on the next)."""
        return cls(storage.open("earnings", MIGRATIONS))

    def book(self, sale: _Sale, asset: str, rail: str = PAID_CLIENT) -> None:
        self.record(sale.message_id, sale.amount, asset, sale.sender, rail)

    def record(self, message_id: str, amount: int, asset: str, sender: str, rail: str) -> bool:
        """One paid message, whichever rail paid it (``ilp``, ``x402-xrpl``, ...); False when
        it was booked before (the same message or transaction is booked once)."""
        with self._earned_lock:  # a total read meanwhile would count it twice
            booked = self.store.execute(
                "INSERT INTO sales (message_id, at, amount, asset, sender, rail) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING RETURNING amount",
                (message_id, time.time(), amount, asset, sender, rail),
            )
            if booked and self.earned is not None:
                self.earned = (self.earned[0] + amount, self.earned[1] + 1)
            return bool(booked)

    def take(self, keys: Sequence[str], rail: str, deadline: float) -> Taken:
        """Claim a payment to answer one message with it: ``keys[0]`` names the payment, the
        others (its invoice, ...) are used with it. The claim is ``answering`` until
        ``deadline`` (the time its answer may take), then :meth:`answered` (or :meth:`reopen`
        if the attempt failed before a reply). A claim whose attempt died (past its deadline)
        or failed is taken again by the next request with the same payment; keys another
        payment holds, or an answered claim, are ``used``. One transaction on any server."""
        payment, now = keys[0], time.time()
        attempt = secrets.token_hex(8)
        with self.store.exclusive():
            rows = self.store.execute(
                "SELECT payment, state, deadline, settled FROM spent "
                f"WHERE key IN ({', '.join('?' * len(keys))})",
                tuple(keys),
            )
            if not rows:
                for k in keys:
                    self.store.execute(
                        "INSERT INTO spent (key, at, rail, payment, state, deadline, attempt) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (k, now, rail, payment, ANSWERING, deadline, attempt),
                    )
                return Taken("taken", attempt, deadline)
            if len(rows) != len(keys) or any(r[0] != payment for r in rows):
                return Taken("used")
            _, state, until, settled = rows[0]
            if state == ANSWERED:
                return Taken("used")
            if state == ANSWERING and float(until or 0) > now:
                return Taken("answering", deadline=float(until))
            self.store.execute(
                "UPDATE spent SET state = ?, deadline = ?, attempt = ? WHERE payment = ?",
                (ANSWERING, deadline, attempt, payment),
            )
            return Taken("retaken", attempt, deadline, str(settled or ""))

    def taken(self, payment: str) -> bool:
        """Whether any attempt claimed ``payment`` (by :meth:`take`) before."""
        return bool(self.store.execute("SELECT 1 FROM spent WHERE payment = ?", (payment,)))

    def settled(self, payment: str, tx: str) -> None:
        """Note that ``payment`` settled in ``tx``: a later attempt does not settle it again."""
        self.store.execute("UPDATE spent SET settled = ? WHERE payment = ?", (tx, payment))

    def answered(self, payment: str, attempt: str, message_id: str) -> bool:
        """Mark ``payment`` answered by ``message_id``, for good, if ``attempt`` still holds
        it; False when another attempt took it meanwhile (this reply must not go out)."""
        with self.store.exclusive():
            return bool(
                self.store.execute(
                    "UPDATE spent SET state = ?, message_id = ? "
                    "WHERE payment = ? AND attempt = ? AND state = ? RETURNING key",
                    (ANSWERED, message_id, payment, attempt, ANSWERING),
                )
            )

    def reopen(self, payment: str, attempt: str) -> None:
        """``attempt`` failed before a reply: the next request with ``payment`` answers it."""
        with self.store.exclusive():
            self.store.execute(
                "UPDATE spent SET state = ? WHERE payment = ? AND attempt = ? AND state = ?",
                (OPEN, payment, attempt, ANSWERING),
            )

    def claim_of(self, payment: str) -> tuple[str, str] | None:
        """(state, reply message id) of ``payment``'s claim; None when it has none."""
        rows = self.store.execute("SELECT state, message_id FROM spent WHERE key = ?", (payment,))
        return (str(rows[0][0]), str(rows[0][1] or "")) if rows else None

    def by_rail(self) -> dict[str, tuple[int, int]]:
        """(amount earned, messages sold) per rail."""
        rows = self.store.execute(
            "SELECT rail, COALESCE(SUM(amount), 0), COUNT(*) FROM sales GROUP BY rail ORDER BY rail"
        )
        return {str(rail): (int(amount), int(count)) for rail, amount, count in rows}

    def total(self) -> tuple[int, int]:
        """(amount earned, messages sold)."""
        with self._earned_lock:
            ((amount, count),) = self.store.execute(
                "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM sales"
            )
            self.earned = (int(amount), int(count))
            return self.earned

    def over_time(
        self, every: str, since: float, until: float | None = None
    ) -> list[tuple[float, int, int]]:
        """(bucket start, amount, messages) for every hour or day (UTC) from the one holding
        ``since`` to the one holding ``until`` (now), empty buckets included, oldest first."""
        if every not in BUCKETS:
            raise ValueError(f"every must be one of {', '.join(BUCKETS)}, not {every!r}")
        size = BUCKETS[every]
        end = time.time() if until is None else until
        first, last = int(since // size), int(end // size)
        if last < first:
            return []
        if last - first + 1 > MAX_BUCKETS:
            raise ValueError(
                f"from {since:.0f} to {end:.0f} is {last - first + 1} buckets of an {every}; "
                f"at most {MAX_BUCKETS}: ask from a later since, or by day"
            )
        # FLOOR, not CAST(.. AS INTEGER): PostgreSQL rounds a cast, which would move a sale
        # made in an hour's second half into the next hour.
        rows = self.store.execute(
            "SELECT FLOOR(at / ?) AS b, SUM(amount), COUNT(*) FROM sales "
            "WHERE at >= ? AND at < ? GROUP BY b",
            (size, first * size, (last + 1) * size),
        )
        found = {int(b): (int(amount), int(count)) for b, amount, count in rows}
        return [(float(b * size), *found.get(b, (0, 0))) for b in range(first, last + 1)]

    def close(self) -> None:
        self.store.close()


@dataclass(frozen=True)
class NodeParts:
    """What the payment node is given when its agent is assembled; it reaches into nothing
    else of the agent."""

    name: str
    data_dir: Path
    settings: ConnectorSettings
    price: Price | None
    spending: SpendingPolicy
    config: Any
    """The connector's parsed configuration (see :func:`connector_config`)."""
    engines: dict[str, Any]
    """The settlement engine of each peer account that names one, built by its plugin."""
    answer: Callable[[Incoming], Awaitable[Reply]]
    """Runs a paid message through the agent (its ``handle``)."""
    observers: Observers = field(default_factory=Observers)
    """The agent's observers, told ``paid_message`` after each paid message."""
    storage: Storage | None = None
    """The agent's stores: its earnings are kept there, and, when they are shared between
    servers, the STREAM secret."""


class AgentNode:
    """The agent's connector, its STREAM receiver and SPSP endpoint, and its paid questions."""

    def __init__(self, parts: NodeParts) -> None:
        self.parts = parts
        self.name = parts.name
        self.settings = parts.settings
        self.price: Price | None = parts.price
        self.spending = parts.spending
        self.earnings = Earnings.open(parts.storage or FileStorage(parts.data_dir))
        self.connector: Any = None
        self.node: Any = None
        self.receiver: Any = None
        self.spsp: Any = None
        self.spsp_url: str | None = None
        self.engines: list[Any] = []
        self.engine_of: dict[str, Any] = {}
        """The started settlement engine of each peer account."""
        self.observers = parts.observers

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return str(self.connector.address) if self.connector is not None else ""

    @property
    def asset(self) -> tuple[str, int]:
        if self.connector is None:
            return ("XRP", 6)
        return (str(self.connector.asset_code), int(self.connector.asset_scale))

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # nothing half-started: no port left listening
            raise

    async def _start(self) -> None:
        from aigent_connector.config import ConfigError
        from aigent_connector.node import Node
        from aigent_connector.stream import StreamReceiver

        from aigent.interfaces import SettlementEngine

        engines = self.parts.engines
        await blocking.run("records", self.earnings.total)  # and opens the store, migrated
        try:
            self.node = await Node(self.parts.config).start()
        except ConfigError as exc:
            raise PaymentError(f"{self.name}: the connector cannot start: {exc}") from None
        self.connector = self.node.connector
        for account, engine in engines.items():
            if not isinstance(engine, SettlementEngine):
                raise PaymentError(
                    f"{self.name}: the settlement engine for peer {account} "
                    f"({type(engine).__name__}) lacks part of aigent.SettlementEngine: name, "
                    "attach(connector, account), async start(), settle() and close() (no-ops "
                    "where there is nothing to do)"
                )
            engine.attach(self.connector, account)
            self.connector.set_settlement_engine(account, engine)
            await engine.start()
            self.engines.append(engine)
            self.engine_of[account] = engine
        code, scale = self.asset
        if self.price is not None and (self.price.asset_code, self.price.asset_scale) != (
            code,
            scale,
        ):
            raise PaymentError(
                f"{self.name}: the price is in {self.price.asset_code} at scale "
                f"{self.price.asset_scale} but the connector's asset is {code} at scale {scale}: "
                "set price.asset_code and price.asset_scale to match"
            )
        self.receiver = StreamReceiver(
            self.connector.address,
            await blocking.run("records", _server_secret, self.parts.data_dir, self.parts.storage),
            on_request=self._on_request,
            asset_code=code,
            asset_scale=scale,
        )
        self.connector.set_packet_handler(self._on_packet)
        spsp = self.settings.spsp
        if spsp is not None:
            from aigent_connector.spsp import SpspServer  # aiohttp: only for agents that serve

            self.spsp = SpspServer(
                self.receiver, {spsp.path: None}, host=spsp.host, port=spsp.port,
                extra=self._spsp_extra,
            )  # fmt: skip
            port = await self.spsp.start()
            self.spsp_url = f"http://{spsp.host}:{port}{spsp.path}"

    async def stop(self) -> None:
        if self.spsp is not None:
            await self.spsp.stop()
            self.spsp = None
        for engine in self.engines:
            try:
                await engine.close()  # xrpl-paychan redeems what it holds on the way out
            except Exception as exc:
                log.warning("%s: settlement engine did not close cleanly: %s",
                            self.name, exc)  # fmt: skip
        self.engines.clear()
        self.engine_of.clear()
        if self.node is not None:
            await self.node.stop()
            self.node = None
        self.earnings.close()

    # --- paid messages in ------------------------------------------------------------------------

    def _spsp_extra(self) -> dict[str, Any]:
        """Beside SPSP's two fields: the price, so a payer can pay exactly it."""
        info: dict[str, Any] = {"agent": self.name}
        if self.price is not None:
            info["price"] = self.price.model_dump()
        return {"aigent": info}

    async def _on_packet(self, account: str, prepare: Any) -> Any:
        from aigent_connector.packets import Fulfill

        sale = _Sale(sender=account)
        # A paid message's trace starts here: the payment, then the message under it.
        with tracing.span("payment", direction="in", peer=account, amount=prepare.amount) as span:
            answer = await self.receiver.handle(prepare, context=sale)
            if span is not None:
                span.set_attribute("aigent.fulfilled", isinstance(answer, Fulfill))
        if isinstance(answer, Fulfill) and sale.answered:
            await self.sold(sale.amount, sale.sender, sale.message_id, PAID_CLIENT)
        return answer

    async def sold(self, amount: int, sender: str, message_id: str, rail: str) -> None:
        """Book a paid message in the one earnings ledger and tell the observers; every rail
        (ILP here, x402 in ``aigent serve``) comes through here."""
        code, scale = self.asset
        booked = await blocking.run(
            "records", self.earnings.record, message_id, amount, code, sender, rail
        )
        if booked and self.observers:  # a retried payment is told once, as it is booked once
            self.observers.emit(
                "paid_message",
                {"amount": amount, "asset": code, "scale": scale, "sender": sender,
                 "message_id": message_id, "rail": rail},
            )  # fmt: skip

    async def _on_request(self, incoming: Any) -> Any:
        """One paid message: check the price, answer, and hand back the reply for the Fulfill."""
        from aigent_connector.stream import RejectWith

        from aigent.messages import Incoming

        code, scale = self.asset
        price = self.price.amount if self.price is not None else None
        free = self.settings.free
        if price is None and not free:
            return RejectWith("F99", f"{self.name} does not answer messages over ILP")
        if price is not None and incoming.amount < price and not free:
            return RejectWith(
                "F99",
                f"insufficient payment: the price is {format_amount(price, scale, code)} per "
                f"message ({price} at scale {scale}); {incoming.amount} arrived",
            )
        try:
            request = PaidRequest.model_validate_json(incoming.data)
        except ValidationError:
            return RejectWith("F99", 'the message must be JSON like {"text": "..."}')
        sale = incoming.context if isinstance(incoming.context, _Sale) else _Sale()
        # Who pays is what the connector knows (the account the packet came in on), never
        # what the payer says it is: its claimed name is only shown to the agent.
        message = Incoming(
            text=request.text,
            user=sale.sender,
            room=sale.sender,
            client=PAID_CLIENT,
            metadata={"claimed_sender": request.sender} if request.sender else {},
        )
        try:
            reply = await self.parts.answer(message)
        except Exception as exc:
            # Final (F99): the payer does not retry in a loop; it keeps its money, may ask again.
            log.warning("%s: a paid message could not be answered: %s", self.name, exc)
            return RejectWith("F99", f"{self.name} could not answer now; nothing was charged")
        sale.amount, sale.message_id, sale.answered = incoming.amount, message.id, True
        answer = PaidAnswer(
            text=reply.text,
            agent=self.name,
            message_id=message.id,
            paid=incoming.amount,
            asset_code=code,
            asset_scale=scale,
            receipts=reply.receipts,
        )
        return answer.model_dump_json().encode()

    # --- paid questions out ----------------------------------------------------------------------

    async def ask(self, receiver: str, text: str, max_price: int | None = None) -> PaidAnswer:
        """Pay the agent at ``receiver`` (a payment pointer or SPSP URL) to answer ``text``.

        The price is read from the receiver's SPSP answer; more than ``max_price`` (in this
        node's asset units) is never paid, and every payment passes the spending policy."""
        code, scale = self.asset
        self.spending.check_destination(code, receiver)  # before anything is fetched
        details, body = await _resolve(receiver)
        quoted = _quoted_price(body, code, scale)
        amount = quoted if quoted is not None else max_price
        if amount is None:
            raise PaymentError(f"{receiver} states no price: pass max_price to say how much to pay")
        if max_price is not None and amount > max_price:
            raise PaymentError(
                f"{receiver} charges {format_amount(amount, scale, code)} per message, more than "
                f"max_price {format_amount(max_price, scale, code)}"
            )
        request = PaidRequest(text=text, sender=self.name).model_dump_json().encode()
        result = await self._stream(details, amount, request, f"question to {receiver}")
        try:
            return PaidAnswer.model_validate_json(result.reply_data)
        except ValidationError:
            raise PaymentError(  # its body is not shown: it is a stranger's text
                f"{receiver} took the payment but its answer is not an aigent answer "
                f"({len(result.reply_data)} bytes)"
            ) from None

    async def pay(self, receiver: str, amount: int) -> int:
        """Pay ``amount`` to any STREAM receiver (a payment pointer or SPSP URL), within the
        spending limits; returns what arrived, in the receiver's units."""
        self.spending.check_destination(self.asset[0], receiver)
        details, _ = await _resolve(receiver)
        result = await self._stream(details, amount, b"", f"payment to {receiver}")
        return int(result.delivered)

    async def _stream(self, details: Any, amount: int, data: bytes, purpose: str) -> Any:
        """One STREAM payment under the spending policy: reserved first; released if nothing
        left this node, spent if any of it did."""
        code = self.asset[0]
        with tracing.span("payment", direction="out", asset=code, amount=amount):
            return await self._stream_under_policy(details, amount, data, purpose)

    async def _stream_under_policy(
        self, details: Any, amount: int, data: bytes, purpose: str
    ) -> Any:
        from aigent_connector.stream import StreamPaymentError, stream_pay

        code, scale = self.asset
        destination = details.destination_account
        async with self.spending.spend(
            code, amount, to=destination, scale=scale, purpose=purpose
        ) as spend:
            try:
                return await stream_pay(
                    self.connector.send, destination, details.shared_secret, amount, data,
                    timeout=ASK_TIMEOUT,
                )  # fmt: skip
            except StreamPaymentError as exc:
                # Every packet of it was answered, so what moved is known exactly.
                spend.moved(exc.result.sent)
                why = exc.reject.message if exc.reject is not None else str(exc)
                raise PaymentError(
                    f"{purpose} stopped after {exc.result.sent} of {amount}: {why}"
                ) from None

    # --- reports --------------------------------------------------------------------------------

    def accounts(self) -> list[dict[str, Any]]:
        """The connector's peer accounts: balance (positive: the peer owes this agent), credit
        limits, settlement threshold, whether the link is up, and the settlement engine."""
        if self.connector is None:
            return []
        out = []
        for name, peer in sorted(self.connector.peers.items()):
            account = self.connector.ledger.account(name)
            engine = self.engine_of.get(name)
            out.append(
                {
                    "peer": name,
                    "relation": peer.relation,
                    "asset": peer.asset_code,
                    "scale": peer.asset_scale,
                    "connected": bool(self.connector.connected(name)),
                    "balance": account.balance,
                    "reserved_in": account.reserved_in,
                    "reserved_out": account.reserved_out,
                    "min_balance": account.min_balance,
                    "max_balance": account.max_balance,
                    "settle_threshold": account.settle_threshold,
                    "settle_to": account.settle_to,
                    "settlement_engine": getattr(engine, "name", None),
                }
            )
        return out

    def settlements(self) -> list[dict[str, Any]]:
        """Per peer with a settlement engine: the settlements the connector asked of it
        (id, amount, state, settled) and the engine's channels, when it can tell them."""
        from aigent.interfaces import ReportsChannels

        settler = self.connector.settler if self.connector is not None else None
        out = []
        for account, engine in sorted(self.engine_of.items()):
            history = settler.history(account) if settler is not None else []
            channels = None
            if isinstance(engine, ReportsChannels):
                try:
                    channels = engine.channels(account)
                except Exception as exc:  # a report must not take the rest down with it
                    log.warning("%s: engine for %s cannot list its channels: %s",
                                self.name, account, exc)  # fmt: skip
            out.append(
                {
                    "peer": account,
                    "engine": getattr(engine, "name", type(engine).__name__),
                    "settlements": [
                        {"id": i, "amount": amount, "state": state, "settled": settled}
                        for i, amount, state, settled in history
                    ],
                    "channels": (
                        None if channels is None else [dataclasses.asdict(c) for c in channels]
                    ),
                }
            )
        return out

    @property
    def btp_port(self) -> int | None:
        return self.node.btp_port if self.node is not None else None

    @property
    def serving(self) -> bool:
        """Whether others can reach this node: peers over BTP, payers over SPSP."""
        return self.btp_port is not None or self.spsp_url is not None

    def status(self) -> str:
        """One line for the terminal: address, price, earnings."""
        if self.price:
            price = f"{self.price} per paid message"
        elif self.settings.free:
            price = "free over ILP (connector.free)"
        else:
            price = "none set, so paid messages are refused"
        where = f"; SPSP {self.spsp_url}" if self.spsp_url else ""
        return f"ILP address {self.address}{where}; price {price}; {self.earned()}"

    def earned(self) -> str:
        code, scale = self.asset
        amount, sold = self.earnings.total()
        return f"earned {format_amount(amount, scale, code)} from {sold} paid messages"


def connector_config(
    character: Character, data_dir: Path, secrets: Secrets, name: str
) -> tuple[Any, dict[str, str]]:
    """The connector's configuration from the character's ``connector`` section, with the
    agent's defaults (node id, address, ledger in the data directory), and the settlement
    engine each peer names. Raises :class:`CharacterError` naming the file and field."""
    from aigent_connector.config import ConfigError, parse_config

    from aigent.errors import CharacterError

    raw = json.loads(json.dumps(character.connector.node))  # a deep copy, plain data
    slug = data_dir.name or "agent"
    raw.setdefault("node_id", slug)
    if raw.get("address") is None and raw.get("parent") is None:
        raw["address"] = f"private.aigent.{slug}"  # RFC 15: not reachable from outside
    ledger = Path(raw.get("ledger_path") or "connector.sqlite")
    raw["ledger_path"] = str(ledger if ledger.is_absolute() else data_dir / ledger)
    wanted: dict[str, str] = {}
    for account, peer in (raw.get("peers") or {}).items():
        if isinstance(peer, dict) and peer.get("settlement"):
            wanted[account] = str(peer.pop("settlement"))
    source = f"{character.source or name} (connector)"

    def parsed() -> Any:
        try:
            return parse_config(raw, source)
        except ConfigError as exc:
            raise CharacterError(source, [("", str(exc).replace(f"{source}: ", ""))]) from None

    parsed()  # the section's shape first: a wrong field is named before a missing secret
    holders = [(f"peers.{account}", peer) for account, peer in (raw.get("peers") or {}).items()]
    holders += [(part, raw.get(part)) for part in ("admin", "local_delivery")]
    for where, holder in holders:
        env = holder.get("token_env") if isinstance(holder, dict) else None
        if env and holder.get("token") is None:
            # From the agent's secrets (its own, .env, the environment it was given), and
            # only from there: the connector would read the whole process environment.
            value = secrets.get(str(env))
            if value is None:
                problem = (f"{env} is not set: set it in the environment or a .env file, or "
                           "add it to the character's secrets")  # fmt: skip
                raise CharacterError(source, [(f"{where}.token_env", problem)])
            holder["token"] = value
    return parsed(), wanted


async def _resolve(receiver: str) -> tuple[Any, dict[str, Any]]:
    from aigent_connector.spsp import SpspError, resolve_details

    try:
        return await resolve_details(receiver)
    except SpspError as exc:
        raise PaymentError(str(exc)) from None


def _quoted_price(extra: dict[str, Any], code: str, scale: int) -> int | None:
    price = (extra.get("aigent") or {}).get("price")
    if not isinstance(price, dict):
        return None
    if (price.get("asset_code"), price.get("asset_scale")) != (code, scale):
        raise PaymentError(
            f"the receiver's price is in {price.get('asset_code')} at scale "
            f"{price.get('asset_scale')}, but this agent pays in {code} at scale {scale}"
        )
    return int(price["amount"])


def _server_secret(data_dir: Path, storage: Storage | None = None) -> bytes:
    """The receiver's STREAM server secret, made once so that connections and SPSP answers
    survive a restart, and a move to another server when the agent's stores are shared (a
    payment retried after its first host died is then taken by the next)."""
    return kept_secret(storage or FileStorage(data_dir), data_dir, "stream-secret")
