"""Node configuration: YAML in, pydantic models out, errors that point at the file, field and
line, and tokens that never leak."""

from __future__ import annotations

from pathlib import Path

import pytest
from aigent_connector.config import ConfigError, load_config, parse_config

GOOD = """\
node_id: hub
address: g.hub
asset_code: XRP
asset_scale: 6
listen:
  host: 127.0.0.1
  port: 0
ledger_path: data/hub.sqlite
admin:
  port: 0
  token_env: HUB_ADMIN
spread: "0.002"
rates:
  - {from: XRP, to: USD, rate: "0.5"}
peers:
  alice:
    relation: child
    token_env: ALICE_BTP_TOKEN
    max_packet_amount: 1000
    max_balance: 5000
  upstream:
    relation: peer
    url: ws://127.0.0.1:7768
    token_env: UP_BTP_TOKEN
    settle_threshold: -1000
    settle_to: 0
routes:
  - {prefix: g.other, account: upstream}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_config_loads_with_paths_beside_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.address == "g.hub" and config.listen is not None
    assert config.peers["alice"].relation == "child"
    assert config.peers["alice"].max_packet_amount == 1000
    assert config.peers["upstream"].settle_threshold == -1000
    assert config.routes[0].prefix == "g.other"
    assert str(config.spread) == "0.002" and str(config.rates[0].rate) == "0.5"
    assert config.ledger_path == tmp_path / "data" / "hub.sqlite"


def test_an_error_names_the_file_the_field_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("relation: child", "relation: sibling"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "peers.alice.relation (line 17)" in message
    assert "'parent', 'peer' or 'child'" in message


def test_unknown_fields_and_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"peers\.alice\.colour .*line 17"):
        load_config(write(tmp_path, GOOD.replace("alice:\n", "alice:\n    colour: red\n")))
    with pytest.raises(ConfigError, match="not a valid ILP address"):
        load_config(write(tmp_path, GOOD.replace("address: g.hub", "address: nowhere")))
    with pytest.raises(ConfigError, match="unknown peer 'nobody'"):
        load_config(write(tmp_path, GOOD.replace("account: upstream", "account: nobody")))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "node_id: [unclosed"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_a_node_needs_an_address_or_a_parent_to_ask() -> None:
    with pytest.raises(ConfigError, match="give an ILP address, or a parent"):
        parse_config({"node_id": "x"})
    with pytest.raises(ConfigError, match="parent 'hub' must be a peer with relation parent"):
        parse_config({"node_id": "x", "parent": "hub"})
    config = parse_config({"node_id": "x", "parent": "hub", "peers": {"hub": {
        "relation": "parent", "url": "ws://127.0.0.1:1", "token_env": "T_BTP_TOKEN"}}})  # fmt: skip
    assert config.address is None


def test_peers_that_dial_in_need_a_listener_and_every_peer_a_token() -> None:
    with pytest.raises(ConfigError, match="set listen"):
        parse_config({"node_id": "x", "address": "g.x",
                      "peers": {"a": {"token_env": "T_BTP_TOKEN"}}})  # fmt: skip
    with pytest.raises(ConfigError, match="needs token_env"):
        parse_config({"node_id": "x", "address": "g.x", "listen": {}, "peers": {"a": {}}})


def test_tokens_come_from_the_environment_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="ALICE_BTP_TOKEN is not set"):
        config.peers["alice"].resolve_token("peers.alice.token_env")
    monkeypatch.setenv("ALICE_BTP_TOKEN", "s3cret-alice-token")
    assert config.peers["alice"].resolve_token("x") == "s3cret-alice-token"
    inline = parse_config({"node_id": "x", "address": "g.x", "listen": {},
                           "peers": {"a": {"token": "inline-s3cret"}}})  # fmt: skip
    assert "inline-s3cret" not in repr(inline) and "inline-s3cret" not in str(inline)
    assert inline.peers["a"].resolve_token("x") == "inline-s3cret"


def test_a_peer_token_is_read_only_from_a_variable_named_as_one(tmp_path: Path) -> None:
    # A peer's token is sent to its url: a shared config (or character file) that could name
    # any variable could have the node hand any secret to a server of its author's choosing.
    path = write(tmp_path, GOOD.replace("token_env: UP_BTP_TOKEN", "token_env: OPENAI_API_KEY"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "peers.upstream.token_env (line 24)" in message
    assert "does not end in _BTP_TOKEN" in message and "inline" in message
    with pytest.raises(ConfigError, match=r"admin\.token.*empty"):
        parse_config({"node_id": "x", "address": "g.x", "admin": {"token": ""}})
