"""Exchange rates between the assets of two peers, as the connector applies them when it
forwards a packet: ``next_amount = floor(amount × rate × (1 − spread))``, the reference
connector's rule. A positive amount that converts to nothing is rejected R01 (insufficient
source amount); a pair without a rate F02 (no route across those assets).

A :class:`RateSource` answers in *scaled* units: how many of the receiving asset's smallest
units one smallest unit of the sending asset buys. 1 XRP at scale 6 (1,000,000 drops) to XRP at
scale 9 is 1000.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Protocol, runtime_checkable

from aigent_connector.errors import ConnectorError


class NoRate(ConnectorError, LookupError):
    """No rate is known for this pair of assets."""


@runtime_checkable
class RateSource(Protocol):
    def rate(self, from_code: str, from_scale: int, to_code: str, to_scale: int) -> Fraction:
        """Smallest units of ``to_code`` per smallest unit of ``from_code``; :class:`NoRate`
        when this source cannot say."""
        ...


def _scaled(unit_rate: Fraction, from_scale: int, to_scale: int) -> Fraction:
    return unit_rate * Fraction(10) ** (to_scale - from_scale)


class OneToOne:
    """The default: the same asset converts 1:1, adjusted for scale; different assets have no
    rate (so a misconfigured peer cannot turn 1 XRP into 1 BTC)."""

    def rate(self, from_code: str, from_scale: int, to_code: str, to_scale: int) -> Fraction:
        if from_code != to_code:
            raise NoRate(f"no exchange rate from {from_code} to {to_code}")
        return _scaled(Fraction(1), from_scale, to_scale)


class StaticRates:
    """A fixed table of whole-unit rates (from configuration), with inverses implied and the
    same asset 1:1."""

    def __init__(self, table: Iterable[tuple[str, str, Decimal | Fraction | int | str]]) -> None:
        self._table: dict[tuple[str, str], Fraction] = {}
        for from_code, to_code, rate in table:
            value = Fraction(str(rate)) if isinstance(rate, Decimal | str) else Fraction(rate)
            if value <= 0:
                raise ValueError(f"rate {from_code}->{to_code} must be positive, not {rate}")
            self._table[(from_code, to_code)] = value
            self._table.setdefault((to_code, from_code), 1 / value)

    def rate(self, from_code: str, from_scale: int, to_code: str, to_scale: int) -> Fraction:
        if from_code == to_code:
            return _scaled(Fraction(1), from_scale, to_scale)
        unit = self._table.get((from_code, to_code))
        if unit is None:
            raise NoRate(f"no exchange rate from {from_code} to {to_code}")
        return _scaled(unit, from_scale, to_scale)


def convert(amount: int, rate: Fraction, spread: Fraction | Decimal | int = 0) -> int:
    """``floor(amount × rate × (1 − spread))`` in exact arithmetic (no float rounding)."""
    keep = 1 - (Fraction(str(spread)) if isinstance(spread, Decimal) else Fraction(spread))
    return math.floor(amount * rate * keep)
