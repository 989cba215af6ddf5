"""aigent plugin for The Root Network: Merkle receipts for every published message, anchored
on chain while the agent runs; ERC-20 and DEX calls under the spending policy; on-chain data
as context and actions.

Settings (``settings.trn``, see :class:`aigent_trn.config.TrnSettings`): ``network``
(porcini | mainnet | local), ``rpc_url``, ``chain_id``, ``registry``, ``key_env``
(default ``TRN_PRIVATE_KEY``), ``batch_size``, ``batch_seconds``, ``poll_seconds``,
``from_block``, ``log_page``, ``cache_ttl``, ``tokens``, ``watch``, ``dex_router``,
``deadline_blocks``, ``anchor``. Name ``trn`` in the character's ``plugins``: receipts,
actions, context, and the anchoring loop that runs while the agent runs. Heavy imports (web3)
happen inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from .canonical import canonical_bytes, channel_of
from .merkle import leaf_hash

if TYPE_CHECKING:
    from aigent.interfaces import PluginContext

    from .anchoring import AnchorLoop
    from .service import TrnService

hookimpl = pluggy.HookimplMarker("aigent")

_services: dict[str, TrnService] = {}
_loops: dict[str, AnchorLoop] = {}


def service_for(ctx: Any) -> TrnService:
    """One service (connection, signer, store, cache) per agent data directory and settings."""
    import json

    from .service import TrnService

    key = str(ctx.data_dir) + json.dumps(ctx.settings or {}, sort_keys=True, default=str)
    if key not in _services:
        _services[key] = TrnService(ctx)
    return _services[key]


def _store(ctx: Any) -> Any:
    from .service import store_for

    return store_for(ctx.data_dir)


@hookimpl
def after_publish(ctx: Any, message: Any) -> None:
    from .anchoring import track

    data = canonical_bytes(message.agent, message.text, message.created_at, channel_of(message))
    store = _store(ctx)
    store.enqueue(message.id, leaf_hash(data), data)
    settings = ctx.settings or {}
    batch_size = int(settings.get("batch_size", 256)) if isinstance(settings, dict) else 256
    sealed = store.queued() >= batch_size and store.seal(batch_size) is not None
    receipt = store.receipt(message.id)
    message.receipts["trn"] = receipt
    if receipt is not None and "anchor" not in receipt:
        track(str(store.path), message.id, message.receipts)
    loop = _loops.get(str(ctx.data_dir))
    if sealed and loop is not None:
        loop.wake()


@hookimpl
def register_services(register: Callable[..., None], ctx: PluginContext) -> None:
    from .anchoring import AnchorLoop

    service = service_for(ctx)
    if not service.settings.anchor:
        return
    loop = AnchorLoop(service)
    _loops[str(ctx.data_dir)] = loop
    register(loop)


class ChainContext:
    """The agent's TRN balances, watched transfers and anchoring stats, for its context."""

    name = "trn-chain"

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def get(self, message: Any, agent: Any) -> str | None:
        svc = service_for(self.ctx)
        stats = svc.anchoring_stats()
        lines = [
            f"TRN anchoring: {stats['anchored_messages']} messages anchored in "
            f"{stats['anchored_batches']} batches, {stats['queued_messages']} queued, "
            f"{stats['sealed_batches']} sealed batches waiting."
        ]
        try:
            if svc.settings.key_env in self.ctx.secrets:
                balances = await svc.balances()
                held = ", ".join(f"{v} {k}" for k, v in balances.items())
                lines.append(f"Your TRN account {await svc.address()} holds {held}.")
            for token in svc.settings.tokens:
                for who in svc.settings.watch:
                    moves = await svc.recent_transfers(token, who)
                    if moves:
                        last = moves[-5:]
                        lines.append(
                            f"Recent {token} transfers of {who}: "
                            + "; ".join(f"{m['from']}->{m['to']} {m['value']}" for m in last)
                        )
        except Exception as exc:  # context is best effort; the reply must not fail on it
            self.ctx.log.warning("trn: chain data unavailable: %s", exc)
        return "\n".join(lines)


@hookimpl
def register_context_providers(register: Callable[..., None], ctx: PluginContext) -> None:
    register(ChainContext(ctx))


@hookimpl
def register_actions(register: Callable[..., None], ctx: PluginContext) -> None:
    from .actions import actions_for

    for action in actions_for(lambda: service_for(ctx)):
        register(action)


@hookimpl
def register_commands(cli: Any) -> None:
    from .verify_cmd import verify

    cli.command("verify")(verify)
