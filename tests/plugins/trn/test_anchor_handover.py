"""A server SIGKILLed in the middle of anchoring a batch, and the agent started again by the
next server (on the same data directory, or on another one sharing the agent's PostgreSQL
schema): the batch in flight is confirmed (its tx was mined) or its very tx re-sent (it was
recorded, never sent), so every item is anchored exactly once and no proof is lost. The first
server is a real process running the agent; it is killed while its anchoring thread sits
between recording the tx and learning its receipt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aigent_trn import chain
from aigent_trn.receipt import check_receipt
from aigent_trn.store import MIGRATIONS, NAME, ProofStore

from aigent import Agent
from aigent.storage import FileStorage, Storage
from tests.connector.postgres_server import Server
from tests.connector.test_postgres_store import pg  # noqa: F401  (the session's server)

MODEL = str(Path(__file__).parents[2] / "fixtures" / "scripted_model.py")

# The first server: runs the agent until its anchoring thread has recorded the batch's tx and
# (at stage "sent") broadcast it; there it says so and freezes, to be killed.
FIRST_SERVER = """
import asyncio, sys, time
from aigent import Agent
from aigent_trn import chain

path, url, schema, stage = sys.argv[1:]
broadcast = chain.Signer.broadcast

def freeze(self, raw):
    if stage == "sent":
        broadcast(self, raw)
    print(stage, flush=True)
    time.sleep(600)

chain.Signer.broadcast = freeze

async def main():
    storage = None
    if url:
        from aigent_server.database import PostgresDatabase
        storage = PostgresDatabase(url, schema).storage("Tester")
    async with Agent.from_file(path, storage=storage) as agent:
        for i in range(2):
            await agent.chat(f"question {i}")
        await asyncio.sleep(600)

asyncio.run(main())
"""


def _run_first_server(path: Path, url: str, schema: str, stage: str, key: str) -> None:
    env = {**os.environ, "TRN_PRIVATE_KEY": key}
    proc = subprocess.Popen(
        [sys.executable, "-c", FIRST_SERVER, str(path), url, schema, stage],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        with ThreadPoolExecutor(1) as pool:
            said = pool.submit(proc.stdout.readline).result(timeout=90)
        if said.strip() != stage:
            proc.kill()
            raise AssertionError(f"the first server ended early: {proc.communicate()[1][-3000:]}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-batch: no shutdown, no cleanup
        proc.communicate(timeout=30)


@pytest.mark.parametrize("stage", ["planned", "sent"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_batch_in_flight_when_the_server_dies_is_anchored_once_by_the_next(
    anvil: dict[str, Any],
    registry: str,
    scripted_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
    stage: str,
) -> None:
    key = anvil["keys"][7]
    settings = {
        "network": "local", "rpc_url": anvil["url"], "registry": registry, "batch_size": 2,
        "batch_seconds": 60, "poll_seconds": 0.05,
    }  # fmt: skip
    url = schema = ""
    if backend == "postgresql":
        server: Server = request.getfixturevalue("pg")
        url, schema = server.url(), f"t_{uuid.uuid4().hex[:12]}"

    def storage() -> Storage:
        if not url:
            return FileStorage(tmp_path / "first")  # the same machine, restarted
        from aigent_server.database import PostgresDatabase

        installation = PostgresDatabase(url, schema)  # a server's own connection...
        try:
            return installation.storage("Tester")  # ...and the agent's, which it gives the agent
        finally:
            installation.close()

    first = scripted_character(
        plugins=[MODEL, "trn"], settings={"trn": settings}, data_dir=str(tmp_path / "first")
    )
    w3 = chain.connect(anvil["url"], 7672)
    me = w3.eth.account.from_key(key).address
    nonce_before = w3.eth.get_transaction_count(me)
    _run_first_server(first, url, schema, stage, key)

    left = storage()
    store = ProofStore(left.open(NAME, MIGRATIONS))
    (batch,) = store.unanchored()  # sealed, its tx recorded, its anchor not
    planned = batch["planned_tx"]
    assert planned and batch["planned_raw"] and batch["size"] == 2
    mined = w3.eth.get_transaction_count(me) - nonce_before
    assert mined == (1 if stage == "sent" else 0)

    # The next server: the agent starts again (elsewhere, when its stores are in PostgreSQL).
    monkeypatch.setenv("TRN_PRIVATE_KEY", key)
    data_dir = tmp_path / ("first" if not url else "second")
    again = scripted_character(
        plugins=[MODEL, "trn"], settings={"trn": settings}, data_dir=str(data_dir)
    )
    next_storage = storage()
    async with Agent.from_file(again, storage=next_storage):
        pass  # start() finishes what the killed server left
    if url:
        next_storage.close()  # type: ignore[attr-defined]

    assert store.unanchored() == [] and store.queued() == 0
    assert w3.eth.get_transaction_count(me) == nonce_before + 1  # one anchor tx, ever
    topic0 = w3.to_hex(w3.keccak(text=chain.ANCHORED_TOPIC))
    logs = w3.eth.get_logs(
        {"address": registry, "fromBlock": 0, "topics": [topic0, "0x" + batch["root"]]}
    )
    assert [w3.to_hex(log["transactionHash"]) for log in logs] == [planned]
    ids = store.message_ids(batch["id"])
    assert len(ids) == 2
    texts = set()
    for message_id in ids:  # every proof kept, every receipt checks against the chain
        receipt = store.receipt(message_id)
        assert receipt is not None and receipt["anchor"]["tx_hash"] == planned
        assert check_receipt(receipt, text=receipt["canonical"]["content"]) == []
        found = chain.find_root(w3, registry, receipt["root"], anchorer=me)
        assert found is not None and found["tx_hash"] == planned
        texts.add(receipt["canonical"]["content"])
    assert texts == {"echo: question 0", "echo: question 1"}
    if url:
        left.close()  # type: ignore[attr-defined]
    else:
        store.close()
