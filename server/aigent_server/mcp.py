"""MCP over streamable HTTP for every hosted agent, at ``/mcp/<name>``, on the API's port.

Any MCP client reaches an agent unchanged: the tool ``ask`` (and the agent's actions when its
character sets ``settings.mcp.expose_actions``), built by aigent-mcp, the same server
``aigent mcp serve`` runs over stdio. A request needs what the REST API needs (the Bearer
token, or a signed-in session with its CSRF header), and sees only its caller's agents.

Each agent gets the SDK's session manager on first use; its task group runs in a task of its
own until the server stops. The SDK is imported only then, so a server no MCP client talks to
does not carry it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from aigent_server.auth import SESSION_COOKIE, Auth, AuthError
from aigent_server.fleet import Fleet, FleetError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from aigent import Agent, Incoming, Reply

PATH = "/mcp/{name}"


class _Door:
    """One agent's session manager, run in its own task (the SDK's task group must be entered
    and left by one task)."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await self._closing.wait()

    async def ready(self) -> None:
        waiter = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            waiter.cancel()
            self._task.result()  # raises what stopped it

    async def close(self) -> None:
        self._closing.set()
        await asyncio.gather(self._task, return_exceptions=True)


class McpDoors:
    """The ASGI endpoint behind ``/mcp/<name>``."""

    def __init__(self, fleet: Fleet, auth: Auth) -> None:
        self.fleet = fleet
        self.auth = auth
        self._doors: dict[str, _Door] = {}
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            who = self.auth.caller(
                request.headers.get("authorization"),
                request.cookies.get(SESSION_COOKIE),
                request.method,
                request.headers.get("x-csrf-token"),
            )
            name = self.fleet.get(scope["path_params"]["name"], who.owner).entry.name
        except AuthError as exc:
            headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
            await JSONResponse({"detail": str(exc)}, exc.status, headers)(scope, receive, send)
            return
        except FleetError as exc:
            await JSONResponse({"detail": str(exc)}, exc.status)(scope, receive, send)
            return
        door = await self._door(name)
        await door.manager.handle_request(scope, receive, send)

    async def _door(self, name: str) -> _Door:
        async with self._lock:
            door = self._doors.get(name)
            if door is None:
                door = self._doors[name] = _Door(self._manager(name))
        await door.ready()
        return door

    def _manager(self, name: str) -> StreamableHTTPSessionManager:
        from aigent_mcp.serve import Unavailable, agent_server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        fleet = self.fleet

        async def running() -> Agent:
            hosted = fleet.hosted.get(name)
            if hosted is None or hosted.agent is None or hosted.state != "running":
                state = hosted.state if hosted is not None else "gone"
                raise Unavailable(f"agent {name!r} is {state}: start it first")
            return hosted.agent

        def expose_actions(agent: Agent) -> bool:
            settings = agent.character.settings.get("mcp")
            return isinstance(settings, dict) and settings.get("expose_actions") is True

        async def answer(agent: Agent, message: Incoming) -> Reply:
            # Through the fleet, so an ask over MCP is in the history and the live events.
            hosted = fleet.hosted.get(name)
            if hosted is None or hosted.agent is not agent:
                raise Unavailable(f"agent {name!r} restarted or left: ask again")
            try:
                return await fleet.chat(
                    hosted, message.text, message.user, message.room, client=message.client
                )
            except FleetError as exc:
                raise Unavailable(str(exc)) from None

        hosted = fleet.hosted.get(name)
        bio = hosted.character.bio if hosted is not None and hosted.character else []
        server = agent_server(
            name,
            running,
            actions=expose_actions,
            description=" ".join(bio)[:300] or None,
            answer=answer,
        )
        return StreamableHTTPSessionManager(app=server)

    async def close(self) -> None:
        doors, self._doors = list(self._doors.values()), {}
        await asyncio.gather(*(d.close() for d in doors))


def mount(app: FastAPI) -> None:
    """Serve ``/mcp/<name>`` on ``app`` (made by ``create_app``), closed when it stops."""
    doors = McpDoors(app.state.fleet, app.state.auth)
    app.router.routes.append(Route(PATH, doors, methods=["GET", "POST", "DELETE"]))
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            try:
                yield state
            finally:
                await doors.close()  # before the fleet stops the agents

    app.router.lifespan_context = lifespan
