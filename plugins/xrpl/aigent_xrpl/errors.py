"""The root of every exception aigent-xrpl raises of its own: ``except XrplError`` catches a
failed request or transaction, a refused claim (:class:`~aigent_xrpl.claims.ClaimRejected`)
and a redeem round that left channels behind (:class:`~aigent_xrpl.settlement.RedeemFailed`)."""

from __future__ import annotations


class XrplError(RuntimeError):
    """An XRPL request or transaction failed; the message names the result code."""
