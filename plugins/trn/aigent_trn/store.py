"""SQLite store for queued leaves, sealed batches and their proofs.

Sealing a batch (root + every proof) is one transaction, so a crash leaves either the
items queued or a complete sealed batch. A sealed batch stays 'sealed' until its anchor
is recorded; the signed anchor tx (hash and raw bytes) is written before it is sent, so a
restart re-broadcasts that same tx (same nonce) instead of anchoring twice.

One connection is shared by the event loop and worker threads, so every method holds a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
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
# Columns added after the first release; added in place to existing databases.
_MIGRATIONS = {"planned_raw": "TEXT", "anchored_at": "REAL"}


def _locked(method: Any) -> Any:
    def wrapper(self: ProofStore, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class ProofStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(batches)")}
        for column, kind in _MIGRATIONS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE batches ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @_locked
    def enqueue(self, message_id: str, leaf: bytes, canonical: bytes) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO items(message_id, leaf, canonical, queued_at) VALUES (?,?,?,?)",
            (message_id, leaf.hex(), canonical.decode(), time.time()),
        )

    @_locked
    def queued(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM items WHERE batch_id IS NULL").fetchone()[0]

    @_locked
    def oldest_queued_at(self) -> float | None:
        row = self._db.execute("SELECT MIN(queued_at) FROM items WHERE batch_id IS NULL").fetchone()
        return row[0]

    @_locked
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

    @_locked
    def unanchored(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, root, planned_tx, planned_raw, size FROM batches "
            "WHERE status='sealed' ORDER BY id"
        ).fetchall()
        return [
            {"id": r[0], "root": r[1], "planned_tx": r[2], "planned_raw": r[3], "size": r[4]}
            for r in rows
        ]

    @_locked
    def batch_size(self, batch_id: int) -> int:
        return self._db.execute("SELECT size FROM batches WHERE id=?", (batch_id,)).fetchone()[0]

    @_locked
    def plan(self, batch_id: int, tx_hash: str, raw_tx: str | None = None) -> None:
        """Record the signed anchor tx before it is sent (its hash is known from signing)."""
        self._db.execute(
            "UPDATE batches SET planned_tx=?, planned_raw=? WHERE id=?", (tx_hash, raw_tx, batch_id)
        )

    @_locked
    def mark_anchored(
        self, batch_id: int, tx_hash: str, block_number: int, chain_id: int, contract: str
    ) -> None:
        self._db.execute(
            "UPDATE batches SET status='anchored', tx_hash=?, block_number=?, chain_id=?, "
            "contract=?, planned_raw=NULL, anchored_at=? WHERE id=?",
            (tx_hash, block_number, chain_id, contract, time.time(), batch_id),
        )

    @_locked
    def message_ids(self, batch_id: int) -> list[str]:
        rows = self._db.execute("SELECT message_id FROM items WHERE batch_id=?", (batch_id,))
        return [r[0] for r in rows]

    @_locked
    def find(self, agent: str, content: str) -> list[str]:
        """Message ids whose canonical record has this agent and exactly this content."""
        rows = self._db.execute(
            "SELECT message_id FROM items WHERE json_extract(canonical, '$.agent') = ? "
            "AND json_extract(canonical, '$.content') = ? ORDER BY queued_at DESC",
            (agent, content),
        )
        return [r[0] for r in rows]

    @_locked
    def count_by_agent(self, agent: str) -> int:
        return self._db.execute(
            "SELECT COUNT(*) FROM items WHERE json_extract(canonical, '$.agent') = ?", (agent,)
        ).fetchone()[0]

    @_locked
    def stats(self) -> dict[str, Any]:
        """Counts for the agent's context: queued items, sealed and anchored batches."""
        queued = self._db.execute("SELECT COUNT(*) FROM items WHERE batch_id IS NULL").fetchone()
        by_status = dict(
            self._db.execute("SELECT status, COUNT(*) FROM batches GROUP BY status").fetchall()
        )
        anchored_items = self._db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM batches WHERE status='anchored'"
        ).fetchone()
        last = self._db.execute(
            "SELECT tx_hash, block_number, anchored_at FROM batches WHERE status='anchored' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return {
            "queued_messages": queued[0],
            "sealed_batches": by_status.get("sealed", 0),
            "anchored_batches": by_status.get("anchored", 0),
            "anchored_messages": anchored_items[0],
            "last_anchor": (
                {"tx_hash": last[0], "block_number": last[1], "at": last[2]} if last else None
            ),
        }

    @_locked
    def batches(self, limit: int = 20, ids: list[int] | None = None) -> list[dict[str, Any]]:
        """The latest ``limit`` batches (or those in ``ids``), newest first."""
        query = (
            "SELECT id, root, size, status, tx_hash, block_number, chain_id, contract, "
            "sealed_at, anchored_at FROM batches"
        )
        args: tuple[Any, ...] = ()
        if ids is not None:
            query += f" WHERE id IN ({','.join('?' * len(ids))})"
            args = tuple(ids)
        rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        keys = ("id", "root", "count", "status", "tx_hash", "block_number", "chain_id",
                "contract", "sealed_at", "anchored_at")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    @_locked
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
