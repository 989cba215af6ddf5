"""IL-DCP (RFC 31): a child asks its parent for its ILP address and asset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aigent_connector.oer import OerError, Reader, var_octets
from aigent_connector.packets import Fulfill, InvalidPacket, Prepare, valid_address

DESTINATION = "peer.config"
FULFILLMENT = bytes(32)
CONDITION = hashlib.sha256(FULFILLMENT).digest()


@dataclass(frozen=True)
class Config:
    client_address: str
    asset_scale: int
    asset_code: str


def request(expires_in: float = 60.0) -> Prepare:
    return Prepare(0, datetime.now(UTC) + timedelta(seconds=expires_in), CONDITION, DESTINATION)


def is_request(prepare: Prepare) -> bool:
    return prepare.destination == DESTINATION


def response(config: Config) -> Fulfill:
    data = (
        var_octets(config.client_address.encode("ascii"))
        + bytes([config.asset_scale])
        + var_octets(config.asset_code.encode("utf-8"))
    )
    return Fulfill(FULFILLMENT, data)


def parse_response(fulfill: Fulfill) -> Config:
    try:
        r = Reader(fulfill.data)
        address = r.var_octets("clientAddress").decode("ascii")
        scale = r.uint(1, "assetScale")
        code = r.var_octets("assetCode").decode("utf-8")
    except (OerError, UnicodeDecodeError) as exc:
        raise InvalidPacket(f"IL-DCP response: {exc}") from None
    if not valid_address(address):  # it becomes ours, named in every Reject we make
        raise InvalidPacket(f"IL-DCP response: {address[:80]!r} is not a valid ILP address")
    return Config(address, scale, code)
