"""SPSP (RFC 9) over real local HTTP: our server, our client, and payment pointers (RFC 26)."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aigent_connector.spsp import SpspError, SpspServer, pointer_to_url, resolve, resolve_details
from aigent_connector.stream import StreamReceiver, stream_pay
from aiohttp import web

ACCEPT = {"Accept": "application/spsp4+json"}


@pytest.fixture
def paid() -> list[tuple[str | None, int]]:
    return []


@pytest.fixture
async def server(paid: list[tuple[str | None, int]]) -> AsyncIterator[SpspServer]:
    receiver = StreamReceiver(
        "test.agent", os.urandom(32), on_money=lambda tag, amount: paid.append((tag, amount))
    )
    async with SpspServer(receiver, {"/.well-known/pay": None, "/alice": "alice"}) as spsp:
        yield spsp


async def test_the_server_answers_spsp4_json(
    server: SpspServer, paid: list[tuple[str | None, int]]
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/alice", headers=ACCEPT) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/spsp4+json"
            assert response.headers["Cache-Control"] == "max-age=60"
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            body = await response.json(content_type=None)
    assert set(body) == {"destination_account", "shared_secret"}
    assert body["destination_account"].startswith("test.agent.")
    secret = base64.b64decode(body["shared_secret"])
    assert len(secret) == 32
    # The credentials pay the receiver, and the path's tag comes back with the money.
    receiver = server.receiver
    result = await stream_pay(receiver.handle, body["destination_account"], secret, 42)
    assert result.delivered == 42 and paid == [("alice", 42)]


async def test_each_request_gets_fresh_credentials(server: SpspServer) -> None:
    first = await resolve(f"{server.url}/.well-known/pay")
    second = await resolve(f"{server.url}/.well-known/pay")
    assert first.destination_account != second.destination_account
    assert first.shared_secret != second.shared_secret


async def test_unknown_paths_are_404_and_other_types_406(server: SpspServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/nobody", headers=ACCEPT) as response:
            assert response.status == 404
            assert (await response.json())["id"] == "InvalidReceiverError"
        async with http.get(f"{server.url}/alice", headers={"Accept": "text/html"}) as response:
            assert response.status == 406
        async with http.options(f"{server.url}/alice") as response:  # CORS preflight
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "GET" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(
    ("pointer", "url"),
    [
        ("$example.com", "https://example.com/.well-known/pay"),
        ("$example.com/alice", "https://example.com/alice"),
        ("$example.com:8443/p/q", "https://example.com:8443/p/q"),
        ("https://example.com/x", "https://example.com/x"),
        ("http://127.0.0.1:8080/pay", "http://127.0.0.1:8080/pay"),
    ],
)
def test_payment_pointers_map_to_urls(pointer: str, url: str) -> None:
    assert pointer_to_url(pointer) == url


@pytest.mark.parametrize("bad", ["example.com", "$", "$/path", "ftp://example.com"])
def test_bad_pointers_are_refused(bad: str) -> None:
    with pytest.raises(SpspError, match="payment pointer"):
        pointer_to_url(bad)


@pytest.fixture
async def bad_server() -> AsyncIterator[str]:
    """A local HTTP server answering the ways a broken SPSP server does."""
    good_secret = base64.b64encode(bytes(32)).decode()
    answers = {
        "/not-json": web.Response(text="<html>hi</html>"),
        "/list": web.json_response([1, 2]),
        "/bad-address": web.json_response(
            {"destination_account": "nope", "shared_secret": good_secret}
        ),
        "/short-secret": web.json_response(
            {"destination_account": "test.x.y", "shared_secret": base64.b64encode(b"1").decode()}
        ),
        "/no-secret": web.json_response({"destination_account": "test.x.y"}),
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        return answers.get(request.path) or web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/not-json", "did not answer JSON"),
        ("/list", "not a JSON object"),
        ("/bad-address", "not an ILP address"),
        ("/short-secret", "1 bytes, not 32"),
        ("/no-secret", "shared_secret is missing"),
        ("/error", "HTTP 500"),
    ],
)
async def test_broken_servers_get_clear_errors(bad_server: str, path: str, message: str) -> None:
    with pytest.raises(SpspError, match=message):
        await resolve(bad_server + path)


async def test_an_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SpspError, match="could not reach"):
        await resolve(f"http://127.0.0.1:{port}/pay", timeout=2)


async def test_extra_fields_travel_beside_the_spsp_ones() -> None:
    receiver = StreamReceiver("test.agent", os.urandom(32))

    def extra() -> dict[str, object]:
        return {"aigent": {"price": 100}, "destination_account": "test.evil"}

    async with SpspServer(receiver, extra=extra) as spsp:
        credentials, body = await resolve_details(f"{spsp.url}/.well-known/pay")
    assert body["aigent"] == {"price": 100}
    assert credentials.destination_account.startswith("test.agent.")  # never overridden
    assert body["destination_account"] == credentials.destination_account
