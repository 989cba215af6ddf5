"""The REST API over real HTTP: agents, messages (plain and streamed), confirmations, events,
sign-in and the guards (401, 403, 404, 413, 422, 429)."""

from __future__ import annotations

import json
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
from aigent_server.app import Settings
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.fixtures.openai_server import OpenAIServer, reply, tool_call, trickle
from tests.server.conftest import TOKEN, Served, character, serve, sign_in, wait_for

ROOT = Path(__file__).resolve().parents[2]
ELIZA0 = ROOT / "tests" / "data" / "characters" / "eliza0.character.json"


def running(client: httpx.Client, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        agent = client.get(f"/api/agents/{name}").json()
        assert agent["state"] != "failed", agent["error"]
        return agent if agent["state"] == "running" else None

    result: dict[str, Any] = wait_for(check, what=f"{name} to run")
    return result


def upload(client: httpx.Client, data: dict[str, Any] | str, filename: str) -> httpx.Response:
    text = data if isinstance(data, str) else json.dumps(data)
    return client.post("/api/agents", files={"file": (filename, text, "application/json")})


def test_health_answers_without_credentials_and_the_schema_is_served(served: Served) -> None:
    with served.client() as client:
        assert client.get("/api/health").json()["ok"] is True
        schema = client.get("/api/openapi.json").json()
        assert "/api/agents/{name}/messages" in schema["paths"]


def test_every_other_route_needs_a_session_or_the_token(served: Served) -> None:
    with served.client() as client:
        for method, path in [
            ("GET", "/api/agents"),
            ("GET", "/api/agents/Ada"),
            ("POST", "/api/agents/Ada/messages"),
            ("GET", "/api/events"),
            ("GET", "/api/agents/Ada/confirmations"),
        ]:
            answer = client.request(method, path, json={"text": "hi"})
            assert answer.status_code == 401, (path, answer.text)
            assert "sign in" in answer.json()["detail"]
        wrong = client.get("/api/agents", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_operator_chats_with_a_file_loaded_agent(served: Served, model: OpenAIServer) -> None:
    with served.operator() as client:
        names = {a["name"] for a in client.get("/api/agents").json()}
        assert {"Ada", "Tipper"} <= names
        running(client, "Ada")
        model.queue(reply("hello from the stand-in"))
        answer = client.post("/api/agents/Ada/messages", json={"text": "hi", "room": "r1"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["text"] == "hello from the stand-in"
        assert body["model"].endswith("gpt-4o-mini")
        assert body["usage"]["completion_tokens"] > 0
        assert {"model", "total"} <= set(body["timings"])
        assert "receipts" in body
        history = client.get("/api/agents/Ada/messages", params={"room": "r1"}).json()
        assert [m["text"] for m in history["messages"]] == ["hi", "hello from the stand-in"]
        assert "r1" in history["rooms"]


def test_a_reply_streams_as_server_sent_events(served: Served, model: OpenAIServer) -> None:
    with served.operator() as client:
        running(client, "Ada")
        model.queue(trickle("one two three four", every=0.05))
        events: list[tuple[str, Any]] = []
        with client.stream(
            "POST",
            "/api/agents/Ada/messages",
            json={"text": "count"},
            headers={"Accept": "text/event-stream"},
        ) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in answer.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
        texts = [data["text"] for kind, data in events if kind == "text"]
        assert len(texts) > 1, events  # it arrived in pieces, not at the end
        assert "".join(texts).strip() == "one two three four"
        assert events[-1][0] == "reply"
        assert events[-1][1]["text"] == "one two three four"


def test_a_user_sees_only_their_own_agents(served: Served, model: OpenAIServer) -> None:
    ann, ann_address = sign_in(served)
    bob, _ = sign_in(served)
    with closing(ann), closing(bob):
        created = upload(ann, character(model, "Anns Agent"), "ann.json")
        assert created.status_code == 201, created.text
        assert created.json()["owner"] == ann_address
        assert [a["name"] for a in ann.get("/api/agents").json()] == ["Anns Agent"]
        assert bob.get("/api/agents").json() == []
        # Another user's agent (and an operator's) is as absent as one that does not exist.
        assert bob.get("/api/agents/Anns Agent").status_code == 404
        assert bob.post("/api/agents/Anns Agent/messages", json={"text": "x"}).status_code == 404
        assert bob.delete("/api/agents/Anns Agent").status_code == 404
        assert ann.get("/api/agents/Ada").status_code == 404
        running(ann, "Anns Agent")
        assert (
            ann.post("/api/agents/Anns Agent/messages", json={"text": "hey"}).json()["text"]
            == "echo: hey"
        )
        # The same name twice is a conflict, not a silent replacement.
        assert upload(bob, character(model, "Anns Agent"), "b.json").status_code == 409
        stopped = ann.post("/api/agents/Anns Agent/stop").json()
        assert stopped["state"] == "stopped" and stopped["desired"] == "stopped"
        refused = ann.post("/api/agents/Anns Agent/messages", json={"text": "x"})
        assert refused.status_code == 409 and "start it first" in refused.json()["detail"]
        assert ann.delete("/api/agents/Anns Agent").status_code == 204
        assert ann.get("/api/agents/Anns Agent").status_code == 404


def test_cookie_sessions_need_the_csrf_header_to_change_anything(served: Served) -> None:
    client, _ = sign_in(served)
    with closing(client):
        del client.headers["X-CSRF-Token"]
        assert client.get("/api/agents").status_code == 200  # reading is safe
        refused = upload(client, {"name": "X"}, "x.json")
        assert refused.status_code == 403 and "x-csrf-token" in refused.json()["detail"]
        # The message route too (served in front of FastAPI's routing: aigent_server/hot.py).
        chat = client.post("/api/agents/Ada/messages", json={"text": "hi"})
        assert chat.status_code == 403 and "x-csrf-token" in chat.json()["detail"]


def test_a_bad_message_gets_422_naming_the_field(served: Served) -> None:
    """The same answer whichever way the route is served: JSON or streamed."""
    with served.operator() as client:
        running(client, "Ada")
        for body, field, kind in (
            ({}, "text", "missing"),
            ({"text": ""}, "text", "string_too_short"),
            ({"text": "x", "room": 5}, "room", "string_type"),
        ):
            for accept in ("application/json", "text/event-stream"):
                answer = client.post(
                    "/api/agents/Ada/messages", json=body, headers={"Accept": accept}
                )
                assert answer.status_code == 422, (body, accept)
                [problem] = answer.json()["detail"]
                assert problem["loc"] == ["body", field] and problem["type"] == kind, accept
        broken = client.post(
            "/api/agents/Ada/messages",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
        assert client.post("/api/agents/Nobody/messages", json={"text": "x"}).status_code == 404


def test_sign_in_refuses_a_signature_from_another_key(served: Served) -> None:
    with served.client() as client:
        claimed, signer = Account.create(), Account.create()
        challenge = client.post("/api/auth/challenge", json={"address": claimed.address}).json()
        assert f"Nonce: {challenge['nonce']}" in challenge["message"]
        assert "Expiration Time: " in challenge["message"]
        signature = signer.sign_message(encode_defunct(text=challenge["message"])).signature
        answer = client.post(
            "/api/auth/verify",
            json={"nonce": challenge["nonce"], "signature": "0x" + bytes(signature).hex()},
        )
        assert answer.status_code == 401
        assert "aigent_session" not in answer.cookies
        bad = client.post("/api/auth/challenge", json={"address": "0x123"})
        assert bad.status_code == 422 and "20-byte hex address" in bad.json()["detail"]


def test_a_broken_upload_gets_the_error_aigent_validate_prints(
    served: Served, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from aigent.cli import app

    broken = {"name": "Broken", "bio": 7, "colour": "blue"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    printed = CliRunner().invoke(app, ["validate", str(path)])
    assert printed.exit_code == 1
    expected = printed.output.strip().removeprefix("✗ ").replace(str(path), "broken.json")
    with served.operator() as client:
        answer = upload(client, broken, "broken.json")
        assert answer.status_code == 422
        assert answer.json()["detail"] == expected
        assert "colour" in expected and "bio" in expected
        assert upload(client, "{not json", "b.json").status_code == 422
        script = upload(client, {"name": "S", "plugins": ["tip.py"]}, "s.json")
        assert (
            script.status_code == 422 and "may not name plugins tip.py" in script.json()["detail"]
        )
        reach = upload(client, {"name": "R", "allow_paths": ["/"]}, "r.json")
        assert reach.status_code == 422 and "allow_paths" in reach.json()["detail"]
        wrong_kind = upload(client, "{}", "notes.txt")
        assert wrong_kind.status_code == 422 and ".yaml" in wrong_kind.json()["detail"]


def test_an_oversized_upload_gets_413(served: Served, model: OpenAIServer) -> None:
    with served.operator() as client:
        big = character(model, "Big", lore=["x" * 1000] * 100)  # ~100 KB; the limit is 64 KB
        answer = upload(client, big, "big.json")
        assert answer.status_code == 413
        assert "limit" in answer.json()["detail"]
        assert client.get("/api/agents/Big").status_code == 404


def test_a_payment_above_confirm_above_waits_for_the_owner(
    served: Served, model: OpenAIServer
) -> None:
    with served.operator() as client:
        running(client, "Tipper")
        model.queue(tool_call("tip", {"destination": "bob", "amount": 500}), reply("tipped bob"))
        result: dict[str, Any] = {}

        def chat() -> None:
            with served.operator() as other:
                result["answer"] = other.post(
                    "/api/agents/Tipper/messages", json={"text": "tip bob 500"}
                )

        thread = threading.Thread(target=chat)
        thread.start()
        pending = wait_for(
            lambda: client.get("/api/agents/Tipper/confirmations").json(), what="a confirmation"
        )
        assert pending[0]["amount"] == 500 and pending[0]["destination"] == "bob"
        assert "confirm paying" in pending[0]["question"]
        missing = client.post("/api/agents/Tipper/confirmations/nope", json={"approve": True})
        assert missing.status_code == 404
        approved = client.post(
            f"/api/agents/Tipper/confirmations/{pending[0]['id']}", json={"approve": True}
        )
        assert approved.status_code == 200
        thread.join(timeout=20)
        assert result["answer"].json()["text"] == "tipped bob"
        assert client.get("/api/agents/Tipper/confirmations").json() == []
        money = client.get("/api/agents/Tipper/money").json()
        assert money["spent"][0]["last_day"] == 500


def test_events_stream_messages_and_state_filtered_by_agent_and_kind(
    served: Served, model: OpenAIServer
) -> None:
    with served.operator() as client:
        running(client, "Ada")
        client.post("/api/agents/Ada/messages", json={"text": "for the explorer"})
        seen: list[dict[str, Any]] = []
        with client.stream(
            "GET", "/api/events", params={"agent": "Ada", "kind": "message"}
        ) as events:
            for line in events.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if any(e.get("text") == "echo: for the explorer" for e in seen):
                    break
        assert {e["kind"] for e in seen} <= {"message.in", "message.out"}
        assert {e["agent"] for e in seen} == {"Ada"}
        assert any(e["kind"] == "message.in" and e["text"] == "for the explorer" for e in seen)
        assert client.get("/api/events", params={"kind": "nonsense"}).status_code == 422
    # Another user's stream carries none of the operator's agents.
    other, _ = sign_in(served)
    with closing(other), other.stream("GET", "/api/events") as events:
        first = next(line for line in events.iter_lines() if line)
        assert first == ": connected"


def test_one_broken_agent_fails_alone_and_the_registry_survives_a_restart(
    tmp_path: Path, model: OpenAIServer
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(character(model, "Good")), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(character(model, "Bad", clients=["nowhere"])), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "server", files=[good, bad], token=TOKEN)
    first = serve(settings)
    try:
        with first.operator() as client:
            failed = wait_for(
                lambda: (a := client.get("/api/agents/Bad").json())["state"] == "failed" and a,
                what="Bad to fail",
            )
            assert "nowhere" in failed["error"]
            running(client, "Good")
            client.post("/api/agents/Good/stop")
            assert client.post("/api/agents/Good/messages", json={"text": "x"}).status_code == 409
    finally:
        first.stop()
    second = serve(Settings(data_dir=tmp_path / "server", files=[], token=TOKEN))
    try:
        with second.operator() as client:
            agents = {a["name"]: a for a in client.get("/api/agents").json()}
            assert agents["Good"]["desired"] == "stopped" and agents["Good"]["state"] == "stopped"
            client.post("/api/agents/Good/start")
            running(client, "Good")
    finally:
        second.stop()


def test_too_many_requests_from_one_client_get_429(tmp_path: Path) -> None:
    limited = serve(Settings(data_dir=tmp_path, token=TOKEN, rate=0.5, burst=3))
    try:
        with limited.client() as client:
            codes = [client.get("/api/health").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    finally:
        limited.stop()


def test_an_elizaos_file_is_accepted_as_it_is(served: Served, model: OpenAIServer) -> None:
    with served.operator() as client:
        eliza = json.loads(ELIZA0.read_text(encoding="utf-8"))
        answer = client.post(
            "/api/agents",
            files={"file": ("eliza0.character.json", json.dumps(eliza), "application/json")},
            data={"start": "false"},
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["format"] == "eliza-0.x" and body["state"] == "stopped"
        assert client.delete("/api/agents/Trader Joe").status_code == 204
