"""Hooks: the ``discord`` client, and the channel's recent messages as context."""

from __future__ import annotations

from typing import Any

from aigent import PluginContext, hookimpl
from aigent.conversations import RecentMessages


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
