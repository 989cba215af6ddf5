"""The house's layout holds: the core imports no plugin, and its modules import no cycle.

Imports under ``TYPE_CHECKING`` are counted only where the core allows them (the Protocols in
``interfaces`` name the ``Agent`` they are handed); every other edge, lazy imports inside
functions included, must point one way.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "aigent"
# interfaces' Protocols are handed an Agent; runtime implements them. A type-only edge.
TYPE_ONLY_BACK_EDGES = {("interfaces", "runtime")}


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for file in CORE.rglob("*.py"):
        name = ".".join(file.relative_to(CORE).with_suffix("").parts)
        targets = edges.setdefault(name, set())
        for node in ast.walk(ast.parse(file.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("aigent.")
            ):
                target = node.module.removeprefix("aigent.")
                if (name, target) not in TYPE_ONLY_BACK_EDGES and name != "__init__":
                    targets.add(target)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_core_modules_import_no_cycle() -> None:
    cycle = _cycle(_edges())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_core_imports_no_plugin() -> None:
    for file in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                for name in names:
                    assert not name.startswith(
                        ("aigent_trn", "aigent_xrpl", "aigent_twitter", "aigent_chroma",
                         "aigent_litellm", "aigent_local", "aigent_openai", "aigent_sqlite",
                         "aigent_mcp", "aigent_discord", "aigent_telegram")
                    ), f"{file.name} imports {name}"  # fmt: skip
