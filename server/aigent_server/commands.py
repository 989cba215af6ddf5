"""``aigent serve``, added to the CLI through the ``register_commands`` hook. typer and the web
stack are imported only when the command runs, so an embedded agent never loads them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigent.hookspecs import hookimpl

if TYPE_CHECKING:
    import typer


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from aigent_server.cli import serve

    cli.command()(serve)
