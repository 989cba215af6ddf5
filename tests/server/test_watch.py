"""A watched directory: files added, changed and removed while the server runs are followed,
and one removed while it was down is forgotten at the next start."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from aigent_server.app import Settings

from tests.fixtures.openai_server import OpenAIServer
from tests.server.conftest import TOKEN, character, serve, wait_for


def _agents(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in client.get("/api/agents").json()}


def _write(path: Path, data: dict[str, Any] | str) -> None:
    text = data if isinstance(data, str) else json.dumps(data)
    path.write_text(text, encoding="utf-8")
    # Some filesystems keep mtime to the second: a rewrite within it must still be seen.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_files_come_change_and_go_while_the_server_runs(
    tmp_path: Path, model: OpenAIServer
) -> None:
    folder = tmp_path / "characters"
    folder.mkdir()
    first = folder / "ada.json"
    _write(first, character(model, "Ada"))
    settings = Settings(
        data_dir=tmp_path / "data", files=[first], token=TOKEN, watch=[folder], watch_seconds=0.1
    )
    served = serve(settings)
    try:
        with served.operator() as client:
            wait_for(lambda: _agents(client).get("Ada", {}).get("state") == "running", what="Ada")

            # Added: served and started.
            _write(folder / "bo.yaml", "name: Bo\nbio: [new here]\n" + _models(model))
            wait_for(lambda: _agents(client).get("Bo", {}).get("state") == "running", what="Bo")

            # Changed: reloaded, and the running agent restarts on the new file.
            _write(first, character(model, "Ada", system="You are Ada, version two."))

            def speaks_v2() -> bool:
                answer = client.post("/api/agents/Ada/messages", json={"text": "who are you?"})
                if answer.status_code != 200:
                    return False  # restarting
                return "version two" in json.dumps(model.requests[-1].body["messages"])

            wait_for(speaks_v2, what="Ada to answer from her new file")

            # Broken: reported, not served, and the others run on; fixed: served.
            _write(folder / "cy.json", '{"name": "Cy", "bio": 1}')
            _write(folder / "notes.txt", "not a character")
            wait_for(lambda: "Cy" not in _agents(client), what="a scan")
            _write(folder / "cy.json", character(model, "Cy"))
            wait_for(lambda: _agents(client).get("Cy", {}).get("state") == "running", what="Cy")

            # Renamed inside the file: the old agent goes, the new one comes.
            _write(folder / "cy.json", character(model, "Cyrus"))
            wait_for(lambda: "Cyrus" in _agents(client) and "Cy" not in _agents(client),
                     what="Cy to become Cyrus")  # fmt: skip

            # Removed: stopped and forgotten.
            (folder / "bo.yaml").unlink()
            wait_for(lambda: "Bo" not in _agents(client), what="Bo to go")
            assert set(_agents(client)) == {"Ada", "Cyrus"}
    finally:
        served.stop()

    # Removed while the server was down: forgotten at the next start, not shown as failed.
    (folder / "cy.json").unlink()
    again = serve(Settings(data_dir=tmp_path / "data", files=[first], token=TOKEN,
                           watch=[folder], watch_seconds=0.1))  # fmt: skip
    try:
        with again.operator() as client:
            wait_for(lambda: set(_agents(client)) == {"Ada"}, what="Cyrus to be forgotten")
    finally:
        again.stop()


def _models(model: OpenAIServer) -> str:
    return f"models:\n  large:\n    model: openai/gpt-4o-mini\n    api_base: {model.url}\n"
