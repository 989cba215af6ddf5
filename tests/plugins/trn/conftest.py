"""Starts a real local EVM node (anvil from npm) with TRN's chain id and Shanghai rules."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "anvil"
ANVIL = FIXTURE / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if not ANVIL.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=FIXTURE, check=True)
    port = _free_port()
    cfg = tmp_path_factory.mktemp("anvil") / "anvil.json"
    proc = subprocess.Popen(
        [
            str(ANVIL),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            "7672",
            "--hardfork",
            "shanghai",
            "--config-out",
            str(cfg),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while not cfg.exists() or cfg.stat().st_size == 0:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("anvil did not start")
            time.sleep(0.05)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        keys = json.loads(cfg.read_text())["private_keys"]
        yield {"url": f"http://127.0.0.1:{port}", "keys": keys}
    finally:
        proc.terminate()
        proc.wait(10)
