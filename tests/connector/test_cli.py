"""``aigent-connector`` and ``aigent connector``: validate a file, start a node as a real
process, ask it for its health over HTTP, stop it with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aigent_connector.cli import app
from typer.testing import CliRunner

BIN = Path(sys.executable).parent
ADMIN_TOKEN = "cli-admin-" + os.urandom(6).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_yaml(tmp: Path, admin_port: int = 0) -> Path:
    path = tmp / "hub.yaml"
    path.write_text(
        f"""\
node_id: hub
address: g.hub
listen: {{port: 0}}
ledger_path: hub.sqlite
admin: {{port: {admin_port}, token_env: HUB_ADMIN_TOKEN}}
peers:
  alice: {{relation: child, token_env: ALICE_BTP_TOKEN, max_balance: 1000}}
""",
        encoding="utf-8",
    )
    return path


def env() -> dict[str, str]:
    return {**os.environ, "HUB_ADMIN_TOKEN": ADMIN_TOKEN, "ALICE_BTP_TOKEN": "alice-cli-token"}


def test_validate_says_what_the_node_is_or_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    path = node_yaml(tmp_path)
    missing = runner.invoke(app, ["validate", str(path)])
    assert missing.exit_code == 1 and "ALICE_BTP_TOKEN is not set" in missing.output
    for key, value in env().items():
        monkeypatch.setenv(key, value)
    ok = runner.invoke(app, ["validate", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "node hub g.hub, 1 peers, 0 routes" in ok.output
    assert "alice-cli-token" not in ok.output and ADMIN_TOKEN not in ok.output
    path.write_text(path.read_text().replace("relation: child", "relation: cousin"))
    bad = runner.invoke(app, ["validate", str(path)])
    assert bad.exit_code == 1
    assert f"{path}: peers.alice.relation (line 7)" in bad.output


def test_aigent_has_the_connector_commands_through_its_plugin() -> None:
    result = subprocess.run([BIN / "aigent", "connector", "--help"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for command in ("start", "validate", "health"):
        assert command in result.stdout


def test_health_of_a_node_that_is_not_there_fails() -> None:
    result = CliRunner().invoke(app, ["health", "--url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1 and "did not answer" in result.output


@pytest.mark.slow
def test_start_a_node_ask_its_health_and_stop_it(tmp_path: Path) -> None:
    port = free_port()
    path = node_yaml(tmp_path, port)
    node = subprocess.Popen([BIN / "aigent-connector", "start", str(path)], env=env(),
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            health = subprocess.run(
                [BIN / "aigent-connector", "health", "--url", url, "--token", ADMIN_TOKEN],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if health.returncode == 0 or time.monotonic() > deadline or node.poll() is not None:
                break
            time.sleep(0.3)
        assert health.returncode == 0, health.stderr
        report = json.loads(health.stdout)
        assert report["status"] == "ok" and report["address"] == "g.hub"
        assert report["peers"] == [{"account": "alice", "relation": "child", "asset_code": "XRP",
                                    "asset_scale": 6, "max_packet_amount": None,
                                    "connected": False}]  # fmt: skip
        assert report["balances"]["alice"]["max_balance"] == 1000
        refused = subprocess.run(
            [BIN / "aigent-connector", "health", "--url", url, "--token", "wrong-token"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and "refused" in refused.stderr
    finally:
        node.send_signal(signal.SIGTERM)
        _, stderr = node.communicate(timeout=30)
    assert node.returncode == 0, stderr
    assert f"admin API on http://127.0.0.1:{port}" in stderr
    assert ADMIN_TOKEN not in stderr and "alice-cli-token" not in stderr
