"""Secrets: a documented order of sources, and never printed or logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aigent import Agent, MissingSecret, ModelError, Secrets
from aigent.secrets import RedactingFilter, read_dotenv


def test_environment_beats_dotenv_beats_the_character(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('# keys\nexport A_KEY="from-dotenv"\nB_KEY=from-dotenv # note\nC_KEY=\n')
    secrets = Secrets(
        {"A_KEY": "from-character", "B_KEY": "from-character", "C_KEY": "from-character"},
        [env_file],
        environ={"A_KEY": "from-environment"},
    )
    assert secrets.get("A_KEY") == "from-environment"
    assert secrets.get("B_KEY") == "from-dotenv"
    assert secrets.get("C_KEY") == "from-character"  # an empty value does not hide a real one
    assert secrets.get("D_KEY") is None
    assert read_dotenv(tmp_path / "absent.env") == {}


def test_missing_secret_says_how_to_fix_it() -> None:
    with pytest.raises(MissingSecret, match="OpenAI needs OPENAI_API_KEY, which is not set: set"):
        Secrets({}, [], environ={}).require("OPENAI_API_KEY", "OpenAI")


def test_values_never_show_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secrets = Secrets({"API_KEY": "sk-very-secret-value-42"}, [], environ={})
    assert "sk-very-secret" not in repr(secrets)
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda record: records.append(logging.Formatter().format(record))  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("aigent.test.secrets")
    log.addHandler(handler)
    try:
        log.warning("calling with key %s", secrets.get("API_KEY"))
        try:
            raise RuntimeError("auth failed for sk-very-secret-value-42")
        except RuntimeError:
            log.exception("provider error")
    finally:
        log.removeHandler(handler)
    joined = "\n".join(records)
    assert "sk-very-secret-value-42" not in joined
    assert "calling with key ***" in joined and "auth failed for ***" in joined


async def test_a_failing_model_chain_does_not_leak_the_key(scripted_character) -> None:
    path = scripted_character(
        models={"large": ["broken", "broken"]}, secrets={"SCRIPTED_KEY": "sk-leaky-provider-key"}
    )
    agent = Agent.from_file(path)
    async with agent:
        first = agent.model.models[0]  # type: ignore[union-attr]

        async def leaky(messages, tools=()):  # type: ignore[no-untyped-def]
            # What some SDKs do: echo the credential back in the error text.
            raise ConnectionError(f"401 for key {agent.secrets.get('SCRIPTED_KEY')}")

        first.chat = leaky
        with pytest.raises(ModelError) as info:
            await agent.chat("hi")
    assert "sk-leaky-provider-key" not in str(info.value)
    assert "401 for key ***" in str(info.value)
