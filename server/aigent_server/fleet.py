"""Many agents in one process, on one event loop: each started and stopped on its own, one
that fails marked failed with its error while the others run on."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigent import Agent, AigentError, Character, Incoming, Reply, Spend, load_character
from aigent.amounts import format_amount
from aigent.interfaces import SearchableMemory
from aigent.observe import Observer
from aigent.secrets import Secrets
from aigent_server import knowledge
from aigent_server.confine import Hosts, environment
from aigent_server.database import Database, PostgresDatabase, PostgresStorage
from aigent_server.events import KINDS, EventBus
from aigent_server.registry import OPERATOR, Entry, Registry, Said

if TYPE_CHECKING:
    from aigent_server.leases import Leases

log = logging.getLogger("aigent.server")
LIVE_RECEIPTS = 1000
"""Replies per agent whose receipts are followed as they are anchored (the rest: as stored)."""

HOUR, DAY = 3600.0, 86400.0
OWNER_ASKED: ContextVar[bool] = ContextVar("owner_asked", default=False)
"""True while an action runs for its owner's own API request (the tokens routes): that request
is the confirmation ``confirm_above`` asks for. The caps still bind; only the question is
skipped, since the one who would answer it is the one asking."""


class FleetError(Exception):
    """A request the fleet cannot carry out; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Pending:
    """A payment above ``confirm_above``, parked until its owner approves or denies it."""

    id: str
    agent: str
    question: str
    asset: str
    amount: int
    destination: str
    purpose: str
    created_at: float
    expires_at: float
    answer: asyncio.Future[bool] = field(repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "question": self.question,
            "asset": self.asset,
            "amount": self.amount,
            "destination": self.destination,
            "purpose": self.purpose,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


@dataclass
class Hosted:
    """One agent the server hosts: its registry entry and, while it runs, the Agent."""

    entry: Entry
    state: str = "stopped"  # stopped | starting | running | stopping | failed
    error: str | None = None
    agent: Agent | None = None
    character: Character | None = None
    pending: dict[str, Pending] = field(default_factory=dict)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: Path | None = None
    """Where the running agent keeps its data (set at start)."""
    """The latest replies' receipts, by message id, as the agent keeps updating them."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def rails(by_rail: dict[str, tuple[int, int]], code: str, scale: int) -> list[dict[str, Any]]:
    """Earnings per rail (``ilp``, ``x402-xrpl``, ...): what each way of being paid brought."""
    return [
        {"rail": rail, "amount": amount, "messages": messages,
         "text": format_amount(amount, scale, code)}
        for rail, (amount, messages) in by_rail.items()
    ]  # fmt: skip


class Fleet:
    def __init__(
        self,
        data_dir: Path,
        bus: EventBus,
        confirm_timeout: float = 300.0,
        hosts: Hosts | None = None,
        share_env: Iterable[str] = (),
        database: Database | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.hosts = hosts or Hosts()
        """Where uploaded characters may connect (see aigent_server.confine)."""
        self.share_env = tuple(share_env)
        """Names in the server's environment uploaded characters may read besides model keys."""
        self.bus = bus
        self.confirm_timeout = confirm_timeout
        self.registry = Registry(database or data_dir / "server.sqlite")
        self.leases: Leases | None = None
        """Set when the server shares its database with others: an agent runs here only while
        this server holds its lease (see aigent_server.leases)."""
        self.hosted: dict[str, Hosted] = {}
        for entry in self.registry.entries():
            self.hosted[entry.name] = Hosted(entry, character=_peek(entry.source))
        self._followed = set(self.hosted)

    # --- what is hosted ---------------------------------------------------------------------

    def visible(self, owner: str) -> list[Hosted]:
        """The agents ``owner`` may see: its own; the operator sees them all."""
        return [h for h in self.hosted.values() if owner in (OPERATOR, h.entry.owner)]

    def get(self, name: str, owner: str) -> Hosted:
        hosted = self.hosted.get(name)
        if hosted is None or owner not in (OPERATOR, hosted.entry.owner):
            # Another user's agent is as absent as one that does not exist.
            raise FleetError(404, f"no agent named {name!r}")
        return hosted

    async def add(
        self, source: Path, owner: str, *, uploaded: bool, desired: str = "running"
    ) -> Hosted:
        """Register the agent in ``source`` (validated: a bad file raises CharacterError)."""
        character = await asyncio.to_thread(load_character, source)
        if uploaded:
            self._confine(character)
        existing = self.hosted.get(character.name)
        if existing is not None:
            if existing.entry.owner != owner or uploaded:
                raise FleetError(409, f"an agent named {character.name!r} already exists")
            if existing.entry.source != source:
                existing.entry.source = source
                await self.registry.set_source(character.name, source)
            existing.character = character
            return existing
        entry = Entry(character.name, owner, source, uploaded, desired, time.time())
        await self.registry.add(entry)
        hosted = self.hosted[entry.name] = Hosted(entry, character=character)
        return hosted

    async def replace(self, hosted: Hosted, source: Path) -> Hosted:
        """Load a new character file for ``hosted`` (same name), restarting it if it runs."""
        character = await asyncio.to_thread(load_character, source)
        if hosted.entry.uploaded:
            self._confine(character)
        if character.name != hosted.entry.name:
            raise FleetError(
                422, f"the file names {character.name!r}; it must keep {hosted.entry.name!r}"
            )
        was_running = hosted.state == "running"
        await self.stop(hosted, remember=False)
        old = hosted.entry.source
        hosted.entry.source, hosted.character = source, character
        await self.registry.set_source(hosted.entry.name, source)
        if hosted.entry.uploaded and old != source:
            _remove_upload(old)
        if was_running:
            await self.start(hosted)
        return hosted

    async def remove(self, hosted: Hosted) -> None:
        await self.stop(hosted, remember=False)
        await self.registry.remove(hosted.entry.name)
        self.hosted.pop(hosted.entry.name, None)
        if hosted.entry.uploaded:
            _remove_upload(hosted.entry.source)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start_desired(self) -> None:
        """At server start: every agent whose owner last wanted it running, side by side."""
        if self.leases is not None:
            return  # those this server takes, as its leases' rounds take them
        await asyncio.gather(
            *(
                self.start(h, remember=False)
                for h in self.hosted.values()
                if h.entry.desired == "running"
            )
        )

    async def start(self, hosted: Hosted, *, remember: bool = True) -> Hosted:
        async with hosted.lock:
            if remember and hosted.entry.desired != "running":
                hosted.entry.desired = "running"
                await self.registry.set_desired(hosted.entry.name, "running")
            if hosted.state == "running":
                return hosted
            if self.leases is not None and not await self.leases.take(hosted.entry.name):
                return hosted  # another server runs it (describe says which)
            self._set_state(hosted, "starting")
            try:
                character = await asyncio.to_thread(load_character, hosted.entry.source)
                # An uploaded file must not choose where on the server's disk it writes.
                own = None if hosted.entry.uploaded else character.data_dir
                data_dir = Path(own) if own else self.agent_dir(hosted.entry.name)
                guards: list[object] = []
                secrets = None
                if hosted.entry.uploaded:  # again: the operator's allowed hosts may have changed
                    self._confine(character)
                    guards.append(self.hosts.plugin())
                    # A stranger's file must not sign with the operator's wallet or post as
                    # the operator's X account: it reads its own secrets and the model keys,
                    # never the server's .env or the rest of its environment.
                    secrets = Secrets(character.secrets, [], environment(self.share_env))
                await asyncio.to_thread(knowledge.attach, character, data_dir)
                storage = None
                if isinstance(self.registry.db, PostgresDatabase):  # with its ledger, shared
                    db = self.registry.db
                    character = db.with_ledger(character, hosted.entry.name)
                    storage = await asyncio.to_thread(db.storage, hosted.entry.name)
                agent = Agent(
                    character, data_dir=data_dir, plugins=guards, secrets=secrets, storage=storage
                )
                agent.spending.confirm = self._confirmer(hosted)
                agent.observe(self._observer(hosted))  # before start: starting may pay
                await agent.start()
            except Exception as exc:  # any plugin's failure: this agent fails, the rest run on
                message = (
                    str(exc)
                    if isinstance(exc, AigentError | FleetError)
                    else f"{type(exc).__name__}: {exc}"
                )
                log.warning("agent %s failed to start: %s", hosted.entry.name, message)
                if storage is not None:  # the agent's connection to the shared database
                    await asyncio.to_thread(storage.close)
                self._set_state(hosted, "failed", message)
                return hosted
            hosted.agent, hosted.character, hosted.data_dir = agent, character, data_dir
            self._set_state(hosted, "running")
            return hosted

    async def stop(self, hosted: Hosted, *, remember: bool = True) -> Hosted:
        async with hosted.lock:
            if remember and hosted.entry.desired != "stopped":
                hosted.entry.desired = "stopped"
                await self.registry.set_desired(hosted.entry.name, "stopped")
            for pending in list(hosted.pending.values()):
                if not pending.answer.done():
                    pending.answer.set_result(False)  # a stopping agent pays nothing unasked
            agent, hosted.agent = hosted.agent, None
            if agent is None:
                if hosted.state == "failed" and remember:
                    self._set_state(hosted, "stopped")
                return hosted
            self._set_state(hosted, "stopping")
            try:
                await agent.stop()
            except Exception as exc:
                self._set_state(hosted, "failed", f"{type(exc).__name__}: {exc}")
                return hosted
            finally:
                await _close_storage(agent)
            self._set_state(hosted, "stopped")
            return hosted

    async def close(self) -> None:
        """Stop everything (the desired states stay as they were, for the next start)."""
        await asyncio.gather(*(self.stop(h, remember=False) for h in self.hosted.values()))
        if self.leases is not None:
            await self.leases.close()
        await self.registry.drain()
        self.registry.close()

    async def follow(self, entries: list[Entry]) -> None:
        """The shared registry as another server changed it: agents added or removed there,
        and the state each should be in."""
        seen = {entry.name for entry in entries}
        for entry in entries:
            hosted = self.hosted.get(entry.name)
            if hosted is None:
                character = await asyncio.to_thread(_peek, entry.source)
                self.hosted[entry.name] = Hosted(entry, character=character)
            else:
                hosted.entry.desired, hosted.entry.source = entry.desired, entry.source
        # Only what an earlier round saw: one added here since this round read is not gone.
        for name in self._followed - seen:
            hosted = self.hosted.pop(name, None)
            if hosted is not None:
                await self.stop(hosted, remember=False)
        self._followed = seen

    def _confine(self, character: Character) -> None:
        _refuse_code(character)
        problems = self.hosts.check(character)
        if problems:
            raise FleetError(422, "\n".join(problems))

    def agent_dir(self, name: str) -> Path:
        return self.data_dir / "agents" / slug(name)

    # --- messages ----------------------------------------------------------------------------

    async def chat(
        self,
        hosted: Hosted,
        text: str,
        user: str,
        room: str,
        on_text: Callable[[str], None] | None = None,
        *,
        client: str = "direct",
    ) -> Reply:
        """One message to a running agent, on the channel ``client`` (the REST API is
        ``direct``), kept in the history and told as events."""
        agent = hosted.agent
        if agent is None or hosted.state != "running":
            raise self._not_running(hosted)
        name, owner = hosted.entry.name, hosted.entry.owner
        self.bus.publish("message.in", name, owner, room=room, user=user, text=text, client=client)
        said = Said(user, "user", text)
        try:
            incoming = Incoming(text=text, user=user, room=room, client=client)
            reply = await agent.handle(incoming, on_text=on_text)
        except Exception as exc:
            message = str(exc) if isinstance(exc, AigentError) else f"{type(exc).__name__}: {exc}"
            self.bus.publish("agent.error", name, owner, room=room, error=message)
            self.registry.record(name, room, said)
            raise FleetError(502, f"agent {name!r} could not answer: {message}") from exc
        # The message and its reply queued as one write, made behind the reply: a durable
        # write on the reply's path was most of what the HTTP door added to a chat.
        self.registry.record(
            name, room, said, Said(name, "assistant", reply.text, reply.message_id, reply.receipts)
        )
        # The same dict the anchoring loop fills in later: a receipt asked for after its batch
        # is anchored shows the anchor, though the history holds it as it was at the reply.
        hosted.receipts[reply.message_id] = reply.receipts
        while len(hosted.receipts) > LIVE_RECEIPTS:
            hosted.receipts.pop(next(iter(hosted.receipts)))
        self.bus.publish(
            "message.out",
            name,
            owner,
            room=room,
            message_id=reply.message_id,
            text=reply.text,
            model=reply.model,
            receipts=reply.receipts,
        )
        return reply

    async def receipts(self, hosted: Hosted, message_id: str) -> dict[str, Any]:
        live = hosted.receipts.get(message_id)
        if live is not None:
            return live
        stored = await self.registry.receipts(hosted.entry.name, message_id)
        if stored is None:
            raise FleetError(404, f"no reply {message_id!r} of agent {hosted.entry.name!r}")
        return stored

    # --- memory ------------------------------------------------------------------------------

    def _running(self, hosted: Hosted) -> Agent:
        if hosted.agent is None or hosted.state != "running":
            raise self._not_running(hosted)
        return hosted.agent

    def _not_running(self, hosted: Hosted) -> FleetError:
        name = hosted.entry.name
        runner = self.leases.runner(name) if self.leases else None
        if runner is not None and self.leases is not None and runner != self.leases.name:
            return FleetError(409, f"agent {name!r} runs on server {runner}: ask that server")
        return FleetError(409, f"agent {name!r} is {hosted.state}: start it first")

    async def search(self, hosted: Hosted, query: str, k: int) -> list[dict[str, Any]]:
        agent = self._running(hosted)
        store = _searchable(agent, hosted.entry.name)
        return knowledge.found(await store.search(query, k))

    async def add_knowledge(
        self, hosted: Hosted, filename: str | None, content: bytes
    ) -> dict[str, Any]:
        agent = self._running(hosted)
        store = _searchable(agent, hosted.entry.name)
        assert hosted.data_dir is not None  # set whenever the agent runs
        try:
            path = await asyncio.to_thread(knowledge.save, hosted.data_dir, filename, content)
        except knowledge.KnowledgeError as exc:
            raise FleetError(exc.status, str(exc)) from None
        report = await store.ingest()
        return {
            "file": path.name,
            "added": report.added,
            "unchanged": report.unchanged,
            "removed": report.removed,
            "skipped": report.skipped,
        }

    # --- money -------------------------------------------------------------------------------

    def money(self, hosted: Hosted) -> dict[str, Any]:
        agent = hosted.agent
        character = agent.character if agent else hosted.character
        result: dict[str, Any] = {"earned": None, "spent": [], "held": []}
        if agent is not None and agent.node is not None:
            code, scale = agent.node.asset
            amount, sold = agent.node.earnings.total()
            result["earned"] = {
                "asset": code,
                "scale": scale,
                "amount": amount,
                "messages": sold,
                "text": format_amount(amount, scale, code),
                "rails": rails(agent.node.earnings.by_rail(), code, scale),
            }
        if character is not None and agent is not None:
            for asset, limits in character.spending.items():
                result["spent"].append(
                    {
                        "asset": asset,
                        "scale": limits.asset_scale,
                        "last_hour": agent.spending.spent(asset, HOUR),
                        "last_day": agent.spending.spent(asset, DAY),
                        "per_hour": limits.per_hour,
                        "per_day": limits.per_day,
                        "confirm_above": limits.confirm_above,
                    }
                )
            result["held"] = [
                {"id": i, "asset": a, "amount": n, "destination": d, "note": note}
                for i, a, n, d, note in agent.spending.held()
            ]
        return result

    def confirmations(self, hosted: Hosted) -> list[dict[str, Any]]:
        return [p.public() for p in hosted.pending.values()]

    def answer(self, hosted: Hosted, confirmation: str, approve: bool) -> None:
        pending = hosted.pending.get(confirmation)
        if pending is None or pending.answer.done():
            raise FleetError(404, f"no pending confirmation {confirmation!r}")
        pending.answer.set_result(approve)

    def _confirmer(self, hosted: Hosted) -> Callable[[Spend, str], Any]:
        async def confirm(spend: Spend, question: str) -> bool:
            if OWNER_ASKED.get():
                return True
            now = time.time()
            pending = Pending(
                id=uuid.uuid4().hex[:12],
                agent=hosted.entry.name,
                question=question,
                asset=spend.asset,
                amount=spend.amount,
                destination=spend.destination,
                purpose=spend.purpose,
                created_at=now,
                expires_at=now + self.confirm_timeout,
                answer=asyncio.get_running_loop().create_future(),
            )
            hosted.pending[pending.id] = pending
            name, owner = hosted.entry.name, hosted.entry.owner
            self.bus.publish("confirmation.pending", name, owner, **pending.public())
            try:
                approved = await asyncio.wait_for(
                    asyncio.shield(pending.answer), self.confirm_timeout
                )
            except TimeoutError:
                approved = False  # nobody answered: the payment does not happen
            finally:
                hosted.pending.pop(pending.id, None)
            self.bus.publish("confirmation.resolved", name, owner, id=pending.id, approved=approved)
            return approved

        return confirm

    def _observer(self, hosted: Hosted) -> Observer:
        """Publishes what the agent observes (payments, paid messages, settlements, anchors)
        as live events; a plugin's own kinds as ``plugin.event``."""

        def observed(kind: str, data: Mapping[str, Any]) -> None:
            name, owner = hosted.entry.name, hosted.entry.owner
            # A copy in plain JSON: a plugin's stray bytes or Decimal must not break every
            # client's stream, nor a later change to its dict rewrite the event.
            plain = json.loads(json.dumps(data, default=str))
            if kind in KINDS:
                self.bus.publish(kind, name, owner, **plain)
            else:
                self.bus.publish("plugin.event", name, owner, event=kind, **plain)

        return observed

    def _set_state(self, hosted: Hosted, state: str, error: str | None = None) -> None:
        hosted.state, hosted.error = state, error
        data: dict[str, Any] = {"state": state}
        if error is not None:
            data["error"] = error
        self.bus.publish("agent.state", hosted.entry.name, hosted.entry.owner, **data)

    # --- what the API shows ------------------------------------------------------------------

    def describe(self, hosted: Hosted) -> dict[str, Any]:
        character = hosted.character
        agent = hosted.agent
        node = agent.node if agent is not None else None
        earned = None
        if node is not None and node.earnings.earned is not None:  # no database call here
            code, scale = node.asset
            earned = format_amount(node.earnings.earned[0], scale, code)
        return {
            "name": hosted.entry.name,
            "owner": hosted.entry.owner,
            "uploaded": hosted.entry.uploaded,
            "state": hosted.state,
            "desired": hosted.entry.desired,
            "error": hosted.error,
            "format": character.format if character else None,
            "model": (
                ", ".join(m.model for m in character.models.chain("large")) if character else None
            )
            or "local",
            "price": str(character.price) if character and character.price else None,
            "address": node.address if node is not None else None,
            "earned": earned,
            "bio": list(character.bio)[:3] if character else [],
            "pending_confirmations": len(hosted.pending),
            "server": self.leases.runner(hosted.entry.name) if self.leases else None,
            "created_at": hosted.entry.created_at,
        }


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "agent"


def _refuse_code(character: Character) -> None:
    """An uploaded file may use installed plugins only: a ``.py`` plugin or ``allow_paths``
    would let whoever uploads it run code or read files on the server."""
    scripts = [p for p in character.plugins if p.endswith(".py")]
    mcp = character.settings.get("mcp")
    servers = mcp.get("servers") if isinstance(mcp, dict) else None
    # An MCP server's command is a program the server would run: code, like a .py plugin.
    commands = [
        f"settings.mcp.servers.{name}.command"
        for name, server in (servers.items() if isinstance(servers, dict) else [])
        if isinstance(server, dict) and "command" in server
    ]
    if scripts or character.allow_paths or commands:
        what = (
            "plugins " + ", ".join(scripts)
            if scripts
            else ", ".join(commands)
            if commands
            else "allow_paths"
        )
        raise FleetError(
            422,
            f"an uploaded character may not name {what}: use installed plugins, or ask the "
            "operator to serve the file from the command line",
        )


def _searchable(agent: Agent, name: str) -> SearchableMemory:
    try:
        return knowledge.searchable(agent.memory, name)
    except knowledge.KnowledgeError as exc:
        raise FleetError(exc.status, str(exc)) from None


def _peek(source: Path) -> Character | None:
    """The character behind a registry entry, for listing before it starts (None if broken)."""
    try:
        return load_character(source)
    except AigentError:
        return None


def _remove_upload(source: Path) -> None:
    source.unlink(missing_ok=True)
    try:
        source.parent.rmdir()
    except OSError:
        pass


async def _close_storage(agent: Agent) -> None:
    """A served agent's connection to the shared database goes with the agent."""
    if isinstance(agent.storage, PostgresStorage):
        await asyncio.to_thread(agent.storage.close)
