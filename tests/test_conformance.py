"""The project's own server passes the conformance suite, in every execution mode."""

from __future__ import annotations

import pytest

from agentgym.client.conformance import Suite
from tests.conftest import CORE_ENVS, StartServer


@pytest.mark.parametrize("execution", ["default", "process"])
async def test_server_passes_conformance(start_server: StartServer, execution: str) -> None:
    overrides = {"conformance": "process", "maze": "process"} if execution == "process" else {}
    srv = await start_server(envs=CORE_ENVS, step_timeout_s=2.0, execution=overrides)
    results = await Suite(f"127.0.0.1:{srv.port}").run()
    failures = [f"{r.name}: {r.detail}" for r in results if r.status != "PASS"]
    assert not failures, failures
    assert len(results) == 20
