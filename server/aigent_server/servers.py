"""``GET /api/servers``: the servers of this installation and their health. One server on its
own (SQLite) lists itself; servers sharing a PostgreSQL list every one whose heartbeat is in
the database, with the agents each runs (see aigent_server.leases)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from fastapi import APIRouter, Request

from aigent_server.app import Who
from aigent_server.fleet import Fleet

STARTED = time.time()
router = APIRouter(prefix="/api/servers", tags=["server"])


@router.get("")
async def servers(who: Who, request: Request) -> dict[str, Any]:
    """Each server: name, pid, when it started, its last heartbeat, the agents it runs and
    whether it is healthy (a heartbeat within a lease period); ``lost`` says why this server
    cannot reach the database, while it cannot."""
    fleet: Fleet = request.app.state.fleet
    leases = fleet.leases
    if leases is None:
        running = sum(1 for h in fleet.hosted.values() if h.agent is not None)
        now = time.time()
        alone = {"id": "local", "name": f"{socket.gethostname()}/{os.getpid()}",
                 "pid": os.getpid(), "started_at": STARTED,
                 "heartbeat_at": now, "stopped_at": None, "agents": running, "healthy": True,
                 "this": True}  # fmt: skip
        return {"database": "sqlite", "lease_seconds": None, "lost": None, "servers": [alone]}
    return {
        "database": "postgresql",
        "lease_seconds": leases.seconds,
        "lost": leases.lost,
        "servers": [s.public(leases.id) for s in leases.servers],
    }
