"""``aigent memory ingest|search|stats|clear CHARACTER``."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer

Character = Annotated[Path, typer.Argument(help="The agent's character file.")]


def _store(file: Path):  # type: ignore[no-untyped-def]
    from aigent import Agent, AigentError, enable_progress
    from aigent_chroma.store import ChromaStore

    enable_progress()
    agent = Agent.from_file(file)
    agent.assemble()
    if not isinstance(agent.memory, ChromaStore):
        raise AigentError(f"{file}: this agent's memory is not the chroma store (memory.store)")
    return agent.memory


def add_commands(cli: typer.Typer) -> None:
    memory = typer.Typer(help="Inspect and manage an agent's memory and knowledge.")
    cli.add_typer(memory, name="memory")

    @memory.command()
    def ingest(file: Character) -> None:
        """Ingest the character's knowledge (only files that changed)."""
        store = _store(file)
        report = asyncio.run(store.ingest())
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
        store = _store(file)
        for item in asyncio.run(store.search(query, k)):
            source = item.metadata.get("source") or item.metadata.get("role", "")
            text = " ".join(item.text.split())
            typer.echo(f"{item.score:.3f}  [{source}] {text[:160]}")

    @memory.command()
    def stats(file: Character) -> None:
        """Where the memory lives, its embedder and how much it holds."""
        for key, value in _store(file).stats().items():
            typer.echo(f"{key}: {value}")

    @memory.command()
    def clear(
        file: Character,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    ) -> None:
        """Delete the agent's memory and knowledge (knowledge is re-ingested on next start)."""
        if not yes:
            typer.confirm(f"Delete all memory of {file}?", abort=True)
        _clear(file)
        typer.echo("memory cleared")


def _clear(file: Path) -> None:
    """Delete the collections without opening them through the embedder guard: clearing is
    how a mismatch is fixed."""
    from aigent import Agent
    from aigent_chroma.store import collection_name, open_client

    agent = Agent.from_file(file)  # not assembled: no embedder needed
    url = agent.character.memory.url or agent.secrets.get("CHROMA_URL")
    client = open_client(url, agent.data_dir / "chroma")
    for kind in ("messages", "knowledge"):
        try:
            client.delete_collection(collection_name(agent.name, kind))
        except Exception:  # not there: nothing to clear
            continue
    (agent.data_dir / "knowledge-manifest.json").unlink(missing_ok=True)
