"""A running agent anchors what it publishes: the `trn` plugin's service seals batches by size
or time, anchors them on a real local chain (anvil) and the replies' receipts gain the anchor
tx."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aigent_trn import chain
from aigent_trn.receipt import check_receipt
from aigent_trn.store import ProofStore

from aigent import Agent
from aigent.errors import PluginError


def _settings(anvil: dict[str, Any], registry: str, **extra: Any) -> dict[str, Any]:
    return {
        "network": "local",
        "rpc_url": anvil["url"],
        "registry": registry,
        "batch_size": 3,
        "batch_seconds": 0.3,
        "poll_seconds": 0.05,
        **extra,
    }


async def _until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    # the loop runs in the agent; polling its visible effect is what a user would do
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_agent_publishes_and_the_loop_anchors_by_size_and_by_time(
    anvil: dict[str, Any],
    registry: str,
    scripted_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TRN_PRIVATE_KEY", anvil["keys"][4])
    path = scripted_character(
        plugins=[str(Path(__file__).parents[2] / "fixtures" / "scripted_model.py"), "trn"],
        settings={"trn": _settings(anvil, registry)},
    )
    async with Agent.from_file(path) as agent:
        replies = [await agent.chat(f"question {i}") for i in range(4)]
        # 3 sealed by size at once; the 4th waits for batch_seconds, then is sealed by time
        await _until(lambda: all("anchor" in r.receipts["trn"] for r in replies))
    w3 = chain.connect(anvil["url"], 7672)
    txs = {r.receipts["trn"]["anchor"]["tx_hash"] for r in replies}
    assert len(txs) == 2  # one batch of 3 by size, one of 1 by time
    for i, reply in enumerate(replies):
        receipt = reply.receipts["trn"]
        assert receipt["canonical"]["agent"] == "Tester"
        assert check_receipt(receipt, text=f"echo: question {i}") == []
        found = chain.find_root(w3, registry, receipt["root"])
        assert found is not None and found["tx_hash"] == receipt["anchor"]["tx_hash"]
        assert found["anchorer"] == w3.eth.account.from_key(anvil["keys"][4]).address
    # the proof store agrees after the agent stopped
    store = ProofStore(tmp_path / "data" / "trn_proofs.sqlite")
    assert store.unanchored() == [] and store.queued() == 0
    assert store.receipt(replies[0].message_id) is None  # keyed by the outgoing id, not input
    store.close()
    assert "trn: anchored" in caplog.text
    assert anvil["keys"][4] not in caplog.text and anvil["keys"][4][2:] not in caplog.text


async def test_sealed_batch_left_by_a_crash_is_anchored_once_at_next_start(
    anvil: dict[str, Any],
    registry: str,
    scripted_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Crash after the anchor tx was signed and recorded but before it was sent: the next
    start sends that same tx (same hash, same nonce), so the root is anchored exactly once."""
    key = anvil["keys"][5]
    monkeypatch.setenv("TRN_PRIVATE_KEY", key)
    path = scripted_character(
        plugins=[str(Path(__file__).parents[2] / "fixtures" / "scripted_model.py"), "trn"],
        settings={"trn": {**_settings(anvil, registry, batch_size=2), "anchor": False}},
    )
    async with Agent.from_file(path) as agent:  # anchoring off: nothing anchors in this run
        for i in range(2):
            await agent.chat(f"q{i}")
    store = ProofStore(tmp_path / "data" / "trn_proofs.sqlite")
    (batch,) = store.unanchored()
    w3 = chain.connect(anvil["url"], 7672)
    first = chain.Signer(w3, key)
    contract = w3.eth.contract(address=registry, abi=chain.artefact()["abi"])
    data = contract.encode_abi("anchor", args=[bytes.fromhex(batch["root"]), 2])
    planned, raw = first.sign({"to": registry, "data": data, "gas": 60_000})
    store.plan(batch["id"], planned, raw)
    store.close()  # the crash: signed and recorded, never sent
    nonce_before = w3.eth.get_transaction_count(first.address)

    path = scripted_character(
        plugins=[str(Path(__file__).parents[2] / "fixtures" / "scripted_model.py"), "trn"],
        settings={"trn": _settings(anvil, registry, batch_size=2)},
    )
    async with Agent.from_file(path):
        pass  # start() finishes what the crashed run left
    store = ProofStore(tmp_path / "data" / "trn_proofs.sqlite")
    assert store.unanchored() == []
    assert w3.eth.get_transaction_count(first.address) == nonce_before + 1
    topic0 = w3.to_hex(w3.keccak(text=chain.ANCHORED_TOPIC))
    logs = w3.eth.get_logs(
        {"address": registry, "fromBlock": 0, "topics": [topic0, "0x" + batch["root"]]}
    )
    assert len(logs) == 1 and w3.to_hex(logs[0]["transactionHash"]) == planned
    store.close()


async def test_wrong_chain_or_missing_registry_stop_the_agent_at_start(
    anvil: dict[str, Any],
    scripted_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRN_PRIVATE_KEY", anvil["keys"][6])
    model = str(Path(__file__).parents[2] / "fixtures" / "scripted_model.py")
    wrong_chain = scripted_character(
        plugins=[model, "trn"],
        settings={"trn": _settings(anvil, "0x" + "11" * 20, chain_id=7668)},
    )
    with pytest.raises(PluginError, match=r"plugin 'trn': could not start.*expected 7668"):
        await Agent.from_file(wrong_chain).start()
    no_registry = scripted_character(plugins=[model, "trn"], settings={"trn": _settings(anvil, "")})
    with pytest.raises(PluginError, match="registry is not set"):
        await Agent.from_file(no_registry).start()
    bad_setting = scripted_character(plugins=[model, "trn"], settings={"trn": {"network": "moon"}})
    with pytest.raises(PluginError, match="porcini"):
        await Agent.from_file(bad_setting).start()
