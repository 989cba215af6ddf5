"""Hooks: the ``telegram`` client, and the chat's recent messages as context."""

from __future__ import annotations

from typing import Any

from aigent import PluginContext, hookimpl
from aigent.conversations import RecentMessages


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
