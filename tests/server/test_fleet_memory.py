"""Memory on a shared Chroma server (``memory.url``) for a fleet: an agent remembers on one
``aigent serve``, that server is SIGKILLed, and the agent, started on the other server (another
data directory, another disk), recalls it. Real PostgreSQL, a real ``chroma run``, real
servers; loopback only."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.connector.postgres_server import Server
from tests.connector.test_postgres_store import pg  # noqa: F401  (the session's server)
from tests.fixtures.openai_server import OpenAIServer
from tests.plugins.chroma.test_memory import chroma_server  # noqa: F401  (a real `chroma run`)
from tests.server.conftest import character
from tests.server.test_command import free_port
from tests.server.test_fleet_postgres import (  # noqa: F401
    LEASE,
    TOKEN,
    _running_on,
    _serve,
    schema,
    stop,
)

pytestmark = pytest.mark.slow


def _chat(port: int, text: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/api/agents/Rememberer/messages",
        json={"text": text, "user": "ann"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )


def test_an_agent_that_moves_recalls_what_it_remembered_on_the_dead_server(
    pg: Server,  # noqa: F811
    schema: str,  # noqa: F811
    tmp_path: Path,
    model: OpenAIServer,
    chroma_server: str,  # noqa: F811
) -> None:
    folder = tmp_path / "characters"
    folder.mkdir()
    memory = {"url": chroma_server, "flush_seconds": 0.1, "top_k": 3}
    data = character(model, "Rememberer", memory=memory)
    (folder / "rememberer.json").write_text(json.dumps(data), encoding="utf-8")

    ports = free_port(), free_port()
    servers = [_serve(folder, tmp_path / f"data{k}", ports[k], pg, schema) for k in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not (_running_on(ports[0]) | _running_on(ports[1])):
            for process in servers:
                assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.2)
        first = 0 if _running_on(ports[0]) else 1
        told = _chat(ports[first], "the launch code word is marmalade")
        assert told.status_code == 200, told.text
        # Written behind the reply (flush_seconds): give it a few flushes before the kill.
        time.sleep(1.0)

        servers[first].send_signal(signal.SIGKILL)
        servers[first].wait(timeout=10)
        other = ports[1 - first]
        while "Rememberer" not in _running_on(other):
            assert time.monotonic() < deadline + 2 * LEASE, "the agent did not move"
            time.sleep(0.2)
        model.requests.clear()
        asked = _chat(other, "what is the launch code word?")
        assert asked.status_code == 200, asked.text
        prompt = json.dumps(model.requests[-1].body)
        assert "marmalade" in prompt, prompt
        # Not from the new server's disk: it never had the conversation.
        assert not list((tmp_path / f"data{1 - first}").rglob("chroma.sqlite3"))
    finally:
        stop(servers)
