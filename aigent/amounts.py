"""Amounts of money: integers in an asset's smallest unit at a scale (1000 at scale 6 = 0.001).

One formatter and one conversion serve every path that shows or counts value (prices, spending
limits, earnings, chain and ledger amounts), so an amount reads the same everywhere.
"""

from __future__ import annotations

from decimal import Decimal


def format_amount(amount: int, scale: int, code: str = "") -> str:
    """``format_amount(1500, 6, "XRP")`` -> ``"0.0015 XRP"``: exact, no exponent, no float."""
    text = f"{Decimal(amount).scaleb(-scale).normalize():f}"
    return f"{text} {code}" if code else text


def rescale(amount: int, from_scale: int, to_scale: int) -> int:
    """``amount`` at ``from_scale`` counted at ``to_scale``, rounded UP where it does not divide:
    a limit kept at a coarser scale than the rail's may count a payment as a little more, never
    as less."""
    shift = from_scale - to_scale
    if shift <= 0:
        scaled: int = amount * 10 ** (-shift)
        return scaled
    factor: int = 10**shift
    return -(-amount // factor)
