"""One chat model spoken to directly over the OpenAI wire format, with retries, timeouts,
tools, streaming and cost."""

from __future__ import annotations

import asyncio
import logging
import re
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
    retryable,
    wire_messages,
)
from aigent_openai import pool
from aigent_openai._httpx import httpx
from aigent_openai.prices import Price, cost
from aigent_openai.wire import (
    StreamReader,
    WireError,
    error_message,
    parse_reply,
    request_body,
    tools_out,
)

log = logging.getLogger("aigent.openai")


# How servers say a model takes no tools: Ollama ("... does not support tools"), llama.cpp
# ("tools param requires --jinja flag"), vLLM ("... requires --enable-auto-tool-choice ..."),
# Groq and others ("tool calling is not supported ..."). Other 400s about tools (a bad schema)
# are errors to report, not a reason to change how the model is asked.
_NO_TOOLS = re.compile(
    r"not support\w* (for )?(function calling|tool)|tool\w*( calling| use| calls)? (is |are )?"
    r"not supported|requires --jinja|--enable-auto-tool-choice",
    re.IGNORECASE,
)


class _ToolsRefused(Exception):
    """The server said this model cannot take tools: ask again with tools described in text."""


class OpenAIModel:
    def __init__(
        self,
        model_id: str,
        *,
        base_url: str,
        api_key: str | None = None,
        key_name: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        tool_mode: str = "auto",
        price: Price | None = None,
        usage_in_stream: bool = True,
    ) -> None:
        self.model_id = model_id
        self.wire_model = model_id.split("/", 1)[1]
        self.base_url = base_url.rstrip("/")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.tool_mode = tool_mode
        self.price = price
        self.usage_in_stream = usage_in_stream
        self._key_name = key_name
        self._url = httpx.URL(self.base_url + "/chat/completions")
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(timeout)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIModel({self.model_id!r}, base_url={self.base_url!r})"

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ModelResponse:
        response, native = await self._open(messages, tools, stream=False)
        try:
            text, calls, usage = parse_reply(response.content)
        except WireError as exc:
            raise ModelError(f"{self.model_id}: {redact(str(exc))}") from None
        return self._response(text, calls, usage, tools, native)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ModelResponse]:
        response, native = await self._open(messages, tools, stream=True)
        hidden = bool(tools) and not native  # a JSON tool call is not for the reader's eyes
        reader = StreamReader()
        try:
            async for line in response.aiter_lines():
                piece = reader.feed(line)
                if piece and not hidden:
                    yield piece
        except WireError as exc:
            raise ModelError(f"{self.model_id}: {redact(str(exc))}") from None
        except httpx.TimeoutException:
            raise ModelError(
                f"{self.model_id}: the stream stalled for more than {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise ModelError(f"{self.model_id}: the stream broke: {_short(exc)}") from None
        finally:
            await response.aclose()
        if not reader.finished:
            raise ModelError(f"{self.model_id}: the stream ended before the reply was complete")
        text = "".join(reader.parts)
        yield self._response(text, reader.tool_calls(), reader.usage, tools, native)

    # --- calling -----------------------------------------------------------------------------

    async def _open(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], stream: bool
    ) -> tuple[httpx.Response, bool]:
        """The response, and whether tools went natively (not described in the text)."""
        native = bool(tools) and self.tool_mode != "json"
        try:
            response = await self._send(self._body(messages, tools, native, stream), native, stream)
        except _ToolsRefused:
            native = False
            response = await self._send(self._body(messages, tools, native, stream), native, stream)
        return response, native

    def _body(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], native: bool, stream: bool
    ) -> bytes:
        return request_body(
            self.wire_model,
            wire_messages(messages, tools, native),
            tools_out(tools) if native else None,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            stream=stream,
            usage_in_stream=self.usage_in_stream,
        )

    async def _send(self, body: bytes, with_tools: bool, stream: bool = False) -> httpx.Response:
        """POST ``body``; a 2xx response (its body unread when streaming), else ModelError
        once retries are spent. Cancellation is never caught: it ends the call at once, and
        the pool drops the half-used connection."""
        client = pool.client(self.base_url)
        for attempt in range(self.retries + 1):
            try:
                request = client.build_request(
                    "POST", self._url, content=body, headers=self._headers, timeout=self._timeout
                )
                response = await client.send(request, stream=stream)
            except httpx.TimeoutException:
                # Not retried: a fallback chain should move on, not wait out several timeouts.
                raise ModelError(
                    f"{self.model_id}: no reply from {self.base_url} within {self.timeout:g}s"
                ) from None
            except httpx.TransportError as exc:
                reason = f"cannot reach {self.base_url}: {_short(exc)}"
                if attempt == self.retries:
                    raise ModelError(f"{self.model_id}: {reason}") from None
                await self._wait(attempt, reason, None)
                continue
            status = response.status_code
            if status < 300:
                return response
            raw = await response.aread() if stream else response.content
            if stream:
                await response.aclose()
            message = redact(error_message(raw))
            if (
                status == 400
                and with_tools
                and self.tool_mode == "auto"
                and _NO_TOOLS.search(message)
            ):
                log.info("%s: the server takes no tools (%s); describing them in text",
                         self.model_id, message)  # fmt: skip
                self.tool_mode = "json"  # remembered: this model is asked that way from now on
                raise _ToolsRefused
            reason = f"HTTP {status}: {message}{self._hint(status)}"
            if not retryable(status) or attempt == self.retries:
                raise ModelError(f"{self.model_id}: {reason}")
            await self._wait(attempt, reason, response.headers.get("retry-after"))
        raise AssertionError("unreachable")

    async def _wait(self, attempt: int, reason: str, retry_after: str | None) -> None:
        wait = retry_delay(attempt, retry_after)
        log.warning("%s: %s; retry %d/%d in %.1fs",
                    self.model_id, reason, attempt + 1, self.retries, wait)  # fmt: skip
        await asyncio.sleep(wait)

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            where = f" ({self._key_name})" if self._key_name else ""
            return f" (check the API key{where} for {self.base_url})"
        if status == 404:
            return f" (check the model name {self.wire_model!r} and the api_base {self.base_url})"
        return ""

    def _response(
        self,
        text: str,
        calls: list[ToolCall],
        usage: dict[str, Any],
        tools: Sequence[ToolSpec],
        native: bool,
    ) -> ModelResponse:
        if tools and not native:
            calls, text = parse_tool_calls(text, tools)
        prompt = _tokens(usage.get("prompt_tokens"))
        completion = _tokens(usage.get("completion_tokens"))
        return ModelResponse(
            text=text,
            tool_calls=calls,
            model=self.model_id,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=None if self.price is None else cost(self.price, prompt, completion),
            ),
        )


def _tokens(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0][:300] if text else type(exc).__name__)
