"""Assembly: everything an agent uses, resolved, built and enabled in one pass before it starts.

Plugins are loaded (code, installed, the character's), then what the character picks is
resolved: its models (fallback chains), the clients it names, its payment node's settlement
engines, its memory. Using a plugin's model, client, engine or store enables that plugin, so
its behaviour is collected with the rest: actions, context providers, services, evaluators.
Start then only starts what was built here.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aigent.actions import Action
from aigent.character import ModelConfig
from aigent.errors import AigentError, MissingSecret, ModelNotFound, PluginError
from aigent.memory import choose_store
from aigent.models import FallbackModel
from aigent.paths import allowed_roots
from aigent.secrets import redact

if TYPE_CHECKING:
    from aigent.character import Character
    from aigent.interfaces import (
        ChatModel,
        Client,
        ContextProvider,
        Embedder,
        Evaluator,
        MemoryStore,
        ModelProvider,
        PluginContext,
    )
    from aigent.messages import Incoming, Reply
    from aigent.node import NodeParts
    from aigent.plugins import Plugins
    from aigent.secrets import Secrets
    from aigent.spending import SpendingPolicy

log = logging.getLogger("aigent.assembly")
T = TypeVar("T")

DEFAULT_MODEL = "local"


class Agent(Protocol):
    """What assembly needs of the agent it builds (an :class:`aigent.Agent`)."""

    name: str
    character: Character
    plugins: Plugins
    ctx: PluginContext
    data_dir: Path
    secrets: Secrets
    spending: SpendingPolicy

    async def handle(self, message: Incoming) -> Reply: ...


@dataclass
class Assembly:
    """What one agent is made of, built before it starts."""

    models: dict[str, ChatModel]
    memory: MemoryStore | None
    node: NodeParts | None
    clients: list[Client] = field(default_factory=list)
    actions: dict[str, Action] = field(default_factory=dict)
    providers: list[ContextProvider] = field(default_factory=list)
    evaluators: list[Evaluator] = field(default_factory=list)
    services: list[Client] = field(default_factory=list)
    owners: dict[int, str] = field(default_factory=dict)
    """id(client or service) -> the plugin it came from, to name it if it fails to start."""


def assemble(agent: Agent, code_plugins: Sequence[object], load_installed: bool) -> Assembly:
    """Build ``agent``: plugins passed in code, installed ones (if ``load_installed``) and the
    character's, then everything the character uses."""
    c = agent.character
    plugins = agent.plugins
    base_dir = c.source.parent if c.source else Path.cwd()
    for obj in code_plugins:
        plugins.add(obj)
    if load_installed:
        plugins.load_installed()
    roots = allowed_roots(base_dir, c.allow_paths)
    for spec in c.plugins:
        plugins.load_named(spec, base_dir, roots)

    chains: dict[str, ChatModel] = {}
    models = {role: _chain(agent, role, chains) for role in ("large", "small")}
    built = Assembly(
        models=models,
        memory=None,
        node=_node(agent) if c.connector.enabled else None,
    )
    built.clients = _clients(agent, built.owners)
    built.memory = open_memory(agent)
    ctx = agent.ctx
    for reg in plugins.collect("register_actions", only_enabled=True, ctx=ctx):
        action = as_action(reg.value)
        action.plugin = reg.plugin
        built.actions.setdefault(action.name, action)  # the first in precedence order wins
    for reg in plugins.collect("register_context_providers", only_enabled=True, ctx=ctx):
        built.providers.append(_named(reg.value, "get"))
    for reg in plugins.collect("register_services", only_enabled=True, ctx=ctx):
        built.services.append(reg.value)
        built.owners[id(reg.value)] = reg.plugin
    for reg in plugins.collect("register_evaluators", only_enabled=True, ctx=ctx):
        built.evaluators.append(_named(reg.value, "evaluate"))
    ctx.x402_payers[:] = [
        reg.value for reg in plugins.collect("register_x402_payers", only_enabled=True, ctx=ctx)
    ]
    ctx.watchers[:] = [
        reg.value for reg in plugins.collect("register_watchers", only_enabled=True, ctx=ctx)
    ]
    return built


def _chain(agent: Agent, role: str, built: dict[str, ChatModel]) -> ChatModel:
    chain = agent.character.models.chain(role) or [
        ModelConfig(model=os.environ.get("AIGENT_MODEL") or DEFAULT_MODEL)
    ]
    key = "\n".join(c.model_dump_json() for c in chain)
    if key in built:  # small often falls back to large: build it once
        return built[key]
    models: list[ChatModel] = []
    missing: list[MissingSecret] = []
    for config in chain:
        try:
            models.append(_model(agent, config))
        except MissingSecret as exc:
            # A fallback without its key is skipped; the chain fails only if none is left.
            missing.append(exc)
            log.warning("%s: skipping model %s: %s", agent.name, config.model, exc)
    if not models:
        raise missing[0]
    model = models[0] if len(models) == 1 else FallbackModel(models)
    built[key] = model
    return model


def _model(agent: Agent, config: ModelConfig) -> ChatModel:
    providers = agent.plugins.collect("register_models")
    for reg in providers:
        provider: ModelProvider = reg.value
        if provider.supports(config.model):
            agent.plugins.enabled.add(reg.plugin)
            try:
                return provider.get_model(config, agent.ctx.for_plugin(reg.plugin))
            except AigentError:
                raise
            except Exception as exc:
                raise PluginError(
                    reg.plugin,
                    f"could not set up model {config.model!r} "
                    f"({type(exc).__name__}: {redact(str(exc))})",
                ) from exc
    names = ", ".join(sorted({r.plugin for r in providers})) or "none"
    where = str(agent.character.source) if agent.character.source else agent.name
    raise ModelNotFound(
        f"{where}: no installed plugin serves model {config.model!r} "
        f"(model plugins installed: {names}). Install the plugin for it "
        "(pip install aigent-openai for OpenAI-compatible servers, aigent-litellm for other "
        "providers, aigent-local for 'local') or pick another model in models.large"
    )


def open_memory(agent: Agent) -> MemoryStore | None:
    """The memory store the character picks (``memory.store``, else the first that accepts),
    with its embedder; None when memory is off or no store is installed."""
    settings = agent.character.memory
    if not settings.enabled:
        return None
    stores = agent.plugins.named("register_memory_stores")
    if not stores:
        return None
    name: str | None = settings.store or choose_store(stores, agent.ctx)
    if name not in stores:
        raise PluginError(
            str(name), "memory store is not installed", f"installed stores: {', '.join(stores)}"
        )
    embedders = agent.plugins.named("register_embedders")
    embedder_name = settings.embedder or next(iter(embedders), None)
    if embedder_name is None or embedder_name not in embedders:
        raise PluginError(
            embedder_name or "embedder",
            "embedder is not installed",
            f"installed embedders: {', '.join(embedders) or 'none'}",
        )
    ereg = embedders[embedder_name]
    embedder: Embedder = _configure(
        ereg.plugin, lambda: ereg.value(agent.ctx.for_plugin(ereg.plugin))
    )
    reg = stores[name]
    agent.plugins.enabled.add(reg.plugin)
    factory: Callable[[PluginContext, Embedder], MemoryStore] = reg.value
    return _configure(reg.plugin, lambda: factory(agent.ctx.for_plugin(reg.plugin), embedder))


def _clients(agent: Agent, owners: dict[int, str]) -> list[Client]:
    """The clients the character names, built (not started); their plugins enabled."""
    factories = agent.plugins.named("register_clients")
    clients = []
    for name in agent.character.clients:
        if name not in factories:
            raise PluginError(
                name,
                "client is not installed",
                f"pip install aigent-{name}, or remove it from the character's clients",
            )
        reg = factories[name]
        agent.plugins.enabled.add(reg.plugin)
        factory: Callable[[PluginContext, Agent], Client] = reg.value
        ctx = agent.ctx.for_plugin(reg.plugin)
        client = _configure(reg.plugin, functools.partial(factory, ctx, agent))
        owners[id(client)] = reg.plugin
        clients.append(client)
    return clients


def _node(agent: Agent) -> NodeParts:
    """The payment node's parts: its connector's configuration (checked now, naming the file
    and field) and the settlement engine each peer names, built by its plugin."""
    from aigent.node import NodeParts, connector_config

    config, wanted = connector_config(agent.character, agent.data_dir, agent.secrets, agent.name)
    factories = agent.plugins.named("register_settlement_engines")
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
        agent.plugins.enabled.add(reg.plugin)
        engines[account] = _configure(
            reg.plugin, functools.partial(reg.value, agent.ctx.for_plugin(reg.plugin))
        )
    return NodeParts(
        name=agent.name,
        data_dir=agent.data_dir,
        settings=agent.character.connector,
        price=agent.character.price,
        spending=agent.spending,
        config=config,
        engines=engines,
        answer=agent.handle,
        observers=agent.ctx.observers,
        storage=agent.ctx.storage,
    )


def as_action(obj: Any) -> Action:
    """What ``register_actions`` (or a service's ``actions()``) gave, as an Action."""
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
