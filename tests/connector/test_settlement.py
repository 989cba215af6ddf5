"""Settlement: when what the hub owes bob crosses bob's settle threshold, the hub's engine pays
him once per crossing, with an id that survives failures and restarts. The engine here records
calls: it is the interface itself, not a stand-in for something external."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aigent_connector.node import Node
from aigent_connector.packets import Fulfill, Prepare
from aigent_connector.settlement import SettlementEngine

from tests.connector.test_admin import CONDITION, Network, hub_config, start_network
from tests.connector.test_admin import tokens as tokens  # a fixture, used by name

BOB = {"relation": "child", "token_env": "BOB_BTP_TOKEN", "settle_threshold": -150, "settle_to": 0}


class RecordingEngine:
    name = "recording"

    def __init__(self, fail: int = 0, gate: asyncio.Event | None = None) -> None:
        self.fail = fail
        self.gate = gate
        self.calls: list[tuple[str, int, str | None]] = []
        self.paid: dict[str | None, int] = {}

    async def settle(self, account: str, amount: int, settlement_id: str | None = None) -> int:
        self.calls.append((account, amount, settlement_id))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("the settlement ledger is unreachable")
        # Like a real engine: the same id twice pays once.
        return self.paid.setdefault(settlement_id, amount)


@pytest.fixture
async def net(tmp_path: Path, tokens: None) -> AsyncIterator[Network]:
    network = await start_network(tmp_path, peers={"bob": BOB})
    try:
        yield network
    finally:
        await network.stop()


async def pay(net: Network, amount: int = 100) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=10)
    answer = await net.alice.connector.send(Prepare(amount, expires, CONDITION, "g.hub.bob"))
    assert isinstance(answer, Fulfill)


def engine_on(net: Network, engine: SettlementEngine) -> None:
    net.hub.connector.set_settlement_engine("bob", engine)
    assert net.hub.connector.settler is not None
    net.hub.connector.settler.retry_delay = 0.05


async def test_crossing_the_threshold_settles_once(net: Network) -> None:
    engine = RecordingEngine()
    engine_on(net, engine)
    ledger = net.hub.connector.ledger
    await pay(net)
    assert engine.calls == [] and ledger.account("bob").balance == -100  # above -150
    await pay(net)
    assert net.hub.connector.settler is not None
    await net.hub.connector.settler.idle()
    assert [(a, amount) for a, amount, _ in engine.calls] == [("bob", 200)]
    assert engine.calls[0][2] is not None and engine.calls[0][2].startswith("bob:")
    assert ledger.account("bob").balance == 0  # settled back to settle_to
    await pay(net)
    await net.hub.connector.settler.idle()
    assert len(engine.calls) == 1
    text = net.hub.metrics.render()
    assert 'ilp_connector_settlements_total{account="bob",result="ok"} 1' in text


async def test_one_settlement_in_flight_at_a_time(net: Network) -> None:
    gate = asyncio.Event()
    engine = RecordingEngine(gate=gate)
    engine_on(net, engine)
    for _ in range(4):  # crosses at -200 and keeps going while the engine is busy
        await pay(net)
    await asyncio.sleep(0.05)
    assert [amount for _, amount, _ in engine.calls] == [200]
    gate.set()
    assert net.hub.connector.settler is not None
    await net.hub.connector.settler.idle()
    # The first paid 200 (-400 -> -200), still under -150: a second, new settlement.
    assert [amount for _, amount, _ in engine.calls] == [200, 200]
    assert engine.calls[0][2] != engine.calls[1][2]
    assert net.hub.connector.ledger.account("bob").balance == 0


async def test_failures_are_retried_with_the_same_id(
    net: Network, caplog: pytest.LogCaptureFixture
) -> None:
    engine = RecordingEngine(fail=2)
    engine_on(net, engine)
    with caplog.at_level(logging.WARNING, logger="aigent.connector.settlement"):
        await pay(net)
        await pay(net)
        assert net.hub.connector.settler is not None
        await net.hub.connector.settler.idle()
    assert len(engine.calls) == 3 and len({call[2] for call in engine.calls}) == 1
    assert net.hub.connector.ledger.account("bob").balance == 0
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2 and "ConnectionError" in failures[0] and "retrying" in failures[0]
    text = net.hub.metrics.render()
    assert 'ilp_connector_settlements_total{account="bob",result="failed"} 2' in text


async def test_a_pending_settlement_resumes_after_a_restart(tmp_path: Path, net: Network) -> None:
    down = RecordingEngine(fail=10**6)
    engine_on(net, down)
    await pay(net)
    await pay(net)
    await asyncio.sleep(0.1)
    first_id = down.calls[0][2]
    assert net.hub.connector.ledger.account("bob").balance == -200
    await net.stop()  # "crash" with the settlement still pending
    hub = await Node(hub_config(tmp_path, {"bob": BOB})).start()
    try:
        assert hub.connector.ledger.account("bob").balance == -200
        up = RecordingEngine()
        up.paid[first_id] = 200  # the first attempt had in fact gone through
        hub.connector.set_settlement_engine("bob", up)
        assert hub.connector.settler is not None
        await hub.connector.settler.idle()
        assert up.calls == [("bob", 200, first_id)]  # same id: the engine pays nothing new
        assert hub.connector.ledger.account("bob").balance == 0
        assert hub.connector.settler.pending() == []
        assert hub.connector.settler.history("bob") == [(first_id, 200, "done", 200)]
    finally:
        await hub.stop()
