"""Watching data into memory (see :mod:`aigent.watch`): when the character has
``settings.watch``, a service polls the watchers the agent's plugins offer and a context
provider recalls the window a question names; ``aigent analyze`` prints the digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigent.hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Callable

    import typer

    from aigent.interfaces import PluginContext


def _configured(ctx: PluginContext) -> bool:
    return "watch" in ctx.character.settings


@hookimpl
def register_services(register: Callable[..., None], ctx: PluginContext) -> None:
    if not _configured(ctx):
        return
    from aigent.watch import WatchConfig, WatchService, WatchStore

    config = WatchConfig.parse(ctx.character.settings.get("watch"), ctx.character.source)
    # ctx.watchers is filled after services are collected: the service reads it when it starts.
    register(WatchService(ctx.watchers, config, WatchStore.where(ctx.storage)))


@hookimpl
def register_context_providers(register: Callable[..., None], ctx: PluginContext) -> None:
    if not _configured(ctx):
        return
    from aigent.watch import WatchRecall, WatchStore

    register(WatchRecall(WatchStore.where(ctx.storage)))


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from aigent.watch_cli import add_commands

    add_commands(cli)
