"""aigent serve on PostgreSQL, against a real server the session starts (tests/connector/
postgres_server.py): the registry, history, sessions and API keys in one schema per
installation, migrations versioned and a newer schema refused, the URL's password in no error;
then the fleet: two real ``aigent serve`` processes on one database split ten agents, one is
SIGKILLed, and its agents come back on the other within two lease periods, each with its
connector ledger as it was, owned by exactly one process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_connector.ledger import Ledger
from aigent_connector.postgres_store import PostgresStore, PostgresStoreError
from aigent_server.database import (
    MIGRATIONS,
    DatabaseError,
    PostgresDatabase,
    SqliteDatabase,
    ledger_schema,
)
from aigent_server.registry import Entry, Registry, Said
from aigent_server.sessions import Sessions

from tests.connector.postgres_server import Server
from tests.connector.test_postgres_store import pg  # noqa: F401  (the session's server)
from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import character, sign_in
from tests.server.test_command import free_port

TOKEN = "fleet-t0ken"
LEASE = 4.0


@pytest.fixture
def schema() -> str:
    return f"s_{uuid.uuid4().hex[:10]}"


def test_registry_history_and_sessions_live_in_the_schema(
    pg: Server,  # noqa: F811
    schema: str,
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        registry = Registry(PostgresDatabase(pg.url(), schema))
        (tmp_path / "ada.json").write_text('{"name": "Ada"}', encoding="utf-8")
        entry = Entry("Ada", "0xabc", tmp_path / "ada.json", False, "running", time.time())
        await registry.add(entry)
        reply = Said("Ada", "assistant", "hello", "m1", {"trn": {"hash": "0x1"}})
        registry.record("Ada", "r1", Said("bob", "user", "hi"), reply)
        sessions = Sessions(registry)
        sid, _ = await sessions.open("0xabc")
        await registry.drain()
        registry.close()

        again = Registry(PostgresDatabase(pg.url(), schema))  # another server, or a restart
        assert [(e.name, e.owner, e.desired) for e in again.entries()] == [
            ("Ada", "0xabc", "running")
        ]
        history = await again.history("Ada", "r1", 10)
        assert [(m["user"], m["text"], m["id"]) for m in history] == [
            ("bob", "hi", None),
            ("Ada", "hello", "m1"),
        ]
        assert isinstance(history[0]["at"], float) and abs(history[0]["at"] - time.time()) < 60
        assert await again.receipts("Ada", "m1") == {"trn": {"hash": "0x1"}}
        assert await again.rooms("Ada") == ["r1"]
        # The file's text too, for a server that lacks the file.
        assert again.execute("SELECT content FROM agents") == [('{"name": "Ada"}',)]
        found = Sessions(again).get(sid)
        assert found is not None and found.owner == "0xabc"
        again.close()

    asyncio.run(scenario())
    assert not (tmp_path / "server.sqlite").exists()


def test_a_newer_schema_is_refused(pg: Server, schema: str) -> None:  # noqa: F811
    PostgresDatabase(pg.url(), schema).close()
    with PostgresDatabase(pg.url(), schema)._connection() as conn:
        conn.execute(f"INSERT INTO {schema}.schema_version VALUES (99)")
    with pytest.raises(DatabaseError) as caught:
        PostgresDatabase(pg.url(), schema)
    message = str(caught.value)
    assert "schema version 99" in message and "upgrade aigent-server" in message
    assert pg.password not in message


def test_migrations_run_once_and_are_counted(pg: Server, schema: str) -> None:  # noqa: F811
    first = PostgresDatabase(pg.url(), schema)
    second = PostgresDatabase(pg.url(), schema)  # a second server: nothing to apply
    versions = first.execute(f"SELECT version FROM {schema}.schema_version ORDER BY 1")
    assert versions == [(n,) for n in range(1, len(MIGRATIONS) + 1)]
    first.close()
    second.close()


def test_errors_never_show_the_password(pg: Server, schema: str) -> None:  # noqa: F811
    wrong = "n0t-the-Passw0rd"
    with pytest.raises(DatabaseError) as caught:
        PostgresDatabase(pg.url(password=wrong), schema)
    message = str(caught.value)
    assert wrong not in message and "password" in message and f"{pg.port}" in message
    with pytest.raises(DatabaseError, match="not a plain PostgreSQL name"):
        PostgresDatabase(pg.url(), "Bad-Name")


def test_sqlite_stays_the_default(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "server.sqlite")
    assert isinstance(registry.db, SqliteDatabase)
    registry.close()


# --- the fleet: real servers, one killed -------------------------------------------------------


def _serve(
    folder: Path,
    data: Path,
    port: int,
    pg: Server,  # noqa: F811
    schema: str,
    *more: str,
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "AIGENT_SERVE_TOKEN": TOKEN,
        "AIGENT_SERVE_DATABASE_URL": pg.url(),  # from the environment: not in ps
    }
    command = [sys.executable, "-m", "aigent.cli", "serve", str(folder), "--port", str(port),
               "--data-dir", str(data), "--database-schema", schema,
               "--lease-seconds", str(LEASE), *more]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop(servers: list[subprocess.Popen[str]]) -> list[str]:
    """Stop the servers still running (as Ctrl-C would); what each printed."""
    outputs = []
    for process in servers:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            outputs.append("".join(process.communicate(timeout=20)))
        except subprocess.TimeoutExpired:
            process.kill()
            outputs.append("".join(process.communicate()))
    return outputs


def _agents(port: int) -> list[dict[str, Any]]:
    reply = httpx.get(
        f"http://127.0.0.1:{port}/api/agents",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=2,
    )
    reply.raise_for_status()
    found: list[dict[str, Any]] = reply.json()
    return found


def _servers(port: int) -> dict[str, Any]:
    reply = httpx.get(
        f"http://127.0.0.1:{port}/api/servers",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=2,
    )
    reply.raise_for_status()
    found: dict[str, Any] = reply.json()
    return found


def _running_on(port: int) -> set[str]:
    try:
        return {a["name"] for a in _agents(port) if a["state"] == "running"}
    except httpx.HTTPError:
        return set()


@pytest.fixture
def ten(tmp_path: Path, model: OpenAIServer) -> Path:
    folder = tmp_path / "characters"
    folder.mkdir()
    for i in range(10):
        data = character(model, f"Agent{i}")
        (folder / f"agent{i}.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_two_servers_split_ten_agents_and_one_takes_over_after_sigkill(
    pg: Server,  # noqa: F811
    schema: str,
    tmp_path: Path,
    ten: Path,
    model: OpenAIServer,
) -> None:
    names = [f"Agent{i}" for i in range(10)]
    ledger_schemas = {n: ledger_schema(schema, n) for n in names}
    # What happened before: each agent's ledger holds a balance of its own.
    for i, name in enumerate(names):
        ledger = Ledger(PostgresStore(pg.url(), schema=ledger_schemas[name]))
        ledger.configure("peer")
        ledger.reserve(f"t{i}", "peer", "in", 100 + i, time.time() + 60)
        ledger.commit(f"t{i}")
        ledger.close()

    ports = free_port(), free_port()
    reach = ("--allow-host", model.url.split("/")[2])
    servers = [_serve(ten, tmp_path / f"data{k}", ports[k], pg, schema, *reach) for k in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not _running_on(ports[0]):
            assert servers[0].poll() is None, servers[0].communicate()
            assert time.monotonic() < deadline, "the first server did not start agents"
            time.sleep(0.2)
        # An eleventh agent, uploaded to the first server: its file is only on that disk.
        uploaded = httpx.post(
            f"http://127.0.0.1:{ports[0]}/api/agents",
            files={"file": ("up.json", json.dumps(character(model, "Uploaded")))},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert uploaded.status_code == 201, uploaded.text
        names.append("Uploaded")
        while True:  # both up, the eleven split between them, none on both
            for process in servers:
                assert process.poll() is None, process.communicate()
            a, b = _running_on(ports[0]), _running_on(ports[1])
            assert not a & b, f"running on both servers: {a & b}"
            if a | b == set(names) and abs(len(a) - len(b)) <= 1:
                break
            assert time.monotonic() < deadline, f"not split: {sorted(a)} / {sorted(b)}"
            time.sleep(0.2)
        while True:  # as the second server's next round sees it
            listed = _servers(ports[1])
            assert listed["database"] == "postgresql" and len(listed["servers"]) == 2
            assert all(s["healthy"] for s in listed["servers"])
            if sorted(s["agents"] for s in listed["servers"]) == [5, 6]:
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        on_b = {a["name"]: a["server"] for a in _agents(ports[1])}
        assert set(on_b.values()) == {s["name"] for s in listed["servers"]}
        b_name = next(s["name"] for s in listed["servers"] if s["this"])
        elsewhere = next(n for n, runner in on_b.items() if runner != b_name)
        # Any server answers for every agent: this one passes the message to the one that
        # runs it, and the answer back (streamed too).
        to_other = f"http://127.0.0.1:{ports[1]}/api/agents/{elsewhere}/messages"
        operator = {"Authorization": f"Bearer {TOKEN}"}
        asked = httpx.post(to_other, json={"text": "hi there"}, headers=operator, timeout=30)
        assert asked.status_code == 200 and asked.json()["text"] == "echo: hi there", asked.text
        stream_headers = {**operator, "accept": "text/event-stream"}
        with httpx.stream("POST", to_other, json={"text": "streamed"}, headers=stream_headers,
                          timeout=30) as streamed:  # fmt: skip
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/event-stream")
            events = "".join(streamed.iter_text())
        assert "echo: streamed" in events and "event: reply" in events, events
        history = httpx.get(to_other, headers=operator, timeout=10).json()["messages"]
        assert [m["text"] for m in history][-2:] == ["streamed", "echo: streamed"], history
        # Live events of the whole fleet on any server: a message told to the server that
        # runs the agent shows on the other one's event stream.
        seen: list[str] = []

        def listen() -> None:
            events_url = f"http://127.0.0.1:{ports[1]}/api/events?agent={elsewhere}&kind=message"
            with httpx.stream("GET", events_url, headers=operator, timeout=15) as live:
                for line in live.iter_lines():
                    seen.append(line)
                    if "told directly" in line and line.startswith("data:"):
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        while not seen:  # connected
            assert time.monotonic() < deadline
            time.sleep(0.05)
        direct = f"http://127.0.0.1:{ports[0]}/api/agents/{elsewhere}/messages"
        assert httpx.post(direct, json={"text": "told directly"}, headers=operator,
                          timeout=30).status_code == 200  # fmt: skip
        listener.join(timeout=10)
        assert any("told directly" in line for line in seen), seen
        # One hop only: what another server already passed on is not passed on again.
        looped = httpx.post(to_other, json={"text": "hi"},
                            headers={**operator, "x-aigent-forwarded": "x:1"})  # fmt: skip
        assert looped.status_code == 409 and "runs on server" in looped.json()["detail"]
        # Without credentials it is refused as on the server that runs it.
        assert httpx.post(to_other, json={"text": "hi"}).status_code == 401

        # Stopped through the other server: the one that runs it follows within a round.
        b_url = f"http://127.0.0.1:{ports[1]}/api/agents/{elsewhere}"
        assert httpx.post(f"{b_url}/stop", headers=operator).status_code == 200
        while elsewhere in _running_on(ports[0]):
            assert time.monotonic() < deadline, f"{elsewhere} still runs on the first server"
            time.sleep(0.1)
        # Started through the second server, with its lease free: it runs there.
        started = httpx.post(f"{b_url}/start", headers=operator, timeout=30)
        assert started.status_code == 200 and started.json()["server"] == b_name, started.text
        assert elsewhere in _running_on(ports[1]) and elsewhere not in _running_on(ports[0])

        # A sign-in and an API key made on the first server hold on the second.
        class On:
            def __init__(self, port: int) -> None:
                self.url = f"http://127.0.0.1:{port}"

            def client(self, **kwargs: Any) -> httpx.Client:
                return httpx.Client(base_url=self.url, timeout=10, **kwargs)

        browser, _ = sign_in(On(ports[0]))  # type: ignore[arg-type]
        made = browser.post("/api/auth/tokens", json={"name": "script"})
        assert made.status_code == 201, made.text
        key = made.json()["token"]
        cookie = browser.cookies.get("aigent_session")
        other = On(ports[1])
        while True:
            with other.client(headers={"Authorization": f"Bearer {key}"}) as script:
                by_key = script.get("/api/auth/tokens").status_code
            with other.client(cookies={"aigent_session": cookie}) as page:
                by_cookie = page.get("/api/auth/session").status_code
            if (by_key, by_cookie) == (200, 200):
                break
            assert time.monotonic() < deadline, (by_key, by_cookie)
            time.sleep(0.2)

        servers[0].send_signal(signal.SIGKILL)
        servers[0].wait(timeout=10)
        killed = time.monotonic()
        leased = None
        while True:
            agents = _agents(ports[1])
            if leased is None and len({a["server"] for a in agents}) == 1:
                leased = time.monotonic() - killed
            if {a["name"] for a in agents if a["state"] == "running"} == set(names):
                break
            assert time.monotonic() - killed < 2 * LEASE, f"not back in two lease periods: {agents}"
            time.sleep(0.1)
        back = time.monotonic() - killed
        print(f"\nfailover: leases taken {leased:.2f} s, all running {back:.2f} s after SIGKILL")
        assert leased is not None and leased <= 2 * LEASE, leased
        health = [s for s in _servers(ports[1])["servers"] if not s["healthy"]]
        assert len(health) == 1  # the killed one, seen dead

        # Each ledger as it was, and held by the one live server's connector.
        import psycopg

        with psycopg.connect(pg.url(), autocommit=True) as conn:
            for i, name in enumerate(names[:10]):
                row = conn.execute(
                    f"SELECT balance FROM {ledger_schemas[name]}.accounts WHERE id = 'peer'"
                ).fetchone()
                assert row == (100 + i,), (name, row)
        with pytest.raises(PostgresStoreError, match="in use by another connector"):
            PostgresStore(pg.url(), schema=ledger_schemas[names[0]])
    finally:
        outputs = stop(servers)
    for output in outputs:
        assert pg.password not in output


class Cuttable:
    """A TCP relay in front of PostgreSQL that the test cuts and restores, as a network
    failure between a server and its database would."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for end in (a, b):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):  # wakes the accept that close alone would not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()


def test_a_server_that_loses_its_database_stops_its_agents(
    pg: Server,  # noqa: F811
    schema: str,
    tmp_path: Path,
    model: OpenAIServer,
) -> None:
    folder = tmp_path / "characters"
    folder.mkdir()
    for name in ("Ann", "Ben"):
        data = character(model, name)
        (folder / f"{name.lower()}.json").write_text(json.dumps(data), encoding="utf-8")
    relay = Cuttable(pg.port)
    port = free_port()
    cut_off = Server(pg.host, relay.port, pg.user, pg.password, pg.dbname)
    process = _serve(folder, tmp_path / "data", port, cut_off, schema)
    try:
        deadline = time.monotonic() + 60
        while _running_on(port) != {"Ann", "Ben"}:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the agents did not start"
            time.sleep(0.2)
        relay.cut()
        cut = time.monotonic()
        while _running_on(port):
            assert time.monotonic() - cut < LEASE + 10, "agents still run without the database"
            time.sleep(0.1)
        stopped = time.monotonic() - cut
        # Before its lease could lapse for another server to take the agents.
        assert stopped < LEASE, stopped
        lost = _servers(port)["lost"]
        assert lost and pg.password not in lost and f"{relay.port}" in lost
        relay.restore()  # the database is back: the agents start again, here
        while _running_on(port) != {"Ann", "Ben"}:
            assert time.monotonic() - cut < 60, "the agents did not come back"
            time.sleep(0.2)
        assert _servers(port)["lost"] is None
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output = "".join(process.communicate(timeout=20))
        except subprocess.TimeoutExpired:
            process.kill()
            output = "".join(process.communicate())
        relay.cut()
    assert pg.password not in output


def test_a_reservation_made_on_a_dead_server_counts_on_the_next(
    pg: Server,  # noqa: F811
    schema: str,
    tmp_path: Path,
) -> None:
    """Spending records in the agent's own schema: what one server reserved (and never
    settled: it was killed mid-payment) counts against the caps on the server that runs the
    agent next."""
    from aigent.spending import MIGRATIONS, Limits, SpendDenied, SpendingPolicy

    installation = PostgresDatabase(pg.url(), schema)
    limits = {"XRP": Limits(per_day=1000)}

    async def first_server() -> None:
        policy = SpendingPolicy(limits, tmp_path / "a" / "spending.sqlite")
        storage = installation.storage("Payer")
        policy.records = storage.open("spending", MIGRATIONS)
        await policy.reserve("XRP", 700, "rAlice", "a payment in flight")
        # SIGKILL here: no release, no commit; the connection goes with the process.
        storage.close()

    async def next_server() -> None:
        policy = SpendingPolicy(limits, tmp_path / "b" / "spending.sqlite")
        storage = installation.storage("Payer")
        policy.records = storage.open("spending", MIGRATIONS)
        assert policy.spent("XRP", 86400) == 700
        with pytest.raises(SpendDenied, match="daily cap"):
            await policy.reserve("XRP", 400, "rBob")
        await policy.reserve("XRP", 300, "rBob")
        assert policy.spent("XRP", 86400) == 1000
        storage.close()

    asyncio.run(first_server())
    asyncio.run(next_server())
    installation.close()
    assert not (tmp_path / "a" / "spending.sqlite").exists()


def test_two_servers_reserving_at_once_never_pass_the_cap_together(
    pg: Server,  # noqa: F811
    schema: str,
    tmp_path: Path,
) -> None:
    """The caps are checked under a lock on the agent's table: two servers' policies (as
    during a hand-over) reserving at the same moment cannot both fit under what is left."""
    from aigent.spending import MIGRATIONS, Limits, SpendDenied, SpendingPolicy

    installation = PostgresDatabase(pg.url(), schema)
    limits = {"XRP": Limits(per_day=1000)}
    granted: list[int] = []

    def server(k: int) -> None:
        policy = SpendingPolicy(limits, tmp_path / f"s{k}" / "spending.sqlite")
        storage = installation.storage("Payer")
        policy.records = storage.open("spending", MIGRATIONS)

        async def reserve_all() -> None:
            for _ in range(10):
                try:
                    await policy.reserve("XRP", 100, "rAlice")
                    granted.append(k)
                except SpendDenied:
                    pass

        asyncio.run(reserve_all())
        storage.close()

    threads = [threading.Thread(target=server, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(granted) == 10, granted  # 1000 of 2000 asked, never more
    check = installation.storage("Payer")
    spends = check.open("spending", MIGRATIONS)
    assert spends.execute("SELECT sum(amount) FROM spends WHERE state = 'reserved'") == [(1000,)]
    check.close()
    installation.close()
