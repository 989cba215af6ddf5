"""SPSP (RFC 9): how a payer learns where and how to pay, over HTTPS.

``GET`` on a payment pointer's URL with ``Accept: application/spsp4+json`` answers
``{"destination_account", "shared_secret"}`` (STREAM credentials, the secret in base64).
:class:`SpspServer` serves them from a :class:`~aigent_connector.stream.StreamReceiver`;
:func:`resolve` is the client. Payment pointers (RFC 26): ``$host/path`` is
``https://host/path`` and ``$host`` is ``https://host/.well-known/pay``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from aigent_connector.errors import ConnectorError
from aigent_connector.packets import valid_address
from aigent_connector.stream.receiver import Credentials, StreamReceiver

CONTENT_TYPE = "application/spsp4+json"
WELL_KNOWN = "/.well-known/pay"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Web-Monetization-Id",
}


class SpspError(ConnectorError):
    """A payment pointer that could not be resolved; the message says what went wrong."""


def pointer_to_url(pointer_or_url: str) -> str:
    """The URL behind a payment pointer; http(s) URLs pass through (http is for local use)."""
    text = pointer_or_url.strip()
    if text.startswith(("https://", "http://")):
        return text
    if not text.startswith("$") or len(text) < 2 or text[1] == "/":
        raise SpspError(
            f"{pointer_or_url!r} is neither a payment pointer ($host/path) nor an http(s) URL"
        )
    host, slash, path = text[1:].partition("/")
    return f"https://{host}{slash + path if slash else WELL_KNOWN}"


async def resolve(
    pointer_or_url: str,
    *,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 10,  # noqa: ASYNC109 - passed on to aiohttp as its request timeout
) -> Credentials:
    """Ask the receiver behind a payment pointer (or SPSP URL) for STREAM credentials."""
    credentials, _ = await resolve_details(pointer_or_url, session=session, timeout=timeout)
    return credentials


MAX_RESPONSE = 16 * 1024
"""An SPSP answer is two short fields (and an aigent's price): anything larger is refused."""


async def resolve_details(
    pointer_or_url: str,
    *,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 10,  # noqa: ASYNC109 - passed on to aiohttp as its request timeout
) -> tuple[Credentials, dict[str, Any]]:
    """Like :func:`resolve`, plus the whole JSON body (servers may add fields beside the two
    SPSP ones, such as an aigent's price)."""
    url = pointer_to_url(pointer_or_url)
    headers = {"Accept": f"{CONTENT_TYPE}, application/spsp+json"}
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        # No redirects (the address asked for is the one that answers, never another host),
        # a bounded body and a bounded time: the URL may come from a model or a stranger.
        async with client.get(
            url,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            if response.status != 200:
                raise SpspError(f"{url} answered HTTP {response.status}, not an SPSP answer")
            body = await response.content.read(MAX_RESPONSE + 1)
            if len(body) > MAX_RESPONSE:
                raise SpspError(f"{url} answered more than {MAX_RESPONSE} bytes")
            text = body.decode("utf-8", errors="replace")
    except aiohttp.ClientError as exc:
        raise SpspError(f"could not reach {url}: {exc}") from None
    except TimeoutError:
        raise SpspError(f"{url} did not answer within {timeout}s") from None
    finally:
        if own:
            await client.close()
    return parse_response(text, url)


def parse_response(text: str, url: str = "the SPSP server") -> tuple[Credentials, dict[str, Any]]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        raise SpspError(f"{url} did not answer JSON") from None
    if not isinstance(body, dict):
        raise SpspError(f"{url} answered {type(body).__name__}, not a JSON object")
    destination, secret = body.get("destination_account"), body.get("shared_secret")
    if not isinstance(destination, str) or not valid_address(destination):
        raise SpspError(f"{url}: destination_account {destination!r} is not an ILP address")
    if not isinstance(secret, str):
        raise SpspError(f"{url}: shared_secret is missing")
    try:
        raw = base64.b64decode(secret + "=" * (-len(secret) % 4), altchars=b"-_")
    except (binascii.Error, ValueError):
        raise SpspError(f"{url}: shared_secret is not base64") from None
    if len(raw) != 32:
        raise SpspError(f"{url}: shared_secret is {len(raw)} bytes, not 32")
    return Credentials(destination, raw), body


class SpspServer:
    """Serves fresh STREAM credentials at each path in ``paths`` (path -> connection tag, so
    payments to different pointers can be told apart); 404 elsewhere. ``extra()``, if given,
    adds fields to each answer (never replacing the two SPSP ones). Bound to localhost by
    default; put it behind HTTPS for the public (payment pointers always mean https)."""

    def __init__(
        self,
        receiver: StreamReceiver,
        paths: Mapping[str, str | None] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cache_control: str = "max-age=60",
        extra: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.receiver = receiver
        self.extra = extra
        self.paths: dict[str, str | None] = dict(paths or {WELL_KNOWN: None})
        self.host, self.port, self.cache_control = host, port, cache_control
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL, once started (``http://127.0.0.1:<port>``)."""
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._get)
        app.router.add_route("OPTIONS", "/{tail:.*}", self._options)
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the real port when 0 asked for any free one
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SpspServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _options(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=CORS)

    async def _get(self, request: web.Request) -> web.Response:
        if request.path not in self.paths:
            return web.json_response(
                {"id": "InvalidReceiverError", "message": f"no receiver at {request.path}"},
                status=404,
                headers=CORS,
            )
        if not _accepts_spsp(request.headers.get("Accept", "")):
            return web.json_response(
                {"id": "NotAcceptable", "message": f"ask with Accept: {CONTENT_TYPE}"},
                status=406,
                headers=CORS,
            )
        destination, secret = self.receiver.credentials(self.paths[request.path])
        body: dict[str, Any] = dict(self.extra()) if self.extra is not None else {}
        body |= {
            "destination_account": destination,
            "shared_secret": base64.b64encode(secret).decode("ascii"),
        }
        headers = {**CORS, "Cache-Control": self.cache_control}
        # JSON is UTF-8 by definition; the bare media type is what RFC 9 shows.
        return web.Response(
            body=json.dumps(body).encode(), content_type=CONTENT_TYPE, headers=headers
        )


def _accepts_spsp(accept: str) -> bool:
    if not accept.strip():
        return True
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(types & {CONTENT_TYPE, "application/spsp+json", "*/*", "application/*"})
