"""A real local EVM node for tests and benchmarks: anvil (npm) with TRN's chain id and Shanghai.

anvil cannot run TRN's precompiles (ERC-20 per asset, DEX, fee proxy); tests deploy stand-ins
from ``contracts/`` instead. Used by ``tests/plugins/trn/conftest.py`` and
``benchmarks/anchoring.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "fixtures" / "anvil"
ANVIL = FIXTURE / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
TRN_TESTNET_CHAIN_ID = 7672


@dataclass(frozen=True)
class Anvil:
    url: str
    keys: list[str]
    """Private keys of the ten funded dev accounts (public test keys, not secrets)."""
    chain_id: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_installed() -> Path:
    """Install anvil and solc from the committed package-lock.json if they are missing."""
    if not ANVIL.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=FIXTURE, check=True)
    return ANVIL


@contextmanager
def run_anvil(chain_id: int = TRN_TESTNET_CHAIN_ID, timeout: float = 30.0) -> Iterator[Anvil]:
    """Start anvil on a free port; stop it on exit."""
    binary = ensure_installed()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="anvil-") as tmp:
        cfg = Path(tmp) / "anvil.json"
        proc = subprocess.Popen(
            [
                *(str(binary), "--host", "127.0.0.1", "--port", str(port)),
                *("--chain-id", str(chain_id), "--hardfork", "shanghai", "--config-out", str(cfg)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"anvil exited with code {proc.returncode} at start")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not start within {timeout:g}s")
                if cfg.exists() and cfg.stat().st_size > 0:
                    try:
                        socket.create_connection(("127.0.0.1", port), 0.2).close()
                        break
                    except OSError:
                        pass
                time.sleep(0.05)
            keys = json.loads(cfg.read_text())["private_keys"]
            yield Anvil(url=f"http://127.0.0.1:{port}", keys=keys, chain_id=chain_id)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
