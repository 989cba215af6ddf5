"""aigent-mcp: Model Context Protocol both ways.

- As a client: the MCP servers a character lists in ``settings.mcp.servers`` (a command for
  stdio, or a URL for streamable HTTP; ElizaOS's ``@elizaos/plugin-mcp`` shape) start and stop
  with the agent, and their tools become its actions, ``<server>_<tool>``, under
  ``before_action`` and, for tools marked ``moves_value`` or given a ``price``, the spending
  policy. A server that fails to start fails the agent's start, naming it.
- As a server: ``aigent mcp serve FILE`` serves an agent over stdio (the tool ``ask``, and
  with ``--actions`` its actions); ``aigent serve`` serves every hosted agent over streamable
  HTTP at ``/mcp/<name>``.

The SDK (``mcp``) is imported only when a server starts or a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aigent import hookimpl

if TYPE_CHECKING:
    from aigent import PluginContext

CHANNEL = "mcp"
"""The client name of messages that arrive over MCP: name it in ``spend_from`` to let MCP
callers reach value-moving actions."""


@hookimpl
def register_services(register: Callable[..., None], ctx: PluginContext) -> None:
    from .client import McpServers

    servers = McpServers(ctx)  # reads and checks settings.mcp now, before anything starts
    if servers.connections:
        register(servers)


@hookimpl
def register_commands(cli: Any) -> None:
    from .cli import app

    cli.add_typer(app, name="mcp")
