"""`ask`/`pay` and the `ask_agent` action against a hostile receiver or a model-chosen URL.

The receiver's address may come from a model (or a stranger it read): the allowlist is checked
before anything is fetched, redirects are never followed, the SPSP answer is bounded in size
and time, and a stranger's body is never shown to the model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aigent_connector.spsp import SpspError, resolve_details

from aigent import Agent, SpendDenied
from tests.node.test_paid_messages import character


class Hostile:
    """An HTTP server on loopback that redirects, or answers a huge body; counts requests."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("location", "http://127.0.0.2:9/steal")
                    self.end_headers()
                    return
                body = b'{"destination_account": "' + b"x" * 200_000 + b'"}'
                self.send_response(200)
                self.send_header("content-type", "application/spsp4+json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.server.shutdown()
    server.server.server_close()


async def test_a_redirect_is_never_followed(hostile: Hostile) -> None:
    with pytest.raises(SpspError, match="answered HTTP 302") as raised:
        await resolve_details(f"{hostile.url}/redirect")
    assert hostile.requests == ["/redirect"]
    assert "steal" not in str(raised.value)


async def test_a_huge_answer_is_refused_and_not_echoed(hostile: Hostile) -> None:
    with pytest.raises(SpspError, match="more than 16384 bytes") as raised:
        await resolve_details(f"{hostile.url}/big")
    assert "xxxx" not in str(raised.value)


async def test_a_receiver_off_the_allowlist_is_refused_before_anything_is_fetched(
    hostile: Hostile, write_character: Any, tmp_path: Path
) -> None:
    limits = {"XRP": {"max_per_payment": 5000, "allowlist": ["https://friends.example/"]}}
    path = write_character(character("Alice", tmp_path, spending=limits), "alice.json")
    async with Agent.from_file(path) as alice:
        with pytest.raises(SpendDenied, match=r"not on spending\.XRP\.allowlist"):
            await alice.ask(f"{hostile.url}/pay", "hi", max_price=1000)
        with pytest.raises(SpendDenied, match=r"not on spending\.XRP\.allowlist"):
            await alice.pay(f"{hostile.url}/pay", 1000)
        result = await alice.run_action(
            "ask_agent", {"receiver": f"{hostile.url}/x", "question": "hi", "max_price": 10}
        )
    assert not result.ok and "allowlist" in result.output
    assert hostile.requests == []  # nothing was fetched
