"""The web app's doors in a real Chromium: signing in with a browser wallet (an EIP-1193
provider), API tokens on the wallet page, and new agents from a template, a form and edits.
Screenshots (desktop and 390px) go to tests/server/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aigent_server.app import Settings
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import TOKEN, Served, serve, stand_in
from tests.server.test_web import CHROMIUM, browser, shot  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)"
)

# An EIP-1193 provider as a wallet extension injects it (window.ethereum). Extensions cannot
# run in this headless Chromium, so this one stands in for MetaMask: it answers the two calls
# the page makes, and personal_sign is a real secp256k1 signature made by the test's key.
PROVIDER = """
window.ethereum = {
  isMetaMask: true,
  calls: [],
  async request({ method, params }) {
    this.calls.push(method);
    if (method === "eth_requestAccounts") return [await window.__walletAddress()];
    if (method === "personal_sign") return await window.__walletSign(params[0], params[1]);
    throw Object.assign(new Error(`unsupported ${method}`), { code: 4200 });
  },
};
"""


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory, model: OpenAIServer) -> Iterator[Served]:
    running = serve(
        Settings(
            data_dir=tmp_path_factory.mktemp("doors-web"),
            token=TOKEN,
            allow_hosts=(stand_in(model),),
        )
    )
    try:
        yield running
    finally:
        running.stop()


def extension_wallet(context: Any, account: Any) -> None:
    def sign(message_hex: str, address: str) -> str:
        assert address.lower() == account.address.lower()
        text = bytes.fromhex(message_hex.removeprefix("0x")).decode()
        return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()

    context.expose_function("__walletSign", sign)
    context.expose_function("__walletAddress", lambda: account.address.lower())
    context.add_init_script(PROVIDER)


def test_a_browser_wallet_signs_in_and_makes_an_api_token(browser: Any, doors: Served) -> None:  # noqa: F811
    account = Account.create()
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    extension_wallet(context, account)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the revoke confirmation
    try:
        page.goto(doors.url + "/#/wallet")
        page.wait_for_selector("body[data-ready]")
        page.wait_for_selector("#browser-wallet")
        shot(page, "doors-0-wallet-choices")
        page.click("#browser-wallet")
        page.wait_for_selector("#agent-grid")
        address = account.address.lower()
        assert page.text_content("#who") == f"{address[:6]}…{address[-4:]}"
        calls = page.evaluate("window.ethereum.calls")
        assert calls == ["eth_requestAccounts", "personal_sign"]
        # The wallet page, signed in with the extension: its address, and API tokens.
        page.goto(doors.url + "/#/wallet")
        page.wait_for_selector("#api-tokens")
        assert page.text_content("#wallet-address") == address
        page.fill("#token-name", "nightly report")
        page.select_option("#token-expiry", "30")
        page.click("#token-create")
        token = page.text_content("#token-secret")
        assert token is not None and token.startswith("aik_")
        page.wait_for_selector('[data-token="nightly report"]')
        row = page.text_content('[data-token="nightly report"]') or ""
        assert token[:12] in row and "never used" in row and "expires" in row
        shot(page, "doors-1-wallet-tokens")
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(doors.url + "/api/auth/session", headers=bearer).json()["owner"] == address
        page.click('[data-token="nightly report"] button')
        page.wait_for_selector("text=No tokens yet.")
        assert httpx.get(doors.url + "/api/agents", headers=bearer).status_code == 401
        page.click("#sign-out")
        page.wait_for_selector("#browser-wallet")
    finally:
        context.close()


def sign_in_built_in(context: Any, page: Any, url: str) -> Any:
    account = Account.create()
    context.add_init_script(
        f"localStorage.setItem('aigent.wallet.key', '{bytes(account.key).hex()}')"
    )
    page.goto(url + "/#/wallet")
    page.click("#sign-in")
    page.wait_for_selector("#agent-grid")
    return account


def test_new_agents_from_a_template_and_a_form_then_edited(
    browser: Any,  # noqa: F811
    doors: Served,
    model: OpenAIServer,
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        sign_in_built_in(context, page, doors.url)
        page.click("#new-agent")
        page.wait_for_selector('#templates [data-template="expert"]')
        shot(page, "doors-2-new-agent", full_page=False)
        # From a template: its fields fill the form; the user names the agent and its model.
        page.click('#templates [data-template="expert"]')
        assert page.input_value('[name="price"]') == "0.001 XRP"
        assert page.input_value('[name="system"]').startswith("You are an expert")
        page.fill('[name="name"]', "Quill")
        page.fill('[name="model"]', "openai/gpt-4o-mini")
        page.click("summary")
        page.fill('[name="api_base"]', model.url)
        shot(page, "doors-3-template-form", full_page=False)
        page.click("#editor-save")
        page.wait_for_selector('[data-agent="Quill"] [data-state="running"]')
        with doors.client(headers={"Authorization": f"Bearer {TOKEN}"}) as operator:
            fields = operator.get("/api/agents/Quill/fields").json()
            assert fields["price"] == "0.001 XRP" and fields["api_base"] == model.url
        # From the form: a bad price is named, and its input marked, until it is fixed.
        page.click("#new-agent")
        page.click('[data-way="form"]')
        page.fill('[name="name"]', "Scout")
        page.fill('[name="bio"]', "Finds things.")
        page.fill('[name="price"]', "cheap")
        page.click("#editor-save")
        page.wait_for_selector("#editor-error:not([hidden])")
        assert (page.text_content("#editor-error") or "").startswith("price:")
        assert page.get_attribute('[name="price"]', "aria-invalid") == "true"
        shot(page, "doors-4-form-error", full_page=False)
        page.fill('[name="price"]', "")
        page.fill('[name="model"]', "openai/gpt-4o-mini")
        page.click("summary")
        page.fill('[name="api_base"]', model.url)
        page.check('[name="spends"]')
        page.fill('[name="spending.per_day"]', "0.5")
        page.fill('[name="spending.confirm_above"]', "0.01")
        page.click("#editor-save")
        page.wait_for_selector('[data-agent="Scout"] [data-state="running"]')
        shot(page, "doors-5-agents")
        # Edit: the form opens with the agent's fields; saved changes reach its file.
        page.click('[data-agent="Scout"] button.edit')
        page.wait_for_function("document.querySelector('[name=\"bio\"]').value === 'Finds things.'")
        assert page.input_value('[name="spending.per_day"]') == "0.5"
        page.fill('[name="bio"]', "Finds things, fast.")
        page.click("#editor-save")
        page.wait_for_selector("#agent-editor", state="detached")
        with doors.client(headers={"Authorization": f"Bearer {TOKEN}"}) as operator:
            fields = operator.get("/api/agents/Scout/fields").json()
            assert fields["bio"] == ["Finds things, fast."]
            assert fields["spending"]["XRP"]["per_day"] == 500_000
            assert fields["spending"]["XRP"]["confirm_above"] == 10_000
    finally:
        context.close()


def test_the_dialog_and_the_tokens_fit_a_phone(browser: Any, doors: Served) -> None:  # noqa: F811
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = context.new_page()
    try:
        sign_in_built_in(context, page, doors.url)
        page.click("#new-agent")
        page.wait_for_selector('#templates [data-template="spender"]')
        shot(page, "doors-phone-new-agent", full_page=False)
        page.click('#templates [data-template="spender"]')
        assert page.is_checked('[name="spends"]')
        assert page.input_value('[name="spending.per_day"]') == "0.2"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the dialog scrolls sideways on a phone ({width}px)"
        shot(page, "doors-phone-template-form", full_page=False)
        page.click("#agent-editor .close")
        page.goto(doors.url + "/#/wallet")
        page.fill("#token-name", "phone")
        page.click("#token-create")
        page.wait_for_selector("#token-secret")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the wallet page scrolls sideways on a phone ({width}px)"
        shot(page, "doors-phone-wallet", full_page=True)
    finally:
        context.close()
