"""One model reached through litellm, with retries, timeouts, tools and cost."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aigent import (
    ChatMessage,
    ModelError,
    ModelResponse,
    ToolCall,
    ToolSpec,
    Usage,
    parse_tool_calls,
    redact,
    retry_delay,
    wire_messages,
)

log = logging.getLogger("aigent.litellm")
RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}


def _import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # cost map from the package
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # a provider that lacks a parameter ignores it, not fails
    return litellm


async def _litellm() -> Any:
    """litellm, imported in a thread if :func:`preload` has not finished it: it takes seconds,
    and the event loop (other agents, the connector) must not stall meanwhile."""
    global _module
    if _module is None:  # the import lock makes a concurrent first use wait for the whole import
        _module = await asyncio.to_thread(_import_litellm)
    return _module


def preload() -> None:
    """Start importing litellm in a background thread, once per process, so that an agent's
    first message does not wait for it."""
    global _preloading
    with _preload_lock:
        if _preloading or _module is not None:
            return
        _preloading = True
    threading.Thread(target=_preload, name="aigent-litellm-import", daemon=True).start()


def _preload() -> None:
    global _module
    try:
        _module = _import_litellm()
    except Exception as exc:  # the first call imports again and reports it properly
        log.debug("importing litellm in the background failed: %s", exc)


_module: Any = None
_preloading = False
_preload_lock = threading.Lock()


class LiteLLMModel:
    def __init__(
        self,
        model_id: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        tool_mode: str = "auto",
    ) -> None:
        self.model_id = model_id
        self.api_base = api_base
        self._api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.tool_mode = tool_mode

    def __repr__(self) -> str:  # never the key
        return f"LiteLLMModel({self.model_id!r}, api_base={self.api_base!r})"

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ModelResponse:
        litellm = await _litellm()
        native = self._native_tools(litellm, tools)
        response = await self._call(litellm, messages, tools, native, stream=False)
        return self._parse(litellm, response, tools, native)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ModelResponse]:
        litellm = await _litellm()
        native = self._native_tools(litellm, tools)
        stream = await self._call(litellm, messages, tools, native, stream=True)
        chunks = []
        text_tools = bool(tools) and not native
        try:
            async for chunk in stream:
                chunks.append(chunk)
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece and not text_tools:  # a JSON tool call is not for the reader's eyes
                    yield piece
        except Exception as exc:
            raise ModelError(f"{self.model_id}: stream broke: {redact(str(exc))}") from None
        whole = litellm.stream_chunk_builder(chunks, messages=self._wire(messages, tools, native))
        if whole is None:
            raise ModelError(f"{self.model_id}: the stream ended without a reply")
        yield self._parse(litellm, whole, tools, native)

    # --- calling -----------------------------------------------------------------------------

    def _native_tools(self, litellm: Any, tools: Sequence[ToolSpec]) -> bool:
        if not tools or self.tool_mode == "json":
            return False
        if self.tool_mode == "native" or self.api_base:
            return True  # in-house OpenAI-compatible servers: assume the standard tool format
        try:
            return bool(litellm.supports_function_calling(model=self.model_id))
        except Exception:
            return True

    def _wire(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], native: bool
    ) -> list[dict[str, Any]]:
        return wire_messages(messages, tools, native)

    async def _call(
        self,
        litellm: Any,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        native: bool,
        *,
        stream: bool,
    ) -> Any:
        kwargs: dict[str, Any] = {
            "model": self.model_id,
            "messages": self._wire(messages, tools, native),
            "timeout": self.timeout,
            "num_retries": 0,  # retries are ours: they honour Retry-After
        }
        if native and tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        for name in ("api_base", "temperature", "max_tokens"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        if self._api_key:
            kwargs["api_key"] = self._api_key
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        for attempt in range(self.retries + 1):
            try:
                return await litellm.acompletion(**kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                status = _status(exc)
                # Our own timeout is not retried: the model already had its whole time, and a
                # fallback chain should move on at once (README, "Models").
                timed_out = "Timeout" in type(exc).__name__
                retryable = not timed_out and (
                    status in RETRY_STATUSES or (status is None and _transient(exc))
                )
                reason = redact(_short(exc))
                if not retryable or attempt == self.retries:
                    raise ModelError(f"{self.model_id}: {reason}") from None
                delay = retry_delay(attempt, _retry_after(exc))
                log.warning(
                    "%s: %s; retry %d/%d in %.1fs",
                    self.model_id, reason, attempt + 1, self.retries, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _parse(
        self, litellm: Any, response: Any, tools: Sequence[ToolSpec], native: bool
    ) -> ModelResponse:
        try:
            message = response.choices[0].message
        except (AttributeError, IndexError, TypeError):
            raise ModelError(f"{self.model_id}: the reply had no message") from None
        text = message.content or ""
        calls: list[ToolCall] = []
        for call in getattr(message, "tool_calls", None) or []:
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except (json.JSONDecodeError, TypeError):
                arguments = None
            calls.append(
                ToolCall(
                    id=call.id or ToolCall.model_fields["id"].default_factory(),  # type: ignore[misc]
                    name=call.function.name or "",
                    # Malformed arguments reach the action as none at all: its validation
                    # then tells the model what is missing, and it can try again.
                    arguments=arguments if isinstance(arguments, dict) else {},
                )
            )
        if tools and not native:
            calls, text = parse_tool_calls(text, tools)
        usage = getattr(response, "usage", None)
        return ModelResponse(
            text=text,
            tool_calls=calls,
            model=self.model_id,
            usage=Usage(
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                cost_usd=_cost(litellm, response),
            ),
        )


def _cost(litellm: Any, response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None) or {}
    if hidden.get("response_cost") is not None:  # litellm priced it already: don't do it twice
        return float(hidden["response_cost"])
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:
        return None  # a model missing from litellm's price list has no known cost


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _transient(exc: Exception) -> bool:
    return any(word in type(exc).__name__ for word in ("Connection", "ServiceUnavailable"))


def _retry_after(exc: Exception) -> str | None:
    """The Retry-After header the error carries, if any."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    return str(value) if value is not None else None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
