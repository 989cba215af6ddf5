"""A real local EVM node (anvil from npm, TRN's chain id, Shanghai), one per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aigent_trn import chain

from aigent import Character, PluginContext, Secrets
from tests.fixtures.anvil import run_anvil


def trn_ctx(data_dir: Path, **settings: Any) -> PluginContext:
    """The ``trn`` plugin's context in one agent (data in ``data_dir``), as its hooks get it."""
    return PluginContext(
        character=Character(name="Tester", settings={"trn": settings}),
        secrets=Secrets({}),
        data_dir=data_dir,
        plugin="trn",
        settings=settings,
    )


@pytest.fixture(scope="session")
def anvil() -> Iterator[dict[str, Any]]:
    with run_anvil() as node:
        yield {"url": node.url, "keys": node.keys, "chain_id": node.chain_id}


@pytest.fixture
def registry(anvil: dict[str, Any]) -> str:
    """A fresh AnchorRegistry (deployed with key 3, which agents in these tests never use)."""
    w3 = chain.connect(anvil["url"], 7672)
    return chain.deploy_registry(w3, chain.Signer(w3, anvil["keys"][3]))
