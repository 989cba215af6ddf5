"""Our connector as the benchmark's hub: one process, BTP server with two child accounts.

Run by run.py: ``python hub.py CONFIG_JSON``; prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path


async def main(config: dict) -> None:
    from aigent_connector.connector import Connector, Peer
    from aigent_connector.ledger import SqliteLedger

    ledger = SqliteLedger(Path(config["ledger"]))
    hub = Connector(config["address"], ledger)
    tokens: dict[str, str] = {}
    for account, secret in config["children"].items():
        hub.add_peer(Peer(account, "child"))
        # Both connectors check credit limits on every packet; these never bind.
        ledger.configure(account, min_balance=-(10**15), max_balance=10**15)
        tokens[account] = secret
    port = await hub.listen(tokens, port=config["port"])
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(f"ledger transactions: {getattr(ledger, 'writes', '?')}", flush=True)
    await hub.stop()
    ledger.close()


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    if settings.get("profile"):
        # Profiles the whole run; run.py --profile prints the top of it.
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(main(settings))
        finally:
            profiler.disable()
            profiler.dump_stats(settings["profile"])
    else:
        try:
            import uvloop  # optional: the same code, a faster event loop
        except ImportError:
            uvloop = None
        if settings.get("uvloop") and uvloop is not None:
            uvloop.run(main(settings))
        else:
            asyncio.run(main(settings))
