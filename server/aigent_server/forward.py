"""Any server of a fleet answers for every agent: a request for an agent that runs on another
server is passed to that server (its URL from the shared ``servers`` table) and its answer
passed back, streamed (a streamed reply, live events). The caller's credentials go with it
unchanged: sessions and API keys are shared, so the other server checks them the same way.

One hop only: a forwarded request carries ``x-aigent-forwarded`` and is never forwarded again
(two servers that each think the other runs the agent answer 409 rather than loop). Starting
and stopping an agent are not forwarded: they change the shared registry, which any server
does, and a start through a server with the lease free runs the agent there.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    import httpx

    from aigent_server.fleet import Fleet

log = logging.getLogger("aigent.server")

MARK = b"x-aigent-forwarded"
_PATH = re.compile(r"^/api/agents/([^/]+)/(?!(?:start|stop)$)")
# Hop-by-hop headers (RFC 9110 7.6.1) and what httpx sets from the body it sends.
_DROP = {
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer",
    b"upgrade", b"content-length",
}  # fmt: skip


class Forward:
    """ASGI middleware: requests for agents run elsewhere go to the server that runs them."""

    def __init__(self, app: ASGIApp, fleet: Fleet) -> None:
        self.app, self.fleet = app, fleet
        self._client: httpx.AsyncClient | None = None
        """Made on the first request passed on; it lives as long as the server process."""

    def _target(self, scope: Scope) -> tuple[str, str] | None:
        """(the runner's name, its URL) when this request is for an agent run elsewhere."""
        leases = self.fleet.leases
        if leases is None or scope["type"] != "http":
            return None
        found = _PATH.match(scope["path"])
        if found is None:
            return None
        hosted = self.fleet.hosted.get(found.group(1))
        if hosted is None or hosted.agent is not None:
            return None
        if any(name == MARK for name, _ in scope["headers"]):
            return None  # one hop: the other server thought this one runs it
        runner = leases.runner(hosted.entry.name)
        url = leases.urls.get(runner) if runner else None
        if runner is None or url is None or runner == leases.name:
            return None
        return runner, url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._target(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        runner, url = target
        body = b""
        while True:  # the body is small (the limits middleware bounds it)
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _DROP]
        headers.append((MARK, self.fleet.leases.name.encode() if self.fleet.leases else b"?"))
        target_url = url.rstrip("/") + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            target_url += "?" + scope["query_string"].decode("latin-1")
        import httpx  # here: `aigent --help` loads this module and must stay light

        if self._client is None:
            timeout = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=5.0)
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        request = self._client.build_request(
            scope["method"], target_url, headers=headers, content=body
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("fleet: server %s did not answer a forwarded request: %s", runner, exc)
            await _json(send, 502, f"the agent runs on server {runner}, which did not answer")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _DROP],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx.HTTPError as exc:  # the other server went away mid-answer
            log.warning("fleet: server %s broke off a forwarded answer: %s", runner, exc)
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


async def _json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
