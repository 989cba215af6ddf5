"""Memory off the reply's path, and what every memory store shares.

:class:`WriteBehind` takes each exchange (message and reply) from ``Agent.handle`` without
waiting and writes it to the store in batches from a background task: every
``memory.flush_seconds``, sooner when ``memory.flush_batch`` are waiting, and all of them on a
clean stop. A SIGKILL loses at most what arrived in the last flush interval; a recall made
right after a reply may not see that reply yet (the conversation history in the prompt has
it).

Also here: which store an agent uses (:func:`choose_store`), how recalled items are chosen
within the budget (:func:`within_budget`) and the embedder guard's error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aigent import tracing
from aigent.errors import AigentError

if TYPE_CHECKING:
    from aigent.interfaces import Embedder, Exchange, MemoryStore, PluginContext, Recalled
    from aigent.plugins import Registered

log = logging.getLogger("aigent.memory")
T = TypeVar("T")
CHARS_PER_TOKEN = 4  # a budget estimate; exact token counts would need the model's tokenizer
RETRY_PAUSE = 0.2


class WriteBehind:
    """A per-agent queue of exchanges, flushed to ``store`` by one background task."""

    def __init__(
        self, store: MemoryStore, agent: str, flush_seconds: float = 1.0, flush_batch: int = 64
    ) -> None:
        self.store = store
        self.agent = agent
        self.flush_seconds = flush_seconds
        self.flush_batch = flush_batch
        self.dropped = 0
        """Exchanges given up after a failed flush and its retry (each logged)."""
        self._queue: list[Exchange] = []
        self._waiting = asyncio.Event()  # something is queued
        self._full = asyncio.Event()  # a batch is queued, or stopping: flush now
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def put(self, exchange: Exchange) -> None:
        """Queue one exchange; never waits."""
        self._queue.append(exchange)
        self._waiting.set()
        if len(self._queue) >= self.flush_batch:
            self._full.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"{self.agent}: memory write-behind"
            )

    async def stop(self) -> None:
        """Flush everything queued, then end the task."""
        self._stopping = True
        self._waiting.set()
        self._full.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        await self.flush()  # never started, or queued after the task ended

    async def _run(self) -> None:
        # Not cancelled on stop but told to finish, so that a write under way is never cut.
        while not self._stopping:
            await self._waiting.wait()
            if not self._stopping:
                try:
                    await asyncio.wait_for(self._full.wait(), self.flush_seconds)
                except TimeoutError:
                    pass
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued, in batches of at most ``flush_batch``."""
        while self._queue:
            batch = self._queue[: self.flush_batch]
            del self._queue[: self.flush_batch]
            if not self._queue:
                self._waiting.clear()
            if len(self._queue) < self.flush_batch:
                self._full.clear()
            await self._write(batch)

    async def _write(self, batch: list[Exchange]) -> None:
        # A trace of its own: the write happens after the replies it carries were sent.
        with tracing.span("memory.write", agent=self.agent, exchanges=len(batch)):
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[Exchange]) -> None:
        for attempt in (1, 2):
            try:
                await self.store.remember(batch, self.agent)
                return
            except Exception as exc:
                if attempt == 1:
                    log.warning("%s: memory write failed, retrying once: %s", self.agent, exc)
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                self.dropped += len(batch)
                log.error(
                    "%s: memory write failed again; %d exchanges not remembered "
                    "(%d in all since start): %s",
                    self.agent,
                    len(batch),
                    self.dropped,
                    exc,
                )


def choose_store(stores: Mapping[str, Registered], ctx: PluginContext) -> str | None:
    """The store an agent uses when its character names none: the first, in the plugins'
    precedence order, whose factory accepts the character's settings (a factory without an
    ``accepts(ctx)`` method accepts all); if none accepts, the first."""
    for name, reg in stores.items():
        accepts = getattr(reg.value, "accepts", None)
        if accepts is None or accepts(ctx.for_plugin(reg.plugin)):
            return name
    return next(iter(stores), None)


def within_budget(
    found: Iterable[Recalled], message: str, top_k: int, min_score: float, budget_chars: int
) -> list[Recalled]:
    """The best ``top_k`` items above ``min_score`` that fit the budget, never the message
    itself; an item too long for what is left is passed over, not cut."""
    ranked = sorted(
        (r for r in found if r.score >= min_score and r.text != message),
        key=lambda r: r.score,
        reverse=True,
    )
    chosen: list[Recalled] = []
    used = 0
    for item in ranked[:top_k]:
        if used + len(item.text) > budget_chars:
            continue  # never a whole document in the prompt: chunks within the budget
        chosen.append(item)
        used += len(item.text)
    return chosen


class EmbedderMismatch(AigentError):
    """Memory built with one embedder was opened with another."""

    def __init__(
        self,
        what: str,
        built_with: object,
        built_dim: object,
        embedder: Embedder,
        ctx: PluginContext,
    ) -> None:
        super().__init__(
            f"{what} was built with embedder {built_with!r} ({built_dim} dimensions), but this "
            f"agent embeds with {embedder.name!r} ({embedder.dimension} dimensions); mixing "
            f"them would return nonsense. Either set memory.embedder back to {built_with!r}, "
            f"or rebuild with `aigent memory clear {ctx.character.source or 'CHARACTER'}` "
            "(knowledge is re-ingested; past conversations are lost)"
        )


def embedder_dimension(embedder: Embedder) -> int:
    """The embedder's dimension; provider embedders learn it from a first call."""
    if not embedder.dimension:
        run_sync(embedder.embed(["dimension probe"]))
    return embedder.dimension


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run an embedder from synchronous code (ingestion), inside an event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
