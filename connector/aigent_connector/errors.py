"""The root of every exception aigent-connector raises of its own.

Each error stays beside the code that raises it (``btp.BtpError``, ``ledger.LedgerError``...)
and keeps the built-in base callers already catch (a malformed packet is still a ``ValueError``,
a closed WebSocket still a ``ConnectionError``); all of them also derive from
:class:`ConnectorError`, so ``except ConnectorError`` catches anything the connector refused.
All public ones are importable from ``aigent_connector``.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Something the connector refused or could not do; the message says what and why."""
