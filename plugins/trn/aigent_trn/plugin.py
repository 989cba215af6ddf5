"""Hooks: a Merkle receipt for every published message, the anchoring loop, TRN balances and
transfers as context, token and DEX actions, and ``aigent verify``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aigent import hookimpl, tracing

from .canonical import canonical_bytes, channel_of
from .merkle import leaf_hash

if TYPE_CHECKING:
    from aigent import Outgoing, PluginContext

    from .service import TrnService


def service_for(ctx: PluginContext) -> TrnService:
    # imported here: the service pulls in the spending policy, too much for plugin discovery
    from .service import service_for

    return service_for(ctx)


@hookimpl
async def after_publish(ctx: PluginContext, message: Outgoing) -> None:
    from .anchoring import waiting_receipts
    from .service import proof_store, stored

    data = canonical_bytes(message.agent, message.text, message.created_at, channel_of(message))
    store = proof_store(ctx)
    settings = ctx.settings or {}
    batch_size = int(settings.get("batch_size", 256)) if isinstance(settings, dict) else 256

    def queue() -> tuple[bool, dict[str, Any] | None]:
        store.enqueue(message.id, leaf_hash(data), data)
        sealed = store.queued() >= batch_size and store.seal(batch_size) is not None
        return sealed, store.receipt(message.id)

    # Tracked before the store call: an anchor that lands while it runs still reaches it.
    waiting_receipts(ctx).track(message.id, message.receipts)
    with tracing.span("anchoring", queued=True, message_id=message.id):
        sealed, receipt = await stored(queue)  # in the store before the hook returns
    message.receipts.setdefault("trn", receipt)  # unless the anchored one is there already
    loop = ctx.state.get("loop")
    if sealed and loop is not None:
        loop.wake()


@hookimpl
def register_services(register: Callable[..., None], ctx: PluginContext) -> None:
    from .anchoring import AnchorLoop, waiting_receipts

    service = service_for(ctx)
    if not service.settings.anchor:
        return
    loop = ctx.state["loop"] = AnchorLoop(service, waiting_receipts(ctx))
    register(loop)


class ChainContext:
    """The agent's TRN balances, watched transfers and anchoring stats, for its context."""

    name = "trn-chain"

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def get(self, message: Any, agent: Any) -> str | None:
        from .service import stored

        svc = service_for(self.ctx)
        stats = await stored(svc.anchoring_stats)
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
def register_watchers(register: Callable[..., None], ctx: PluginContext) -> None:
    from .watch import TrnWatcher

    service = service_for(ctx)
    if service.settings.watch and service.settings.tokens:  # what to watch, in which tokens
        register(TrnWatcher(service, ctx.data_dir / "trn-watched.json", ctx.storage))


@hookimpl
def register_commands(cli: Any) -> None:
    from .verify_cmd import verify

    cli.command("verify")(verify)
