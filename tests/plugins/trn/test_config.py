"""settings.trn: presets, overrides and clear errors for bad values."""

from __future__ import annotations

import pytest
from aigent_trn.config import DEX_PRECOMPILE, TrnConfigError, TrnSettings
from aigent_trn.service import TrnError, from_units, to_units


def test_presets_and_overrides() -> None:
    assert TrnSettings.parse({"network": "mainnet"}).chain_id == 7668
    porcini = TrnSettings.parse(None)
    assert (porcini.chain_id, porcini.rpc_url) == (7672, "https://porcini.rootnet.app/archive")
    assert porcini.dex_router == DEX_PRECOMPILE and porcini.key_env == "TRN_PRIVATE_KEY"
    local = TrnSettings.parse({"network": "local", "rpc_url": "http://h:1", "batch_seconds": 2})
    assert (local.rpc_url, local.batch_seconds) == ("http://h:1", 2.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"network": "ropsten"}, "use one of"),
        ({"batch_sise": 3}, "unknown keys"),
        ({"batch_size": 0}, "at least 1"),
        ({"batch_seconds": "soon"}, "malformed"),
        ({"poll_seconds": -1}, "positive"),
    ],
)
def test_bad_settings_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(TrnConfigError, match=message):
        TrnSettings.parse(raw)


def test_human_amounts() -> None:
    assert to_units("1.5", 18) == 15 * 10**17
    assert from_units(15 * 10**17, 18) == "1.5"
    for bad, why in (
        ("0", "positive"),
        ("-1", "positive"),
        ("0.0000001", "decimals"),
        ("x", "not a number"),
    ):
        with pytest.raises(TrnError, match=why):
            to_units(bad, 6)
