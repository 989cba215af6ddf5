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
