"""What the agent watches on X (``settings.twitter.watch``), for the core's watch service: its
mentions, its home timeline and searches, each post stored once by its id at the time X says
it was posted."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aigent import Observation

if TYPE_CHECKING:
    from aigent_twitter.api import Post, XApi


class XWatcher:
    name = "x"

    def __init__(self, api: XApi, settings: dict[str, Any]) -> None:
        self.api = api
        self.mentions = bool(settings.get("mentions", True))
        self.timeline = bool(settings.get("timeline", True))
        searches = settings.get("searches", [])
        if not isinstance(searches, list):
            raise ValueError(
                'settings.twitter.watch.searches: a list of queries, e.g. ["aigent", "#xrpl"]'
            )
        self.searches = [str(q) for q in searches]
        self.count = int(settings.get("count", 20))

    async def poll(self, since: float | None) -> list[Observation]:
        now, found = time.time(), []

        def item(post: Post, kind: str, **data: str) -> Observation:
            # X's own time; a post without one is stamped when first seen (the store keeps
            # the first sighting, so seeing it again does not move it to a later window).
            return Observation(
                self.name,
                post.id,
                post.created_at if post.created_at is not None else now,
                f"{kind} by {post.author_id or '?'}: {post.text}",
                {"kind": kind, "author": post.author_id, **data},
            )

        if self.mentions:
            found += [item(p, "mention") for p in await self.api.mentions(None)]
        if self.timeline:
            found += [item(p, "post") for p in await self.api.home_timeline(self.count)]
        for query in self.searches:
            found += [item(p, "search", query=query) for p in await self.api.search(query)]
        return found
