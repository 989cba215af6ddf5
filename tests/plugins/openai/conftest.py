"""Models of the direct OpenAI-wire plugin, built the way an agent builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aigent_openai import close_pools
from aigent_openai.model import OpenAIModel
from aigent_openai.plugin import OpenAIProvider

from aigent import Character, ModelConfig, PluginContext, Secrets
from tests.fixtures.openai_server import OpenAIServer

KEY = "sk-test-9d3b7e21c4a6f805"


@pytest.fixture(autouse=True)
async def _close_pools() -> AsyncIterator[None]:
    yield
    await close_pools()  # each test has its own event loop: close what it opened


@pytest.fixture
def build(openai_server: OpenAIServer, tmp_path: Path) -> Callable[..., OpenAIModel]:
    """``build(model="openai/stand-in", secrets=..., settings=..., **model config)``: the
    provider's model for that config, pointed at the stand-in unless ``api_base`` is given."""

    def make(
        model: str = "openai/stand-in",
        *,
        secrets: dict[str, str] | None = None,
        settings: dict[str, Any] | None = None,
        **config: Any,
    ) -> OpenAIModel:
        config.setdefault("api_base", openai_server.url)
        character = Character.model_validate(
            {"name": "Wire", "settings": {"openai": settings or {}}}
        )
        ctx = PluginContext(
            character=character,
            secrets=Secrets({"OPENAI_API_KEY": KEY} if secrets is None else secrets, environ={}),
            data_dir=tmp_path,
        ).for_plugin("openai")
        return OpenAIProvider().get_model(ModelConfig(model=model, **config), ctx)

    return make
