"""The aigent plugin (entry point ``connector`` in group ``aigent``): adds
``aigent connector start|validate|health``. Loaded only by aigent, so pluggy is there."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

hookimpl = pluggy.HookimplMarker("aigent")


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from aigent_connector.cli import app

    cli.add_typer(app, name="connector")
