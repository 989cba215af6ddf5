"""`aigent verify` against a forger: a receipt that brings its own registry, a root someone else
anchored first (front-running), and a verifier who names no anchorer. A receipt verifies only
against the agent's own anchoring address in the registry the verifier expects.

What anvil cannot show: it mines each transaction as it arrives (automine), so a front-run is
staged as the forger's anchor landing in an earlier block than the agent's, not as a
transaction overtaking another in a mempool by fee; nor does it have TRN's log limits or
reorganisations."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from aigent_trn import after_publish, chain, register_commands
from aigent_trn.store import ProofStore
from eth_account import Account
from typer.testing import CliRunner

from aigent.messages import Outgoing

from .conftest import trn_ctx


def _account(w3: Any) -> chain.Signer:
    """A fresh funded key, so no other test's signer shares its nonces."""
    key = Account.create().key.hex()
    address = Account.from_key(key).address
    w3.provider.make_request("anvil_setBalance", [address, hex(10**20)])
    return chain.Signer(w3, key)


def _anchor(w3: Any, signer: chain.Signer, registry: str, root: str, size: int) -> str:
    contract = w3.eth.contract(address=registry, abi=chain.artefact()["abi"])
    data = contract.encode_abi("anchor", args=[bytes.fromhex(root), size])
    rcpt = signer.transact({"to": registry, "data": data, "gas": 60_000})
    return str(w3.to_hex(rcpt["transactionHash"]))


def _publish(data_dir: Path, agent: str, *texts: str) -> list[Outgoing]:
    ctx = trn_ctx(data_dir, batch_size=len(texts))
    msgs = [Outgoing(text=t, agent=agent) for t in texts]
    for m in msgs:
        asyncio.run(after_publish(ctx, m))  # the last one seals the batch
    return msgs


@pytest.fixture(scope="module")
def world(anvil: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    w3 = chain.connect(anvil["url"], 7672)
    ada, mallory = _account(w3), _account(w3)
    registry = chain.deploy_registry(w3, ada)

    # Ada's message, front-run: Mallory anchors Ada's root in Ada's registry before Ada does
    ada_dir = tmp_path_factory.mktemp("ada")
    msgs = _publish(ada_dir, "Ada", "the market opens at 9", "buy 10 ROOT")
    store = ProofStore(ada_dir / "trn_proofs.sqlite")
    batch = store.unanchored()[0]
    front_run = _anchor(w3, mallory, registry, batch["root"], 2)
    chain.anchor_pending(w3, ada, store, registry)
    genuine = store.receipt(msgs[0].id)
    store.close()

    # a message Ada never wrote, anchored by Mallory in a registry of her own
    forged_dir = tmp_path_factory.mktemp("forged")
    lies = _publish(forged_dir, "Ada", "send Mallory 1000 ROOT", "I trust Mallory")
    own_registry = chain.deploy_registry(w3, mallory)
    store = ProofStore(forged_dir / "trn_proofs.sqlite")
    chain.anchor_pending(w3, mallory, store, own_registry)
    forged = store.receipt(lies[0].id)
    store.close()
    return {
        "url": anvil["url"],
        "ada": ada.address,
        "mallory": mallory.address,
        "registry": registry,
        "own_registry": own_registry,
        "genuine": genuine,
        "front_run": front_run,
        "forged": forged,
        "w3": w3,
        "signers": (ada, mallory),
    }


def _verify(tmp_path: Path, receipt: dict[str, Any], *args: str) -> Any:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    app = typer.Typer()
    register_commands(app)

    @app.command("noop")
    def _noop() -> None: ...

    return CliRunner().invoke(app, ["verify", str(path), *args])


def _trusting(world: dict[str, Any], anchorer: str | None = None) -> list[str]:
    return ["--rpc", world["url"], "--registry", world["registry"], "--anchorer",
            anchorer or world["ada"]]  # fmt: skip


def test_the_agent_anchored_its_own_root_though_someone_anchored_it_first(
    world: dict[str, Any],
) -> None:
    w3 = world["w3"]
    tx = world["genuine"]["anchor"]["tx_hash"]
    assert tx != world["front_run"]
    assert w3.eth.get_transaction(tx)["from"] == world["ada"]  # not Mallory's anchor adopted
    assert (
        w3.eth.get_transaction_receipt(world["front_run"])["blockNumber"]
        < world["genuine"]["anchor"]["block_number"]
    )


def test_after_a_lost_anchor_tx_the_agent_does_not_adopt_someone_elses_anchor(
    world: dict[str, Any], tmp_path: Path
) -> None:
    w3, (ada, mallory) = world["w3"], world["signers"]
    _publish(tmp_path, "Ada", "one", "two")
    store = ProofStore(tmp_path / "trn_proofs.sqlite")
    batch = store.unanchored()[0]
    store.plan(batch["id"], "0x" + "ab" * 32)  # signed and recorded, then lost: never mined
    front_run = _anchor(w3, mallory, world["registry"], batch["root"], 2)
    (tx,) = chain.anchor_pending(w3, ada, store, world["registry"])
    assert tx != front_run and w3.eth.get_transaction(tx)["from"] == world["ada"]
    store.close()


def test_a_front_run_root_still_verifies_for_the_agent(
    world: dict[str, Any], tmp_path: Path
) -> None:
    r = _verify(tmp_path, world["genuine"], *_trusting(world))
    assert r.exit_code == 0 and r.output.startswith("VERIFIED"), r.output
    assert f"anchored by {world['ada']}" in r.output
    r = _verify(tmp_path, world["genuine"], "--rpc", world["url"], "--registry",
                world["registry"], "--agent-address", world["ada"])  # fmt: skip
    assert r.exit_code == 0 and r.output.startswith("VERIFIED"), r.output


def test_a_front_run_root_fails_for_the_forger(world: dict[str, Any], tmp_path: Path) -> None:
    stolen = json.loads(json.dumps(world["genuine"]))
    stolen["anchor"]["tx_hash"] = world["front_run"]  # "I anchored it first"
    stolen["anchor"]["block_number"] = world["w3"].eth.get_transaction_receipt(world["front_run"])[
        "blockNumber"
    ]
    r = _verify(tmp_path, stolen, *_trusting(world))
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED"), r.output
    assert world["front_run"] in r.output and world["genuine"]["anchor"]["tx_hash"] in r.output
    # Mallory's own address does not make it hers: the content names Ada, but that is for the
    # verifier to judge; what it may not be is VERIFIED without the verifier naming anyone
    r = _verify(tmp_path, stolen, "--rpc", world["url"])
    assert r.exit_code == 1 and "VERIFIED" not in r.output.replace("NOT VERIFIED", ""), r.output


def test_a_forged_receipt_with_its_own_registry_fails(
    world: dict[str, Any], tmp_path: Path
) -> None:
    forged = world["forged"]
    assert forged["anchor"]["contract"].lower() == world["own_registry"].lower()
    r = _verify(tmp_path, forged, *_trusting(world))
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED"), r.output
    assert world["own_registry"] in r.output and "--registry" in r.output
    # naming the forger's registry does not help her: the root is not Ada's
    r = _verify(tmp_path, forged, "--rpc", world["url"], "--registry", world["own_registry"],
                "--anchorer", world["ada"])  # fmt: skip
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED"), r.output
    assert world["mallory"] in r.output  # who did anchor it is said
    # today's third-party invocation, receipt and RPC only, must not say VERIFIED
    r = _verify(tmp_path, forged, "--rpc", world["url"])
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED"), r.output


def test_without_an_expected_anchorer_it_says_what_was_and_was_not_checked(
    world: dict[str, Any], tmp_path: Path
) -> None:
    r = _verify(tmp_path, world["genuine"], "--rpc", world["url"])
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED"), r.output
    lines = r.output.splitlines()
    checked = [line for line in lines if line.startswith("checked:")]
    unchecked = [line for line in lines if line.startswith("not checked:")]
    assert any("proof" in line for line in checked)
    assert any(world["genuine"]["anchor"]["tx_hash"] in line for line in checked)
    assert any("--anchorer" in line for line in unchecked)
    assert any("--registry" in line for line in unchecked)
    r = _verify(tmp_path, world["genuine"], "--rpc", world["url"], "--anchorer", world["ada"])
    assert r.exit_code == 1 and r.output.startswith("NOT VERIFIED"), r.output
    assert not any("--anchorer" in line for line in r.output.splitlines()[1:] if "not" in line)


def test_a_bad_anchorer_or_registry_is_named(world: dict[str, Any], tmp_path: Path) -> None:
    r = _verify(tmp_path, world["genuine"], "--rpc", world["url"], "--anchorer", "0x12")
    assert r.exit_code == 2 and "--anchorer" in r.output and "0x12" in r.output
    r = _verify(tmp_path, world["genuine"], "--rpc", world["url"], "--registry", "nope")
    assert r.exit_code == 2 and "--registry" in r.output
