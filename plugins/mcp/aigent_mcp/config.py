"""``settings.mcp`` of a character: the MCP servers an agent uses, checked before anything starts.

The shape is ElizaOS's ``@elizaos/plugin-mcp`` (``settings.mcp.servers.<name>`` with ``type``,
``command``, ``args``, ``env`` or ``url``), so a 1.x file works unchanged; aigent adds what it
needs to run them safely::

    "settings": {"mcp": {"servers": {
        "files": {"command": "python", "args": ["files_server.py"], "timeout": 20},
        "shop": {"url": "https://shop.example/mcp", "bearer_secret": "SHOP_TOKEN",
                 "tools": {"buy": {"moves_value": true,
                                   "price": {"amount": 5000, "asset_code": "XRP"}}}}
    }}}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aigent import PluginContext, PluginError, Price

NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
DEFAULT_TIMEOUT = 30.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolSettings(_Strict):
    """What the character says about one of a server's tools."""

    moves_value: bool = False
    """It pays, buys or transfers: offered only on channels the character lets spend
    (``spend_from``), like every ``@moves_value`` action."""
    price: Price | None = None
    """What one call costs, reserved under the spending policy before the call and spent
    unless the server refuses the call outright. Implies ``moves_value``."""
    timeout: float | None = Field(default=None, gt=0)


class ServerSettings(_Strict):
    type: Literal["stdio", "http", "streamable-http", "sse"] | None = None
    """Optional: ``command`` means stdio and ``url`` streamable HTTP."""
    name: str | None = None
    """A display name (ElizaOS has it); the key is what names the server's actions."""
    description: str | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    """Plain variables for the server process. Keys and tokens go in ``secrets``."""
    secrets: list[str] = Field(default_factory=list)
    """Names of the agent's secrets passed to the server process as environment variables."""
    cwd: str | None = None
    """The server process's working directory, relative to the character file."""
    url: str | None = None
    bearer_secret: str | None = None
    """The name of a secret sent as ``Authorization: Bearer ...`` to ``url``."""
    allow_insecure_http: bool = False
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    """Seconds a tool call may take before it is given up (the action's timeout)."""
    start_timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    """Seconds the server may take to start and list its tools."""
    tools: dict[str, ToolSettings] = Field(default_factory=dict)
    only: list[str] | None = None
    """When given, only these tools become actions."""

    @model_validator(mode="after")
    def _one_transport(self) -> ServerSettings:
        if self.type == "sse":
            raise ValueError(
                "the legacy SSE transport is not supported; use the server's streamable HTTP "
                "url, or run it over stdio (command)"
            )
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (streamable HTTP)")
        if self.type == "stdio" and self.command is None:
            raise ValueError("type is stdio: give command")
        if self.type in ("http", "streamable-http") and self.url is None:
            raise ValueError(f"type is {self.type}: give url")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        return self

    def where(self) -> str:
        """The command line or URL, for messages (no secrets are in either)."""
        if self.url is not None:
            return self.url
        return " ".join([self.command or "", *self.args])

    def tool(self, name: str) -> ToolSettings:
        return self.tools.get(name) or ToolSettings()


class McpSettings(_Strict):
    servers: dict[str, ServerSettings] = Field(default_factory=dict)
    expose_actions: bool = False
    """``aigent serve``: offer the agent's actions as MCP tools too, besides ``ask``."""

    @model_validator(mode="after")
    def _names(self) -> McpSettings:
        for name in self.servers:
            if not NAME.match(name):
                raise ValueError(
                    f"server name {name!r}: use letters, digits, - and _ (up to 40): it "
                    "prefixes the names of the server's tools"
                )
        return self


def read_settings(ctx: PluginContext) -> McpSettings:
    """The character's ``settings.mcp``; a mistake is a PluginError naming the field."""
    try:
        return McpSettings.model_validate(ctx.settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"settings.mcp.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".replace(".: ", ": ")
            for e in exc.errors(include_url=False)
        )
        where = f"{ctx.character.source}: " if ctx.character.source else ""
        raise PluginError("mcp", where + problems) from None


def server_env(ctx: PluginContext, name: str, server: ServerSettings) -> dict[str, str]:
    env = dict(server.env)
    for key in server.secrets:
        env[key] = ctx.secrets.require(key, f"MCP server {name!r} (settings.mcp.servers)")
    return env


def server_cwd(ctx: PluginContext, server: ServerSettings) -> str | None:
    if server.cwd is None:
        return None
    base = ctx.character.source.parent if ctx.character.source else Path.cwd()
    return str((base / server.cwd).resolve())


def bearer(ctx: PluginContext, name: str, server: ServerSettings) -> dict[str, Any]:
    """The headers for a URL server: its bearer secret, only where a secret may go."""
    from aigent import secret_may_go_to

    if server.bearer_secret is None or server.url is None:
        return {}
    if not secret_may_go_to(server.url, allow_insecure_http=server.allow_insecure_http):
        raise PluginError(
            "mcp",
            f"MCP server {name!r} would send {server.bearer_secret} over plain http to "
            f"{server.url}, where anyone on the path can read it",
            'use https, or add "allow_insecure_http": true to the server if that network is yours',
        )
    token = ctx.secrets.require(server.bearer_secret, f"MCP server {name!r}")
    return {"Authorization": f"Bearer {token}"}
