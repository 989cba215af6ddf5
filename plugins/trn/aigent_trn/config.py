"""``settings.trn`` of a character, checked once with errors that say what to fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .chain import DEFAULT_LOG_PAGE, PRESETS
from .errors import TrnError

DEX_PRECOMPILE = "0x000000000000000000000000000000000000DDDD"


class TrnConfigError(TrnError, ValueError):
    """A ``settings.trn`` value is missing or malformed."""


@dataclass(frozen=True)
class TrnSettings:
    network: str = "porcini"
    rpc_url: str = ""
    chain_id: int = 0
    registry: str = ""
    """Address of the deployed AnchorRegistry; the anchoring loop needs it to start."""
    anchor: bool = True
    """Run the anchoring loop; off, messages still get receipts and wait in the proof store."""
    key_env: str = "TRN_PRIVATE_KEY"
    """Environment variable (or .env / character secret) holding the signing key."""
    batch_size: int = 256
    batch_seconds: float = 60.0
    """Seal a batch when its oldest message has waited this long, even if it is not full."""
    poll_seconds: float = 5.0
    from_block: int = 0
    """Block the registry was deployed in: log searches start there."""
    log_page: int = DEFAULT_LOG_PAGE
    cache_ttl: float = 15.0
    tokens: dict[str, str] = field(default_factory=dict)
    """Known ERC-20s by name, e.g. {"ROOT": "0xCCCCCCCC00000001000000000000000000000000"};
    the name is the asset spending limits are kept under (``spending.ROOT``)."""
    watch: list[str] = field(default_factory=list)
    """Addresses whose recent token transfers the agent sees in its context."""
    dex_router: str = DEX_PRECOMPILE
    deadline_blocks: int = 50
    """Swaps expire this many blocks after they are sent (TRN's DEX deadline is a block)."""

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> TrnSettings:
        raw = dict(raw or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise TrnConfigError(
                f"settings.trn has unknown keys {unknown}; known keys: {sorted(known)}"
            )
        network = str(raw.get("network", "porcini"))
        if network not in PRESETS:
            raise TrnConfigError(
                f"settings.trn.network is {network!r}; use one of {sorted(PRESETS)} "
                "(or set rpc_url and chain_id)"
            )
        preset = PRESETS[network]
        try:
            out = cls(
                network=network,
                rpc_url=str(raw.get("rpc_url") or preset["rpc_url"]),
                chain_id=int(raw.get("chain_id") or preset["chain_id"]),
                registry=str(raw.get("registry", "")),
                anchor=bool(raw.get("anchor", True)),
                key_env=str(raw.get("key_env", "TRN_PRIVATE_KEY")),
                batch_size=int(raw.get("batch_size", 256)),
                batch_seconds=float(raw.get("batch_seconds", 60.0)),
                poll_seconds=float(raw.get("poll_seconds", 5.0)),
                from_block=int(raw.get("from_block", 0)),
                log_page=int(raw.get("log_page", DEFAULT_LOG_PAGE)),
                cache_ttl=float(raw.get("cache_ttl", 15.0)),
                tokens={str(k): str(v) for k, v in dict(raw.get("tokens", {})).items()},
                watch=[str(a) for a in list(raw.get("watch", []))],
                dex_router=str(raw.get("dex_router", DEX_PRECOMPILE)),
                deadline_blocks=int(raw.get("deadline_blocks", 50)),
            )
        except (TypeError, ValueError) as exc:
            raise TrnConfigError(f"settings.trn has a malformed value: {exc}") from exc
        for name, value in (("batch_size", out.batch_size), ("log_page", out.log_page)):
            if value < 1:
                raise TrnConfigError(f"settings.trn.{name} must be at least 1, got {value}")
        if out.batch_seconds <= 0 or out.poll_seconds <= 0:
            raise TrnConfigError("settings.trn.batch_seconds and poll_seconds must be positive")
        return out
