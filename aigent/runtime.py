"""The Agent: one message travels one way through it.

message -> context (providers + recalled memory + character) -> model (actions as tools)
-> actions -> reply -> evaluators -> memory -> response hooks -> back to the client.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aigent import tracing
from aigent.actions import Action
from aigent.assembly import as_action, assemble, open_memory
from aigent.character import Character, load_character
from aigent.errors import (
    ActionBlocked,
    AigentError,
    ModelError,
    PluginError,
)
from aigent.interfaces import (
    ChatModel,
    Client,
    ContextProvider,
    Evaluator,
    Exchange,
    MemoryStore,
    PluginContext,
    ReportsAnchoring,
)
from aigent.memory import WriteBehind
from aigent.messages import (
    ActionError,
    ActionResult,
    ChatMessage,
    Incoming,
    ModelResponse,
    Outgoing,
    Reply,
    ToolSpec,
    Usage,
)
from aigent.models import stream_or_chat
from aigent.observe import Observer, Observers
from aigent.plugins import Plugins
from aigent.prompt import system_prompt
from aigent.secrets import Secrets, redact
from aigent.spending import MIGRATIONS as SPENDING_MIGRATIONS
from aigent.spending import SpendDenied, SpendingPolicy
from aigent.storage import FileStorage, Storage
from aigent.sync import SyncRunner

if TYPE_CHECKING:
    from aigent.a2a import A2AAnswer
    from aigent.messages import PaidAnswer
    from aigent.node import AgentNode, NodeParts

log = logging.getLogger("aigent.runtime")
T = TypeVar("T")

HISTORY_TURNS = 10
MAX_TOOL_ROUNDS = 4
PROVIDER_TIMEOUT = 5.0


class Agent:
    """An agent: a character plus plugins. Use ``async with agent:`` to start and stop it."""

    def __init__(
        self,
        character: Character,
        *,
        plugins: Sequence[object] = (),
        data_dir: str | Path | None = None,
        secrets: Secrets | None = None,
        load_installed: bool = True,
        storage: Storage | None = None,
    ) -> None:
        self.character = character
        self.name = character.name
        self.secrets = secrets or Secrets.for_character(character.secrets, character.source)
        self.data_dir = Path(
            data_dir or character.data_dir or Path(".aigent") / _slug(character.name)
        ).expanduser()
        self.observers = Observers()
        self.storage: Storage = storage or FileStorage(self.data_dir)
        """Where the agent's stores are (SQLite files in ``data_dir`` unless a server shares
        a database between the machines that may run it)."""
        self.spending = SpendingPolicy(
            character.spending, self.data_dir / "spending.sqlite", observers=self.observers
        )
        self.spending.records = self.storage.open("spending", SPENDING_MIGRATIONS)
        self.ctx = PluginContext(
            character=character,
            secrets=self.secrets,
            data_dir=self.data_dir,
            storage=self.storage,
            spending=self.spending,
            payments=self if character.connector.enabled else None,
            observers=self.observers,
        )
        self.plugins = Plugins()
        self._code_plugins = list(plugins)
        self._load_installed = load_installed
        self.model: ChatModel | None = None
        self.models: dict[str, ChatModel] = {}
        self.memory: MemoryStore | None = None
        self._memory_writes: WriteBehind | None = None
        self.actions: dict[str, Action] = {}
        self.providers: list[ContextProvider] = []
        self.evaluators: list[Evaluator] = []
        self.clients: list[Client] = []
        self.services: list[Client] = []
        self._owners: dict[int, str] = {}  # id(client or service) -> the plugin it came from
        self._history: dict[tuple[str, str], deque[ChatMessage]] = defaultdict(
            lambda: deque(maxlen=HISTORY_TURNS * 2)
        )
        self._running: list[Client] = []  # the services and clients started, in order
        self._late_actions: list[str] = []  # actions services brought when they started
        self._node_parts: NodeParts | None = None
        self._assembled = False
        self._started = False
        self._sync: SyncRunner | None = None
        self.node: AgentNode | None = None
        """The agent's payment node (its ILP connector), once started."""

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Agent:
        """Load a character file (any supported format) into an agent; nothing starts yet."""
        return cls(load_character(path), **kwargs)

    def __repr__(self) -> str:
        return f"Agent({self.name!r})"

    def observe(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback(kind, data)`` for what happens to the agent's money: payments
        committed, released or held, paid messages, settlements, anchored batches (the kinds
        are in ``aigent.observe.KINDS``; plugins may add their own). Subscribe before
        :meth:`start` to see what starting does. Returns a function that unsubscribes."""
        return self.observers.add(callback)

    def anchoring(self, recent: int = 20) -> dict[str, dict[str, Any]]:
        """How each running anchoring service stands, by its name (blocking: SQLite reads)."""
        return {
            s.name: s.anchoring(recent) for s in self._running if isinstance(s, ReportsAnchoring)
        }

    # --- assembling ------------------------------------------------------------------------------

    def assemble(self) -> None:
        """Load, configure and enable everything the agent uses, in one pass, before it starts
        (see :mod:`aigent.assembly`); or fail naming the plugin that could not be used."""
        if self._assembled:
            return
        built = assemble(self, self._code_plugins, self._load_installed)
        self.models, self.model, self.memory = built.models, built.models["large"], built.memory
        self.actions, self.providers = built.actions, built.providers
        self.evaluators, self.services, self.clients = (
            built.evaluators,
            built.services,
            built.clients,
        )
        self._node_parts, self._owners = built.node, built.owners
        self._assembled = True

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, clients: bool = True) -> None:
        """Assemble, then start every client the character names (``clients=False`` for a
        terminal or embedded chat only); if one fails, the others are stopped again."""
        if self._started:
            return
        await asyncio.to_thread(self.assemble)
        tracing.configure()  # once per process, from OpenTelemetry's own variables
        if self.memory is None and self.character.memory.enabled:
            # Closed by a stop: opened again (cheap; the store's slow parts run in background).
            self.memory = await asyncio.to_thread(open_memory, self)
        started: list[Client] = []
        self.observers.bind(asyncio.get_running_loop())
        try:
            if self.character.connector.enabled:
                from aigent.node import AgentNode

                assert self._node_parts is not None
                node = AgentNode(self._node_parts)
                await node.start()
                self.node = node
            for client in [*self.services, *(self.clients if clients else ())]:
                owner = self._owners.get(id(client), getattr(client, "name", "client"))
                await _configure_async(owner, client.start)
                started.append(client)
                self._adopt_actions(client, owner)
            self._running = started
        except BaseException:
            self._drop_late_actions()
            for client in reversed(started):
                await _quietly(client.stop())
            if self.node is not None:
                await _quietly(self.node.stop())
                self.node = None
            raise
        if self.memory is not None:
            memory = self.character.memory
            self._memory_writes = WriteBehind(
                self.memory, self.name, memory.flush_seconds, memory.flush_batch
            )
            self._memory_writes.start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._drop_late_actions()
        for client in reversed(self._running):
            await _quietly(client.stop())
        self._running = []
        if self.node is not None:
            await _quietly(self.node.stop())
            self.node = None
        if self._memory_writes is not None:
            await _quietly(self._memory_writes.stop())  # drained: a clean stop loses nothing
            self._memory_writes = None
        if self.memory is not None:
            await _quietly(self.memory.close())
            self.memory = None
        self.spending.close()
        tracing.flush()  # the last messages' spans reach the collector before the process ends
        self._started = False

    def _adopt_actions(self, service: Client, owner: str) -> None:
        """Actions a service knows only once it runs (an MCP server's tools, listed by the
        server): they join the agent's actions until it stops. A name already taken keeps its
        first owner, as at assembly."""
        found = getattr(service, "actions", None)
        if not callable(found):
            return
        try:
            late = [as_action(obj) for obj in found()]
        except Exception as exc:
            raise PluginError(
                owner, f"could not list its actions ({type(exc).__name__}: {redact(str(exc))})"
            ) from exc
        for action in late:
            if action.name in self.actions:
                log.warning(
                    "%s: %s's action %r is ignored: %s already has one by that name",
                    self.name, owner, action.name, self.actions[action.name].plugin or "the agent",
                )  # fmt: skip
                continue
            action.plugin = owner
            self.actions[action.name] = action
            self._late_actions.append(action.name)

    def _drop_late_actions(self) -> None:
        for name in self._late_actions:
            self.actions.pop(name, None)
        self._late_actions = []

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- one message -----------------------------------------------------------------------------

    async def chat(
        self,
        text: str,
        *,
        user: str = "user",
        room: str = "default",
        on_text: Callable[[str], None] | None = None,
    ) -> Reply:
        """Answer one message. Starts the agent on first use if it was not started.

        With ``on_text``, the model's text is streamed to it as it is generated (when the model
        can stream); the returned reply is final, after the response hooks.
        """
        return await self.handle(Incoming(text=text, user=user, room=room), on_text=on_text)

    async def handle(
        self,
        message: Incoming,
        on_text: Callable[[str], None] | None = None,
        *,
        publish: bool = True,
    ) -> Reply:
        """What clients call: run ``message`` through the agent and publish the reply.

        A client that delivers the reply itself (a post on X, say) passes ``publish=False``
        and then calls :meth:`publish` with its ``deliver`` function, so response hooks see
        where the message went.
        """
        if not self._started:
            await self.start()
        with tracing.span(
            "aigent.message",
            agent=self.name,
            client=message.client,
            kind=message.kind,
            message_id=message.id,
            length=len(message.text),
        ):
            return await self._handle(message, on_text, publish)

    async def _handle(
        self, message: Incoming, on_text: Callable[[str], None] | None, publish: bool
    ) -> Reply:
        span = tracing.span  # each stage its own span, under the message's
        t0 = time.perf_counter()
        timings: dict[str, float] = {}

        with span("context", providers=len(self.providers), memory=self.memory is not None):
            context = await self._context(message)
        timings["context"] = _ms(t0)

        history = self._history[(message.identity, message.room)]
        messages = [
            ChatMessage(
                role="system",
                content=system_prompt(self.character, context, kind=message.kind),
            ),
            *history,
            ChatMessage(role="user", content=message.text),
        ]
        response, results, usage, model_ms, action_ms = await self._think(
            messages, message, on_text
        )
        timings["model"] = model_ms
        timings["actions"] = action_ms
        reply = Reply(
            text=response.text,
            message_id=message.id,
            model=response.model,
            usage=usage,
            actions=results,
        )

        t = time.perf_counter()
        if self.evaluators:
            with span("evaluators", count=len(self.evaluators)):
                await self._evaluate(message, reply)
        timings["evaluators"] = _ms(t)

        t = time.perf_counter()
        with span("memory", written_behind=self._memory_writes is not None):
            history.append(ChatMessage(role="user", content=message.text))
            history.append(ChatMessage(role="assistant", content=reply.text))
            if self._memory_writes is not None:
                # Written behind: the reply does not wait for the store (aigent/memory.py).
                self._memory_writes.put(Exchange(message, reply.model_copy()))
        timings["memory"] = _ms(t)

        t = time.perf_counter()
        if publish:
            with span("publish", client=message.client):
                outgoing = await self.publish(
                    Outgoing(
                        text=reply.text,
                        agent=self.name,
                        client=message.client,
                        room=message.room,
                        in_reply_to=message.id,
                    )
                )
            reply.text = outgoing.text
            reply.receipts = outgoing.receipts
        timings["publish"] = _ms(t)
        timings["total"] = _ms(t0)
        timings["overhead"] = timings["total"] - timings["model"] - timings["actions"]
        reply.timings = timings
        return reply

    async def _context(self, message: Incoming) -> list[str]:
        async def provide(provider: ContextProvider) -> str | None:
            try:
                return await asyncio.wait_for(provider.get(message, self), PROVIDER_TIMEOUT)
            except Exception as exc:
                log.warning("%s: context provider %s failed: %s", self.name, provider.name, exc)
                return None

        async def recall() -> str | None:
            if self.memory is None:
                return None
            try:
                found = await self.memory.recall(message, self.name)
            except Exception as exc:
                log.warning("%s: memory recall failed: %s", self.name, exc)
                return None
            if not found:
                return None
            return "Things you remember that may be relevant:\n" + "\n".join(
                f"- {item.text}" for item in found
            )

        if not self.providers and self.memory is None:
            return []
        blocks = await asyncio.gather(recall(), *(provide(p) for p in self.providers))
        return [b for b in blocks if b]

    async def _call_model(
        self,
        messages: list[ChatMessage],
        tools: Sequence[ToolSpec],
        on_text: Callable[[str], None] | None,
    ) -> ModelResponse:
        assert self.model is not None
        response: ModelResponse | None = None
        try:
            if on_text is None:
                return await self.model.chat(messages, tools)
            async for item in stream_or_chat(self.model, messages, tools):
                if isinstance(item, ModelResponse):
                    response = item
                else:
                    on_text(item)
        except (AigentError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a plugin's own exception: one clear message, no traceback
            raise ModelError(
                f"{self.model.model_id}: {redact(str(exc)) or type(exc).__name__}"
            ) from exc
        if response is None:
            raise ModelError(f"{self.model.model_id} streamed no final response")
        return response

    def may_spend(self, message: Incoming | None) -> bool:
        """Whether ``message`` comes through a channel the character lets spend."""
        client = message.client if message is not None else "direct"
        return client in self.character.spend_from

    async def _think(
        self,
        messages: list[ChatMessage],
        message: Incoming,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[ModelResponse, list[ActionResult], Usage, float, float]:
        assert self.model is not None
        spend = self.may_spend(message)
        tools = [a.spec() for a in self.actions.values() if spend or not a.moves_value]
        usage = Usage()
        results: list[ActionResult] = []
        model_ms = action_ms = 0.0
        for _ in range(MAX_TOOL_ROUNDS + 1):
            t = time.perf_counter()
            response = await self._traced_model(messages, tools, on_text)
            model_ms += _ms(t)
            usage.add(response.usage)
            if not response.tool_calls or not tools:
                return response, results, usage, model_ms, action_ms
            t = time.perf_counter()
            messages.append(
                ChatMessage(role="assistant", content=response.text, tool_calls=response.tool_calls)
            )
            for call in response.tool_calls:
                result = await self.run_action(call.name, call.arguments, message)
                results.append(result)
                messages.append(
                    ChatMessage(
                        role="tool", content=result.output, tool_call_id=call.id, name=call.name
                    )
                )
            action_ms += _ms(t)
        # Out of rounds: ask once more without tools so the user still gets an answer.
        t = time.perf_counter()
        response = await self._traced_model(messages, (), on_text)
        model_ms += _ms(t)
        usage.add(response.usage)
        return response, results, usage, model_ms, action_ms

    async def _traced_model(
        self,
        messages: list[ChatMessage],
        tools: Sequence[ToolSpec],
        on_text: Callable[[str], None] | None,
    ) -> ModelResponse:
        with tracing.span("model", messages=len(messages), tools=len(tools)) as span:
            response = await self._call_model(messages, tools, on_text)
            if span is not None:  # traces on: what came back
                span.set_attribute("aigent.model", response.model)
                span.set_attribute("aigent.input_tokens", response.usage.prompt_tokens)
                span.set_attribute("aigent.output_tokens", response.usage.completion_tokens)
                span.set_attribute("aigent.tool_calls", len(response.tool_calls))
            return response

    async def run_action(
        self, name: str, arguments: dict[str, Any], message: Incoming | None = None
    ) -> ActionResult:
        """Run one action under the ``before_action`` policy hooks; ``message`` is the one that
        led to it (None: called from code, as the app). Never raises: a failure is reported in
        the result, which the model sees."""
        with tracing.span("action", action=name) as span:
            result = await self._run_action(name, arguments, message)
            if span is not None:
                span.set_attribute("aigent.ok", result.ok)
                if result.error is not None:
                    span.set_attribute("aigent.error", result.error)
            return result

    async def _run_action(
        self, name: str, arguments: dict[str, Any], message: Incoming | None
    ) -> ActionResult:
        action = self.actions.get(name)
        if action is None:
            known = ", ".join(self.actions) or "none"
            return ActionResult(
                name=name, arguments=arguments, ok=False, error="unknown",
                output=f"error: there is no action {name!r} (available: {known})",
            )  # fmt: skip
        error: ActionError
        try:
            if action.moves_value and not self.may_spend(message):
                client = message.client if message is not None else "direct"
                raise ActionBlocked(
                    f"it moves value, and messages from {client!r} may not lead to payments "
                    "(the character's spend_from)"
                )
            for plugin, hook in self.plugins.behaviour("before_action"):
                verdict = await _maybe_await(
                    hook(
                        ctx=self.ctx.for_plugin(plugin),
                        action=name,
                        arguments=arguments,
                        message=message,
                    )
                )
                if verdict is False:
                    raise ActionBlocked(f"blocked by {plugin}")
            output = await action.run(arguments)
            return ActionResult(name=name, arguments=arguments, ok=True, output=output)
        except TimeoutError:
            output, error = f"error: {name} timed out after {action.timeout:g}s", "timeout"
        except ActionBlocked as exc:
            output, error = f"error: {name} was not run: {exc}", "denied"
        except Exception as exc:
            output = f"error: {name} failed: {redact(str(exc)) or type(exc).__name__}"
            error = (
                "denied"
                if isinstance(exc, SpendDenied)
                else "invalid"
                if isinstance(exc, ValueError)
                else "failed"
            )
            log.warning("%s: action %s failed: %s", self.name, name, exc)
        return ActionResult(name=name, arguments=arguments, ok=False, output=output, error=error)

    async def _evaluate(self, message: Incoming, reply: Reply) -> None:
        async def run(evaluator: Evaluator) -> None:
            try:
                await evaluator.evaluate(message, reply, self)
            except Exception as exc:
                log.warning("%s: evaluator %s failed: %s", self.name, evaluator.name, exc)

        if self.evaluators:
            await asyncio.gather(*(run(e) for e in self.evaluators))

    async def publish(
        self,
        message: Outgoing,
        deliver: Callable[[Outgoing], Awaitable[str | None]] | None = None,
    ) -> Outgoing:
        """Send ``message`` through the response hooks: ``before_publish``, then ``deliver``
        (which sends it and returns where it went, e.g. a post id, kept in
        ``message.channel_id``), then ``after_publish``.

        Clients call this for anything they post; a ``before_publish`` hook may change the
        text or raise ``PublishBlocked``, in which case nothing is delivered.
        """
        for plugin, hook in self.plugins.behaviour("before_publish"):
            await _maybe_await(hook(ctx=self.ctx.for_plugin(plugin), message=message))
        if deliver is not None:
            message.channel_id = await deliver(message)
        for plugin, hook in self.plugins.behaviour("after_publish"):
            try:
                await _maybe_await(hook(ctx=self.ctx.for_plugin(plugin), message=message))
            except Exception:
                log.exception("%s: after_publish hook of %s failed", self.name, plugin)
        return message

    async def ask(self, receiver: str, text: str, *, max_price: int | None = None) -> PaidAnswer:
        """Pay another agent (a payment pointer or SPSP URL) to answer ``text``; returns its
        answer. Pays the receiver's stated price, never more than ``max_price`` (in the units of
        this agent's connector asset), and only within the character's spending limits."""
        return await (await self._node()).ask(receiver, text, max_price)

    async def ask_a2a(
        self, url: str, text: str, *, max_price: int | None = None, token: str | None = None
    ) -> A2AAnswer:
        """Send ``text`` to the A2A agent at ``url`` (its base URL or its agent card's) and
        return its answer (``str()`` of it is the text). The spending allowlists are checked
        before anything is fetched. A paid agent is asked only with ``max_price`` (in the
        smallest unit of its price's asset) at least its price, and paid over x402 (by a
        plugin's payer, such as aigent-xrpl's) or else over ILP (this agent's connector); the
        answer says which ``rail`` paid. ``token`` is sent as ``Authorization: Bearer`` to
        agents that need one."""
        from aigent.a2a import Means, ask

        async def means() -> Means:
            # Only a paid agent needs them: a free one is asked without assembling anything.
            await asyncio.to_thread(self.assemble)
            return Means(self.ctx.x402_payers, self if self.character.connector.enabled else None)

        return await ask(
            url, text, max_price=max_price, spending=self.spending, token=token, means=means
        )

    async def pay(self, receiver: str, amount: int) -> int:
        """Pay ``amount`` (in the connector asset's smallest unit) to any Interledger STREAM
        receiver, a payment pointer or SPSP URL, within the spending limits; returns what
        arrived."""
        return await (await self._node()).pay(receiver, amount)

    async def _node(self) -> AgentNode:
        """The running node (starting the agent first if needed)."""
        if not self._started:
            await self.start()
        if self.node is None:
            from aigent.node import PaymentError

            raise PaymentError(
                f"{self.name} has its connector turned off (connector.enabled is false), "
                "so it cannot pay"
            )
        return self.node

    # --- for scripts and notebooks ---------------------------------------------------------------

    def chat_sync(self, text: str, *, user: str = "user", room: str = "default") -> Reply:
        """``chat`` for code without an event loop (scripts, notebooks: it works there too).

        The agent runs on a private event loop in a background thread, started on first use
        and stopped at exit.
        """
        if self._sync is None:
            self._sync = SyncRunner()
            atexit.register(self.close_sync)
        return self._sync.run(self.chat(text, user=user, room=room))

    def close_sync(self) -> None:
        if self._sync is not None:
            self._sync.run(self.stop())
            self._sync.close()
            self._sync = None


async def _configure_async(plugin: str, start: Callable[[], Awaitable[Any]]) -> None:
    """Start a plugin's client or service; a failure names the plugin, without a traceback."""
    try:
        await start()
    except AigentError:
        raise
    except Exception as exc:
        raise PluginError(
            plugin, f"could not start ({type(exc).__name__}: {redact(str(exc))})"
        ) from exc


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("error while stopping")


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name.lower()).strip("-")
