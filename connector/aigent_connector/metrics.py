"""Plain counters for the connector, rendered in the Prometheus text format (0.0.4).

Recording is a dict increment, cheap enough for every packet; no client library needed.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

from aigent_connector.ledger import Account

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


class Metrics:
    def __init__(self) -> None:
        # (account, direction, result, code) -> count; direction is incoming or outgoing.
        self.packets: defaultdict[tuple[str, str, str, str], int] = defaultdict(int)
        self.amounts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.settlements: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.in_flight = 0
        self._bucket_counts = [0] * (len(BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0

    def packet(
        self, account: str, direction: str, code: str | None, amount: int, seconds: float | None
    ) -> None:
        """One answered packet: ``code`` None for a Fulfill, else the Reject's code."""
        result = "fulfilled" if code is None else "rejected"
        self.packets[(account, direction, result, code or "")] += 1
        if code is None:
            self.amounts[(account, direction)] += amount
        if seconds is not None:
            self._bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def settlement(self, account: str, ok: bool) -> None:
        self.settlements[(account, "ok" if ok else "failed")] += 1

    def render(self, accounts: Iterable[Account] = ()) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        family("ilp_connector_packets_total", "counter", "ILP packets answered, by outcome")
        names = ("account", "direction", "result", "code")
        for key, count in sorted(self.packets.items()):
            out.append(f"ilp_connector_packets_total{_labels(names, key)} {count}")
        family("ilp_connector_amount_total", "counter", "Amount of fulfilled packets")
        for akey, total in sorted(self.amounts.items()):
            labels = _labels(("account", "direction"), akey)
            out.append(f"ilp_connector_amount_total{labels} {total}")
        family("ilp_connector_packets_in_flight", "gauge", "Prepares awaiting an answer")
        out.append(f"ilp_connector_packets_in_flight {self.in_flight}")
        name = "ilp_connector_packet_duration_seconds"
        family(name, "histogram", "Time to answer an incoming Prepare")
        cumulative = 0
        for bound, count in zip((*BUCKETS, None), self._bucket_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound is None else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
        out.append(f"{name}_sum {self._latency_sum}")
        out.append(f"{name}_count {self._latency_count}")
        family("ilp_connector_settlements_total", "counter", "Settlement attempts by result")
        for skey, count in sorted(self.settlements.items()):
            labels = _labels(("account", "result"), skey)
            out.append(f"ilp_connector_settlements_total{labels} {count}")
        family("ilp_connector_balance", "gauge", "Ledger balance per account (peer owes us > 0)")
        rows = sorted(accounts, key=lambda a: a.id)
        for account in rows:
            out.append(f"ilp_connector_balance{_labels(('account',), (account.id,))} "
                       f"{account.balance}")  # fmt: skip
        family("ilp_connector_reserved", "gauge", "Amount held by Prepares in flight")
        for account in rows:
            for direction, value in (("incoming", account.reserved_in),
                                     ("outgoing", account.reserved_out)):  # fmt: skip
                labels = _labels(("account", "direction"), (account.id, direction))
                out.append(f"ilp_connector_reserved{labels} {value}")
        return "\n".join(out) + "\n"
