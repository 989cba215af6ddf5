"""One hop over BTP on loopback: sender -> connector -> receiver, ours against the reference.

The connector under test is the reference ``ilp-connector`` 23.0.2 (with ``ilp-plugin-btp``
1.5.0, installed from tests/fixtures/connector_js's lock file) or ours (aigent_connector with its
durable SQLite WAL ledger, synchronous=NORMAL). Sender and receiver are BTP children of the
connector, in one Python process (loadgen.py) for both runs, so both connectors see the same
frames over the same topology. Each level (1, 10, 100 packets in flight) runs a warm-up, then a
measured window; a packet's latency runs from handing its frame to the socket to reading its
Fulfill.

Fairness on a 2-core machine: the connector under test is pinned to one core and the load
generator to the other, so neither steals the other's CPU; each connector is one process with
one event loop (Node's is single-threaded too; ours runs on uvloop when it is installed). The
reference connector runs with its default middlewares except the rate limiter (10,000 packets
a minute per account by default, which would cap it far below what it can do), with balance
limits set as ours are, and keeps balances in memory, its only built-in store; ours writes every
Fulfill's commit to SQLite before passing the Fulfill back. The connectors take turns, several
rounds, and the medians are shown: other load on the machine drifts. ``cpu us`` is the CPU
time the connector process spent per packet, the figure least moved by that load.

``--floor`` also measures relay.py, a hub with no ILP in it that only copies frames between the
two sockets: the most any connector could do on this machine and topology.

Run: uv run --all-packages python benchmarks/connector/run.py [--rounds N] [--seconds S]
     [--only ours|reference] [--floor] [--no-uvloop] [--hub-path DIR] [--profile FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JS = ROOT / "tests" / "fixtures" / "connector_js"
ADDRESS = "test.bench"
SECRETS = {"sender": "sender-secret", "receiver": "receiver-secret"}
IN_FLIGHT = [1, 10, 100]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(core: int) -> None:
    """Keep the child (and every thread it starts) on one core, when there are two."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core})


def wait_for(log: Path, proc: subprocess.Popen, word: str, within: float = 60) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = log.read_text()
        if word in text:
            return text
        if proc.poll() is not None:
            raise RuntimeError(f"the connector exited early:\n{text[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"the connector never printed {word}:\n{log.read_text()[-3000:]}")


def start_reference(tmp: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, dict[str, str]]:
    if shutil.which("node") is None:
        raise RuntimeError("the reference connector needs Node.js (node) on PATH")
    if not (JS / "node_modules" / "ilp-connector").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True,
                       timeout=600, capture_output=True)  # fmt: skip
    ports = {name: free_port() for name in SECRETS}
    accounts = {
        name: {"relation": "child", "assetCode": "XRP", "assetScale": 6,
               "plugin": "ilp-plugin-btp",
               "balance": {"minimum": str(-(10**15)), "maximum": str(10**15)},
               "options": {"listener": {"port": ports[name], "secret": secret}}}
        for name, secret in SECRETS.items()
    }  # fmt: skip
    config = {"ilpAddress": ADDRESS, "backend": "one-to-one", "spread": 0,
              "accounts": accounts, "disableMiddleware": ["rateLimit"]}  # fmt: skip
    log = tmp / "reference.log"
    proc = subprocess.Popen(["node", str(JS / "launch.js"), json.dumps(config)], cwd=JS,
                            stdout=log.open("w"), stderr=subprocess.STDOUT,
                            preexec_fn=lambda: pin(1))  # fmt: skip
    try:
        # READY comes only once every plugin is connected, i.e. after our clients join.
        urls = {name: f"ws://127.0.0.1:{port}" for name, port in ports.items()}
        for port in ports.values():
            wait_port(port, proc)
        return proc, urls
    except Exception:
        proc.kill()
        raise


def wait_port(port: int, proc: subprocess.Popen, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the connector exited before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def start_ours(tmp: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, dict[str, str]]:
    config = {"address": ADDRESS, "ledger": str(tmp / "ledger.sqlite"), "port": 0,
              "children": SECRETS, "uvloop": not args.no_uvloop,
              "profile": str(args.profile.resolve()) if args.profile else None}  # fmt: skip
    log = tmp / "ours.log"
    env = dict(os.environ)
    if args.hub_path:  # another copy of aigent_connector, the last commit's say
        env["PYTHONPATH"] = os.pathsep.join(
            [str(args.hub_path.resolve()), env.get("PYTHONPATH", "")]
        )
    proc = subprocess.Popen([sys.executable, str(HERE / "hub.py"), json.dumps(config)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            preexec_fn=lambda: pin(1))  # fmt: skip
    text = wait_for(log, proc, "READY")
    port = int(text.split("READY", 1)[1].split()[0])
    return proc, {name: f"ws://127.0.0.1:{port}" for name in SECRETS}


def start_relay(tmp: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, dict[str, str]]:
    config = {"port": 0, "children": SECRETS}
    log = tmp / "relay.log"
    proc = subprocess.Popen([sys.executable, str(HERE / "relay.py"), json.dumps(config)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT,
                            preexec_fn=lambda: pin(1))  # fmt: skip
    text = wait_for(log, proc, "READY")
    port = int(text.split("READY", 1)[1].split()[0])
    return proc, {name: f"ws://127.0.0.1:{port}" for name in SECRETS}


def drive(urls: dict[str, str], pid: int, seconds: float, warmup: float) -> list[dict]:
    config = {"url": urls, "secrets": SECRETS, "destination": f"{ADDRESS}.receiver.bench",
              "in_flight": IN_FLIGHT, "seconds": seconds, "warmup": warmup,
              "pid": pid}  # fmt: skip
    done = subprocess.run([sys.executable, str(HERE / "loadgen.py"), json.dumps(config)],
                          capture_output=True, text=True, preexec_fn=lambda: pin(0),
                          timeout=120 + 3 * (seconds + warmup) * len(IN_FLIGHT))  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, tmp: Path, args: argparse.Namespace) -> list[dict]:
    starter = {"reference": start_reference, "ours": start_ours, "relay": start_relay}[name]
    proc, urls = starter(tmp, args)
    try:
        rows = drive(urls, proc.pid, args.seconds, args.warmup)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    log = tmp / "ours.log"
    if log.exists() and "ledger transactions:" in log.read_text():
        writes = log.read_text().split("ledger transactions:")[1].split()[0]
        packets = sum(row["sent"] for row in rows)
        print(f"  (ours: {packets} packets, {writes} ledger transactions)", file=sys.stderr)
    return rows


def median(values: list[float]) -> float:
    return statistics.median(values)


def summary(rounds: list[list[dict]]) -> list[dict]:
    """Per level, the median of each figure over the rounds."""
    rows = []
    for level in zip(*rounds, strict=True):
        rows.append({
            "in_flight": level[0]["in_flight"],
            "pps": median([r["pps"] for r in level]),
            "p50_ms": median([r["p50_ms"] for r in level]),
            "p99_ms": median([r["p99_ms"] for r in level]),
            "cpu_us": median([r["cpu_us"] for r in level]),
            "rejects": sum(sum(r["rejects"].values()) for r in level),
        })  # fmt: skip
    return rows


def show(results: dict[str, list[dict]], rounds: int) -> None:
    print(f"median of {rounds} round(s); cpu = the connector process's CPU time per packet")
    print(f"{'connector':<10} {'in flight':>9} {'packets/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'cpu us':>7} {'rejects':>8}")  # fmt: skip
    for name, rows in results.items():
        for row in rows:
            print(f"{name:<10} {row['in_flight']:>9} {row['pps']:>10.0f} {row['p50_ms']:>8.2f} "
                  f"{row['p99_ms']:>8.2f} {row['cpu_us']:>7.0f} {row['rejects']:>8}")  # fmt: skip
    if "relay" in results and "reference" in results:
        print("\nthe relay (no ILP: the machine's floor) / reference: throughput")
        for relay, ref in zip(results["relay"], results["reference"], strict=True):
            print(f"  {relay['in_flight']:>3} in flight: throughput "
                  f"x{relay['pps'] / ref['pps']:.2f}")  # fmt: skip
    if "ours" not in results or "reference" not in results:
        return
    print("\nours / reference: throughput and packets per CPU-second (higher is better), "
          "p50 and p99 (lower is better)")  # fmt: skip
    for ours, ref in zip(results["ours"], results["reference"], strict=True):
        print(f"  {ours['in_flight']:>3} in flight: throughput x{ours['pps'] / ref['pps']:.2f}, "
              f"per CPU-second x{ref['cpu_us'] / ours['cpu_us']:.2f}, "
              f"p50 x{ours['p50_ms'] / ref['p50_ms']:.2f}, "
              f"p99 x{ours['p99_ms'] / ref['p99_ms']:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per level")
    parser.add_argument("--rounds", type=int, default=3, help="each connector this many times")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured, per level")
    parser.add_argument("--no-uvloop", action="store_true", help="our hub on plain asyncio")
    parser.add_argument("--only", choices=["ours", "reference"])
    parser.add_argument("--profile", type=Path, help="cProfile our hub (plain asyncio) to here")
    parser.add_argument("--hub-path", type=Path,
                        help="a directory holding another aigent_connector for our hub to run, "
                        "to compare before and after a change")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print raw results as JSON too")
    parser.add_argument("--floor", action="store_true",
                        help="also measure relay.py, a hub that only copies frames (no ILP): "
                        "the most any connector could do on this machine")  # fmt: skip
    args = parser.parse_args()
    names = [n for n in ("reference", "ours") if args.only in (None, n)]
    if args.floor:
        names.append("relay")
    raw: dict[str, list[list[dict]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="aigent-bench-") as tmp:
        for round_ in range(args.rounds):
            # Alternate who goes first: load from elsewhere on the machine drifts.
            for name in names if round_ % 2 == 0 else names[::-1]:
                where = Path(tmp) / f"{name}-{round_}"
                where.mkdir()
                raw[name].append(measure(name, where, args))
    results = {name: summary(raw[name]) for name in names}
    show(results, args.rounds)
    if args.json:
        print(json.dumps({"summary": results, "rounds": raw}))


if __name__ == "__main__":
    main()
