"""Under ``aigent serve`` with OpenTelemetry's variables set, a message's trace starts at the
HTTP request (FastAPI's own server span), and aigent's spans nest under it: one trace from the
client's call to the model's answer, at a collector stand-in speaking OTLP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.openai_server import OpenAIServer, reply
from tests.fixtures.otlp_collector import Collector
from tests.server.conftest import character, wait_for
from tests.server.test_command import free_port

pytest.importorskip("opentelemetry.sdk", reason="the otel extra: pip install 'aigent[otel]'")


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector().start()
    try:
        yield running
    finally:
        running.stop()


def test_a_served_message_is_one_trace_from_the_http_request(
    tmp_path: Path, model: OpenAIServer, collector: Collector
) -> None:
    file = tmp_path / "ada.json"
    file.write_text(json.dumps(character(model, "Ada")))
    port = free_port()
    env = {
        **os.environ,
        "AIGENT_SERVE_TOKEN": "t0ken",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "aigent-serve-test",
    }
    command = [sys.executable, "-m", "aigent.cli", "serve", str(file), "--port", str(port),
               "--data-dir", str(tmp_path / "data")]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t0ken"}) as client:

            def running() -> bool:
                try:
                    return client.get("/api/agents/Ada").json().get("state") == "running"
                except httpx.HTTPError:
                    return False

            wait_for(running, timeout=60, what="Ada to run")
            model.queue(reply("traced hello"))
            answer = client.post("/api/agents/Ada/messages", json={"text": "hi"})
            assert answer.status_code == 200, answer.text
    finally:
        process.send_signal(signal.SIGINT)  # a clean stop flushes the spans
        process.communicate(timeout=30)
    [message] = collector.named("aigent.message")
    parents = {s.span_id: s for s in collector.spans}
    http = parents.get(message.parent_id)
    assert http is not None, [s.name for s in collector.spans]
    assert http.name.startswith("POST"), http.name  # FastAPI's server span for the request
    assert http.service == "aigent-serve-test" and http.trace_id == message.trace_id
    assert [s.name for s in collector.children(message)][:2] == ["context", "model"]
