"""An agent as an MCP server: the tool ``ask`` (text in, the agent's reply out) and, when asked
for, its actions as tools. One builder for both doors: ``aigent mcp serve`` (stdio) and
``aigent serve`` (streamable HTTP, ``/mcp/<name>``).

Messages that arrive this way come from the client ``mcp``: value-moving actions are offered
and run only when the character names ``mcp`` in ``spend_from``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aigent import Agent, AigentError, Incoming, Reply, redact

from . import CHANNEL

if TYPE_CHECKING:
    from mcp.server import Server
    from mcp.types import CallToolResult, Tool

ASK = "ask"
ASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "What to say to the agent."},
        "user": {"type": "string", "description": "Who is speaking (default: mcp)."},
        "room": {
            "type": "string",
            "description": "The conversation; the agent remembers earlier turns of the same "
            "user and room (default: mcp).",
        },
    },
    "required": ["text"],
}


class Unavailable(Exception):
    """The agent cannot answer now (stopped, say); the text is the caller's."""


def offered(agent: Agent) -> list[str]:
    """The actions an MCP caller may use: value-moving ones only if ``spend_from`` names mcp."""
    may_spend = CHANNEL in agent.character.spend_from
    return [
        name
        for name, action in agent.actions.items()
        if name != ASK and (may_spend or not action.moves_value)
    ]


def agent_server(
    name: str,
    agent: Callable[[], Awaitable[Agent]],
    *,
    actions: Callable[[Agent], bool],
    description: str | None = None,
    answer: Callable[[Agent, Incoming], Awaitable[Reply]] | None = None,
) -> Server[Any]:
    """The MCP server for one agent. ``agent()`` gives the running agent (or raises
    :class:`Unavailable`); ``actions(agent)`` says whether its actions are tools too;
    ``answer(agent, message)`` runs an ``ask`` (``agent.handle`` unless a host, such as
    ``aigent serve`` keeping its history and events, has its own way)."""
    from mcp.server import Server
    from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool

    def failed(text: str) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        tools = [
            Tool(
                name=ASK,
                description=f"Talk to {name}: send a message, get the agent's reply.",
                input_schema=ASK_SCHEMA,
            )
        ]
        try:
            current = await agent()
        except Unavailable:
            return ListToolsResult(tools=tools)
        if actions(current):
            tools.extend(_tool(current, n, Tool) for n in offered(current))
        return ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        arguments = dict(params.arguments or {})
        try:
            current = await agent()
        except Unavailable as exc:
            return failed(str(exc))
        if params.name == ASK:
            return await _ask(current, arguments, failed, answer)
        if not actions(current) or params.name not in offered(current):
            return failed(f"{name} has no tool {params.name!r}; tools/list says which it has")
        message = Incoming(text=f"(MCP tools/call {params.name})", user="mcp", client=CHANNEL)
        result = await current.run_action(params.name, arguments, message)
        return CallToolResult(
            content=[TextContent(type="text", text=result.output)], is_error=not result.ok
        )

    return Server(
        name,
        version="aigent",
        description=description,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _ask(
    agent: Agent,
    arguments: dict[str, Any],
    failed: Callable[[str], CallToolResult],
    answer: Callable[[Agent, Incoming], Awaitable[Reply]] | None,
) -> CallToolResult:
    from mcp.types import TextContent

    text = arguments.get("text")
    if not isinstance(text, str) or not text.strip():
        return failed("ask needs text: the message for the agent, a non-empty string")
    message = Incoming(
        text=text,
        user=str(arguments.get("user") or "mcp"),
        room=str(arguments.get("room") or "mcp"),
        client=CHANNEL,
    )
    try:
        reply = await (answer(agent, message) if answer else agent.handle(message))
    except Unavailable as exc:
        return failed(str(exc))
    except AigentError as exc:
        return failed(f"{agent.name} could not answer: {exc}")
    except Exception as exc:  # a plugin's own error: one line, secrets out
        return failed(f"{agent.name} could not answer: {type(exc).__name__}: {redact(str(exc))}")
    from mcp.types import CallToolResult

    return CallToolResult(
        content=[TextContent(type="text", text=reply.text)],
        structured_content={
            "text": reply.text,
            "message_id": reply.message_id,
            "model": reply.model,
            "receipts": reply.receipts,
        },
    )


def _tool(agent: Agent, name: str, tool: type[Tool]) -> Tool:
    spec = agent.actions[name].spec()
    return tool(name=name, description=spec.description or name, input_schema=spec.parameters)


def describe(agent: Agent) -> str:
    return " ".join(agent.character.bio)[:300] or f"the aigent agent {agent.name}"
