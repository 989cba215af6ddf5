"""Replies of the real local model (SmolLM2-135M) that no longer loop, and keep to the length.

Greedy decoding (temperature 0) makes the loops reproducible: with no penalties and no guard,
SmolLM2 answers "What can you do for me?" as Eliza with "I can help with your projects." over
and over, and "Can agents pay each other?" with "No, no, no, ..." to the cap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aigent_local.model import LocalModel, Sampling, default_model_path

from aigent import Agent, AigentError, ChatMessage, ModelResponse, ToolSpec, load_character
from aigent.prompt import system_prompt

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow

LOOPING = ["Hi Eliza, what can you help me with?", "What can you do for me?"]
NO_PENALTIES = Sampling(temperature=0, repeat_penalty=1.0, frequency_penalty=0, presence_penalty=0)


def units(text: str) -> list[str]:
    """Sentences and lines, normalised: split here, not by the guard under test."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [n for p in parts if (n := re.sub(r"[^\w]+", " ", p.lower()).strip())]


def eliza_messages(text: str) -> list[ChatMessage]:
    character = load_character(ROOT / "characters" / "eliza.json")
    return [
        ChatMessage(role="system", content=system_prompt(character)),
        ChatMessage(role="user", content=text),
    ]


@pytest.fixture
def eliza(write_character: Callable[..., Path], tmp_path: Path) -> Callable[..., Agent]:
    """characters/eliza.json as shipped, with memory off and a data directory of its own."""

    def make(model: dict[str, object] | None = None, **fields: object) -> Agent:
        data = json.loads((ROOT / "characters" / "eliza.json").read_text())
        data.update(memory={"enabled": False}, data_dir=str(tmp_path / "data"), **fields)
        data["models"] = {"large": {"model": "local", "temperature": 0, **(model or {})}}
        return Agent.from_file(write_character(data))

    return make


async def test_the_loop_prompts_no_longer_repeat_a_line(eliza: Callable[..., Agent]) -> None:
    async with eliza() as agent:
        for text in [*LOOPING, "Can agents pay each other?"]:
            chunks: list[str] = []
            reply = await agent.chat(text, room=text, on_text=chunks.append)
            found = units(reply.text)
            assert found and len(found) == len(set(found)), reply.text
            assert not re.search(r"\b(\w+)(, \1\b){3}", reply.text, re.I), reply.text  # no, no..
            assert not reply.text.lower().startswith("eliza:")
            # Eliza's style: "answer in one to three short sentences".
            assert sum(" " in u for u in found) <= 3, reply.text
            assert reply.usage.completion_tokens <= 96
            assert "".join(chunks).strip() == reply.text  # the stream showed no dropped repeat


def test_the_guard_stops_a_looping_model_early_and_drops_the_repeat() -> None:
    model = LocalModel(default_model_path(), sampling=NO_PENALTIES)
    streamed = list(model.stream_sync(eliza_messages("What can you do for me?")))
    *pieces, final = streamed
    assert isinstance(final, ModelResponse)
    found = units(final.text)
    assert found and len(found) == len(set(found)), final.text
    assert "".join(p for p in pieces if isinstance(p, str)).strip() == final.text
    # Stopped at the first repeat, not at the cap of 256 tokens.
    assert final.usage.completion_tokens < 80
    assert model.complete(eliza_messages("What can you do for me?")).text == final.text


def test_a_sentence_of_the_last_answer_is_not_said_again() -> None:
    """Asked again, greedy SmolLM2 opens with its first answer's first sentence."""
    model = LocalModel(default_model_path(), sampling=replace(NO_PENALTIES, max_sentences=3))
    question = "Hi Eliza, what can you help me with?"
    first = model.complete(eliza_messages(question)).text
    history = [
        *eliza_messages(question),
        ChatMessage(role="assistant", content=first),
        ChatMessage(role="user", content=question),
    ]
    again = model.complete(history).text
    assert again and units(first)[0] not in units(again), (first, again)


def test_a_reply_that_calls_no_tool_is_guarded_too() -> None:
    model = LocalModel(default_model_path(), sampling=NO_PENALTIES)
    clock = ToolSpec(name="get_time", description="The current time.")
    reply = model.complete(eliza_messages("What can you do for me?"), [clock])
    found = units(reply.text)
    assert not reply.tool_calls and found and len(found) == len(set(found)), reply.text


@pytest.mark.parametrize(
    "penalty", [{"repeat_penalty": 1.3}, {"frequency_penalty": 0.5}, {"presence_penalty": 0.5}]
)
def test_each_penalty_reaches_llama_cpp(penalty: dict[str, float]) -> None:
    """Greedy decoding is deterministic: a different reply means llama.cpp's sampler used it."""
    messages = eliza_messages("Can agents pay each other?")
    plain = LocalModel(default_model_path(), sampling=replace(NO_PENALTIES, max_tokens=24))
    penalised = LocalModel(default_model_path(), sampling=replace(plain.sampling, **penalty))
    before, after = plain.complete(messages).text, penalised.complete(messages).text
    assert re.search(r"no, no, no, no, no", before, re.I), before  # the loop it breaks
    assert after != before


async def test_the_models_own_max_tokens_wins_over_the_style(eliza: Callable[..., Agent]) -> None:
    async with eliza({"max_tokens": 6}) as agent:
        reply = await agent.chat("Tell me about open source.")
    assert 0 < reply.usage.completion_tokens <= 6


def test_a_bad_local_setting_is_named(eliza: Callable[..., Agent]) -> None:
    with pytest.raises(AigentError, match=r"settings.local.repeat_penalty: expected float"):
        eliza(settings={"local": {"repeat_penalty": "high"}}).assemble()
    with pytest.raises(AigentError, match=r"settings.local.penalty: unknown setting"):
        eliza(settings={"local": {"penalty": 1.2}}).assemble()
