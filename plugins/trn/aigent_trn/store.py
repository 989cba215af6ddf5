"""SQLite store for queued leaves, sealed batches and their proofs.

Sealing a batch (root + every proof) is one transaction, so a crash leaves either the
items queued or a complete sealed batch. A sealed batch stays 'sealed' until its anchor
is recorded; the planned tx hash is written before sending so a restart re-checks that
hash instead of anchoring twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from . import merkle

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    message_id TEXT PRIMARY KEY, leaf TEXT NOT NULL, canonical TEXT NOT NULL,
    batch_id INTEGER, proof TEXT, queued_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, root TEXT NOT NULL, size INTEGER NOT NULL,
    status TEXT NOT NULL, planned_tx TEXT, tx_hash TEXT, block_number INTEGER,
    chain_id INTEGER, contract TEXT, sealed_at REAL NOT NULL);
"""


class ProofStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def enqueue(self, message_id: str, leaf: bytes, canonical: bytes) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO items(message_id, leaf, canonical, queued_at) VALUES (?,?,?,?)",
            (message_id, leaf.hex(), canonical.decode(), time.time()),
        )

    def queued(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM items WHERE batch_id IS NULL").fetchone()[0]

    def oldest_queued_at(self) -> float | None:
        row = self._db.execute("SELECT MIN(queued_at) FROM items WHERE batch_id IS NULL").fetchone()
        return row[0]

    def seal(self, limit: int) -> int | None:
        """Move up to ``limit`` queued leaves into a new sealed batch; return its id."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute(
                "SELECT message_id, leaf FROM items WHERE batch_id IS NULL "
                "ORDER BY queued_at, message_id LIMIT ?",
                (limit,),
            ).fetchall()
            if not rows:
                self._db.execute("ROLLBACK")
                return None
            root, proofs = merkle.build([bytes.fromhex(leaf) for _, leaf in rows])
            cur = self._db.execute(
                "INSERT INTO batches(root, size, status, sealed_at) VALUES (?,?, 'sealed', ?)",
                (root.hex(), len(rows), time.time()),
            )
            batch_id = cur.lastrowid
            for (mid, _), proof in zip(rows, proofs, strict=True):
                self._db.execute(
                    "UPDATE items SET batch_id=?, proof=? WHERE message_id=?",
                    (batch_id, json.dumps(proof), mid),
                )
            self._db.execute("COMMIT")
            return batch_id
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def unanchored(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, root, planned_tx FROM batches WHERE status='sealed' ORDER BY id"
        ).fetchall()
        return [{"id": r[0], "root": r[1], "planned_tx": r[2]} for r in rows]

    def batch_size(self, batch_id: int) -> int:
        return self._db.execute("SELECT size FROM batches WHERE id=?", (batch_id,)).fetchone()[0]

    def plan(self, batch_id: int, tx_hash: str) -> None:
        self._db.execute("UPDATE batches SET planned_tx=? WHERE id=?", (tx_hash, batch_id))

    def mark_anchored(
        self, batch_id: int, tx_hash: str, block_number: int, chain_id: int, contract: str
    ) -> None:
        self._db.execute(
            "UPDATE batches SET status='anchored', tx_hash=?, block_number=?, chain_id=?, "
            "contract=? WHERE id=?",
            (tx_hash, block_number, chain_id, contract, batch_id),
        )

    def receipt(self, message_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT i.leaf, i.canonical, i.proof, b.root, b.status, b.tx_hash, b.block_number, "
            "b.chain_id, b.contract FROM items i LEFT JOIN batches b ON b.id = i.batch_id "
            "WHERE i.message_id=?",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        leaf, canonical, proof, root, status, tx, block, chain_id, contract = row
        out: dict[str, Any] = {
            "message_id": message_id,
            "hash_alg": merkle.HASH_ALG,
            "canonical": json.loads(canonical),
            "leaf": leaf,
            "status": status or "queued",
        }
        if root is not None:
            out["root"] = root
            out["proof"] = json.loads(proof)
        if tx is not None:
            out["anchor"] = {
                "tx_hash": tx,
                "block_number": block,
                "chain_id": chain_id,
                "contract": contract,
            }
        return out
