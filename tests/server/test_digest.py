"""``GET /api/agents/{name}/digest``: what the agent watched, for its owner only."""

from __future__ import annotations

import json
import time

import httpx

from aigent.watch import Observation, WatchStore
from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import Served, character, sign_in, wait_for


def _own_agent(served: Served, model: OpenAIServer, name: str) -> httpx.Client:
    client, _ = sign_in(served)
    data = json.dumps(character(model, name))
    made = client.post("/api/agents", files={"file": ("a.json", data, "application/json")})
    assert made.status_code == 201, made.text
    wait_for(
        lambda: client.get(f"/api/agents/{name}").json()["state"] == "running",
        what=f"{name} to run",
    )
    return client


def test_the_digest_shows_what_the_agent_watched_in_the_window(
    served: Served, model: OpenAIServer
) -> None:
    client = _own_agent(served, model, "Owl")
    try:
        empty = client.get("/api/agents/Owl/digest")
        assert empty.status_code == 200, empty.text
        assert (empty.json()["watching"], empty.json()["count"]) == (False, 0)

        now = time.time()
        store = WatchStore(WatchStore.path_in(served.data_dir / "agents" / "owl"))
        moved = {"kind": "change", "change": 300}
        store.add(
            [
                Observation("xrpl", "a", now - 60, "pool moved (+300)", moved),
                Observation(
                    "xrpl", "b", now - 30, "bob holds 107 XRP (+7)", {**moved, "change": 7}
                ),
                Observation("x", "p1", now - 20, "mention by 2001: nice", {"kind": "mention"}),
                Observation("x", "p0", now - 3 * 86400, "an old mention", {"kind": "mention"}),
            ]
        )
        store.close()

        got = client.get("/api/agents/Owl/digest", params={"since": "24h"}).json()
        assert (got["watching"], got["count"]) == (True, 3)
        by = {s["source"]: s for s in got["sources"]}
        assert by["xrpl"]["kinds"] == {"change": 2}
        assert [o["text"] for o in by["xrpl"]["top"]] == [
            "pool moved (+300)",
            "bob holds 107 XRP (+7)",
        ]
        assert [o["text"] for o in by["x"]["latest"]] == ["mention by 2001: nice"]
        assert "an old mention" not in got["text"]
        week = client.get("/api/agents/Owl/digest", params={"since": "7d"}).json()
        assert week["count"] == 4

        bad = client.get("/api/agents/Owl/digest", params={"since": "soon"})
        assert bad.status_code == 422 and "e.g. 5m, 24h, 30d" in bad.text
        stranger, _ = sign_in(served)
        assert stranger.get("/api/agents/Owl/digest").status_code == 404
    finally:
        client.delete("/api/agents/Owl")
