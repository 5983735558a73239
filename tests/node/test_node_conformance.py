"""The Node.js server passes the same conformance suite as the Python one, in both execution modes."""

from __future__ import annotations

import pytest

from agentgym.client.conformance import Suite
from tests.node.conftest import StartNode, requires_node

pytestmark = requires_node


@pytest.mark.parametrize(
    "execution",
    [
        # As the envs declare: conformance in a worker thread per episode, sokoban inline.
        [],
        # Swapped: the fixture's hang becomes an awaited timer, sokoban gets worker threads.
        ["--execution", "conformance=inline", "--execution", "sokoban=worker"],
    ],
    ids=["default", "swapped"],
)
async def test_node_server_passes_conformance(start_node: StartNode, execution: list[str]) -> None:
    srv = await start_node("--envs", "sokoban,conformance", *execution)
    results = await Suite(srv.address).run()
    failures = [f"{r.name}: {r.status} {r.detail}" for r in results if r.status != "PASS"]
    assert not failures, failures
    assert len(results) == 20
