"""Hooks: the ``telegram`` client, and the chat's recent messages as context."""

from __future__ import annotations

from typing import Any

from aigent import PluginContext, hookimpl
from aigent.conversations import RecentMessages, watched_inbox


def telegram_client(ctx: PluginContext, agent: Any) -> Any:
    from aigent_telegram.client import TelegramClient

    return TelegramClient(ctx, agent)


@hookimpl
def register_clients(register: Any) -> None:
    register("telegram", telegram_client)


@hookimpl
def register_context_providers(register: Any, ctx: PluginContext) -> None:
    if "telegram" in ctx.character.clients:
        register(RecentMessages("telegram"))


@hookimpl
def register_watchers(register: Any, ctx: PluginContext) -> None:
    inbox = watched_inbox(ctx, "telegram")  # the client puts the channel messages it sees
    if inbox is not None and "telegram" in ctx.character.clients:
        register(inbox)
