"""A real local EVM node (anvil from npm, TRN's chain id, Shanghai), one per test session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aigent_trn.testing import run_anvil


@pytest.fixture(scope="session")
def anvil() -> Iterator[dict[str, Any]]:
    with run_anvil() as node:
        yield {"url": node.url, "keys": node.keys, "chain_id": node.chain_id}
