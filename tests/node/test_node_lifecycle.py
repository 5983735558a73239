"""The Node.js server's limits and lifecycle beyond the conformance suite: graceful shutdown, idle
timeout, message size, structured logs, defaults shared with the Python server, and its own unit
tests (node --test)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import time

import grpc
import pytest

from agentgym.client.conformance import Stream
from agentgym.client.envclient import EnvClient
from agentgym.client.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from agentgym.server.config import ServerConfig
from agentgym.v1 import env_pb2 as pb
from tests.conftest import wait_for
from tests.node.conftest import NODE, NODE_DIR, StartNode, list_envs, requires_node, wait_live

pytestmark = requires_node


async def read_to_end(stream: Stream) -> tuple[list[pb.SessionResponse], grpc.StatusCode]:
    """Every response the server still sends on a stream it is ending, and the final status."""
    responses = []
    try:
        while (raw := await asyncio.wait_for(stream.call.read(), 10)) is not grpc.aio.EOF:
            responses.append(pb.SessionResponse.FromString(raw))
    except grpc.aio.AioRpcError as exc:
        return responses, exc.code()
    return responses, await stream.call.code()


async def test_sigterm_drains_then_ends_live_episodes_with_unavailable(start_node: StartNode) -> None:
    srv = await start_node("--envs", "sokoban", "--grace", "1.5")
    async with grpc.aio.insecure_channel(srv.address) as channel:
        live = Stream(channel)
        assert (await live.create("sokoban", 0)).WhichOneof("kind") == "created"
        t0 = time.monotonic()
        srv.proc.terminate()  # SIGTERM
        for _ in range(100):
            info = await list_envs(srv.address)
            if info.server.draining:
                break
            await asyncio.sleep(0.02)
        assert info.server.draining and info.server.live_episodes == 1
        # New episodes are refused in band; the live one keeps working during the grace period.
        async with EnvClient(srv.address) as client:
            with pytest.raises(Unavailable, match="shutting down"):
                await client.open_episode("sokoban", 1)
        assert (await live.step("up")).WhichOneof("kind") == "step"
        # Then it is ended by the stream's status alone (UNAVAILABLE), as the Python server does.
        responses, status = await read_to_end(live)
        assert time.monotonic() - t0 >= 1.4
        details = await live.call.details()
    assert responses == []
    assert status == grpc.StatusCode.UNAVAILABLE and "shutting down" in details
    assert await asyncio.to_thread(srv.proc.wait, 10) == 0
    events = [d["event"] for d in srv.logs()]
    assert events.index("shutting down") < events.index("server stopped")


async def test_idle_episode_is_freed_with_deadline_exceeded(start_node: StartNode) -> None:
    srv = await start_node("--envs", "sokoban", "--idle-timeout", "0.5")
    assert (await list_envs(srv.address)).server.idle_timeout_s == 0.5
    async with grpc.aio.insecure_channel(srv.address) as channel:
        idle = Stream(channel)
        await idle.create("sokoban", 3)
        t0 = time.monotonic()
        responses, status = await read_to_end(idle)
        took = time.monotonic() - t0
        details = await idle.call.details()
    # The status alone says why, as the Python server does (no in-band message).
    assert responses == []
    assert status == grpc.StatusCode.DEADLINE_EXCEEDED and "idle" in details
    assert 0.4 < took < 3.0
    assert await wait_live(srv.address, 0, 1.0) == 0


async def test_idle_timeout_through_the_client(start_node: StartNode) -> None:
    # The client's next step reads why the stream ended (the status), as against the Python server.
    srv = await start_node("--envs", "sokoban", "--idle-timeout", "0.3")
    async with EnvClient(srv.address) as client:
        ep = await client.open_episode("sokoban", 0)
        assert await wait_for(lambda: ep.call is not None and ep.call.done(), 3.0)
        assert await wait_live(srv.address, 0, 1.0) == 0
        with pytest.raises(DeadlineExceeded, match="idle"):
            await ep.step("up")
        assert not ep.alive


async def test_message_over_the_size_limit_ends_the_stream(start_node: StartNode) -> None:
    srv = await start_node(
        "--envs", "sokoban", "--max-message-bytes", "65536", "--max-action-bytes", "1000000"
    )
    async with EnvClient(srv.address) as client:
        ep = await client.open_episode("sokoban", 0)
        with pytest.raises(ResourceExhausted):
            await ep.step("up " * 40_000)
        assert await wait_live(srv.address, 0, 2.0) == 0
        async with client.episode("sokoban", 0) as again:  # the server is fine
            assert (await again.step("up")).step_index == 1


async def test_logs_are_json_lines(start_node: StartNode) -> None:
    srv = await start_node("--envs", "conformance", "--log-level", "debug")
    async with EnvClient(srv.address) as client, client.episode("conformance", 0) as ep:
        with pytest.raises(Exception, match="INTERNAL"):
            await ep.step("crash")
    await asyncio.sleep(0.2)
    docs = srv.logs()  # raises if any line is not JSON
    assert all({"ts", "level", "logger", "event"} <= d.keys() for d in docs)
    failed = next(d for d in docs if d["event"] == "episode failed")
    assert failed["code"] == "INTERNAL" and "conformance" in str(failed["error"]) and failed["episode"]
    assert any(d["event"] == "episode ended" and d["level"] == "debug" for d in docs)


def test_defaults_are_the_python_servers() -> None:
    assert NODE is not None
    out = subprocess.run(
        [
            NODE,
            "--input-type=module",
            "-e",
            "import {DEFAULTS} from './src/config.js'; console.log(JSON.stringify(DEFAULTS))",
        ],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    node = json.loads(out)
    python = dataclasses.asdict(ServerConfig())
    shared = sorted(set(node) & set(python))
    assert len(shared) >= 12, shared
    assert {k: node[k] for k in shared} == {k: python[k] for k in shared}


def test_node_unit_tests_pass() -> None:
    """Sokoban (every level generated and solved), flags, the thread pool: `node --test`."""
    assert NODE is not None
    files = sorted(str(p.relative_to(NODE_DIR)) for p in (NODE_DIR / "test").glob("*.test.js"))
    proc = subprocess.run([NODE, "--test", *files], cwd=NODE_DIR, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout
