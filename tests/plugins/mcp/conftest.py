"""A real MCP server (tests/fixtures/mcp_server.py, written with the SDK) as a subprocess, over
stdio or streamable HTTP, and agents whose model is the OpenAI wire-format stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MCP_SERVER = Path(__file__).resolve().parents[2] / "fixtures" / "mcp_server.py"
TOKEN = "mcp-test-token-5f1c9a"


def stdio_server(**extra: Any) -> dict[str, Any]:
    """settings.mcp.servers.<name> for the test server over stdio."""
    return {"command": sys.executable, "args": [str(MCP_SERVER), "stdio"], **extra}


@dataclass
class HttpServer:
    url: str
    process: subprocess.Popen[str]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """The file the test server's ``buy`` writes to (``MCP_TEST_LEDGER`` in its environment:
    a stdio server gets only a default environment and what its settings give it)."""
    return tmp_path / "ledger.txt"


@pytest.fixture
def http_server(ledger: Path) -> Iterator[HttpServer]:
    """The test server over streamable HTTP, needing a bearer token; always stopped."""
    env = {**os.environ, "MCP_TEST_TOKEN": TOKEN, "MCP_TEST_LEDGER": str(ledger)}
    process = subprocess.Popen(
        [sys.executable, str(MCP_SERVER), "http"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "port <n>", once it listens
        if not line.startswith("port "):
            raise RuntimeError(f"the test MCP server did not start (it printed {line!r})")
        yield HttpServer(f"http://127.0.0.1:{int(line.split()[1])}/mcp", process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def mcp_character(
    write_character: Callable[..., Path], tmp_path: Path, openai_server: Any
) -> Callable[..., Path]:
    """An aigent character using aigent-mcp with ``servers``; its model is the stand-in."""

    def make(servers: dict[str, Any], **fields: Any) -> Path:
        data: dict[str, Any] = {
            "name": "Toolsmith",
            "bio": ["uses MCP tools"],
            "models": {"large": {"model": "openai/stand-in", "api_base": openai_server.url}},
            "plugins": ["mcp"],
            "secrets": {"OPENAI_API_KEY": "sk-test-mcp", "SHOP_TOKEN": TOKEN},
            "settings": {"mcp": {"servers": servers}},
            "memory": {"enabled": False},
            "connector": {"enabled": False},
            "data_dir": str(tmp_path / "data"),
        }
        data.update(fields)
        return write_character(data)

    return make
