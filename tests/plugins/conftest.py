"""Fixtures for plugin tests: wire-format stand-ins for services that cannot be reached here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.openai_server import OpenAIServer


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
