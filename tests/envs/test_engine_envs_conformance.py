"""The conformance suite passes with the engine-backed envs (BabyAI, BIRD) hosted: their
lifecycle, determinism and bad-action handling over the real protocol."""

from __future__ import annotations

from agentgym.client.conformance import Suite
from tests.conftest import StartServer


async def test_conformance_with_babyai_and_bird(start_server: StartServer) -> None:
    srv = await start_server(envs=["babyai", "bird", "conformance"], step_timeout_s=2.0)
    results = await Suite(f"127.0.0.1:{srv.port}").run()
    failures = [f"{r.name}: {r.detail}" for r in results if r.status != "PASS"]
    assert not failures, failures
    determinism = next(r for r in results if r.name.startswith("determinism"))
    assert "babyai" in determinism.detail and "bird" in determinism.detail
