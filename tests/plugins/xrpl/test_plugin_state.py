"""The plugin's per-agent state (``ctx.state``): one agent's actions, context and settlement
engine share one service (wallet, client, cache); two agents in one process, or an agent rebuilt
from a changed character, do not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aigent_xrpl import BalancesContext, service_for
from aigent_xrpl.testledger import TestLedger

from aigent import Agent

from .conftest import new_wallet

MODEL = str(Path(__file__).parents[2] / "fixtures" / "scripted_model.py")


def _agent(
    write: Callable[..., Path], ledger: TestLedger, name: str, data_dir: Path, **fields: Any
) -> Agent:
    xrpl = {"url": ledger.url, "seed_env": f"{name.upper()}_SEED", "cache_ttl": 60}
    character = {
        "name": name,
        "models": {"large": "scripted"},
        "plugins": [MODEL, "xrpl"],
        "memory": {"enabled": False},
        "data_dir": str(data_dir),
        "connector": {"enabled": False},
        **fields,
    }
    character["settings"] = {"xrpl": {**xrpl, **character.get("settings", {})}}
    return Agent.from_file(write(character, f"{name}.json"))


def _provider(agent: Agent) -> BalancesContext:
    (provider,) = [p for p in agent.providers if isinstance(p, BalancesContext)]
    return provider


async def test_one_agents_actions_context_and_engine_share_one_service(
    ledger: TestLedger,
    write_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    wallet = new_wallet(ledger)
    monkeypatch.setenv("ADA_SEED", wallet.seed or "")
    monkeypatch.setenv("CAROL_BTP_TOKEN", "carol-token")
    connector = {
        "node_id": "ada",
        "address": "test.ada",
        "listen": {"port": 0},
        "peers": {
            "carol": {
                "relation": "child",
                "token_env": "CAROL_BTP_TOKEN",
                "settle_threshold": -1000,
                "settlement": "xrpl-paychan",
            }
        },
    }
    agent = _agent(write_character, ledger, "ada", tmp_path / "ada", connector=connector)
    async with agent:
        assert agent.node is not None
        (engine,) = agent.node.engines
        service = agent.ctx.for_plugin("xrpl").state["service"]
        assert engine.xrpl is service  # type: ignore[attr-defined]
        assert service_for(_provider(agent).ctx) is service
        # the action fills the cache; the context provider is answered from it
        await agent.actions["xrpl_balances"].run({})
        served = ledger.requests.copy()
        text = await _provider(agent).get(None, None)
        assert text is not None and wallet.address in text
        assert ledger.requests == served


async def test_two_agents_in_one_process_share_nothing(
    ledger: TestLedger,
    write_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    wallets = {name: new_wallet(ledger) for name in ("ada", "bob")}
    for name, wallet in wallets.items():
        monkeypatch.setenv(f"{name.upper()}_SEED", wallet.seed or "")
    ada = _agent(write_character, ledger, "ada", tmp_path / "ada")
    bob = _agent(write_character, ledger, "bob", tmp_path / "bob")
    async with ada, bob:
        ada_xrpl, bob_xrpl = (
            service_for(ada.ctx.for_plugin("xrpl")),
            service_for(bob.ctx.for_plugin("xrpl")),
        )
        assert ada_xrpl is not bob_xrpl
        assert ada_xrpl.wallet.address == wallets["ada"].address
        assert bob_xrpl.wallet.address == wallets["bob"].address
        ada_text = await _provider(ada).get(None, None)
        bob_text = await _provider(bob).get(None, None)
        assert ada_text is not None and wallets["ada"].address in ada_text
        assert bob_text is not None and wallets["bob"].address in bob_text


async def test_an_agent_rebuilt_from_a_changed_character_gets_a_new_service(
    ledger: TestLedger,
    write_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("ADA_SEED", new_wallet(ledger).seed or "")
    data = tmp_path / "ada"
    before = _agent(write_character, ledger, "ada", data)
    async with before:
        await _provider(before).get(None, None)
        old = service_for(before.ctx.for_plugin("xrpl"))
    # same data directory and server, a shorter cache: the new character's settings hold
    after = _agent(write_character, ledger, "ada", data, settings={"cache_ttl": 0})
    async with after:
        new = service_for(after.ctx.for_plugin("xrpl"))
        assert new is not old and (new.ttl, old.ttl) == (0, 60)
        served = ledger.requests["account_info"]
        await _provider(after).get(None, None)
        assert ledger.requests["account_info"] == served + 1  # not answered from a stale cache
