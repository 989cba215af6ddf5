"""Anchoring throughput: items anchored per second and gas per item at batch sizes 1..4096.

Starts anvil (tests/fixtures/anvil, `npm ci` there first) with TRN's chain id and Shanghai rules.
Run: uv run --all-packages python benchmarks/anchoring.py
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from aigent_trn import chain, merkle
from aigent_trn.store import ProofStore

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "tests/fixtures/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp())
    cfg = tmp / "anvil.json"
    proc = subprocess.Popen(
        [
            str(ANVIL),
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
    )
    try:
        while not cfg.exists() or cfg.stat().st_size == 0:
            time.sleep(0.05)
        time.sleep(0.3)
        w3 = chain.connect(f"http://127.0.0.1:{port}", 7672)
        signer = chain.Signer(w3, json.loads(cfg.read_text())["private_keys"][0])
        registry = chain.deploy_registry(w3, signer)
        print(f"{'batch':>6} {'items/s':>10} {'gas/batch':>10} {'gas/item':>10}")
        for size in (1, 16, 256, 4096):
            store = ProofStore(tmp / f"b{size}.sqlite")
            t0 = time.perf_counter()
            for i in range(size):
                store.enqueue(f"m{i}", merkle.leaf_hash(f"{size}:{i}".encode()), b"{}")
            store.seal(size)
            (tx,) = chain.anchor_pending(w3, signer, store, registry)
            dt = time.perf_counter() - t0
            gas = w3.eth.get_transaction_receipt(tx)["gasUsed"]
            print(f"{size:>6} {size / dt:>10.0f} {gas:>10} {gas / size:>10.1f}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
