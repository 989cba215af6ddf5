"""Money and anchors per agent, beyond ``/money``: the connector ledger, settlements and
channels, earnings over time, what was spent, and how anchoring stands. Everything here is
read through the agent's public surface (its node's reports, ``agent.anchoring``,
``agent.spending``), never from a plugin's insides. The live side of the same things is
``/api/events`` (kinds ``payment``, ``paid_message``, ``settlement``, ``anchor``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query

from aigent.amounts import format_amount
from aigent_server.app import Agent
from aigent_server.fleet import FleetError, Hosted, rails

if TYPE_CHECKING:
    from aigent import Agent as Running
    from aigent.node import AgentNode

router = APIRouter(tags=["money"])

SINCE = {"hour": 86400.0, "day": 30 * 86400.0}
"""How far back earnings go when ``since`` is not given: a day by hour, a month by day."""


def _running(hosted: Hosted) -> Running:
    if hosted.agent is None or hosted.state != "running":
        raise FleetError(409, f"agent {hosted.entry.name!r} is {hosted.state}: start it first")
    return hosted.agent


def _node(hosted: Hosted) -> AgentNode:
    node = _running(hosted).node
    if node is None:
        raise FleetError(
            409,
            f"agent {hosted.entry.name!r} has its connector turned off (connector.enabled is "
            "false): it has no ledger, settlements or paid messages",
        )
    return node


@router.get("/api/agents/{name}/ledger")
async def ledger(agent: Agent) -> dict[str, Any]:
    """The connector's accounts, one per peer: balance (positive: the peer owes this agent),
    reservations in flight, credit limits, settlement threshold, link up or down."""
    node = _node(agent)
    code, scale = node.asset
    return {"address": node.address, "asset": code, "scale": scale, "accounts": node.accounts()}


@router.get("/api/agents/{name}/settlements")
async def settlements(agent: Agent) -> dict[str, Any]:
    """Per peer with a settlement engine: the settlements the connector asked of it and the
    engine's payment channels (capacity, claimed, redeemed, open or closed)."""
    return {"peers": _node(agent).settlements()}


@router.get("/api/agents/{name}/earnings")
async def earnings(
    agent: Agent,
    every: Annotated[Literal["hour", "day"], Query(description="bucket size (UTC)")] = "hour",
    since: Annotated[
        float | None, Query(description="POSIX seconds; default a day back by hour, 30 by day")
    ] = None,
) -> dict[str, Any]:
    """Earnings from paid messages per hour or day, empty buckets included, oldest first."""
    node = _node(agent)
    code, scale = node.asset
    start = since if since is not None else time.time() - SINCE[every]
    try:
        rows = await asyncio.to_thread(node.earnings.over_time, every, start)
        amount, messages = await asyncio.to_thread(node.earnings.total)
        by_rail = await asyncio.to_thread(node.earnings.by_rail)
    except ValueError as exc:
        raise FleetError(422, str(exc)) from None
    return {
        "every": every,
        "asset": code,
        "scale": scale,
        "total": {
            "amount": amount,
            "messages": messages,
            "text": format_amount(amount, scale, code),
        },
        "rails": rails(by_rail, code, scale),
        "buckets": [{"at": at, "amount": n, "messages": m} for at, n, m in rows],
    }


@router.get("/api/agents/{name}/payments")
async def payments(agent: Agent, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """What the agent spent, reserved or released lately, newest first (amounts at the asset
    scale of its spending limits)."""
    running = _running(agent)
    return {"payments": await asyncio.to_thread(running.spending.recent, limit)}


@router.get("/api/agents/{name}/anchors")
async def anchors(agent: Agent, recent: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:
    """How each anchoring service of the agent stands (the ``trn`` plugin's loop, say): the
    messages queued, batches sealed and anchored, the latest batches with their transactions,
    and the last error. Empty when nothing anchors the agent's messages."""
    running = _running(agent)
    return {"services": await asyncio.to_thread(running.anchoring, recent)}
