"""Embedders: a hashing one that works anywhere, and provider embeddings through litellm.

chromadb's own default downloads a model on first use, which fails on a machine without a
network; ``hashing`` needs nothing. It is lexical, not semantic: it matches shared words and
word pieces, not synonyms (README.md states its measured retrieval quality). Where a network
and a key exist, ``litellm`` uses the character's ``models.embedding`` (e.g.
``openai/text-embedding-3-small``).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aigent import PluginContext

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    "a an and are as at be by for from has have i in is it its of on or that the this to was "
    "were what when where which who why will with you your my me do does did how".split()
)


class HashingEmbedder:
    """Feature hashing of words, word pairs and character trigrams, signed, tf-weighted and
    L2-normalised. Deterministic across processes (blake2b, not Python's salted ``hash``)."""

    def __init__(self, dimension: int = 512) -> None:
        self.dimension = dimension
        self.name = f"hashing-{dimension}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    def embed_one(self, text: str) -> list[float]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
        features: Counter[str] = Counter()
        for word in words:
            features["w:" + word] += 2
            padded = f"<{word}>"
            for i in range(len(padded) - 2):
                features["c:" + padded[i : i + 3]] += 0.5
        for first, second in itertools.pairwise(words):
            features[f"b:{first} {second}"] += 1
        vector = [0.0] * self.dimension
        for feature, count in features.items():
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            sign = 1.0 if digest[4] & 1 else -1.0
            vector[index] += sign * (1.0 + math.log(count)) if count >= 1 else sign * count
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]


class LiteLLMEmbedder:
    """Provider embeddings (OpenAI, Ollama, in-house servers) for the character's
    ``models.embedding``; litellm is imported on first use."""

    def __init__(self, model: str, api_base: str | None, api_key: str | None) -> None:
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.name = f"litellm:{model}"
        self.dimension = 0  # learnt from the first answer

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import asyncio
        import os

        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        litellm = await asyncio.to_thread(importlib.import_module, "litellm")

        response = await litellm.aembedding(
            model=self.model, input=list(texts), api_base=self.api_base, api_key=self._api_key
        )
        vectors = [item["embedding"] for item in response.data]
        self.dimension = len(vectors[0]) if vectors else self.dimension
        return vectors


def hashing(ctx: PluginContext) -> HashingEmbedder:
    return HashingEmbedder(int(ctx.settings.get("hashing_dimension", 512)))


def litellm_embedder(ctx: PluginContext) -> LiteLLMEmbedder:
    from aigent import AigentError

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
