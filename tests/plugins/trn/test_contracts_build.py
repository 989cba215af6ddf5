"""The committed contract artefacts are what the sources compile to (solc-js 0.8.37 from npm,
offline), so anyone can check the bytecode the plugin deploys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from aigent_trn import chain

from tests.fixtures.anvil import REPO, ensure_installed

CONTRACTS = ("AnchorRegistry", "SimpleToken", "DexRouterStandIn")


@pytest.mark.slow
def test_build_script_reproduces_the_committed_bytecode(tmp_path: Path) -> None:
    ensure_installed()
    script = REPO / "plugins" / "trn" / "contracts" / "build.js"
    subprocess.run(["node", str(script), str(tmp_path)], check=True, capture_output=True)
    for name in CONTRACTS:
        rebuilt = json.loads((tmp_path / f"{name}.json").read_text())
        committed = chain.artefact(name)
        assert rebuilt["bytecode"] == committed["bytecode"], f"{name}.json is stale"
        assert rebuilt["abi"] == committed["abi"]
        assert committed["evmVersion"] == "shanghai"  # TRN runs Shanghai, not Cancun
