"""Server lifecycle: pipelining, reset, graceful shutdown, process workers, health, limits."""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentgym.client import EnvClient
from agentgym.client.errors import AgentGymError, Internal, Unavailable
from agentgym.server.app import Server
from agentgym.server.config import ServerConfig
from tests.conftest import StartServer, wait_for


async def test_pipelined_steps_come_back_in_order(client: EnvClient) -> None:
    async with client.episode("conformance", 0) as ep:
        results = await ep.step_many([f"say {i}" for i in range(5)])
        assert [r.observation for r in results] == [f"echo say {i} step {i + 1}" for i in range(5)]
        assert [r.step_index for r in results] == [1, 2, 3, 4, 5]


async def test_reset_reuses_the_stream(client: EnvClient) -> None:
    async with client.episode("maze", 0) as ep:
        first_id = ep.episode_id
        while not ep.over:
            await ep.step(await ep.expert())
        initial = await ep.reset(7)
        assert ep.task_id == 7 and ep.episode_id == first_id and initial.step_index == 0
        assert "Your current position" in initial.observation
        assert (await ep.step(await ep.expert())).step_index == 1


async def test_scores_accumulate_and_live_counts_track(client: EnvClient) -> None:
    eps = [await client.open_episode("wordle", i) for i in range(3)]
    status = await client.server_status()
    assert status.envs["wordle"].live_episodes == 3 and status.live_episodes == 3
    for ep in eps:
        while not ep.over:
            result = await ep.step(await ep.expert())
        assert result.success and result.score == 1.0
        await ep.close()
    assert (await client.server_status()).live_episodes == 0


async def test_health_is_serving(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="agentgym.v1.EnvService")
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_graceful_shutdown(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze", "conformance"], grace_s=1.0)
    client = EnvClient(f"127.0.0.1:{srv.port}")
    idle = await client.open_episode("maze", 0)
    busy = await client.open_episode("conformance", 0, options={"hang_s": "0.4"})
    in_flight = asyncio.ensure_future(busy.step("hang"))
    await asyncio.sleep(0.1)
    stopping = asyncio.ensure_future(srv.stop())
    await asyncio.sleep(0.1)
    # The step in flight when shutdown began finishes normally.
    assert (await in_flight).observation == "woke up"
    # No new sessions.
    with pytest.raises(AgentGymError):
        await client.open_episode("maze", 1)
    # Live episodes may still step during the grace period...
    assert (await idle.step("move left")).step_index == 1
    await stopping
    # ...and are ended after it, their envs freed.
    assert srv.service.capacity.live == 0
    with pytest.raises(AgentGymError) as info:
        await idle.step("move left")
    assert info.value.ends_episode
    await client.close()


async def test_create_while_draining_is_refused(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], grace_s=0.5)
    client = EnvClient(f"127.0.0.1:{srv.port}")
    ep = await client.open_episode("maze", 0)
    await ep.step("move left")
    await ep.reset(1)
    srv.service.draining = True  # as stop() sets it; the stream already exists
    # A stream that exists may not start a new episode once draining: reset is allowed, create is not.
    raw = client.servers[0].session_call()
    from agentgym.v1 import env_pb2 as pb

    await raw.write(pb.SessionRequest(id=1, create=pb.CreateRequest(env="maze", task_id=0)))
    reply = await raw.read()
    assert reply.error.code == grpc.StatusCode.UNAVAILABLE.value[0] and "shutting down" in reply.error.message
    raw.cancel()
    await ep.close()
    await client.close()


async def test_process_env_worker_killed_ends_only_its_episode(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze", "conformance"], execution={"conformance": "process"}, prewarm=0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        other = await client.open_episode("maze", 2)
        ep = await client.open_episode("conformance", 0)
        assert (await ep.step("ping")).step_index == 1
        session = next(
            s for s in srv.service.sessions if s.runner is not None and s.hosted.cls.name == "conformance"
        )
        pid = session.runner.proc.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(Internal, match=r"worker process \d+ died \(exit code -9\)"):
            await ep.step("ping")
        assert (await other.step("move up")).step_index == 1
        await other.close()
        assert await wait_for(lambda: srv.service.capacity.live == 0, 2.0)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_process_env_prewarmed_workers(start_server: StartServer) -> None:
    srv = await start_server(envs=["conformance"], execution={"conformance": "process"}, prewarm=2)
    hosted = srv.service.hosted["conformance"]
    assert await wait_for(lambda: len(hosted.idle_workers) == 2, 60.0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client, client.episode("conformance", 3) as ep:
        assert ep.initial.observation == "conformance task 3 seed 3"
        assert (await ep.step("finish")).success
    assert await wait_for(lambda: len(hosted.idle_workers) == 2, 60.0)  # topped up again


async def test_unreachable_server_is_a_typed_error() -> None:
    async with EnvClient("127.0.0.1:1", connect_timeout_s=1.0) as client:
        with pytest.raises(Unavailable):
            await client.server_status()


async def test_bind_failure_is_clear(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"])
    with pytest.raises(OSError, match="could not bind"):
        await Server.start(ServerConfig(port=srv.port, envs=["maze"]))


def test_config_validation_and_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="max_episodes must be at least 1"):
        ServerConfig(max_episodes=0).validate()
    path = tmp_path / "server.toml"
    path.write_text(
        '[server]\nport = 6000\nenvs = ["maze"]\nstep_timeout_s = 3.5\n[server.env_settings.maze]\nx = "1"\n'
    )
    cfg = ServerConfig.from_file(path)
    assert (cfg.port, cfg.envs, cfg.step_timeout_s, cfg.env_settings) == (
        6000,
        ["maze"],
        3.5,
        {"maze": {"x": "1"}},
    )
    path.write_text("[server]\nprot = 1\n")
    with pytest.raises(ValueError, match=r"unknown server settings \['prot'\]"):
        ServerConfig.from_file(path)
