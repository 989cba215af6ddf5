"""The Agent: what reaches the model, actions, hooks, timings, fallbacks, many agents at once."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from aigent import Action, Agent, Outgoing, PluginError, SpendDenied, hookimpl


def scripted() -> Any:
    """The scripted model module the agents loaded from tests/fixtures (one per process)."""
    return next(m for n, m in sys.modules.items() if n.startswith("aigent_local_plugin_scripted"))


class Tools:
    """A plugin object passed in code, as an embedding app would."""

    def __init__(self) -> None:
        self.published: list[Outgoing] = []
        self.evaluated: list[str] = []

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def get_weather(city: str, unit: str = "C") -> str:
            """The weather in a city."""
            return f"{city}: 21°{unit}"

        async def explode() -> str:
            """Always fails."""
            raise RuntimeError("kaboom")

        async def slow_sleep() -> str:
            """Takes too long."""
            await asyncio.sleep(5)
            return "late"

        register(get_weather)
        register(explode)
        register(Action.from_function(slow_sleep, timeout=0.05))

    @hookimpl
    def register_evaluators(self, register: Any) -> None:
        async def remember_topic(message: Any, reply: Any, agent: Any) -> None:
            self.evaluated.append(reply.text)

        register(remember_topic)

    @hookimpl
    def before_publish(self, message: Outgoing) -> None:
        message.text = message.text + " [signed]"

    @hookimpl
    async def after_publish(self, message: Outgoing) -> None:
        message.receipts["test"] = {"seen": True}
        self.published.append(message)


async def test_persona_user_text_and_earlier_turns_reach_the_model(scripted_character) -> None:
    path = scripted_character(
        name="Ada",
        bio=["Ada counts things."],
        adjectives=["precise"],
        style={"all": ["be terse"]},
        system="You are Ada, the counting agent.",
    )
    async with Agent.from_file(path) as agent:
        first = await agent.chat("remember the number 7", user="bob", room="r1")
        second = await agent.chat("what was it?", user="bob", room="r1")
        await agent.chat("hello from another room", user="bob", room="r2")
    assert first.text == "echo: remember the number 7"
    assert second.text == "echo: what was it?"
    calls = scripted().CALLS
    system, *rest = calls[1]["messages"]
    assert system.role == "system"
    for fact in ("You are Ada, the counting agent.", "Ada counts things.", "precise", "be terse"):
        assert fact in system.content
    assert [m.content for m in rest] == [
        "remember the number 7",
        "echo: remember the number 7",
        "what was it?",
    ]
    # Another room starts a fresh conversation.
    assert [m.content for m in calls[2]["messages"][1:]] == ["hello from another room"]


async def test_actions_are_offered_as_tools_and_run(scripted_character) -> None:
    tools = Tools()
    agent = Agent.from_file(scripted_character(), plugins=[tools])
    async with agent:
        reply = await agent.chat("please get_weather")
    offered = {t.name: t for t in scripted().CALLS[0]["tools"]}
    assert offered["get_weather"].description == "The weather in a city."
    assert offered["get_weather"].parameters["required"] == ["city"]
    assert offered["get_weather"].parameters["properties"]["unit"]["default"] == "C"
    assert reply.actions[0].ok and reply.actions[0].output == "Lisbon: 21°C"
    assert reply.text == "tool said: Lisbon: 21°C [signed]"


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ("explode", "error: explode failed: kaboom"),
        ("slow_sleep", "error: slow_sleep timed out after 0.05s"),
    ],
)
async def test_a_failing_action_is_reported_not_fatal(scripted_character, tool, expected) -> None:
    async with Agent.from_file(scripted_character(), plugins=[Tools()]) as agent:
        reply = await agent.chat(f"run {tool} now")
    assert reply.actions[0].ok is False
    assert reply.actions[0].output == expected
    assert reply.text.startswith(f"tool said: {expected}")


async def test_bad_arguments_and_unknown_actions_are_told_to_the_model(scripted_character) -> None:
    agent = Agent.from_file(scripted_character(), plugins=[Tools()])
    async with agent:
        bad = await agent.run_action("get_weather", {"town": "Oslo"})
        unknown = await agent.run_action("fly", {})
    assert not bad.ok and "city: Field required" in bad.output
    assert not unknown.ok and "there is no action 'fly'" in unknown.output


async def test_before_action_blocks_below_the_model(scripted_character) -> None:
    class Policy:
        @hookimpl
        def before_action(self, action: str, arguments: dict[str, Any]) -> bool:
            return action != "get_weather"

    async with Agent.from_file(scripted_character(), plugins=[Tools(), Policy()]) as agent:
        reply = await agent.chat("get_weather please")
    assert reply.actions[0].ok is False
    assert "was not run: blocked by" in reply.actions[0].output


async def test_an_action_that_did_not_run_says_why_for_code(scripted_character) -> None:
    class Spender:
        @hookimpl
        def register_actions(self, register: Any) -> None:
            async def overspend() -> str:
                """Pays too much."""
                raise SpendDenied("refused: over the maximum per payment")

            async def odd(n: int) -> str:
                """Refuses odd numbers."""
                if n % 2:
                    raise ValueError(f"{n} is odd")
                return "even"

            register(overspend)
            register(odd)

    async with Agent.from_file(scripted_character(), plugins=[Tools(), Spender()]) as agent:
        results = {
            "ok": await agent.run_action("odd", {"n": 2}),
            "unknown": await agent.run_action("fly", {}),
            "denied": await agent.run_action("overspend", {}),
            "invalid": await agent.run_action("odd", {"n": 3}),
            "arguments": await agent.run_action("odd", {"n": "three"}),
            "timeout": await agent.run_action("slow_sleep", {}),
            "failed": await agent.run_action("explode", {}),
        }
    assert {k: r.error for k, r in results.items()} == {
        "ok": None, "unknown": "unknown", "denied": "denied", "invalid": "invalid",
        "arguments": "invalid", "timeout": "timeout", "failed": "failed",
    }  # fmt: skip
    assert results["denied"].output.endswith("refused: over the maximum per payment")


async def test_a_service_brings_actions_it_learns_when_it_starts(scripted_character) -> None:
    class Lister:
        """Knows its actions only once started, as an MCP client does after tools/list."""

        name = "lister"

        def __init__(self) -> None:
            self.tools: list[Any] = []

        async def start(self) -> None:
            async def get_time(zone: str = "UTC") -> str:
                """The time in a zone."""
                return f"noon in {zone}"

            async def get_weather(city: str) -> str:
                """Taken already: the first owner keeps the name."""
                return "never"

            self.tools = [get_time, get_weather]

        async def stop(self) -> None:
            self.tools = []

        def actions(self) -> list[Any]:
            return self.tools

    class Services:
        @hookimpl
        def register_services(self, register: Any) -> None:
            register(Lister())

    agent = Agent.from_file(scripted_character(), plugins=[Tools(), Services()])
    async with agent:
        reply = await agent.chat("get_time please")
        offered = [t.name for t in scripted().CALLS[-1]["tools"]]
        weather = await agent.run_action("get_weather", {"city": "Oslo"})
    assert offered.count("get_weather") == 1 and "get_time" in offered
    assert reply.actions[0].ok and weather.output == "Oslo: 21°C"
    assert "get_time" not in agent.actions and "get_weather" in agent.actions  # gone at stop


class Transfer(BaseModel):
    to: str
    amount: int


async def test_pydantic_model_parameter_becomes_the_schema() -> None:
    def pay(transfer: Transfer) -> dict[str, Any]:
        """Pay someone."""
        return {"paid": transfer.amount, "to": transfer.to}

    action = Action.from_function(pay)
    assert action.spec().parameters["required"] == ["to", "amount"]
    assert await action.run({"to": "bob", "amount": 3}) == '{"paid": 3, "to": "bob"}'
    with pytest.raises(ValueError, match="amount"):
        await action.run({"to": "bob", "amount": "lots"})


async def test_evaluators_hooks_and_timings(scripted_character) -> None:
    tools = Tools()
    async with Agent.from_file(scripted_character(), plugins=[tools]) as agent:
        reply = await agent.chat("hi")
    assert tools.evaluated == ["echo: hi"]
    assert tools.published[0].text == "echo: hi [signed]"
    assert reply.receipts == {"test": {"seen": True}}
    for stage in ("context", "model", "actions", "evaluators", "memory", "publish", "total"):
        assert reply.timings[stage] >= 0
    assert reply.timings["total"] >= reply.timings["model"]
    assert reply.usage.completion_tokens == 2


async def test_fallback_chain_records_which_model_answered(scripted_character) -> None:
    path = scripted_character(models={"large": ["broken", "scripted"]})
    async with Agent.from_file(path) as agent:
        reply = await agent.chat("hi")
    assert reply.text == "echo: hi"
    assert reply.model == "scripted"


async def test_many_agents_in_one_process_keep_their_own_state(
    scripted_character, tmp_path: Path
) -> None:
    a = Agent.from_file(scripted_character(name="A", data_dir=str(tmp_path / "a")))
    b = Agent.from_file(
        scripted_character(name="B", system="You are B.", data_dir=str(tmp_path / "b"))
    )
    async with a, b:
        await asyncio.gather(*(agent.chat(f"n{i}") for i in range(5) for agent in (a, b)))
        await a.chat("last", room="default")
    last = scripted().CALLS[-1]["messages"]
    assert "You are B." not in last[0].content
    assert all(m.content.startswith(("n", "echo: n", "last")) for m in last[1:])


def test_chat_sync_for_scripts(scripted_character) -> None:
    agent = Agent.from_file(scripted_character())
    assert agent.chat_sync("one").text == "echo: one"
    assert agent.chat_sync("two").text == "echo: two"  # same started agent, same loop
    agent.close_sync()


async def test_missing_model_plugin_is_named(scripted_character) -> None:
    agent = Agent.from_file(scripted_character(models={"large": "nobody-serves-this"}))
    with pytest.raises(Exception, match="no installed plugin serves model 'nobody-serves-this'"):
        await agent.start()


async def test_an_agent_does_not_start_half_configured(scripted_character) -> None:
    started: list[str] = []

    class Clients:
        @hookimpl
        def register_clients(self, register: Any) -> None:
            class Good:
                name = "good"

                async def start(self) -> None:
                    started.append("good")

                async def stop(self) -> None:
                    started.remove("good")

            class Bad(Good):
                name = "bad"

                async def start(self) -> None:
                    raise ConnectionError("cannot log in")

            register("good", lambda ctx, agent: Good())
            register("bad", lambda ctx, agent: Bad())

    agent = Agent.from_file(scripted_character(clients=["good", "bad"]), plugins=[Clients()])
    with pytest.raises(PluginError, match=r"could not start \(ConnectionError: cannot log in\)"):
        await agent.start()
    assert started == []  # the good client was stopped again

    missing = Agent.from_file(scripted_character(clients=["matrix"]))
    with pytest.raises(PluginError, match="plugin 'matrix': client is not installed"):
        await missing.start()


async def test_streaming_shows_text_as_it_comes(scripted_character) -> None:
    chunks: list[str] = []
    path = scripted_character(models={"large": ["broken", "scripted-stream"]})
    async with Agent.from_file(path, plugins=[Tools()]) as agent:
        reply = await agent.chat("tell me a story", on_text=chunks.append)
        tool_reply = await agent.chat("get_weather in streaming", on_text=chunks.append)
    assert chunks[:4] == ["echo:", " tell", " me", " a"]
    assert "".join(chunks[:5]) + " [signed]" == reply.text
    assert reply.model == "scripted-stream"
    assert tool_reply.text == "tool said: Lisbon: 21°C [signed]"


async def test_two_agents_on_one_data_dir_are_told_so(scripted_character) -> None:
    # Their connectors would keep balances in one ledger file and overwrite each other's.
    a = Agent.from_file(scripted_character(name="A"))
    b = Agent.from_file(scripted_character(name="B"))
    async with a:
        with pytest.raises(Exception, match=r"B: the connector cannot start: .* is in use"):
            await b.start()


def test_posts_follow_the_post_style_and_examples_and_the_username_is_used() -> None:
    from aigent import Character
    from aigent.prompt import system_prompt

    c = Character.model_validate({
        "name": "Eliza", "username": "eliza_ai",
        "style": {"all": ["plain words"], "chat": ["be warm"], "post": ["under 280 characters"]},
        "message_examples": [[{"user": "ann", "text": "hi"}, {"user": "Eliza", "text": "hey"}]],
        "post_examples": ["ILP is how agents pay each other."],
    })  # fmt: skip
    chat = system_prompt(c)
    post = system_prompt(c, kind="post")
    assert "@eliza_ai" in chat
    assert "be warm" in chat and "under 280 characters" not in chat and "ann: hi" in chat
    assert "under 280 characters" in post and "be warm" not in post
    assert "ILP is how agents pay each other." in post and "ann: hi" not in post
