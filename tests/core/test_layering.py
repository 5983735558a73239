"""The layering the design promises: `core` imports no other part; the trainer never imports the client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(folder: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(ROOT)), node.module))
            elif isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("core", ("agentgym.client", "agentgym.server", "agentgym.trainer")), ("trainer", ("agentgym.client",))],
)
def test_no_forbidden_imports(folder: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted((f, m) for f, m in imports(folder) if m.startswith(forbidden))
    assert not bad, f"{folder}/ must not import {forbidden}: {bad}"
