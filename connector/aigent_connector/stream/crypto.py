"""STREAM cryptography exactly as ilp-protocol-stream does it, so either side interoperates.

- keys: HMAC-SHA256(shared secret, "ilp_stream_encryption" | "ilp_stream_fulfillment")
- data: AES-256-GCM, laid out as IV (12) | tag (16) | ciphertext, no length prefix
- fulfillment: HMAC-SHA256(fulfillment key, the encrypted Prepare data); condition: its SHA-256.
  Only the two ends hold the shared secret, so no hop can fulfil a packet it forwards.
- connection tokens (the stateless server): the last address segment is
  base64url(AES-GCM(server secret, nonce(18) | var tag | var receipt nonce | var receipt secret))
  and the connection's shared secret is HMAC(HMAC(server secret, "ilp_stream_shared_secret"),
  token). The server recomputes both from the address alone; nothing is stored per connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aigent_connector.errors import ConnectorError
from aigent_connector.oer import OerError, Reader, var_octets

IV_LENGTH = 12
TAG_LENGTH = 16
OVERHEAD = IV_LENGTH + TAG_LENGTH
TOKEN_NONCE_LENGTH = 18


class DecryptionError(ConnectorError, ValueError):
    """Data that was not encrypted with this key (or was altered on the way)."""


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def encryption_key(shared_secret: bytes) -> bytes:
    return hmac_sha256(shared_secret, b"ilp_stream_encryption")


def fulfillment_key(shared_secret: bytes) -> bytes:
    return hmac_sha256(shared_secret, b"ilp_stream_fulfillment")


def fulfillment(shared_secret: bytes, prepare_data: bytes) -> bytes:
    return hmac_sha256(fulfillment_key(shared_secret), prepare_data)


def condition(shared_secret: bytes, prepare_data: bytes) -> bytes:
    return hashlib.sha256(fulfillment(shared_secret, prepare_data)).digest()


def encrypt(key: bytes, plaintext: bytes) -> bytes:
    iv = os.urandom(IV_LENGTH)
    sealed = AESGCM(key).encrypt(iv, plaintext, None)  # ciphertext | tag
    return iv + sealed[-TAG_LENGTH:] + sealed[:-TAG_LENGTH]


def decrypt(key: bytes, data: bytes) -> bytes:
    if len(data) < OVERHEAD:
        raise DecryptionError(f"{len(data)} bytes is too short to be STREAM ciphertext")
    iv, tag, ciphertext = data[:IV_LENGTH], data[IV_LENGTH:OVERHEAD], data[OVERHEAD:]
    try:
        return AESGCM(key).decrypt(iv, ciphertext + tag, None)
    except InvalidTag:
        raise DecryptionError("data was not encrypted with this key, or was altered") from None


# --- the stateless server's connection tokens ---------------------------------------------------


def make_token(server_secret: bytes, connection_tag: bytes = b"") -> bytes:
    """A fresh connection token; empty receipt nonce and secret (receipts are not issued)."""
    plain = os.urandom(TOKEN_NONCE_LENGTH) + var_octets(connection_tag) + b"\x00\x00"
    return encrypt(server_secret, plain)


def open_token(server_secret: bytes, token: bytes) -> bytes:
    """The connection tag sealed in ``token``; DecryptionError if this server did not make it."""
    reader = Reader(decrypt(server_secret, token))
    try:
        reader.read(TOKEN_NONCE_LENGTH, "token nonce")
        return reader.var_octets("connection tag")
    except OerError as exc:
        raise DecryptionError(f"malformed connection token: {exc}") from None


def shared_secret_from_token(server_secret: bytes, token: bytes) -> bytes:
    return hmac_sha256(hmac_sha256(server_secret, b"ilp_stream_shared_secret"), token)


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_base64url(text: str) -> bytes:
    """Decode base64url with or without padding; ValueError if it is not base64url."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError:  # binascii.Error
        raise ValueError(f"{text[:40]!r} is not base64url") from None
