"""`aigent verify` by text and agent, by message id, or by receipt file (a third party with only
the receipt and an RPC URL): good, tampered, wrong proof and unknown root, on anvil."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from aigent_trn import after_publish, chain, register_commands
from aigent_trn.store import ProofStore
from typer.testing import CliRunner

from aigent.messages import Outgoing

from .conftest import trn_ctx


@pytest.fixture(scope="module")
def published(anvil: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two anchored messages by agent 'Ada' and one sealed-but-never-anchored message."""
    data = tmp_path_factory.mktemp("agent-data")
    w3 = chain.connect(anvil["url"], 7672)
    signer = chain.Signer(w3, anvil["keys"][7])
    registry = chain.deploy_registry(w3, signer)
    ctx = trn_ctx(data, batch_size=2)
    msgs = [Outgoing(text=t, agent="Ada") for t in ("buy 10 ROOT", "sell 5 XRP")]
    for m in msgs:
        asyncio.run(after_publish(ctx, m))
    store = ProofStore(data / "trn_proofs.sqlite")
    chain.anchor_pending(w3, signer, store, registry)
    stray = Outgoing(text="never anchored", agent="Ada")
    other = Outgoing(text="also never", agent="Ada")
    asyncio.run(after_publish(ctx, stray))
    asyncio.run(after_publish(ctx, other))  # sealed by size, not anchored (no loop runs here)
    out = {
        "data": data,
        "url": anvil["url"],
        "good": store.receipt(msgs[0].id),
        "id": msgs[1].id,
        "stray": store.receipt(stray.id),
        "signer": signer.address,
        "registry": registry,
    }
    store.close()
    return out


def _agent(published: dict[str, Any]) -> list[str]:
    """What the verifier knows of the agent: its registry and anchoring address."""
    return ["--registry", published["registry"], "--anchorer", published["signer"]]


def _run(*args: str) -> Any:
    app = typer.Typer()
    register_commands(app)

    @app.command("noop")
    def _noop() -> None: ...

    return CliRunner().invoke(app, ["verify", *args])


def test_by_text_and_agent(published: dict[str, Any]) -> None:
    d = str(published["data"])
    r = _run("--text", "buy 10 ROOT", "--agent", "Ada", "--data-dir", d, "--rpc", published["url"],
             *_agent(published))  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "VERIFIED"
    assert f"tx {published['good']['anchor']['tx_hash']}" in r.output
    assert f"block {published['good']['anchor']['block_number']}" in r.output
    assert "time 20" in r.output and published["signer"] in r.output
    # tampered text: one changed character
    r = _run("--text", "buy 100 ROOT", "--agent", "Ada", "--data-dir", d, "--rpc", published["url"])
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED")
    assert "tampered" in r.output
    r = _run("--text", "buy 10 ROOT", "--agent", "Bob", "--data-dir", d)
    assert r.exit_code == 1 and "no message by agent 'Bob'" in r.output


def test_by_message_id(published: dict[str, Any]) -> None:
    d = str(published["data"])
    r = _run("--message-id", published["id"], "--data-dir", d, "--rpc", published["url"],
             *_agent(published))  # fmt: skip
    assert r.exit_code == 0 and r.output.startswith("VERIFIED"), r.output
    r = _run("--message-id", "nope", "--data-dir", d, "--rpc", published["url"])
    assert r.exit_code == 1 and "not in the proof store" in r.output


def test_third_party_with_receipt_rpc_and_the_agents_addresses(
    published: dict[str, Any], tmp_path: Path
) -> None:
    good = tmp_path / "receipt.json"
    good.write_text(json.dumps(published["good"]))
    r = _run(str(good), "--rpc", published["url"], *_agent(published))
    assert r.exit_code == 0 and r.output.startswith("VERIFIED"), r.output
    r = _run(str(good), "--rpc", published["url"])  # the receipt's word alone is not enough
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED"), r.output
    assert "checked: tx " + published["good"]["anchor"]["tx_hash"] in r.output

    tampered = json.loads(good.read_text())
    tampered["canonical"]["content"] = "buy 1000 ROOT"
    (tmp_path / "t.json").write_text(json.dumps(tampered))
    r = _run(str(tmp_path / "t.json"), "--rpc", published["url"])
    assert r.exit_code == 1 and "leaf mismatch" in r.output

    wrong_proof = json.loads(good.read_text())
    wrong_proof["proof"][0]["hash"] = "ab" * 32
    (tmp_path / "p.json").write_text(json.dumps(wrong_proof))
    r = _run(str(tmp_path / "p.json"), "--rpc", published["url"])
    assert r.exit_code == 1 and "does not lead to root" in r.output

    # internally consistent, but its root was never anchored: claims the real tx anyway
    unknown = dict(published["stray"], anchor=published["good"]["anchor"])
    (tmp_path / "u.json").write_text(json.dumps(unknown))
    r = _run(str(tmp_path / "u.json"), "--rpc", published["url"])
    assert r.exit_code == 1 and "unknown root" in r.output, r.output

    (tmp_path / "junk.json").write_text("[1, 2")
    r = _run(str(tmp_path / "junk.json"))
    assert r.exit_code == 1 and "cannot read receipt" in r.output


def test_nothing_to_verify_says_how(published: dict[str, Any]) -> None:
    r = _run()
    assert r.exit_code == 2 and "--message-id" in r.output
