"""aigent-connector: Interledger v4 as the RFCs define it.

The public surface is re-exported here; import from ``aigent_connector``, not from its modules.
Every error the connector raises of its own derives from :class:`ConnectorError`.

A settlement engine that talks to its peer (payment-channel claims over BTP) uses only these of
:class:`Connector`: :meth:`~Connector.on_side_protocol` (answer a side protocol; raise
:class:`SideProtocolRefused` to refuse), :meth:`~Connector.send_side` (ask the peer;
:class:`BtpError` when it refuses), :meth:`~Connector.on_link_up`,
:meth:`~Connector.connected`, :meth:`~Connector.peer_asset`,
:meth:`~Connector.set_settlement_engine` and :meth:`~Connector.settlement_received`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigent_connector.errors import ConnectorError
from aigent_connector.packets import (
    AmountTooLarge,
    Fulfill,
    InvalidPacket,
    Prepare,
    Reject,
    decode,
    encode,
    reject_invalid,
)

if TYPE_CHECKING:
    from aigent_connector.btp import BtpError, SideProtocolRefused
    from aigent_connector.config import ConfigError
    from aigent_connector.connector import (
        AddressUnavailable,
        Connector,
        LinkListener,
        SideProtocolHandler,
    )
    from aigent_connector.ledger import LedgerError, LedgerUnavailable
    from aigent_connector.oer import OerError
    from aigent_connector.postgres_store import PostgresStoreError
    from aigent_connector.rates import NoRate
    from aigent_connector.spsp import SpspError
    from aigent_connector.stream.crypto import DecryptionError
    from aigent_connector.stream.frames import InvalidStreamPacket
    from aigent_connector.stream.sender import StreamPaymentError
    from aigent_connector.ws import ConnectionClosed, HandshakeError, WebSocketError

# Served on first use: the connector and its transports cost an import the packet codec and a
# caller that only catches errors should not pay.
_LAZY = {
    "AddressUnavailable": "aigent_connector.connector",
    "BtpError": "aigent_connector.btp",
    "ConfigError": "aigent_connector.config",
    "ConnectionClosed": "aigent_connector.ws",
    "Connector": "aigent_connector.connector",
    "DecryptionError": "aigent_connector.stream.crypto",
    "HandshakeError": "aigent_connector.ws",
    "InvalidStreamPacket": "aigent_connector.stream.frames",
    "LedgerError": "aigent_connector.ledger",
    "LedgerUnavailable": "aigent_connector.ledger",
    "LinkListener": "aigent_connector.connector",
    "NoRate": "aigent_connector.rates",
    "OerError": "aigent_connector.oer",
    "PostgresStoreError": "aigent_connector.postgres_store",
    "SideProtocolHandler": "aigent_connector.connector",
    "SideProtocolRefused": "aigent_connector.btp",
    "SpspError": "aigent_connector.spsp",
    "StreamPaymentError": "aigent_connector.stream.sender",
    "WebSocketError": "aigent_connector.ws",
}

__all__ = [
    "AddressUnavailable",
    "AmountTooLarge",
    "BtpError",
    "ConfigError",
    "ConnectionClosed",
    "Connector",
    "ConnectorError",
    "DecryptionError",
    "Fulfill",
    "HandshakeError",
    "InvalidPacket",
    "InvalidStreamPacket",
    "LedgerError",
    "LedgerUnavailable",
    "LinkListener",
    "NoRate",
    "OerError",
    "PostgresStoreError",
    "Prepare",
    "Reject",
    "SideProtocolHandler",
    "SideProtocolRefused",
    "SpspError",
    "StreamPaymentError",
    "WebSocketError",
    "decode",
    "encode",
    "reject_invalid",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aigent_connector' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
