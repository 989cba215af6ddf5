"""The shapes plugins implement. Structural (typing.Protocol): no base class to inherit."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from aigent.observe import Observers, check
from aigent.storage import FileStorage, Storage

if TYPE_CHECKING:
    from aigent_connector import Connector

    from aigent.character import Character, ModelConfig
    from aigent.messages import (
        ChatMessage,
        Incoming,
        ModelResponse,
        PaidAnswer,
        Reply,
        ToolSpec,
    )
    from aigent.runtime import Agent
    from aigent.secrets import Secrets
    from aigent.spending import SpendingPolicy
    from aigent.watch import Watcher


@dataclass
class Ingested:
    """What one knowledge ingestion did."""

    added: int = 0
    unchanged: int = 0
    removed: int = 0
    files_changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class PluginContext:
    """What a plugin gets to know about the agent it serves."""

    character: Character
    secrets: Secrets
    data_dir: Path
    storage: Storage = field(default=None)  # type: ignore[assignment]  # __post_init__ sets it
    """Where the plugin keeps state that must outlive the process and follow the agent to
    another server: ``ctx.storage.open(name, MIGRATIONS)`` (aigent.storage)."""
    plugin: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("aigent"))
    spending: SpendingPolicy | None = None
    """The agent's spending policy: every plugin that moves value reserves through it."""
    payments: Payments | None = None
    """The agent's payment node, to pay or ask other agents (None: its connector is off)."""
    x402_payers: list[X402Payer] = field(default_factory=list)
    """What pays x402 offers for the agent (from ``register_x402_payers``, once assembled)."""
    watchers: list[Watcher] = field(default_factory=list)
    """What the agent's plugins watch (from ``register_watchers``, once assembled)."""
    observers: Observers = field(default_factory=Observers, repr=False)
    """Who watches the agent; plugins tell them through :meth:`emit`."""
    _homes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.storage is None:  # a context made by hand (a test, a script): files
            self.storage = FileStorage(self.data_dir)

    def emit(self, kind: str, **data: Any) -> None:
        """Tell the agent's observers what happened (``agent.observe``): a claim sent, a
        batch anchored. ``kind`` is a dotted lower-case name (``aigent.observe.KINDS`` lists
        the known ones), ``data`` plain JSON values; the plugin's name is added as
        ``plugin``. Cheap when nobody watches; an observer that fails never reaches here."""
        check(kind, data)  # always: a plugin's mistake shows before anyone watches
        if not self.observers:
            return
        self.observers.emit(kind, {**data, "plugin": self.plugin})

    @property
    def state(self) -> dict[str, Any]:
        """This plugin's home in this agent: what it builds once and shares between its hooks
        (a chain client, a store), kept for the agent's life. Never shared between agents, so
        two agents in one process never see each other's objects."""
        return self._homes.setdefault(self.plugin, {})

    def for_plugin(self, name: str) -> PluginContext:
        """The same context, with ``settings`` namespaced to plugin ``name``."""
        settings = self.character.settings.get(name, {})
        return PluginContext(
            character=self.character,
            secrets=self.secrets,
            data_dir=self.data_dir,
            storage=self.storage,
            plugin=name,
            settings=settings if isinstance(settings, dict) else {},
            log=logging.getLogger(f"aigent.{name}"),
            spending=self.spending,
            payments=self.payments,
            x402_payers=self.x402_payers,
            watchers=self.watchers,
            observers=self.observers,
            _homes=self._homes,
        )


class Payments(Protocol):
    """What a plugin may ask of the agent's payment node; every payment passes the spending
    policy."""

    async def ask(self, receiver: str, text: str, *, max_price: int | None = None) -> PaidAnswer:
        """Pay the agent at ``receiver`` (a payment pointer or SPSP URL) to answer ``text``."""
        ...

    async def pay(self, receiver: str, amount: int) -> int:
        """Pay ``amount`` to any STREAM receiver; returns what arrived."""
        ...


@dataclass(frozen=True)
class X402Paid:
    """What an x402 payer paid for one request."""

    amount: str
    """As the offer states it: drops for XRP, the decimal value of an issued currency."""
    asset: str
    to: str
    tx: str
    network: str
    """The offer's network (``xrpl:1``): the rail is ``x402-`` and its family (``x402-xrpl``)."""

    @property
    def rail(self) -> str:
        return "x402-" + self.network.split(":")[0]


@dataclass(frozen=True)
class X402Answer:
    """What a server said to a request that carried a payment: its HTTP status and, for a 402
    (the payment refused), why."""

    status: int
    reason: str = ""


X402Send = Callable[[str], Awaitable[X402Answer]]
"""Sends the request again with this ``PAYMENT-SIGNATURE`` header value; what the server said."""


@runtime_checkable
class X402Payer(Protocol):
    """Pays x402 offers (the ``accepts`` of a 402) from one of the agent's accounts, under its
    spending policy. A plugin offers one with ``register_x402_payers``; ``ask_a2a`` pays paid
    A2A agents with it, and a plugin's own HTTP client may too (``ctx.x402_payers``)."""

    name: str

    async def choose(self, accepts: Sequence[Any]) -> dict[str, Any] | None:
        """The offer among ``accepts`` this payer can pay (its scheme, network, asset), or
        None. Nothing is reserved or signed."""
        ...

    async def pay(
        self,
        offer: dict[str, Any],
        send: X402Send,
        *,
        resource: dict[str, Any] | None = None,
        max_value: Decimal | None = None,
        purpose: str = "",
    ) -> X402Paid:
        """Pay ``offer``: refuse it above ``max_value`` (in the asset's whole units: XRP, not
        drops) or outside the spending policy before anything is signed; reserve, sign, and
        call ``send(header)`` while the account is held; then settle the reservation by the
        answer. A 402 raises naming the server's reason, and releases the reservation only
        when the ledger shows the payment never applied."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    model_id: str

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
    ) -> ModelResponse: ...


@runtime_checkable
class StreamingChatModel(ChatModel, Protocol):
    """A model that can stream: it yields text chunks as they come, then exactly one final
    :class:`ModelResponse` (the whole text, any tool calls, usage)."""

    def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ModelResponse]: ...


class ModelProvider(Protocol):
    name: str

    def supports(self, model_id: str) -> bool: ...

    def get_model(self, config: ModelConfig, ctx: PluginContext) -> ChatModel: ...


class Embedder(Protocol):
    name: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass
class Recalled:
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Exchange:
    """One message and the agent's reply to it: what memory stores, in batches."""

    message: Incoming
    reply: Reply
    at: float = field(default_factory=time.time)


class MemoryStore(Protocol):
    """Conversation memory and knowledge. The runtime recalls before the model and hands
    exchanges to ``remember`` in batches, written behind the reply (``aigent.memory``)."""

    async def remember(self, exchanges: Sequence[Exchange], agent: str) -> None: ...

    async def recall(self, message: Incoming, agent: str) -> list[Recalled]: ...

    async def close(self) -> None: ...


@runtime_checkable
class SearchableMemory(MemoryStore, Protocol):
    """A store that ``aigent memory ingest|search|stats`` can work with."""

    async def ingest(self) -> Ingested: ...

    async def search(self, query: str, k: int = 5) -> list[Recalled]: ...

    async def stats(self) -> dict[str, Any]: ...


class ContextProvider(Protocol):
    name: str

    async def get(self, message: Incoming, agent: Agent) -> str | None: ...


class Evaluator(Protocol):
    name: str

    async def evaluate(self, message: Incoming, reply: Reply, agent: Agent) -> None: ...


class Client(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class SettlementEngine(Protocol):
    """Settles with one peer of the agent's connector. The agent's node calls ``attach``, then
    hands the engine to the connector (which calls ``settle`` whenever the balance crosses the
    peer's threshold), then ``start``; ``close`` when it stops. An engine with nothing to do
    in ``attach``, ``start`` or ``close`` implements them as no-ops."""

    name: str

    def attach(self, connector: Connector, account: str) -> None:
        """Join peer ``account`` of ``connector`` before anything is settled: an engine that
        talks to the peer (payment-channel claims over BTP) registers its side protocols here,
        through the connector API ``aigent_connector`` documents for settlement engines."""
        ...

    async def start(self) -> None:
        """Begin background work (redeeming incoming claims, say)."""
        ...

    async def settle(self, account: str, amount: int, settlement_id: str | None = None) -> int:
        """Settle ``amount`` (in the account's asset scale) with peer ``account``; return how
        much was settled. The same ``settlement_id`` after a crash must not pay twice."""
        ...

    async def close(self) -> None:
        """Stop background work and let go of files (redeeming what is held, say)."""
        ...


@dataclass(frozen=True)
class ChannelState:
    """One payment channel a settlement engine holds with a peer, as its engine last knew it.
    Amounts are in the channel's asset at ``asset_scale`` (drops for XRP)."""

    peer: str
    """The connector account it settles with."""
    channel: str
    """Its id on its ledger."""
    direction: Literal["out", "in"]
    """``out``: this agent pays through it; ``in``: the peer pays this agent."""
    asset_code: str
    asset_scale: int
    capacity: int
    """What is locked in the channel."""
    claimed: int
    """The best claim's cumulative total (signed, for ``out``; held, for ``in``)."""
    redeemed: int
    """Of ``claimed``, what has been paid out on chain."""
    state: Literal["open", "closed"] = "open"
    expires_at: float | None = None
    """POSIX seconds after which the channel can no longer pay (None: no expiry known)."""


@runtime_checkable
class ReportsChannels(Protocol):
    """A settlement engine that can list its channels (optional beside
    :class:`SettlementEngine`: an engine without channels, or one written before this, is
    simply not asked). Called on the event loop: read local state only, quickly."""

    def channels(self, account: str) -> list[ChannelState]:
        """The channels this engine holds with peer ``account``."""
        ...


@runtime_checkable
class ReportsAnchoring(Protocol):
    """A service that anchors the agent's published messages (TRN's loop, say) and can say
    how far it got: ``aigent serve`` shows it. Called in a worker thread; plain JSON values."""

    name: str

    def anchoring(self, recent: int = 20) -> dict[str, Any]:
        """Counts (``queued_messages``, ``sealed_batches``, ``anchored_batches``,
        ``anchored_messages``), the ``recent`` latest batches (``id``, ``root``, ``count``,
        ``status``, ``tx_hash``, ``block_number``, ``sealed_at``, ``anchored_at``), and
        ``last_error`` (None when the last round worked)."""
        ...
