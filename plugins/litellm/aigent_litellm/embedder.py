"""The ``litellm`` embedder: provider embeddings (OpenAI, Ollama, in-house servers) for the
character's ``models.embedding``; litellm is imported on first use, off the event loop."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aigent import AigentError

if TYPE_CHECKING:
    from aigent import PluginContext


class LiteLLMEmbedder:
    def __init__(self, model: str, api_base: str | None, api_key: str | None) -> None:
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.name = f"litellm:{model}"
        self.dimension = 0  # learnt from the first answer

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        litellm = await asyncio.to_thread(importlib.import_module, "litellm")
        response = await litellm.aembedding(
            model=self.model, input=list(texts), api_base=self.api_base, api_key=self._api_key
        )
        vectors = [item["embedding"] for item in response.data]
        self.dimension = len(vectors[0]) if vectors else self.dimension
        return vectors


def litellm_embedder(ctx: PluginContext) -> LiteLLMEmbedder:
    chain = ctx.character.models.embedding
    if not chain:
        raise AigentError(
            "memory.embedder is 'litellm' but the character has no models.embedding; "
            'add one, e.g. "models": {"embedding": "openai/text-embedding-3-small"}'
        )
    config = chain[0]
    provider = config.model.split("/", 1)[0]
    key_name = config.api_key_secret or {"openai": "OPENAI_API_KEY"}.get(provider)
    api_key = ctx.secrets.get(key_name) if key_name else None
    return LiteLLMEmbedder(config.model, config.api_base, api_key)
