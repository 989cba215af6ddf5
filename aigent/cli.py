"""The ``aigent`` command line. Plugins add commands through the ``register_commands`` hook."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aigent import __version__
from aigent.errors import AigentError

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Mapping
    from typing import Any

    from aigent.character import Character
    from aigent.runtime import Agent
    from aigent.spending import Spend

app = typer.Typer(
    name="aigent",
    help="AI agents that earn and pay. Run a character file, validate one, manage plugins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's import alone would triple `--help` time
)

Files = Annotated[list[Path], typer.Argument(help="Character files (aigent, ElizaOS or ZerePy).")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Use this model for every role instead of the character's (e.g. 'local' to try a "
        "file whose provider key you do not have, or 'openai/gpt-4o-mini').",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aigent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    _setup_logging(verbose)


def _setup_logging(verbose: int) -> None:
    from aigent.secrets import RedactingFilter

    level = os.environ.get("AIGENT_LOG_LEVEL") or ["WARNING", "INFO", "DEBUG"][min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


@app.command()
def validate(files: Files) -> None:
    """Check character files: print the detected format and a summary, or what is wrong."""
    from aigent.character import load_character

    failed = 0
    for file in files:
        try:
            character = load_character(file)
        except AigentError as exc:
            failed += 1
            typer.secho(f"✗ {exc}", fg="red", err=True)
            continue
        if character.connector.enabled and character.connector.node:
            try:
                _check_connector(character)
            except AigentError as exc:
                failed += 1
                typer.secho(f"✗ {exc}", fg="red", err=True)
                continue
        typer.echo(f"✓ {file}: {character.format}: {character.summary()}")
        for warning in character.warnings:
            typer.secho(f"  warning: {warning}", fg="yellow")
    if failed:
        raise typer.Exit(1)


def _check_connector(character: Character) -> None:
    from aigent.node import connector_config
    from aigent.runtime import Agent

    agent = Agent(character, load_installed=False)  # its data directory, its secrets
    connector_config(character, agent.data_dir, agent.secrets, agent.name)


@app.command()
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed plugins, their versions and the hooks each implements."""
    import json

    from aigent.plugins import describe_installed

    found = describe_installed()
    if as_json:
        typer.echo(json.dumps([p.__dict__ for p in found], indent=2))
        return
    for p in found:
        version = f" {p.version}" if p.version else ""
        dist = f" ({p.distribution}{version})" if p.distribution else ""
        typer.echo(f"{p.name}{dist} [{p.source}]: {', '.join(p.hooks) or 'no hooks'}")


@app.command()
def chat(
    file: Annotated[Path, typer.Argument(help="A character file.")],
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Send one message, print the reply.")
    ] = None,
    user: Annotated[str, typer.Option(help="Who is talking.")] = "user",
    model: ModelOption = None,
) -> None:
    """Chat with one agent in the terminal, or send one message with --message.

    The character's clients (X, say) are not started: use `aigent run` for those."""
    from aigent.runtime import Agent

    agent = _load(Agent, [file], model)[0]

    async def main() -> None:
        await agent.start(clients=False)  # the terminal is the only client here
        try:
            if message is not None:
                reply = await agent.chat(message, user=user)
                typer.echo(reply.text)
                return
            _banner([agent])
            await _terminal_chat([agent], user)
        finally:
            await agent.stop()

    _run_async(main())


@app.command()
def run(
    files: Files,
    user: Annotated[str, typer.Option(help="Your name in the terminal chat.")] = "user",
    model: ModelOption = None,
) -> None:
    """Run agents with their clients and loops; chat with them when attached to a terminal.

    With input piped in, each line is sent to the first agent and its reply printed.
    """
    from aigent.runtime import Agent

    agents = _load(Agent, files, model)

    async def main() -> None:
        from contextlib import AsyncExitStack

        # Before anything starts: a SIGTERM that comes early still stops the agents cleanly.
        stopped = None if sys.stdin.isatty() else _stop_on_signal()
        async with AsyncExitStack() as stack:
            for agent in agents:
                await stack.enter_async_context(agent)
            _banner(agents)
            if stopped is None:
                await _terminal_chat(agents, user)
            else:
                await _piped_chat(agents[0], user)
                if any(agent.clients or _serving(agent) for agent in agents):
                    await stopped.wait()

    _run_async(main())


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The character's (or plugin's) name.")],
    plugin: Annotated[bool, typer.Option("--plugin", help="Scaffold a plugin project.")] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Where to write.")] = Path("."),
) -> None:
    """Scaffold a character file, or with --plugin a plugin project with its own pyproject."""
    from aigent.scaffold import new_character, new_plugin

    written = new_plugin(name, directory) if plugin else new_character(name, directory)
    for path in written:
        typer.echo(f"wrote {path}")


def _load(agent_class: type[Agent], files: list[Path], model: str | None = None) -> list[Agent]:
    from aigent._progress import enable, progress
    from aigent.character import ModelConfig, Models, load_character

    enable()
    agents = []
    for file in files:
        character = load_character(file)
        if model is not None:  # every role: small falls back to large, embedding is memory's
            character.models = Models(
                large=[ModelConfig(model=model)], embedding=character.models.embedding
            )
        agent = agent_class(character)
        for warning in agent.character.warnings:
            typer.secho(f"{file}: warning: {warning}", fg="yellow", err=True)
        with progress(f"loading {agent.name} ({file})"):
            agent.assemble()
        if sys.stdin.isatty():
            agent.spending.confirm = _confirm_in_terminal
        agents.append(agent)
    return agents


async def _confirm_in_terminal(spend: Spend, question: str) -> bool:
    import asyncio

    answer = await asyncio.to_thread(input, f"{question} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


def _banner(agents: list[Agent]) -> None:
    for agent in agents:
        clients = ", ".join(agent.character.clients) or "terminal only"
        model = agent.model.model_id if agent.model else "?"
        # The price is stated once, by the node (it is what paid messages are charged); the
        # terminal chat itself is never charged.
        typer.secho(
            f"{agent.name} is running — model {model}; clients: {clients}", fg="green", err=True
        )
        if agent.node is not None:
            typer.secho(f"  {agent.node.status()}", fg="green", err=True)
            agent.observe(functools.partial(_show_sale, agent))


def _show_sale(agent: Agent, kind: str, data: Mapping[str, Any]) -> None:
    from aigent.amounts import format_amount

    if kind != "paid_message" or agent.node is None:
        return
    typer.secho(
        f"  {agent.name} earned {format_amount(data['amount'], data['scale'], data['asset'])} "
        f"from {data['sender']} (in all, {agent.node.earned()})",
        fg="green",
        err=True,
    )


async def _terminal_chat(agents: list[Agent], user: str) -> None:
    import asyncio

    by_name = {a.name.lower(): a for a in agents}
    current = agents[0]
    hint = "Type a message; '@name text' talks to another agent; Ctrl-D or /quit to leave."
    typer.secho(hint, dim=True, err=True)
    while True:
        try:
            line = await asyncio.to_thread(input, f"{user}> ")
        except EOFError:
            typer.echo()
            return
        line = line.strip()
        if not line:
            continue
        if line in {"/quit", "/exit"}:
            return
        if line.startswith("@") and " " in line:
            name, line = line[1:].split(" ", 1)
            current = by_name.get(name.lower(), current)
        typer.echo(f"{current.name}> ", nl=False)
        stream = _Stream()
        try:
            reply = await current.chat(line, user=user, on_text=stream.show)
        except AigentError as exc:
            typer.echo()
            typer.secho(f"error: {exc}", fg="red", err=True)
            continue
        if stream.text == reply.text:
            typer.echo()
        else:  # a response hook changed it, or nothing streamed: show the final text
            typer.echo(("\n" if stream.text else "") + reply.text)


class _Stream:
    def __init__(self) -> None:
        self.text = ""

    def show(self, chunk: str) -> None:
        self.text += chunk
        typer.echo(chunk, nl=False)


async def _piped_chat(agent: Agent, user: str) -> None:
    import asyncio

    for line in (await asyncio.to_thread(sys.stdin.read)).splitlines():
        if line.strip():
            reply = await agent.chat(line.strip(), user=user)
            typer.echo(reply.text)


def _stop_on_signal() -> asyncio.Event:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _serving(agent: Agent) -> bool:
    """Whether the agent's node takes connections (peers over BTP, payers over SPSP)."""
    return agent.node is not None and agent.node.serving


def _run_async(coro: object) -> None:
    import asyncio

    try:
        asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _add_plugin_commands() -> None:
    from aigent.errors import PluginError
    from aigent.plugins import Plugins

    plugins = Plugins()
    try:
        plugins.load_installed()
    except PluginError as exc:
        # A broken plugin must not take the whole CLI down; agents will refuse to start.
        typer.secho(f"warning: {exc}", fg="yellow", err=True)
    plugins.pm.hook.register_commands(cli=app)


def main() -> None:
    """Console entry point: errors aigent knows about are printed without a traceback."""
    _add_plugin_commands()
    try:
        app()
    except AigentError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
