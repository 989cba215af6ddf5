"""The route a busy server answers most, ``POST /api/agents/{name}/messages`` for a JSON reply,
served as plain ASGI in front of FastAPI's routing.

FastAPI's per-request machinery (routing through every route, solving the dependencies, reading
and validating the body, encoding the answer) cost about 0.4 ms a message here, most of what
the HTTP door added to a chat. This does the same steps directly, with the same functions: the
caller from :class:`Auth` (token, or session and CSRF header), the agent from the fleet (404 for
another user's), the body checked by :class:`MessageIn` (422 in FastAPI's shape), the reply
from :func:`reply_json`. It sits inside the rate limit and body cap; everything else (a
streamed reply, every other route, the OpenAPI schema that documents this one) is FastAPI's.
"""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from aigent_server.auth import SESSION_COOKIE, Auth, AuthError
from aigent_server.fleet import Fleet, FleetError, Hosted

if TYPE_CHECKING:
    from aigent import Reply

_PATH = re.compile(r"^/api/agents/([^/]+)/messages$")
_JSON = [(b"content-type", b"application/json")]


class MessageIn(BaseModel):
    text: str = Field(min_length=1, max_length=32_000)
    user: str = Field(default="user", min_length=1, max_length=200)
    room: str = Field(default="default", min_length=1, max_length=200)


def reply_fields(reply: Reply) -> dict[str, Any]:
    return {
        "id": reply.message_id,
        "text": reply.text,
        "model": reply.model,
        "usage": reply.usage.model_dump(),
        "timings": reply.timings,
        "receipts": reply.receipts,
    }


async def reply_json(fleet: Fleet, hosted: Hosted, message: MessageIn) -> bytes:
    """The message through the fleet, and the reply as the API's JSON."""
    reply = await fleet.chat(hosted, message.text, message.user, message.room)
    return json.dumps(reply_fields(reply)).encode()


class MessageDoor:
    def __init__(self, app: ASGIApp, fleet: Fleet, auth: Auth) -> None:
        self.app, self.fleet, self.auth = app, fleet, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            _PATH.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if found is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"text/event-stream" in headers.get(b"accept", b""):
            await self.app(scope, receive, send)  # a streamed reply: FastAPI's route
            return
        try:
            status, body = 200, await self._answer(found.group(1), headers, receive)
        except (AuthError, FleetError) as exc:
            status, body = exc.status, json.dumps({"detail": str(exc)}).encode()
        except ValidationError as exc:
            problems = exc.errors(include_url=False, include_context=False)
            for problem in problems:  # where FastAPI says it is: in the body
                problem["loc"] = ("body", *problem["loc"])
            status, body = 422, json.dumps({"detail": problems}, default=str).encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode()), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, name: str, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        from urllib.parse import unquote

        authorization = headers.get(b"authorization")
        csrf = headers.get(b"x-csrf-token")
        who = self.auth.caller(
            authorization.decode("latin-1") if authorization else None,
            _cookie(headers.get(b"cookie")),
            "POST",
            csrf.decode("latin-1") if csrf else None,
        )
        hosted = self.fleet.get(unquote(name), who.owner)
        message = MessageIn.model_validate_json(await _body(receive))
        return await reply_json(self.fleet, hosted, message)


def _cookie(header: bytes | None) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header.decode("latin-1"))
    except Exception:  # a malformed cookie header: as if none was sent
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
