"""Which signatures rippled takes as fully canonical (xrpl-py's own check takes more)."""

from __future__ import annotations

import pytest
from aigent_xrpl.claims import claim_message
from aigent_xrpl.signatures import ED25519_ORDER, is_canonical
from xrpl import CryptoAlgorithm
from xrpl.core.keypairs import is_valid_message, sign
from xrpl.wallet import Wallet

from .conftest import malleate

MESSAGE = claim_message("43904CBFCDCEC530B4037871F86EE90BF799DF8D2E0EA564BC8A3F332E4F5FB1", 1000)


@pytest.mark.parametrize("algorithm", [CryptoAlgorithm.SECP256K1, CryptoAlgorithm.ED25519])
def test_signatures_xrpl_py_makes_are_canonical_and_their_twins_are_not(
    algorithm: CryptoAlgorithm,
) -> None:
    wallet = Wallet.create(algorithm=algorithm)
    for _ in range(20):  # S is random: both halves of the range come up
        good = sign(MESSAGE, wallet.private_key)
        assert is_canonical(bytes.fromhex(good), wallet.public_key)
        twin = bytes.fromhex(malleate(good, wallet.public_key))
        assert is_valid_message(MESSAGE, twin, wallet.public_key)  # the maths holds...
        assert not is_canonical(twin, wallet.public_key)  # ...but rippled refuses it


def test_der_that_is_not_strict_is_refused() -> None:
    wallet = Wallet.create(algorithm=CryptoAlgorithm.SECP256K1)
    sig = bytes.fromhex(sign(MESSAGE, wallet.private_key))
    key = wallet.public_key
    r_len = sig[3]
    r, s = sig[4 : 4 + r_len], sig[6 + r_len :]

    def der(r: bytes, s: bytes, extra: bytes = b"") -> bytes:
        body = bytes([2, len(r)]) + r + bytes([2, len(s)]) + s + extra
        return bytes([0x30, len(body)]) + body

    assert is_canonical(der(r, s), key)
    assert not is_canonical(der(r, b"\0" + s), key)  # a needless leading zero
    assert not is_canonical(der(r, s, b"\0"), key)  # trailing bytes
    assert not is_canonical(der(b"\0", s), key)  # r = 0
    assert not is_canonical(sig[:-1], key)  # truncated
    assert not is_canonical(b"\x31" + sig[1:], key)  # not a DER sequence
    ed_key = "ED" + "00" * 32
    at_order = bytes(32) + ED25519_ORDER.to_bytes(32, "little")
    assert is_canonical(bytes(64), ed_key) and not is_canonical(at_order, ed_key)  # S < L only
    assert not is_canonical(bytes(63), ed_key)  # wrong length
