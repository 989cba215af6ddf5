"""The MCP servers a character lists, run for the agent's life; their tools are its actions.

Each server is held open by a task of its own, because the SDK's client lives in anyio task
groups that must be entered and left by the same task, while an agent may be started by one
task and stopped by another (``aigent serve`` does). Tool calls are made from any task.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, create_model

from aigent import Action, AigentError, PluginContext, PluginError, ToolSpec, redact

from .config import ServerSettings, bearer, read_settings, server_cwd, server_env

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult, Tool

CLOSE_GRACE = 5.0  # seconds a server gets to end its session before its task is cancelled
STDERR_TAIL = 800  # characters of a failed server's stderr put in the error


class ToolFailed(Exception):
    """The server ran the tool and reported an error (``isError``); the text is the model's."""


@dataclass
class ToolAction(Action):
    """An action whose schema is the tool's own JSON schema, as the server listed it."""

    parameters: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


class Connection:
    """One MCP server: started, listed, called, stopped."""

    def __init__(self, ctx: PluginContext, name: str, settings: ServerSettings) -> None:
        self.ctx = ctx
        self.name = name
        self.settings = settings
        self.tools: list[Tool] = []
        self._client: Client | None = None
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ended: str | None = None
        self._stderr: Path | None = None

    def describe(self) -> str:
        return f"MCP server {self.name!r} ({self.settings.where()})"

    async def open(self) -> None:
        """Start the server (or reach it) and list its tools; a failure names the server."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read even when nobody waits any more (a timeout), so asyncio does not complain.
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._closing.clear()
        self._ended = None
        self._task = asyncio.create_task(self._hold(ready), name=f"mcp:{self.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.settings.start_timeout)
        except TimeoutError:
            await self.close()
            raise self._failed(
                f"did not answer within {self.settings.start_timeout:g}s",
                "check that it speaks MCP on its stdout (stdio) or at that url, or raise "
                "start_timeout",
            ) from None
        except AigentError:  # a missing secret, a refused destination: already says it all
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise self._failed(_reason(exc)) from exc

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        from mcp import Client

        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(await self._transport(stack)))
                self.tools = await _list_tools(client)
                self._client = client
                ready.set_result(None)
                await self._closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
            elif not self._closing.is_set():
                self._ended = _reason(exc)
                self.ctx.log.warning("%s stopped: %s", self.describe(), self._ended)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._client = None
            if not self._closing.is_set() and self._ended is None:
                self._ended = "its session ended"

    async def _transport(self, stack: AsyncExitStack) -> Any:
        s = self.settings
        if s.url is not None:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=bearer(self.ctx, self.name, s),
                    timeout=httpx2.Timeout(30.0, read=300.0),  # a response may be a long stream
                )
            )
            return streamable_http_client(s.url, http_client=http)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        assert s.command is not None
        params = StdioServerParameters(
            command=s.command,
            args=s.args,
            env=server_env(self.ctx, self.name, s),
            cwd=server_cwd(self.ctx, s),
        )
        # The server's stderr goes to a file: the terminal chat stays clean, and when the server
        # fails to start, the end of what it said goes into the error.
        self._stderr = self.ctx.data_dir / "mcp" / f"{self.name}.stderr.log"
        self._stderr.parent.mkdir(parents=True, exist_ok=True)
        errlog = stack.enter_context(self._stderr.open("w", encoding="utf-8"))
        return stdio_client(params, errlog=errlog)

    async def close(self) -> None:
        self._closing.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except BaseException:  # how the session ended was logged in _hold
            pass

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        client = self._client
        if client is None:
            raise ToolFailed(f"{self.describe()} is not running ({self._ended or 'stopped'})")
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED

        try:
            return await client.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise  # the server answered with an error: it refused the request
            raise ToolFailed(f"{self.describe()}: {_reason(exc)}") from exc
        except Exception as exc:  # the connection, not the tool: say which server
            raise ToolFailed(f"{self.describe()}: {_reason(exc)}") from exc

    def _failed(self, why: str, hint: str = "") -> PluginError:
        said = self._said()
        if said:
            why += f"; it said: {said}"
        if not hint and self.settings.url is None:
            hint = "run the command yourself to see whether it starts"
        return PluginError("mcp", f"{self.describe()} could not start: {redact(why)}", hint)

    def _said(self) -> str:
        if self._stderr is None or not self._stderr.exists():
            return ""
        text = self._stderr.read_text(encoding="utf-8", errors="replace").strip()
        return text[-STDERR_TAIL:].replace("\n", " | ")


class McpServers:
    """The service: every server starts with the agent (all or none) and stops with it."""

    name = "mcp"

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.connections = [
            Connection(ctx, name, server) for name, server in read_settings(ctx).servers.items()
        ]

    async def start(self) -> None:
        results = await asyncio.gather(
            *(c.open() for c in self.connections), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]

    async def stop(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections))

    def actions(self) -> list[Action]:
        found: list[Action] = []
        for connection in self.connections:
            only = connection.settings.only
            for tool in connection.tools:
                if only is None or tool.name in only:
                    found.append(_action(self.ctx, connection, tool))
        return found


def action_name(server: str, tool: str) -> str:
    """``<server>_<tool>`` within what model APIs accept for a function name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}_{tool}")[:64]


def _action(ctx: PluginContext, connection: Connection, tool: Tool) -> Action:
    settings = connection.settings.tool(tool.name)
    price = settings.price

    async def call(**arguments: Any) -> str:
        if price is None:
            return _text(await connection.call(tool.name, arguments))
        from mcp import MCPError

        if ctx.spending is None:  # an Agent always gives one; a hand-made context may not
            raise ToolFailed("this agent has no spending policy, so it cannot pay for the tool")
        async with ctx.spending.spend(
            price.asset_code,
            price.amount,
            to=f"mcp:{connection.name}",
            scale=price.asset_scale,
            purpose=f"MCP tool {tool.name} of {connection.name}",
        ) as spend:
            try:
                result = await connection.call(tool.name, arguments)
            except MCPError:
                # The server answered the request with an error (unknown tool, bad params): the
                # tool did not run. A lost connection is a ToolFailed: the outcome is unknown.
                spend.nothing_moved()
                raise
            return _text(result)

    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    name = action_name(connection.name, tool.name)
    return ToolAction(
        name=name,
        description=tool.description or tool.title or f"{tool.name} (MCP server {connection.name})",
        fn=call,
        # The server checks the arguments against its schema; the model sees its error if wrong.
        arguments_model=create_model(f"{name}_arguments", __config__=ConfigDict(extra="allow")),
        timeout=settings.timeout or connection.settings.timeout,
        moves_value=settings.moves_value or price is not None,
        parameters=schema,
    )


def _text(result: CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            kind = getattr(block, "type", "content")
            mime = getattr(block, "mime_type", None) or getattr(block, "uri", None) or ""
            parts.append(f"[{kind} {mime}]".replace(" ]", "]"))
    if not any(p.strip() for p in parts) and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, default=str)]
    text = "\n".join(parts)
    if result.is_error:
        raise ToolFailed(text or "the tool reported an error")
    return text


async def _list_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a server whose pages never end cannot hang the start
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _reason(exc: BaseException) -> str:
    """The first real error inside anyio's exception groups, in one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
