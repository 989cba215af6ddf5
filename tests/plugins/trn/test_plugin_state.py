"""The plugin's per-agent state (``ctx.state``): one agent's hooks share one service, proof store
and anchoring loop; two agents in one process, or an agent rebuilt from a changed character,
share none of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aigent_trn import ChainContext, service_for
from aigent_trn.anchoring import AnchorLoop

from aigent import Agent

MODEL = str(Path(__file__).parents[2] / "fixtures" / "scripted_model.py")


def _agent(make: Callable[..., Path], data_dir: Path, **trn: Any) -> Agent:
    settings = {"network": "local", "anchor": False, **trn}
    path = make(plugins=[MODEL, "trn"], settings={"trn": settings}, data_dir=str(data_dir))
    return Agent.from_file(path)


async def test_one_agents_hooks_share_one_service_store_and_loop(
    anvil: dict[str, Any],
    registry: str,
    scripted_character: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("TRN_PRIVATE_KEY", anvil["keys"][4])
    # Sealed at once (batch_size 1), and no tick for a minute: only after_publish waking the
    # loop it finds in the agent's state gets the message anchored within the test.
    agent = _agent(
        scripted_character, tmp_path / "data", rpc_url=anvil["url"], registry=registry,
        anchor=True, batch_size=1, batch_seconds=60, poll_seconds=60,
    )  # fmt: skip
    async with agent:
        state = agent.ctx.for_plugin("trn").state
        (loop,) = [s for s in agent.services if isinstance(s, AnchorLoop)]
        (provider,) = [p for p in agent.providers if isinstance(p, ChainContext)]
        service = state["service"]
        assert loop is state["loop"] and loop.service is service
        assert service_for(provider.ctx) is service
        reply = await agent.chat("hello")
        assert state["store"] is service.store  # the hook wrote where the loop reads
        async with asyncio.timeout(15):
            while "anchor" not in reply.receipts["trn"]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        # ...and the loop updated the receipt the hook handed out; the action sees the same
        stats = json.loads(await agent.actions["trn_anchoring_stats"].run({}))
        assert (stats["anchored_messages"], stats["queued_messages"]) == (1, 0)
        assert len(loop.waiting) == 0


async def test_two_agents_in_one_process_share_nothing(
    scripted_character: Callable[..., Path], tmp_path: Path
) -> None:
    ada = _agent(scripted_character, tmp_path / "ada")
    bob = _agent(scripted_character, tmp_path / "bob")
    async with ada, bob:
        reply = await ada.chat("only ada says this")
        ada_trn, bob_trn = ada.ctx.for_plugin("trn"), bob.ctx.for_plugin("trn")
        assert service_for(ada_trn) is not service_for(bob_trn)
        ada_store, bob_store = service_for(ada_trn).store, service_for(bob_trn).store
        assert ada_store is not bob_store and ada_store.path != bob_store.path
        assert ada_store.receipt(reply.message_id or "") is None  # keyed by the outgoing id
        assert ada_store.queued() == 1 and bob_store.queued() == 0
        assert ada_trn.state is not bob_trn.state


async def test_an_agent_rebuilt_from_a_changed_character_gets_new_objects(
    scripted_character: Callable[..., Path], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    before = _agent(scripted_character, data, cache_ttl=15)
    async with before:
        await before.chat("first")
        old = service_for(before.ctx.for_plugin("trn"))
    after = _agent(scripted_character, data, cache_ttl=60, batch_size=1)
    async with after:
        await after.chat("second")
        new = service_for(after.ctx.for_plugin("trn"))
        assert new is not old and new.store is not old.store
        assert (new.settings.cache_ttl, old.settings.cache_ttl) == (60, 15)
        # one proof store file across runs; the new batch_size (1) sealed the oldest message
        assert new.store.path == old.store.path
        assert new.store.queued() == 1
