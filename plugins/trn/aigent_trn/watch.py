"""What the agent watches on TRN, for the core's watch service: the transfers of the watched
addresses (``settings.trn.watch``) in each configured token, once each by transaction and log
index, and their token balances, recorded when they move (last values in the agent's ``watch``
store, :class:`aigent.watch.LastSeen`; ``trn-watched.json`` before, imported once)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from aigent import Observation
from aigent.storage import Storage
from aigent.watch import LastSeen

from .service import TrnService, from_units


class TrnWatcher:
    """A transfer is stored at its block's timestamp, a balance move when it is first seen."""

    name = "trn"
    _block_times: dict[int, int] | None = None  # blocks do not change: each is asked once

    def __init__(self, service: TrnService, memo: Path, storage: Storage | None = None) -> None:
        self.service = service
        self.seen = LastSeen(self.name, memo, storage)

    async def poll(self, since: float | None) -> list[Observation]:
        await self.seen.load()
        now, found = time.time(), list[Observation | None]()
        for token in self.service.settings.tokens:
            decimals = int((await self.service.token_info(token))["decimals"])
            for who in self.service.settings.watch:
                for move in await self.service.recent_transfers(token, who):
                    value = from_units(int(move["value"]), decimals)
                    signed = (
                        -Decimal(value) if move["from"].lower() == who.lower() else Decimal(value)
                    )
                    found.append(
                        Observation(
                            self.name,
                            f"transfer:{move['tx_hash']}:{move['log_index']}",
                            await self._block_time(int(move["block"])),
                            f"{value} {token} from {move['from']} to {move['to']} "
                            f"(block {move['block']})",
                            {
                                "kind": "transfer",
                                "token": token,
                                "watched": who,
                                "change": float(signed),
                                **move,
                                "value": value,
                            },
                        )
                    )
                held = from_units(await self.service.token_balance(token, who), decimals)
                found.append(
                    self.seen.observe(
                        f"balance:{who}:{token}",
                        Decimal(held),
                        now,
                        f"{who} holds {held} {token}",
                        "balance",
                    )
                )
        await self.seen.save()
        return [o for o in found if o is not None]

    async def _block_time(self, block: int) -> int:
        if self._block_times is None or len(self._block_times) >= 4096:
            self._block_times = {}
        if block not in self._block_times:
            self._block_times[block] = await self.service.block_time(block)
        return self._block_times[block]
