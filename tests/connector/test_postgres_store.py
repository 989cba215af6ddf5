"""The ledger in PostgreSQL, against a real server the session starts (tests/connector/
postgres_server.py): balances and transfer ids survive reopening, group commit from the event
loop waits for the row to be in the database, errors name the server and never the password,
one process per schema, a node configured with ledger_url keeps its ledger there, and SIGKILL
mid-traffic loses nothing acknowledged."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aigent_connector import postgres_store
from aigent_connector.config import ConfigError, parse_config
from aigent_connector.ledger import Ledger, LedgerUnavailable
from aigent_connector.node import Node
from aigent_connector.packets import Fulfill, Prepare, Reject
from aigent_connector.postgres_store import PostgresStore, PostgresStoreError
from aigent_connector.settlement import Settler

from tests.connector.killing import assert_nothing_lost, group_commit_traffic, kill_mid_traffic
from tests.connector.postgres_server import NoPostgres, Server, bindir, throwaway_postgres
from tests.connector.test_ledger_group_commit import packet

FAR = time.time() + 3600


@pytest.fixture(scope="session")
def pg() -> Iterator[Server]:
    try:
        bindir()
    except NoPostgres as exc:
        pytest.skip(str(exc))
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def schema() -> str:
    """A schema of its own per test: tests share the server, never rows."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def peek(pg: Server) -> Iterator[Any]:
    """A separate connection: what another process (or a restarted node) would read."""
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        yield conn


def open_ledger(pg: Server, schema: str) -> Ledger:
    return Ledger(PostgresStore(pg.url(), schema=schema))


def test_balances_and_committed_transfers_survive_reopening(pg: Server, schema: str) -> None:
    ledger = open_ledger(pg, schema)
    ledger.configure("alice", max_balance=1000, settle_threshold=-50, settle_to=0)
    ledger.reserve("t1", "alice", "in", 300, FAR)
    ledger.commit("t1")
    assert ledger.settled("alice", -100, settlement_id="s1")
    ledger.reserve("open", "alice", "in", 5, FAR)  # a hold: memory only
    ledger.close()

    again = open_ledger(pg, schema)
    alice = again.account("alice")
    assert (alice.balance, alice.reserved_in, alice.max_balance) == (200, 0, 1000)
    assert (alice.settle_threshold, alice.settle_to) == (-50, 0)
    again.reserve("t1", "alice", "in", 300, FAR)  # a repeat of a committed step: no-op
    assert again.commit("t1") is None
    assert not again.settled("alice", -100, settlement_id="s1")  # counted once
    assert again.account("alice").balance == 200
    again.reserve("t2", "alice", "in", 800, FAR)  # the whole credit is free again
    again.close()


async def test_acommit_returns_once_the_row_is_in_postgres(
    pg: Server, schema: str, peek: Any
) -> None:
    ledger = open_ledger(pg, schema)
    ledger.configure("alice", max_balance=10**9)
    ledger.configure("bob", min_balance=-(10**9))
    state = f'SELECT state FROM "{schema}".transfers WHERE id = %s'
    for i in range(10):
        await packet(ledger, i)
        assert peek.execute(state, (f"in{i}",)).fetchone() == ("committed",)
        assert peek.execute(state, (f"out{i}",)).fetchone() == ("committed",)  # same commit
        balance = peek.execute(f"SELECT balance FROM \"{schema}\".accounts WHERE id = 'alice'")
        assert balance.fetchone() == ((i + 1) * 10,)
    ledger.close()


async def test_concurrent_packets_share_transactions(pg: Server, schema: str, peek: Any) -> None:
    ledger = open_ledger(pg, schema)
    ledger.configure("alice", max_balance=10**9)
    ledger.configure("bob", min_balance=-(10**9))
    before = ledger.writes
    await asyncio.gather(*(packet(ledger, i, fulfil=i % 4 != 0) for i in range(400)))
    assert ledger.account("alice").balance == 300 * 10
    assert ledger.writes - before < 300 / 2  # at least two packets per round trip
    states = peek.execute(f'SELECT state, COUNT(*) FROM "{schema}".transfers GROUP BY state')
    assert dict(states.fetchall()) == {"committed": 600}  # rejected packets leave no rows
    ledger.close()


def test_the_name_and_errors_never_show_the_password(pg: Server, schema: str) -> None:
    store = PostgresStore(pg.url(), schema=schema)
    assert store.name == f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.dbname} (schema {schema})"
    store.close()

    with pytest.raises(PostgresStoreError) as wrong:
        PostgresStore(pg.url(password="not-the-Secret-42"), schema=schema)
    message = str(wrong.value)
    assert f"{pg.host}:{pg.port}/{pg.dbname}" in message
    assert "password authentication failed" in message and "PGPASSWORD" in message
    assert "not-the-Secret-42" not in message and pg.password not in message


def test_a_server_that_is_down_is_named_with_what_to_check(pg: Server) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: the server is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = pg.url(password="Secret-in-the-url", port=port)
    with pytest.raises(PostgresStoreError) as down:
        PostgresStore(url)
    message = str(down.value)
    assert f"ledger at postgresql://{pg.user}@127.0.0.1:{port}/postgres (schema" in message
    assert "check that the server is running" in message
    assert "Secret-in-the-url" not in message


async def test_a_lost_connection_refuses_the_packet_and_names_the_server(
    pg: Server, schema: str, peek: Any
) -> None:
    ledger = open_ledger(pg, schema)
    ledger.configure("alice", max_balance=10**9)
    await packet(ledger, 1)
    writer = ledger.store._writer.info.backend_pid  # type: ignore[attr-defined]
    peek.execute("SELECT pg_terminate_backend(%s)", (writer,))  # a server restart, say
    with pytest.raises(LedgerUnavailable) as lost:
        await packet(ledger, 2)
    assert lost.value.code == "T00"  # the connector rejects: no Fulfill goes upstream
    assert f"{pg.host}:{pg.port}" in str(lost.value) and pg.password not in str(lost.value)
    with pytest.raises(LedgerUnavailable):
        await ledger.areserve("in3", "alice", "in", 10, FAR)
    ledger.close()
    again = open_ledger(pg, schema)  # reopened: what the database holds, nothing more
    assert again.account("alice").balance == 10
    again.close()


def test_one_process_owns_a_schema(
    pg: Server, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_store, "LOCK_WAIT", 0.2)
    first = PostgresStore(pg.url(), schema=schema)
    with pytest.raises(PostgresStoreError, match="in use by another connector process"):
        PostgresStore(pg.url(), schema=schema)
    other = PostgresStore(pg.url(), schema=schema + "_b")  # another node, its own schema
    other.close()
    first.close()
    PostgresStore(pg.url(), schema=schema).close()  # free again once the owner is gone


def test_a_missing_psycopg_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets uninstalled
    with pytest.raises(ImportError, match=r"pip install 'aigent-connector\[postgres\]'"):
        PostgresStore("postgresql://u@localhost/db")


def test_importing_the_connector_does_not_import_psycopg() -> None:
    code = (
        "import sys, aigent_connector.node, aigent_connector.postgres_store; "
        "assert 'psycopg' not in sys.modules, 'psycopg imported at start-up'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_config_errors_name_the_field_and_hide_the_url() -> None:
    base = {"node_id": "hub", "address": "g.hub"}
    with pytest.raises(ConfigError) as bad:
        parse_config({**base, "ledger_url": "mysql://u:Hunter2@db/x"}, "node.yaml")
    assert "node.yaml: ledger_url: " in str(bad.value) and "postgresql://" in str(bad.value)
    assert "Hunter2" not in str(bad.value)
    with pytest.raises(ConfigError, match=r"node\.yaml: ledger_schema: .*plain PostgreSQL name"):
        parse_config({**base, "ledger_schema": "Robert'); DROP"}, "node.yaml")
    config = parse_config({**base, "ledger_url": "postgresql://u:Hunter2@db/x"})
    assert "Hunter2" not in repr(config)


# --- a node --------------------------------------------------------------------------------------

FULFILLMENT = os.urandom(32)
CONDITION = hashlib.sha256(FULFILLMENT).digest()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALICE", "BOB"):
        monkeypatch.setenv(f"{name}_BTP_TOKEN", f"{name.lower()}-{os.urandom(8).hex()}")


def hub_config(pg: Server, schema: str, tmp: Path) -> dict[str, Any]:
    return {
        "node_id": "hub", "address": "g.hub", "listen": {"port": 0},
        "ledger_url": pg.url(), "ledger_schema": schema,
        "ledger_path": str(tmp / "hub.sqlite"),  # unused: ledger and settlements are in pg
        "peers": {
            "alice": {"relation": "child", "token_env": "ALICE_BTP_TOKEN", "max_balance": 5000},
            "bob": {"relation": "child", "token_env": "BOB_BTP_TOKEN", "settle_threshold": -200},
        },
    }  # fmt: skip


class Paid:
    """A settlement engine that pays at once."""

    def __init__(self) -> None:
        self.paid: list[tuple[str, int]] = []

    async def settle(self, account: str, amount: int, settlement_id: str | None = None) -> int:
        self.paid.append((account, amount))
        return amount


def child_config(tmp: Path, name: str, port: int) -> dict[str, Any]:
    return {
        "node_id": name, "parent": "hub", "ledger_path": str(tmp / f"{name}.sqlite"),
        "peers": {"hub": {"relation": "parent", "url": f"ws://127.0.0.1:{port}",
                          "token_env": f"{name.upper()}_BTP_TOKEN"}},
    }  # fmt: skip


@pytest.fixture
async def hub(pg: Server, schema: str, tokens: None, tmp_path: Path) -> AsyncIterator[Node]:
    node = await Node(parse_config(hub_config(pg, schema, tmp_path))).start()
    try:
        yield node
    finally:
        await node.stop()


async def test_a_node_with_ledger_url_keeps_its_ledger_in_postgres(
    hub: Node, pg: Server, schema: str, peek: Any, tmp_path: Path
) -> None:
    assert hub.btp_port is not None
    alice = await Node(parse_config(child_config(tmp_path, "alice", hub.btp_port))).start()
    bob = await Node(parse_config(child_config(tmp_path, "bob", hub.btp_port))).start()

    async def bob_receives(source: str, prepare: Prepare) -> Fulfill | Reject:
        return Fulfill(FULFILLMENT, b"thanks")

    bob.connector.set_packet_handler(bob_receives)
    engine = Paid()
    hub.connector.set_settlement_engine("bob", engine)
    try:
        expires = datetime.now(UTC) + timedelta(seconds=10)
        for _ in range(3):
            answer = await alice.connector.send(Prepare(100, expires, CONDITION, "g.hub.bob"))
            assert isinstance(answer, Fulfill)
    finally:
        await alice.stop()
        await bob.stop()
    # The hub acknowledged the Fulfills only once PostgreSQL held them; owing bob 300, past
    # his threshold, it settled with him, and that is in PostgreSQL too.
    for _ in range(100):
        if engine.paid and hub.connector.ledger.account("bob").balance == 0:
            break
        await asyncio.sleep(0.05)
    assert engine.paid == [("bob", 300)]
    rows = peek.execute(f'SELECT id, balance, max_balance FROM "{schema}".accounts ORDER BY id')
    assert rows.fetchall() == [("alice", 300, 5000), ("bob", 0, None)]
    settled = peek.execute(f"SELECT amount FROM \"{schema}\".transfers WHERE state = 'settled'")
    assert settled.fetchall() == [(300,)]
    done = peek.execute(f'SELECT account, amount, state, settled FROM "{schema}".settlements')
    assert done.fetchall() == [("bob", 300, "done", 300)]
    assert not [n for n in os.listdir(tmp_path) if "settlements" in n]  # nothing on this disk
    assert pg.password not in str(hub.connector.ledger.path)


async def test_a_second_node_on_the_same_schema_is_refused(
    hub: Node, pg: Server, schema: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(postgres_store, "LOCK_WAIT", 0.2)
    with pytest.raises(PostgresStoreError, match=f"schema {schema}.*in use"):
        Node(parse_config(hub_config(pg, schema, tmp_path / "other")))


# --- SIGKILL mid-settlement ---------------------------------------------------------------------

SETTLING = """
import asyncio, sys, time
from aigent_connector.ledger import Ledger
from aigent_connector.postgres_store import PostgresStore
from aigent_connector.settlement import Settler

class Hangs:
    async def settle(self, account, amount, settlement_id=None):
        print(settlement_id, flush=True)
        await asyncio.Event().wait()  # the engine's request still out when the process dies

async def main():
    ledger = Ledger(PostgresStore(sys.argv[1], schema=sys.argv[2]))
    ledger.configure("bob", settle_threshold=-150, settle_to=0)
    ledger.reserve("t1", "bob", "out", 200, time.time() + 60)
    ledger.commit("t1")
    Settler(ledger).set_engine("bob", Hangs())
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _die_settling(pg: Server, schema: str, where: Path) -> str:
    """Run SETTLING in a process of its own until its engine is called, SIGKILL it then;
    the settlement id it was paying."""
    dsn = f"host={pg.host} port={pg.port} user={pg.user} dbname={pg.dbname}"
    env = {**os.environ, "PGPASSWORD": pg.password}
    process = subprocess.Popen(
        [sys.executable, "-c", SETTLING, dsn, schema],
        stdout=subprocess.PIPE, text=True, env=env, cwd=where,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        timer = threading.Timer(30, process.kill)  # a hung start must not hang the suite
        timer.start()
        line = process.stdout.readline().strip()
        timer.cancel()
    finally:
        process.kill()  # SIGKILL, with the engine's call in flight
        process.wait()
    assert line.startswith("bob:"), line
    return line


def test_a_settlement_pending_when_its_process_dies_resumes_with_its_id(
    pg: Server, schema: str, tmp_path: Path
) -> None:
    """The settlement is in the ledger's schema, not a file on the dead process's disk: the
    next owner of the schema (here a process of its own, as on another host) resumes it with
    the same id, so an engine that remembers ids pays once."""
    from tests.connector.test_settlement import RecordingEngine

    first_id = _die_settling(pg, schema, tmp_path)
    assert not list(tmp_path.glob("*settlements*"))

    async def next_owner() -> None:
        ledger = Ledger(PostgresStore(pg.url(), schema=schema))
        settler = Settler(ledger, retry_delay=0.05)
        try:
            assert ledger.account("bob").balance == -200
            assert settler.pending() == [(first_id, "bob", 200)]
            engine = RecordingEngine()
            engine.paid[first_id] = 200  # the dead process's call had gone through
            settler.set_engine("bob", engine)
            await settler.idle()
            assert engine.calls == [("bob", 200, first_id)]  # same id: nothing paid twice
            assert ledger.account("bob").balance == 0
            assert settler.pending() == []
            assert settler.history("bob") == [(first_id, 200, "done", 200)]
        finally:
            await settler.stop()
            ledger.close()

    asyncio.run(next_owner())


async def test_pending_settlements_of_an_earlier_file_move_into_the_schema(
    pg: Server, schema: str, tokens: None, tmp_path: Path
) -> None:
    """Before settlements were kept in the schema, a PostgreSQL ledger's were in a file where
    ledger_path points: a node started with that file takes its pending ones, ids and all."""
    from aigent_connector.settlement import SqliteSettlements

    legacy = tmp_path / "hub-settlements.sqlite"
    old = SqliteSettlements(legacy)
    old.start("bob:pending-one", "bob", 250)
    old.start("bob:done-one", "bob", 100)
    old.finish("bob:done-one", 100)
    old.close()
    node = Node(parse_config(hub_config(pg, schema, tmp_path)))
    try:
        engine = Paid()
        node.connector.set_settlement_engine("bob", engine)
        assert node.connector.settler is not None
        await node.connector.settler.idle()
        assert engine.paid == [("bob", 250)]
        assert node.connector.settler.history("bob") == [("bob:pending-one", 250, "done", 250)]
    finally:
        await node.stop()
    assert not legacy.exists() and (tmp_path / "hub-settlements.sqlite.adopted").exists()


# --- SIGKILL mid-traffic -----------------------------------------------------------------------

TRAFFIC = group_commit_traffic(
    "from aigent_connector.ledger import Ledger; "
    "from aigent_connector.postgres_store import PostgresStore; "
    'ledger = Ledger(PostgresStore(sys.argv[1], schema="killed"))'
)


@pytest.mark.slow
def test_group_committed_balances_survive_sigkill_mid_traffic(
    pg: Server, peek: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 packets in flight, the process killed at random moments three times: every
    acknowledged Fulfill is in PostgreSQL, no packet counts twice, and both balances equal
    exactly what was committed. The password reaches the script as PGPASSWORD, not in the
    DSN."""
    peek.execute("DROP SCHEMA IF EXISTS killed CASCADE")
    monkeypatch.setenv("PGPASSWORD", pg.password)
    dsn = Path(f"host={pg.host} port={pg.port} user={pg.user} dbname={pg.dbname}")
    acknowledged, in_flight = kill_mid_traffic(TRAFFIC, dsn, pause=1.0)
    ledger = Ledger(PostgresStore(str(dsn), schema="killed"))
    ledger.recover(now=time.time() + 60)
    rows = peek.execute("SELECT id, amount, state FROM killed.transfers").fetchall()
    assert_nothing_lost(ledger, rows, acknowledged, in_flight)
    ledger.close()


def test_durability_is_asked_of_the_server_not_taken_from_its_settings(
    pg: Server, schema: str
) -> None:
    # A server configured with synchronous_commit off would otherwise make "fsync" a lie.
    for durability, expected in (("fsync", "on"), ("os", "off")):
        store = PostgresStore(pg.url(), schema=f"{schema}_{durability}", durability=durability)
        try:
            row = store._writer.execute("SHOW synchronous_commit").fetchone()
            assert row is not None and row[0] == expected
        finally:
            store.close()
