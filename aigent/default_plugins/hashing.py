"""The ``hashing`` embedder: works anywhere, with no network, no download and no dependency.

It is lexical, not semantic: it matches shared words and word pieces, not synonyms (README.md
states its measured retrieval quality). It is the default embedder (``tryfirst``) unless the
character's ``memory.embedder`` names another, e.g. ``litellm`` for provider embeddings.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aigent.hookspecs import hookimpl

if TYPE_CHECKING:
    from aigent.interfaces import PluginContext

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    "a an and are as at be by for from has have i in is it its of on or that the this to was "
    "were what when where which who why will with you your my me do does did how".split()
)
INLINE = 4  # up to this many texts are embedded on the event loop (about 0.1 ms each)


class HashingEmbedder:
    """Feature hashing of words, word pairs and character trigrams, signed, tf-weighted and
    L2-normalised. Deterministic across processes (blake2b, not Python's salted ``hash``)."""

    def __init__(self, dimension: int = 512) -> None:
        self.dimension = dimension
        self.name = f"hashing-{dimension}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if len(texts) <= INLINE:
            return [self.embed_one(text) for text in texts]
        return await asyncio.to_thread(lambda: [self.embed_one(text) for text in texts])

    def embed_one(self, text: str) -> list[float]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
        features: defaultdict[str, float] = defaultdict(float)
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


def hashing(ctx: PluginContext) -> HashingEmbedder:
    return HashingEmbedder(int(ctx.settings.get("dimension", 512)))


@hookimpl(tryfirst=True)
def register_embedders(register: Callable[[str, Callable[[PluginContext], object]], None]) -> None:
    register("hashing", hashing)
