"""Retries, timeouts, bad replies, cancellation, unreachable servers and key hygiene."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from email.utils import formatdate

import pytest
from aigent_openai import pool

from aigent import ChatMessage, ModelError
from aigent.retries import MAX_DELAY, delay, parse_retry_after
from tests.fixtures.openai_server import (
    Behaviour,
    broken_stream,
    error,
    malformed,
    reply,
    slow,
    trickle,
)
from tests.plugins.openai.conftest import KEY

HI = [ChatMessage(role="user", content="hi")]


async def wait_for_request(server, count: int = 1) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if len(server.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the stand-in never saw the request")


async def test_429_waits_as_long_as_retry_after_says(build, openai_server) -> None:
    openai_server.queue(error(429, "slow down", retry_after="0.6"), reply("done"))
    started = time.monotonic()
    answer = await build().chat(HI)
    assert answer.text == "done"
    assert time.monotonic() - started >= 0.6
    assert len(openai_server.requests) == 2


def test_retry_after_as_seconds_or_an_http_date_and_backoff_is_capped() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.25") == 0.25
    in_ten = parse_retry_after(formatdate(time.time() + 10, usegmt=True))
    assert in_ten is not None and 8 <= in_ten <= 10
    assert parse_retry_after(formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert delay(0, "3600") == MAX_DELAY
    assert delay(20, None) <= MAX_DELAY
    assert 0.25 <= delay(0, None) <= 0.5  # backoff with jitter: half to all of 0.5 s


async def test_500_then_success(build, openai_server) -> None:
    openai_server.queue(error(500, retry_after="0"), error(503, retry_after="0"), reply("back"))
    assert (await build().chat(HI)).text == "back"
    assert len(openai_server.requests) == 3


async def test_persistent_500_is_an_error_with_the_servers_reason(build, openai_server) -> None:
    openai_server.queue(*[error(500, "the GPU caught fire", retry_after="0")] * 3)
    with pytest.raises(ModelError) as info:
        await build(settings={"retries": 2}).chat(HI)
    assert str(info.value) == "openai/stand-in: HTTP 500: the GPU caught fire"
    assert len(openai_server.requests) == 3


async def test_a_client_error_is_not_retried_and_says_what_to_check(build, openai_server) -> None:
    openai_server.queue(error(404, "The model `nope` does not exist"))
    with pytest.raises(ModelError, match=r"HTTP 404: The model `nope` does not exist \(check"):
        await build("openai/nope").chat(HI)
    assert len(openai_server.requests) == 1


async def test_a_slow_server_times_out_as_a_model_error(build, openai_server) -> None:
    openai_server.queue(slow(3))
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"no reply from .* within 0\.3s"):
        await build(timeout=0.3).chat(HI)
    assert time.monotonic() - started < 1.5
    assert len(openai_server.requests) == 1  # a timeout is not retried: the chain moves on


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (malformed(), "the reply was not JSON"),
        (Behaviour(raw_body=b'{"id": "x", "choices": []}'), "the reply had no message"),
        (Behaviour(raw_body=b'{"error": null}'), "the reply had no message"),
        (Behaviour(raw_body=b""), r"the reply was not JSON: \(empty\)"),
    ],
)
async def test_a_malformed_reply_is_a_short_model_error(
    build, openai_server, behaviour, reason
) -> None:
    openai_server.queue(behaviour)
    with pytest.raises(ModelError, match=f"^openai/stand-in: {reason}"):
        await build().chat(HI)


async def test_an_error_mid_stream_is_a_model_error(build, openai_server) -> None:
    openai_server.queue(broken_stream("half an", "overloaded, try later"))
    seen: list[object] = []
    with pytest.raises(ModelError, match="error mid-stream: overloaded, try later"):
        async for item in build().stream(HI):
            seen.append(item)
    assert seen == ["half", " an"]


async def test_an_error_before_the_stream_is_retried(build, openai_server) -> None:
    openai_server.queue(error(503, retry_after="0"), reply("streamed after all"))
    items = [item async for item in build().stream(HI)]
    assert items[:-1] == ["streamed", " after", " all"]


async def test_cancelled_mid_request_stops_at_once_and_the_pool_goes_on(
    build, openai_server
) -> None:
    model = build()
    openai_server.queue(slow(3, "too late"))
    task = asyncio.create_task(model.chat(HI))
    await wait_for_request(openai_server)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.2
    client = pool.client(model.base_url)
    assert (await model.chat([ChatMessage(role="user", content="again")])).text == "echo: again"
    assert pool.client(model.base_url) is client


async def test_cancelled_mid_stream_stops_at_once_and_the_pool_goes_on(
    build, openai_server
) -> None:
    model = build()
    openai_server.queue(trickle("one two three four five six", 0.5))
    first = asyncio.Event()

    async def read() -> None:
        async for _ in model.stream(HI):
            first.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), 5)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.2
    items = [item async for item in model.stream([ChatMessage(role="user", content="more")])]
    assert "".join(i for i in items if isinstance(i, str)) == "echo: more"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_retried_then_reported(build) -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(ModelError, match=f"^openai/stand-in: cannot reach {base}: "):
        await build(api_base=base, settings={"retries": 1}).chat(HI)
    assert time.monotonic() - started >= 0.25  # one backoff between the two attempts


async def test_the_key_is_sent_only_as_bearer_and_never_shown(build, openai_server, caplog) -> None:
    # Some servers echo the credential back in their error text.
    caplog.set_level(logging.DEBUG)  # every logger, httpx's and httpcore's included
    openai_server.queue(
        error(500, f"upstream rejected {KEY}", retry_after="0"),
        error(401, f"Incorrect API key provided: {KEY}"),
    )
    model = build()
    with pytest.raises(ModelError) as info:
        await model.chat(HI)
    message = str(info.value)
    assert "Incorrect API key provided: ***" in message
    assert "(check the API key (OPENAI_API_KEY)" in message
    assert KEY not in message and KEY not in repr(model)
    assert "upstream rejected ***" in caplog.text  # the retry's warning, redacted
    assert KEY not in caplog.text
    for sent in openai_server.requests:
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        others = {k: v for k, v in sent.headers.items() if k != "authorization"}
        assert KEY not in str(others) and KEY not in str(sent.body) and KEY not in sent.path


async def test_an_api_base_without_a_key_sends_no_authorization(build, openai_server) -> None:
    await build(secrets={}).chat(HI)
    await build("hosted_vllm/qwen", secrets={}).chat(HI)
    assert all("authorization" not in r.headers for r in openai_server.requests)
