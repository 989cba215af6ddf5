"""ILP packets and OER against the published vectors, property tests and fuzzing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aigent_connector import (
    AmountTooLarge,
    Fulfill,
    InvalidPacket,
    Prepare,
    Reject,
    decode,
    encode,
    reject_invalid,
)
from aigent_connector.oer import OerError, Reader, length_prefix, var_uint
from aigent_connector.packets import format_timestamp, parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

# Copied from the team's reference (shared/reference/ilp-vectors.json); each vector names the
# repository, commit and path it was published in.
VECTORS = json.loads((Path(__file__).parents[1] / "data" / "ilp-vectors.json").read_text())
PACKETS = VECTORS["ilp_packets"]
OER = VECTORS["oer_rfc0030_examples"]


@pytest.mark.parametrize("vector", PACKETS, ids=[v["id"] for v in PACKETS])
def test_published_packets_decode_and_reencode_byte_for_byte(vector) -> None:
    raw = bytes.fromhex(vector["hex"])
    packet = decode(raw)
    assert encode(packet) == raw
    fields = vector.get("json") or vector["fields"]
    if isinstance(packet, Prepare):
        assert packet.amount == int(fields["amount"])
        assert packet.destination == fields["destination"]
        assert packet.expires_at == datetime.fromisoformat(fields["expiresAt"])
        condition = (
            fields.get("executionCondition_hex")
            or base64.b64decode(fields["executionCondition"]).hex()
        )
        assert packet.execution_condition.hex() == condition
    elif isinstance(packet, Fulfill):
        fulfillment = fields.get("fulfillment_hex") or base64.b64decode(fields["fulfillment"]).hex()
        assert packet.fulfillment.hex() == fulfillment
    else:
        assert (packet.code, packet.triggered_by, packet.message) == (
            fields["code"], fields["triggeredBy"], fields["message"],
        )  # fmt: skip
    data = fields.get("data_hex") or base64.b64decode(fields["data"]).hex()
    assert packet.data.hex() == data


def test_oer_length_determinants_and_uints_from_rfc30() -> None:
    for case in OER["length_determinant"]:
        raw = bytes.fromhex(case["hex"])
        assert Reader(raw).length("x") == int(case["value"])
        assert length_prefix(int(case["value"])) == raw
    for case in OER["uint"]:
        size = {"UInt16": 2, "UInt32": 4, "UInt64": 8}[case["type"]]
        assert Reader(bytes.fromhex(case["hex"])).uint(size, "x") == int(case["value"])
    assert var_uint(0) == bytes.fromhex("0100")
    with pytest.raises(OerError, match="short form"):
        Reader(bytes.fromhex("8105")).length("x")


def test_timestamps_and_addresses() -> None:
    for case in OER["ilp_timestamp_fixed17"]:
        when = parse_timestamp(bytes.fromhex(case["hex"]))
        assert when == datetime.fromisoformat(case["iso"])
        assert format_timestamp(when) == bytes.fromhex(case["hex"])
    for bad in OER["invalid_ilp_timestamps_must_reject"]:
        with pytest.raises(InvalidPacket):
            parse_timestamp(bad.encode())
    prepare = dict(amount=1, expires_at=datetime.now(UTC), execution_condition=bytes(32))
    for address in ("example.alice", "g.us.bank.bob", "test1.x~y_z-w", "private.a"):
        Prepare(destination=address, **prepare)
    for address in ("alice", "example", "example.", "g..bob", "x.bob", "g.bob!", "g." + "a" * 1022):
        with pytest.raises(InvalidPacket, match="not a valid ILP address"):
            Prepare(destination=address, **prepare)


def test_size_limits_and_trailing_bytes() -> None:
    ok = Prepare(1, datetime(2030, 1, 1, tzinfo=UTC), bytes(32), "example.a", bytes(32767))
    raw = encode(ok)
    assert decode(raw + b"trailing junk") == ok  # after the packet: ignored
    body_extended = raw[:1] + length_prefix(len(raw) - 4 + 3) + raw[4:] + b"\x01\x02\x03"
    assert decode(body_extended) == ok  # inside the envelope, after the fields: ignored
    with pytest.raises(InvalidPacket, match="over"):
        Prepare(1, datetime(2030, 1, 1, tzinfo=UTC), bytes(32), "example.a", bytes(32768))
    oversized = raw[:1] + length_prefix(len(raw) + 10) + raw[4:]
    with pytest.raises(InvalidPacket, match="packet: needs"):
        decode(oversized)  # an envelope longer than the bytes that arrived
    with pytest.raises(InvalidPacket, match="message is over 8191 bytes"):
        Reject("F00", "", "x" * 8192)


def test_f08_data_vector() -> None:
    vector = VECTORS["f08_error_data"][0]
    data = AmountTooLarge(int(vector["receivedAmount"]), int(vector["maximumAmount"]))
    assert data.encode().hex() == vector["hex"]
    assert AmountTooLarge.decode(bytes.fromhex(vector["hex"])) == data


def test_malformed_packets_get_f01_with_a_reason() -> None:
    for raw, reason in [
        (b"", "type: needs 1 bytes"),
        (b"\x0c\x05abc", "packet: needs 5 bytes"),
        (b"\x0f\x00", "unknown packet type 15"),
        (bytes.fromhex(PACKETS[0]["hex"])[:50], "needs"),
    ]:
        with pytest.raises(InvalidPacket, match=reason) as info:
            decode(raw)
        reject = reject_invalid(info.value, "g.me")
        assert reject.code == "F01" and reject.triggered_by == "g.me"
        assert reason.split(":")[0] in reject.message
        assert decode(encode(reject)) == reject


addresses = st.from_regex(r"^(g|example|test[1-3]?)(\.[a-zA-Z0-9_~-]{1,12}){1,4}$", fullmatch=True)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda t: t - timedelta(microseconds=t.microsecond % 1000))
packets = st.one_of(
    st.builds(Prepare, st.integers(0, 2**64 - 1), times, st.binary(min_size=32, max_size=32),
              addresses, st.binary(max_size=300)),
    st.builds(Fulfill, st.binary(min_size=32, max_size=32), st.binary(max_size=300)),
    st.builds(Reject, st.from_regex(r"^[FTR][0-9A-Z]{2}$", fullmatch=True),
              addresses | st.just(""), st.text(max_size=100), st.binary(max_size=300)),
)  # fmt: skip


@given(packets)
def test_every_packet_round_trips(packet) -> None:
    assert decode(encode(packet)) == packet


@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_decoder(raw: bytes) -> None:
    try:
        decode(raw)
    except InvalidPacket:
        pass


@given(packets, st.integers(0, 400), st.integers(0, 255))
def test_corrupted_packets_decode_or_fail_cleanly(packet, position: int, byte: int) -> None:
    raw = bytearray(encode(packet))
    raw[position % len(raw)] = byte
    try:
        decode(bytes(raw))
    except InvalidPacket:
        pass
