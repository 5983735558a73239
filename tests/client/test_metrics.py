"""Prometheus metrics of the hf policy server and of the rollout client, scraped over HTTP: requests by
route and status, tokens, batch sizes; episodes finished and failed, retries, per-turn latencies;
`agentgym eval --metrics-port` scraped while it runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from prometheus_client import REGISTRY

from agentgym.client import EnvClient
from agentgym.client.policies import make_policy
from agentgym.client.policies.base import Sampling
from agentgym.client.policies.hf import HFPolicy
from agentgym.client.policies.hf_server import PolicyServer
from agentgym.client.react import EpisodeSpec
from agentgym.client.rollout import Rollout, RolloutConfig
from agentgym.client.tasks import expand
from tests.conftest import StartServer, wait_for
from tests.core.test_metrics import ascrape
from tests.test_cli import free_port


async def test_policy_server_counts_requests_tokens_and_batches(tiny_model: str) -> None:
    policy = HFPolicy(tiny_model, Sampling(temperature=0.0, max_new_tokens=4), max_batch=8)
    await policy.start()
    server = PolicyServer(policy)
    await server.start(metrics_port=0)
    try:
        assert server.metrics is not None
        port = server.metrics.port
        before = await ascrape(port)
        prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10, 11]]
        params = {"max_new_tokens": 4, "temperature": 0}
        url = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/generate", json={"input_ids": prompts[0], "sampling_params": params}
            ) as r:
                assert r.status == 200
                one = await r.json()
            batch = {"input_ids": prompts[1:], "sampling_params": params}
            async with http.post(f"{url}/generate", json=batch) as r:
                assert r.status == 200
                many = await r.json()
            async with http.post(f"{url}/generate", data=b"not json") as r:
                assert r.status == 400
            async with http.get(f"{url}/no/such/route") as r:
                assert r.status == 404
            async with http.get(f"{url}/health") as r:
                assert r.status == 200
        after = await ascrape(port)

        def moved(name: str, **labels: str) -> float:
            return after.minus(before, name, **labels)

        assert moved("agentgym_policy_requests_total", route="/generate", status="200") == 2
        assert moved("agentgym_policy_requests_total", route="/generate", status="400") == 1
        assert moved("agentgym_policy_requests_total", route="(unmatched)", status="404") == 1
        assert moved("agentgym_policy_requests_total", route="/health", status="200") == 1
        replies = [one, *many]
        assert moved("agentgym_policy_generated_tokens_total") == sum(len(r["output_ids"]) for r in replies)
        assert moved("agentgym_policy_prompt_tokens_total") == sum(len(p) for p in prompts)
        assert moved("agentgym_policy_generate_seconds_count") == 4  # one per prompt
        # Batches: however the batcher grouped them, they held the four prompts.
        assert moved("agentgym_policy_batch_size_sum") == 4
        assert 2 <= moved("agentgym_policy_batch_size_count") <= 4
    finally:
        await server.stop()
        await policy.close()
    assert server.metrics is None


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_rollout_counts_episodes_failures_retries_and_turns(start_server: StartServer) -> None:
    server = await start_server(envs=["maze", "conformance"])
    names = [
        ("agentgym_rollout_episodes_total", {"env": "maze", "outcome": "finished"}),
        ("agentgym_rollout_episodes_total", {"env": "maze", "outcome": "failed"}),
        ("agentgym_rollout_episodes_total", {"env": "conformance", "outcome": "finished"}),
        ("agentgym_rollout_successes_total", {"env": "maze"}),
        ("agentgym_rollout_retries_total", {"env": "conformance"}),
        ("agentgym_rollout_policy_seconds_count", {"env": "maze"}),
        ("agentgym_rollout_step_seconds_count", {"env": "maze"}),
        ("agentgym_rollout_live_episodes", {}),
        ("agentgym_creates_total", {"env": "conformance", "code": "RESOURCE_EXHAUSTED"}),
    ]
    before = {(n, tuple(sorted(labels.items()))): sample(n, **labels) for n, labels in names}

    def moved(name: str, **labels: str) -> float:
        return sample(name, **labels) - before[(name, tuple(sorted(labels.items())))]

    async with EnvClient(server.address) as client:
        # The server admits 4 conformance episodes: with all 4 held, the rollout's is refused
        # (RESOURCE_EXHAUSTED, transient) and replayed until they are let go.
        held = [await client.open_episode("conformance", i) for i in range(4)]
        specs = [*expand({"maze": [0, 1, 2]}), EpisodeSpec("maze", 99_999), EpisodeSpec("conformance", 5)]
        engine = Rollout(client, make_policy("expert"), RolloutConfig(retries=20, progress=False))
        run = asyncio.create_task(engine.run(specs))
        assert await wait_for(lambda: moved("agentgym_rollout_retries_total", env="conformance") >= 1, 10)
        # The maze ones end; the conformance one stays, between retries.
        assert await wait_for(lambda: moved("agentgym_rollout_live_episodes") == 1, 10)
        assert moved("agentgym_rollout_episodes_total", env="conformance", outcome="finished") == 0
        for ep in held:
            await ep.close()
        summary = await run

    assert (summary.finished, summary.failed) == (4, 1)
    assert moved("agentgym_rollout_episodes_total", env="maze", outcome="finished") == 3
    assert moved("agentgym_rollout_episodes_total", env="maze", outcome="failed") == 1  # task out of range
    assert moved("agentgym_rollout_episodes_total", env="conformance", outcome="finished") == 1
    assert moved("agentgym_rollout_successes_total", env="maze") == 3 * summary.per_env["maze"]["success"]
    # Every refused attempt was replayed once, and the server refused exactly that many creates.
    retries = moved("agentgym_rollout_retries_total", env="conformance")
    assert retries >= 1
    assert moved("agentgym_creates_total", env="conformance", code="RESOURCE_EXHAUSTED") == retries
    # One policy reply and one step per agent turn.
    turns = summary.per_env["maze"]["rounds"] * 3
    assert moved("agentgym_rollout_policy_seconds_count", env="maze") == turns
    assert moved("agentgym_rollout_step_seconds_count", env="maze") == turns
    assert moved("agentgym_rollout_live_episodes") == 0


async def test_eval_metrics_port_is_scraped_while_it_runs(start_server: StartServer, tmp_path: Path) -> None:
    """`agentgym eval --metrics-port N`, a real process, held up by a full server: its retries and
    live episodes show while it runs; let go, it finishes."""
    server = await start_server(envs=["conformance"])
    metrics_port = free_port()
    async with EnvClient(server.address) as client:
        held = [await client.open_episode("conformance", i) for i in range(4)]
        log = tmp_path / "eval.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agentgym.client.cli", "eval", "--policy", "expert", "--envs", "conformance",
                "--server", server.address, "--metrics-port", str(metrics_port), "--retries", "50",
                "--no-progress", "--out", str(tmp_path / "eval"),
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, log.read_text()
                try:
                    s = await ascrape(metrics_port)
                    if s("agentgym_rollout_retries_total", env="conformance") >= 2:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
            # The test split (tasks 6 and 7): both playing, neither ended.
            assert s("agentgym_rollout_live_episodes") == 2
            assert s("agentgym_rollout_episodes_total", env="conformance", outcome="finished") == 0
        finally:
            for ep in held:
                await ep.close()
        rc = await asyncio.wait_for(proc.wait(), 60)
    assert rc == 0, log.read_text()
    assert (tmp_path / "eval" / "results.json").exists()
