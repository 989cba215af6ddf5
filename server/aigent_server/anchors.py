"""Receipts checked offline: the message hashes to the receipt's leaf and the proof leads to
its root (the hashing is aigent-trn's own, reused). Whether that root is on chain, anchored by
the agent in the agent's registry, the server does not say: it would have to trust the RPC URL
and addresses a caller gives it, and the answer is only as good as those."""

from __future__ import annotations

from typing import Any

CHAIN_UNCHECKED = (
    "the on-chain check needs an RPC URL, the agent's registry and its anchoring address, "
    "which this server does not take on trust: run `aigent verify receipt.json --rpc URL "
    "--registry 0xREG --anchorer 0xADDR`"
)


class VerifyError(ValueError):
    """The receipt cannot be checked here (with the reason, and what to do)."""


def check(receipt: dict[str, Any], text: str | None) -> dict[str, Any]:
    try:
        from aigent_trn.receipt import check_receipt  # type: ignore[import-untyped]
    except ImportError:
        raise VerifyError(
            "receipts are checked with aigent-trn's hashing: install aigent-trn beside the server"
        ) from None
    try:
        problems = check_receipt(receipt, text=text)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VerifyError(
            f"not a receipt ({type(exc).__name__}: {exc}); send the object under "
            "`receipts.trn` of a reply, with `canonical`, `leaf` and, once sealed, `root` "
            "and `proof`"
        ) from None
    return {
        "proof": "ok" if not problems else "mismatch",
        "problems": problems,
        "root": receipt.get("root"),
        "anchor": receipt.get("anchor"),
        "verified": False,
        "chain": CHAIN_UNCHECKED,
    }
