"""The agents page of a server sharing PostgreSQL, in a real Chromium: each agent's card names
the server that runs it. Screenshots (desktop and phone width) go to tests/server/artifacts/."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aigent_server.app import Settings
from eth_account import Account

from tests.connector.postgres_server import Server
from tests.connector.test_postgres_store import pg  # noqa: F401  (the session's server)
from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import TOKEN, Served, serve, stand_in
from tests.server.test_web import CHROMIUM, browser, shot  # noqa: F401

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)"
)


@pytest.fixture
def admin() -> Any:
    return Account.create()


@pytest.fixture
def fleet(
    pg: Server,  # noqa: F811
    tmp_path: Path,
    files: list[Path],
    admin: Any,
    model: OpenAIServer,
) -> Iterator[Served]:
    running = serve(
        Settings(
            data_dir=tmp_path / "data",
            files=files,
            token=TOKEN,
            admins=frozenset({admin.address}),
            allow_hosts=(stand_in(model),),
            database_url=pg.url(),
            database_schema=f"w_{uuid.uuid4().hex[:10]}",
            lease_seconds=3.0,
            server_name="web-1:8000",
        )
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_agents_page_names_each_agents_server(
    browser: Any,  # noqa: F811
    fleet: Served,
    admin: Any,
    width: int,
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 860})
    context.add_init_script(
        f"localStorage.setItem('aigent.wallet.key', '{bytes(admin.key).hex()}')"
    )
    page = context.new_page()
    try:
        page.goto(fleet.url + "/#/wallet")
        page.click("#sign-in")
        page.wait_for_selector('[data-agent="Ada"] [data-state="running"]')
        page.wait_for_selector('[data-agent="Ada"] dd.server')
        page.wait_for_selector("#toast", state="hidden", timeout=10_000)
        assert (page.text_content('[data-agent="Ada"] dd.server') or "").strip() == "web-1:8000"
        shot(page, f"fleet-agents-{width}")
    finally:
        context.close()
