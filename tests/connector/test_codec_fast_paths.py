"""The fast decoders and encoders on the packet path agree with the careful ones, byte for
byte and error for error, on valid packets and on damaged ones."""

from __future__ import annotations

from datetime import UTC, datetime

from aigent_connector import btp_packets as btp
from aigent_connector.packets import (
    InvalidPacket,
    Prepare,
    decode,
    decode_careful,
    encode,
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
