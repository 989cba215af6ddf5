"""The anchoring loop: a service the agent starts, sealing batches by time and anchoring every
sealed batch to the registry, then putting the anchor into the messages' receipts.

Crash safety comes from the store: a message is in SQLite before ``after_publish`` returns, a
sealed batch is one transaction, and an anchor tx is recorded (hash and signed bytes) before it
is sent, so a restart finishes what was started and anchors each batch once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from .service import TrnError, TrnService

log = logging.getLogger("aigent.trn")

# receipts dicts of published messages not anchored yet, per store: updated in place, so the
# Reply/Outgoing a caller holds shows the anchor once it lands
_pending: dict[str, dict[str, dict[str, Any]]] = {}
MAX_TRACKED = 10_000  # without a running loop nothing is anchored: don't hold replies forever


def track(store_path: str, message_id: str, receipts: dict[str, Any]) -> None:
    tracked = _pending.setdefault(store_path, {})
    tracked[message_id] = receipts
    while len(tracked) > MAX_TRACKED:  # dicts keep insertion order: drop the oldest
        tracked.pop(next(iter(tracked)))


class AnchorLoop:
    """The ``trn`` service: anchors while the agent runs (the plugin named in ``plugins``)."""

    name = "trn"

    def __init__(self, service: TrnService) -> None:
        self.service = service
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
        oldest = store.oldest_queued_at()
        while oldest is not None and time.time() - oldest >= s.batch_seconds:
            store.seal(s.batch_size)
            oldest = store.oldest_queued_at()
        if not store.unanchored():
            return []
        signer = await svc.signer()
        done = await svc.run(chain.anchor_pending, signer, store, s.registry, s.from_block)
        if done:
            log.info("trn: anchored %d batch(es): %s", len(done), ", ".join(done))
        pending = _pending.get(str(store.path), {})
        for message_id in list(pending):
            receipt = store.receipt(message_id)
            if receipt is not None and "anchor" in receipt:
                pending.pop(message_id)["trn"] = receipt
        return done
