"""``aigent serve`` as a user runs it: the command comes from the aigent-server distribution
through the register_commands hook, and an embedded agent never loads the web stack."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import character


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_hook_module_imports_neither_typer_nor_the_web_stack() -> None:
    code = (
        "import sys, aigent_server.commands; "
        "print(sorted(m for m in ('typer', 'fastapi', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_aigent_serve_hosts_a_directory(tmp_path: Path, model: OpenAIServer) -> None:
    folder = tmp_path / "characters"
    folder.mkdir()
    (folder / "ada.json").write_text(json.dumps(character(model, "Ada")), encoding="utf-8")
    (folder / "broken.json").write_text('{"name": "B", "bio": 1}', encoding="utf-8")
    (folder / "notes.txt").write_text("not a character", encoding="utf-8")
    port = free_port()
    env = {**os.environ, "AIGENT_SERVE_TOKEN": "t0ken"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aigent.cli",
            "serve",
            str(folder),
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()
            try:
                health = httpx.get(f"{url}/api/health", timeout=1).json()
                if health["agents"].get("running") == 1:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "aigent serve did not come up"
            time.sleep(0.05)
        agents = httpx.get(f"{url}/api/agents", headers={"Authorization": "Bearer t0ken"}).json()
        assert [a["name"] for a in agents] == ["Ada"]
        # The directory is watched: a file dropped in while it runs is served.
        (folder / "bo.json").write_text(json.dumps(character(model, "Bo")), encoding="utf-8")
        while httpx.get(f"{url}/api/health", timeout=1).json()["agents"].get("running") != 2:
            assert time.monotonic() < deadline + 30, "the new file was not picked up"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert "broken.json" in err and "(not served)" in err
