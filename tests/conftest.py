"""Shared fixtures. Servers started here pick free ports and are always stopped."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SCRIPTED_MODEL = Path(__file__).resolve().parent / "fixtures" / "scripted_model.py"


@pytest.fixture
def write_character(tmp_path: Path) -> Callable[..., Path]:
    """Write a character file (aigent format unless the dict says otherwise) into tmp_path."""

    def write(data: dict[str, Any] | str, name: str = "agent.json") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
        return path

    return write


@pytest.fixture
def scripted_character(write_character: Callable[..., Path], tmp_path: Path) -> Callable[..., Path]:
    """An aigent character that uses the scripted stand-in model (tests/fixtures)."""

    def make(**fields: Any) -> Path:
        data: dict[str, Any] = {
            "name": "Tester",
            "bio": ["a test agent"],
            "models": {"large": "scripted"},
            "plugins": [str(SCRIPTED_MODEL)],
            "data_dir": str(tmp_path / "data"),
            "memory": {"enabled": False},
        }
        data.update(fields)
        return write_character(data)

    return make


@pytest.fixture(autouse=True)
def _reset_scripted_model() -> None:
    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith("aigent_local_plugin_scripted_model"):
            module.CALLS.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``network`` need the public internet: they run only when asked."""
    if os.environ.get("AIGENT_NETWORK_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="needs the public internet: set AIGENT_NETWORK_TESTS=1")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


# Test characters live in temporary folders and name the stand-in plugins in tests/fixtures: the
# operator's allowance (an environment variable, which subprocesses inherit too), not a file's.
os.environ["AIGENT_ALLOW_PATHS"] = str(Path(__file__).resolve().parent / "fixtures")
