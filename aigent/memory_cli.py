"""``aigent memory ingest|search|stats|clear CHARACTER``, for any store that can be inspected
(:class:`aigent.interfaces.SearchableMemory`); ``clear`` uses the store factory's ``clear``.

Imported only when the CLI is built (typer is not loaded by an embedded agent)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from aigent.interfaces import SearchableMemory

T = TypeVar("T")
Character = Annotated[Path, typer.Argument(help="The agent's character file.")]


def _with_store(file: Path, use: Callable[[SearchableMemory], Awaitable[T]]) -> T:
    """Open the agent's memory (not its clients or connector), use it, close it."""
    from aigent import Agent, AigentError, enable_progress
    from aigent.interfaces import SearchableMemory

    enable_progress()
    agent = Agent.from_file(file)
    agent.assemble()
    store = agent.memory
    if store is None:
        raise AigentError(f"{file}: this agent has no memory (memory.enabled, or no store)")
    if not isinstance(store, SearchableMemory):
        raise AigentError(
            f"{file}: this agent's memory store ({type(store).__name__}) cannot be inspected: "
            "it has no ingest/search/stats"
        )

    async def run() -> T:
        try:
            return await use(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _clear(file: Path) -> str:
    """Clear without opening the store: an open would refuse a mismatched embedder, and
    clearing is how that is fixed."""
    from aigent import Agent, AigentError
    from aigent.memory import choose_store

    agent = Agent.from_file(file)
    agent.plugins.load_installed()
    for spec in agent.character.plugins:
        agent.plugins.load_named(spec, file.parent)
    stores = agent.plugins.named("register_memory_stores")
    name = agent.character.memory.store or choose_store(stores, agent.ctx)
    if name not in stores:
        raise AigentError(f"{file}: memory store {name!r} is not installed")
    reg = stores[name]
    clear = getattr(reg.value, "clear", None)
    if clear is None:
        raise AigentError(f"{file}: memory store {name!r} (plugin {reg.plugin}) cannot clear")
    clear(agent.ctx.for_plugin(reg.plugin))
    return str(name)


def add_commands(cli: typer.Typer) -> None:
    memory = typer.Typer(help="Inspect and manage an agent's memory and knowledge.")
    cli.add_typer(memory, name="memory")

    @memory.command()
    def ingest(file: Character) -> None:
        """Ingest the character's knowledge (only files that changed)."""
        report = _with_store(file, lambda store: store.ingest())
        typer.echo(
            f"{report.added} chunks added, {report.removed} removed, "
            f"{report.unchanged} sources unchanged, {len(report.skipped)} skipped"
        )

    @memory.command()
    def search(
        file: Character,
        query: Annotated[str, typer.Argument(help="What to look for.")],
        k: Annotated[int, typer.Option("-k", help="How many matches.")] = 5,
    ) -> None:
        """Print the best matches for a query, with their scores."""
        for item in _with_store(file, lambda store: store.search(query, k)):
            source = item.metadata.get("source") or item.metadata.get("role", "")
            text = " ".join(item.text.split())
            typer.echo(f"{item.score:.3f}  [{source}] {text[:160]}")

    @memory.command()
    def stats(file: Character) -> None:
        """Where the memory lives, its embedder and how much it holds."""
        for key, value in _with_store(file, lambda store: store.stats()).items():
            typer.echo(f"{key}: {value}")

    @memory.command()
    def clear(
        file: Character,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    ) -> None:
        """Delete the agent's memory and knowledge (knowledge is re-ingested on next start)."""
        if not yes:
            typer.confirm(f"Delete all memory of {file}?", abort=True)
        name = _clear(file)
        typer.echo(f"memory cleared ({name})")
