"""Every bad input of the core issue, through the typed client and through raw streams.

The `start_server` fixture asserts after each test that the server holds zero live episodes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping

import grpc
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
)
from agentgym.envs.base import Env, Outcome
from agentgym.envs.registry import register
from agentgym.server.app import Server
from agentgym.v1 import env_pb2 as pb
from tests.conftest import StartServer, wait_for


@register
class _RaisesInline(Env):
    """Fixture: an inline env whose step raises on 'boom'."""

    name = "test-raises-inline"
    instruction = "test"
    action_format = "anything"
    max_rounds = 5
    task_count = 2
    execution = "inline"
    hidden = True

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        return Outcome("ready")

    def step(self, action: str) -> Outcome:
        if action == "boom":
            raise ValueError("the env blew up")
        return Outcome("ok")


def raw_session(server: Server) -> tuple[grpc.aio.Channel, grpc.aio.StreamStreamCall]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    call = channel.stream_stream(
        "/agentgym.v1.EnvService/Session", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )()
    return channel, call


async def ask(call: grpc.aio.StreamStreamCall, req: pb.SessionRequest | bytes) -> pb.SessionResponse:
    await call.write(req if isinstance(req, bytes) else req.SerializeToString())
    return pb.SessionResponse.FromString(await call.read())


def code_of(resp: pb.SessionResponse) -> grpc.StatusCode:
    assert resp.WhichOneof("kind") == "error", resp
    return next(c for c in grpc.StatusCode if c.value[0] == resp.error.code)


async def test_unknown_env(client: EnvClient) -> None:
    with pytest.raises(NotFound, match="'pacman' is not hosted here; this server hosts: conformance, maze"):
        await client.open_episode("pacman", 0)


async def test_task_id_out_of_range(client: EnvClient) -> None:
    with pytest.raises(OutOfRange, match=r"valid ids are 0\.\.555"):
        await client.open_episode("maze", 556)


async def test_unknown_create_option(client: EnvClient) -> None:
    with pytest.raises(InvalidArgument, match="does not accept create options"):
        await client.open_episode("maze", 0, options={"colour": "red"})


async def test_env_refusing_an_option_frees_the_slot(client: EnvClient, server: Server) -> None:
    with pytest.raises(InvalidArgument, match="hang_s must be a number"):
        await client.open_episode("conformance", 0, options={"hang_s": "soon"})
    assert server.service.capacity.live == 0


async def test_step_before_create(server: Server) -> None:
    channel, call = raw_session(server)
    resp = await ask(call, pb.SessionRequest(id=5, step=pb.StepRequest(action="move up")))
    assert resp.id == 5 and code_of(resp) == grpc.StatusCode.FAILED_PRECONDITION
    assert "first request on a stream must be create" in resp.error.message
    call.cancel()
    await channel.close()


async def test_second_create_on_a_stream(server: Server) -> None:
    channel, call = raw_session(server)
    first = await ask(call, pb.SessionRequest(id=1, create=pb.CreateRequest(env="maze", task_id=1)))
    assert first.WhichOneof("kind") == "created"
    resp = await ask(call, pb.SessionRequest(id=2, create=pb.CreateRequest(env="maze", task_id=2)))
    assert (
        code_of(resp) == grpc.StatusCode.FAILED_PRECONDITION
        and "one stream is one episode" in resp.error.message
    )
    # The first episode is untouched.
    obs = await ask(call, pb.SessionRequest(id=3, observe=pb.ObserveRequest()))
    assert obs.step == first.created.initial
    call.cancel()
    await channel.close()


async def test_step_after_done(client: EnvClient) -> None:
    async with client.episode("conformance", 0) as ep:
        result = await ep.step("finish")
        assert result.done and result.success and result.reward == 1.0
        with pytest.raises(FailedPrecondition, match="is over"):
            await ep.step("ping")
        with pytest.raises(FailedPrecondition, match="is over"):
            await ep.expert()


async def test_step_after_truncation(client: EnvClient) -> None:
    async with client.episode("maze", 0, max_steps=2) as ep:
        await ep.step("move left")
        result = await ep.step("move left")
        assert result.truncated and not result.done
        with pytest.raises(FailedPrecondition, match="truncated at its 2-step limit"):
            await ep.step("move left")


async def test_empty_and_oversize_actions(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], max_action_bytes=100)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client, client.episode("maze", 0) as ep:
        with pytest.raises(InvalidArgument, match="action is empty"):
            await ep.step("")
        with pytest.raises(InvalidArgument, match="action is empty"):
            await ep.step(" \n\t ")
        with pytest.raises(InvalidArgument, match="action is 101 bytes; this server accepts at most 100"):
            await ep.step("x" * 101)
        # Multi-byte characters count as bytes, not characters.
        with pytest.raises(InvalidArgument, match="action is 102 bytes"):
            await ep.step("é" * 51)
        assert (await ep.observe()).step_index == 0  # nothing happened
        assert (await ep.step("move left")).step_index == 1


async def test_message_over_the_transport_limit_ends_the_stream(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], max_message_bytes=64 * 1024, max_action_bytes=1024 * 1024)
    channel, call = raw_session(srv)
    await ask(call, pb.SessionRequest(id=1, create=pb.CreateRequest(env="maze", task_id=0)))
    await call.write(pb.SessionRequest(id=2, step=pb.StepRequest(action="x" * 100_000)).SerializeToString())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await channel.close()


async def test_garbage_bytes(server: Server) -> None:
    channel, call = raw_session(server)
    resp = await ask(call, b"\x08\x96\x01\x12\xff\xff\xff garbage")
    assert resp.id == 0 and code_of(resp) == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not parse a SessionRequest" in resp.error.message
    resp = await ask(call, pb.SessionRequest(id=9).SerializeToString())
    assert resp.id == 9 and code_of(resp) == grpc.StatusCode.INVALID_ARGUMENT
    # The stream survives both.
    created = await ask(call, pb.SessionRequest(id=10, create=pb.CreateRequest(env="wordle", task_id=3)))
    assert created.WhichOneof("kind") == "created"
    call.cancel()
    await channel.close()


async def test_client_cancelling_frees_the_episode(client: EnvClient, server: Server) -> None:
    ep = await client.open_episode("maze", 4)
    assert server.service.capacity.live == 1
    await ep._abort()  # RST_STREAM, as a crashing client's runtime would send
    assert await wait_for(lambda: server.service.capacity.live == 0, 1.0)


async def test_client_process_killed_mid_episode_frees_env_within_a_second(server: Server) -> None:
    code = (
        "import asyncio\n"
        "from agentgym.client import EnvClient\n"
        "async def main():\n"
        f"    async with EnvClient('127.0.0.1:{server.port}') as c:\n"
        "        ep = await c.open_episode('textcraft', 5)\n"
        "        await ep.step('inventory')\n"
        "        print('ready', flush=True)\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    assert server.service.capacity.live == 1
    proc.kill()
    t0 = time.monotonic()
    assert await wait_for(lambda: server.service.capacity.live == 0, 1.0), "env not freed within 1 s"
    assert time.monotonic() - t0 < 1.0
    await proc.wait()


@pytest.mark.parametrize("env", ["conformance", "test-raises-inline"])
async def test_env_that_raises_ends_only_its_episode(start_server: StartServer, env: str) -> None:
    srv = await start_server(envs=["maze", env])
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        other = await client.open_episode("maze", 3)
        ep = await client.open_episode(env, 0)
        action = "crash" if env == "conformance" else "boom"
        with pytest.raises(Internal) as info:
            await ep.step(action)
        assert (
            f"env {env!r} failed in step 1" in info.value.message
            and "the episode is over" in info.value.message
        )
        assert not ep.alive
        assert (await other.step(await other.expert())).step_index == 1  # the other episode carries on
        await other.close()
        await ep.close()
        assert await wait_for(lambda: srv.service.capacity.live == 0, 1.0)


async def test_env_that_hangs_times_out(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze", "conformance"], step_timeout_s=0.5)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        other = await client.open_episode("maze", 3)
        ep = await client.open_episode("conformance", 0, options={"hang_s": "3"})
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"longer than the 0\.5s step timeout"):
            await ep.step("hang")
        assert time.monotonic() - t0 < 2.0
        assert (await other.step("move up")).step_index == 1
        await other.close()
        assert await wait_for(lambda: srv.service.capacity.live == 0, 1.0)


async def test_create_at_capacity_is_refused_at_once(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze", "wordle"], max_episodes=3, max_episodes_per_env=2)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        a = await client.open_episode("maze", 0)
        b = await client.open_episode("maze", 1)
        t0 = time.monotonic()
        with pytest.raises(ResourceExhausted, match="env 'maze' at capacity: 2 of 2"):
            await client.open_episode("maze", 2)
        assert time.monotonic() - t0 < 0.5  # refused, not queued
        c = await client.open_episode("wordle", 0)  # another env still has room
        with pytest.raises(ResourceExhausted, match="server at capacity: 3 of 3"):
            await client.open_episode("wordle", 1)
        await a.close()
        d = await client.open_episode("maze", 2)  # room again after a close
        for ep in (b, c, d):
            await ep.close()


async def test_idle_episode_is_freed(start_server: StartServer) -> None:
    srv = await start_server(envs=["maze"], idle_timeout_s=0.3)
    async with EnvClient(f"127.0.0.1:{srv.port}") as client:
        ep = await client.open_episode("maze", 0)
        assert await wait_for(lambda: srv.service.capacity.live == 0, 3.0)
        # The server ends the stream at once; once the client has seen that, a step says why. (A
        # step racing the end gets Unavailable, "the server had already ended this episode's stream".)
        assert await wait_for(lambda: ep.call is not None and ep.call.done(), 3.0)
        with pytest.raises(DeadlineExceeded, match=r"idle for more than 0\.3s"):
            await ep.step("move up")
        assert not ep.alive
