"""The part of Connector a settlement engine uses (see aigent_connector's docstring): asking a
peer over a side protocol, being refused, link state, the peer's asset, and crediting what the
peer settled, once per id. Real nodes over real BTP links (tests/connector/test_admin.py)."""

from __future__ import annotations

import pytest
from aigent_connector import BtpError, ConnectorError, SideProtocolRefused

from tests.connector.test_admin import Network
from tests.connector.test_admin import net as net  # fixtures, used by name
from tests.connector.test_admin import tokens as tokens


async def test_side_protocol_request_answer_and_refusal(net: Network) -> None:
    async def answer(account: str, data: bytes) -> bytes:
        if data == b"no":
            raise SideProtocolRefused(f"{account} asked for no")
        return account.encode() + b" asked " + data

    net.hub.connector.on_side_protocol("ask", answer)
    alice = net.alice.connector
    assert alice.connected("hub") and not alice.connected("nobody")
    assert await alice.send_side("hub", "ask", b"this") == b"alice asked this"
    with pytest.raises(BtpError, match="alice asked for no") as refused:
        await alice.send_side("hub", "ask", b"no")
    assert refused.value.code == "F00" and isinstance(refused.value, ConnectorError)
    with pytest.raises(ConnectionError, match="no BTP link to nobody"):
        await alice.send_side("nobody", "ask", b"this")


async def test_peer_asset_and_settlement_received_counts_once(net: Network) -> None:
    hub = net.hub.connector
    assert hub.peer_asset("bob") == ("XRP", 6) and hub.peer_asset("nobody") is None
    before = hub.ledger.account("bob").balance
    assert hub.settlement_received("bob", 300, "chan:300") is True
    assert hub.settlement_received("bob", 300, "chan:300") is False  # a repeat counts nothing
    assert hub.ledger.account("bob").balance == before - 300  # what bob owes moved down
