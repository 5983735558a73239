"""Shared fixtures: real servers on free loopback ports, and clients for them.

Every server a test starts is checked on teardown: once its clients are gone it must report
zero live episodes (no leaked env), then it is stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from agentgym.client.envclient import EnvClient
from agentgym.server.app import Server
from agentgym.server.config import ServerConfig

CORE_ENVS = ["maze", "wordle", "textcraft", "conformance"]

StartServer = Callable[..., Awaitable[Server]]


async def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)
    return True


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """`await start_server(envs=[...], **ServerConfig fields)` starts a server on a free port."""
    servers: list[Server] = []

    async def start(**overrides: object) -> Server:
        overrides.setdefault("port", 0)
        overrides.setdefault("grace_s", 0.0)
        overrides.setdefault("step_timeout_s", 5.0)
        srv = await Server.start(ServerConfig(**overrides))  # type: ignore[arg-type]
        servers.append(srv)
        return srv

    yield start
    leaks = []
    for srv in servers:
        if not await wait_for(lambda s=srv: s.service.capacity.live == 0, 3.0):
            leaks.append(f"{srv.address}: {srv.service.capacity.live} live episodes")
        await srv.stop(0)
    assert not leaks, f"servers leaked episodes: {leaks}"


@pytest.fixture
async def server(start_server: StartServer) -> Server:
    """A server hosting the core envs and the conformance fixture, with a 2 s step timeout."""
    return await start_server(envs=CORE_ENVS, step_timeout_s=2.0)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[EnvClient]:
    async with EnvClient(f"127.0.0.1:{server.port}") as c:
        yield c


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama and its tokenizer, built from a config (no download), once per session."""
    from agentgym.trainer.tiny import save

    return str(save(tmp_path_factory.mktemp("tiny") / "model", "tiny", seed=0))
