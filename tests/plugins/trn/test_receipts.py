"""Merkle receipts for published messages: good, tampered, and crash-safe sealing.

No chain here yet: these cover the offline half (encoding, proofs, SQLite store).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aigent_trn import after_publish, merkle
from aigent_trn.receipt import check_receipt
from aigent_trn.store import ProofStore

from aigent import PluginContext
from aigent.messages import Outgoing

from .conftest import trn_ctx


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 33])
def test_every_leaf_proves_into_the_root(n: int) -> None:
    leaves = [merkle.leaf_hash(f"m{i}".encode()) for i in range(n)]
    root, proofs = merkle.build(leaves)
    for leaf, proof in zip(leaves, proofs, strict=True):
        assert merkle.root_from_proof(leaf, proof) == root
    # a leaf that is not in the tree does not reach the root
    assert merkle.root_from_proof(merkle.leaf_hash(b"other"), proofs[0]) != root


def test_leaf_and_node_are_domain_separated() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)


def _ctx(tmp_path: Path, batch_size: int) -> PluginContext:
    return trn_ctx(tmp_path, batch_size=batch_size)


def test_published_messages_get_receipts_that_verify(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, batch_size=3)
    msgs = [Outgoing(text=f"hello {i}", agent="0xAgent") for i in range(3)]
    for m in msgs:
        asyncio.run(after_publish(ctx, m))
    # the first two were queued; the third sealed the batch
    assert msgs[0].receipts["trn"]["status"] == "queued"
    last = msgs[2].receipts["trn"]
    assert last["status"] == "sealed"
    assert check_receipt(last, text="hello 2") == []
    store = ProofStore(tmp_path / "trn_proofs.sqlite")
    first = store.receipt(msgs[0].id)
    assert first is not None and check_receipt(first, text="hello 0") == []
    assert first["root"] == last["root"]


def test_tampered_text_and_proof_are_named(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, batch_size=2)
    msgs = [Outgoing(text=t, agent="0xAgent") for t in ("pay 10", "pay 20")]
    for m in msgs:
        asyncio.run(after_publish(ctx, m))
    r = ProofStore(tmp_path / "trn_proofs.sqlite").receipt(msgs[0].id)
    assert r is not None
    assert any("text differs" in p for p in check_receipt(r, text="pay 1000"))
    r["canonical"]["content"] = "pay 1000"
    assert any("leaf mismatch" in p for p in check_receipt(r))
    r["canonical"]["content"] = "pay 10"
    r["proof"][0]["hash"] = "00" * 32
    assert any("does not lead to root" in p for p in check_receipt(r))


def test_sealed_batch_survives_restart_and_is_not_resealed(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    s = ProofStore(db)
    for i in range(5):
        s.enqueue(f"id{i}", merkle.leaf_hash(f"x{i}".encode()), b'{"v":1}')
    batch = s.seal(10)
    s.plan(batch, "0xplanned")
    s.close()  # crash after sealing, before the anchor is recorded
    s2 = ProofStore(db)
    pending = s2.unanchored()
    assert [b["id"] for b in pending] == [batch]
    assert pending[0]["planned_tx"] == "0xplanned"
    assert s2.seal(10) is None  # nothing re-batched
    s2.mark_anchored(batch, "0xplanned", 12, 7672, "0xRegistry")
    assert s2.unanchored() == []
    rec = s2.receipt("id3")
    assert rec is not None and rec["anchor"]["chain_id"] == 7672
