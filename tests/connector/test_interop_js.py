"""Interoperability with the reference connector (npm ilp-connector 23 with ilp-plugin-btp),
started on loopback by the test. npm packages are installed from the committed lock file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aigent_connector.connector import Connector, Peer
from aigent_connector.ledger import SqliteLedger
from aigent_connector.packets import Fulfill, Prepare, Reject

JS = Path(__file__).parents[1] / "fixtures" / "connector_js"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for ilp-connector"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def node_modules() -> Path:
    if not (JS / "node_modules" / "ilp-connector").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True,
                       timeout=600, capture_output=True)  # fmt: skip
    return JS / "node_modules"


async def wait_port(port: int, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, f"port {port} never opened"
            await asyncio.sleep(0.1)


class JsConnector:
    def __init__(self, config: dict, log: Path) -> None:
        # Its logs go to a file: a pipe nobody reads fills up and stalls the node process.
        self.log = log
        self.proc = subprocess.Popen(
            ["node", str(JS / "launch.js"), json.dumps(config)], cwd=JS,
            stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def ready(self, within: float = 30) -> None:
        for _ in range(int(within * 10)):
            if "READY" in self.log.read_text():
                return
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        raise AssertionError("ilp-connector never got ready:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def btp_server_account(port: int, secret: str, relation: str = "child") -> dict:
    return {"relation": relation, "assetCode": "XRP", "assetScale": 6,
            "plugin": "ilp-plugin-btp",
            "options": {"listener": {"port": port, "secret": secret}}}  # fmt: skip


SECRET = os.urandom(32)
FULFILLMENT = hashlib.sha256(SECRET).digest()
CONDITION = hashlib.sha256(FULFILLMENT).digest()


def prepare(destination: str, amount: int) -> Prepare:
    return Prepare(amount, datetime.now(UTC) + timedelta(seconds=20), CONDITION, destination,
                   b"pay me")  # fmt: skip


@pytest.fixture
async def topology(node_modules: Path, tmp_path: Path) -> AsyncIterator[dict]:
    """JS connector test.js with two BTP children (our receiver 'aigent', our 'sender') and a
    BTP peer 'pyhub' (our connector test.py, which has a child 'bob')."""
    ports = {name: free_port() for name in ("aigent", "sender", "pyhub")}
    hub = Connector("test.py", SqliteLedger(tmp_path / "hub.sqlite"))
    hub.add_peer(Peer("js", "peer"))
    hub.add_peer(Peer("bob", "child"))
    await hub.listen({"js": "js-token", "bob": "bob-token"}, port=ports["pyhub"])
    js = JsConnector({
        "ilpAddress": "test.js", "backend": "one-to-one", "spread": 0,
        "accounts": {
            "aigent": btp_server_account(ports["aigent"], "aigent-secret"),
            "sender": btp_server_account(ports["sender"], "sender-secret"),
            "pyhub": {"relation": "peer", "assetCode": "XRP", "assetScale": 6,
                      "plugin": "ilp-plugin-btp",
                      "options": {"server": f"btp+ws://js:js-token@127.0.0.1:{ports['pyhub']}"}},
        },
        "routes": [{"targetPrefix": "test.py", "peerId": "pyhub"}],
    }, tmp_path / "ilp-connector.log")  # fmt: skip
    nodes = {"hub": hub, "js": js}
    try:
        for name in ("aigent", "sender"):
            await wait_port(ports[name])
            node = Connector("", SqliteLedger(tmp_path / f"{name}.sqlite"))
            node.add_peer(Peer("parent", "parent"))
            node.routes.add("", "parent")
            await node.connect(f"ws://127.0.0.1:{ports[name]}", "parent", name,
                               f"{name}-secret")  # fmt: skip
            nodes[name] = node
        bob = Connector("test.py.bob", SqliteLedger(tmp_path / "bob.sqlite"))
        bob.add_peer(Peer("hub", "parent"))
        await bob.connect(f"ws://127.0.0.1:{ports['pyhub']}", "hub", "bob", "bob-token")
        nodes["bob"] = bob
        await js.ready()
        yield nodes
    finally:
        for name in ("aigent", "sender", "bob", "hub"):
            if name in nodes:
                await nodes[name].stop()
        js.stop()


async def test_our_node_as_a_child_of_the_reference_connector(topology: dict) -> None:
    aigent, sender = topology["aigent"], topology["sender"]
    config = await aigent.fetch_address("parent")  # IL-DCP served by ilp-connector
    assert (config.client_address, config.asset_code, config.asset_scale) == (
        "test.js.aigent", "XRP", 6)  # fmt: skip
    received: list[Prepare] = []

    async def receive(source: str, p: Prepare) -> Fulfill | Reject:
        received.append(p)
        return Fulfill(FULFILLMENT, b"thank you")

    aigent.set_packet_handler(receive)
    await sender.fetch_address("parent")
    answer = await sender.send(prepare("test.js.aigent.inbox", 250))
    assert isinstance(answer, Fulfill) and answer.data == b"thank you"
    assert received[0].amount == 250 and received[0].data == b"pay me"
    assert received[0].expires_at < datetime.now(UTC) + timedelta(seconds=20)  # shortened
    assert aigent.ledger.account("parent").balance == 250
    assert sender.ledger.account("parent").balance == -250
    unknown = await sender.send(prepare("test.js.nobody", 1))
    # ilp-connector answers F00 ("unknown account id") under its own prefix: a final error.
    assert isinstance(unknown, Reject) and unknown.code.startswith("F")


async def test_the_reference_connector_sends_through_our_connector(topology: dict) -> None:
    sender, hub, bob = topology["sender"], topology["hub"], topology["bob"]
    await sender.fetch_address("parent")

    async def receive(source: str, p: Prepare) -> Fulfill | Reject:
        return Fulfill(FULFILLMENT, b"bob got it")

    bob.set_packet_handler(receive)
    answer = await sender.send(prepare("test.py.bob", 75))
    assert isinstance(answer, Fulfill) and answer.data == b"bob got it"
    assert hub.ledger.account("js").balance == 75  # the JS peer owes our hub
    assert hub.ledger.account("bob").balance == -75
    wrong = Fulfill(bytes(32))

    async def cheat(source: str, p: Prepare) -> Fulfill | Reject:
        return wrong

    bob.set_packet_handler(cheat)
    rejected = await sender.send(prepare("test.py.bob", 5))
    assert isinstance(rejected, Reject) and rejected.code == "F05"
    assert hub.ledger.account("js").balance == 75
