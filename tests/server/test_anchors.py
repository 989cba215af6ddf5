"""Anchors over the API: a reply's receipts by its id, and the offline proof check."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aigent_server.app import Settings

from tests.fixtures.openai_server import OpenAIServer, reply
from tests.server.conftest import Served, character, serve, sign_in, wait_for

TOKEN = "anchor-token"


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer) -> Iterator[Served]:
    """One agent with aigent-trn's receipts, sealed one message a batch, never sent on chain."""
    folder = tmp_path_factory.mktemp("anchor-chars")
    path = folder / "notary.json"
    trn = {"network": "local", "anchor": False, "batch_size": 1}
    data = character(model, "Notary", plugins=["trn"], settings={"trn": trn})
    path.write_text(json.dumps(data), encoding="utf-8")
    running = serve(Settings(data_dir=tmp_path_factory.mktemp("anchor-srv"), files=[path],
                             token=TOKEN))  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


def _reply(served: Served, model: OpenAIServer, text: str) -> dict[str, Any]:
    with served.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        wait_for(
            lambda: client.get("/api/agents/Notary").json()["state"] == "running",
            what="Notary to run",
        )
        model.queue(reply(text))
        answer = client.post("/api/agents/Notary/messages", json={"text": "sign this"})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def test_a_replys_receipt_is_served_by_its_id_and_its_proof_checks(
    anchored: Served, model: OpenAIServer
) -> None:
    body = _reply(anchored, model, "signed and sealed")
    assert body["receipts"]["trn"]["root"], body["receipts"]
    with anchored.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        history = client.get("/api/agents/Notary/messages").json()["messages"]
        assert history[-1]["id"] == body["id"]
        got = client.get(f"/api/agents/Notary/messages/{body['id']}/receipt")
        assert got.status_code == 200, got.text
        receipt = got.json()["receipts"]["trn"]
        assert receipt == body["receipts"]["trn"]
        missing = client.get("/api/agents/Notary/messages/nope/receipt")
        assert missing.status_code == 404
        assert "nope" in missing.json()["detail"]

        checked = client.post(
            "/api/verify", json={"receipt": receipt, "text": "signed and sealed"}
        ).json()
        assert checked["proof"] == "ok", checked
        assert checked["problems"] == []
        # Never "verified" on the proof alone: the chain was not asked.
        assert checked["verified"] is False
        assert "RPC URL" in checked["chain"] and "registry" in checked["chain"]

        other = client.post("/api/verify", json={"receipt": receipt, "text": "forged"}).json()
        assert other["proof"] == "mismatch"
        assert any("differs" in p for p in other["problems"])

        tampered = copy.deepcopy(receipt)
        tampered["root"] = "00" * 32
        bad = client.post("/api/verify", json={"receipt": tampered}).json()
        assert bad["proof"] == "mismatch"
        assert any("does not lead to root" in p for p in bad["problems"])

        broken = client.post("/api/verify", json={"receipt": {"leaf": "ab"}})
        assert broken.status_code == 422
        assert "canonical" in broken.json()["detail"]


def test_receipts_stay_with_their_owner_and_survive_a_restart(
    model: OpenAIServer, anchored: Served
) -> None:
    body = _reply(anchored, model, "kept")
    user, _ = sign_in(anchored)
    try:
        assert user.get(f"/api/agents/Notary/messages/{body['id']}/receipt").status_code == 404
        assert user.post("/api/verify", json={"receipt": {}}).status_code == 422
    finally:
        user.close()
    with anchored.client() as anonymous:
        assert anonymous.post("/api/verify", json={"receipt": {}}).status_code == 401
    # A restarted server answers from its history (the live copy went with the process);
    # the registry remembers the agent without its file being named again. Last in the module.
    anchored.stop()
    again = serve(Settings(data_dir=anchored.data_dir, files=[], token=TOKEN))
    try:
        with again.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            got = client.get(f"/api/agents/Notary/messages/{body['id']}/receipt")
            assert got.status_code == 200, got.text
            assert got.json()["receipts"]["trn"]["leaf"] == body["receipts"]["trn"]["leaf"]
    finally:
        again.stop()
