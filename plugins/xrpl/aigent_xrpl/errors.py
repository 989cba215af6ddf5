"""The root of every exception aigent-xrpl raises of its own: ``except XrplError`` catches a
failed request or transaction, a refused claim (:class:`~aigent_xrpl.claims.ClaimRejected`)
a redeem round that left channels behind (:class:`~aigent_xrpl.settlement.RedeemFailed`) and
an argument that cannot be used (:class:`XrplInputError`, also a ``ValueError``)."""

from __future__ import annotations


class XrplError(RuntimeError):
    """An XRPL request or transaction failed; the message names the result code."""


class XrplInputError(XrplError, ValueError):
    """An argument that cannot be used (an amount, a currency code, an address); nothing was
    submitted."""
