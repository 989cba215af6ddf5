"""STREAM cryptography: the layout and derivations ilp-protocol-stream uses (cross-checked
against the JS library itself in test_stream_interop.py)."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from aigent_connector.stream import DecryptionError, crypto
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def test_encryption_layout_is_iv_tag_ciphertext() -> None:
    key = crypto.encryption_key(os.urandom(32))
    sealed = crypto.encrypt(key, b"hello stream")
    assert len(sealed) == 12 + 16 + len(b"hello stream")
    iv, tag, body = sealed[:12], sealed[12:28], sealed[28:]
    assert AESGCM(key).decrypt(iv, body + tag, None) == b"hello stream"
    assert crypto.decrypt(key, sealed) == b"hello stream"
    assert crypto.encrypt(key, b"same") != crypto.encrypt(key, b"same")  # fresh IV each time


def test_keys_and_fulfillment_follow_the_spec() -> None:
    secret, data = os.urandom(32), os.urandom(100)
    assert crypto.encryption_key(secret) == hmac.digest(secret, b"ilp_stream_encryption", "sha256")
    fulfillment_key = hmac.digest(secret, b"ilp_stream_fulfillment", "sha256")
    fulfillment = hmac.digest(fulfillment_key, data, "sha256")
    assert crypto.fulfillment(secret, data) == fulfillment
    assert crypto.condition(secret, data) == hashlib.sha256(fulfillment).digest()
    assert crypto.condition(secret, data + b"x") != crypto.condition(secret, data)


@pytest.mark.parametrize("damage", ["wrong key", "flipped bit", "too short"])
def test_bad_ciphertext_is_a_clear_error(damage: str) -> None:
    key = crypto.encryption_key(os.urandom(32))
    sealed = bytearray(crypto.encrypt(key, b"payload"))
    if damage == "wrong key":
        key = crypto.encryption_key(os.urandom(32))
    elif damage == "flipped bit":
        sealed[-1] ^= 1
    else:
        sealed = sealed[:20]
    with pytest.raises(DecryptionError):
        crypto.decrypt(key, bytes(sealed))


def test_connection_tokens_seal_the_tag() -> None:
    server_secret = os.urandom(32)
    token = crypto.make_token(server_secret, b"invoice-1")
    assert crypto.open_token(server_secret, token) == b"invoice-1"
    assert crypto.from_base64url(crypto.base64url(token)) == token
    assert "=" not in crypto.base64url(token) and "+" not in crypto.base64url(token)
    with pytest.raises(DecryptionError):
        crypto.open_token(os.urandom(32), token)
    assert crypto.shared_secret_from_token(server_secret, token) == hmac.digest(
        hmac.digest(server_secret, b"ilp_stream_shared_secret", "sha256"), token, "sha256"
    )
    with pytest.raises(ValueError, match="base64url"):
        crypto.from_base64url("a~b")
