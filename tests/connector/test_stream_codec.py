"""STREAM packets and frames (RFC 29) against the 53 published vectors, plus property tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aigent_connector.stream import InvalidStreamPacket, StreamPacket
from aigent_connector.stream import frames as f
from hypothesis import given
from hypothesis import strategies as st

# Copied from the team's reference (shared/reference): ilp-protocol-stream's StreamPacketFixtures.
VECTORS = json.loads(
    (Path(__file__).parents[1] / "data" / "stream-packet-fixtures.json").read_text()
)
U64 = st.integers(0, 2**64 - 1)


def expected_frame(raw: dict[str, Any]) -> f.Frame:
    n = lambda key: int(raw[key])  # noqa: E731
    b = lambda key: base64.b64decode(raw[key])  # noqa: E731
    match raw["name"]:
        case "ConnectionClose":
            return f.ConnectionClose(raw["errorCode"], raw["errorMessage"])
        case "ConnectionNewAddress":
            return f.ConnectionNewAddress(raw["sourceAccount"])
        case "ConnectionAssetDetails":
            return f.ConnectionAssetDetails(raw["sourceAssetCode"], raw["sourceAssetScale"])
        case "ConnectionMaxData":
            return f.ConnectionMaxData(n("maxOffset"))
        case "ConnectionDataBlocked":
            return f.ConnectionDataBlocked(n("maxOffset"))
        case "ConnectionMaxStreamId":
            return f.ConnectionMaxStreamId(n("maxStreamId"))
        case "ConnectionStreamIdBlocked":
            return f.ConnectionStreamIdBlocked(n("maxStreamId"))
        case "StreamClose":
            return f.StreamClose(n("streamId"), raw["errorCode"], raw["errorMessage"])
        case "StreamMoney":
            return f.StreamMoney(n("streamId"), n("shares"))
        case "StreamMaxMoney":
            return f.StreamMaxMoney(n("streamId"), n("receiveMax"), n("totalReceived"))
        case "StreamMoneyBlocked":
            return f.StreamMoneyBlocked(n("streamId"), n("sendMax"), n("totalSent"))
        case "StreamData":
            return f.StreamData(n("streamId"), n("offset"), b("data"))
        case "StreamMaxData":
            return f.StreamMaxData(n("streamId"), n("maxOffset"))
        case "StreamDataBlocked":
            return f.StreamDataBlocked(n("streamId"), n("maxOffset"))
        case "StreamReceipt":
            return f.StreamReceipt(n("streamId"), b("receipt"))
    raise AssertionError(f"unknown frame in vectors: {raw['name']}")


def test_there_are_53_vectors() -> None:
    assert len(VECTORS) == 53


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    raw = base64.b64decode(vector["buffer"])
    packet = vector["packet"]
    expected = StreamPacket(
        int(packet["sequence"]),
        packet["packetType"],
        int(packet["amount"]),
        tuple(expected_frame(frame) for frame in packet["frames"]),
    )
    assert StreamPacket.decode(raw) == expected
    if not vector.get("decode_only"):
        assert expected.encode() == raw  # byte for byte


def test_values_over_64_bits_saturate_where_ilp_protocol_stream_allows_it() -> None:
    # receiveMax/sendMax written with 9 bytes mean "no limit"; other integers must fit.
    too_big = next(v for v in VECTORS if v["name"] == "frame:stream_max_money:receive_max:too_big")
    frame = StreamPacket.decode(base64.b64decode(too_big["buffer"])).frames[0]
    assert isinstance(frame, f.StreamMaxMoney) and frame.receive_max == 2**64 - 1
    nine_bytes = b"\x09\x01" + bytes(8)
    bad_offset = b"\x01\x0c\x01\x00\x01\x00\x01\x01" + f.encode_frame(f.ConnectionMaxData(0))[:1]
    bad_offset += bytes([len(nine_bytes)]) + nine_bytes
    with pytest.raises(InvalidStreamPacket, match="ConnectionMaxData"):
        StreamPacket.decode(bad_offset)


def test_unknown_frames_and_trailing_junk_are_skipped() -> None:
    known = f.StreamMoney(1, 5)
    body = (
        b"\x01\x0c\x01\x07\x01\x00\x01\x02"  # version, Prepare, seq 7, amount 0, 2 frames
        + b"\x99\x03abc"  # frame type 0x99 this version does not know
        + f.encode_frame(known)
        + b"padding that a sender may add"
    )
    assert StreamPacket.decode(body) == StreamPacket(7, 12, 0, (known,))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "version"),
        (b"\x02\x0c\x01\x00\x01\x00\x01\x00", "version 2"),
        (b"\x01\x0f\x01\x00\x01\x00\x01\x00", "ILP packet type 15"),
        (b"\x01\x0c\x01\x00\x01\x00\x01\x03", "3 frames announced"),
        (b"\x01\x0c\x01\x00\x01\x00\x01\x01\x02\x02\x01\xff", "sourceAccount"),
        (b"\x01\x0c\x00", "sequence"),
    ],
)
def test_bad_packets_get_clear_errors(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidStreamPacket, match=message):
        StreamPacket.decode(raw)


frame_strategy = st.one_of(
    st.builds(f.ConnectionClose, st.integers(0, 255), st.text(max_size=20)),
    st.builds(f.ConnectionNewAddress, st.text(max_size=40)),
    st.builds(f.ConnectionMaxData, U64),
    st.builds(f.ConnectionDataBlocked, U64),
    st.builds(f.ConnectionMaxStreamId, U64),
    st.builds(f.ConnectionStreamIdBlocked, U64),
    st.builds(f.ConnectionAssetDetails, st.text(max_size=8), st.integers(0, 255)),
    st.builds(f.StreamClose, U64, st.integers(0, 255), st.text(max_size=20)),
    st.builds(f.StreamMoney, U64, U64),
    st.builds(f.StreamMaxMoney, U64, U64, U64),
    st.builds(f.StreamMoneyBlocked, U64, U64, U64),
    st.builds(f.StreamData, U64, U64, st.binary(max_size=300)),
    st.builds(f.StreamMaxData, U64, U64),
    st.builds(f.StreamDataBlocked, U64, U64),
    st.builds(f.StreamReceipt, U64, st.binary(max_size=80)),
)


@given(U64, st.sampled_from([12, 13, 14]), U64, st.lists(frame_strategy, max_size=6))
def test_round_trip(sequence: int, kind: int, amount: int, frames: list[f.Frame]) -> None:
    packet = StreamPacket(sequence, kind, amount, tuple(frames))
    assert StreamPacket.decode(packet.encode()) == packet


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    try:
        StreamPacket.decode(raw)
    except InvalidStreamPacket:
        pass


@given(st.lists(frame_strategy, min_size=1, max_size=4), st.data())
def test_corrupted_packets_never_crash(frames: list[f.Frame], data: st.DataObject) -> None:
    raw = bytearray(StreamPacket(1, 12, 0, tuple(frames)).encode())
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        StreamPacket.decode(bytes(raw[:cut]))
    except InvalidStreamPacket:
        pass


def test_frames_refuse_values_that_do_not_fit() -> None:
    with pytest.raises(InvalidStreamPacket, match="shares"):
        f.StreamMoney(1, 2**64)
    with pytest.raises(InvalidStreamPacket, match="sourceAssetScale"):
        f.ConnectionAssetDetails("XRP", 256)
