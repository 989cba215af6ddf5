"""The plugin contract: every hook a plugin may implement, in one place.

A plugin is a module or object with functions marked ``@hookimpl``. Hooks named ``register_*``
receive a ``register`` callback and call it once per thing they contribute; the core keeps the
registry. ``ctx`` is the :class:`aigent.PluginContext` of the agent being assembled: its
character, its settings for this plugin (``ctx.settings``), its secrets and its data directory.

Each ``register`` is typed for its family and checked when called: a wrong call is a
``PluginError`` naming the plugin and what was expected.

Which plugin wins when two serve the same model id or register the same name: plugins are asked
in one written-down order, and the first wins. Hookimpls marked ``@hookimpl(tryfirst=True)``
come first, ``trylast=True`` last; between them, plugins passed in code, then those the
character names, then installed ones, then aigent's built-ins; ties go by plugin name. (The
direct OpenAI-wire model plugin is ``tryfirst`` and litellm ``trylast``, say, so the direct path
serves the ids it knows and litellm the rest.)

Hooks may be sync or return an awaitable where the docs say so. See ``plugins/`` for first-party
plugins written exactly like a third party would write theirs, and ``examples/plugin-weather``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from aigent.interfaces import PluginContext
    from aigent.messages import Incoming, Outgoing

hookspec = pluggy.HookspecMarker("aigent")
hookimpl = pluggy.HookimplMarker("aigent")


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Contribute chat-model providers: ``register(provider)``, a :class:`ModelProvider`.

    A provider says which model ids it serves (``supports("openai/gpt-4o")``) and builds a
    :class:`ChatModel` for a :class:`ModelConfig`. Chat models take messages and tool specs and
    return text and tool calls; they may stream.
    """


@hookspec
def register_embedders(register: Callable[..., None]) -> None:
    """Contribute embedders: ``register(name, factory)``; ``factory(ctx) -> Embedder``."""


@hookspec
def register_memory_stores(register: Callable[..., None]) -> None:
    """Contribute memory stores: ``register(name, factory)``;
    ``factory(ctx, embedder) -> MemoryStore``.

    The character picks one by name (``memory.store``) and an embedder (``memory.embedder``,
    else the first registered); the store recalls past messages and knowledge into the context
    within a budget, and takes exchanges in batches, written behind the reply. A factory may
    also have ``accepts(ctx) -> bool`` (used when the character names no store: the first
    store that accepts is used, else the first) and ``clear(ctx)`` (for ``aigent memory
    clear``: delete the agent's memory without opening it).
    """


@hookspec
def register_context_providers(register: Callable[..., None], ctx: PluginContext) -> None:
    """Contribute context: ``register(provider)``, a :class:`ContextProvider` (or an async
    function ``(message, agent) -> str | None``). Providers run in parallel before the model."""


@hookspec
def register_actions(register: Callable[..., None], ctx: PluginContext) -> None:
    """Contribute actions the model may call as tools: ``register(fn)`` or ``register(Action)``.

    A plain function (sync or async) becomes an action: its name, its docstring as the
    description and a JSON schema built from its type hints (pydantic models welcome).
    """


@hookspec
def register_evaluators(register: Callable[..., None], ctx: PluginContext) -> None:
    """Contribute evaluators, run after each reply: ``register(evaluator)``, an async function
    ``(message, reply, agent) -> None`` or an :class:`Evaluator`."""


@hookspec
def register_clients(register: Callable[..., None]) -> None:
    """Contribute clients (message sources and sinks): ``register(name, factory)``;
    ``factory(ctx, agent) -> Client`` with async ``start()`` and ``stop()``. A character turns a
    client on by naming it in ``clients``."""


@hookspec
def register_services(register: Callable[..., None], ctx: PluginContext) -> None:
    """Contribute background services that run while the agent runs (an anchoring loop, say):
    ``register(service)``, an object with async ``start()`` and ``stop()``. Only plugins the
    agent uses are asked; services start after the connector and stop before it. A service
    that learns its actions only once it runs (an MCP server's tools) may also have
    ``actions()``, called after ``start()``: they are the agent's until it stops."""


@hookspec
def register_settlement_engines(register: Callable[..., None]) -> None:
    """Contribute settlement engines for the connector: ``register(name, factory)``;
    ``factory(ctx) -> SettlementEngine``."""


@hookspec
def register_x402_payers(register: Callable[..., None], ctx: PluginContext) -> None:
    """Offer ways to pay x402 offers from the agent's accounts: ``register(payer)``, an
    :class:`X402Payer` (``choose(accepts)`` and ``pay(offer, send, ...)``). ``ask_a2a`` pays
    a paid A2A agent's 402 with the first payer that chooses one of its offers; every payment
    passes the agent's spending policy inside ``pay``. Only plugins the agent uses are asked."""


@hookspec
def register_watchers(register: Callable[..., None], ctx: PluginContext) -> None:
    """Offer what the agent can watch: ``register(watcher)``, a :class:`aigent.watch.Watcher`
    (``name`` and async ``poll(since) -> list[Observation]``). When the character has
    ``settings.watch``, the built-in ``watch`` service polls them on its schedule and stores
    each item once, for recall and ``aigent analyze``. Only plugins the agent uses are asked."""


@hookspec
def before_action(
    ctx: PluginContext, action: str, arguments: dict[str, Any], message: Incoming | None
) -> Any:
    """Called before an action runs. Return ``False`` (or raise ``ActionBlocked``) to block it;
    this is where policy such as spending limits sits, below the model. ``message`` is the
    message that led the model to call it (its ``client`` says which channel), or ``None`` when
    code called the action. May be async."""


@hookspec
def before_publish(ctx: PluginContext, message: Outgoing) -> Any:
    """Called before a message leaves the agent (a reply, a post, a paid answer). May change
    ``message.text`` or raise ``PublishBlocked`` to stop it. May be async."""


@hookspec
def after_publish(ctx: PluginContext, message: Outgoing) -> Any:
    """Called after a message was published; ``message.channel_id`` holds where it went (a post
    id, say). Content anchoring hashes it here and attaches a receipt to
    ``message.receipts``. May be async."""


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add commands to the ``aigent`` CLI."""
