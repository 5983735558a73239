"""The env server's Prometheus metrics, scraped over HTTP from real servers: episodes played, errors
caused on purpose, capacity refusals, thread-pool waits, a killed worker process, `--workers`.

Metrics are process-wide and other tests move them too: each test compares a scrape taken before
with one taken after, and checks that every sample moved by exactly what it caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentgym.client import EnvClient
from agentgym.client.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from agentgym.server.config import ServerConfig
from tests.conftest import StartServer, wait_for
from tests.core.test_metrics import Scrape, ascrape, scrape


async def test_episodes_errors_and_refusals_move_exactly_what_they_cause(start_server: StartServer) -> None:
    server = await start_server(envs=["maze", "conformance"], metrics_port=0)
    assert server.metrics is not None
    port = server.metrics.port
    before = await ascrape(port)
    assert (before("agentgym_capacity", env="maze"), before("agentgym_capacity", env="conformance")) == (
        20_000,
        4,
    )

    async with EnvClient(server.address) as client:
        # One maze episode played to the end by its expert, then a step after done.
        async with client.episode("maze", 3) as ep:
            during = await ascrape(port)
            assert during.minus(before, "agentgym_live_episodes", env="maze") == 1
            with pytest.raises(InvalidArgument, match="max_action_bytes"):
                await ep.step("x" * (server.config.max_action_bytes + 1))
            steps = 0
            while not ep.over:
                await ep.step(await ep.expert())
                steps += 1
            with pytest.raises(FailedPrecondition, match="is over"):
                await ep.step("move up")
        # Creates that fail: an env not hosted here, a task out of range, an unknown option.
        with pytest.raises(NotFound):
            await client.open_episode("pacman", 0)
        with pytest.raises(OutOfRange):
            await client.open_episode("maze", 99_999)
        with pytest.raises(InvalidArgument, match="does not accept create options"):
            await client.open_episode("maze", 0, options={"colour": "red"})
        # The conformance env admits 4 live episodes: the fifth is refused; one of the four crashes.
        held = [await client.open_episode("conformance", i) for i in range(4)]
        with pytest.raises(ResourceExhausted):
            await client.open_episode("conformance", 4)
        during = await ascrape(port)
        assert during.minus(before, "agentgym_live_episodes", env="conformance") == 4
        with pytest.raises(Internal, match="crash requested"):
            await held[0].step("crash")
        for ep in held[1:]:
            await ep.step("ping")
            await ep.close()

    assert await wait_for(lambda: server.service.capacity.live == 0, 5)
    after = await ascrape(port)

    def moved(name: str, **labels: str) -> float:
        return after.minus(before, name, **labels)

    assert steps >= 2
    assert moved("agentgym_live_episodes", env="maze") == 0
    assert moved("agentgym_live_episodes", env="conformance") == 0
    assert moved("agentgym_creates_total", env="maze", code="OK") == 1
    assert moved("agentgym_creates_total", env="maze", code="OUT_OF_RANGE") == 1
    assert moved("agentgym_creates_total", env="maze", code="INVALID_ARGUMENT") == 1
    assert moved("agentgym_creates_total", env="(not hosted)", code="NOT_FOUND") == 1
    assert moved("agentgym_creates_total", env="conformance", code="OK") == 4
    assert moved("agentgym_creates_total", env="conformance", code="RESOURCE_EXHAUSTED") == 1
    assert moved("agentgym_steps_total", env="maze", code="OK") == steps
    assert moved("agentgym_steps_total", env="maze", code="FAILED_PRECONDITION") == 1
    assert moved("agentgym_steps_total", env="maze", code="INVALID_ARGUMENT") == 1
    assert moved("agentgym_steps_total", env="conformance", code="OK") == 3
    assert moved("agentgym_steps_total", env="conformance", code="INTERNAL") == 1
    # Errors of every kind of request, by code: the ones above, nothing else.
    assert moved("agentgym_errors_total", env="maze", code="FAILED_PRECONDITION") == 1
    assert moved("agentgym_errors_total", env="maze", code="INVALID_ARGUMENT") == 2
    assert moved("agentgym_errors_total", env="maze", code="OUT_OF_RANGE") == 1
    assert moved("agentgym_errors_total", env="(not hosted)", code="NOT_FOUND") == 1
    assert moved("agentgym_errors_total", env="conformance", code="RESOURCE_EXHAUSTED") == 1
    assert moved("agentgym_errors_total", env="conformance", code="INTERNAL") == 1
    assert moved("agentgym_refusals_total", env="conformance", reason="max_episodes_per_env") == 1
    assert moved("agentgym_refusals_total", env="maze", reason="max_action_bytes") == 1
    # Every env call is timed, failed ones too; refused requests never reach the env.
    assert moved("agentgym_step_seconds_count", env="maze") == steps
    assert moved("agentgym_step_seconds_count", env="conformance") == 4
    assert moved("agentgym_reset_seconds_count", env="maze") == 1
    assert moved("agentgym_reset_seconds_count", env="conformance") == 4
    assert moved("agentgym_step_seconds_bucket", env="maze", le="+Inf") == steps
    # Conformance is a thread env: its resets and steps (4 + 4) waited for a thread, once each.
    assert moved("agentgym_thread_queue_seconds_count", env="conformance") == 8


async def test_a_busy_thread_pool_shows_as_queue_wait(start_server: StartServer) -> None:
    server = await start_server(envs=["conformance"], threads=1, metrics_port=0)
    assert server.metrics is not None
    async with EnvClient(server.address) as client:
        slow = await client.open_episode("conformance", 0, options={"hang_s": "1.0"})
        quick = await client.open_episode("conformance", 1)
        before = await ascrape(server.metrics.port)
        hang = asyncio.create_task(slow.step("hang"))  # holds the only thread for 1 s
        await asyncio.sleep(0.1)
        await quick.step("ping")  # waits for it
        await hang
        after = await ascrape(server.metrics.port)
        for ep in (slow, quick):
            await ep.close()
    queue = "agentgym_thread_queue_seconds"
    assert after.minus(before, f"{queue}_count", env="conformance") == 2
    # The hang found the thread free; the ping waited for it, most of a second.
    assert after.minus(before, f"{queue}_bucket", env="conformance", le="0.25") == 1
    assert after.minus(before, f"{queue}_sum", env="conformance") >= 0.5
    # A step's time is what the session waited for it: the ping's includes its wait for a thread.
    assert after.minus(before, "agentgym_step_seconds_count", env="conformance") == 2
    assert after.minus(before, "agentgym_step_seconds_bucket", env="conformance", le="0.25") == 0


async def test_a_worker_killed_at_the_step_timeout_counts_as_a_restart(start_server: StartServer) -> None:
    server = await start_server(
        envs=["conformance"],
        execution={"conformance": "process"},
        prewarm=0,
        step_timeout_s=1.0,
        metrics_port=0,
    )
    assert server.metrics is not None
    before = await ascrape(server.metrics.port)
    async with EnvClient(server.address) as client:
        ep = await client.open_episode("conformance", 0, options={"hang_s": "30"})
        with pytest.raises(DeadlineExceeded):
            await ep.step("hang")
    after = await ascrape(server.metrics.port)
    assert after.minus(before, "agentgym_worker_restarts_total", env="conformance") == 1
    assert after.minus(before, "agentgym_steps_total", env="conformance", code="DEADLINE_EXCEEDED") == 1
    assert after.minus(before, "agentgym_errors_total", env="conformance", code="DEADLINE_EXCEEDED") == 1
    # A process env's calls do not go through the thread pool.
    assert after.minus(before, "agentgym_thread_queue_seconds_count", env="conformance") == 0


async def test_draining_refuses_creates_and_says_so(start_server: StartServer) -> None:
    server = await start_server(envs=["maze"], metrics_port=0)
    assert server.metrics is not None
    port = server.metrics.port
    before = await ascrape(port)
    server.service.draining = True  # what Server.stop does first
    async with EnvClient(server.address) as client:
        with pytest.raises(Unavailable, match="shutting down"):
            await client.open_episode("maze", 0)
    after = await ascrape(port)
    assert after.minus(before, "agentgym_refusals_total", env="maze", reason="draining") == 1
    assert after.minus(before, "agentgym_creates_total", env="maze", code="UNAVAILABLE") == 1


async def test_the_metrics_port_closes_with_the_server(start_server: StartServer) -> None:
    server = await start_server(envs=["maze"], metrics_port=0)
    assert server.metrics is not None
    port = server.metrics.port
    await ascrape(port)
    await server.stop(0)
    with pytest.raises(OSError):
        await ascrape(port)


async def test_a_metrics_port_in_use_stops_the_start_with_a_clear_error(start_server: StartServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"could not serve metrics on 127\.0\.0\.1:{port}"):
            await start_server(envs=["maze"], metrics_port=port)


def test_config_checks_the_metrics_port() -> None:
    ServerConfig(metrics_port=9100, workers=4).validate()
    with pytest.raises(ValueError, match=r"metrics_port must be 0-65532 \(worker i uses metrics_port \+ i\)"):
        ServerConfig(metrics_port=65534, workers=4).validate()
    with pytest.raises(ValueError, match="metrics_port must be"):
        ServerConfig(metrics_port=-1).validate()


def _free_ports(n: int) -> int:
    """A port P with P..P+n-1 all free (checked, then released: a small race, as free_port has)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for p in range(base, base + n):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", p))
            except OSError:
                continue
        return base
    raise RuntimeError("no run of free ports")


def test_workers_each_serve_their_own_metrics_port(tmp_path: Path) -> None:
    """`agentgym serve --workers 2 --metrics-port M`: worker i answers on M+i; together they count
    every episode the shared port took, once."""
    grpc_port, metrics_port = _free_ports(1), _free_ports(2)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentgym.client.cli", "serve", "--envs", "maze", "--port", str(grpc_port),
             "--workers", "2", "--metrics-port", str(metrics_port), "--prewarm", "0"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    try:
        before = _scrape_when_up([metrics_port, metrics_port + 1], proc)

        async def play(n: int) -> None:
            for i in range(n):  # a new connection each: SO_REUSEPORT spreads connections
                async with EnvClient(f"127.0.0.1:{grpc_port}") as client, client.episode("maze", i) as ep:
                    await ep.step(await ep.expert())

        asyncio.run(play(6))
        after = [scrape(p) for p in (metrics_port, metrics_port + 1)]
        created = [
            a.minus(b, "agentgym_creates_total", env="maze", code="OK")
            for a, b in zip(after, before, strict=True)
        ]
        assert sum(created) == 6, created
        assert [a("agentgym_live_episodes", env="maze") for a in after] == [0, 0]
        # Each worker has half the episode limit.
        assert [a("agentgym_capacity", env="maze") for a in after] == [10_000, 10_000]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-2000:]


def _scrape_when_up(ports: list[int], proc: subprocess.Popen[bytes]) -> list[Scrape]:
    deadline = time.monotonic() + 60
    while True:
        try:
            return [scrape(p) for p in ports]
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def test_calls_refused_for_auth_count_as_errors(start_server: StartServer, tmp_path: Path) -> None:
    """As the Node server counts them: `agentgym_errors_total{env="(none)",code="UNAUTHENTICATED"}`."""
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret\n")
    server = await start_server(envs=["maze"], metrics_port=0, auth_token_file=str(tokens))
    assert server.metrics is not None
    before = await ascrape(server.metrics.port)
    async with EnvClient(server.address) as client:
        with pytest.raises(Unauthenticated):
            await client.open_episode("maze", 0)
    after = await ascrape(server.metrics.port)
    assert after.minus(before, "agentgym_errors_total", env="(none)", code="UNAUTHENTICATED") == 1
    assert after.minus(before, "agentgym_creates_total", env="maze", code="OK") == 0
