"""Chroma as the store for memory shared across hosts (a real `chroma run` server), and when
Chroma is chosen. What every store does is tested on Chroma too, in tests/plugins/memory."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigent import Agent, Incoming
from tests.conftest import SCRIPTED_MODEL


@pytest.fixture
def memory_character(write_character, tmp_path):  # type: ignore[no-untyped-def]
    def make(**fields: Any) -> Path:
        data: dict[str, Any] = {
            "name": "Rememberer",
            "models": {"large": "scripted"},
            "plugins": [str(SCRIPTED_MODEL)],
            "data_dir": str(tmp_path / "data"),
            "memory": {"top_k": 3},
        }
        data.update(fields)
        return write_character(data)

    return make


def test_chroma_is_chosen_for_a_server_or_by_name_and_sqlite_otherwise(
    memory_character, tmp_path
) -> None:
    """Which store is used, with both installed: deterministic, and chromadb is imported only
    when Chroma is used."""

    def chosen(memory: dict[str, Any], env: dict[str, str] | None = None) -> str:
        path = memory_character(memory=memory, connector={"enabled": False})
        code = (
            "import sys\nfrom aigent import Agent\n"
            f"agent = Agent.from_file({str(path)!r})\n"
            "agent.plugins.load_installed()\n"
            "from aigent.memory import choose_store\n"
            "stores = agent.plugins.named('register_memory_stores')\n"
            "print(agent.character.memory.store or choose_store(stores, agent.ctx),\n"
            "      'chromadb' in sys.modules)\n"
        )
        environment = {k: v for k, v in __import__("os").environ.items() if k != "CHROMA_URL"}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
            env={**environment, **(env or {})}, check=True,
        )  # fmt: skip
        return out.stdout.strip()

    assert chosen({}) == "sqlite False"
    assert chosen({"url": "http://127.0.0.1:1"}) == "chroma False"
    assert chosen({}, {"CHROMA_URL": "http://127.0.0.1:1"}) == "chroma False"
    assert chosen({"store": "chroma"}) == "chroma False"
    assert chosen({"store": "sqlite", "url": "http://127.0.0.1:1"}) == "sqlite False"


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(tmp_path / "server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "chroma did not start"
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
async def test_shared_memory_on_a_chroma_server(memory_character, chroma_server, tmp_path) -> None:
    first = memory_character(memory={"url": chroma_server}, data_dir=str(tmp_path / "a"))
    async with Agent.from_file(first) as agent:
        await agent.chat("the launch code word is marmalade", user="ann")
    # Another host (another data directory) sees the same memory through the server.
    second = memory_character(memory={"url": chroma_server}, data_dir=str(tmp_path / "b"))
    agent = Agent.from_file(second)
    agent.assemble()
    found = await agent.memory.recall(
        Incoming(text="what is the launch code word?", user="ann"), "Rememberer"
    )
    assert any("marmalade" in r.text for r in found)
    assert not (tmp_path / "b" / "chroma").exists()
