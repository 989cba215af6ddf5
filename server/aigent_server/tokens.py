"""Tokens over HTTP: create, mint and transfer ERC-20 tokens on TRN, issue a currency and set
trust lines on the XRPL, and balances on both, for the chains whose plugins the agent has.

Every call runs one of the agent's own actions (``trn_token_create``, ``trn_token_mint``,
``xrpl_issue``, ``xrpl_trust_set``...) through ``Agent.run_action``, so its ``spend_from``, its
``before_action`` hooks and its spending limits apply exactly as when its model calls them. The
server adds no way to move value the agent does not already have.

What the owner sends here is the owner's own decision, so it counts as the confirmation a
payment above ``confirm_above`` asks for (:data:`~aigent_server.fleet.OWNER_ASKED`): nothing is
parked for approval. The maximum per payment, the hourly and daily caps and the allowlist still
bind, and a refusal is a 403 with the policy's message.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

import aigent
from aigent.messages import ActionResult
from aigent_server.app import Agent
from aigent_server.events import EventBus
from aigent_server.fleet import OWNER_ASKED, Fleet, FleetError, Hosted

router = APIRouter(tags=["tokens"])

CHAINS = {"trn": "trn_tokens", "xrpl": "xrpl_tokens"}
"""Each chain by the action that reads the agent's holdings there: its plugin is present when
the action is."""
PLUGIN_NAMES = {"trn": "TRN (plugin trn)", "xrpl": "XRPL (plugin xrpl)"}
STATUS = {"denied": 403, "invalid": 422, "unknown": 404, "timeout": 504, "failed": 502}
"""How an action that did not run maps to HTTP: refused by a policy, bad input, no such
action, too slow, the chain failed."""

Amount = Field(min_length=1, max_length=80, description='a decimal amount as text, e.g. "12.5"')


class CreateIn(BaseModel):
    chain: Literal["trn", "xrpl"] = "trn"
    name: str = Field(default="", max_length=64)
    """TRN: the token's name."""
    symbol: str = Field(default="", max_length=11)
    """TRN: its symbol (capital letters and digits), which names it from then on."""
    decimals: int = Field(default=18, ge=0, le=36)
    currency: str = Field(default="", max_length=40)
    """XRPL: the code of the currency the agent will issue (three characters, or 40 hex)."""


class MintIn(BaseModel):
    chain: Literal["trn", "xrpl"] = "trn"
    amount: str = Amount
    to: str = Field(default="", max_length=100)
    """The recipient; on TRN the agent itself by default, on the XRPL a holder that trusts the
    agent for the currency (required)."""


class TransferIn(BaseModel):
    chain: Literal["trn", "xrpl"] = "trn"
    amount: str = Amount
    to: str = Field(min_length=1, max_length=100)
    issuer: str = Field(default="", max_length=100)
    """On the XRPL: whose currency it is (the agent's own by default)."""


class TrustIn(BaseModel):
    currency: str = Field(min_length=1, max_length=40)
    issuer: str = Field(min_length=1, max_length=100)
    limit: str = Amount


@router.get("/api/agents/{name}/tokens")
async def holdings(agent: Agent, request: Request) -> dict[str, Any]:
    """What the agent holds on each chain its plugins reach: on TRN its native XRP, the
    configured tokens and those it created; on the XRPL its XRP, the currencies it holds on
    trust lines and those it issued. A chain that cannot be read has ``error`` instead (the
    others are still shown); a chain the agent has no plugin for is absent."""
    running = _running(request, agent)
    chains = [c for c, action in CHAINS.items() if action in running.actions]
    results = await asyncio.gather(*(running.run_action(CHAINS[c], {}) for c in chains))
    out: dict[str, Any] = {"agent": agent.entry.name}
    for chain, result in zip(chains, results, strict=True):
        out[chain] = json.loads(result.output) if result.ok else {"error": _detail(result)}
    return out


@router.post("/api/agents/{name}/tokens", status_code=201)
async def create(agent: Agent, body: CreateIn, request: Request) -> dict[str, Any]:
    """On TRN, deploy an ERC-20 token the agent mints. Its symbol names it from then on, and
    is the asset its limits are kept under: ``spending.<SYMBOL>`` in the character governs
    minting and sending it (without that entry it is never minted). On the XRPL, make the
    agent the issuer of ``currency`` (its account set to let holders pass it on, the code
    remembered); issuing it is then a mint, under ``spending.<CURRENCY>``."""
    if body.chain == "xrpl":
        args: dict[str, Any] = {"currency": body.currency}
        made = await _act(request, agent, "xrpl", "xrpl_currency_create", args, "created")
    else:
        args = {"name": body.name, "symbol": body.symbol, "decimals": body.decimals}
        made = await _act(request, agent, "trn", "trn_token_create", args, "created")
    return {"chain": body.chain, **made}


@router.post("/api/agents/{name}/tokens/{token}/mint")
async def mint(agent: Agent, token: str, body: MintIn, request: Request) -> dict[str, Any]:
    """Mint a token the agent created on TRN, or issue its own currency on the XRPL (to an
    account with a trust line for it), within the spending limits for that token."""
    if body.chain == "trn":
        args = {"token": token, "amount": body.amount, "to": body.to}
        done = await _act(request, agent, "trn", "trn_token_mint", args, "minted")
    else:
        if not body.to:
            raise FleetError(422, "to: name the XRPL account to issue to (it must trust you)")
        args = {"currency": token, "destination": body.to, "amount": body.amount}
        done = await _act(request, agent, "xrpl", "xrpl_issue", args, "issued")
    return {"chain": body.chain, "token": token, "amount": body.amount, **done}


@router.post("/api/agents/{name}/tokens/{token}/transfer")
async def transfer(agent: Agent, token: str, body: TransferIn, request: Request) -> dict[str, Any]:
    """Send a token: an ERC-20 on TRN (a configured name, a created symbol or an address), or
    an issued currency on the XRPL (``issuer``: whose; the agent's own by default)."""
    if body.chain == "trn":
        args = {"token": token, "to": body.to, "amount": body.amount}
        done = await _act(request, agent, "trn", "trn_token_transfer", args, "transferred")
    else:
        issuer = body.issuer or await _xrpl_address(request, agent)
        args = {"destination": body.to, "amount": body.amount, "currency": token, "issuer": issuer}
        done = await _act(request, agent, "xrpl", "xrpl_pay", args, "transferred")
    return {"chain": body.chain, "token": token, "amount": body.amount, "to": body.to, **done}


@router.post("/api/agents/{name}/trustlines")
async def trust(agent: Agent, body: TrustIn, request: Request) -> dict[str, Any]:
    """Trust an XRPL issuer for up to ``limit`` of its currency, so the agent can hold it (0
    lowers the line to nothing). It reserves nothing against the spending caps; an allowlist
    for the currency (``spending.<CUR>.allowlist``) names the issuers the agent may trust."""
    args = {"currency": body.currency, "issuer": body.issuer, "limit": body.limit}
    done = await _act(request, agent, "xrpl", "xrpl_trust_set", args, "trusted")
    return {"chain": "xrpl", **args, **done}


async def _act(
    request: Request, hosted: Hosted, chain: str, action: str, args: dict[str, Any], what: str
) -> dict[str, Any]:
    """Run ``action`` as the owner's request; publish a ``token`` event either way; map a
    failure to its HTTP status with the action's own message."""
    agent = _with(request, hosted, chain, action)
    token = OWNER_ASKED.set(True)
    try:
        result = await agent.run_action(action, args)
    finally:
        OWNER_ASKED.reset(token)
    bus: EventBus = request.app.state.bus
    name, owner = hosted.entry.name, hosted.entry.owner
    if not result.ok:
        detail = _detail(result)
        bus.publish("token", name, owner, chain=chain, action=what, ok=False, error=detail, **args)
        raise FleetError(STATUS[result.error or "failed"], detail)
    done: dict[str, Any] = json.loads(result.output)
    bus.publish("token", name, owner, chain=chain, action=what, ok=True, **{**args, **done})
    return done


async def _xrpl_address(request: Request, hosted: Hosted) -> str:
    """The agent's own XRPL address (the issuer of the currencies it issues)."""
    result = await _with(request, hosted, "xrpl", "xrpl_tokens").run_action("xrpl_tokens", {})
    if not result.ok:
        raise FleetError(STATUS[result.error or "failed"], _detail(result))
    return str(json.loads(result.output)["address"])


def _running(request: Request, hosted: Hosted) -> aigent.Agent:
    fleet: Fleet = request.app.state.fleet
    return fleet._running(hosted)  # 409 unless it runs


def _with(request: Request, hosted: Hosted, chain: str, action: str) -> aigent.Agent:
    """The running agent, if it has ``action`` (its chain's plugin); 404 otherwise."""
    agent = _running(request, hosted)
    if action not in agent.actions:
        raise FleetError(
            404, f"agent {hosted.entry.name!r} has no {PLUGIN_NAMES[chain]}: add it to its plugins"
        )
    return agent


def _detail(result: ActionResult) -> str:
    """The action's own message (a policy's refusal, say), without the lines the model sees
    around it."""
    return re.sub(rf"^error: {re.escape(result.name)} (failed|was not run): ", "", result.output)
