"""The message path end to end, aigent beside elizaOS's Python runtime, in the same run.

Each side is its own process, a driver under ``benchmarks/peers/`` that starts the agent through
its framework's public API and times every call, call -> answer, in-process (so start-up and RSS
are that process's own). Both talk to one model server on loopback: the tests' OpenAI
wire-format stand-in, answering at once (``peers/model_server.py``), in this parent process.

- aigent: the default configuration, memory on (default store and embedder), connector on, the
  model ``openai/stand-in`` at the stand-in (``peers/aigent_driver.py``).
- elizaOS 2.0.0a5 (Python): its quick-start character with ``elizaos-plugin-openai`` pointed at
  the stand-in (``OPENAI_BASE_URL``) and ``elizaos-plugin-inmemorydb``, in a venv of its own built
  from ``peers/elizaos/requirements.lock`` on first run. Two processes: state cached (its
  default: one composed state per room, reused) and state rebuilt (dropped before each message).
- the baseline, one per side: the body that side sent to the model, replayed with a bare httpx
  POST from a process of the same kind, in that side's environment (``peers/bare_driver.py``).

What the figures include and leave out:
- chat p50/p95: the whole call, message in -> reply out, model round trip included.
- overhead: chat percentile minus the baseline's same percentile; work a framework defers past
  the reply is not in it (it shows in messages/s and RSS). A framework that makes more than one
  model call per message pays for the extra ones here; ``model calls/message`` says how many.
- messages/s: messages / wall time of the batch, 1 in flight (one user and room) and 10 in
  flight (ten users, each in their own room). The baseline's rows are the ceiling that this
  model server and machine allow.
- ready: from the parent's spawn (fork and exec, interpreter, imports, building and starting the
  agent) to the agent ready to take a message. first reply: to the end of the first message
  (cold: lazy imports and first connections included).
- RSS: VmRSS of the driver process at ready and right after its 1,000th message (warm-up and
  measured messages count; the rest are sent 10 in flight). The model server is not in it.

- with ``--traces``, a further column: aigent exporting every message's trace over OTLP to a
  collector stand-in in this parent process (it reads and drops the requests), and a line on
  what traces cost when off (no endpoint set, the default): the spans a message opens, timed.

Run: uv run --all-packages python benchmarks/overhead.py [--messages 300] [--rounds 1]
     [--only aigent|elizaos] [--traces] [--json]
(``--rss-after M`` moves the RSS reading to the M-th message: for the suite's smoke run only.)
A benchmark, not a test: targets are printed as PASS/MISS, never enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
sys.path.insert(0, str(HERE))

from peers.elizaos import environment as elizaos_environment  # noqa: E402
from peers.model_server import ModelServer  # noqa: E402

WARMUP = 20
STEP_TIMEOUT = 600.0
MIB = 1024

# figure -> (target, higher is better); aigent only, as the issue sets them.
TARGETS: dict[str, tuple[float, bool]] = {
    "overhead p50 (ms)": (2.0, False),
    "overhead p95 (ms)": (5.0, False),
    "messages/s, 1 in flight": (300.0, True),
    "ready (ms)": (400.0, False),
    "first reply (ms)": (500.0, False),
    "RSS at ready (MiB)": (60.0, False),
    "RSS after N (MiB)": (70.0, False),
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class DriverFailed(RuntimeError):
    pass


class Process:
    """One driver process and its JSON-lines channel."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name.replace(' ', '-')}.log"
        self._log = self.log_path.open("wb")
        self._buffer = b""
        spawned_at = time.time()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=logs,  # no .env or character files of the caller's are picked up
            env={**env, "BENCH_SPAWNED_AT": repr(spawned_at)},
        )

    def read(self, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.fail(f"no answer within {timeout:.0f} s")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.fail(f"exited with code {self.proc.wait()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return dict(json.loads(line))

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()
        return self.read()

    def fail(self, why: str) -> NoReturn:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise DriverFailed(f"{self.name} driver {why}; the end of its log:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Side:
    """One column: a framework's driver, and the baseline replaying its request body."""

    name: str
    python: str
    args: list[str]
    env: dict[str, str]
    driver: Process | None = None
    baseline: Process | None = None
    body_bytes: int = 0
    ready_ms: float = 0.0
    first_reply_ms: float = 0.0
    rss_ready_kib: int = 0
    rss_after_kib: int = 0
    baseline_rss_kib: int = 0
    setup: dict[str, str] = field(default_factory=dict)
    single: list[float] = field(default_factory=list)
    bare_single: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    rates10: list[float] = field(default_factory=list)
    bare_rates: list[float] = field(default_factory=list)
    bare_rates10: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    embeddings: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)

    def start(self, server: ModelServer, logs: Path) -> None:
        """Spawn the driver alone (start-up is timed), warm it up, then start its baseline
        with the body it sent last: a warm conversation's prompt, history included."""
        self.driver = Process(self.name, [self.python, *self.args], self.env, logs)
        ready = self.driver.read()
        first = self.driver.read()
        self.ready_ms, self.rss_ready_kib = ready["ms"], ready["rss_kib"]
        self.setup = dict(ready["setup"])
        self.first_reply_ms = first["ms"]
        self.driver.ask(cmd="chat", n=WARMUP, in_flight=1)
        body = next(r.body for r in reversed(server.requests) if r.path.endswith("completions"))
        self.driver.ask(cmd="chat", n=WARMUP, in_flight=10)  # opens its pool's connections
        body_file = logs / f"{self.name.replace(' ', '-')}.body.json"
        body_file.write_text(json.dumps(body))
        self.body_bytes = len(json.dumps(body).encode())
        bare = PEERS / "bare_driver.py"
        self.baseline = Process(
            f"{self.name} baseline",
            [self.python, str(bare), "--url", server.url, "--body", str(body_file)],
            self.env,
            logs,
        )
        bare_ready = self.baseline.read()
        self.baseline_rss_kib = bare_ready["rss_kib"]
        self.setup["baseline"] = bare_ready["setup"]["client"]
        self.baseline.read()
        self.baseline.ask(cmd="chat", n=WARMUP, in_flight=1)
        self.baseline.ask(cmd="chat", n=WARMUP, in_flight=10)

    def round(self, server: ModelServer, n: int) -> None:
        assert self.driver is not None and self.baseline is not None
        before = server.counts()
        one = self.driver.ask(cmd="chat", n=n, in_flight=1)
        after = server.counts()
        self.calls.append((after.get("completions", 0) - before.get("completions", 0)) / n)
        self.embeddings.append((after.get("embeddings", 0) - before.get("embeddings", 0)) / n)
        self.single += one["latencies_ms"]
        for stage, values in one["stages_ms"].items():
            self.stages.setdefault(stage, []).extend(values)
        self.rates.append(n / one["seconds"])
        bare = self.baseline.ask(cmd="chat", n=n, in_flight=1)
        self.bare_single += bare["latencies_ms"]
        self.bare_rates.append(n / bare["seconds"])
        self.rates10.append(n / self.driver.ask(cmd="chat", n=n, in_flight=10)["seconds"])
        self.bare_rates10.append(n / self.baseline.ask(cmd="chat", n=n, in_flight=10)["seconds"])

    def fill(self, rss_after: int) -> None:
        assert self.driver is not None
        status = self.driver.ask(cmd="status")
        if status["served"] < rss_after:
            self.driver.ask(cmd="chat", n=rss_after - status["served"], in_flight=10)
            status = self.driver.ask(cmd="status")
        self.rss_after_kib = status["rss_after_kib"]

    def stop(self) -> None:
        for process in (self.driver, self.baseline):
            if process is not None:
                process.stop()

    def figures(self) -> dict[str, float]:
        chat50, chat95 = pct(self.single, 50), pct(self.single, 95)
        bare50, bare95 = pct(self.bare_single, 50), pct(self.bare_single, 95)
        return {
            "chat p50 (ms)": chat50,
            "chat p95 (ms)": chat95,
            "bare POST p50 (ms)": bare50,
            "bare POST p95 (ms)": bare95,
            "overhead p50 (ms)": chat50 - bare50,
            "overhead p95 (ms)": chat95 - bare95,
            "messages/s, 1 in flight": statistics.median(self.rates),
            "messages/s, 10 in flight": statistics.median(self.rates10),
            "bare POSTs/s, 1 in flight": statistics.median(self.bare_rates),
            "bare POSTs/s, 10 in flight": statistics.median(self.bare_rates10),
            "model calls/message": statistics.mean(self.calls),
            "embedding calls/message": statistics.mean(self.embeddings),
            "request body (bytes)": float(self.body_bytes),
            "ready (ms)": self.ready_ms,
            "first reply (ms)": self.first_reply_ms,
            "RSS at ready (MiB)": self.rss_ready_kib / MIB,
            "RSS after N (MiB)": self.rss_after_kib / MIB,
            "RSS of the baseline process (MiB)": self.baseline_rss_kib / MIB,
        }


def compile_bytecode(python: str) -> None:
    """Bytecode for aigent's venv and workspace, as elizaOS's venv is built with it (and as a
    pip install writes it): start-up then measures starting, not compiling. uv does not
    compile by default, and PYTHONDONTWRITEBYTECODE may be set."""
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    folders = [site, *(str(HERE.parent / d) for d in ("aigent", "connector", "plugins"))]
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", *folders], check=False,
                   capture_output=True)  # fmt: skip


class TraceSink:
    """An OTLP/HTTP collector stand-in: takes ``POST /v1/traces`` and answers 200, counting
    bytes; the spans are not decoded (that would be the collector's cost, not the agent's)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.bytes = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.bytes += len(self.rfile.read(int(self.headers.get("content-length", 0))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def traces_off_cost() -> str:
    """What a message pays for traces when they are off: the spans it opens (a message with
    no action: message, context, model, memory, publish), each a call that hands back one
    shared do-nothing object, timed in this process."""
    import timeit

    from aigent import tracing

    assert not tracing.enabled()

    def message() -> None:
        for name in ("aigent.message", "context", "model", "memory", "publish"):
            with tracing.span(name, agent="a", length=5):
                pass

    n = 100_000
    seconds = min(timeit.repeat(message, number=n, repeat=5))
    return f"{seconds / n * 1e6:.2f} µs a message (5 spans, timed off the message path)"


def sides(
    only: str | None, url: str, data_dir: Path, rss_after: int, traces: str | None = None
) -> list[Side]:
    env = {**os.environ, "BENCH_RSS_AFTER": str(rss_after)}
    for name in [n for n in env if n.startswith("OTEL_")]:
        del env[name]  # the columns say whether traces are on, not the caller's shell
    out: list[Side] = []
    if only in (None, "aigent"):
        compile_bytecode(sys.executable)
        driver = [str(PEERS / "aigent_driver.py"), "--url", url, "--data-dir", str(data_dir)]
        out.append(Side("aigent", sys.executable, driver, env))
        if traces is not None:
            traced = [*driver[:-1], str(data_dir.with_name("aigent-traced-data"))]
            otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": traces, "OTEL_SERVICE_NAME": "aigent-bench"}
            out.append(Side("aigent traced", sys.executable, traced, {**env, **otel}))
    if only in (None, "elizaos"):
        python = str(elizaos_environment.python(create=True))
        eliza_env = {**env, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-bench",
                     "LOG_LEVEL": "error"}  # fmt: skip
        driver = str(PEERS / "elizaos" / "driver.py")
        for state in ("cached", "rebuilt"):
            out.append(Side(f"elizaOS {state}", python, [driver, "--state", state], eliza_env))
    return out


def table(results: dict[str, dict[str, float]], rss_after: int) -> str:
    names = list(results)
    aigent = results.get("aigent")
    peers = [n for n in names if n != "aigent"] if aigent else []
    head = ["figure", *names, *[f"aigent/{p.split()[-1]}" for p in peers]]
    if aigent:
        head += ["aigent target", "met"]
    rows = [head]
    for figure in next(iter(results.values())):
        label = figure.replace("after N", f"after {rss_after:,}")
        row = [label, *[_num(results[n][figure]) for n in names]]
        for peer in peers:
            theirs = results[peer][figure]
            row.append(f"{aigent[figure] / theirs:.2f}x" if aigent and theirs else "-")
        if aigent:
            target = TARGETS.get(figure)
            if target is None:
                row += ["", ""]
            else:
                limit, higher = target
                ok = aigent[figure] >= limit if higher else aigent[figure] <= limit
                row += [f"{'>=' if higher else '<='} {limit:g}", "PASS" if ok else "MISS"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="messages per latency batch")
    parser.add_argument("--rounds", type=int, default=1, help="batches per side, interleaved")
    parser.add_argument("--only", choices=["aigent", "elizaos"], help="run one side only")
    parser.add_argument("--rss-after", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--traces", action="store_true", help="add aigent exporting traces over OTLP"
    )
    args = parser.parse_args()
    if args.messages < 10 or args.rounds < 1 or args.rss_after < 1:
        parser.error("--messages must be at least 10 (one per worker at 10 in flight), "
                     "--rounds at least 1")  # fmt: skip

    work = Path(tempfile.mkdtemp(prefix="aigent-overhead-"))
    server = ModelServer().start()
    sink = TraceSink() if args.traces else None
    chosen: list[Side] = []
    started = time.monotonic()
    try:
        chosen = sides(
            args.only, server.url, work / "aigent-data", args.rss_after, sink and sink.url
        )
        for side in chosen:  # one at a time: start-up is timed alone
            side.start(server, work)
        for _ in range(args.rounds):  # interleaved, so a noisy moment hits every side
            for side in chosen:
                side.round(server, args.messages)
        for side in chosen:
            side.fill(args.rss_after)
    except DriverFailed as exc:
        raise SystemExit(str(exc)) from None
    finally:
        for side in chosen:
            side.stop()
        server.stop()
        if sink is not None:
            sink.stop()
        shutil.rmtree(work, ignore_errors=True)

    results = {side.name: side.figures() for side in chosen}
    print(
        f"{args.messages} messages x {args.rounds} round(s) per row, model stand-in on loopback "
        f"answering at once; {len(os.sched_getaffinity(0))} CPUs; "
        f"{time.monotonic() - started:.0f} s\n"
    )
    print(table(results, args.rss_after))
    for side in chosen:
        print(f"  {side.name}: " + "; ".join(f"{k} {v}" for k, v in side.setup.items()))
    print(
        "\noverhead = chat minus the bare POST of the same body (same percentile); ratios are "
        "aigent / the other column (above 1: aigent is higher, worse except for messages/s)."
    )
    if sink is not None:
        print(f"\ntraces: {sink.bytes:,} bytes of OTLP reached the collector stand-in.")
        print(f"traces off (the default): {traces_off_cost()}.")
    for side in chosen:
        if side.stages:
            print(f"\n{side.name}'s own account of the same messages (reply.timings, 1 in flight):")
            print("  " + "  ".join(f"{stage} {pct(v, 50):.2f}/{pct(v, 95):.2f}"
                                   for stage, v in side.stages.items()))  # fmt: skip
            print(
                "  p50/p95 ms. Its stages start when the message enters the pipeline; its "
                "'model' stage holds the model plugin and the HTTP call, so its 'overhead' "
                "leaves those out: the chat and overhead rows above are the whole path."
            )
    if args.json:
        stages = {side.name: side.stages for side in chosen if side.stages}
        summary = {side: {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in st.items()}
                   for side, st in stages.items()}  # fmt: skip
        print(json.dumps({"messages": args.messages, "rounds": args.rounds, "results": results,
                          "stages": summary}))  # fmt: skip


if __name__ == "__main__":
    main()
