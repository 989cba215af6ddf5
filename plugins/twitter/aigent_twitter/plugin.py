"""Hooks: the ``twitter`` client and a social-data context provider."""

from __future__ import annotations

import time
from typing import Any

from aigent import Incoming, PluginContext, hookimpl

TIMELINE_TTL = 300.0


def twitter_client(ctx: PluginContext, agent: Any) -> Any:
    from aigent_twitter.client import TwitterClient

    return TwitterClient(ctx, agent)


class Timeline:
    """Recent posts from the home timeline (or a search), cached, as context for the agent."""

    name = "x-timeline"

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self._api: Any = None
        self._cached: tuple[float, str | None] = (0.0, None)

    async def get(self, message: Incoming, agent: Any) -> str | None:
        from aigent_twitter.api import XApi, XApiError
        from aigent_twitter.client import credentials

        if time.time() - self._cached[0] < TIMELINE_TTL:
            return self._cached[1]
        creds = credentials(self.ctx)
        if creds is None or self.ctx.settings.get("dry_run"):
            return None
        if self._api is None:
            self._api = XApi(creds, api_base=self.ctx.settings.get("api_base"))
        query = self.ctx.settings.get("search")
        count = int(self.ctx.settings.get("timeline_read_count", 10))
        try:
            posts = await (self._api.search(query, count) if query else
                           self._api.home_timeline(count))  # fmt: skip
        except XApiError:
            return self._cached[1]  # stale context beats none; the next call retries
        text = "Recent posts on X:\n" + "\n".join(f"- {p.text}" for p in posts) if posts else None
        self._cached = (time.time(), text)
        return text


@hookimpl
def register_clients(register: Any) -> None:
    register("twitter", twitter_client)


@hookimpl
def register_context_providers(register: Any, ctx: PluginContext) -> None:
    if "twitter" in ctx.character.clients:
        register(Timeline(ctx))


@hookimpl
def register_watchers(register: Any, ctx: PluginContext) -> None:
    watch = ctx.settings.get("watch")
    if not watch:
        return
    from aigent_twitter.api import XApi
    from aigent_twitter.client import credentials
    from aigent_twitter.watch import XWatcher

    creds = credentials(ctx)
    if creds is None:
        raise ValueError(
            "settings.twitter.watch needs the X API secrets (TWITTER_API_KEY, "
            "TWITTER_API_SECRET, TWITTER_ACCESS_TOKEN, TWITTER_ACCESS_TOKEN_SECRET)"
        )
    register(
        XWatcher(
            XApi(creds, api_base=ctx.settings.get("api_base")),
            watch if isinstance(watch, dict) else {},
        )
    )
