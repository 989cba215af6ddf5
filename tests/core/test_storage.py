"""aigent.storage's contract, held by both places a store lives: a SQLite file in the agent's
data directory, and the agent's schema in a real PostgreSQL (``servers``, tests/fixtures/
stores.py; each call opens the storage as one more server would). Migrations run once and all
or nothing, a store newer than the code is refused, a migration may differ per dialect,
``exclusive()`` keeps two writers (threads, processes, servers) from interleaving, and what one
server wrote is there for the next. SQLite's own: files from before stores were versioned."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aigent.storage import FileStorage, Migration, SqliteStore, StorageError, Store, kept_secret
from tests.fixtures.stores import Servers, pg, servers  # noqa: F401

ONE: tuple[Migration, ...] = (
    "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL);"
    "INSERT INTO notes VALUES ('first', 'made by migration 1')",
)
TWO: tuple[Migration, ...] = (
    *ONE,
    "CREATE TABLE counter (name TEXT PRIMARY KEY, n BIGINT NOT NULL);"
    "INSERT INTO counter VALUES ('c', 0)",
)


def test_migrations_run_once_and_a_later_one_only_once_more(servers: Servers) -> None:  # noqa: F811
    first = servers()
    notes = first.open("notes", ONE)
    assert notes.execute("SELECT id, body FROM notes") == [("first", "made by migration 1")]
    notes.execute("INSERT INTO notes VALUES (?, ?)", ("second", "by hand"))
    first.close()  # type: ignore[attr-defined]

    again = servers().open("notes", ONE)  # the next server: nothing runs again
    assert again.execute("SELECT count(*) FROM notes") == [(2,)]
    grown = servers().open("notes", TWO)  # a newer aigent: only migration 2 runs
    assert grown.execute("SELECT count(*) FROM notes") == [(2,)]
    assert grown.execute("SELECT n FROM counter") == [(0,)]


def test_a_store_newer_than_the_code_is_refused(servers: Servers) -> None:  # noqa: F811
    servers().open("notes", TWO).execute("SELECT 1")
    older = servers().open("notes", ONE)
    with pytest.raises(
        StorageError, match=r"version 2, newer than this aigent knows \(1\).*upgrade"
    ):
        older.execute("SELECT 1")


def test_a_failed_migration_leaves_the_store_as_it_was(servers: Servers) -> None:  # noqa: F811
    broken: tuple[Migration, ...] = (*ONE, "CREATE TABLE half (x TEXT); SELECT * FROM nowhere")
    store = servers().open("notes", broken)
    with pytest.raises(Exception, match="nowhere"):
        store.execute("SELECT 1")
    fixed: tuple[Migration, ...] = (*ONE, "CREATE TABLE half (x TEXT)")
    again = servers().open("notes", fixed)  # half was rolled back: creating it works
    assert again.execute("SELECT count(*) FROM half") == [(0,)]
    assert again.execute("SELECT count(*) FROM notes") == [(1,)]


def test_a_migration_may_be_written_per_dialect(servers: Servers) -> None:  # noqa: F811
    per: tuple[Migration, ...] = (
        {
            "sqlite": "CREATE TABLE said (who TEXT); INSERT INTO said VALUES ('sqlite')",
            "postgresql": "CREATE TABLE said (who TEXT); INSERT INTO said VALUES ('postgresql')",
        },
    )
    store = servers().open("dialects", per)
    assert store.execute("SELECT who FROM said") == [(servers.dialect,)]
    assert store.dialect == servers.dialect
    missing = servers().open("other", ({"mysql": "CREATE TABLE t (x TEXT)"},))
    with pytest.raises(StorageError, match=rf"no script for {servers.dialect}.*mysql"):
        missing.execute("SELECT 1")


def test_a_store_name_is_plain(servers: Servers) -> None:  # noqa: F811
    with pytest.raises(StorageError, match="plain lower-case"):
        servers().open("../Spending", ONE)


def test_exclusive_keeps_two_servers_from_interleaving(servers: Servers) -> None:  # noqa: F811
    """Read, then write what was read plus one: lost updates if two writers interleave."""
    stores = [servers().open("notes", TWO) for _ in range(2)]
    stores[0].execute("SELECT 1")  # migrated before the race

    def bump(k: int) -> None:
        for _ in range(50):
            with stores[k].exclusive():
                ((n,),) = stores[k].execute("SELECT n FROM counter WHERE name = 'c'")
                stores[k].execute("UPDATE counter SET n = ? WHERE name = 'c'", (int(n) + 1,))

    threads = [threading.Thread(target=bump, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert stores[0].execute("SELECT n FROM counter") == [(100,)]


def test_servers_opening_a_new_store_at_once_migrate_it_once(servers: Servers) -> None:  # noqa: F811
    """Two connections find version 0 together; the one that waited must not run again what
    the other just did (an ALTER TABLE twice is an error)."""
    for round_ in range(5):
        name = f"race{round_}"  # its own tables: an agent's stores share its schema
        grows: tuple[Migration, ...] = (
            f"CREATE TABLE {name} (id TEXT PRIMARY KEY); INSERT INTO {name} VALUES ('one')",
            f"ALTER TABLE {name} ADD COLUMN note TEXT",
        )
        stores = [servers().open(name, grows) for _ in range(3)]
        failed: list[BaseException] = []

        threads = [threading.Thread(target=_first_call, args=(store, failed)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failed, (round_, failed)
        assert stores[0].execute(f"SELECT id, note FROM {name}") == [("one", None)]


def _first_call(store: Store, failed: list[BaseException]) -> None:
    try:
        store.execute("SELECT 1")
    except BaseException as exc:  # reported by the test, with its round
        failed.append(exc)


def test_exclusive_rolls_back_on_error(servers: Servers) -> None:  # noqa: F811
    store = servers().open("notes", ONE)
    with pytest.raises(RuntimeError), store.exclusive():
        store.execute("INSERT INTO notes VALUES ('gone', 'never')")
        raise RuntimeError("after the write")
    assert store.execute("SELECT id FROM notes") == [("first",)]


def test_executemany_writes_every_row(servers: Servers) -> None:  # noqa: F811
    store = servers().open("notes", ONE)
    store.executemany("INSERT INTO notes VALUES (?, ?)", [(f"n{i}", "x") for i in range(20)])
    assert store.execute("SELECT count(*) FROM notes") == [(21,)]


# --- SQLite's own --------------------------------------------------------------------------------


def test_a_file_from_before_versions_keeps_its_rows_and_columns(tmp_path: Path) -> None:
    """Version 0 with its tables: migrations are written to be harmless on it (IF NOT EXISTS),
    and a column it already has is not added twice."""
    legacy: tuple[Migration, ...] = (
        "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY)",
        "ALTER TABLE items ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE items ADD COLUMN seen BIGINT NOT NULL DEFAULT 0",
    )
    old = sqlite3.connect(tmp_path / "items.sqlite")
    with old:
        old.execute("CREATE TABLE items (id TEXT PRIMARY KEY, note TEXT NOT NULL DEFAULT '')")
        old.execute("INSERT INTO items VALUES ('a', 'kept')")
    old.close()
    store = FileStorage(tmp_path).open("items", legacy)
    assert store.execute("SELECT id, note, seen FROM items") == [("a", "kept", 0)]
    store.close()
    assert sqlite3.connect(tmp_path / "items.sqlite").execute("PRAGMA user_version").fetchone() == (
        3,
    )


def test_a_duplicate_column_is_an_error_on_a_versioned_file(tmp_path: Path) -> None:
    """Only a file from before versions is forgiven a column it has: on a versioned one the
    same error is a migration that is wrong."""
    wrong: tuple[Migration, ...] = (
        "CREATE TABLE items (id TEXT PRIMARY KEY, note TEXT)",
        "ALTER TABLE items ADD COLUMN note TEXT",
    )
    with pytest.raises(sqlite3.OperationalError, match="duplicate column"):
        FileStorage(tmp_path).open("items", wrong).execute("SELECT 1")


def test_the_file_is_named_for_the_store(tmp_path: Path) -> None:
    store = FileStorage(tmp_path / "data").open("earnings", ONE)
    assert isinstance(store, SqliteStore) and store.name == "earnings"
    assert not (tmp_path / "data").exists()  # opening is cheap: nothing until the first call
    store.execute("SELECT 1")
    assert (tmp_path / "data" / "earnings.sqlite").is_file()
    store.close()


BUMP = """
import sys
from pathlib import Path
from aigent.storage import FileStorage
sys.path.insert(0, sys.argv[2])
from tests.core.test_storage import TWO
store = FileStorage(Path(sys.argv[1])).open("notes", TWO)
for _ in range(100):
    with store.exclusive():
        ((n,),) = store.execute("SELECT n FROM counter WHERE name = 'c'")
        store.execute("UPDATE counter SET n = ? WHERE name = 'c'", (int(n) + 1,))
store.close()
"""


def test_exclusive_keeps_two_processes_on_one_file_from_interleaving(tmp_path: Path) -> None:
    FileStorage(tmp_path).open("notes", TWO).execute("SELECT 1")
    root = str(Path(__file__).resolve().parents[2])
    runs = [subprocess.Popen([sys.executable, "-c", BUMP, str(tmp_path), root]) for _ in range(2)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    store = FileStorage(tmp_path).open("notes", TWO)
    assert store.execute("SELECT n FROM counter") == [(200,)]
    store.close()


def test_an_agents_own_key_is_made_once_and_follows_it(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A STREAM secret or an invoice key: made by the first server, the same on the next (a
    payment or an invoice bound to it still holds there); on one machine a 0600 file."""
    first_dir, next_dir = tmp_path / "first", tmp_path / "next"
    made = kept_secret(servers(), first_dir, "x402.key")
    assert len(made) == 32
    shared = servers.dialect == "postgresql"
    again = kept_secret(servers(), next_dir if shared else first_dir, "x402.key")
    assert again == made
    assert kept_secret(servers(), first_dir, "stream-secret") != made  # one key per name
    if not shared:
        assert (first_dir / "x402.key").stat().st_mode & 0o777 == 0o600
    else:  # nothing of it on the servers' disks
        assert not (first_dir / "x402.key").exists() and not next_dir.exists()


def test_a_key_made_before_the_stores_were_shared_is_adopted(
    servers: Servers,  # noqa: F811
    tmp_path: Path,
) -> None:
    if servers.dialect != "postgresql":
        pytest.skip("adoption is of a file into the shared stores")
    (tmp_path / "stream-secret").write_bytes(b"k" * 32)
    assert kept_secret(servers(), tmp_path, "stream-secret") == b"k" * 32
    assert kept_secret(servers(), tmp_path / "elsewhere", "stream-secret") == b"k" * 32
