"""Model chains: a role's models tried in turn, and streaming from whichever can."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from aigent.errors import ModelError
from aigent.interfaces import ChatModel, StreamingChatModel
from aigent.messages import ChatMessage, ModelResponse, ToolSpec
from aigent.secrets import redact

log = logging.getLogger("aigent.models")


class FallbackModel:
    """Tries each model of a chain in turn; the response names the one that answered."""

    def __init__(self, models: Sequence[ChatModel]) -> None:
        self.models = list(models)
        self.model_id = " -> ".join(m.model_id for m in self.models)

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ModelResponse:
        failures: list[str] = []
        for model in self.models:
            try:
                response = await model.chat(messages, tools)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.append(f"{model.model_id}: {redact(str(exc))}")
                log.warning("model %s failed, trying the next: %s", model.model_id, exc)
                continue
            response.model = response.model or model.model_id
            return response
        raise ModelError("every model in the chain failed:\n  " + "\n  ".join(failures))

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ModelResponse]:
        """Streams from the first model that answers; one that fails mid-stream is not
        replaced (its text was already shown), so its error is raised."""
        failures: list[str] = []
        for model in self.models:
            started = False
            try:
                async for item in stream_or_chat(model, messages, tools):
                    started = True
                    if isinstance(item, ModelResponse):
                        item.model = item.model or model.model_id
                    yield item
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if started:
                    raise
                failures.append(f"{model.model_id}: {redact(str(exc))}")
                log.warning("model %s failed, trying the next: %s", model.model_id, exc)
        raise ModelError("every model in the chain failed:\n  " + "\n  ".join(failures))


async def stream_or_chat(
    model: ChatModel, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
) -> AsyncIterator[str | ModelResponse]:
    if isinstance(model, StreamingChatModel):
        async for item in model.stream(messages, tools):
            yield item
    else:
        yield await model.chat(messages, tools)
