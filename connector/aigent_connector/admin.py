"""The admin HTTP API of a node (aiohttp), bound to localhost by default.

Every route but ``GET /health`` needs ``Authorization: Bearer <token>`` (compared in constant
time; 401 otherwise). Health stays open so a load balancer or ``aigent connector health``
without a token can probe liveness; it tells nothing but status, address and peer counts.

The token holder is not trusted with more than the node: ``POST /send`` with an amount needs
``admin.allow_send`` (it moves value outside any spending policy), and a peer added here reads
its token only from a variable of its own named ``*_BTP_TOKEN``, never another peer's or any
other secret in the environment, since that token is sent to the url the caller gives.

    GET    /health                      status, ILP address, peers connected
    GET    /metrics                     Prometheus text format
    POST   /send                        {destination, amount, data?, condition?, expires_in?}
    POST   /ilp/send                    {destination, amount, data, timeoutMs?}: agent-runtime's
                                        shape, condition SHA-256(SHA-256(data))
    GET    /peers                       peers and whether their link is up
    POST   /peers                       {account, relation, asset_code, url?, token_env?, ...}
    DELETE /peers/{account}
    GET    /routes                      [{prefix, account}]
    POST   /routes                      {prefix, account}
    DELETE /routes/{prefix}
    GET    /balances                    ledger balances per peer account
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigent_connector.config import ConfigError, PeerConfig
from aigent_connector.packets import Fulfill, InvalidPacket, Prepare, Reject

if TYPE_CHECKING:
    from aigent_connector.node import Node

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/health"})


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destination: str
    amount: int = Field(ge=0, le=2**64 - 1)
    data: str = ""
    """Base64."""
    condition: str | None = None
    """Base64 of 32 bytes; left out, a random one is made (a probe nobody can fulfill)."""
    expires_in: float = Field(30.0, gt=0, le=3600)


class IlpSendRequest(BaseModel):
    """agent-runtime's ``POST /ilp/send``: its services send with this and expect its answer."""

    model_config = ConfigDict(extra="forbid")

    destination: str
    amount: str = Field(pattern=r"^[0-9]{1,20}$")
    data: str
    """Base64; the condition is SHA-256(SHA-256(data)), so whoever sees the data can fulfil."""
    timeoutMs: int = Field(30_000, gt=0, le=3_600_000)  # the wire name


class RouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str
    account: str


class AddPeerRequest(PeerConfig):
    account: str = Field(min_length=1)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def packet_json(packet: Fulfill | Reject) -> dict[str, Any]:
    if isinstance(packet, Fulfill):
        return {"type": "fulfill", "fulfillment": _b64(packet.fulfillment),
                "data": _b64(packet.data)}  # fmt: skip
    return {"type": "reject", "code": packet.code, "triggered_by": packet.triggered_by,
            "message": packet.message, "data": _b64(packet.data)}  # fmt: skip


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    """The JSON body as ``model``; raises an HTTP 400 that says what is wrong."""
    try:
        raw = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body is not JSON"}), content_type="application/json"
        ) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise web.HTTPBadRequest(
            text=json.dumps({"error": problems}), content_type="application/json"
        ) from None


class AdminServer:
    def __init__(
        self,
        node: Node,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_send: bool = False,
    ) -> None:
        if not token.strip():
            raise ValueError("the admin token is empty: it would let anyone in")
        self.node = node
        self._token = token.encode()
        self.allow_send = allow_send
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._auth])
        self.app.add_routes(
            [
                web.get("/health", self.health),
                web.get("/metrics", self.metrics),
                web.post("/send", self.send),
                web.post("/ilp/send", self.ilp_send),
                web.get("/peers", self.peers),
                web.post("/peers", self.add_peer),
                web.delete("/peers/{account}", self.remove_peer),
                web.get("/routes", self.routes),
                web.post("/routes", self.add_route),
                web.delete("/routes/{prefix}", self.remove_route),
                web.get("/balances", self.balances),
            ]
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            # aiohttp keeps the bound sockets on the site's server; port 0 asked for any port.
            sockets = getattr(site._server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self._token
            ):
                return web.json_response(
                    {"error": "missing or wrong bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    # --- routes ----------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        connector = self.node.connector
        up = [a for a, link in connector.links.items() if not link.closed.is_set()]
        return web.json_response(
            {
                "status": "ok",
                "node_id": self.node.config.node_id,
                "address": connector.address,
                "peers": len(connector.peers),
                "peers_connected": len(up),
            }
        )

    async def metrics(self, request: web.Request) -> web.Response:
        ledger = self.node.connector.ledger
        accounts = [ledger.account(name) for name in sorted(self.node.connector.peers)]
        text = self.node.metrics.render(accounts)
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})  # fmt: skip

    async def send(self, request: web.Request) -> web.Response:
        body: SendRequest = await _body(request, SendRequest)
        try:
            data = base64.b64decode(body.data, validate=True)
            condition = (
                base64.b64decode(body.condition, validate=True)
                if body.condition is not None
                else hashlib.sha256(os.urandom(32)).digest()
            )
        except (binascii.Error, ValueError):
            return _error(400, "data and condition must be base64")
        try:
            prepare = Prepare(
                body.amount,
                datetime.now(UTC) + timedelta(seconds=body.expires_in),
                condition,
                body.destination,
                data,
            )
        except InvalidPacket as exc:
            return _error(400, str(exc))
        answer = await self._send(prepare, "/send")
        if isinstance(answer, web.Response):
            return answer
        return web.json_response({**packet_json(answer), "condition": _b64(condition)})

    async def ilp_send(self, request: web.Request) -> web.Response:
        """agent-runtime's send: 200 with ``accepted`` true (and the fulfillment) or false (and
        the reject's code and message), 400 for a bad request, 408 when no answer came in
        ``timeoutMs``."""
        body: IlpSendRequest = await _body(request, IlpSendRequest)
        try:
            data = base64.b64decode(body.data, validate=True)
        except (binascii.Error, ValueError):
            return _error(400, "data must be base64")
        fulfillment = hashlib.sha256(data).digest()
        seconds = body.timeoutMs / 1000
        try:
            prepare = Prepare(
                int(body.amount),
                datetime.now(UTC) + timedelta(seconds=seconds),
                hashlib.sha256(fulfillment).digest(),
                body.destination,
                data,
            )
        except InvalidPacket as exc:
            return _error(400, str(exc))
        try:
            answer = await asyncio.wait_for(self._send(prepare, "/ilp/send"), seconds)
        except TimeoutError:
            return _error(408, f"no answer within {body.timeoutMs} ms")
        if isinstance(answer, web.Response):
            return answer
        out: dict[str, Any] = {"accepted": isinstance(answer, Fulfill)}
        out["fulfilled"] = out["accepted"]
        if isinstance(answer, Fulfill):
            out["fulfillment"] = _b64(answer.fulfillment)
        else:
            out |= {"code": answer.code, "message": answer.message}
        if answer.data:
            out["data"] = _b64(answer.data)
        return web.json_response(out)

    async def _send(self, prepare: Prepare, route: str) -> Fulfill | Reject | web.Response:
        if prepare.amount and not self.allow_send:
            return _error(
                403,
                f"POST {route} with an amount moves value outside any spending policy, so it "
                "is off: set admin.allow_send: true in the node's config to allow it (packets "
                "of amount 0 are always allowed)",
            )
        answer = await self.node.connector.send(prepare)
        if not isinstance(answer, Fulfill | Reject):
            return _error(502, "the next hop answered with a Prepare")
        return answer

    async def peers(self, request: web.Request) -> web.Response:
        connector = self.node.connector
        out = []
        for name, peer in sorted(connector.peers.items()):
            link = connector.links.get(name)
            out.append(
                {
                    "account": name,
                    "relation": peer.relation,
                    "asset_code": peer.asset_code,
                    "asset_scale": peer.asset_scale,
                    "max_packet_amount": peer.max_packet_amount,
                    "connected": link is not None and not link.closed.is_set(),
                }
            )
        return web.json_response(out)

    async def add_peer(self, request: web.Request) -> web.Response:
        body: AddPeerRequest = await _body(request, AddPeerRequest)
        if body.account in self.node.connector.peers:
            return _error(409, f"peer {body.account} exists; DELETE it first to change it")
        config = PeerConfig.model_validate(body.model_dump(exclude={"account"}))
        owner = self.node.token_owner(config.token_env)
        if owner is not None and owner != body.account:
            return _error(
                400,
                f"token_env {config.token_env} holds {owner}'s token, and a peer's token is "
                f"sent to its url: give {body.account} its own variable (e.g. "
                f"{body.account.upper()}_BTP_TOKEN) or its token inline as token",
            )
        try:
            await self.node.add_peer(body.account, config)
        except ConfigError as exc:
            return _error(400, str(exc))
        return web.json_response({"account": body.account}, status=201)

    async def remove_peer(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        if not await self.node.connector.remove_peer(account):
            return _error(404, f"no peer {account}")
        self.node.tokens.pop(account, None)
        self.node.token_envs.pop(account, None)
        for server in self.node.connector._servers:
            server.accounts.pop(account, None)
        return web.Response(status=204)

    async def routes(self, request: web.Request) -> web.Response:
        items = self.node.connector.routes.items()
        return web.json_response([{"prefix": p, "account": a} for p, a in items])

    async def add_route(self, request: web.Request) -> web.Response:
        body: RouteRequest = await _body(request, RouteRequest)
        if body.account not in self.node.connector.peers:
            return _error(400, f"no peer {body.account}")
        self.node.connector.routes.add(body.prefix, body.account)
        return web.json_response({"prefix": body.prefix, "account": body.account}, status=201)

    async def remove_route(self, request: web.Request) -> web.Response:
        prefix = request.match_info["prefix"]
        if prefix not in dict(self.node.connector.routes.items()):
            return _error(404, f"no route {prefix}")
        self.node.connector.routes.remove(prefix)
        return web.Response(status=204)

    async def balances(self, request: web.Request) -> web.Response:
        ledger = self.node.connector.ledger
        return web.json_response(
            {name: asdict(ledger.account(name)) for name in sorted(self.node.connector.peers)}
        )
