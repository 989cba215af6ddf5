"""Replies, streams, tools, usage and cost over real HTTP against the OpenAI-wire stand-in."""

from __future__ import annotations

import json

import pytest
from aigent_openai.wire import StreamReader

from aigent import ChatMessage, ModelResponse, ToolCall, ToolSpec
from tests.fixtures.openai_server import reply, tool_call
from tests.plugins.openai.conftest import KEY

HELLO = [
    ChatMessage(role="system", content="You are Wire."),
    ChatMessage(role="user", content="hello there"),
]
WEATHER = ToolSpec(
    name="get_weather",
    description="The weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


async def collect(model, messages, tools=()):  # type: ignore[no-untyped-def]
    items = [item async for item in model.stream(messages, tools)]
    *chunks, final = items
    assert isinstance(final, ModelResponse)
    assert all(isinstance(c, str) for c in chunks)
    return chunks, final


async def test_a_plain_reply_with_usage_and_the_key_as_bearer(build, openai_server) -> None:
    answer = await build().chat(HELLO)
    assert answer.text == "echo: hello there"
    assert answer.model == "openai/stand-in"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 3)
    assert answer.usage.cost_usd is None  # the stand-in has no price
    sent = openai_server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body == {
        "model": "stand-in",
        "messages": [
            {"role": "system", "content": "You are Wire."},
            {"role": "user", "content": "hello there"},
        ],
    }


async def test_a_streamed_reply_is_chunks_then_one_response(build, openai_server) -> None:
    openai_server.queue(reply("one two three"))
    chunks, final = await collect(build(), HELLO)
    assert chunks == ["one", " two", " three"]
    assert final.text == "one two three"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 3)
    body = openai_server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_mistral_is_not_sent_stream_options(build, openai_server) -> None:
    # Mistral answers 422 to stream_options; it sends usage on its last chunk unasked.
    chunks, _ = await collect(build("mistral/mistral-small-latest"), HELLO)
    assert "".join(chunks) == "echo: hello there"
    assert "stream_options" not in openai_server.requests[0].body


async def test_the_wire_name_drops_only_the_provider_prefix(build, openai_server) -> None:
    await build("openrouter/meta-llama/llama-3.3-70b-instruct").chat(HELLO)
    assert openai_server.requests[0].body["model"] == "meta-llama/llama-3.3-70b-instruct"


async def test_temperature_and_max_tokens(build, openai_server) -> None:
    await build(temperature=0.2, max_tokens=50).chat(HELLO)
    await build("openai/o4-mini", temperature=0.2, max_tokens=50).chat(HELLO)
    plain, reasoning = (r.body for r in openai_server.requests)
    assert (plain["temperature"], plain["max_tokens"]) == (0.2, 50)
    # Reasoning models refuse max_tokens and any temperature but their own.
    assert reasoning["max_completion_tokens"] == 50
    assert "temperature" not in reasoning and "max_tokens" not in reasoning


async def test_native_tool_call_and_its_round_trip(build, openai_server) -> None:
    model = build()
    openai_server.queue(tool_call("get_weather", {"city": "Oslo"}))
    first = await model.chat(HELLO, [WEATHER])
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Oslo"})
    assert call.id.startswith("call_")
    sent = openai_server.requests[0].body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    history = [
        *HELLO,
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", content="Oslo: snow", tool_call_id=call.id, name="get_weather"),
    ]
    assert (await model.chat(history, [WEATHER])).text.startswith("echo:")
    assistant, result = openai_server.requests[1].body["messages"][-2:]
    assert assistant["tool_calls"][0] == {
        "id": call.id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    assert result == {
        "role": "tool",
        "content": "Oslo: snow",
        "tool_call_id": call.id,
        "name": "get_weather",
    }


async def test_native_tool_call_streamed(build, openai_server) -> None:
    openai_server.queue(tool_call("get_weather", {"city": "Lima"}))
    chunks, final = await collect(build(), HELLO, [WEATHER])
    assert chunks == []
    [call] = final.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Lima"})


async def test_malformed_tool_arguments_reach_the_action_as_none(build, openai_server) -> None:
    openai_server.queue(tool_call("get_weather", "{city: Oslo"))
    [call] = (await build().chat(HELLO, [WEATHER])).tool_calls
    assert (call.name, call.arguments) == ("get_weather", {})


def test_streamed_tool_call_deltas_are_assembled_by_index() -> None:
    def event(delta: dict, finish: str | None = None) -> str:  # type: ignore[type-arg]
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return "data: " + json.dumps({"choices": [choice]})

    def part(index: int, **fields: str) -> dict:  # type: ignore[type-arg]
        call: dict = {"index": index, "function": {}}  # type: ignore[type-arg]
        if "id" in fields:
            call["id"] = fields["id"]
        for key in ("name", "arguments"):
            if key in fields:
                call["function"][key] = fields[key]
        return {"tool_calls": [call]}

    reader = StreamReader()
    lines = [
        ": keep-alive",
        event(part(0, id="call_a", name="get_weather", arguments="")),
        event(part(1, id="call_b", name="get_time", arguments='{"zo')),
        event(part(0, arguments='{"city"')),
        "",
        event(part(1, arguments='ne": "UTC"}')),
        event(part(0, arguments=': "Oslo"}')),
        event({}, finish="tool_calls"),
        'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9}}',
        "data: [DONE]",
    ]
    assert [reader.feed(line) for line in lines] == [None] * len(lines)
    assert reader.finished and reader.usage["completion_tokens"] == 9
    assert [(c.id, c.name, c.arguments) for c in reader.tool_calls()] == [
        ("call_a", "get_weather", {"city": "Oslo"}),
        ("call_b", "get_time", {"zone": "UTC"}),
    ]


@pytest.mark.parametrize("streamed", [False, True])
async def test_json_in_text_tools(build, openai_server, streamed: bool) -> None:
    model = build(settings={"tools": "json"})
    openai_server.queue(reply('{"tool": "get_weather", "arguments": {"city": "Lagos"}}'))
    if streamed:
        chunks, answer = await collect(model, HELLO, [WEATHER])
        assert chunks == []  # the JSON call is not shown to the reader
    else:
        answer = await model.chat(HELLO, [WEATHER])
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("get_weather", {"city": "Lagos"})
    ]
    assert answer.text == ""
    sent = openai_server.requests[0].body
    assert "tools" not in sent
    assert "get_weather" in sent["messages"][0]["content"]
    assert sent["messages"][0]["content"].startswith("You are Wire.")


async def test_json_tools_put_earlier_calls_and_results_in_text(build, openai_server) -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Lagos"})
    history = [
        *HELLO,
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", content="hot", tool_call_id=call.id, name="get_weather"),
    ]
    await build(settings={"tools": "json"}).chat(history, [WEATHER])
    messages = openai_server.requests[0].body["messages"]
    assert messages[-2] == {
        "role": "assistant",
        "content": '{"tool": "get_weather", "arguments": {"city": "Lagos"}}',
    }
    assert messages[-1] == {"role": "user", "content": "Result of get_weather: hot"}


async def test_a_server_refusing_tools_is_asked_again_with_tools_in_text(
    build, openai_server
) -> None:
    # Ollama answers 400 for a model without tool support; ask again the JSON-in-text way.
    from tests.fixtures.openai_server import error

    model = build("ollama/gemma", api_base=openai_server.url)
    openai_server.queue(
        error(400, "registry.ollama.ai/library/gemma:latest does not support tools"),
        reply('{"tool": "get_weather", "arguments": {"city": "Rome"}}'),
    )
    answer = await model.chat(HELLO, [WEATHER])
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("get_weather", {"city": "Rome"})]
    first, second = (r.body for r in openai_server.requests)
    assert "tools" in first and "tools" not in second
    await model.chat(HELLO, [WEATHER])  # remembered: no second refusal to sit through
    assert "tools" not in openai_server.requests[2].body


async def test_another_400_about_tools_is_reported_not_worked_around(build, openai_server) -> None:
    from aigent import ModelError
    from tests.fixtures.openai_server import error

    problem = "Invalid schema for function 'get_weather' (param tools[0].function.parameters)"
    openai_server.queue(error(400, problem))
    with pytest.raises(ModelError, match=r"HTTP 400: Invalid schema for function"):
        await build().chat(HELLO, [WEATHER])
    assert len(openai_server.requests) == 1


async def test_cost_from_the_shipped_price_table(build, openai_server) -> None:
    answer = await build("openai/gpt-4o-mini").chat(HELLO)
    usage = answer.usage
    assert usage.cost_usd == pytest.approx(
        usage.prompt_tokens * 0.15e-6 + usage.completion_tokens * 0.6e-6
    )
    _, streamed = await collect(build("openai/gpt-4o-mini"), HELLO)
    assert streamed.usage.cost_usd == pytest.approx(usage.cost_usd)


async def test_prices_in_settings_add_and_override(build, openai_server) -> None:
    prices = {"stand-in": [1e-3, 2e-3], "openai/gpt-4o-mini": [0.0, 1.0]}
    own = await build(settings={"prices": prices}).chat(HELLO)
    assert own.usage.cost_usd == pytest.approx(5 * 1e-3 + 3 * 2e-3)
    override = await build("openai/gpt-4o-mini", settings={"prices": prices}).chat(HELLO)
    assert override.usage.cost_usd == pytest.approx(3.0)
    unknown = await build("openai/no-such-model").chat(HELLO)
    assert unknown.usage.cost_usd is None
