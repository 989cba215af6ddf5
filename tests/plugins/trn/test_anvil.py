"""Anchoring against a real local EVM node (anvil, chain id 7672, Shanghai)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aigent_trn import after_publish, chain, merkle
from aigent_trn.receipt import check_receipt
from aigent_trn.store import ProofStore

from aigent.messages import Outgoing

from .conftest import trn_ctx


def test_wrong_chain_id_is_refused(anvil: dict) -> None:
    with pytest.raises(RuntimeError, match="expected 7668"):
        chain.connect(anvil["url"], 7668)


def test_anchor_then_verify_and_crash_never_double_anchors(anvil: dict, tmp_path: Path) -> None:
    w3 = chain.connect(anvil["url"], 7672)
    signer = chain.Signer(w3, anvil["keys"][0])
    registry = chain.deploy_registry(w3, signer)
    ctx = trn_ctx(tmp_path, batch_size=4)
    msgs = [Outgoing(text=f"answer {i}", agent=signer.address) for i in range(4)]
    for m in msgs:
        asyncio.run(after_publish(ctx, m))
    db = tmp_path / "trn_proofs.sqlite"
    store = ProofStore(db)
    batch = store.unanchored()[0]
    # crash after the tx was sent but before it was recorded: simulate by sending, planning,
    # and not marking anchored
    contract = w3.eth.contract(address=registry, abi=chain.artefact()["abi"])
    data = contract.encode_abi("anchor", args=[bytes.fromhex(batch["root"]), 4])
    tx = signer.send({"to": registry, "data": data, "gas": 60_000})
    store.plan(batch["id"], tx)
    w3.eth.wait_for_transaction_receipt(tx)
    store.close()
    store = ProofStore(db)
    before = w3.eth.get_transaction_count(signer.address)
    done = chain.anchor_pending(w3, signer, store, registry)
    assert done == [tx]
    assert w3.eth.get_transaction_count(signer.address) == before  # nothing re-sent
    rec = store.receipt(msgs[1].id)
    assert rec["anchor"]["tx_hash"] == tx
    assert check_receipt(rec, text="answer 1") == []
    found = chain.find_root(w3, registry, rec["root"])
    assert found and found["anchorer"].lower() == signer.address.lower()
    # unknown root: not on chain
    assert chain.find_root(w3, registry, merkle.leaf_hash(b"nope").hex()) is None


def test_concurrent_sends_from_one_key_all_land(anvil: dict) -> None:
    w3 = chain.connect(anvil["url"], 7672)
    signer = chain.Signer(w3, anvil["keys"][1])
    to = "0x000000000000000000000000000000000000dEaD"
    with ThreadPoolExecutor(8) as pool:
        hashes = list(
            pool.map(lambda _: signer.send({"to": to, "value": 10**12, "gas": 21_000}), range(16))
        )
    rcpts = [w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert all(r["status"] == 1 for r in rcpts)
    assert len({r["transactionHash"] for r in rcpts}) == 16


def test_verify_command_good_tampered_unknown(anvil: dict, tmp_path: Path) -> None:
    import json

    import typer
    from aigent_trn import register_commands
    from typer.testing import CliRunner

    w3 = chain.connect(anvil["url"], 7672)
    signer = chain.Signer(w3, anvil["keys"][2])
    registry = chain.deploy_registry(w3, signer)
    ctx = trn_ctx(tmp_path, batch_size=2)
    msgs = [Outgoing(text=t, agent=signer.address) for t in ("yes", "no")]
    for m in msgs:
        asyncio.run(after_publish(ctx, m))
    store = ProofStore(tmp_path / "trn_proofs.sqlite")
    chain.anchor_pending(w3, signer, store, registry)
    rec = store.receipt(msgs[0].id)
    app = typer.Typer()
    register_commands(app)

    @app.command("noop")
    def _noop() -> None: ...

    good = tmp_path / "good.json"
    good.write_text(json.dumps(rec))
    agent = ["--registry", registry, "--anchorer", signer.address]
    r = CliRunner().invoke(
        app, ["verify", str(good), "--rpc", anvil["url"], "--text", "yes", *agent]
    )
    assert r.exit_code == 0 and r.output.startswith("VERIFIED"), r.output
    assert rec["anchor"]["tx_hash"] in r.output
    r = CliRunner().invoke(app, ["verify", str(good), "--rpc", anvil["url"], "--text", "maybe"])
    assert r.exit_code == 1 and "text differs" in r.output
    # a consistent receipt whose root was never anchored, claiming the real tx
    others = [Outgoing(text=t, agent=signer.address) for t in ("a", "b")]
    for m in others:
        asyncio.run(after_publish(ctx, m))
    unknown = dict(store.receipt(others[0].id), anchor=rec["anchor"])
    bad = tmp_path / "unknown.json"
    bad.write_text(json.dumps(unknown))
    r = CliRunner().invoke(app, ["verify", str(bad), "--rpc", anvil["url"], *agent])
    assert r.exit_code == 1 and "not found in registry" in r.output, r.output
