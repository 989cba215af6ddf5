"""The ``aigent memory`` commands, added to the CLI (the commands live in aigent.memory_cli,
imported only here, so an agent embedded in an app never loads typer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigent.hookspecs import hookimpl

if TYPE_CHECKING:
    import typer


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from aigent.memory_cli import add_commands

    add_commands(cli)
