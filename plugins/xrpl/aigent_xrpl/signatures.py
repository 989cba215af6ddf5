"""The signature shapes rippled accepts, which xrpl-py's ``is_valid_message`` does not check.

rippled verifies transaction and claim signatures as *fully canonical*: a secp256k1 signature
must be strict DER with ``S <= n/2`` (low S), an Ed25519 one must have ``S < L``. xrpl-py
accepts the other twin of each (``n - S``, ``S + L``), which verifies mathematically, so a
claim that passes ``is_valid_message`` alone can still be refused on the ledger with
``temBAD_SIGNATURE``: a payer could hand out claims that look good and can never be redeemed.
"""

from __future__ import annotations

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493


def is_canonical(signature: bytes, public_key_hex: str) -> bool:
    """Whether rippled would take ``signature`` as fully canonical for this key's type."""
    if public_key_hex[:2].upper() == "ED":
        return len(signature) == 64 and int.from_bytes(signature[32:], "little") < ED25519_ORDER
    parsed = _strict_der(signature)
    if parsed is None:
        return False
    r, s = parsed
    return 0 < r < SECP256K1_ORDER and 0 < s <= SECP256K1_ORDER // 2


def _strict_der(sig: bytes) -> tuple[int, int] | None:
    """(r, s) from ``30 len 02 rlen r 02 slen s`` with minimal positive integers, else None."""
    if not 8 <= len(sig) <= 72 or sig[0] != 0x30 or sig[1] != len(sig) - 2:
        return None
    out = []
    at = 2
    for _ in range(2):
        if at + 2 > len(sig) or sig[at] != 0x02:
            return None
        size = sig[at + 1]
        value = sig[at + 2 : at + 2 + size]
        if size == 0 or len(value) != size or size > 33:
            return None
        if value[0] & 0x80:  # negative
            return None
        if size > 1 and value[0] == 0 and not value[1] & 0x80:  # a needless leading zero
            return None
        out.append(int.from_bytes(value, "big"))
        at += 2 + size
    if at != len(sig):
        return None
    return out[0], out[1]
