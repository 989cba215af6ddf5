"""The server's doors over real HTTP: sessions that survive a restart (hashed in the registry),
users' API keys, agents made from JSON fields and templates and edited as fields, and the
hosts an uploaded character may make the server reach."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from aigent_server.app import Settings
from aigent_server.confine import DEFAULT_HOSTS, Hosts, parse_rule, where
from aigent_server.registry import Registry
from aigent_server.sessions import Sessions, digest

from tests.fixtures.openai_server import OpenAIServer, reply, tool_call
from tests.server.conftest import TOKEN, Served, character, serve, sign_in, stand_in, wait_for
from tests.server.test_api import running

ELIZA0 = (
    Path(__file__).resolve().parents[2] / "tests" / "data" / "characters" / "eliza0.character.json"
)


def upload(client: httpx.Client, data: dict[str, Any], filename: str = "c.json") -> httpx.Response:
    return client.post(
        "/api/agents",
        files={"file": (filename, json.dumps(data), "application/json")},
        data={"start": "false"},
    )


def rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(data_dir / "server.sqlite")) as db:
        return db.execute(sql).fetchall()


# --- sessions ----------------------------------------------------------------------------------


def test_a_session_survives_a_restart_and_only_its_hash_is_stored(
    tmp_path: Path, model: OpenAIServer
) -> None:
    settings = Settings(data_dir=tmp_path / "data", token=TOKEN, allow_hosts=(stand_in(model),))
    first = serve(settings)
    try:
        client, address = sign_in(first)
        cookie = client.cookies["aigent_session"]
        assert upload(client, character(model, "Kept")).status_code == 201
    finally:
        first.stop()
    stored = rows(settings.data_dir, "SELECT key, owner FROM sessions")
    assert stored == [(digest(cookie), address)]
    assert cookie.encode() not in (settings.data_dir / "server.sqlite").read_bytes()
    second = serve(settings)  # a new process's worth of state: only the file carries over
    try:
        again = second.client(cookies={"aigent_session": cookie})
        again.headers["X-CSRF-Token"] = client.headers["X-CSRF-Token"]
        assert again.get("/api/auth/session").json()["owner"] == address
        assert [a["name"] for a in again.get("/api/agents").json()] == ["Kept"]
        assert again.post("/api/agents/Kept/start").status_code == 200
        # Logging out deletes it, from memory and from the file.
        assert again.post("/api/auth/logout").status_code == 200
        assert again.get("/api/agents").status_code == 401
        assert rows(settings.data_dir, "SELECT key FROM sessions") == []
        other = second.client(cookies={"aigent_session": cookie})
        assert other.get("/api/auth/session").status_code == 401
    finally:
        second.stop()


def test_sessions_expire(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "server.sqlite")
    try:
        import asyncio

        short = Sessions(registry, seconds=0.2)
        sid, session = asyncio.run(short.open("0xabc"))
        assert short.get(sid) is not None and short.get(sid).csrf == session.csrf  # type: ignore[union-attr]
        time.sleep(0.3)
        assert short.get(sid) is None
        # Expired rows are dropped when the server next starts.
        Sessions(registry)
        assert registry.execute("SELECT COUNT(*) FROM sessions") == [(0,)]
    finally:
        registry.close()


# --- API keys ----------------------------------------------------------------------------------


def test_a_user_mints_lists_uses_and_revokes_api_keys(served: Served, model: OpenAIServer) -> None:
    user, address = sign_in(served)
    with closing(user):
        made = user.post("/api/auth/tokens", json={"name": "nightly script"})
        assert made.status_code == 201, made.text
        key = made.json()
        token = key["token"]
        assert token.startswith("aik_") and key["prefix"] == token[:12]
        listed = user.get("/api/auth/tokens").json()
        assert [(k["name"], k["prefix"]) for k in listed] == [("nightly script", token[:12])]
        assert all("token" not in k for k in listed) and listed[0]["last_used_at"] is None
        assert token not in json.dumps(listed)
        # The key acts as the user: no cookie, no CSRF header needed.
        with served.client(headers={"Authorization": f"Bearer {token}"}) as script:
            created = upload(script, character(model, "Scripted"))
            assert created.status_code == 201, created.text
            assert created.json()["owner"] == address
            assert [a["name"] for a in script.get("/api/agents").json()] == ["Scripted"]
            # A key cannot breed keys: only a session mints them.
            refused = script.post("/api/auth/tokens", json={"name": "more"})
            assert refused.status_code == 403 and "signed-in session" in refused.json()["detail"]
        used = user.get("/api/auth/tokens").json()[0]
        assert used["last_used_at"] is not None
        stored = rows(served.data_dir, "SELECT hash, prefix FROM api_keys")
        assert stored == [(digest(token, "api-key"), token[:12])]
        assert token.encode() not in (served.data_dir / "server.sqlite").read_bytes()
        # Revoked: it no longer opens anything.
        assert user.delete(f"/api/auth/tokens/{key['id']}").status_code == 204
        gone = httpx.get(served.url + "/api/agents", headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 401 and "not valid" in gone.json()["detail"]
        assert user.delete(f"/api/auth/tokens/{key['id']}").status_code == 404
        assert user.delete("/api/agents/Scripted").status_code == 204
    # The operator's token works as before, beside the users' keys.
    with served.operator() as operator:
        assert operator.get("/api/agents").status_code == 200


def test_a_key_expires_and_another_user_cannot_revoke_it(served: Served) -> None:
    ann, _ = sign_in(served)
    bob, _ = sign_in(served)
    with closing(ann), closing(bob):
        key = ann.post(
            "/api/auth/tokens", json={"name": "brief", "expires_in_days": 1.5 / 86400}
        ).json()
        assert key["expires_at"] is not None
        assert bob.delete(f"/api/auth/tokens/{key['id']}").status_code == 404
        assert bob.get("/api/auth/tokens").json() == []
        bearer = {"Authorization": f"Bearer {key['token']}"}
        assert httpx.get(served.url + "/api/agents", headers=bearer).status_code == 200
        time.sleep(1.6)
        assert httpx.get(served.url + "/api/agents", headers=bearer).status_code == 401
        bad = ann.post("/api/auth/tokens", json={"name": ""})
        assert bad.status_code == 422


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", token=TOKEN)
    first = serve(settings)
    try:
        user, address = sign_in(first)
        token = user.post("/api/auth/tokens", json={"name": "ci"}).json()["token"]
    finally:
        first.stop()
    second = serve(settings)
    try:
        with second.client(headers={"Authorization": f"Bearer {token}"}) as script:
            assert script.get("/api/auth/session").json()["owner"] == address
    finally:
        second.stop()


# --- forms and templates -----------------------------------------------------------------------


def test_templates_and_an_agent_made_from_fields(served: Served, model: OpenAIServer) -> None:
    user, address = sign_in(served)
    with closing(user):
        templates = {t["id"]: t for t in user.get("/api/templates").json()}
        assert {"assistant", "expert", "spender"} <= set(templates)
        assert templates["expert"]["fields"]["price"] == "0.001 XRP"
        assert templates["spender"]["fields"]["spending"]["XRP"]["per_day"] > 0
        made = user.post(
            "/api/agents",
            json={
                "template": "expert",
                "name": "Quill",
                "bio": "Knows fountain pens.",
                "topics": ["fountain pens", "ink"],
                "model": "openai/gpt-4o-mini",
                "api_base": model.url,
            },
        )
        assert made.status_code == 201, made.text
        agent = made.json()
        assert agent["owner"] == address and agent["price"] == "0.001 XRP"
        running(user, "Quill")
        model.queue(reply("Use a fine nib."))
        answer = user.post("/api/agents/Quill/messages", json={"text": "which nib?"})
        assert answer.json()["text"] == "Use a fine nib."
        # The stored file is an aigent character, the way a user would have written it.
        fields = user.get("/api/agents/Quill/fields").json()
        assert fields["bio"] == ["Knows fountain pens."]
        assert fields["topics"] == ["fountain pens", "ink"]
        assert fields["system"].startswith("You are an expert")  # from the template
        assert fields["model"] == "openai/gpt-4o-mini" and fields["api_base"] == model.url
        # Editing: only the fields sent change; the running agent restarts on them.
        edited = user.patch(
            "/api/agents/Quill/fields", json={"price": "0.002", "adjectives": ["patient"]}
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["price"] == "0.002 XRP"
        again = user.get("/api/agents/Quill/fields").json()
        assert again["adjectives"] == ["patient"] and again["topics"] == ["fountain pens", "ink"]
        running(user, "Quill")
        renamed = user.patch("/api/agents/Quill/fields", json={"name": "Other"})
        assert renamed.status_code == 422 and renamed.json()["detail"].startswith("name:")
        assert user.delete("/api/agents/Quill").status_code == 204


def test_an_elizaos_upload_is_edited_as_fields_and_saved_as_aigent(served: Served) -> None:
    eliza = json.loads(ELIZA0.read_text(encoding="utf-8"))
    eliza["clients"] = []
    eliza["knowledge"] = [k for k in eliza["knowledge"] if isinstance(k, str)]
    user, _ = sign_in(served)
    with closing(user):
        assert upload(user, eliza, "eliza0.character.json").status_code == 201
        before = user.get("/api/agents/Trader Joe/fields").json()
        assert before["format"] == "eliza-0.x" and before["topics"]
        edited = user.patch("/api/agents/Trader Joe/fields", json={"bio": ["Trades less now."]})
        assert edited.status_code == 200, edited.text
        assert edited.json()["format"] == "aigent"
        after = user.get("/api/agents/Trader Joe/fields").json()
        assert after["bio"] == ["Trades less now."]
        assert after["topics"] == before["topics"] and after["style"] == before["style"]
        assert after["model"] == before["model"]
        assert user.delete("/api/agents/Trader Joe").status_code == 204


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"bio": 3}, "bio"),
        ({"price": "cheap"}, "price"),
        ({"price": "0.0000001"}, "price"),
        ({"spending": {"XRP": {"per_day": -1}}}, "spending.XRP.per_day"),
        ({"colour": "blue"}, "colour"),
        ({"template": "wizard"}, "template"),
        ({"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:5432/"}, "api_base"),
        ({"style": ["x" * 10, 5]}, "style[1]"),
    ],
)
def test_a_bad_form_is_refused_naming_the_field(
    served: Served, fields: dict[str, Any], field: str
) -> None:
    user, _ = sign_in(served)
    with closing(user):
        answer = user.post("/api/agents", json={"name": "Bad Form", **fields})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith(f"{field}:"), detail
        assert user.get("/api/agents/Bad Form").status_code == 404
    assert not list((served.data_dir / "uploads").glob("*/Bad-Form.json"))


def test_a_form_needs_a_name_and_operator_files_are_not_edited_here(served: Served) -> None:
    user, _ = sign_in(served)
    with closing(user):
        answer = user.post("/api/agents", json={"bio": "nameless"})
        assert answer.status_code == 422 and answer.json()["detail"].startswith("name:")
    with served.operator() as operator:
        assert operator.get("/api/agents/Ada/fields").status_code == 409
        assert operator.patch("/api/agents/Ada/fields", json={"bio": "x"}).status_code == 409


# --- confinement -------------------------------------------------------------------------------

INTERNAL = "http://127.0.0.1:5432/"


@pytest.mark.parametrize(
    ("fields", "field", "allow"),
    [
        (
            {"models": {"large": {"model": "openai/gpt-4o-mini", "api_base": INTERNAL}}},
            "models.large[0].api_base",
            "127.0.0.1:5432",
        ),
        (
            {
                "models": {
                    "large": "local",
                    "small": {"model": "x/y", "api_base": "http://10.0.0.5"},
                }
            },
            "models.small[0].api_base",
            "10.0.0.5:80",
        ),
        ({"memory": {"url": "http://localhost:8000"}}, "memory.url", "localhost:8000"),
        (
            {"settings": {"twitter": {"api_base": "http://127.0.0.1:7000"}}},
            "settings.twitter.api_base",
            "127.0.0.1:7000",
        ),
        (
            {"settings": {"trn": {"rpc_url": "http://169.254.169.254/latest"}}},
            "settings.trn.rpc_url",
            "169.254.169.254:80",
        ),
        ({"settings": {"trn": {"network": "local"}}}, "settings.trn.network", "127.0.0.1:8545"),
        (
            {"settings": {"xrpl": {"url": "http://127.0.0.1:5005"}}},
            "settings.xrpl.url",
            "127.0.0.1:5005",
        ),
        (
            {"secrets": {"OPENAI_API_BASE": "http://127.0.0.1:8080/v1"}},
            "secrets.OPENAI_API_BASE",
            "127.0.0.1:8080",
        ),
        (
            {
                "connector": {
                    "peers": {"hub": {"url": "ws://127.0.0.1:7768", "token": "t" * 16}},
                }
            },
            "connector.peers.hub.url",
            "127.0.0.1:7768",
        ),
        (
            {"connector": {"local_delivery": {"url": "http://127.0.0.1:3000"}}},
            "connector.local_delivery.url",
            "127.0.0.1:3000",
        ),
        (
            {"connector": {"listen": {"host": "0.0.0.0", "port": 7768}}},
            "connector.listen",
            "0.0.0.0:7768",
        ),
        (
            {"connector": {"admin": {"token": "t" * 16}}},
            "connector.admin",
            "127.0.0.1:7780",
        ),
        ({"connector": {"spsp": {"port": 8080}}}, "connector.spsp", "127.0.0.1:8080"),
        (
            {"spending": {"XRP": {"per_day": 10, "allowlist": ["$127.0.0.1:9000/agent"]}}},
            "spending.XRP.allowlist[0]",
            "127.0.0.1:9000",
        ),
    ],
)
def test_an_uploaded_character_reaches_only_allowed_hosts(
    served: Served, model: OpenAIServer, fields: dict[str, Any], field: str, allow: str
) -> None:
    user, _ = sign_in(served)
    with closing(user):
        data = character(model, "Reacher")
        data.update(fields)
        answer = upload(user, data)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith(f"{field}:"), detail
        assert f"--allow-host {allow}" in detail and "AIGENT_SERVE_ALLOW_HOSTS" in detail
        assert user.get("/api/agents/Reacher").status_code == 404


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        (
            {"connector": {"ledger_path": "/tmp/elsewhere.sqlite"}},
            "connector.ledger_path",
            "stays in its data directory",
        ),
        (
            {"spending": {"XRP": {"per_day": 10, "allowlist": ["https://api.openai.com."]}}},
            "spending.XRP.allowlist[0]",
            "may not end in '.'",
        ),
        (
            {"models": {"large": {"model": "openai/gpt-4o-mini", "api_key_secret": "XRPL_SEED"}}},
            "models.large[0].api_key_secret",
            "only a key it brings in its own secrets",
        ),
    ],
)
def test_other_ways_out_are_refused(
    served: Served, model: OpenAIServer, fields: dict[str, Any], field: str, why: str
) -> None:
    user, _ = sign_in(served)
    with closing(user):
        data = character(model, "Wanderer")
        data.update(fields)
        answer = upload(user, data)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith(f"{field}:") and why in answer.text


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://api.openai.com@127.0.0.1:5432/", "not a plain URL"),  # user info
        ("https://127.0.0.1:5432\\@api.openai.com/", "not a plain URL"),  # parsers disagree
        ("http://0x7f.1:5432/", "may not reach"),  # another spelling of loopback
        ("http://[::1]:5432/", "may not reach"),
        ("https://api.openai.com.evil.example/v1", "may not reach"),
    ],
)
def test_tricks_with_the_url_are_refused(
    served: Served, model: OpenAIServer, url: str, why: str
) -> None:
    user, _ = sign_in(served)
    with closing(user):
        data = character(model, "Trick")
        data["models"]["large"]["api_base"] = url
        answer = upload(user, data)
        assert answer.status_code == 422 and why in answer.json()["detail"], answer.text


def test_a_public_provider_is_allowed_and_nothing_secret_is_echoed(
    served: Served, model: OpenAIServer
) -> None:
    user, _ = sign_in(served)
    with closing(user):
        data = character(model, "Public")
        data["models"]["large"]["api_base"] = "https://api.groq.com/openai/v1"
        assert upload(user, data).status_code == 201
        assert user.delete("/api/agents/Public").status_code == 204
        leaky = character(model, "Leaky")
        leaky["secrets"] = {"CHROMA_URL": "http://hunter2secret@10.1.2.3:8000"}
        answer = upload(user, leaky)
        assert answer.status_code == 422 and "hunter2secret" not in answer.text


def test_replacing_a_character_is_checked_the_same_way(served: Served, model: OpenAIServer) -> None:
    user, _ = sign_in(served)
    with closing(user):
        assert upload(user, character(model, "Swapper")).status_code == 201
        data = character(model, "Swapper", memory={"url": INTERNAL})
        swapped = user.put(
            "/api/agents/Swapper/character",
            files={"file": ("s.json", json.dumps(data), "application/json")},
        )
        assert swapped.status_code == 422 and swapped.json()["detail"].startswith("memory.url:")
        patched = user.patch("/api/agents/Swapper/fields", json={"api_base": INTERNAL})
        assert patched.status_code == 422 and patched.json()["detail"].startswith("api_base:")
        assert "--allow-host 127.0.0.1:5432" in patched.json()["detail"]
        fields = user.get("/api/agents/Swapper/fields").json()
        assert fields["api_base"] == model.url  # unchanged
        assert user.delete("/api/agents/Swapper").status_code == 204


def test_the_operator_allows_a_host_and_its_own_files_are_not_confined(
    tmp_path: Path, model: OpenAIServer
) -> None:
    own = tmp_path / "own.json"
    own.write_text(json.dumps(character(model, "Own", memory={"url": INTERNAL})), "utf-8")
    settings = Settings(
        data_dir=tmp_path / "data",
        files=[own],
        token=TOKEN,
        allow_hosts=(stand_in(model), "127.0.0.1:5432"),
    )
    running_server = serve(settings)
    try:
        with running_server.operator() as operator:
            names = [a["name"] for a in operator.get("/api/agents").json()]
            assert names == ["Own"]  # the operator's file names whatever it likes
            data = character(model, "Allowed", settings={"twitter": {"api_base": INTERNAL}})
            assert upload(operator, data).status_code == 201
            other = character(model, "OtherPort", memory={"url": "http://127.0.0.1:5433"})
            answer = upload(operator, other)
            assert answer.status_code == 422 and "--allow-host 127.0.0.1:5433" in answer.text
    finally:
        running_server.stop()


def test_the_model_cannot_send_ask_agent_to_an_internal_host(
    served: Served, model: OpenAIServer
) -> None:
    user, _ = sign_in(served)
    with closing(user):
        data = character(model, "Asker", spending={"XRP": {"per_day": 100_000}})
        created = user.post(
            "/api/agents", files={"file": ("a.json", json.dumps(data), "application/json")}
        )
        assert created.status_code == 201, created.text
        running(user, "Asker")
        model.requests.clear()
        model.queue(
            tool_call(
                "ask_agent",
                {"receiver": "http://127.0.0.1:5432/x", "question": "hi", "max_price": 10},
            ),
            reply("could not ask"),
        )
        answer = user.post("/api/agents/Asker/messages", json={"text": "ask the db"})
        assert answer.status_code == 200, answer.text
        sent = json.dumps(model.requests[-1].body)
        assert "may not reach 127.0.0.1:5432" in sent and "--allow-host" in sent
        assert user.delete("/api/agents/Asker").status_code == 204


def test_the_default_hosts_cover_what_the_plugins_know() -> None:
    from aigent_openai.plugin import PROVIDERS
    from aigent_trn.chain import PRESETS

    known = [base for base, _ in PROVIDERS.values() if base and base.startswith("https")]
    known += [p["rpc_url"] for p in PRESETS.values() if p["rpc_url"].startswith("https")]
    hosts = Hosts()
    for url in known:
        place = where(url)
        assert place is not None and hosts.allows(place), url
    assert not hosts.allows(where("http://127.0.0.1:11434/v1"))  # type: ignore[arg-type]
    assert len(DEFAULT_HOSTS) == len(set(DEFAULT_HOSTS))
    with pytest.raises(ValueError, match="not a host"):
        parse_rule("http://x/")
    assert parse_rule("LocalHost:11434") == parse_rule("localhost:11434")
    assert hosts.allows(where("http://[::1]:8080/")) is False  # type: ignore[arg-type]
    assert Hosts(["[::1]:8080"]).allows(where("http://[::1]:8080/x"))  # type: ignore[arg-type]


def test_aigent_serve_takes_allowed_hosts_from_the_flag_and_the_environment(
    tmp_path: Path, model: OpenAIServer
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.server.test_command import free_port

    command = [sys.executable, "-m", "aigent.cli", "serve", "--data-dir", str(tmp_path / "d")]
    bad = subprocess.run(
        [*command, "--allow-host", "http://x/"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "is not a host to allow" in bad.stderr
    port = free_port()
    env = {**os.environ, "AIGENT_SERVE_TOKEN": "t0ken", "AIGENT_SERVE_ALLOW_HOSTS": "10.9.8.7"}
    process = subprocess.Popen(
        [
            *command,
            "--port",
            str(port),
            *("--allow-host", "127.0.0.1:5432"),
            *("--allow-host", stand_in(model)),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(url), timeout=30, what="aigent serve to come up")
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t0ken"}) as operator:
            for memory, status in [
                ("http://127.0.0.1:5432", 201),  # the flag
                ("http://10.9.8.7:8000", 201),  # the environment, any port
                ("http://127.0.0.1:5433", 422),  # neither
            ]:
                data = character(model, f"M{status}{memory[-4:]}", memory={"url": memory})
                assert upload(operator, data).status_code == status, memory
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=20)
    assert f"uploaded characters may also reach: 10.9.8.7, 127.0.0.1:5432, {stand_in(model)}" in out


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_uploaded_character_reads_only_model_keys_and_what_is_shared(
    tmp_path: Path, model: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's environment holds the operator's secrets (a wallet seed, a peer's token);
    a stranger's file sees its own secrets and the model keys, and what the operator shares."""
    from aigent_server.confine import environment

    monkeypatch.setenv("OPERATOR_BTP_TOKEN", "the-operators-peer-token")
    monkeypatch.setenv("XRPL_SEED", "sEdTheOperatorsSeed")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator")
    seen = environment(("OPERATOR_BTP_TOKEN",))
    assert seen["OPENAI_API_KEY"] == "sk-operator" and "XRPL_SEED" not in seen
    assert "XRPL_SEED" not in environment() and "OPERATOR_BTP_TOKEN" not in environment()

    borrowing = character(
        model,
        "Borrower",
        connector={"listen": {"port": 0},
                   "peers": {"op": {"relation": "child", "token_env": "OPERATOR_BTP_TOKEN"}}},
    )  # fmt: skip
    for share, fails in (((), True), (("OPERATOR_BTP_TOKEN",), False)):
        settings = Settings(
            data_dir=tmp_path / f"d{len(share)}",
            token=TOKEN,
            allow_hosts=(stand_in(model),),
            share_env=share,
        )
        server = serve(settings)
        try:
            operator = server.operator()
            assert upload(operator, borrowing).status_code == 201
            operator.post("/api/agents/Borrower/start")
            agent = settled(operator, "Borrower")
            if fails:
                assert agent["state"] == "failed"
                assert "peers.op.token_env: OPERATOR_BTP_TOKEN is not set" in agent["error"]
            else:
                assert agent["state"] == "running", agent["error"]
        finally:
            server.stop()


def settled(client: httpx.Client, name: str) -> dict[str, Any]:
    """The agent once it is running or has failed."""

    def check() -> dict[str, Any] | None:
        agent: dict[str, Any] = client.get(f"/api/agents/{name}").json()
        return agent if agent["state"] in ("running", "failed") else None

    found: dict[str, Any] = wait_for(check, what=f"{name} to start or fail")
    return found
