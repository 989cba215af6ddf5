"""A real ``aigent serve`` app on uvicorn, on a free port in a thread of the test process, with
the OpenAI wire-format stand-in as every agent's model; both always stopped."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aigent_server.app import Settings, create_app
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.fixtures.openai_server import OpenAIServer

TOKEN = "operator-token-for-tests"

TIP_PLUGIN = '''
from aigent import Action, hookimpl, moves_value


@hookimpl
def register_actions(register, ctx):
    @moves_value
    async def tip(destination: str, amount: int) -> str:
        """Tip someone ``amount`` drops of XRP."""
        async with ctx.spending.spend("XRP", amount, to=destination, purpose="a tip"):
            pass
        return f"tipped {amount}"

    register(Action.from_function(tip))
'''


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    data_dir: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def operator(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {TOKEN}"})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def serve(settings: Settings) -> Served:
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="info",  # its start-up errors, if any, reach the test report
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # kept, to say why the server did not start
            failure.append(exc)
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # generous: the whole suite may be running beside it
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            why = repr(failure[0]) if failure else "no exception (see the log above)"
            alive = "still starting" if thread.is_alive() else "its thread ended"
            raise RuntimeError(f"the test server did not start ({alive}): {why}")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Served(f"http://127.0.0.1:{port}", server, thread, settings.data_dir)


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


def character(model: OpenAIServer, name: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "bio": [f"{name} is a test agent"],
        "models": {"large": {"model": "openai/gpt-4o-mini", "api_base": model.url}},
    }
    data.update(fields)
    return data


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer) -> list[Path]:
    """Two operator agents: a plain one, and one with a tip action above confirm_above."""
    folder = tmp_path_factory.mktemp("characters")
    (folder / "tip.py").write_text(TIP_PLUGIN, encoding="utf-8")
    plain = folder / "ada.json"
    plain.write_text(json.dumps(character(model, "Ada")), encoding="utf-8")
    tipper = folder / "tipper.json"
    tipper.write_text(
        json.dumps(
            character(
                model,
                "Tipper",
                plugins=["tip.py"],
                spending={"XRP": {"per_day": 1_000_000, "confirm_above": 100}},
            )
        ),
        encoding="utf-8",
    )
    return [plain, tipper]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, files: list[Path], model: OpenAIServer
) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("server")
    running = serve(
        Settings(
            data_dir=data,
            files=files,
            token=TOKEN,
            max_body=64 * 1024,
            allow_hosts=(stand_in(model),),
        )
    )
    try:
        yield running
    finally:
        running.stop()


def stand_in(model: OpenAIServer) -> str:
    """The model stand-in's host:port, for uploaded characters to be let reach it."""
    return model.url.split("/")[2]


def sign_in(served: Served, key: Any = None) -> tuple[httpx.Client, str]:
    """A client signed in with a fresh wallet (or ``key``): its session cookie and CSRF."""
    account = key or Account.create()
    client = served.client()
    challenge = client.post("/api/auth/challenge", json={"address": account.address}).json()
    signature = account.sign_message(encode_defunct(text=challenge["message"])).signature
    answer = client.post(
        "/api/auth/verify",
        json={"nonce": challenge["nonce"], "signature": "0x" + bytes(signature).hex()},
    )
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf"]
    return client, account.address.lower()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
