"""The Node.js server's Prometheus metrics (`--metrics-port`): scraped over HTTP from a real server
after real episodes, errors and refusals. The names are the Python server's (agentgym_*)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentgym.client.conformance import Stream
from agentgym.v1 import env_pb2 as pb
from tests.node.conftest import NodeServer, StartNode, requires_node

pytestmark = requires_node

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_url(srv: NodeServer) -> str:
    started = next(d for d in srv.logs() if d["event"] == "server started")
    assert started["metrics_port"], started
    return f"http://127.0.0.1:{started['metrics_port']}/metrics"


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.headers["Content-Type"], reply.read().decode()


async def scrape(srv: NodeServer) -> Samples:
    """Every sample on /metrics, parsed by prometheus_client's own parser (so the format is checked)."""
    content_type, text = await asyncio.to_thread(_get, metrics_url(srv))
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the server has not exported it (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def play(stream: Stream, env: str, task_id: int) -> int:
    """Create and solve an episode with the expert; the number of steps it took."""
    assert (await stream.create(env, task_id)).WhichOneof("kind") == "created"
    steps = 0
    while True:
        action = (await stream.ask(expert=pb.ExpertRequest())).expert.action
        result = (await stream.step(action)).step
        steps += 1
        if result.done or result.truncated:
            return steps


async def test_metrics_follow_episodes_errors_and_refusals(start_node: StartNode) -> None:
    srv = await start_node(
        "--envs", "sokoban,conformance", "--max-episodes-per-env", "2", "--metrics-port", "0"
    )
    before = await scrape(srv)
    assert value(before, "agentgym_capacity", env="sokoban") == 2
    assert value(before, "agentgym_capacity", env="conformance") == 2  # its own limit is 4
    assert value(before, "agentgym_live_episodes", env="sokoban") == 0
    # prom-client's default process metrics come along.
    assert value(before, "process_cpu_user_seconds_total") > 0
    assert any(name.startswith("nodejs_") for name, _ in before)

    async with grpc.aio.insecure_channel(srv.address) as channel:
        solved = [Stream(channel) for _ in range(2)]
        steps = [await play(s, "sokoban", t) for s, t in zip(solved, (0, 1), strict=True)]
        for s in solved:
            await s.close()

        # A create error: an env this server does not host.
        unknown = Stream(channel)
        assert (await unknown.create("no-such-env")).error.code == grpc.StatusCode.NOT_FOUND.value[0]
        # Two live episodes fill sokoban's limit; a third is refused.
        live = [Stream(channel), Stream(channel)]
        for s in live:
            assert (await s.create("sokoban", 7)).WhichOneof("kind") == "created"
        third = Stream(channel)
        assert (await third.create("sokoban", 8)).error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        # A step error (empty action) and a refused oversized action, in band.
        invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert (await live[0].step("")).error.code == invalid
        assert (await live[0].step("x" * (64 * 1024 + 1))).error.code == invalid  # max_action_bytes
        assert (await live[1].step("up")).WhichOneof("kind") == "step"

        during = await scrape(srv)
        for s in [*live, unknown, third]:
            await s.close()

    assert value(during, "agentgym_live_episodes", env="sokoban") == 2
    assert value(during, "agentgym_creates_total", env="sokoban", code="OK") == 4
    assert value(during, "agentgym_creates_total", env="sokoban", code="RESOURCE_EXHAUSTED") == 1
    assert value(during, "agentgym_creates_total", env="(not hosted)", code="NOT_FOUND") == 1
    assert value(during, "agentgym_refusals_total", env="sokoban", reason="max_episodes_per_env") == 1
    assert value(during, "agentgym_refusals_total", env="sokoban", reason="max_action_bytes") == 1
    ok_steps = sum(steps) + 1
    assert value(during, "agentgym_steps_total", env="sokoban", code="OK") == ok_steps
    assert value(during, "agentgym_steps_total", env="sokoban", code="INVALID_ARGUMENT") == 2
    assert value(during, "agentgym_errors_total", env="sokoban", code="INVALID_ARGUMENT") == 2
    assert value(during, "agentgym_errors_total", env="sokoban", code="RESOURCE_EXHAUSTED") == 1
    assert value(during, "agentgym_errors_total", env="(not hosted)", code="NOT_FOUND") == 1
    # Latency histograms: one observation per env call (only accepted steps reach the env).
    assert value(during, "agentgym_step_seconds_count", env="sokoban") == ok_steps
    assert value(during, "agentgym_step_seconds_bucket", env="sokoban", le="+Inf") == ok_steps
    assert value(during, "agentgym_reset_seconds_count", env="sokoban") == 4
    assert 0 < value(during, "agentgym_reset_seconds_sum", env="sokoban") < 30

    after = await scrape(srv)
    assert value(after, "agentgym_live_episodes", env="sokoban") == 0
    assert value(after, "agentgym_creates_total", env="sokoban", code="OK") == 4


async def test_a_worker_thread_lost_to_the_step_timeout_is_counted(start_node: StartNode) -> None:
    srv = await start_node("--envs", "conformance", "--metrics-port", "0", "--step-timeout", "1")
    async with grpc.aio.insecure_channel(srv.address) as channel:
        s = Stream(channel)
        assert (await s.create("conformance", 0, options={"hang_s": "10"})).WhichOneof("kind") == "created"
        reply = await s.step("hang")
        assert reply.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        s.cancel()
    m = await scrape(srv)
    assert value(m, "agentgym_worker_restarts_total", env="conformance") == 1
    assert value(m, "agentgym_steps_total", env="conformance", code="DEADLINE_EXCEEDED") == 1
    assert value(m, "agentgym_errors_total", env="conformance", code="DEADLINE_EXCEEDED") == 1
    assert value(m, "agentgym_step_seconds_count", env="conformance") == 1
    assert value(m, "agentgym_step_seconds_sum", env="conformance") >= 0.9


async def test_metrics_stay_open_when_calls_need_a_token(tmp_path: Path) -> None:
    """Prometheus scrapes without a token; the refused calls show up as UNAUTHENTICATED errors."""
    tokens = tmp_path / "tokens"
    tokens.write_text("right-token\n")
    srv = await asyncio.to_thread(
        NodeServer,
        ["--envs", "sokoban", "--grace", "0", "--metrics-port", "0", "--auth-token-file", str(tokens)],
    )
    try:
        async with grpc.aio.insecure_channel(srv.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await Stream(channel).create("sokoban", 0)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        m = await scrape(srv)
        assert value(m, "agentgym_errors_total", env="(none)", code="UNAUTHENTICATED") == 1
        assert value(m, "agentgym_creates_total", env="sokoban", code="OK") == 0
        # Only /metrics (and /) are served.
        with pytest.raises(urllib.error.HTTPError) as http:
            await asyncio.to_thread(_get, metrics_url(srv).replace("/metrics", "/nope"))
        assert http.value.code == 404
    finally:
        assert await asyncio.to_thread(srv.stop) == 0
