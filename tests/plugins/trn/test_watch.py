"""The TRN watcher on anvil: transfers of a watched address stored once each, its token balance
recorded when it moves, nothing new after a restart, and the digest showing the moves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aigent_trn
from aigent_trn import chain
from eth_account import Account

from aigent import Watcher
from aigent.watch import WatchConfig, WatchService, WatchStore, digest

from .conftest import trn_ctx

E18 = 10**18


def watchers(anvil: dict[str, Any], data: Path, **settings: Any) -> list[Watcher]:
    ctx = trn_ctx(
        data, network="local", rpc_url=anvil["url"], anchor=False, cache_ttl=0, **settings
    )
    found: list[Watcher] = []
    aigent_trn.register_watchers(register=found.append, ctx=ctx)  # as the entry point has it
    return found


async def test_transfers_and_balance_moves_of_a_watched_address_reach_the_digest(
    anvil: dict[str, Any], tmp_path: Path
) -> None:
    w3 = chain.connect(anvil["url"], 7672)
    owner = chain.Signer(w3, anvil["keys"][8])
    token = chain.deploy(w3, owner, "SimpleToken", ("Watched", "WAT", 18))
    contract = w3.eth.contract(address=token, abi=chain.artefact("SimpleToken")["abi"])
    owner.transact({"to": token, "data": contract.encode_abi("mint", [owner.address, 1000 * E18])})
    watched = Account.create().address

    def send(amount: int) -> None:
        data = contract.encode_abi("transfer", [watched, amount * E18])
        owner.transact({"to": token, "data": data})

    send(40)
    settings = {"tokens": {"WAT": token}, "watch": [watched]}
    path = tmp_path / "watch.sqlite"
    service = WatchService(watchers(anvil, tmp_path, **settings), WatchConfig(), path)
    assert await service.poll_once() == 2  # the transfer, and the balance first seen
    assert await service.poll_once() == 0
    send(2)
    assert await service.poll_once() == 2  # the second transfer, the balance moved
    await service.stop()

    restarted = WatchService(watchers(anvil, tmp_path, **settings), WatchConfig(), path)
    assert await restarted.poll_once() == 0
    await restarted.stop()

    store = WatchStore(path)
    items = store.items()
    store.close()
    for o in items:
        if o.data["kind"] == "transfer":  # stamped by its block, not by the poll
            assert o.time == w3.eth.get_block(o.data["block"])["timestamp"]
    text = digest(items, time.time() - 3600)
    assert "trn: 4 item(s) (1 balance, 1 change, 2 transfer)" in text
    changes = [line.strip() for line in text.split("top changes:")[1].splitlines()[1:4]]
    assert changes[0].startswith(f"40 WAT from {owner.address} to {watched}")
    assert f"{watched} holds 42 WAT (+2)" in changes


def test_no_watched_address_offers_no_watcher(anvil: dict[str, Any], tmp_path: Path) -> None:
    assert watchers(anvil, tmp_path, tokens={"WAT": "0x" + "11" * 20}) == []
