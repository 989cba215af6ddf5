"""``aigent mcp serve FILE``: one agent as an MCP server on stdin/stdout, for any MCP client
(an IDE, a desktop assistant, another agent framework) that starts servers as commands.

Imported only when the CLI is built; stdout carries the protocol, so everything else the
agent says (progress, logs, warnings) goes to stderr."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from aigent import Agent

app = typer.Typer(help="Model Context Protocol: serve an agent to MCP clients.")


@app.command()
def serve(
    file: Annotated[Path, typer.Argument(help="A character file (aigent, ElizaOS or ZerePy).")],
    actions: Annotated[
        bool,
        typer.Option(
            "--actions",
            help="Offer the agent's actions as tools too (value-moving ones only if the "
            "character's spend_from names mcp).",
        ),
    ] = False,
) -> None:
    """Serve one agent over stdio: the tool `ask` (text in, reply out), and with --actions its
    actions. The character's clients (X, say) are not started."""
    import asyncio

    from aigent import Agent, load_character

    character = load_character(file)
    for warning in character.warnings:
        typer.secho(f"{file}: warning: {warning}", fg="yellow", err=True)
    try:
        asyncio.run(serve_stdio(Agent(character), actions))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def serve_stdio(agent: Agent, actions: bool) -> None:
    from mcp.server.stdio import stdio_server

    from .serve import agent_server, describe

    async def running() -> Agent:
        return agent

    # The transport first: while it runs, anything written to fd 1 (a native library loading
    # a model, say) goes to stderr, so only the protocol reaches the client.
    async with stdio_server() as (read, write):
        await agent.start(clients=False)  # the MCP client is this agent's only client here
        try:
            server = agent_server(
                agent.name, running, actions=lambda _: actions, description=describe(agent)
            )
            await server.run(read, write, server.create_initialization_options())
        finally:
            await agent.stop()
