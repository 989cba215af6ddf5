"""`import aigent` and `aigent --help` stay light: no model, chain, memory or social SDK."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "litellm",
    "openai",
    "chromadb",
    "web3",
    "eth_account",
    "xrpl",
    "tweepy",
    "llama_cpp",
    "torch",
    "numpy",
    "websockets",
    "httpx",
    "aiohttp",
)


def loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.split(".")[0] for name in out.split()}


def test_import_aigent_imports_no_sdk() -> None:
    loaded = loaded_after("import aigent")
    assert not loaded & set(HEAVY)
    assert "pydantic" not in loaded  # even the core models load on first use


def test_help_imports_no_sdk() -> None:
    loaded = loaded_after(
        "import sys\nfrom aigent.cli import main\nsys.argv = ['aigent', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
