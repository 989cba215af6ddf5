"""The litellm plugin's tests run as if aigent-openai were not installed: that plugin is tried
first and would otherwise serve the ``openai/`` ids these tests point at the stand-in."""

from __future__ import annotations

import sys

import pytest

import aigent.plugins

DIRECT = "openai"  # the entry point of aigent-openai

# `aigent ...` in a subprocess, with the same plugin left out.
CLI = [
    sys.executable,
    "-c",
    "import aigent.plugins as p\n"
    "installed = p.installed_entry_points()\n"
    f"p.installed_entry_points = lambda: tuple(e for e in installed if e.name != {DIRECT!r})\n"
    "from aigent.cli import main\n"
    "main()\n",
]


@pytest.fixture(autouse=True)
def _litellm_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = aigent.plugins.installed_entry_points()
    monkeypatch.setattr(
        aigent.plugins,
        "installed_entry_points",
        lambda: tuple(ep for ep in installed if ep.name != DIRECT),
    )
