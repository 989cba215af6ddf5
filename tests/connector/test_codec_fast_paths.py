"""The fast decoders and encoders on the packet path agree with the careful ones, byte for
byte and error for error, on valid packets and on damaged ones."""

from __future__ import annotations

from datetime import UTC, datetime

from aigent_connector import btp_packets as btp
from aigent_connector.packets import (
    Fulfill,
    InvalidPacket,
    Prepare,
    Reject,
    decode,
    decode_careful,
    encode,
    expiry_ms,
    format_expiry_ms,
    format_timestamp,
    forwarded,
    fulfillment_of,
    peek_prepare,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.connector.test_packets import packets

entries = st.lists(
    st.builds(btp.ProtocolData, st.from_regex(r"^[a-z_]{0,12}$", fullmatch=True),
              st.integers(0, 2), st.binary(max_size=300)),
    max_size=4,
)  # fmt: skip
frames = st.builds(
    lambda kind, rid, data: kind(rid, data),
    st.sampled_from([btp.Message, btp.Response]), st.integers(0, 2**32 - 1), entries,
)  # fmt: skip


def outcome(decoder, raw: bytes) -> object:
    try:
        return decoder(raw)
    except InvalidPacket as exc:
        return ("InvalidPacket", str(exc))


def damaged(raw: bytes, data: st.DataObject) -> bytes:
    """Cut short, a byte changed, or bytes added: what a broken or hostile peer sends."""
    how = data.draw(st.sampled_from(["cut", "flip", "extend"]))
    if how == "cut" or not raw:
        return raw[: data.draw(st.integers(0, max(0, len(raw) - 1)))]
    if how == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        return raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1 :]
    return raw + data.draw(st.binary(min_size=1, max_size=5))


@given(packets, st.data())
def test_packets_fast_and_careful_agree(packet, data) -> None:
    raw = encode(packet)
    assert decode(raw) == decode_careful(raw) == packet
    bad = damaged(raw, data)
    assert outcome(decode, bad) == outcome(decode_careful, bad)


@given(frames, st.data())
def test_btp_fast_and_careful_agree(frame, data) -> None:
    raw = btp.encode(frame)
    assert raw == btp.encode_careful(frame)
    assert btp.decode(raw) == btp.decode_careful(raw) == frame
    bad = damaged(raw, data)
    assert outcome(btp.decode, bad) == outcome(btp.decode_careful, bad)


def test_timestamps_that_do_not_exist_are_refused_by_the_fast_path_too() -> None:
    good = Prepare(1, datetime(2030, 1, 1, tzinfo=UTC), bytes(32), "g.a")
    raw = encode(good)
    at = raw.index(b"20300101")
    for stamp in (b"20300230000000000", b"20300101240000000", b"20300101000060000"):
        bad = raw[:at] + stamp + raw[at + 17 :]
        assert outcome(decode, bad) == outcome(decode_careful, bad)
        assert outcome(decode, bad)[0] == "InvalidPacket"  # type: ignore[index]


# --- what the switch reads in place: the same answers as decoding, without building packets ---


@given(packets, st.data())
def test_the_switch_reads_prepares_as_the_decoder_does(packet, data) -> None:
    raw = encode(packet)
    if isinstance(packet, Prepare):
        fields = peek_prepare(raw)
        assert fields.amount == packet.amount
        assert fields.expires_ms == round(packet.expires_at.timestamp() * 1000)
        assert (fields.condition, fields.destination) == (
            packet.execution_condition, packet.destination)  # fmt: skip
    bad = damaged(raw, data)
    decoded = outcome(decode_careful, bad)
    if isinstance(decoded, Prepare):
        assert peek_prepare(bad).destination == decoded.destination
    else:  # anything but a valid Prepare is refused (F01), never a crash
        try:
            peek_prepare(bad)
        except InvalidPacket:
            pass
        else:
            raise AssertionError(f"peek_prepare took {bad!r}")


@given(packets.filter(lambda p: isinstance(p, Prepare)), st.integers(0, 2**64 - 1),
       st.integers(-10_000, 10_000))  # fmt: skip
def test_a_forwarded_prepare_is_the_same_packet_with_a_new_amount_and_expiry(
    packet, amount, shift
) -> None:
    raw = encode(packet)
    fields = peek_prepare(raw)
    expires = fields.expires_ms + shift
    again = decode(forwarded(raw, fields, amount, expires))
    assert isinstance(again, Prepare)
    assert again.amount == amount
    assert round(again.expires_at.timestamp() * 1000) == expires
    assert (again.execution_condition, again.destination, again.data) == (
        packet.execution_condition, packet.destination, packet.data)  # fmt: skip


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1)))
def test_expiry_milliseconds_round_trip(when: datetime) -> None:
    when = when.replace(microsecond=when.microsecond // 1000 * 1000, tzinfo=UTC)
    raw = format_timestamp(when)
    ms = expiry_ms(raw)
    assert ms == round(when.timestamp() * 1000)
    assert format_expiry_ms(ms) == raw


@given(packets, st.data())
def test_answers_are_read_in_place_as_the_decoder_reads_them(packet, data) -> None:
    for raw in (encode(packet), damaged(encode(packet), data)):
        decoded = outcome(decode_careful, raw)
        if isinstance(decoded, Fulfill):
            assert fulfillment_of(raw) == decoded.fulfillment
        elif isinstance(decoded, Reject):
            assert fulfillment_of(raw) is None
        else:  # a Prepare, or something unreadable: the switch answers F01
            try:
                fulfillment_of(raw)
            except InvalidPacket:
                continue
            raise AssertionError(f"fulfillment_of took {raw!r}")


@given(
    st.integers(0, 2**32 - 1),
    st.binary(max_size=70_000),
    st.sampled_from([btp.MESSAGE, btp.RESPONSE]),
)
def test_ilp_frames_are_btp_frames(request_id: int, packet: bytes, kind: int) -> None:
    raw = btp.ilp_frame(kind, request_id, packet)
    cls = btp.Message if kind == btp.MESSAGE else btp.Response
    assert raw == btp.encode(cls(request_id, [btp.ProtocolData("ilp", btp.OCTET_STREAM, packet)]))
    assert btp.ilp_entry(raw) == packet


@given(frames)
def test_the_ilp_entry_is_found_in_any_frame(frame) -> None:
    entry = btp.find(frame.protocol_data, "ilp")
    assert btp.ilp_entry(btp.encode(frame)) == (entry.data if entry else None)
