"""The web app in a real Chromium (Debian's, driven by Playwright): sign in with the built-in
wallet, create an agent from an ElizaOS file, chat and watch the reply stream, see it in the
explorer, approve a payment. Screenshots of each page go to tests/server/artifacts/."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aigent_server.app import Settings
from eth_account import Account

from tests.fixtures.openai_server import OpenAIServer, reply, tool_call, trickle
from tests.server.conftest import TOKEN, Served, character, serve, stand_in

ROOT = Path(__file__).resolve().parents[2]
ELIZA0 = ROOT / "tests" / "data" / "characters" / "eliza0.character.json"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)"
)


@pytest.fixture
def browser() -> Iterator[Any]:
    # Per test: Playwright's sync API runs an event loop on this thread while it is open, and
    # nothing else in the suite should ever find it there.
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def admin() -> Any:
    return Account.create()


@pytest.fixture(scope="module")
def web(
    tmp_path_factory: pytest.TempPathFactory, files: list[Path], admin: Any, model: OpenAIServer
) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("web")
    running = serve(
        Settings(
            data_dir=data,
            files=files,
            token=TOKEN,
            admins=frozenset({admin.address}),
            # The model stand-in, and the local TRN network the explorer test's agent names.
            allow_hosts=(stand_in(model), "127.0.0.1:8545"),
        )
    )
    try:
        yield running
    finally:
        running.stop()


def eliza_file(folder: Path, model: OpenAIServer) -> Path:
    """The ElizaOS 0.x test character as users have it, pointed at the stand-in model (and
    without the X client and the knowledge file it would need to start here)."""
    data = json.loads(ELIZA0.read_text(encoding="utf-8"))
    data["modelEndpointOverride"] = model.url
    data["clients"] = []
    data["knowledge"] = [k for k in data["knowledge"] if isinstance(k, str)]
    path = folder / "traderjoe.character.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def shot(page: Any, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def test_a_new_wallet_signs_in_and_owns_what_it_creates(
    browser: Any, web: Served, tmp_path: Path, model: OpenAIServer
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        page.goto(web.url + "/")
        page.wait_for_selector("body[data-ready]")
        shot(page, "0-landing")
        page.click("text=Open your wallet")
        page.click("#create-wallet")
        address = page.text_content("#wallet-address")
        assert address is not None and address.startswith("0x") and len(address) == 42
        page.click("#sign-in")
        page.wait_for_selector("#agent-grid")
        assert page.text_content("#who") == f"{address[:6]}…{address[-4:]}".lower()
        assert "No agents yet" in (page.text_content("#agent-grid") or "")
        # A broken file shows the validation error; a good one becomes an agent of this address.
        broken = tmp_path / "broken.json"
        broken.write_text(json.dumps({"name": "B", "bio": 3}), encoding="utf-8")
        page.set_input_files("#upload", str(broken))
        page.wait_for_selector("#upload-error:not([hidden])")
        assert "broken.json" in (page.text_content("#upload-error") or "")
        page.set_input_files("#upload", str(eliza_file(tmp_path, model)))
        page.wait_for_selector('[data-agent="Trader Joe"] [data-state="running"]')
        with web.operator() as operator:
            owner = operator.get("/api/agents/Trader Joe").json()["owner"]
        assert owner == address.lower()
    finally:
        context.close()


def test_sign_in_chat_explore_and_approve(
    browser: Any, web: Served, tmp_path: Path, model: OpenAIServer, admin: Any
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    # The operator's key, already in this browser's wallet (as after "Create wallet").
    context.add_init_script(
        f"localStorage.setItem('aigent.wallet.key', '{bytes(admin.key).hex()}')"
    )
    page = context.new_page()
    try:
        page.goto(web.url + "/#/wallet")
        page.wait_for_selector("#wallet-address")
        # The page derives the address from the key itself (keccak, EIP-55) as eth-account does.
        assert page.text_content("#wallet-address") == admin.address
        shot(page, "1-wallet")
        page.click("#sign-in")
        page.wait_for_selector('[data-agent="Ada"]')
        page.wait_for_selector('[data-agent="Ada"] [data-state="running"]')
        shot(page, "2-agents")

        page.goto(web.url + "/#/chat/Ada")
        page.wait_for_selector("#chat-input")
        model.queue(trickle("markets go up and markets go down", every=0.12))
        page.fill("#chat-input", "what's the market doing?")
        page.click("#send")
        # Part of the reply is on screen while the rest is still being written.
        page.wait_for_function(
            "() => { const b = document.querySelector('#streaming .text');"
            " return b && b.textContent.length > 0"
            " && b.textContent.trim() !== 'markets go up and markets go down'; }"
        )
        shot(page, "3-chat-streaming")
        page.wait_for_selector(".bubble.agent .meta")
        final = page.locator(".bubble.agent .text").last.text_content()
        assert final == "markets go up and markets go down"
        shot(page, "4-chat")

        page.goto(web.url + "/#/explorer")
        page.wait_for_selector('.event[data-kind="message.out"]:has-text("markets go up")')
        page.wait_for_selector('.event[data-kind="message.in"]:has-text("market doing")')
        shot(page, "5-explorer")

        page.goto(web.url + "/#/money")
        page.wait_for_selector("#confirmations")
        model.queue(tool_call("tip", {"destination": "bob", "amount": 500}), reply("tipped bob"))
        answers: dict[str, Any] = {}

        def chat() -> None:
            with web.operator() as client:
                answers["reply"] = client.post(
                    "/api/agents/Tipper/messages", json={"text": "tip bob"}
                ).json()

        thread = threading.Thread(target=chat)
        thread.start()
        page.wait_for_selector(".confirmation .approve")
        assert "confirm paying" in (page.text_content(".confirmation") or "")
        shot(page, "6-money-confirmation")
        page.click(".confirmation .approve")
        page.wait_for_selector(".confirmation", state="detached")
        thread.join(timeout=20)
        assert answers["reply"]["text"] == "tipped bob"
        page.wait_for_selector("text=No payments are waiting")
        shot(page, "7-money")
    finally:
        context.close()


def test_the_pages_fit_a_phone(browser: Any, web: Served, admin: Any) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    context.add_init_script(
        f"localStorage.setItem('aigent.wallet.key', '{bytes(admin.key).hex()}')"
    )
    page = context.new_page()
    try:
        page.goto(web.url + "/#/wallet")
        page.click("#sign-in")
        page.wait_for_selector('[data-agent="Ada"]')
        for name in ("agents", "chat", "explorer", "money"):
            page.goto(f"{web.url}/#/{name}")
            page.wait_for_selector(f'main[data-page="{name}"] .page-head')
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name} scrolls sideways on a phone ({width}px)"
            shot(page, f"phone-{name}", full_page=False)  # as the phone shows it
    finally:
        context.close()


def test_the_explorer_checks_a_replys_receipt(
    browser: Any, web: Served, tmp_path: Path, model: OpenAIServer
) -> None:
    """A user's agent with aigent-trn's receipts (sealed at once, never sent on chain): its
    reply in the explorer has a verify button; the proof checks, the chain is not claimed."""
    trn = {"network": "local", "anchor": False, "batch_size": 1}
    data = character(model, "Witness", plugins=["trn"], settings={"trn": trn})
    path = tmp_path / "witness.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        page.goto(web.url + "/")
        page.wait_for_selector("body[data-ready]")
        page.click("text=Open your wallet")
        page.click("#create-wallet")
        page.click("#sign-in")
        page.wait_for_selector("#agent-grid")
        page.set_input_files("#upload", str(path))
        page.wait_for_selector('[data-agent="Witness"] [data-state="running"]')
        model.queue(reply("witnessed"))
        status = page.evaluate(
            """async () => {
              const s = await (await fetch("/api/auth/session")).json();
              const r = await fetch("/api/agents/Witness/messages", {method: "POST",
                headers: {"Content-Type": "application/json", "X-CSRF-Token": s.csrf},
                body: JSON.stringify({text: "did you see it?"})});
              return r.status;
            }"""
        )
        assert status == 200
        page.goto(web.url + "/#/explorer")
        row = '.event[data-kind="message.out"]:has-text("witnessed")'
        page.click(f"{row} button.verify")
        page.wait_for_selector(f'{row} .verify-result[data-ok="true"]')
        result = page.text_content(f"{row} .verify-result") or ""
        assert "proof ok" in result and "not checked" in result
        shot(page, "8-explorer-verify")
    finally:
        context.close()
