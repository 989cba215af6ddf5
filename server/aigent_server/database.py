"""Where the server keeps its state: one SQLite file under its data directory (the default, one
machine), or a schema in PostgreSQL when a ``database_url`` is set, shared by every ``aigent
serve`` of one installation (see aigent_server.leases for how they share the agents).

Both speak the same small interface (``execute``, ``executemany``), with ``?`` placeholders;
calls block, so callers on the event loop make them through ``aigent.blocking``. In PostgreSQL
the tables come from :data:`MIGRATIONS`, applied at start under an advisory lock (two servers
starting together migrate once); a schema newer than this code is refused, since an older
server would misread or damage what a newer one wrote.

The URL is a secret: it never appears in a log or an error (``name`` says where, without the
password). Keep the password out of it altogether: libpq reads ``PGPASSWORD`` and ``~/.pgpass``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigent.storage import Migration, check_name, script, too_new

if TYPE_CHECKING:
    import psycopg

    from aigent import Character

DEFAULT_SCHEMA = "aigent"
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,29}")
"""An installation's schema: a plain PostgreSQL name, short enough that each agent's schema (the
installation's name, the agent's and a hash) still fits PostgreSQL's 63 characters."""
_PLAIN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
INSTALL = "pip install 'aigent-server[postgres]'"

# A dead server must fail a call, not hang it: leases run out while a call waits.
_DEFAULTS = {
    "connect_timeout": "5",
    "tcp_user_timeout": "5000",  # ms without an ACK before the socket gives up
    "application_name": "aigent-serve",
}

MIGRATIONS: tuple[str, ...] = (
    # 1: the registry, its history, sessions and API keys, as in SQLite (times in seconds since
    # the epoch, double precision: REAL is 4 bytes in PostgreSQL); servers and agents' leases.
    """
    CREATE TABLE agents (name TEXT PRIMARY KEY, owner TEXT NOT NULL, source TEXT NOT NULL,
        uploaded INTEGER NOT NULL, desired TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE messages (id BIGSERIAL PRIMARY KEY, agent TEXT NOT NULL, room TEXT NOT NULL,
        "user" TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL, message_id TEXT, receipts TEXT);
    CREATE INDEX messages_by_room ON messages (agent, room, id);
    CREATE INDEX messages_by_id ON messages (agent, message_id);
    CREATE TABLE sessions (key TEXT PRIMARY KEY, owner TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE api_keys (id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,
        prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION, last_used_at DOUBLE PRECISION);
    CREATE TABLE servers (id TEXT PRIMARY KEY, name TEXT NOT NULL, pid INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL,
        stopped_at DOUBLE PRECISION);
    CREATE TABLE leases (agent TEXT PRIMARY KEY, server TEXT NOT NULL,
        taken_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL);
    """,
    # 2: each agent's character file as text, so any server can run one whose file it lacks
    # (one uploaded to another server, say).
    "ALTER TABLE agents ADD COLUMN content TEXT",
    # 3: where each server is reached, so any server can pass it a request for its agents.
    "ALTER TABLE servers ADD COLUMN url TEXT",
)
"""Each entry one version (the first is version 1); append, never edit one that shipped."""

AGENT_MIGRATIONS: tuple[str, ...] = (
    # 1: a served agent's spending records (aigent.spending.Records), beside its ledger.
    """
    CREATE TABLE spends (id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
        asset TEXT NOT NULL, amount BIGINT NOT NULL, destination TEXT NOT NULL,
        purpose TEXT NOT NULL, state TEXT NOT NULL, note TEXT NOT NULL DEFAULT '');
    CREATE INDEX spends_by_asset ON spends (asset, at);
    """,
    # 2: the versions of the agent's stores (aigent.storage), each migrated on its own.
    "CREATE TABLE store_versions (store TEXT PRIMARY KEY, version INTEGER NOT NULL)",
)
"""The tables of each agent's own schema (its connector makes its ledger's there; its stores,
aigent.storage, theirs)."""


class DatabaseError(Exception):
    """The server's database cannot be opened or used; the message says where (never the
    password) and what to check."""


class SqliteDatabase:
    """The default: one file, one server."""

    dialect = "sqlite"
    url: str | None = None

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.name = str(path)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Durable when the process dies, consistent always; a power cut may lose the last
        # writes. A sync per commit cost 0.4 ms on every message here (the history is the
        # server's view; each agent's memory keeps the conversation too).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock, self._db:
            self._db.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        with self._lock:
            self._db.executescript(script)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresDatabase:
    """One installation's schema in PostgreSQL. One connection, used by one thread at a time;
    when it breaks (the server restarted, the network went away) the next call opens another,
    so a server that lost its database comes back by itself when the database does."""

    dialect = "postgresql"

    def __init__(
        self, url: str, schema: str = DEFAULT_SCHEMA, migrations: tuple[str, ...] = MIGRATIONS
    ) -> None:
        if not (SCHEMA_NAME if migrations is MIGRATIONS else _PLAIN).fullmatch(schema):
            raise DatabaseError(
                f"--database-schema {schema!r} is not a plain PostgreSQL name: use lower-case "
                "letters, digits and _, starting with a letter or _, at most 30 characters"
            )
        self.migrations = migrations
        try:
            # The connector's ledger store already names a server and hides a password.
            import psycopg
            from aigent_connector.postgres_store import describe, redact
            from psycopg.conninfo import conninfo_to_dict, make_conninfo
        except ImportError:
            raise DatabaseError(
                f"a database_url needs psycopg and aigent-connector: {INSTALL}"
            ) from None

        self._redact = redact
        self.url = url
        self.schema = schema
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise DatabaseError(
                f"the database URL is not valid ({redact(str(exc), url).strip()}): write it as "
                "postgresql://user@host:port/dbname"
            ) from None
        self.name = describe(params, schema)
        self._dsn = make_conninfo(url, **{k: v for k, v in _DEFAULTS.items() if k not in params})
        self._lock = threading.RLock()  # exclusive() holds it across its calls
        self._conn: psycopg.Connection[Any] | None = None
        with self._lock:
            self._migrate(self._connection())

    # --- connecting -------------------------------------------------------------------------

    def error(self, doing: str, exc: BaseException) -> DatabaseError:
        reason = " ".join(self._redact(str(exc), self.url).split()) or type(exc).__name__
        low = reason.lower()
        if "password" in low or "authentication" in low:
            hint = ("check the user and its password (PGPASSWORD or ~/.pgpass in the server's "
                    "environment, rather than in the URL)")  # fmt: skip
        elif "does not exist" in low and "database" in low:
            hint = "create the database (createdb) or fix its name in the URL"
        elif "permission denied" in low:
            hint = "grant the user CREATE on the database, or have an administrator run it once"
        else:
            hint = ("check that PostgreSQL is running, that host and port are right, and that it "
                    "accepts connections from here (listen_addresses, pg_hba.conf)")  # fmt: skip
        return DatabaseError(f"{doing} {self.name}: {reason}; {hint}")

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (autocommit), for work that holds one: listening."""
        import psycopg

        try:
            return psycopg.connect(self._dsn, autocommit=True)
        except psycopg.Error as exc:
            raise self.error("cannot open the database at", exc) from None

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg import sql

        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            conn = psycopg.connect(self._dsn, autocommit=True)
            # The schema may not exist yet (the first start makes it): naming it is harmless.
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        except psycopg.Error as exc:
            raise self.error("cannot open the database at", exc) from None
        self._conn = conn
        return conn

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        import psycopg
        from psycopg import sql

        key = _key(self.schema, "aigent-serve migrate")
        schema = sql.Identifier(self.schema)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                exists = conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                ).fetchone()
                if exists is None:  # IF NOT EXISTS would need the right to create even so
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.schema_version (version INTEGER NOT NULL)"
                    ).format(schema)
                )
                row = conn.execute(
                    sql.SQL("SELECT max(version) FROM {}.schema_version").format(schema)
                ).fetchone()
                version = int(row[0]) if row and row[0] is not None else 0
                if version > len(self.migrations):
                    raise DatabaseError(
                        f"the database {self.name} is at schema version {version}, newer than "
                        f"this aigent-server knows ({len(self.migrations)}): a newer server has "
                        "migrated it; upgrade aigent-server on this machine "
                        "(pip install -U aigent-server), or give this installation another "
                        "--database-schema"
                    )
                for number, script in enumerate(self.migrations[version:], start=version + 1):
                    conn.execute(script)  # the search path names the schema
                    conn.execute(
                        sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(schema),
                        (number,),
                    )
        except psycopg.Error as exc:
            raise self.error("cannot prepare the server's tables at", exc) from None

    # --- calls ------------------------------------------------------------------------------

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with self._lock:
            conn = self._connection()
            try:
                cursor = conn.execute(sql.replace("?", "%s"), tuple(args))
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.Error as exc:
                raise self.error("the database call failed at", exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        import psycopg

        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])
            except psycopg.Error as exc:
                raise self.error("the database call failed at", exc) from None

    def transaction(self, work: Any) -> Any:
        """``work(execute)`` in one transaction (``execute`` as :meth:`execute`)."""
        import psycopg

        with self._lock:
            conn = self._connection()

            def execute(sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                cursor = conn.execute(sql.replace("?", "%s"), tuple(args))
                return cursor.fetchall() if cursor.description is not None else []

            try:
                with conn.transaction():
                    return work(execute)
            except psycopg.Error as exc:
                raise self.error("the database call failed at", exc) from None

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """A transaction holding the advisory lock ``name`` (in this schema) till it ends."""
        import psycopg

        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_key(self.schema, name),))
                    yield
            except psycopg.Error as exc:
                raise self.error("the database call failed at", exc) from None

    def migrate_store(self, store: str, migrations: Sequence[Migration]) -> None:
        """Bring ``store`` (its tables in this schema) to ``migrations``' last version."""
        with self.locked(f"migrate {store}"):
            row = self.execute("SELECT version FROM store_versions WHERE store = ?", (store,))
            version = int(row[0][0]) if row else 0
            if version > len(migrations):
                raise too_new(f"store {store} in {self.name}", version, len(migrations))
            for number in range(version + 1, len(migrations) + 1):
                self.execute(script(migrations[number - 1], "postgresql"))
            if len(migrations) > version:
                self.execute(
                    "INSERT INTO store_versions VALUES (?, ?) "
                    "ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                    (store, len(migrations)),
                )

    def storage(self, agent: str) -> PostgresStorage:
        """``agent``'s stores, in its own schema beside its ledger: the same on every server,
        so a reservation, an earning or a proof made on a server that died is there on the one
        that runs the agent next. Connects (blocks)."""
        db = PostgresDatabase(self.url, ledger_schema(self.schema, agent), AGENT_MIGRATIONS)
        return PostgresStorage(db)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:
                    pass  # already gone with the server

    def with_ledger(self, character: Character, agent: str) -> Character:
        """``character`` with its connector's ledger in this database, so that the agent keeps
        its balances on whichever server runs it (a file's own ``ledger_url`` is kept)."""
        if not character.connector.enabled or character.connector.node.get("ledger_url"):
            return character
        connector = character.connector.model_copy(
            update={"ledger_url": self.url, "ledger_schema": ledger_schema(self.schema, agent)}
        )
        return character.model_copy(update={"connector": connector})


class PostgresStore:
    """One store of an agent (aigent.storage.Store) in the agent's schema; migrated on first
    use. Its tables share the agent's one connection."""

    dialect = "postgresql"

    def __init__(self, db: PostgresDatabase, name: str, migrations: Sequence[Migration]) -> None:
        self.db, self.name, self.migrations = db, name, tuple(migrations)
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            self.db.migrate_store(self.name, self.migrations)
            self._ready = True

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._ensure()
        return self.db.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._ensure()
        self.db.executemany(sql, rows)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        self._ensure()
        with self.db.locked(f"store {self.name}"):
            yield

    def close(self) -> None:
        pass  # the connection is the agent's (PostgresStorage.close)


class PostgresStorage:
    """An agent's stores (aigent.storage.Storage) in its schema of the shared database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    def open(self, name: str, migrations: Sequence[Migration]) -> PostgresStore:
        check_name(name)
        return PostgresStore(self.db, name, migrations)

    def close(self) -> None:
        self.db.close()


Database = SqliteDatabase | PostgresDatabase


def _key(schema: str, name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` in ``schema``."""
    digest = hashlib.blake2b(f"{schema} {name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def ledger_schema(installation: str, agent: str) -> str:
    """The schema of ``agent``'s connector ledger: its own (the connector holds one node per
    schema), named for the installation and the agent, the same on every server."""
    plain = re.sub(r"[^a-z0-9]+", "_", agent.lower()).strip("_")[:12] or "agent"
    tag = hashlib.blake2b(agent.encode(), digest_size=4).hexdigest()
    return f"{installation}_ledger_{plain}_{tag}"


def open_database(data_dir: Path, url: str | None, schema: str = DEFAULT_SCHEMA) -> Database:
    """The server's database: PostgreSQL at ``url`` if given, else SQLite in ``data_dir``."""
    if url:
        return PostgresDatabase(url, schema)
    return SqliteDatabase(data_dir / "server.sqlite")
