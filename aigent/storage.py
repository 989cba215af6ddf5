"""Where an agent and its plugins keep what must outlive the process: small sets of tables
("stores"), each with its own versioned migrations.

By default every store is a SQLite file in the agent's data directory (``spending.sqlite``,
``earnings.sqlite``, ...). A server that runs agents on several machines gives each agent a
:class:`Storage` in a shared database instead (``aigent serve --database-url``: the agent's own
PostgreSQL schema), so an agent that moves keeps its reservations, earnings, proofs and
watermarks. Code that keeps state asks ``ctx.storage.open(name, MIGRATIONS)`` and writes SQL
both speak:

- ``?`` placeholders; types ``TEXT``, ``BIGINT``, ``DOUBLE PRECISION``, ``BYTEA`` for bytes;
- ``INSERT ... ON CONFLICT ... DO NOTHING / DO UPDATE SET x = excluded.x`` (not ``OR IGNORE``);
  ``RETURNING`` to learn whether a row went in;
- ``FLOOR(x)`` rather than ``CAST(x AS INTEGER)`` (PostgreSQL rounds);
- a migration that cannot be written once is a mapping from dialect (``"sqlite"``,
  ``"postgresql"``) to its script;
- on PostgreSQL an agent's stores share its schema: a new store names its tables (and indexes)
  for itself (``twitter_posted``), so two stores never claim one name.

Migrations are numbered by their place in the tuple (the first is version 1): append, never
edit one that shipped. A store newer than the code is refused, since older code would misread
what newer code wrote. Calls block: make them from a thread (``aigent.blocking``), as stores
are used today.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from aigent.errors import AigentError

Migration = str | Mapping[str, str]
"""One version of a store: a script, or a script per dialect."""


class StorageError(AigentError):
    """A store cannot be opened or migrated; the message says which and what to do."""


class Store(Protocol):
    """A few tables that belong together, with ``?`` placeholders. Calls may block; they come
    from one thread at a time or take the store's own lock."""

    name: str
    dialect: str

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def exclusive(self) -> AbstractContextManager[None]:
        """One transaction that no other writer of this store interleaves with, on any process
        sharing it: checks and writes made inside it (a cap checked, then a reservation
        written) are atomic. Calls inside it go through the same connection."""
        ...

    def close(self) -> None: ...


class Storage(Protocol):
    """Opens an agent's stores."""

    def open(self, name: str, migrations: Sequence[Migration]) -> Store:
        """The store ``name`` (a plain lower-case name), migrated to ``migrations``. Cheap:
        the connection and the migrations wait for the first call."""
        ...


def script(migration: Migration, dialect: str) -> str:
    if isinstance(migration, str):
        return migration
    if dialect not in migration:
        raise StorageError(f"a migration has no script for {dialect} (it has {sorted(migration)})")
    return migration[dialect]


def too_new(where: str, version: int, known: int) -> StorageError:
    return StorageError(
        f"{where} is at version {version}, newer than this aigent knows ({known}): a newer "
        "aigent wrote it; upgrade aigent (pip install -U aigent) to use it"
    )


class SqliteStore:
    """A store in one SQLite file; its version is the file's ``user_version``."""

    dialect = "sqlite"

    def __init__(self, path: Path, migrations: Sequence[Migration]) -> None:
        self.path = path
        self.name = path.stem
        self.migrations = tuple(migrations)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()  # exclusive() holds it across its calls

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA busy_timeout=5000")  # another process sharing the directory
                _wal(db)
                self._migrate(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(self.migrations):
            raise too_new(str(self.path), version, len(self.migrations))
        legacy: bool | None = None
        for number, migration in enumerate(self.migrations[version:], start=version + 1):
            db.execute("BEGIN IMMEDIATE")
            try:
                # Another connection (a process opening the same file) may have migrated
                # while this one waited for the write lock: what it did is not done twice.
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                if version > len(self.migrations):
                    raise too_new(str(self.path), version, len(self.migrations))
                if version >= number:
                    db.execute("COMMIT")
                    continue
                if legacy is None:
                    # A file from before stores were versioned (version 0, tables present)
                    # already has what its first migrations add: written to be harmless twice.
                    found = db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
                    legacy = version == 0 and found is not None
                try:
                    for statement in _statements(script(migration, self.dialect)):
                        db.execute(statement)
                except sqlite3.OperationalError as exc:
                    if not (legacy and "duplicate column name" in str(exc)):
                        raise
                db.execute(f"PRAGMA user_version = {number}")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn().execute(sql, tuple(args)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            db = self._conn()
            with self.exclusive():
                db.executemany(sql, [tuple(r) for r in rows])

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            db = self._conn()
            if db.in_transaction:  # nested: the outer transaction holds the write lock
                yield
                return
            db.execute("BEGIN IMMEDIATE")  # across processes sharing the data directory too
            try:
                yield
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _wal(db: sqlite3.Connection) -> None:
    """Switch to WAL. Two connections making a new file switch together, and SQLite answers
    one of them "locked" at once, without waiting (the busy timeout does not cover it)."""
    for attempt in range(100):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.01)


def _statements(text: str) -> list[str]:
    """A script's statements (one migration in one transaction, which executescript breaks)."""
    out, current = [], ""
    # Split at each ';' that ends a statement (not one inside a literal or a trigger's body),
    # wherever it is: two statements may share a line.
    for piece in text.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip(" ;\n"):
        out.append(current.strip())
    return [s for s in out if s.strip(" ;\n")]


class FileStorage:
    """The default: each store a SQLite file ``<name>.sqlite`` in the agent's data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def open(self, name: str, migrations: Sequence[Migration]) -> SqliteStore:
        check_name(name)
        return SqliteStore(self.data_dir / f"{name}.sqlite", migrations)


def check_name(name: str) -> None:
    if not name or not all(c.islower() or c.isdigit() or c in "_-" for c in name):
        raise StorageError(f"a store's name is plain lower-case letters, digits, - and _: {name!r}")


SECRETS: tuple[Migration, ...] = (
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
)
"""The ``secrets`` store: random keys an agent makes for itself (not the operator's)."""


def kept_secret(storage: Storage, data_dir: Path, name: str) -> bytes:
    """A random 32-byte key of the agent's own (a STREAM server secret, an invoice key), made
    once and kept: the file ``data_dir/name`` (mode 0600) on one machine; a row of the agent's
    ``secrets`` store when its stores are shared between servers (a file made before is
    adopted), so that what was bound to it (a STREAM connection, an invoice) holds on the next
    server that runs the agent. Blocks: call from a thread."""
    path = data_dir / name
    if isinstance(storage, FileStorage):
        return _secret_file(path)
    store = storage.open("secrets", SECRETS)
    try:
        made = path.read_bytes() if path.exists() else os.urandom(32)
        store.execute(
            "INSERT INTO secrets VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, made)
        )
        ((value,),) = store.execute("SELECT value FROM secrets WHERE name = ?", (name,))
        return bytes(value)
    finally:
        store.close()


def _secret_file(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by a caller beside this one
        return path.read_bytes()
    secret = os.urandom(32)
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    return secret
