"""The CLI as a user meets it: chat, run (piped and in a terminal), new, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.fixtures.terminal import Terminal

AIGENT = [sys.executable, "-m", "aigent.cli"]


def aigent(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AIGENT, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_version_and_help() -> None:
    assert aigent("--version").stdout.strip() == "aigent 0.1.0"
    out = aigent("--help").stdout
    for command in ("run", "chat", "validate", "plugins", "new"):
        assert command in out


def test_chat_one_message(scripted_character) -> None:
    result = aigent("chat", str(scripted_character()), "--message", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: hello there\n"


def test_run_answers_piped_lines_and_shows_the_agent(scripted_character) -> None:
    result = aigent(
        "run", str(scripted_character(price={"amount": 1000})), stdin="first\n\nsecond\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["echo: first", "echo: second"]
    assert "Tester is running — model scripted" in result.stderr
    assert result.stderr.count("0.001 XRP") == 1, result.stderr  # the price, stated once
    assert "price 0.001 XRP per paid message" in result.stderr


def test_run_without_a_price_says_once_that_paid_messages_are_refused(scripted_character) -> None:
    result = aigent("run", str(scripted_character()), stdin="hi\n")
    assert result.returncode == 0, result.stderr
    assert "free" not in result.stderr, result.stderr  # not "free" here and "refused" there
    assert result.stderr.count("price ") == 1
    assert "price none set, so paid messages are refused" in result.stderr


def test_model_option_overrides_the_characters_models(scripted_character) -> None:
    """A ZerePy file whose provider key we do not have runs on another model with --model."""
    zerepy = str(DATA / "characters" / "zerepy.json")
    without = aigent("chat", zerepy, "-m", "hi")
    assert without.returncode == 1 and "OPENAI_API_KEY" in without.stderr
    # A GGUF file that is not there fails fast, and shows that the override is what ran.
    local = aigent("chat", zerepy, "--model", "local/missing.gguf", "-m", "hi")
    assert "local model file not found" in local.stderr and "OPENAI_API_KEY" not in local.stderr
    chat = aigent("chat", str(scripted_character()), "--model", "broken", "-m", "hi")
    assert chat.returncode == 1 and "broken: provider is down" in chat.stderr


def test_run_in_a_terminal_is_a_chat(scripted_character) -> None:
    terminal = Terminal([*AIGENT, "run", str(scripted_character())])
    try:
        terminal.read_until(b"user> ")
        terminal.type("hello agent")
        terminal.read_until(b"Tester> echo: hello agent")
        terminal.type("/quit")
        assert terminal.proc.wait(timeout=20) == 0
    finally:
        terminal.close()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"name": "A", "models": {"large": "scripted"}, "plugins": ["nope_plugin_xyz"]}',
            "error: plugin 'nope_plugin_xyz': is not installed",
        ),
        ('{"name": "A", "style": {"all": 3}, "models": {}}', "style.all: Input should be"),
        ('{"name": ', "invalid JSON at line 1, column 10"),
    ],
)
def test_errors_are_one_clear_message_without_traceback(tmp_path, content, expected) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    result = aigent("chat", str(path), "-m", "hi")
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_new_scaffolds_a_valid_character_and_a_plugin_project(tmp_path) -> None:
    assert aigent("new", "Night Owl", "--dir", str(tmp_path)).returncode == 0
    assert aigent("validate", str(tmp_path / "night-owl.json")).returncode == 0
    result = aigent("new", "moon", "--plugin", "--dir", str(tmp_path))
    assert result.returncode == 0
    assert (tmp_path / "aigent-moon" / "pyproject.toml").read_text().count("moon = ") == 1
    module = tmp_path / "aigent-moon" / "aigent_moon" / "__init__.py"
    assert "@hookimpl" in module.read_text()
    again = aigent("new", "Night Owl", "--dir", str(tmp_path))
    assert again.returncode == 1 and "already exists" in again.stderr
