"""Traces: each message an OpenTelemetry trace, with a span per stage (context, model, actions,
memory, publish, payment, anchoring), exported over OTLP when the standard variables say where.

Configured by OpenTelemetry's own environment variables, as every OTel SDK is:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns traces on,
``OTEL_EXPORTER_OTLP_HEADERS`` carries a collector's key, ``OTEL_SERVICE_NAME`` names the
service (``aigent`` by default), ``OTEL_SDK_DISABLED=true`` turns them off again. The SDK is an
extra (``pip install 'aigent[otel]'``), imported only when an endpoint is set.

When traces are off (the default), :func:`span` hands back one shared object whose ``with``
does nothing: no import, no allocation, a few hundred nanoseconds a message in all.

Spans carry names, ids, sizes, amounts and outcomes, never a message's text or a secret: a
trace leaves the machine, for a collector the operator chose.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

log = logging.getLogger("aigent.tracing")

Attribute = str | int | float | bool


class _Off:
    """The span of a process with traces off: enters and leaves, records nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()
_tracer: Any = None
"""The OpenTelemetry tracer once traces are on; None while off."""
_provider: Any = None
_installed: Any = None
"""The provider aigent made global, if it did (kept across :func:`reset`: OpenTelemetry's
global is set once per process)."""
_configured = False


def span(name: str, **attributes: Attribute | None) -> AbstractContextManager[Any]:
    """A span named ``name`` around a ``with`` block, the child of the current one (so a
    message's stages nest under it, across awaits). Attributes that are None are left out;
    an exception leaving the block is recorded and marks the span as an error."""
    if _tracer is None:
        return _OFF
    clean = {f"aigent.{k}": v for k, v in attributes.items() if v is not None}
    result: AbstractContextManager[Any] = _tracer.start_as_current_span(name, attributes=clean)
    return result


def enabled() -> bool:
    return _tracer is not None


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Turn traces on, once per process (agents share a provider, as OpenTelemetry intends):
    with the application's own provider when it has set one (an app that embeds agents and
    uses OpenTelemetry already), else with one of aigent's when the environment names an OTLP
    endpoint, made the global provider so the rest of the process (``aigent serve``'s HTTP
    spans) joins the same traces. Returns whether they are on."""
    global _configured, _installed, _provider, _tracer
    if _configured:
        return _tracer is not None
    _configured = True
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    api = sys.modules.get("opentelemetry.trace")  # imported already: the app uses OpenTelemetry
    current = api.get_tracer_provider() if api is not None else None
    if (
        api is not None
        and not isinstance(current, api.ProxyTracerProvider)
        and current is not _installed
    ):
        _tracer = api.get_tracer("aigent")
        log.info("traces: through the application's OpenTelemetry provider")
        return True
    wanted = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not wanted:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry SDK is not installed "
            "(pip install 'aigent[otel]'): traces are off"
        )
        return False
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "aigent"})
    _provider = TracerProvider(resource=resource)
    # Batched, exported from the SDK's own thread: the message path never waits on the
    # collector, and a collector that is down costs dropped spans, not slow replies.
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if environ is None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # The process's own configuration: the process's provider (set once; OpenTelemetry
        # refuses to replace it).
        trace.set_tracer_provider(_provider)
        _installed = _provider
    _tracer = _provider.get_tracer("aigent")
    log.info("traces: exporting over OTLP to %s", wanted)
    return True


def flush(timeout_seconds: float = 5.0) -> None:
    """Export what is buffered (at an agent's stop; the SDK also does at exit)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))


def reset() -> None:
    """Forget the configuration (tests: each may point the process at its own collector)."""
    global _configured, _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _configured, _provider, _tracer = False, None, None
