"""One keep-alive client per server and event loop, shared by every model using it."""

from __future__ import annotations

import asyncio

from aigent_openai import close_pools, pool

from aigent import ChatMessage

HI = [ChatMessage(role="user", content="hi")]


async def test_many_calls_from_many_models_share_one_connection(build, openai_server) -> None:
    first, second = build(), build("openai/other")
    for _ in range(10):
        await first.chat(HI)
        await second.chat(HI)
    assert len(openai_server.requests) == 20
    assert openai_server.connections == 1
    assert pool.client(first.base_url) is pool.client(second.base_url)


async def test_concurrent_calls_open_only_what_they_need(build, openai_server) -> None:
    model = build()
    await asyncio.gather(*(model.chat(HI) for _ in range(5)))
    opened = openai_server.connections
    for _ in range(10):
        await asyncio.gather(*(model.chat(HI) for _ in range(5)))
    assert openai_server.connections == opened <= 5  # the same five, kept alive


async def test_each_event_loop_has_its_own_client(build, openai_server) -> None:
    model = build()
    await model.chat(HI)
    mine = pool.client(model.base_url)

    def elsewhere() -> tuple[int, str]:
        async def call() -> tuple[int, str]:
            answer = await model.chat(HI)  # the same model, on another thread's loop
            return id(pool.client(model.base_url)), answer.text

        return asyncio.run(call())  # closes its loop without closing the client

    other, text = await asyncio.to_thread(elsewhere)
    assert text == "echo: hi" and other != id(mine)
    assert (await model.chat(HI)).text == "echo: hi"
    # A client of a closed loop is dropped when the next client is made.
    pool.client("http://127.0.0.1:9/v1")
    assert all(not loop.is_closed() for _, loop in pool._clients)


async def test_close_pools_closes_this_loops_clients(build) -> None:
    model = build()
    await model.chat(HI)
    client = pool.client(model.base_url)
    await close_pools()
    assert client.is_closed
    assert (await model.chat(HI)).text == "echo: hi"  # a new one, made on demand
    assert pool.client(model.base_url) is not client
