"""The anchoring loop: a service the agent starts, sealing batches by time and anchoring every
sealed batch to the registry, then putting the anchor into the messages' receipts.

Crash safety comes from the store: a message is in the proof store before ``after_publish``
returns, a sealed batch is one transaction, and an anchor tx is recorded (hash and signed bytes)
before it is sent, so a restart (or the server that runs the agent next) finishes what was
started and anchors each batch once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from aigent import redact, tracing

from .errors import TrnError
from .service import TrnService, kept, stored

if TYPE_CHECKING:
    from aigent import PluginContext

    from .store import ProofStore

log = logging.getLogger("aigent.trn")
MAX_TRACKED = 10_000  # without a running loop nothing is anchored: don't hold replies forever


class WaitingReceipts:
    """The receipts dicts of an agent's published messages not anchored yet, updated in place
    once they are, so the Reply/Outgoing a caller holds shows the anchor when it lands."""

    def __init__(self) -> None:
        self._receipts: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._receipts)

    def track(self, message_id: str, receipts: dict[str, Any]) -> None:
        self._receipts[message_id] = receipts
        while len(self._receipts) > MAX_TRACKED:  # dicts keep insertion order: drop the oldest
            self._receipts.pop(next(iter(self._receipts)))

    async def update(self, store: ProofStore) -> None:
        """Give each anchored message its receipt with the anchor, and stop tracking it."""
        waiting = list(self._receipts)

        def anchored() -> dict[str, dict[str, Any]]:
            found = {m: store.receipt(m) for m in waiting}
            return {m: r for m, r in found.items() if r is not None and "anchor" in r}

        for message_id, receipt in (await stored(anchored)).items():
            receipts = self._receipts.pop(message_id, None)  # the loop's dict: changed here
            if receipts is not None:
                receipts["trn"] = receipt


def waiting_receipts(ctx: PluginContext) -> WaitingReceipts:
    return kept(ctx, "waiting", WaitingReceipts)


class AnchorLoop:
    """The ``trn`` service: anchors while the agent runs (the plugin named in ``plugins``)."""

    name = "trn"

    def __init__(self, service: TrnService, waiting: WaitingReceipts | None = None) -> None:
        self.service = service
        self.waiting = waiting if waiting is not None else WaitingReceipts()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.last_error: str | None = None

    async def start(self) -> None:
        s = self.service.settings
        if not s.registry:
            raise TrnError(
                "settings.trn.registry is not set: deploy the AnchorRegistry "
                "(aigent_trn.chain.deploy_registry) and put its address there"
            )
        await self.service.w3()  # checks the chain id before anything is sent
        await self.service.signer()
        await self.anchor_once()  # finish what a previous run left sealed or in flight
        self._task = asyncio.create_task(self._run(), name="trn-anchoring")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True  # Python 3.11's wait_for can swallow a cancel; this cannot
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Anchor now instead of at the next tick (after a batch was sealed by size)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.service.settings.poll_seconds):
                    await self._wake.wait()
            if self._stopping:
                return
            self._wake.clear()
            try:
                await self.anchor_once()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the RPC may be down: try again next tick
                self.last_error = str(exc)
                log.warning("trn: anchoring failed, will retry: %s", exc)

    async def anchor_once(self) -> list[str]:
        """Seal overdue batches, anchor every sealed batch, update receipts; tx hashes."""
        from . import chain

        svc, s = self.service, self.service.settings
        store = svc.store

        def seal_overdue() -> list[int]:
            oldest = store.oldest_queued_at()
            while oldest is not None and time.time() - oldest >= s.batch_seconds:
                store.seal(s.batch_size)
                oldest = store.oldest_queued_at()
            return [b["id"] for b in store.unanchored()]

        pending = await stored(seal_overdue)
        if not pending:
            return []
        signer = await svc.signer()
        # A trace of its own: a batch carries many messages, anchored after their replies.
        with tracing.span("anchoring.batch", batches=len(pending)) as span:
            try:
                done = await svc.run(chain.anchor_pending, signer, store, s.registry, s.from_block)
            finally:  # batches anchored before a later one failed count too
                # receipts first: whoever hears of a batch finds its messages' anchors
                await self.waiting.update(store)
                await self._tell(pending)
            if span is not None:
                span.set_attribute("aigent.anchored", len(done))
        if done:
            log.info("trn: anchored %d batch(es): %s", len(done), ", ".join(done))
        return done

    async def _tell(self, batch_ids: list[int]) -> None:
        store = self.service.store
        for batch in reversed(await stored(store.batches, len(batch_ids), batch_ids)):
            if batch["status"] == "anchored":
                self.service.ctx.emit(
                    "anchor.batch", batch=batch["id"], root=batch["root"],
                    tx_hash=batch["tx_hash"], block_number=batch["block_number"],
                    count=batch["count"], chain_id=batch["chain_id"], contract=batch["contract"],
                )  # fmt: skip

    def anchoring(self, recent: int = 20) -> dict[str, Any]:
        """How anchoring stands (``aigent.ReportsAnchoring``): the counts, the latest batches,
        the last error and whether the loop runs."""
        return {
            **self.service.anchoring_stats(),
            "chain_id": self.service.settings.chain_id,
            "running": self._task is not None and not self._task.done(),
            "last_error": redact(self.last_error) if self.last_error else None,
            "batches": self.service.store.batches(recent),
        }
