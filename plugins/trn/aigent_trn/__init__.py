"""aigent plugin for The Root Network: every published message gets a Merkle receipt.

Settings (``settings.trn``): ``batch_size`` (default 256). The chain anchoring step
(registry contract via web3.py) is not yet implemented; batches stay 'sealed' until then.
"""

from __future__ import annotations

from typing import Any

import pluggy

from .canonical import canonical_bytes, channel_of
from .merkle import leaf_hash

hookimpl = pluggy.HookimplMarker("aigent")

_stores: dict[str, Any] = {}


def _store(ctx: Any) -> Any:
    from pathlib import Path

    from .store import ProofStore

    path = Path(ctx.data_dir) / "trn_proofs.sqlite"
    key = str(path)
    if key not in _stores:
        _stores[key] = ProofStore(path)
    return _stores[key]


@hookimpl
def after_publish(ctx: Any, message: Any) -> None:
    data = canonical_bytes(message.agent, message.text, message.created_at, channel_of(message))
    store = _store(ctx)
    store.enqueue(message.id, leaf_hash(data), data)
    settings = ctx.settings or {}
    batch_size = int(settings.get("batch_size", 256)) if isinstance(settings, dict) else 256
    if store.queued() >= batch_size:
        store.seal(batch_size)
    message.receipts["trn"] = store.receipt(message.id)


@hookimpl
def register_commands(cli: Any) -> None:
    from .verify_cmd import verify

    cli.command("verify")(verify)
