"""The node drives each peer's settlement engine through the ``SettlementEngine`` Protocol:
``attach`` (then the connector gets the engine), ``start``, and ``close`` when it stops; an
engine that lacks part of it stops the agent at start with an error that says what."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aigent import Agent, PaymentError, PluginContext, SettlementEngine, hookimpl

SCRIPTED_MODEL = Path(__file__).parents[1] / "fixtures" / "scripted_model.py"


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def attach(self, connector: Any, account: str) -> None:
        # not handed to the settler yet: the node does that after attach
        self.calls.append(("attach", (connector.address, account, connector.settler)))

    async def start(self) -> None:
        self.calls.append(("start", None))

    async def settle(self, account: str, amount: int, settlement_id: str | None = None) -> int:
        return amount

    async def close(self) -> None:
        self.calls.append(("close", None))


class SettleOnly:
    """What an engine looked like before attach/start/close were part of the Protocol."""

    name = "settle-only"

    async def settle(self, account: str, amount: int, settlement_id: str | None = None) -> int:
        return amount


class Engines:
    def __init__(self) -> None:
        self.made: list[Any] = []

    @hookimpl
    def register_settlement_engines(self, register: Callable[..., None]) -> None:
        def make(kind: type) -> Callable[[PluginContext], Any]:
            def factory(ctx: PluginContext) -> Any:
                self.made.append(kind())
                return self.made[-1]

            return factory

        register("recorder", make(Recorder))
        register("settle-only", make(SettleOnly))


def _agent(write: Callable[..., Path], tmp_path: Path, engine: str, plugin: Engines) -> Agent:
    peer = {"relation": "child", "token_env": "CAROL_BTP_TOKEN", "settlement": engine}
    character = {
        "name": "Ada",
        "models": {"large": "scripted"},
        "plugins": [str(SCRIPTED_MODEL)],
        "memory": {"enabled": False},
        "data_dir": str(tmp_path / "ada"),
        "connector": {
            "node_id": "ada",
            "address": "test.ada",
            "listen": {"port": 0},
            "peers": {"carol": peer},
        },
    }
    return Agent.from_file(write(character, "ada.json"), plugins=[plugin])


async def test_attach_then_the_connector_then_start_and_close_at_stop(
    write_character: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAROL_BTP_TOKEN", "carol-token")
    plugin = Engines()
    agent = _agent(write_character, tmp_path, "recorder", plugin)
    async with agent:
        (engine,) = plugin.made
        assert isinstance(engine, SettlementEngine)
        assert engine.calls == [("attach", ("test.ada", "carol", None)), ("start", None)]
        assert agent.node is not None and agent.node.connector.settler.engines == {"carol": engine}
    assert engine.calls[-1] == ("close", None) and len(engine.calls) == 3


async def test_an_engine_without_attach_start_close_is_refused_at_start(
    write_character: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAROL_BTP_TOKEN", "carol-token")
    agent = _agent(write_character, tmp_path, "settle-only", Engines())
    with pytest.raises(PaymentError, match=r"peer carol \(SettleOnly\) lacks .*attach"):
        await agent.start()
    assert agent.node is None  # nothing half-started
