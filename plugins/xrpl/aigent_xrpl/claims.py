"""Off-chain payment-channel claims: sign, verify, and keep them durably in SQLite."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigent_xrpl.errors import XrplError

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


@dataclass(frozen=True)
class Claim:
    """A cumulative claim on a channel: what the connector sends to the peer over BTP."""

    channel: str
    amount: int
    """Cumulative drops authorised so far, not the increment."""
    signature: str
    public_key: str

    def to_json(self) -> dict[str, str]:
        """The wire shape, as @kava-labs/ilp-plugin-xrp-paychan sends it (``channelId``,
        ``value``, ``signature``) plus the signing key, which XRPL claims need."""
        return {
            "channelId": self.channel,
            "value": str(self.amount),
            "signature": self.signature,
            "publicKey": self.public_key,
        }

    @classmethod
    def from_json(cls, data: Any) -> Claim:
        """Parse either wire shape (``channelId``/``value`` or ``channel``/``amount``);
        :class:`ValueError` naming the bad field. A missing key means "the channel's key"."""
        if not isinstance(data, dict):
            raise ValueError("a claim is a JSON object")
        channel = str(data.get("channelId", data.get("channel", "")))
        if not _HEX64.fullmatch(channel):
            raise ValueError(f"channelId must be 64 hex digits, not {channel[:80]!r}")
        value = data.get("value", data.get("amount"))
        if not isinstance(value, str | int) or not str(value).isdigit():
            raise ValueError(f"value must be a whole number of drops, not {value!r}")
        signature = str(data.get("signature", ""))
        if not signature or not _HEX.fullmatch(signature):
            raise ValueError("signature must be hex")
        public_key = str(data.get("publicKey", data.get("public_key", "")))
        if public_key and not _HEX.fullmatch(public_key):
            raise ValueError("publicKey must be hex")
        return cls(channel.upper(), int(value), signature.upper(), public_key.upper())


class ClaimRejected(XrplError, ValueError):
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
            CREATE TABLE IF NOT EXISTS credits (
              channel TEXT PRIMARY KEY, peer TEXT NOT NULL, credited INTEGER NOT NULL);
            """
        )
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(channels)")}
        if "expires" not in columns:  # a store from before channels could expire
            self.db.execute("ALTER TABLE channels ADD COLUMN expires REAL")
        if "closed" not in columns:  # a store from before closes were recorded
            self.db.execute("ALTER TABLE channels ADD COLUMN closed REAL")

    def add_channel(self, channel: str, peer: str, direction: str, amount: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO channels (channel, peer, direction, amount) "
            "VALUES (?, ?, ?, ?)",
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

    def save_incoming(
        self,
        claim: Claim,
        peer: str,
        channel_amount: int,
        base: int,
        expires: float | None = None,
    ) -> None:
        """Keep a better incoming claim, in one transaction with its channel (and when it
        expires, POSIX seconds, if it can) and, the first time, the amount already paid
        before it (``base``), from which credits count."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT OR REPLACE INTO channels (channel, peer, direction, amount, expires) "
                "VALUES (?, ?, 'in', ?, ?)",
                (claim.channel, peer, channel_amount, expires),
            )
            self.db.execute(
                "INSERT INTO claims (channel, amount, signature, public_key) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(channel) DO UPDATE SET amount = excluded.amount, "
                "signature = excluded.signature WHERE excluded.amount > claims.amount",
                (claim.channel, claim.amount, claim.signature, claim.public_key),
            )
            self.db.execute(
                "INSERT OR IGNORE INTO credits VALUES (?, ?, ?)", (claim.channel, peer, base)
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def uncredited(self, peer: str | None = None) -> list[tuple[str, str, int, int]]:
        """(channel, peer, credited so far, best claim) where the best claim is ahead."""
        rows = self.db.execute(
            "SELECT c.channel, c.peer, c.credited, b.amount FROM credits c "
            "JOIN claims b ON b.channel = c.channel "
            "WHERE b.amount > c.credited AND (? IS NULL OR c.peer = ?)",
            (peer, peer),
        ).fetchall()
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def set_credited(self, channel: str, amount: int) -> None:
        self.db.execute(
            "UPDATE credits SET credited = MAX(credited, ?) WHERE channel = ?",
            (amount, channel.upper()),
        )

    def settlement(self, settlement_id: str) -> int | None:
        row = self.db.execute(
            "SELECT amount FROM settlements WHERE id = ?", (settlement_id,)
        ).fetchone()
        return int(row[0]) if row else None

    def next_expiry(self, now: float) -> float | None:
        """The soonest future expiry (POSIX seconds) of an incoming channel holding a claim
        not yet redeemed: the time by which the redeem loop must have acted."""
        row = self.db.execute(
            "SELECT MIN(c.expires) FROM channels c JOIN claims b ON b.channel = c.channel "
            "WHERE c.direction = 'in' AND c.expires > ? AND b.amount > b.redeemed",
            (now,),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def mark_closed(self, channel: str, at: float) -> bool:
        """Record that ``channel`` is closed; False if it was known already."""
        cursor = self.db.execute(
            "UPDATE channels SET closed = ? WHERE channel = ? AND closed IS NULL",
            (at, channel.upper()),
        )
        return cursor.rowcount > 0

    def states(self, peer: str) -> list[tuple[str, str, int, int, int, float | None, bool]]:
        """(channel, direction, capacity, best claim, redeemed, expires, closed) of every
        channel with ``peer``, oldest first."""
        rows = self.db.execute(
            "SELECT c.channel, c.direction, c.amount, COALESCE(b.amount, 0), "
            "COALESCE(b.redeemed, 0), c.expires, c.closed IS NOT NULL FROM channels c "
            "LEFT JOIN claims b ON b.channel = c.channel WHERE c.peer = ? ORDER BY c.rowid",
            (peer,),
        ).fetchall()
        return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), r[5], bool(r[6])) for r in rows]

    def mark_redeemed(self, channel: str, amount: int) -> None:
        self.db.execute(
            "UPDATE claims SET redeemed = MAX(redeemed, ?) WHERE channel = ?",
            (amount, channel.upper()),
        )

    def close(self) -> None:
        self.db.close()
