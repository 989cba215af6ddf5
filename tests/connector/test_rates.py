"""Exchange rates: exact conversion, and a hub forwarding between peers of different assets
and scales over real BTP links (R01 when nothing is left, F02 without a rate)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from aigent_connector.packets import Fulfill, Prepare, Reject
from aigent_connector.rates import NoRate, OneToOne, StaticRates, convert

from tests.connector.test_admin import CONDITION, Network, child_config, start_network
from tests.connector.test_admin import tokens as tokens  # a fixture, used by name


def test_one_to_one_adjusts_for_scale_and_refuses_other_assets() -> None:
    assert OneToOne().rate("XRP", 6, "XRP", 9) == 1000
    assert OneToOne().rate("XRP", 9, "XRP", 6) == Fraction(1, 1000)
    with pytest.raises(NoRate, match="XRP to USD"):
        OneToOne().rate("XRP", 6, "USD", 2)


def test_static_rates_imply_the_inverse_and_scale() -> None:
    rates = StaticRates([("XRP", "USD", Decimal("0.5"))])
    # 1 drop (1e-6 XRP) is 0.5e-6 USD = 0.5e-4 cents.
    assert rates.rate("XRP", 6, "USD", 2) == Fraction(1, 20000)
    assert rates.rate("USD", 2, "XRP", 6) == 20000
    with pytest.raises(NoRate):
        rates.rate("XRP", 6, "EUR", 2)
    with pytest.raises(ValueError, match="must be positive"):
        StaticRates([("XRP", "USD", 0)])


def test_convert_rounds_down_exactly() -> None:
    assert convert(999, Fraction(1, 1000)) == 0
    assert convert(10**18, Fraction(3, 10)) == 3 * 10**17  # no float drift on big amounts
    assert convert(1000, Fraction(1), Decimal("0.002")) == 998
    assert convert(1001, Fraction(1), Decimal("0.002")) == 998  # 998.998 rounds down


def soon() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=10)


@pytest.fixture
async def fx(tmp_path: Path, tokens: None) -> AsyncIterator[Network]:
    # alice pays in XRP drops (scale 6); bob is paid in XRP at scale 9; carol in USD cents.
    network = await start_network(
        tmp_path,
        peers={
            "alice": {"relation": "child", "token_env": "ALICE_BTP_TOKEN"},  # no packet limit
            "bob": {"relation": "child", "token_env": "BOB_BTP_TOKEN", "asset_scale": 9},
            "carol": {"relation": "child", "token_env": "CAROL_BTP_TOKEN", "asset_code": "USD",
                      "asset_scale": 2},
        },
        rates=[{"from": "XRP", "to": "USD", "rate": "0.5"}],
        spread="0.01",
    )  # fmt: skip
    try:
        yield network
    finally:
        await network.stop()


async def test_forwarding_converts_scale_and_keeps_the_spread(fx: Network) -> None:
    answer = await fx.alice.connector.send(Prepare(1000, soon(), CONDITION, "g.hub.bob"))
    assert isinstance(answer, Fulfill)
    # 1000 drops at scale 6 are 1,000,000 at scale 9, less 1 % spread.
    assert fx.received[-1].amount == 990_000
    assert fx.hub.connector.ledger.account("alice").balance == 1000
    assert fx.hub.connector.ledger.account("bob").balance == -990_000


async def test_cross_asset_and_the_reject_codes(tmp_path: Path, fx: Network) -> None:
    from aigent_connector.node import Node

    assert fx.hub.btp_port is not None
    carol = await Node(child_config(tmp_path, "carol", fx.hub.btp_port)).start()
    got: list[int] = []

    async def carol_receives(source: str, prepare: Prepare) -> Reject:
        got.append(prepare.amount)
        return Reject("F99", "g.hub.carol", "just looking")

    carol.connector.set_packet_handler(carol_receives)
    try:
        # 2 XRP = 2,000,000 drops -> 1 USD = 100 cents, less 1 % = 99.
        answer = await fx.alice.connector.send(Prepare(2_000_000, soon(), CONDITION,
                                                       "g.hub.carol"))  # fmt: skip
        assert isinstance(answer, Reject) and answer.code == "F99" and got == [99]
        # 100 drops are worth 0.005 cents: nothing is left to forward.
        tiny = await fx.alice.connector.send(Prepare(100, soon(), CONDITION, "g.hub.carol"))
        assert isinstance(tiny, Reject) and tiny.code == "R01" and tiny.triggered_by == "g.hub"
        assert got == [99]  # never reached carol
        # The hub's table has no EUR.
        fx.hub.connector.peers["carol"].asset_code = "EUR"
        none = await fx.alice.connector.send(Prepare(2_000_000, soon(), CONDITION,
                                                     "g.hub.carol"))  # fmt: skip
        assert isinstance(none, Reject) and none.code == "F02" and "XRP to EUR" in none.message
        assert fx.hub.connector.ledger.account("alice").balance == 0  # all rejected
    finally:
        await carol.stop()
