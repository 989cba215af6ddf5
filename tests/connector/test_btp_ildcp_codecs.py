"""BTP frames and IL-DCP against their published vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aigent_connector import btp_packets as btp
from aigent_connector import decode, encode, ildcp
from aigent_connector.packets import Fulfill, InvalidPacket, Prepare

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "ilp-vectors.json").read_text())
PROTOCOL_DATA = [
    btp.ProtocolData("ilp", 0, b""),
    btp.ProtocolData("foo", 0, b"bar"),
    btp.ProtocolData("beep", 1, b"boop"),
    btp.ProtocolData("json", 2, b"{}"),
]
EXPECTED = {
    "btp-packet/message": btp.Message(1, PROTOCOL_DATA),
    "btp-packet/response": btp.Response(1, PROTOCOL_DATA),
    "btp-packet/transfer": btp.Transfer(1, 100, PROTOCOL_DATA),
    "btp-packet/error": btp.Error(1, "L13", "errorName", "20170828183200.000Z", b"boo",
                                  PROTOCOL_DATA),
}  # fmt: skip


@pytest.mark.parametrize("vector", VECTORS["btp"], ids=[v["id"] for v in VECTORS["btp"]])
def test_btp_vectors(vector) -> None:
    raw = bytes.fromhex(vector["hex"])
    frame = btp.decode(raw)
    assert frame == EXPECTED[vector["id"]]
    assert btp.encode(frame) == raw


def test_btp_garbage_is_refused_cleanly() -> None:
    for raw in (b"", b"\x06\x00\x00", b"\x09\x00\x00\x00\x01\x00", b"\x06\x00\x00\x00\x01\x05\x01"):
        with pytest.raises(InvalidPacket):
            btp.decode(raw)


def test_ildcp_vectors() -> None:
    request, reply = VECTORS["ildcp"]
    prepare = decode(bytes.fromhex(request["hex"]))
    assert isinstance(prepare, Prepare) and ildcp.is_request(prepare)
    assert prepare.execution_condition == ildcp.CONDITION
    fulfill = decode(bytes.fromhex(reply["hex"]))
    assert isinstance(fulfill, Fulfill)
    config = ildcp.parse_response(fulfill)
    assert config == ildcp.Config("example.client", 13, "XAM")
    assert encode(ildcp.response(config)) == bytes.fromhex(reply["hex"])
