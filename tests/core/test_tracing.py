"""Traces: a message is one OpenTelemetry trace with a span per stage, exported over OTLP to a
collector the tests start (the real wire format, decoded with OpenTelemetry's protobufs), and
nothing at all when no endpoint is set."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aigent import Agent, hookimpl, tracing
from tests.fixtures.otlp_collector import Collector
from tests.node.test_paid_messages import alice_character, bob_character

pytest.importorskip("opentelemetry.sdk", reason="the otel extra: pip install 'aigent[otel]'")

SECRET_TEXT = "my card number is 4111 1111 1111 1111"


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    running = Collector().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "aigent-tests")
    tracing.reset()
    try:
        yield running
    finally:
        tracing.reset()  # the next test starts with traces off
        running.stop()


class Weather:
    @hookimpl
    def register_actions(self, register: Callable[..., None]) -> None:
        async def get_weather(city: str) -> str:
            """The weather in a city."""
            return f"{city}: sunny"

        register(get_weather)


async def test_a_message_is_one_trace_with_a_span_per_stage(
    collector: Collector, scripted_character: Callable[..., Path]
) -> None:
    async with Agent.from_file(scripted_character(), plugins=[Weather()]) as agent:
        reply = await agent.chat(f"get_weather please; {SECRET_TEXT}")
    # The stop flushed: every span is at the collector already.
    assert reply.text == "tool said: Lisbon: sunny"
    [message] = collector.named("aigent.message")
    assert message.service == "aigent-tests" and message.parent_id == ""
    assert message.attributes["aigent.agent"] == "Tester"
    assert message.attributes["aigent.message_id"] == reply.message_id
    stages = [s.name for s in collector.children(message)]
    assert stages == ["context", "model", "action", "model", "memory", "publish"]
    assert {s.trace_id for s in collector.spans} == {message.trace_id}
    first_model = collector.named("model")[0]
    assert first_model.attributes["aigent.model"] == "scripted"
    assert first_model.attributes["aigent.tool_calls"] == 1
    assert first_model.attributes["aigent.input_tokens"] > 0
    [action] = collector.named("action")
    assert action.attributes == {"aigent.action": "get_weather", "aigent.ok": True}
    # Names, ids, sizes: never what the user said.
    assert "4111" not in json.dumps([s.attributes for s in collector.spans])


async def test_a_failing_action_is_marked_on_its_span(
    collector: Collector, scripted_character: Callable[..., Path]
) -> None:
    async with Agent.from_file(scripted_character()) as agent:
        result = await agent.run_action("no_such_action", {})
    assert not result.ok
    [action] = collector.named("action")
    assert action.attributes["aigent.ok"] is False
    assert action.attributes["aigent.error"] == "unknown"


async def test_a_paid_message_is_traced_from_the_payment(
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    write_character: Callable[..., Path],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("ALICE_BTP_TOKEN", "alice-secret-token")
    async with Agent.from_file(write_character(bob_character(tmp_path), "bob.json")) as bob:
        assert bob.node is not None and bob.node.spsp_url and bob.node.btp_port
        alice_file = write_character(alice_character(tmp_path, bob.node.btp_port), "alice.json")
        async with Agent.from_file(alice_file) as alice:
            answer = await alice.ask(bob.node.spsp_url, "what is a connector?", max_price=2000)
    assert answer.text == "echo: what is a connector?"
    paid_in = [
        s for s in collector.named("payment")
        if s.attributes["aigent.direction"] == "in" and s.attributes["aigent.fulfilled"]
        and collector.children(s)
    ]  # fmt: skip
    [payment] = paid_in
    [message] = collector.children(payment)
    assert message.name == "aigent.message" and message.attributes["aigent.client"] == "ilp"
    assert payment.attributes["aigent.amount"] == 1000
    [sent] = [s for s in collector.named("payment") if s.attributes["aigent.direction"] == "out"]
    assert sent.attributes["aigent.amount"] == 1000 and sent.attributes["aigent.asset"] == "XRP"


def test_without_an_endpoint_nothing_is_imported_or_recorded(tmp_path: Path) -> None:
    """In a fresh process, as users run it: traces off, the SDK never loaded."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                del os.environ[name]
        from aigent import Agent, tracing
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})

        async def main():
            agent = Agent.from_file({str(_scripted_file(tmp_path))!r})
            async with agent:
                reply = await agent.chat("hello")
            assert reply.text == "echo: hello", reply.text
            assert not tracing.enabled()
            assert tracing.span("x", a=1) is tracing.span("y")  # one shared do-nothing
            loaded = [m for m in sys.modules if m.startswith("opentelemetry")]
            assert not loaded, loaded

        asyncio.run(main())
        print("ok")
        """
    )
    _in_a_fresh_process(script)


def test_an_endpoint_without_the_sdk_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing.reset()
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    try:
        with caplog.at_level("WARNING", logger="aigent.tracing"):
            assert tracing.configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}) is False
        assert "pip install 'aigent[otel]'" in caplog.text
        assert tracing.configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}) is False  # once
    finally:
        tracing.reset()
    assert (
        tracing.configure({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "h"})
        is False
    )
    tracing.reset()


def _in_a_fresh_process(script: str) -> None:
    """Run ``script`` in a new interpreter (OpenTelemetry's global provider is set once per
    process); it prints ``ok`` when its checks pass."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def _scripted_file(tmp_path: Path) -> Path:
    path = tmp_path / "tester.json"
    path.write_text(
        json.dumps(
            {
                "name": "Tester",
                "models": {"large": "scripted"},
                "plugins": [str(Path(__file__).parents[1] / "fixtures" / "scripted_model.py")],
                "data_dir": str(tmp_path / "data"),
                "memory": {"enabled": False},
            }
        )
    )
    return path


def test_an_app_with_its_own_provider_gets_the_spans(tmp_path: Path) -> None:
    """An application that embeds agents and set up OpenTelemetry itself keeps its provider:
    aigent's spans go there, no endpoint needed (a fresh process: the global is set once)."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                del os.environ[name]
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        from aigent import Agent
        tracer = trace.get_tracer("the-app")

        async def main():
            async with Agent.from_file({str(_scripted_file(tmp_path))!r}) as agent:
                with tracer.start_as_current_span("app.request"):
                    await agent.chat("hello")
            spans = {{s.name: s for s in exporter.get_finished_spans()}}
            assert spans["aigent.message"].parent.span_id == spans["app.request"].context.span_id
            assert spans["model"].parent.span_id == spans["aigent.message"].context.span_id

        asyncio.run(main())
        print("ok")
        """
    )
    _in_a_fresh_process(script)
