"""Observations: what happens to an agent's money reaches ``agent.observe`` callbacks (the
spending policy's payments, plugins' ``ctx.emit``), on the agent's loop, and an observer that
fails never breaks the payment it watches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from aigent import Agent, PluginContext, SpendingPolicy, hookimpl
from aigent.node import Earnings, _Sale
from aigent.observe import KINDS, ObservationError, Observers
from aigent.spending import Limits
from aigent.storage import FileStorage

Seen = list[tuple[str, dict[str, Any]]]


def watching(observers: Observers) -> Seen:
    seen: Seen = []
    observers.add(lambda kind, data: seen.append((kind, dict(data))))
    return seen


def policy(tmp_path: Path, observers: Observers) -> SpendingPolicy:
    limits = {"XRP": Limits(per_day=10_000, asset_scale=6)}
    return SpendingPolicy(limits, tmp_path / "spend.sqlite", observers=observers)


async def test_payments_are_told_as_committed_released_or_held(tmp_path: Path) -> None:
    observers = Observers()
    seen = watching(observers)
    p = policy(tmp_path, observers)
    async with p.spend("XRP", 100, to="g.bob", scale=6, purpose="a tip"):
        pass
    async with p.spend("XRP", 200, to="g.bob", scale=6) as spend:
        spend.moved(150)
    with pytest.raises(RuntimeError):
        async with p.spend("XRP", 300, to="g.carol", scale=6) as spend:
            spend.nothing_moved()
            raise RuntimeError("refused")
    with pytest.raises(TimeoutError):
        async with p.spend("XRP", 400, to="g.dave", scale=6):
            raise TimeoutError
    kinds = [(kind, data["amount"], data["destination"]) for kind, data in seen]
    assert kinds == [
        ("payment.committed", 100, "g.bob"),
        ("payment.committed", 150, "g.bob"),
        ("payment.released", 300, "g.carol"),
        ("payment.held", 400, "g.dave"),
    ]
    first, held = seen[0][1], seen[-1][1]
    assert first["purpose"] == "a tip" and first["asset"] == "XRP" and first["scale"] == 6
    assert "outcome unknown" in held["note"]
    # the held one resolves later: observers hear that too
    p.resolve(held["spend_id"], moved=True)
    assert seen[-1][0] == "payment.committed" and seen[-1][1]["spend_id"] == held["spend_id"]
    assert {k for k, _ in seen} <= set(KINDS)
    assert [r["state"] for r in p.recent()] == ["spent", "released", "spent", "spent"]
    p.close()


async def test_a_failing_observer_does_not_break_the_payment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    observers = Observers()

    def broken(kind: str, data: Mapping[str, Any]) -> None:
        raise ValueError("observer bug")

    observers.add(broken)
    seen = watching(observers)  # after the broken one: still called
    p = policy(tmp_path, observers)
    async with p.spend("XRP", 100, to="g.bob", scale=6):
        pass
    assert p.spent("XRP", 3600) == 100
    assert [k for k, _ in seen] == ["payment.committed"]
    assert "observer of 'payment.committed' failed" in caplog.text
    p.close()


async def test_unsubscribing_stops_the_calls_and_nobody_watching_costs_nothing(
    tmp_path: Path,
) -> None:
    observers = Observers()
    seen: Seen = []
    stop = observers.add(lambda kind, data: seen.append((kind, dict(data))))
    p = policy(tmp_path, observers)
    async with p.spend("XRP", 1, to="g.bob", scale=6):
        pass
    stop()
    assert not observers
    async with p.spend("XRP", 1, to="g.bob", scale=6):
        pass
    assert len(seen) == 1
    p.close()


async def test_an_emit_from_a_worker_thread_is_observed_on_the_agents_loop() -> None:
    observers = Observers()
    observers.bind(asyncio.get_running_loop())
    threads: list[int] = []
    done = asyncio.Event()

    def observer(kind: str, data: Mapping[str, Any]) -> None:
        threads.append(threading.get_ident())
        done.set()

    observers.add(observer)
    await asyncio.to_thread(observers.emit, "anchor.batch", {"batch": 1})
    await asyncio.wait_for(done.wait(), 5)
    assert threads == [threading.get_ident()]


class Emitter:
    """A plugin with a service that emits when it starts."""

    @hookimpl
    def register_services(self, register: Callable[..., None], ctx: PluginContext) -> None:
        class Service:
            name = "emitter"

            async def start(self) -> None:
                ctx.emit("emitter.started", answer=42)

            async def stop(self) -> None:
                pass

        register(Service())


async def test_plugins_emit_through_their_context_and_the_agent_observes(
    scripted_character: Callable[..., Path],
) -> None:
    agent = Agent.from_file(scripted_character(), plugins=[Emitter()])
    seen = watching(agent.observers)
    agent.observe(lambda kind, data: None)  # the public way; a second observer
    async with agent:
        pass
    ((kind, data),) = seen
    assert kind == "emitter.started" and data["answer"] == 42 and data["plugin"]
    ctx = agent.ctx.for_plugin("mine")
    with pytest.raises(ObservationError, match="not a dotted lower-case name"):
        ctx.emit("Bad Kind!")
    with pytest.raises(ObservationError, match=r"reserved key.*agent"):
        ctx.emit("mine.done", agent="x")


def test_earnings_over_time_fill_empty_buckets(tmp_path: Path) -> None:
    earnings = Earnings.open(FileStorage(tmp_path))
    hour = 3600.0
    start = 1_700_000_000 // 3600 * 3600.0
    for i, (offset, amount) in enumerate([(10, 5), (20, 7), (2 * hour + 5, 11)]):
        earnings.book(_Sale(amount, "g.a", f"m{i}", True), "XRP")
        earnings.store.execute("UPDATE sales SET at = ? WHERE message_id = ?",
                                 (start + offset, f"m{i}"))  # fmt: skip
    rows = earnings.over_time("hour", start, start + 3 * hour - 1)
    assert rows == [(start, 12, 2), (start + hour, 0, 0), (start + 2 * hour, 11, 1)]
    # UTC days: this start is 5 h before midnight, so the third sale falls on the next day
    assert earnings.over_time("day", start, start + 3 * hour - 1) == [
        (1_699_920_000.0, 12, 2),
        (1_700_006_400.0, 11, 1),
    ]
    with pytest.raises(ValueError, match="every must be one of hour, day"):
        earnings.over_time("week", start)
    with pytest.raises(ValueError, match="at most 2000"):
        earnings.over_time("hour", start - 10_000 * hour, start)
    earnings.close()
