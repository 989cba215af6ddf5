"""The ledger in PostgreSQL, for operators who run many connector nodes against one server.

    Ledger(PostgresStore("postgresql://connector@db.internal/ledgers", schema="hub"))

Each node keeps its rows in its own schema (``public`` unless told): one process owns a
schema at a time, enforced with an advisory lock, since two nodes deciding from their own
memory over the same rows would each overwrite the other's balances. A commit is durable when
the server says so: with durability ``"fsync"`` the store sets ``synchronous_commit`` on for
its session (the WAL is flushed before the commit returns), whatever the server's default;
with ``"os"`` off (the server has the commit, so a killed connector loses nothing, but a crash
of the server or its machine may lose its last fraction of a second). Writes wait on
the network, so the ledger makes them from a thread (``writes_block``) and the event loop
keeps switching packets meanwhile.

The password never appears in :attr:`PostgresStore.name` or in an error. Keep it out of the URL
altogether: libpq reads ``PGPASSWORD`` and ``~/.pgpass`` (or the file ``passfile=`` names).

psycopg is imported when a store is opened, not when this module is: ``pip install
'aigent-connector[postgres]'`` installs it.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aigent_connector.errors import ConnectorError
from aigent_connector.ledger import DURABILITIES, AccountRow, Durability, TransferRow

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

INSTALL = "pip install 'aigent-connector[postgres]'"
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""Unquoted PostgreSQL identifiers only: the schema is then named the same in psql as here."""
LOCK_WAIT = 3.0
"""Seconds to wait for the schema's lock: a killed owner's session takes a moment to end."""

# Defaults a DSN may override: a dead server must fail a write, not hang the ledger forever.
_DEFAULTS = {
    "connect_timeout": "10",
    "tcp_user_timeout": "15000",  # ms without an ACK before the socket gives up
    "application_name": "aigent-connector",
}

_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.accounts (
    id TEXT PRIMARY KEY,
    balance BIGINT NOT NULL DEFAULT 0,
    reserved_in BIGINT NOT NULL DEFAULT 0,
    reserved_out BIGINT NOT NULL DEFAULT 0,
    min_balance BIGINT,
    max_balance BIGINT,
    settle_threshold BIGINT,
    settle_to BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {schema}.transfers (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    direction TEXT NOT NULL,
    amount BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL
);
-- Only rows still 'reserved' (written by earlier versions) are indexed: recovery reads them.
CREATE INDEX IF NOT EXISTS transfers_open ON {schema}.transfers (expires_at)
    WHERE state = 'reserved';
-- Settlements (aigent_connector.settlement): here rather than in a file on one host, so the
-- next process to own the schema resumes a pending one with its id and never pays twice.
CREATE TABLE IF NOT EXISTS {schema}.settlements (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    state TEXT NOT NULL,
    settled BIGINT,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS settlements_pending ON {schema}.settlements (account, created)
    WHERE state = 'pending';
"""
# One statement, so one round trip and one transaction: the rows go as one array per column.
_WRITE = """
WITH accounts AS (
    INSERT INTO {schema}.accounts
    SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
                         %s::bigint[], %s::bigint[], %s::bigint[])
    ON CONFLICT (id) DO UPDATE SET balance = excluded.balance,
        reserved_in = excluded.reserved_in, reserved_out = excluded.reserved_out,
        min_balance = excluded.min_balance, max_balance = excluded.max_balance,
        settle_threshold = excluded.settle_threshold, settle_to = excluded.settle_to
)
INSERT INTO {schema}.transfers
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::float8[], %s::text[])
ON CONFLICT (id) DO UPDATE SET account = excluded.account, direction = excluded.direction,
    amount = excluded.amount, expires_at = excluded.expires_at, state = excluded.state
"""
_ACCOUNTS = (
    "SELECT id, balance, reserved_in, reserved_out, min_balance, max_balance, "
    "settle_threshold, settle_to FROM {schema}.accounts"
)
_RESERVED = (
    "SELECT id, account, direction, amount, expires_at, state FROM {schema}.transfers "
    "WHERE state = 'reserved'"
)
_HAS = "SELECT 1 FROM {schema}.transfers WHERE id = %s"
_SETTLEMENTS = {
    "pending": "SELECT id, account, amount FROM {schema}.settlements WHERE state = 'pending' "
    "AND (%s::text IS NULL OR account = %s) ORDER BY created",
    "history": "SELECT id, amount, state, settled FROM {schema}.settlements WHERE account = %s "
    "ORDER BY created",
    "start": "INSERT INTO {schema}.settlements VALUES (%s, %s, %s, 'pending', NULL, %s)",
    "finish": "UPDATE {schema}.settlements SET state = 'done', settled = %s WHERE id = %s",
}


class PostgresStoreError(ConnectorError, ConnectionError):
    """The PostgreSQL ledger cannot be opened or used; the message names the server (never
    the password) and what to check."""


def require_psycopg() -> None:
    """Import psycopg, or say how to install it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ImportError(
            f"the PostgreSQL ledger needs psycopg, which is not installed: {INSTALL}"
        ) from None


def _passwords(dsn: str) -> list[str]:
    """Every password the DSN might hold, found without libpq (which may refuse to parse it)."""
    found: list[str] = []
    for match in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", dsn):
        found += [match.group(1), match.group(1).strip("'")]
    try:
        found.append(urlsplit(dsn).password or "")
    except ValueError:
        pass
    # Longest first: a password that contains another is replaced whole.
    return sorted({p for p in found if p}, key=len, reverse=True)


def redact(text: str, dsn: str) -> str:
    """``text`` without any password that ``dsn`` holds."""
    for secret in _passwords(dsn):
        text = text.replace(secret, "***")
    return text


def describe(params: dict[str, Any], schema: str) -> str:
    """``postgresql://user@host:port/db (schema s)``, with libpq's defaults filled in."""
    user = params.get("user") or os.environ.get("PGUSER") or getpass.getuser()
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST")
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    where = f"{host}:{port}" if host else f"the default socket (port {port})"
    return f"postgresql://{user}@{where}/{dbname} (schema {schema})"


def _hint(reason: str) -> str:
    """What to check, for the errors operators meet when wiring a node to a database."""
    low = reason.lower()
    if "password" in low or "authentication" in low:
        return ("check the user name and its password: set PGPASSWORD in the connector's "
                "environment or put the password in ~/.pgpass, rather than in the URL")  # fmt: skip
    if "does not exist" in low and "database" in low:
        return "create the database (createdb) or fix its name in the URL"
    if "permission denied" in low or "insufficientprivilege" in low:
        return ("grant the user CREATE on the database (to make the schema) or on the schema "
                "(to make the tables), or have an administrator create them once")  # fmt: skip
    return ("check that the server is running, that host and port are right, and that it "
            "accepts connections from here (listen_addresses, pg_hba.conf, firewalls)")  # fmt: skip


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _lock_key(schema: str) -> int:
    """A stable 64-bit advisory lock key per schema (the same in every process)."""
    digest = hashlib.blake2b(f"aigent-connector ledger {schema}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class PostgresStore:
    """A :class:`~aigent_connector.ledger.Store` in PostgreSQL: ``accounts`` and ``transfers``
    in ``schema``, made if missing; every :meth:`write` one transaction."""

    writes_block = True

    def __init__(
        self, dsn: str, *, schema: str = "public", durability: Durability = "fsync"
    ) -> None:
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be 'fsync' or 'os', not {durability!r}")
        if not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(
                f"schema {schema!r} is not a plain PostgreSQL name: use lower-case letters, "
                "digits and _, starting with a letter or _, at most 63 characters"
            )
        require_psycopg()
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self.schema = schema
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise PostgresStoreError(
                f"the PostgreSQL ledger URL is not valid ({redact(str(exc), dsn).strip()}): "
                "write it as postgresql://user@host:port/dbname"
            ) from None
        self.name = describe(params, schema)
        self._dsn = make_conninfo(
            dsn, **{key: value for key, value in _DEFAULTS.items() if key not in params}
        )
        self._raw = dsn  # only to take its password out of messages
        ident = sql.Identifier(schema)
        self._sql: dict[str, sql.Composed] = {
            key: sql.SQL(text).format(schema=ident)
            for key, text in (("tables", _TABLES), ("write", _WRITE),
                              ("accounts", _ACCOUNTS), ("reserved", _RESERVED), ("has", _HAS),
                              *_SETTLEMENTS.items())
        }  # fmt: skip
        self._writer = self._connect()
        try:
            self._writer.execute(  # this session's commits, whatever the server's default
                "SET synchronous_commit = on"
                if durability == "fsync"
                else "SET synchronous_commit = off"
            )
            self._own()
            self._create()
            # Lookups come from the event loop while a write is in flight in the ledger's thread.
            self._reader = self._connect()
        except BaseException:
            self._writer.close()
            raise
        self._reader_lock = threading.Lock()

    # --- connecting ------------------------------------------------------------------------------

    def _error(self, doing: str, exc: BaseException) -> PostgresStoreError:
        reason = _one_line(redact(str(exc), self._raw)) or type(exc).__name__
        return PostgresStoreError(f"{doing} {self.name}: {reason}; {_hint(reason)}")

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection in autocommit: each statement is its own transaction."""
        import psycopg

        try:
            conn: psycopg.Connection[Any] = psycopg.connect(self._dsn, autocommit=True)
        except psycopg.Error as exc:
            raise self._error("cannot open the PostgreSQL ledger at", exc) from None
        return conn

    def _own(self) -> None:
        """Take the schema's advisory lock for this session: one owner per ledger."""
        key = _lock_key(self.schema)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            # A session lock: held until this connection closes, or dies with the process.
            row = self._writer.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row is not None and row[0]:
                return
            if time.monotonic() >= deadline:
                raise PostgresStoreError(
                    f"the ledger {self.name} is in use by another connector process; give each "
                    "node its own schema (ledger_schema), or stop the other one first"
                )
            time.sleep(0.1)

    def _create(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            with self._writer.transaction():
                exists = self._writer.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                ).fetchone()
                if exists is None:  # IF NOT EXISTS would need the right to create even so
                    schema = sql.Identifier(self.schema)
                    self._writer.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                self._writer.execute(self._sql["tables"])
        except psycopg.Error as exc:
            raise self._error("cannot create the ledger's tables at", exc) from None

    # --- the Store protocol ----------------------------------------------------------------------

    def load(self) -> tuple[list[AccountRow], list[TransferRow]]:
        import psycopg

        try:
            with self._writer.transaction():
                accounts = self._writer.execute(self._sql["accounts"]).fetchall()
                reserved = self._writer.execute(self._sql["reserved"]).fetchall()
        except psycopg.Error as exc:
            raise self._error("cannot read the ledger at", exc) from None
        return accounts, reserved

    def has_transfer(self, transfer: str) -> bool:
        import psycopg

        with self._reader_lock:
            try:
                row = self._reader.execute(self._sql["has"], (str(transfer),)).fetchone()
            except psycopg.Error as exc:
                raise self._error("cannot read the ledger at", exc) from None
        return row is not None

    def write(self, accounts: list[AccountRow], transfers: list[TransferRow]) -> None:
        import psycopg

        # Transfer ids may be numbers (the connector's own); the column is text, as in SQLite.
        # Keyed by that text: one statement may not upsert a row twice.
        rows = list({str(row[0]): (str(row[0]), *row[1:]) for row in transfers}.values())
        columns = [list(c) for c in zip(*accounts, strict=True)] or [[] for _ in range(8)]
        columns += [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(6)]
        try:
            self._writer.execute(self._sql["write"], columns)
        except psycopg.Error as exc:
            reason = _one_line(redact(str(exc), self._raw)) or type(exc).__name__
            raise PostgresStoreError(f"{reason}; {_hint(reason)}") from None

    def settlements(self) -> PostgresSettlements:
        """This ledger's settlements, in its schema (see :mod:`aigent_connector.settlement`)."""
        return PostgresSettlements(self)

    def settlement_sql(self, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one of the settlements' statements on the writer's session: its commits are
        as durable as the ledger's, and the schema's lock covers them too."""
        import psycopg

        try:
            cursor = self._writer.execute(self._sql[query], args)
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            raise self._error("cannot use the settlements at", exc) from None

    def maintain(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum and checkpoints look after themselves."""

    def close(self) -> None:
        """Close both connections; the schema's lock goes with the writer's session."""
        for conn in (self._reader, self._writer):
            try:
                conn.close()
            except Exception:
                pass  # already gone with the server


class PostgresSettlements:
    """A :class:`~aigent_connector.settlement.SettlementStore` in a PostgreSQL ledger's schema,
    on the ledger's own connection (closed with the ledger)."""

    writes_block = True

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.name = store.name

    def pending(self, account: str | None = None) -> list[tuple[str, str, int]]:
        rows = self._store.settlement_sql("pending", (account, account))
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def history(self, account: str) -> list[tuple[str, int, str, int | None]]:
        rows = self._store.settlement_sql("history", (account,))
        return [(str(r[0]), int(r[1]), str(r[2]), None if r[3] is None else int(r[3]))
                for r in rows]  # fmt: skip

    def start(self, settlement_id: str, account: str, amount: int) -> None:
        self._store.settlement_sql("start", (settlement_id, account, amount, time.time()))

    def finish(self, settlement_id: str, settled: int) -> None:
        self._store.settlement_sql("finish", (settled, settlement_id))

    def close(self) -> None:
        """Nothing of its own: the connection is the ledger's."""
