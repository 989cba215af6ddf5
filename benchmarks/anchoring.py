"""Anchoring throughput: items anchored per second and gas per item at batch sizes 1..4096.

Starts anvil (tests/fixtures/anvil, `npm ci` there first) with TRN's chain id and Shanghai rules.
Run: uv run --all-packages python benchmarks/anchoring.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from aigent_trn import chain, merkle
from aigent_trn.store import ProofStore

from tests.fixtures.anvil import run_anvil


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    with run_anvil() as node:
        w3 = chain.connect(node.url, node.chain_id)
        signer = chain.Signer(w3, node.keys[0])
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


if __name__ == "__main__":
    main()
