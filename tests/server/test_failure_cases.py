"""Failure cases of the env server (hardening issue): each test failed before its fix.

Real servers, real worker processes, real sockets. Load and slow starts are simulated by the envs
of failure_envs.py (sleeps, declared memory), never by the speed of this machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
import pytest

from agentgym.client import EnvClient
from agentgym.client.conformance import Stream, _stream_status
from agentgym.client.errors import DeadlineExceeded, FailedPrecondition, Internal, ResourceExhausted
from agentgym.core import metrics
from agentgym.server.app import Server
from agentgym.server.service import DEFAULT_PROCESS_EPISODE_MB, available_memory_mb
from agentgym.v1 import env_pb2 as pb
from tests.conftest import StartServer, wait_for
from tests.server import failure_envs  # noqa: F401  (registers the test-* envs)

GARBAGE = b"\xff\xff\xff\xff not a protobuf"


def workers_of(env: str) -> list[psutil.Process]:
    """Worker processes of this test process hosting `env`."""
    found = []
    for child in psutil.Process().children():
        try:
            cmd, status = child.cmdline(), child.status()
        except psutil.Error:  # gone meanwhile
            continue
        if "agentgym.server.worker" in cmd and env in cmd and status != psutil.STATUS_ZOMBIE:
            found.append(child)
    return found


def error_code(resp: pb.SessionResponse) -> grpc.StatusCode:
    assert resp.WhichOneof("kind") == "error", resp
    return next(c for c in grpc.StatusCode if c.value[0] == resp.error.code)


def limit_of(srv: Server, env: str) -> int:
    """The server's per-env episode limit (what ListEnvs reports as max_episodes)."""
    return srv.service.capacity.per_env[env]


# --- 1. cancelling during a worker's cold start ------------------------------------------------------
@pytest.mark.parametrize("prewarm", [0, 1], ids=["cold", "waiting-for-warm"])
async def test_cancel_during_worker_start_frees_slot_and_worker(
    start_server: StartServer, prewarm: int
) -> None:
    srv = await start_server(
        envs=["test-slow-start"],
        prewarm=prewarm,
        env_settings={"test-slow-start": {"start_s": "3" if prewarm else "30"}},
    )
    hosted = srv.service.hosted["test-slow-start"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        s = Stream(channel)
        await s.send(create=pb.CreateRequest(env="test-slow-start", task_id=0))
        assert await wait_for(lambda: srv.service.capacity.live == 1, 5.0)
        # Cold: the worker started for this create. Prewarm: the create waits for the worker that
        # was warming, and a next one starts for the next create.
        assert await wait_for(lambda: len(workers_of("test-slow-start")) == 1 + prewarm, 10.0)
        await asyncio.sleep(0.3)  # the create is waiting on a worker's start
        s.cancel()
        # The slot comes back at once...
        assert await wait_for(lambda: srv.service.capacity.live == 0, 2.0), "capacity slot leaked"
    if prewarm:
        # ...the workers that were warming serve the next creates: one stays in the pool (prewarm
        # 1), the other is not kept...
        assert not hosted._waiting
        assert await wait_for(lambda: len(hosted.idle_workers) == 1, 15.0)
        assert await wait_for(lambda: len(workers_of("test-slow-start")) == 1, 5.0)
    else:
        # ...and a worker started for the cancelled create is killed.
        assert await wait_for(lambda: not workers_of("test-slow-start"), 3.0), "worker left running"


async def test_worker_that_cannot_start_is_killed(start_server: StartServer) -> None:
    srv = await start_server(envs=["test-broken-start"], prewarm=0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        with pytest.raises(Internal, match=r"could not start.*this env cannot start"):
            await client.open_episode("test-broken-start", 0)
    assert srv.service.capacity.live == 0
    assert await wait_for(lambda: not workers_of("test-broken-start"), 3.0), "worker left running"


# --- 2. heavy resets under load ------------------------------------------------------------------------
@pytest.mark.parametrize("execution", ["thread", "process"])
async def test_reset_has_its_own_timeout(start_server: StartServer, execution: str) -> None:
    srv = await start_server(
        envs=["test-slow-reset"],
        execution={"test-slow-reset": execution},
        prewarm=0,
        step_timeout_s=0.3,
        reset_timeout_s=5.0,
        env_settings={"test-slow-reset": {"reset_s": "0.8"}},
    )
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        async with client.episode("test-slow-reset", 1) as ep:  # 0.8 s of reset: past the step timeout
            assert ep.initial.observation == "task 1"
            assert (await ep.step("go")).observation == "echo go"


async def test_time_queued_for_a_thread_does_not_count(start_server: StartServer) -> None:
    # One thread, resets of 0.6 s: the second create waits 0.6 s for the thread, then runs 0.6 s.
    srv = await start_server(
        envs=["test-slow-reset"],
        threads=1,
        step_timeout_s=0.3,
        reset_timeout_s=1.0,
        env_settings={"test-slow-reset": {"reset_s": "0.6"}},
    )
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        t0 = time.monotonic()
        a, b = await asyncio.gather(*(client.open_episode("test-slow-reset", i) for i in range(2)))
        assert time.monotonic() - t0 > 1.15  # they did take turns on the one thread
        for ep in (a, b):
            await ep.close()


async def test_queue_wait_is_reported_in_the_timeout(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # One thread, resets of 1.2 s, a 0.8 s reset timeout: the first times out on its own time; the
    # second waits ~1.2 s for the thread (the first's reset still runs), then times out too.
    srv = await start_server(
        envs=["test-slow-reset"],
        threads=1,
        reset_timeout_s=0.8,
        env_settings={"test-slow-reset": {"reset_s": "1.2"}},
    )
    caplog.set_level(logging.WARNING, logger="agentgym.server.session")
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        first, second = await asyncio.gather(
            *(client.open_episode("test-slow-reset", i) for i in range(2)), return_exceptions=True
        )
    assert isinstance(first, DeadlineExceeded) and isinstance(second, DeadlineExceeded)
    alone, queued_too = sorted((first.message, second.message), key=lambda m: "queued" in m)
    assert "0.8s reset timeout" in alone and "queued" not in alone
    assert "0.8s reset timeout" in queued_too and "queued for a thread, which is not counted" in queued_too
    queued = sorted(getattr(r, "queued_s", -1.0) for r in caplog.records if r.message == "episode failed")
    assert len(queued) == 2 and queued[0] < 0.2 and 0.9 < queued[1] < 2.0, queued


async def test_a_create_takes_the_worker_already_warming(start_server: StartServer) -> None:
    srv = await start_server(
        envs=["test-slow-start"], prewarm=1, env_settings={"test-slow-start": {"start_s": "2"}}
    )
    hosted = srv.service.hosted["test-slow-start"]
    assert await wait_for(lambda: len(hosted.idle_workers) == 1, 20.0)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        first = await client.open_episode("test-slow-start", 0)
        # Taking the warm worker started its replacement: wait until that process exists and is
        # well into its start (so that it finishes before any worker started after it).
        assert await wait_for(lambda: len(workers_of("test-slow-start")) == 2, 10.0)
        (replacement,) = {w.pid for w in workers_of("test-slow-start")} - {first_pid(srv, first.episode_id)}
        await asyncio.sleep(1.0)
        second = await client.open_episode("test-slow-start", 1)
        # The second create got the replacement, not a cold start of its own.
        assert first_pid(srv, second.episode_id) == replacement
        # And a replacement for the replacement is on its way, for the next create.
        assert await wait_for(lambda: len(hosted.idle_workers) == 1, 20.0)
        await first.close()
        await second.close()


async def test_an_idle_worker_that_dies_is_replaced_at_once(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], execution={"maze": "process"}, prewarm=1)
    hosted = srv.service.hosted["maze"]
    assert await wait_for(lambda: len(hosted.idle_workers) == 1, 20.0)
    (old,) = hosted.idle_workers
    restarts = metrics.WORKER_RESTARTS.labels("maze")._value.get()
    os.kill(old.proc.pid, signal.SIGKILL)  # the OOM killer, or an operator
    # Without any create, the dead worker leaves the pool and a fresh one takes its place...
    assert await wait_for(
        lambda: len(hosted.idle_workers) == 1 and hosted.idle_workers[0] is not old, 20.0
    ), "a dead idle worker was not replaced"
    assert hosted.idle_workers[0].proc.returncode is None
    assert metrics.WORKER_RESTARTS.labels("maze")._value.get() == restarts + 1
    # ...and the next create gets it warm.
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        async with client.episode("maze", 0) as ep:
            assert (await ep.step("move up")).step_index == 1


def first_pid(srv: Server, episode_id: str) -> int:
    session = next(s for s in srv.service.sessions if s.episode_id == episode_id)
    return session.runner.proc.pid  # type: ignore[union-attr]


# --- 3. capacity from memory for every process env -------------------------------------------------------
async def test_process_env_capacity_comes_from_declared_memory(start_server: StartServer) -> None:
    before = available_memory_mb()
    assert before
    srv = await start_server(
        envs=["test-memory-hungry", "conformance", "maze"],
        execution={"maze": "process"},
        prewarm=0,
        env_settings={"test-memory-hungry": {"episode_memory_mb": str(before // 2 + 1)}},
    )
    # Memory for one episode only (never allocated: the env declares what it needs).
    assert limit_of(srv, "test-memory-hungry") == 1
    # A process env that declares nothing gets the default budget of a worker process.
    assert abs(limit_of(srv, "maze") - before // DEFAULT_PROCESS_EPISODE_MB) <= 2
    assert limit_of(srv, "conformance") == 4  # a limit the env states itself stands
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        assert (await client.env_info("test-memory-hungry")).max_episodes == 1
        async with client.episode("test-memory-hungry", 0):
            with pytest.raises(ResourceExhausted, match=r"test-memory-hungry.*1 of 1.*memory"):
                await client.open_episode("test-memory-hungry", 1)


async def test_alfworld_capacity_comes_from_memory(start_server: StartServer) -> None:
    pytest.importorskip("alfworld")
    from agentgym.envs.alfworld import ALFWorld

    assert ALFWorld.episode_memory_mb and ALFWorld.episode_memory_mb >= 94  # measured per worker
    before = available_memory_mb()
    assert before
    srv = await start_server(envs=["alfworld"], prewarm=0)
    expected = before // ALFWorld.episode_memory_mb
    assert abs(limit_of(srv, "alfworld") - expected) <= max(2, expected // 50)


# --- 4. --workers N splits the memory-derived capacity ----------------------------------------------------
def test_workers_split_memory_capacity() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agentgym = str(Path(sys.executable).with_name("agentgym"))
    cmd = [agentgym, "serve", "--port", str(port), "--workers", "2", "--envs", "maze"]
    cmd += ["--execution", "maze=process", "--prewarm", "0", "--grace", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        limit = asyncio.run(_maze_limit(f"127.0.0.1:{port}", proc))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    available = available_memory_mb()
    assert available
    expected = available // 2 // DEFAULT_PROCESS_EPISODE_MB
    assert abs(limit - expected) <= 2, (limit, expected)


async def _maze_limit(address: str, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            async with EnvClient(address, connect_timeout_s=1.0) as client:
                return (await client.env_info("maze")).max_episodes
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


# --- 5. unparseable bytes on unary RPCs ----------------------------------------------------------------
async def test_garbage_on_list_envs_is_invalid_argument(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary("/agentgym.v1.EnvService/ListEnvs")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(GARBAGE, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ListEnvsRequest" in (info.value.details() or "")


async def test_garbage_on_a_trainer_unary_rpc_is_invalid_argument() -> None:
    from agentgym.core.rpc import RpcServer, handler, server_options
    from agentgym.v1 import trajectory_pb2 as tpb

    service = tpb.DESCRIPTOR.services_by_name["TrajectoryService"]

    async def stats(request: tpb.StatsRequest, context: grpc.aio.ServicerContext) -> tpb.StatsResponse:
        return tpb.StatsResponse()

    async def nothing(request: object, context: grpc.aio.ServicerContext) -> None:
        raise AssertionError("not called")

    async def no_items(request: object, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        raise AssertionError("not called")
        yield

    methods = {"Push": nothing, "Stats": stats, "ListIds": no_items, "Query": nothing}
    rpc = await RpcServer.start("127.0.0.1:0", [(service, handler(service, methods, raw=["Push"]))],
                                server_options(1 << 20))  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{rpc.port}") as channel:
            assert await channel.unary_unary("/agentgym.v1.TrajectoryService/Stats")(b"", timeout=5) == b""
            for name, call in (
                ("Stats", channel.unary_unary("/agentgym.v1.TrajectoryService/Stats")),
                ("ListIds", channel.unary_stream("/agentgym.v1.TrajectoryService/ListIds")),
                ("Query", channel.unary_stream("/agentgym.v1.TrajectoryService/Query")),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    result = call(GARBAGE, timeout=5)
                    if name == "Stats":
                        await result
                    else:
                        async for _ in result:
                            pass
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, info.value)
                assert "could not parse" in (info.value.details() or ""), name
    finally:
        await rpc.stop(0)


# --- 6. a server bug inside a session --------------------------------------------------------------------
@pytest.mark.parametrize("execution", ["thread", "process"])
async def test_server_bug_in_a_session_answers_internal_in_band(
    start_server: StartServer, execution: str
) -> None:
    srv = await start_server(envs=["maze", "conformance"], execution={"conformance": execution})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        other = Stream(channel)
        await other.create("maze", 0)
        s = Stream(channel)
        await s.create("conformance", 0)
        r = await s.step("malformed")
        assert error_code(r) == grpc.StatusCode.INTERNAL and r.id == 2
        assert "server error in step" in r.error.message
        assert await _stream_status(s) == grpc.StatusCode.INTERNAL
        assert (await other.step("move up")).WhichOneof("kind") == "step"
        await other.close()
    assert await wait_for(lambda: srv.service.capacity.live == 0, 2.0)


# --- 7. an expert that cannot act ------------------------------------------------------------------------
@pytest.mark.parametrize("execution", ["thread", "process"])
async def test_expert_that_cannot_act_keeps_the_episode(start_server: StartServer, execution: str) -> None:
    srv = await start_server(
        envs=["test-stuck-expert"], execution={"test-stuck-expert": execution}, prewarm=0
    )
    async with EnvClient(f"127.0.0.1:{srv.port}") as client, client.episode("test-stuck-expert", 0) as ep:
        assert await ep.expert() == "unstick"
        await ep.step("stuck")
        with pytest.raises(FailedPrecondition, match=r"expert cannot act.*no plan from this state") as info:
            await ep.expert()
        assert not info.value.ends_episode and ep.alive
        assert (await ep.step("unstick")).step_index == 2  # the episode carries on
        assert await ep.expert() == "unstick"


# --- 8. idle streams ---------------------------------------------------------------------------------------
async def test_idle_stream_without_an_episode_is_ended(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], idle_timeout_s=0.3)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        s = Stream(channel)
        assert error_code(await s.ask(observe=pb.ObserveRequest())) == grpc.StatusCode.FAILED_PRECONDITION
        t0 = time.monotonic()
        # No request sent: the server ends the stream on its own, the status saying why.
        assert await _stream_status(s) == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 2.0
        details = await s.call.details()
        assert "idle for more than 0.3s" in details and "no episode" in details
    assert not srv.service.sessions


async def test_idle_timeout_ends_the_stream_at_once(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], idle_timeout_s=0.3)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        s = Stream(channel)
        created = await s.create("maze", 0)
        t0 = time.monotonic()
        # No request sent: the server ends the stream on its own, the status saying why.
        assert await _stream_status(s) == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 2.0
        assert f"episode {created.created.episode_id} idle for more than 0.3s" in await s.call.details()
    assert srv.service.capacity.live == 0 and not srv.service.sessions


async def test_idle_timeout_through_the_client(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], idle_timeout_s=0.3)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        ep = await client.open_episode("maze", 0)
        # The stream ends without a request: the client sees it end, and its next step says why.
        assert await wait_for(lambda: ep.call is not None and ep.call.done(), 3.0)
        assert not srv.service.sessions and srv.service.capacity.live == 0
        with pytest.raises(DeadlineExceeded, match=r"idle for more than 0\.3s"):
            await ep.step("move up")
        assert not ep.alive
