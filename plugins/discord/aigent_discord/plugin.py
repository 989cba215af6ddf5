"""Hooks: the ``discord`` client, and the channel's recent messages as context."""

from __future__ import annotations

from typing import Any

from aigent import PluginContext, hookimpl
from aigent.conversations import RecentMessages, watched_inbox


def discord_client(ctx: PluginContext, agent: Any) -> Any:
    from aigent_discord.client import DiscordClient

    return DiscordClient(ctx, agent)


@hookimpl
def register_clients(register: Any) -> None:
    register("discord", discord_client)


@hookimpl
def register_context_providers(register: Any, ctx: PluginContext) -> None:
    if "discord" in ctx.character.clients:
        register(RecentMessages("discord"))


@hookimpl
def register_watchers(register: Any, ctx: PluginContext) -> None:
    inbox = watched_inbox(ctx, "discord")  # the client puts the channel messages it sees
    if inbox is not None and "discord" in ctx.character.clients:
        register(inbox)
