"""What an agent watched (``settings.watch``), over HTTP: ``GET /api/agents/{name}/digest``.

The same figures as ``aigent analyze``, read from the agent's ``watch`` store off the event
loop; no model is asked."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query

from aigent.storage import Store
from aigent.watch import (
    Observation,
    WatchStore,
    digest,
    parse_duration,
    read_window,
    summarize,
    watched,
)
from aigent_server.app import Agent
from aigent_server.fleet import FleetError

router = APIRouter(tags=["digest"])


def _item(o: Observation) -> dict[str, Any]:
    return {"id": o.id, "time": o.time, "text": o.text, "kind": o.data.get("kind", "item")}


@router.get("/api/agents/{name}/digest")
async def agent_digest(
    agent: Agent, since: str = Query("24h", max_length=16, description="30m, 24h, 7d...")
) -> dict[str, Any]:
    """Per source: how many items of each kind, the biggest changes and the latest items, and
    the digest as text."""
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise FleetError(422, f"since: {exc}") from None
    now = time.time()
    # A running agent's store (its file, or its schema in a fleet's database); a stopped
    # one's file, if it ran here.
    where: Path | Store | None = None
    if agent.agent is not None:
        where = WatchStore.where(agent.agent.storage)
    elif agent.data_dir is not None:
        where = WatchStore.path_in(agent.data_dir)
    watching = where is not None and await asyncio.to_thread(watched, where)
    items: list[Observation] = []
    if where is not None:
        items = await asyncio.to_thread(read_window, where, now - seconds, now)
    return {
        "since": now - seconds,
        "until": now,
        "watching": watching,
        "count": len(items),
        "sources": [
            {
                "source": s.source,
                "count": s.count,
                "kinds": s.kinds,
                "top": [_item(o) for o in s.top],
                "latest": [_item(o) for o in s.latest],
            }
            for s in summarize(items)
        ],
        "text": digest(items, now - seconds, now),
    }
