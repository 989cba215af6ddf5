"""Fixtures for the XRPL plugin: a local test ledger, funded wallets, and plugin contexts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from aigent import Character, PluginContext
from aigent.secrets import Secrets
from aigent.spending import Limits, SpendingPolicy


@pytest.fixture
def ledger() -> Iterator[TestLedger]:
    with TestLedger() as running:
        yield running


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    # the test ledger validates at once, so there is no ledger close to wait for
    import xrpl.asyncio.transaction.reliable_submission as rs

    monkeypatch.setattr(rs, "_LEDGER_CLOSE_TIME", 0.01)


def new_wallet(ledger: TestLedger, drops: int = 100_000_000) -> Wallet:
    wallet = Wallet.create()
    ledger.fund(wallet.address, drops)
    return wallet


MakeCtx = Callable[..., PluginContext]


@pytest.fixture
def make_ctx(ledger: TestLedger, tmp_path: Path) -> Iterator[MakeCtx]:
    policies: list[SpendingPolicy] = []

    def make(
        wallet: Wallet, limits: dict[str, Limits] | None = None, name: str = "a"
    ) -> PluginContext:
        data = tmp_path / name
        policy = SpendingPolicy(limits or {}, data / "spending.sqlite")
        policies.append(policy)
        settings = {"url": ledger.url, "cache_ttl": 60}
        return PluginContext(
            character=Character(name=name, settings={"xrpl": settings}),
            secrets=Secrets(environ={"XRPL_SEED": wallet.seed or ""}),
            data_dir=data,
            plugin="xrpl",
            settings=settings,
            spending=policy,
        )

    yield make
    for policy in policies:
        policy.close()


def malleate(signature_hex: str, public_key_hex: str) -> str:
    """The other signature that verifies for the same message and key (``n - S`` for
    secp256k1, ``S + L`` for Ed25519): mathematically valid, refused by rippled."""
    from aigent_xrpl.signatures import ED25519_ORDER, SECP256K1_ORDER

    sig = bytes.fromhex(signature_hex)
    if public_key_hex[:2].upper() == "ED":
        s = int.from_bytes(sig[32:], "little") + ED25519_ORDER
        return (sig[:32] + s.to_bytes(32, "little")).hex().upper()
    r_len = sig[3]
    r = int.from_bytes(sig[4 : 4 + r_len], "big")
    s = SECP256K1_ORDER - int.from_bytes(sig[6 + r_len :], "big")

    def der(value: int) -> bytes:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        raw = b"\0" + raw if raw[0] & 0x80 else raw
        return bytes([2, len(raw)]) + raw

    body = der(r) + der(s)
    return (bytes([0x30, len(body)]) + body).hex().upper()
