"""Memory search and knowledge upload over the API, for the agent's owner only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_server import knowledge

from tests.fixtures.openai_server import OpenAIServer, reply
from tests.server.conftest import Served, character, sign_in, wait_for


def _own_agent(served: Served, model: OpenAIServer, name: str) -> tuple[httpx.Client, str]:
    client, _ = sign_in(served)
    data = json.dumps(character(model, name))
    made = client.post("/api/agents", files={"file": ("a.json", data, "application/json")})
    assert made.status_code == 201, made.text
    wait_for(
        lambda: client.get(f"/api/agents/{name}").json()["state"] == "running",
        what=f"{name} to run",
    )
    return client, name


def _upload(client: httpx.Client, name: str, filename: str, content: bytes) -> httpx.Response:
    return client.post(
        f"/api/agents/{name}/knowledge", files={"file": (filename, content, "text/markdown")}
    )


def test_uploaded_knowledge_is_kept_in_the_agents_folder_and_found(
    served: Served, model: OpenAIServer
) -> None:
    client, name = _own_agent(served, model, "Librarian")
    try:
        text = b"# Opening hours\n\nThe lighthouse museum opens at nine and closes at five.\n"
        added = _upload(client, name, "hours.md", text)
        assert added.status_code == 201, added.text
        assert added.json()["added"] >= 1
        kept = served.data_dir / "agents" / "librarian" / "knowledge" / "hours.md"
        assert kept.read_bytes() == text

        found = client.get(f"/api/agents/{name}/memory", params={"q": "lighthouse museum"})
        assert found.status_code == 200, found.text
        results: list[dict[str, Any]] = found.json()["results"]
        assert results and "lighthouse museum" in results[0]["text"], results
        assert {"text", "score", "metadata"} <= set(results[0])

        # Conversations are in the same memory (written behind the reply, so waited for).
        model.queue(reply("the zeppelin hangar is closed on mondays"))
        client.post(f"/api/agents/{name}/messages", json={"text": "is the zeppelin open?"})

        def zeppelin() -> bool:
            hits = client.get(f"/api/agents/{name}/memory", params={"q": "zeppelin"}).json()
            return any("zeppelin" in h["text"] for h in hits["results"])

        wait_for(zeppelin, what="the conversation in memory")

        # Still there after a restart: the server names the folder to the agent again.
        client.post(f"/api/agents/{name}/stop")
        client.post(f"/api/agents/{name}/start")
        wait_for(
            lambda: client.get(f"/api/agents/{name}").json()["state"] == "running",
            what="the restart",
        )
        again = client.get(f"/api/agents/{name}/memory", params={"q": "museum opens"}).json()
        assert any("nine" in h["text"] for h in again["results"]), again
    finally:
        client.close()


def test_bad_knowledge_uploads_and_strangers_are_refused(
    served: Served, model: OpenAIServer
) -> None:
    client, name = _own_agent(served, model, "Keeper")
    stranger, _ = sign_in(served)
    try:
        exe = _upload(client, name, "tool.py", b"print('hi')")
        assert exe.status_code == 422 and ".md" in exe.json()["detail"]
        binary = _upload(client, name, "notes.txt", b"\xff\xfe\x00binary")
        assert binary.status_code == 422 and "UTF-8" in binary.json()["detail"]
        big = _upload(client, name, "big.md", b"a" * (600 * 1024))
        assert big.status_code == 413
        empty = client.get(f"/api/agents/{name}/memory", params={"q": " "})
        assert empty.status_code == 422
        # Another user's agent is absent, for search and upload alike.
        assert stranger.get(f"/api/agents/{name}/memory", params={"q": "x"}).status_code == 404
        assert _upload(stranger, name, "x.md", b"x").status_code == 404
        client.post(f"/api/agents/{name}/stop")
        stopped = client.get(f"/api/agents/{name}/memory", params={"q": "x"})
        assert stopped.status_code == 409 and "start it" in stopped.json()["detail"]
    finally:
        client.close()
        stranger.close()


def test_a_knowledge_file_above_the_servers_own_limit_is_refused(tmp_path: Path) -> None:
    # The test server caps bodies below this limit, so it is checked here, on its own.
    with pytest.raises(knowledge.KnowledgeError) as refused:
        knowledge.save(tmp_path, "big.md", b"a" * (knowledge.MAX_BYTES + 1))
    assert refused.value.status == 413 and "at most" in str(refused.value)
    assert not (tmp_path / "knowledge" / "big.md").exists()
    kept = knowledge.save(tmp_path, ".env.md", b"ok")
    assert kept.name == "env.md"  # never a dotfile, which knowledge ingestion skips
