"""Chains for the server's token tests: a real local EVM node (anvil, TRN's chain id) and the
in-process XRPL test ledger, and character files of agents that use them. Everything started
here is stopped on exit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aigent_xrpl.testledger import TestLedger
from xrpl.wallet import Wallet

from tests.fixtures.anvil import Anvil, run_anvil
from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import character

MINTER_KEY = 7  # the anvil account the minting agent signs with (no other server test uses it)


@dataclass
class Chains:
    anvil: Anvil
    ledger: TestLedger

    def wallet(self, drops: int = 100_000_000) -> Wallet:
        wallet = Wallet.create()
        self.ledger.fund(wallet.address, drops)
        return wallet

    def trn_balance(self, token: str, owner: str) -> int:
        from aigent_trn import chain, tokens

        return tokens.balance_of(chain.connect(self.anvil.url, 7672), token, owner)

    def trn_address(self, index: int = MINTER_KEY) -> str:
        from eth_account import Account

        return str(Account.from_key(self.anvil.keys[index]).address)


@contextmanager
def running_chains() -> Iterator[Chains]:
    # the test ledger validates at once: no ledger close to wait for between polls
    import xrpl.asyncio.transaction.reliable_submission as rs

    with pytest.MonkeyPatch.context() as patch, run_anvil() as anvil, TestLedger() as ledger:
        patch.setattr(rs, "_LEDGER_CLOSE_TIME", 0.01)
        yield Chains(anvil, ledger)


def token_agent(
    folder: Path,
    model: OpenAIServer,
    chains: Chains,
    name: str,
    wallet: Wallet,
    spending: dict[str, Any],
    trn_key: int | None = MINTER_KEY,
) -> Path:
    """A character file for an agent on both chains (on the XRPL only, without ``trn_key``);
    its keys are in the file's ``secrets``, under names only these tests use."""
    slug = name.upper()
    plugins, settings, secrets = ["xrpl"], {}, {f"{slug}_XRPL_SEED": wallet.seed or ""}
    settings["xrpl"] = {"url": chains.ledger.url, "seed_env": f"{slug}_XRPL_SEED", "cache_ttl": 0}
    if trn_key is not None:
        plugins.insert(0, "trn")
        settings["trn"] = {
            "network": "local",
            "rpc_url": chains.anvil.url,
            "anchor": False,
            "key_env": f"{slug}_TRN_KEY",
            "cache_ttl": 0,
        }
        secrets[f"{slug}_TRN_KEY"] = chains.anvil.keys[trn_key]
    data = character(
        model, name, plugins=plugins, settings=settings, secrets=secrets, spending=spending
    )
    path = folder / f"{name.lower()}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
