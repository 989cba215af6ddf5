"""``aigent analyze CHARACTER [--since 24h]``: the digest of what the agent watched.

Imported only when the CLI is built (typer is not loaded by an embedded agent)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def add_commands(cli: typer.Typer) -> None:
    @cli.command()
    def analyze(
        file: Annotated[Path, typer.Argument(help="The agent's character file.")],
        since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d...")] = "24h",
    ) -> None:
        """Print a digest of what the agent watched (settings.watch), per source."""
        from aigent import Agent, AigentError
        from aigent.watch import WatchStore, digest, parse_duration, read_window

        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            raise AigentError(f"--since: {exc}") from None
        agent = Agent.from_file(file)
        path = WatchStore.path_in(agent.data_dir)
        if not path.exists():
            raise AigentError(
                f"{file}: nothing watched yet ({path} does not exist): give the character "
                "settings.watch and run it"
            )
        now = time.time()
        items = read_window(path, now - seconds, now)
        typer.echo(digest(items, now - seconds, now))
