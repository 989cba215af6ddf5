"""The HTTP face of the server: the REST API (OpenAPI at ``/api/openapi.json``), live events
over SSE, sign-in, and the web app's static files, all on one port."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from aigent_server.a2a import mount as mount_a2a
from aigent_server.anchors import VerifyError, check
from aigent_server.auth import SESSION_COOKIE, Auth, AuthError, Caller
from aigent_server.confine import Hosts
from aigent_server.events import KINDS, Event, EventBus
from aigent_server.fleet import Fleet, FleetError, Hosted
from aigent_server.fleet_events import Relay
from aigent_server.forward import Forward
from aigent_server.hot import MessageDoor, MessageIn, reply_fields, reply_json
from aigent_server.limits import Limits
from aigent_server.mcp import mount as mount_mcp
from aigent_server.registry import OPERATOR
from aigent_server.sessions import SESSION_SECONDS, Sessions
from aigent_server.watch import Watcher

log = logging.getLogger("aigent.server")
STATIC = Path(__file__).parent / "static"
SUFFIXES = (".json", ".yaml", ".yml")
KEEPALIVE = 15.0


@dataclass
class Settings:
    data_dir: Path
    files: list[Path] = field(default_factory=list)
    """Character files to host, owned by the operator (a directory's files, already listed)."""
    token: str | None = None
    """The operator's API token (``AIGENT_SERVE_TOKEN``); None: no token works."""
    admins: frozenset[str] = frozenset()
    """Wallet addresses that sign in as the operator (and so see the file-loaded agents)."""
    max_body: int = 1 << 20
    rate: float = 20.0
    burst: int = 200
    confirm_timeout: float = 300.0
    secure_cookies: bool = False
    """Mark the session cookie Secure (behind HTTPS)."""
    watch: list[Path] = field(default_factory=list)
    """Directories whose character files come, change and go while the server runs."""
    watch_seconds: float = 1.0
    allow_hosts: tuple[str, ...] = ()
    """Hosts (``name`` or ``name:port``) uploaded characters may reach besides the public API
    hosts aigent knows (see aigent_server.confine)."""
    share_env: tuple[str, ...] = ()
    """Names in the server's environment uploaded characters may read besides model keys."""
    a2a_default: str | None = None
    """The agent whose A2A card is /.well-known/agent-card.json (None: the operator's only one)."""
    database_url: str | None = field(default=None, repr=False)
    """PostgreSQL shared by the installation's servers (a secret); None: SQLite in data_dir."""
    database_schema: str = "aigent"
    lease_seconds: float = 15.0
    server_name: str | None = None
    """How this server is named in the fleet (default: host name and process id)."""
    server_url: str | None = None
    """Where the fleet's other servers reach this one (requests for its agents go there)."""


class ChallengeIn(BaseModel):
    address: str


class VerifyIn(BaseModel):
    nonce: str
    signature: str


class ReceiptIn(BaseModel):
    receipt: dict[str, Any]
    """A message's TRN receipt (``receipts.trn`` of a reply)."""
    text: str | None = None
    """The message's text, when the caller wants it checked against the receipt too."""


class ConfirmIn(BaseModel):
    approve: bool


class PatchIn(BaseModel):
    desired: str | None = Field(default=None, pattern="^(running|stopped)$")


# Both dependencies are async though they never await: FastAPI runs a plain ``def`` one in its
# thread pool, two thread hops on every request (most of what the door added to a chat), and
# the sessions they read are the event loop's.
async def _caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> Caller:
    auth: Auth = request.app.state.auth
    return auth.caller(
        authorization, request.cookies.get(SESSION_COOKIE), request.method, x_csrf_token
    )


Who = Annotated[Caller, Depends(_caller)]


async def _hosted(name: str, who: Who, request: Request) -> Hosted:
    fleet: Fleet = request.app.state.fleet
    return fleet.get(name, who.owner)


Agent = Annotated[Hosted, Depends(_hosted)]


def create_app(settings: Settings) -> FastAPI:
    from aigent_server import apikeys, database, forms, leases, servers

    bus = EventBus()
    db = database.open_database(settings.data_dir, settings.database_url, settings.database_schema)
    fleet = Fleet(
        settings.data_dir,
        bus,
        settings.confirm_timeout,
        Hosts(settings.allow_hosts),
        settings.share_env,
        db,
    )
    if isinstance(db, database.PostgresDatabase):
        fleet.leases = leases.Leases(
            fleet, db, settings.server_name, settings.lease_seconds, settings.server_url
        )

    auth = Auth(
        settings.token, Sessions(fleet.registry), apikeys.ApiKeys(fleet.registry), settings.admins
    )
    if fleet.leases is not None:  # sign-ins made on the other servers, too
        fleet.leases.followers += [auth.sessions.reload, auth.keys.reload]
    starting: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for file in settings.files:
            await fleet.add(file, OPERATOR, uploaded=False)
        # Agents start behind the server's own start: health answers while a slow one loads.
        tasks = [asyncio.create_task(fleet.start_desired())]
        relay = None
        if fleet.leases is not None:
            tasks.append(asyncio.create_task(fleet.leases.run()))
            assert isinstance(db, database.PostgresDatabase)
            held = fleet.leases  # the other servers' agents' events, and ours to them
            relay = Relay(bus, db, held.id, lambda: any(
                s.healthy and s.id != held.id for s in held.servers))  # fmt: skip
            relay.start()
        if settings.watch:
            watcher = Watcher(fleet, settings.watch, SUFFIXES, settings.watch_seconds)
            tasks.append(asyncio.create_task(watcher.run()))
        for task in tasks:
            starting.add(task)
            task.add_done_callback(starting.discard)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # none mid-change at close
            await fleet.close()
            if relay is not None:
                await asyncio.to_thread(relay.close)

    app = FastAPI(
        title="aigent serve",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.fleet, app.state.bus, app.state.auth = fleet, bus, auth
    app.state.apikeys = auth.keys
    app.state.data_dir = settings.data_dir
    app.include_router(apikeys.router)
    app.include_router(forms.router)
    app.include_router(servers.router)
    mount_mcp(app)  # /mcp/<name>: MCP over streamable HTTP, behind the same sign-in
    mount_a2a(app, settings.a2a_default)  # A2A cards and JSON-RPC at /a2a/<name>
    # Added first, so it runs inside the rate limit and the body cap added next.
    app.add_middleware(MessageDoor, fleet=fleet, auth=auth)
    app.add_middleware(Forward, fleet=fleet)  # before the door: it may be another server's
    app.add_middleware(Limits, rate=settings.rate, burst=settings.burst, max_body=settings.max_body)

    @app.exception_handler(FleetError)
    async def fleet_error(request: Request, exc: FleetError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        challenge = {"www-authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=challenge)

    # --- health and sign-in (no credentials needed) ------------------------------------------

    @app.get("/api/health", tags=["server"])
    async def health() -> dict[str, Any]:
        states: dict[str, int] = {}
        for h in fleet.hosted.values():
            states[h.state] = states.get(h.state, 0) + 1
        return {"ok": True, "agents": states}

    @app.post("/api/auth/challenge", tags=["auth"])
    async def challenge(body: ChallengeIn, request: Request) -> dict[str, str]:
        """An EIP-4361-style message for the wallet to sign; valid for five minutes."""
        domain = request.headers.get("host", "localhost")
        message, nonce = auth.challenge(body.address, domain, str(request.base_url).rstrip("/"))
        return {"message": message, "nonce": nonce}

    @app.post("/api/auth/verify", tags=["auth"])
    async def verify(body: VerifyIn, response: Response) -> dict[str, str]:
        """Check the signed challenge and open a session (a cookie, plus a CSRF token to send
        back in the ``X-CSRF-Token`` header on every state-changing request)."""
        sid, session = await auth.verify(body.nonce, body.signature)
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            max_age=int(SESSION_SECONDS),
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
        )
        return {"address": session.owner, "csrf": session.csrf}

    @app.get("/api/auth/session", tags=["auth"])
    async def session(who: Who) -> dict[str, Any]:
        return {"owner": who.owner, "csrf": who.session.csrf if who.session else None}

    @app.post("/api/auth/logout", tags=["auth"])
    async def logout(who: Who, response: Response) -> dict[str, bool]:
        if who.session is not None:
            await auth.end(who.session)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return {"ok": True}

    # --- agents ------------------------------------------------------------------------------

    @app.get("/api/agents", tags=["agents"])
    async def list_agents(who: Who) -> list[dict[str, Any]]:
        return [fleet.describe(h) for h in fleet.visible(who.owner)]

    @app.post("/api/agents", tags=["agents"], status_code=201)
    async def create_agent(
        who: Who,
        request: Request,
        file: Annotated[UploadFile | None, File()] = None,
        start: Annotated[bool, Form()] = True,
    ) -> dict[str, Any]:
        """Upload a character file (aigent, ElizaOS 0.x/1.x or ZerePy; JSON or YAML), or send
        its fields as JSON (``name``, ``bio``, ``system``, ``model``, ``price``, ``spending``,
        ``template``, ...: see /api/templates). Either way a broken character gets 422 naming
        the field, as ``aigent validate`` would."""
        form = file is None
        filename: str | None
        if file is None:
            if "json" not in request.headers.get("content-type", ""):
                raise HTTPException(422, "send a character file (multipart: file) or JSON fields")
            filename, content, start = await forms.from_request(request)
        else:
            filename, content = file.filename, await file.read()
        created = await forms.install(
            settings.data_dir,
            filename,
            content,
            lambda source: fleet.add(
                source, who.owner, uploaded=True, desired="running" if start else "stopped"
            ),
            form=form,
        )
        if start:
            await fleet.start(created)
        return fleet.describe(created)

    @app.get("/api/agents/{name}", tags=["agents"])
    async def get_agent(agent: Agent) -> dict[str, Any]:
        return fleet.describe(agent)

    @app.patch("/api/agents/{name}", tags=["agents"])
    async def patch_agent(agent: Agent, body: PatchIn) -> dict[str, Any]:
        """Change what the server keeps the agent at (``desired``: running or stopped)."""
        if body.desired == "running":
            await fleet.start(agent)
        elif body.desired == "stopped":
            await fleet.stop(agent)
        return fleet.describe(agent)

    @app.put("/api/agents/{name}/character", tags=["agents"])
    async def replace_character(
        agent: Agent, file: Annotated[UploadFile, File()]
    ) -> dict[str, Any]:
        """A new character file for the agent (same name); a running agent restarts on it."""
        if not agent.entry.uploaded:
            raise HTTPException(
                409, "this agent is loaded from a file on the server: edit it there"
            )
        await forms.install(
            settings.data_dir,
            file.filename,
            await file.read(),
            lambda source: fleet.replace(agent, source),
        )
        return fleet.describe(agent)

    @app.delete("/api/agents/{name}", tags=["agents"], status_code=204)
    async def delete_agent(agent: Agent) -> Response:
        """Stop the agent and forget it (its data directory stays on disk)."""
        await fleet.remove(agent)
        return Response(status_code=204)

    @app.post("/api/agents/{name}/start", tags=["agents"])
    async def start_agent(agent: Agent) -> dict[str, Any]:
        return fleet.describe(await fleet.start(agent))

    @app.post("/api/agents/{name}/stop", tags=["agents"])
    async def stop_agent(agent: Agent) -> dict[str, Any]:
        return fleet.describe(await fleet.stop(agent))

    # --- messages ----------------------------------------------------------------------------

    @app.post(
        "/api/agents/{name}/messages",
        tags=["messages"],
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def message(agent: Agent, body: MessageIn, request: Request) -> Any:
        """Send a message; the reply with its model, usage, timings and receipts. With
        ``Accept: text/event-stream`` the text streams as ``text`` events, then a ``reply``."""
        if "text/event-stream" not in request.headers.get("accept", ""):
            # Served by MessageDoor (hot.py) in front of FastAPI; here when it is not there.
            return Response(await reply_json(fleet, agent, body), media_type="application/json")
        if agent.state != "running":
            raise FleetError(409, f"agent {agent.entry.name!r} is {agent.state}: start it first")
        return StreamingResponse(
            _streamed(fleet, agent, body), media_type="text/event-stream", headers=_NO_BUFFER
        )

    @app.get("/api/agents/{name}/messages", tags=["messages"])
    async def history(agent: Agent, room: str = "default", limit: int = 100) -> dict[str, Any]:
        """What the server saw in one room, oldest first, and the rooms there are."""
        limit = max(1, min(limit, 1000))
        return {
            "room": room,
            "messages": await fleet.registry.history(agent.entry.name, room, limit),
            "rooms": await fleet.registry.rooms(agent.entry.name),
        }

    @app.get("/api/agents/{name}/messages/{message_id}/receipt", tags=["anchors"])
    async def receipt(agent: Agent, message_id: str) -> dict[str, Any]:
        """The receipts a reply came with (by the reply's ``id``), as anchored so far."""
        return {"id": message_id, "receipts": await fleet.receipts(agent, message_id)}

    @app.post("/api/verify", tags=["anchors"])
    async def verify_receipt(who: Who, body: ReceiptIn) -> dict[str, Any]:
        """Check a receipt offline: the message hashes to its leaf, the proof leads to its root.
        ``verified`` stays false: the on-chain check is ``aigent verify``'s, with an RPC URL and
        the agent's registry and anchoring address."""
        try:
            return check(body.receipt, body.text)
        except VerifyError as exc:
            raise HTTPException(422, str(exc)) from None

    # --- memory ------------------------------------------------------------------------------

    @app.get("/api/agents/{name}/memory", tags=["memory"])
    async def memory_search(agent: Agent, q: str, k: int = 5) -> dict[str, Any]:
        """The agent's best matches for ``q`` in its conversations and knowledge, with scores."""
        if not q.strip():
            raise HTTPException(422, "q is empty: say what to look for")
        return {"query": q, "results": await fleet.search(agent, q, max(1, min(k, 50)))}

    @app.post("/api/agents/{name}/knowledge", tags=["memory"], status_code=201)
    async def add_knowledge(agent: Agent, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """A text or markdown file (up to 512 KiB) for the agent's knowledge, kept in its data
        directory and ingested at once (a file of the same name is replaced)."""
        return await fleet.add_knowledge(agent, file.filename, await file.read())

    # --- money -------------------------------------------------------------------------------

    @app.get("/api/agents/{name}/money", tags=["money"])
    async def money(agent: Agent) -> dict[str, Any]:
        """Earnings from paid messages, spending against limits, reservations on hold."""
        return await asyncio.to_thread(fleet.money, agent)

    @app.get("/api/agents/{name}/confirmations", tags=["money"])
    async def confirmations(agent: Agent) -> list[dict[str, Any]]:
        """Payments above ``confirm_above`` waiting for the owner's answer."""
        return fleet.confirmations(agent)

    @app.post("/api/agents/{name}/confirmations/{confirmation}", tags=["money"])
    async def confirm(agent: Agent, confirmation: str, body: ConfirmIn) -> dict[str, Any]:
        fleet.answer(agent, confirmation, body.approve)
        return {"id": confirmation, "approved": body.approve}

    # --- live events -------------------------------------------------------------------------

    @app.get(
        "/api/events", tags=["events"], responses={200: {"content": {"text/event-stream": {}}}}
    )
    async def events(
        who: Who, agent: str | None = None, kind: str | None = None, since: int = 0
    ) -> StreamingResponse:
        """Server-sent events for the caller's agents: the recent ones first, then live.
        ``kind`` filters by kind or by prefix (``message`` for ``message.in`` and ``.out``)."""
        if kind is not None and not any(k == kind or k.startswith(kind + ".") for k in KINDS):
            raise HTTPException(422, f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")

        def accept(event: Event) -> bool:
            return (
                event.id > since
                and who.owner in (OPERATOR, event.owner)
                and (agent is None or event.agent == agent)
                and (kind is None or event.kind == kind or event.kind.startswith(kind + "."))
            )

        return StreamingResponse(
            _event_stream(bus, accept), media_type="text/event-stream", headers=_NO_BUFFER
        )

    from aigent_server.money import router as money_routes  # here: it imports Agent from us

    app.include_router(money_routes)

    # --- the web app -------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    from aigent_server.digest import router as digest_router
    from aigent_server.tokens import router as tokens  # its routes use this module's dependencies
    from aigent_server.x402 import router as x402_router

    app.include_router(tokens)
    app.include_router(digest_router)  # what the agent watched (settings.watch)
    app.include_router(x402_router)  # /x402/<name>/messages: paid per message, no session
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


_NO_BUFFER = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _sse(event: str, data: Any, id: int | None = None) -> bytes:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _streamed(fleet: Fleet, agent: Hosted, body: MessageIn) -> AsyncIterator[bytes]:
    chunks: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(
        fleet.chat(agent, body.text, body.user, body.room, on_text=chunks.put_nowait)
    )
    try:
        while not task.done() or not chunks.empty():
            getter = asyncio.ensure_future(chunks.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield _sse("text", {"text": getter.result()})
            else:
                getter.cancel()
        try:
            reply = task.result()
        except FleetError as exc:
            yield _sse("error", {"detail": str(exc), "status": exc.status})
            return
        yield _sse("reply", reply_fields(reply))
    finally:
        if not task.done():
            # The client left mid-reply: the agent finishes (memory, hooks) without it.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def _event_stream(bus: EventBus, accept: Any) -> AsyncIterator[bytes]:
    with bus.subscription() as live:
        # Subscribed before reading the recent ones, so nothing falls between the two.
        recent = bus.recent(accept)
        seen = recent[-1].id if recent else 0
        yield b": connected\n\n"  # flushes the headers at once, so the client knows it is live
        for event in recent:
            yield _sse(event.kind, event.public(), event.id)
        while True:
            try:
                event = await asyncio.wait_for(live.get(), KEEPALIVE)
            except TimeoutError:
                yield b": keepalive\n\n"  # proxies drop idle connections
                continue
            if event.id > seen and accept(event):
                yield _sse(event.kind, event.public(), event.id)
