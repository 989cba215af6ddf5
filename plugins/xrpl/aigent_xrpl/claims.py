"""Off-chain payment-channel claims: sign, verify, and keep them durably in SQLite."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Claim:
    """A cumulative claim on a channel: what the connector sends to the peer over BTP."""

    channel: str
    amount: int
    """Cumulative drops authorised so far, not the increment."""
    signature: str
    public_key: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "amount": str(self.amount)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Claim:
        return cls(
            str(data["channel"]).upper(),
            int(data["amount"]),
            str(data["signature"]),
            str(data["public_key"]),
        )


class ClaimRejected(ValueError):
    """An incoming claim failed a check; the message says which."""


def claim_message(channel: str, amount: int) -> bytes:
    from xrpl.core.binarycodec import encode_for_signing_claim

    return bytes.fromhex(encode_for_signing_claim({"channel": channel, "amount": str(amount)}))


def sign_claim(channel: str, amount: int, public_key: str, private_key: str) -> Claim:
    from xrpl.core.keypairs import sign

    signature = sign(claim_message(channel, amount), private_key)
    return Claim(channel.upper(), amount, signature, public_key)


def claim_is_valid(claim: Claim, channel_public_key: str) -> bool:
    from xrpl.core.keypairs import is_valid_message

    if claim.public_key.upper() != channel_public_key.upper():
        return False
    try:
        return is_valid_message(
            claim_message(claim.channel, claim.amount),
            bytes.fromhex(claim.signature),
            channel_public_key,
        )
    except Exception:
        return False


class ClaimStore:
    """Channels and the best claims on them, written with synchronous=FULL before use."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS channels (
              channel TEXT PRIMARY KEY, peer TEXT NOT NULL, direction TEXT NOT NULL,
              amount INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS claims (
              channel TEXT PRIMARY KEY, amount INTEGER NOT NULL, signature TEXT NOT NULL,
              public_key TEXT NOT NULL, redeemed INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS settlements (
              id TEXT PRIMARY KEY, channel TEXT NOT NULL, amount INTEGER NOT NULL);
            """
        )

    def add_channel(self, channel: str, peer: str, direction: str, amount: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO channels VALUES (?, ?, ?, ?)",
            (channel.upper(), peer, direction, amount),
        )

    def channel_for(self, peer: str, direction: str) -> tuple[str, int] | None:
        row = self.db.execute(
            "SELECT channel, amount FROM channels WHERE peer = ? AND direction = ? "
            "ORDER BY rowid DESC LIMIT 1",
            (peer, direction),
        ).fetchone()
        return (row[0], int(row[1])) if row else None

    def channels(self, direction: str) -> list[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT channel, peer FROM channels WHERE direction = ?", (direction,)
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def best(self, channel: str) -> tuple[Claim, int] | None:
        row = self.db.execute(
            "SELECT channel, amount, signature, public_key, redeemed FROM claims WHERE channel = ?",
            (channel.upper(),),
        ).fetchone()
        return (Claim(row[0], int(row[1]), row[2], row[3]), int(row[4])) if row else None

    def save(self, claim: Claim, settlement_id: str | None = None) -> None:
        """Store ``claim`` if it beats the stored one (and the settlement that made it)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT INTO claims (channel, amount, signature, public_key) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(channel) DO UPDATE SET amount = excluded.amount, "
                "signature = excluded.signature WHERE excluded.amount > claims.amount",
                (claim.channel, claim.amount, claim.signature, claim.public_key),
            )
            if settlement_id is not None:
                self.db.execute(
                    "INSERT INTO settlements VALUES (?, ?, ?)",
                    (settlement_id, claim.channel, claim.amount),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def settlement(self, settlement_id: str) -> int | None:
        row = self.db.execute(
            "SELECT amount FROM settlements WHERE id = ?", (settlement_id,)
        ).fetchone()
        return int(row[0]) if row else None

    def mark_redeemed(self, channel: str, amount: int) -> None:
        self.db.execute(
            "UPDATE claims SET redeemed = MAX(redeemed, ?) WHERE channel = ?",
            (amount, channel.upper()),
        )

    def close(self) -> None:
        self.db.close()
