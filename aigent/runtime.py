"""The Agent: one message travels one way through it.

message -> context (providers + recalled memory + character) -> model (actions as tools)
-> actions -> reply -> evaluators -> memory -> response hooks -> back to the client.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aigent.actions import Action
from aigent.character import Character, ModelConfig, load_character
from aigent.errors import (
    ActionBlocked,
    AigentError,
    MissingSecret,
    ModelError,
    ModelNotFound,
    PluginError,
)
from aigent.interfaces import (
    ChatModel,
    Client,
    ContextProvider,
    Embedder,
    Evaluator,
    Exchange,
    MemoryStore,
    ModelProvider,
    PluginContext,
)
from aigent.memory import WriteBehind, choose_store
from aigent.messages import (
    ActionResult,
    ChatMessage,
    Incoming,
    ModelResponse,
    Outgoing,
    Reply,
    ToolSpec,
    Usage,
)
from aigent.models import FallbackModel, stream_or_chat
from aigent.paths import allowed_roots
from aigent.plugins import Plugins, Registered
from aigent.prompt import system_prompt
from aigent.secrets import Secrets, redact
from aigent.spending import SpendingPolicy
from aigent.sync import SyncRunner

if TYPE_CHECKING:
    from aigent.messages import PaidAnswer
    from aigent.node import AgentNode, NodeParts

log = logging.getLogger("aigent.runtime")
T = TypeVar("T")

DEFAULT_MODEL = "local"
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
    ) -> None:
        self.character = character
        self.name = character.name
        self.secrets = secrets or Secrets.for_character(character.secrets, character.source)
        self.data_dir = Path(
            data_dir or character.data_dir or Path(".aigent") / _slug(character.name)
        ).expanduser()
        self.spending = SpendingPolicy(character.spending, self.data_dir / "spending.sqlite")
        self.ctx = PluginContext(
            character=character,
            secrets=self.secrets,
            data_dir=self.data_dir,
            spending=self.spending,
            payments=self if character.connector.enabled else None,
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
        self._chains: dict[tuple[str, ...], ChatModel] = {}
        self._client_regs: list[Registered] = []
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

    # --- assembling ------------------------------------------------------------------------------

    def assemble(self) -> None:
        """Load and configure every plugin, or fail naming the one that could not be used."""
        if self._assembled:
            return
        c = self.character
        base_dir = c.source.parent if c.source else Path.cwd()
        for obj in self._code_plugins:
            self.plugins.add(obj)
        if self._load_installed:
            self.plugins.load_installed()
        roots = allowed_roots(base_dir, c.allow_paths)
        for spec in c.plugins:
            self.plugins.load_named(spec, base_dir, roots)

        self.models = {role: self._resolve_chain(role) for role in ("large", "small")}
        self.model = self.models["large"]
        # A plugin the agent uses through a client or a settlement engine brings its
        # behaviour too (the X client's timeline as context): enabled before it is collected.
        self._client_regs = self._client_registrations()
        if c.connector.enabled:
            self._node_parts = self._assemble_node()
        self.memory = self._resolve_memory()
        for reg in self.plugins.collect("register_actions", only_enabled=True, ctx=self.ctx):
            action = _as_action(reg.value)
            action.plugin = reg.plugin
            self.actions.setdefault(action.name, action)  # the first in precedence order wins
        for reg in self.plugins.collect(
            "register_context_providers", only_enabled=True, ctx=self.ctx
        ):
            self.providers.append(_named(reg.value, "get"))
        for reg in self.plugins.collect("register_services", only_enabled=True, ctx=self.ctx):
            self.services.append(reg.value)
            self._owners[id(reg.value)] = reg.plugin
        for reg in self.plugins.collect("register_evaluators", only_enabled=True, ctx=self.ctx):
            self.evaluators.append(_named(reg.value, "evaluate"))
        self._assembled = True

    def _resolve_chain(self, role: str) -> ChatModel:
        chain = self.character.models.chain(role) or [
            ModelConfig(model=os.environ.get("AIGENT_MODEL") or DEFAULT_MODEL)
        ]
        key = tuple(c.model_dump_json() for c in chain)
        if key in self._chains:  # small often falls back to large: build it once
            return self._chains[key]
        models: list[ChatModel] = []
        missing: list[MissingSecret] = []
        for config in chain:
            try:
                models.append(self._resolve_model(config))
            except MissingSecret as exc:
                # A fallback without its key is skipped; the chain fails only if none is left.
                missing.append(exc)
                log.warning("%s: skipping model %s: %s", self.name, config.model, exc)
        if not models:
            raise missing[0]
        model = models[0] if len(models) == 1 else FallbackModel(models)
        self._chains[key] = model
        return model

    def _resolve_model(self, config: ModelConfig) -> ChatModel:
        providers = self.plugins.collect("register_models")
        for reg in providers:
            provider: ModelProvider = reg.value
            if provider.supports(config.model):
                self.plugins.enabled.add(reg.plugin)
                try:
                    return provider.get_model(config, self.ctx.for_plugin(reg.plugin))
                except AigentError:
                    raise
                except Exception as exc:
                    raise PluginError(
                        reg.plugin,
                        f"could not set up model {config.model!r} "
                        f"({type(exc).__name__}: {redact(str(exc))})",
                    ) from exc
        names = ", ".join(sorted({r.plugin for r in providers})) or "none"
        raise ModelNotFound(
            f"{self._where()}: no installed plugin serves model {config.model!r} "
            f"(model plugins installed: {names}). Install the plugin for it "
            "(pip install aigent-litellm for provider models, aigent-local for "
            "'local') or pick another model in models.large"
        )

    def _resolve_memory(self) -> MemoryStore | None:
        settings = self.character.memory
        if not settings.enabled:
            return None
        stores = self.plugins.named("register_memory_stores")
        if not stores:
            return None
        name: str | None = settings.store or choose_store(stores, self.ctx)
        if name not in stores:
            raise PluginError(
                str(name), "memory store is not installed", f"installed stores: {', '.join(stores)}"
            )
        embedders = self.plugins.named("register_embedders")
        embedder_name = settings.embedder or next(iter(embedders), None)
        if embedder_name is None or embedder_name not in embedders:
            raise PluginError(
                embedder_name or "embedder",
                "embedder is not installed",
                f"installed embedders: {', '.join(embedders) or 'none'}",
            )
        ereg = embedders[embedder_name]
        embedder: Embedder = _configure(
            ereg.plugin, lambda: ereg.value(self.ctx.for_plugin(ereg.plugin))
        )
        reg = stores[name]
        self.plugins.enabled.add(reg.plugin)
        factory: Callable[[PluginContext, Embedder], MemoryStore] = reg.value
        return _configure(reg.plugin, lambda: factory(self.ctx.for_plugin(reg.plugin), embedder))

    def _client_registrations(self) -> list[Registered]:
        factories = self.plugins.named("register_clients")
        found = []
        for name in self.character.clients:
            if name not in factories:
                raise PluginError(
                    name,
                    "client is not installed",
                    f"pip install aigent-{name}, or remove it from the character's clients",
                )
            self.plugins.enabled.add(factories[name].plugin)
            found.append(factories[name])
        return found

    def _assemble_node(self) -> NodeParts:
        """The payment node's parts: its connector's configuration (checked now, naming the
        file and field) and the settlement engine each peer names, built by its plugin (which
        is then enabled, so its behaviour is collected too)."""
        from aigent.node import NodeParts, connector_config

        config, wanted = connector_config(self.character, self.data_dir, self.secrets, self.name)
        factories = self.plugins.named("register_settlement_engines")
        engines: dict[str, Any] = {}
        for account, name in wanted.items():
            if name not in factories:
                raise PluginError(
                    name,
                    "settlement engine is not installed",
                    f"named by connector.peers.{account}.settlement; installed engines: "
                    f"{', '.join(factories) or 'none'}",
                )
            reg = factories[name]
            self.plugins.enabled.add(reg.plugin)
            engines[account] = _configure(
                reg.plugin, functools.partial(reg.value, self.ctx.for_plugin(reg.plugin))
            )
        return NodeParts(
            name=self.name,
            data_dir=self.data_dir,
            settings=self.character.connector,
            price=self.character.price,
            spending=self.spending,
            config=config,
            engines=engines,
            answer=self.handle,
        )

    def _resolve_clients(self) -> list[Client]:
        clients = []
        for reg in self._client_regs:
            factory: Callable[[PluginContext, Agent], Client] = reg.value
            ctx = self.ctx.for_plugin(reg.plugin)
            client = _configure(reg.plugin, functools.partial(factory, ctx, self))
            self._owners[id(client)] = reg.plugin
            clients.append(client)
        return clients

    def _where(self) -> str:
        return str(self.character.source) if self.character.source else self.name

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, clients: bool = True) -> None:
        """Assemble, then start every client the character names (``clients=False`` for a
        terminal or embedded chat only); if one fails, the others are stopped again."""
        if self._started:
            return
        await asyncio.to_thread(self.assemble)
        if clients:
            self.clients = self._resolve_clients()
        if self.memory is None and self.character.memory.enabled:
            # Closed by a stop: opened again (cheap; the store's slow parts run in background).
            self.memory = await asyncio.to_thread(self._resolve_memory)
        started: list[Client] = []
        try:
            if self.character.connector.enabled:
                from aigent.node import AgentNode

                assert self._node_parts is not None
                node = AgentNode(self._node_parts)
                await node.start()
                self.node = node
            for client in [*self.services, *self.clients]:
                owner = self._owners.get(id(client), getattr(client, "name", "client"))
                await _configure_async(owner, client.start)
                started.append(client)
        except BaseException:
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
        for client in reversed([*self.services, *self.clients]):
            await _quietly(client.stop())
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
        self._started = False

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
        t0 = time.perf_counter()
        timings: dict[str, float] = {}

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
        await self._evaluate(message, reply)
        timings["evaluators"] = _ms(t)

        t = time.perf_counter()
        history.append(ChatMessage(role="user", content=message.text))
        history.append(ChatMessage(role="assistant", content=reply.text))
        if self._memory_writes is not None:
            # Written behind: the reply does not wait for the store (aigent/memory.py).
            self._memory_writes.put(Exchange(message, reply.model_copy()))
        timings["memory"] = _ms(t)

        t = time.perf_counter()
        if publish:
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
            response = await self._call_model(messages, tools, on_text)
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
        response = await self._call_model(messages, (), on_text)
        model_ms += _ms(t)
        usage.add(response.usage)
        return response, results, usage, model_ms, action_ms

    async def run_action(
        self, name: str, arguments: dict[str, Any], message: Incoming | None = None
    ) -> ActionResult:
        """Run one action under the ``before_action`` policy hooks; ``message`` is the one that
        led to it (None: called from code, as the app). Never raises: a failure is reported in
        the result, which the model sees."""
        action = self.actions.get(name)
        if action is None:
            known = ", ".join(self.actions) or "none"
            return ActionResult(
                name=name, arguments=arguments, ok=False,
                output=f"error: there is no action {name!r} (available: {known})",
            )  # fmt: skip
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
            output = f"error: {name} timed out after {action.timeout:g}s"
        except ActionBlocked as exc:
            output = f"error: {name} was not run: {exc}"
        except Exception as exc:
            output = f"error: {name} failed: {redact(str(exc)) or type(exc).__name__}"
            log.warning("%s: action %s failed: %s", self.name, name, exc)
        return ActionResult(name=name, arguments=arguments, ok=False, output=output)

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


def _as_action(obj: Any) -> Action:
    if isinstance(obj, Action):
        return obj
    if callable(obj):
        return Action.from_function(obj)
    raise TypeError(f"register() takes a function or an Action, got {type(obj).__name__}")


class _FunctionAdapter:
    def __init__(self, fn: Callable[..., Awaitable[Any]], method: str) -> None:
        self.name = getattr(fn, "__name__", "anonymous")
        setattr(self, method, fn)


def _named(obj: Any, method: str) -> Any:
    """A provider or evaluator given as a bare async function gets the object shape."""
    if hasattr(obj, method):
        return obj
    if callable(obj):
        return _FunctionAdapter(obj, method)
    raise TypeError(f"expected an object with .{method}() or an async function")


def _configure(plugin: str, build: Callable[[], T]) -> T:
    try:
        return build()
    except AigentError:
        raise
    except Exception as exc:
        raise PluginError(
            plugin, f"could not be configured ({type(exc).__name__}: {redact(str(exc))})"
        ) from exc


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
