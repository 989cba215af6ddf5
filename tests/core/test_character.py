"""Character files: aigent's own format, ElizaOS 0.x/1.x and ZerePy load, map and fail clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aigent import CharacterError, load_character

DATA = Path(__file__).resolve().parent.parent / "data" / "characters"
ROOT = Path(__file__).resolve().parents[2]


def test_default_character_is_aigent_format_on_the_local_model() -> None:
    c = load_character(ROOT / "characters" / "eliza.json")
    assert c.format == "aigent"
    assert [m.model for m in c.models.chain("large")] == ["local"]
    assert c.warnings == []


def test_eliza_0x_maps_provider_clients_secrets_and_examples() -> None:
    c = load_character(DATA / "eliza0.character.json")
    assert c.format == "eliza-0.x"
    assert c.models.large[0].model == "openai/gpt-4o-mini"  # settings.model overrides gpt-4o
    assert c.models.small[0].model == "openai/gpt-4o-mini"
    assert c.clients == ["twitter", "discord"]
    assert c.secrets["OPENAI_API_KEY"] == "sk-character-secret-123456"
    assert c.lore == ["once traded a sandwich for a bitcoin", "keeps a paper ledger"]
    assert c.message_examples[0][1].user == "Trader Joe"
    assert c.message_examples[0][1].actions == ["NONE"]
    assert c.style.all == ["lowercase"]
    assert c.knowledge[1].path == "docs/faq.md"  # type: ignore[union-attr]
    # What has no meaning here is reported, not dropped silently.
    joined = "\n".join(c.warnings)
    for unmapped in ("@elizaos/plugin-solana", "twitterProfile", "settings.voice"):
        assert unmapped in joined


def test_eliza_0x_extends_merges_parents_first() -> None:
    c = load_character(DATA / "child.character.json")
    assert c.name == "Child"
    assert c.bio == ["shared bio line", "child bio line"]  # arrays concatenate
    assert c.topics == ["base topic", "child topic"]
    assert c.style.all == ["be kind", "be brief"]
    assert c.models.large[0].model.startswith("anthropic/")  # inherited modelProvider


def test_extends_cycle_and_missing_parent_are_named(write_character) -> None:
    loop = write_character(
        {"name": "L", "extends": ["loop.json"], "modelProvider": "openai"}, "loop.json"
    )
    with pytest.raises(CharacterError, match=r"extends\[0\]: loop.json extends itself"):
        load_character(loop)
    missing = write_character({"name": "M", "extends": ["nope.json"]}, "m.json")
    with pytest.raises(CharacterError, match=r"extends\[0\]: no such file: nope.json"):
        load_character(missing)


def test_eliza_1x_maps_model_plugins_settings_and_secrets() -> None:
    c = load_character(DATA / "eliza1.json")
    assert c.format == "eliza-1.x"
    assert c.models.small[0].model == "openai/gpt-4o-mini"
    assert c.models.large[0].model == "openai/gpt-4o"
    assert c.clients == ["twitter", "discord"]
    assert c.secrets["OPENAI_API_KEY"] == "sk-eliza1-secret-abcdef"
    assert c.secrets["TWITTER_POST_ENABLE"] == "true"
    assert c.message_examples[0][0].user == "{{name1}}"
    assert not any("discord" in w for w in c.warnings)
    assert not any("plugin-sql" in w or "plugin-bootstrap" in w for w in c.warnings)


def test_zerepy_maps_llm_connections_to_a_fallback_chain_and_the_loop() -> None:
    c = load_character(DATA / "zerepy.json")
    assert c.format == "zerepy"
    chain = c.models.chain("large")
    assert [m.model for m in chain] == [
        "openai/gpt-3.5-turbo",
        "anthropic/claude-3-5-sonnet-20241022",
        "ollama/llama3.2",
        "groq/llama-3.3-70b-versatile",
    ]
    assert chain[2].api_base == "http://localhost:11434"
    assert chain[3].temperature == 0.5
    assert c.adjectives == ["Curious", "Creative", "Funny"]
    assert c.post_examples == ["An example tweet.", "Another example tweet."]
    assert c.clients == ["twitter"]
    assert c.settings["twitter"]["tweet_interval"] == 5400
    assert c.settings["twitter"]["example_accounts"] == ["someaccount"]
    assert c.loop is not None and c.loop.delay == 900
    assert (c.loop.tasks[0].name, c.loop.tasks[0].weight) == ("post-tweet", 1)
    assert c.loop.time_multipliers["tweet_night_multiplier"] == 0.4
    assert any("solana" in w for w in c.warnings)


def test_yaml_is_read(write_character) -> None:
    path = write_character(
        "name: Yam\nbio: a yaml agent\nmodels:\n  large: openai/gpt-4o\n", "yam.yaml"
    )
    c = load_character(path)
    assert c.bio == ["a yaml agent"] and c.models.large[0].model == "openai/gpt-4o"


@pytest.mark.parametrize(
    ("content", "field", "expected"),
    [
        ('{"name": "A", "style": {"all": "lowercase"}, "models": {}}', "style.all", "valid list"),
        (
            '{"name": "A", "bio": [], "lore": [], "messageExamples": [[{"user": "x", "content": '
            '{"text": 5}}]], "modelProvider": "openai"}',
            "messageExamples[0][0].content.text",
            "valid string",
        ),
        ('{"bio": ["x"], "models": {}}', "name", "required field is missing"),
        ('{"name": "A", "modles": {}, "price": {"amount": 1}}', "modles", "unknown field"),
        ('{"name": "A", "price": {"amount": -1}}', "price.amount", "greater than or equal"),
        (
            '{"name": "Z", "traits": [], "bio": [], "examples": [], "loop_delay": "soon", '
            '"config": [], "tasks": []}',
            "loop_delay",
            "valid number",
        ),
    ],
)
def test_bad_fields_are_named_with_their_path(write_character, content, field, expected) -> None:
    path = write_character(content, "bad.json")
    with pytest.raises(CharacterError) as info:
        load_character(path)
    message = str(info.value)
    assert f"{path}: {field}: " in message
    assert expected in message


def test_broken_json_gets_line_and_column(write_character) -> None:
    path = write_character('{\n  "name": "A",\n  "bio": ["x",]\n}', "broken.json")
    with pytest.raises(CharacterError, match=r"broken.json: invalid JSON at line 3, column"):
        load_character(path)


def test_validate_cli_reports_format_summary_and_errors_without_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "A", "style": {"all": "lowercase"}, "models": {}}')
    good = [str(ROOT / "characters" / "eliza.json"), str(DATA / "zerepy.json")]
    ok = subprocess.run(
        [sys.executable, "-m", "aigent.cli", "validate", *good], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "eliza.json: aigent: Eliza" in ok.stdout
    assert "zerepy.json: zerepy: ZeroAgent" in ok.stdout
    failed = subprocess.run(
        [sys.executable, "-m", "aigent.cli", "validate", str(bad), *good],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1
    assert f"{bad}: style.all: Input should be a valid list" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    assert "zerepy: ZeroAgent" in failed.stdout  # the good files are still checked


def test_elizaos_templates_are_named_as_unused(write_character) -> None:
    from aigent import load_character

    path = write_character({
        "name": "T", "modelProvider": "openai", "clients": [], "bio": "b", "lore": [],
        "templates": {"messageHandlerTemplate": "{{bio}}"},
    })  # fmt: skip
    character = load_character(path)
    assert any("templates (messageHandlerTemplate)" in w for w in character.warnings)
