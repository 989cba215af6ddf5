"""STREAM and SPSP against the reference implementation: npm ilp-protocol-stream 2.7.1 (with a
load-time patch for Node >= 18, see fixtures/connector_js/stream_patch.js) paying our receiver
through the reference connector (ilp-connector), and its crypto checked against ours."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aigent_connector.connector import Connector, Peer
from aigent_connector.ledger import SqliteLedger
from aigent_connector.spsp import SpspServer
from aigent_connector.stream import StreamPacket, StreamReceiver, crypto, stream_pay
from aigent_connector.stream import frames as f

from tests.connector.test_interop_js import (
    JS,
    JsConnector,
    btp_server_account,
    free_port,
    pytestmark,  # noqa: F401 - the same marks: slow, and skipped without Node.js
    wait_port,
)


@pytest.fixture(scope="session")
def stream_modules() -> Path:
    if not (JS / "node_modules" / "ilp-protocol-stream").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=JS,
            check=True,
            timeout=600,
            capture_output=True,
        )
    return JS / "node_modules"


def test_our_crypto_matches_ilp_protocol_stream(stream_modules: Path) -> None:
    server_secret, shared_secret = os.urandom(32), os.urandom(32)
    receiver = StreamReceiver("test.py.server", server_secret)
    ours = [receiver.credentials("py-tag"), receiver.credentials()]
    prepare_data = os.urandom(64)
    our_packet = StreamPacket(3, 13, 77, (f.StreamData(1, 0, b"hello from python"),))
    given = {
        "serverSecret": server_secret.hex(),
        "ourTokens": [c.destination_account.rsplit(".", 1)[1] for c in ours],
        "sharedSecret": shared_secret.hex(),
        "prepareData": prepare_data.hex(),
        "ourPacket": our_packet.encrypt(shared_secret).hex(),
    }
    run = subprocess.run(
        ["node", str(JS / "stream_crypto.js"), json.dumps(given)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    js = json.loads(run.stdout)
    # Credentials we hand out open in ilp-protocol-stream's server pool, and the reverse.
    assert js["ourTokens"] == [
        {"connectionTag": "py-tag", "sharedSecret": ours[0].shared_secret.hex()},
        {"connectionTag": "", "sharedSecret": ours[1].shared_secret.hex()},
    ]
    token = js["generated"]["destinationAccount"].rsplit(".", 1)[1]
    assert crypto.open_token(server_secret, crypto.from_base64url(token)) == b"js-tag"
    their_secret = crypto.shared_secret_from_token(server_secret, crypto.from_base64url(token))
    assert their_secret.hex() == js["generated"]["sharedSecret"]
    # Packets encrypted by either side decrypt on the other.
    theirs = StreamPacket.decrypt(shared_secret, bytes.fromhex(js["jsPacket"]))
    assert theirs == StreamPacket(
        7,
        12,
        42,
        (
            f.ConnectionNewAddress("test.js.client"),
            f.StreamMoney(1, 3),
            f.StreamData(1, 0, b"hello from js"),
        ),
    )
    assert js["ourPacket"] == {
        "sequence": "3",
        "type": 13,
        "amount": "77",
        "frames": [{"name": "StreamData", "data": "hello from python"}],
    }
    assert js["fulfillment"] == crypto.fulfillment(shared_secret, prepare_data).hex()
    assert js["condition"] == crypto.condition(shared_secret, prepare_data).hex()


class JsStreamClient:
    def __init__(self, config: dict, log: Path, script: str = "stream_client.js") -> None:
        self.log = log
        self.proc = subprocess.Popen(
            ["node", str(JS / script), json.dumps(config)],
            cwd=JS,
            stdin=subprocess.PIPE,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    async def wait_for(self, marker: str, within: float = 20) -> str:
        for _ in range(int(within * 10)):
            text = self.log.read_text()
            if marker in text:
                return text
            assert self.proc.poll() is None or marker in self.log.read_text(), text[-3000:]
            await asyncio.sleep(0.1)
        raise AssertionError(f"JS STREAM client never printed {marker}:\n{text[-3000:]}")

    def go(self, **config: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(config).encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
async def js_path(stream_modules: Path, tmp_path: Path) -> AsyncIterator[dict]:
    """ilp-connector test.js with two BTP children: our node 'aigent' and 'client' (for the
    JS STREAM client)."""
    ports = {name: free_port() for name in ("aigent", "client", "admin")}
    accounts = {
        name: btp_server_account(ports[name], f"{name}-secret") for name in ("aigent", "client")
    }
    for account in accounts.values():  # keep balances, so both sides of the books can be read
        account["balance"] = {"minimum": "-1000000000000000", "maximum": "1000000000000000"}
    js = JsConnector(
        {
            "ilpAddress": "test.js",
            "backend": "one-to-one",
            "spread": 0,
            "accounts": accounts,
            "adminApi": True,
            "adminApiHost": "127.0.0.1",
            "adminApiPort": ports["admin"],
        },
        tmp_path / "ilp-connector.log",
    )
    parts: dict = {"js": js, "ports": ports, "tmp": tmp_path}
    try:
        await wait_port(ports["aigent"])
        node = Connector("", SqliteLedger(tmp_path / "aigent.sqlite"))
        node.add_peer(Peer("parent", "parent"))
        node.routes.add("", "parent")
        await node.connect(f"ws://127.0.0.1:{ports['aigent']}", "parent", "aigent", "aigent-secret")
        parts["node"] = node
        yield parts
    finally:
        if "node" in parts:
            await parts["node"].stop()
        js.stop()


async def test_ilp_protocol_stream_pays_our_receiver_through_ilp_connector(js_path: dict) -> None:
    node: Connector = js_path["node"]
    client = JsStreamClient(
        {"server": f"btp+ws://:client-secret@127.0.0.1:{js_path['ports']['client']}"},
        js_path["tmp"] / "stream-client.log",
    )
    try:
        await client.wait_for("CONNECTED")
        await js_path["js"].ready()  # every account is connected: the connector routes now
        await node.fetch_address("parent")
        money: list[tuple[str | None, int]] = []
        receiver = StreamReceiver(
            node.address,
            os.urandom(32),
            asset_code="XRP",
            asset_scale=6,
            on_money=lambda tag, amount: money.append((tag, amount)),
        )
        node.set_packet_handler(lambda account, prepare: receiver.handle(prepare))
        async with SpspServer(receiver, {"/.well-known/pay": "js-payer"}) as spsp:
            # 10000 in packets of at most 2500, after the client's exchange-rate probes.
            client.go(spsp=f"{spsp.url}/.well-known/pay", amount=10000, maxPacketAmount="2500")
            text = await client.wait_for("RESULT", within=25)
        result = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
        admin = f"http://127.0.0.1:{js_path['ports']['admin']}/balance"
        async with aiohttp.ClientSession() as session, session.get(admin) as response:
            js_balances = {k: v["balance"] for k, v in (await response.json())["accounts"].items()}
    finally:
        client.stop()
    assert result["spsp"] == {
        "status": 200,
        "contentType": "application/spsp4+json",
        "cacheControl": "max-age=60",
        "cors": "*",
    }
    assert result["sourceAccount"] == "test.js.client"
    assert result["totalSent"] == result["totalDelivered"] == "10000"
    assert (result["destinationAssetCode"], result["destinationAssetScale"]) == ("XRP", 6)
    assert len(money) >= 4 and all(amount <= 2500 for _, amount in money)  # several packets
    assert sum(amount for _, amount in money) == 10000
    assert {tag for tag, _ in money} == {"js-payer"}
    # Both sides of the books: the parent owes our node 10000, and the reference connector says
    # it owes 'aigent' 10000 (its balances are from its own side) and is owed it by the client.
    assert node.ledger.account("parent").balance == 10000
    assert js_balances == {"aigent": "-10000", "client": "10000"}
    assert "endError" not in result, result["endError"]
    assert receiver.connection_count == 0  # the client closed its connection


async def test_our_sender_pays_an_ilp_protocol_stream_server(js_path: dict) -> None:
    node: Connector = js_path["node"]
    server = JsStreamClient(
        {"server": f"btp+ws://:client-secret@127.0.0.1:{js_path['ports']['client']}"},
        js_path["tmp"] / "stream-server.log",
        script="stream_server.js",
    )
    try:
        await server.wait_for("CONNECTED")
        await js_path["js"].ready()
        await node.fetch_address("parent")
        server.go()
        text = await server.wait_for("CREDENTIALS")
        given = json.loads(text.split("CREDENTIALS ", 1)[1].splitlines()[0])
        secret = base64.b64decode(given["sharedSecret"])
        result = await stream_pay(
            node.send, given["destinationAccount"], secret, 5000, max_packet_amount=2000
        )
        text = await server.wait_for("RECEIVED 5000")
        admin = f"http://127.0.0.1:{js_path['ports']['admin']}/balance"
        async with aiohttp.ClientSession() as session, session.get(admin) as response:
            js_balances = {k: v["balance"] for k, v in (await response.json())["accounts"].items()}
    finally:
        server.stop()
    assert (result.sent, result.delivered, result.packets) == (5000, 5000, 3)
    assert result.destination_asset is None  # it only says so to senders that give an address
    assert node.ledger.account("parent").balance == -5000
    assert js_balances == {"aigent": "5000", "client": "-5000"}
