"""Off-chain payment-channel claims: sign, verify, and keep them durably in the agent's
storage."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigent.storage import Migration, SqliteStore, Store
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


NAME = "xrpl-paychan"
NOTHING = "SELECT 1"
"""A migration with nothing to do in a dialect."""

MIGRATIONS: tuple[Migration, ...] = (
    # 1: in a file, as the store was before it was versioned (an existing file has these
    # already); in PostgreSQL, where the agent's stores (and its connector's settlements)
    # share a schema, the final tables under names of their own
    {
        "sqlite": """
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
        """,
        "postgresql": """
        CREATE TABLE paychan_channels (
          channel TEXT PRIMARY KEY, peer TEXT NOT NULL, direction TEXT NOT NULL,
          amount BIGINT NOT NULL, expires DOUBLE PRECISION, closed DOUBLE PRECISION,
          seq BIGINT);
        CREATE TABLE paychan_claims (
          channel TEXT PRIMARY KEY, amount BIGINT NOT NULL, signature TEXT NOT NULL,
          public_key TEXT NOT NULL, redeemed BIGINT NOT NULL DEFAULT 0);
        CREATE TABLE paychan_settlements (
          id TEXT PRIMARY KEY, channel TEXT NOT NULL, amount BIGINT NOT NULL);
        CREATE TABLE paychan_credits (
          channel TEXT PRIMARY KEY, peer TEXT NOT NULL, credited BIGINT NOT NULL);
        """,
    },
    # 2, 3: when a channel expires and when it was closed (an old file may have them already)
    {"sqlite": "ALTER TABLE channels ADD COLUMN expires REAL", "postgresql": NOTHING},
    {"sqlite": "ALTER TABLE channels ADD COLUMN closed REAL", "postgresql": NOTHING},
    # 4: a file's channels in the order they were written (rowid, which PostgreSQL has not),
    # and its tables under the names they have in PostgreSQL
    {
        "sqlite": """
        ALTER TABLE channels ADD COLUMN seq INTEGER;
        UPDATE channels SET seq = rowid;
        ALTER TABLE channels RENAME TO paychan_channels;
        ALTER TABLE claims RENAME TO paychan_claims;
        ALTER TABLE settlements RENAME TO paychan_settlements;
        ALTER TABLE credits RENAME TO paychan_credits;
        """,
        "postgresql": NOTHING,
    },
)
"""The ``xrpl-paychan`` store (aigent.storage); append, never edit one that shipped."""

_UPSERT_CHANNEL = (
    "INSERT INTO paychan_channels (channel, peer, direction, amount, expires, seq) "
    "VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM paychan_channels)) "
    "ON CONFLICT (channel) DO UPDATE SET peer = excluded.peer, direction = excluded.direction, "
    "amount = excluded.amount, expires = excluded.expires, closed = NULL, seq = excluded.seq"
)
"""A channel written anew (and made the latest with its peer), as a replace would."""

_BETTER_CLAIM = (
    "INSERT INTO paychan_claims (channel, amount, signature, public_key) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (channel) DO UPDATE SET amount = excluded.amount, "
    "signature = excluded.signature WHERE excluded.amount > paychan_claims.amount"
)
"""A claim kept only if it beats the one held: a channel's total never goes back."""


class ClaimStore:
    """Channels and the best claims on them, in the agent's storage (a SQLite file in its data
    directory, or its schema of a fleet's database): written before a claim is handed out or
    credited. Calls block; what must be atomic with a check (a claim signed for a settlement
    once) runs inside :meth:`exclusive`, which no other process sharing the store interleaves
    with."""

    def __init__(self, store: Store | Path) -> None:
        """The claims in ``store`` (opened with :data:`MIGRATIONS`), or the SQLite file at a
        path."""
        self.store: Store = SqliteStore(store, MIGRATIONS) if isinstance(store, Path) else store

    def exclusive(self) -> AbstractContextManager[None]:
        return self.store.exclusive()

    def add_channel(self, channel: str, peer: str, direction: str, amount: int) -> None:
        with self.store.exclusive():  # the next seq, read and written at once
            self.store.execute(_UPSERT_CHANNEL, (channel.upper(), peer, direction, amount, None))

    def channel_for(self, peer: str, direction: str) -> tuple[str, int] | None:
        rows = self.store.execute(
            "SELECT channel, amount FROM paychan_channels WHERE peer = ? AND direction = ? "
            "ORDER BY seq DESC LIMIT 1",
            (peer, direction),
        )
        return (rows[0][0], int(rows[0][1])) if rows else None

    def channels(self, direction: str) -> list[tuple[str, str]]:
        rows = self.store.execute(
            "SELECT channel, peer FROM paychan_channels WHERE direction = ? ORDER BY seq",
            (direction,),
        )
        return [(r[0], r[1]) for r in rows]

    def best(self, channel: str) -> tuple[Claim, int] | None:
        rows = self.store.execute(
            "SELECT channel, amount, signature, public_key, redeemed FROM paychan_claims "
            "WHERE channel = ?",
            (channel.upper(),),
        )
        if not rows:
            return None
        row = rows[0]
        return Claim(row[0], int(row[1]), row[2], row[3]), int(row[4])

    def save(self, claim: Claim, settlement_id: str | None = None) -> None:
        """Store ``claim`` if it beats the stored one (and the settlement that made it)."""
        with self.store.exclusive():
            self.store.execute(
                _BETTER_CLAIM, (claim.channel, claim.amount, claim.signature, claim.public_key)
            )
            if settlement_id is not None:
                self.store.execute(
                    "INSERT INTO paychan_settlements (id, channel, amount) VALUES (?, ?, ?)",
                    (settlement_id, claim.channel, claim.amount),
                )

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
        with self.store.exclusive():
            self.store.execute(
                _UPSERT_CHANNEL, (claim.channel, peer, "in", channel_amount, expires)
            )
            self.store.execute(
                _BETTER_CLAIM, (claim.channel, claim.amount, claim.signature, claim.public_key)
            )
            self.store.execute(
                "INSERT INTO paychan_credits (channel, peer, credited) VALUES (?, ?, ?) "
                "ON CONFLICT (channel) DO NOTHING",
                (claim.channel, peer, base),
            )

    def uncredited(self, peer: str | None = None) -> list[tuple[str, str, int, int]]:
        """(channel, peer, credited so far, best claim) where the best claim is ahead."""
        query = (
            "SELECT c.channel, c.peer, c.credited, b.amount FROM paychan_credits c "
            "JOIN paychan_claims b ON b.channel = c.channel WHERE b.amount > c.credited"
        )
        rows = (
            self.store.execute(query)
            if peer is None
            else self.store.execute(query + " AND c.peer = ?", (peer,))
        )
        return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def set_credited(self, channel: str, amount: int) -> None:
        self.store.execute(
            "UPDATE paychan_credits SET credited = ? WHERE channel = ? AND credited < ?",
            (amount, channel.upper(), amount),
        )

    def settlement(self, settlement_id: str) -> int | None:
        rows = self.store.execute(
            "SELECT amount FROM paychan_settlements WHERE id = ?", (settlement_id,)
        )
        return int(rows[0][0]) if rows else None

    def next_expiry(self, now: float) -> float | None:
        """The soonest future expiry (POSIX seconds) of an incoming channel holding a claim
        not yet redeemed: the time by which the redeem loop must have acted."""
        rows = self.store.execute(
            "SELECT MIN(c.expires) FROM paychan_channels c "
            "JOIN paychan_claims b ON b.channel = c.channel "
            "WHERE c.direction = 'in' AND c.expires > ? AND b.amount > b.redeemed",
            (now,),
        )
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def mark_closed(self, channel: str, at: float) -> bool:
        """Record that ``channel`` is closed; False if it was known already."""
        return bool(
            self.store.execute(
                "UPDATE paychan_channels SET closed = ? WHERE channel = ? AND closed IS NULL "
                "RETURNING channel",
                (at, channel.upper()),
            )
        )

    def states(self, peer: str) -> list[tuple[str, str, int, int, int, float | None, bool]]:
        """(channel, direction, capacity, best claim, redeemed, expires, closed) of every
        channel with ``peer``, oldest first."""
        rows = self.store.execute(
            "SELECT c.channel, c.direction, c.amount, COALESCE(b.amount, 0), "
            "COALESCE(b.redeemed, 0), c.expires, c.closed IS NOT NULL FROM paychan_channels c "
            "LEFT JOIN paychan_claims b ON b.channel = c.channel WHERE c.peer = ? ORDER BY c.seq",
            (peer,),
        )
        return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), r[5], bool(r[6])) for r in rows]

    def mark_redeemed(self, channel: str, amount: int) -> None:
        self.store.execute(
            "UPDATE paychan_claims SET redeemed = ? WHERE channel = ? AND redeemed < ?",
            (amount, channel.upper(), amount),
        )

    def close(self) -> None:
        self.store.close()
