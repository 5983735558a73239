"""A stream the server has finished with leaves nothing behind, however the client goes away.

Found by bench/soak.py: a client that went away (killed, or its close cancelled) while the server
was closing its episode's env (a worker process takes a moment to exit) cancelled the server's
handler in the middle of freeing it; the Session then stayed in `EnvService.sessions` for good. No
live episode showed it (the slot was already given back): the server held the stream's objects
forever, and every shutdown waited out its whole grace period for a stream that was gone.
"""

from __future__ import annotations

import asyncio

import psutil
from prometheus_client import REGISTRY

from agentgym.client.envclient import EnvClient
from agentgym.server.app import Server
from tests.conftest import StartServer, wait_for
from tests.server import failure_envs  # noqa: F401  (registers the test-* envs)


def _workers(env: str) -> list[psutil.Process]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "agentgym.server.worker" in p.cmdline() and env in p.cmdline():
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


async def test_a_stream_cancelled_while_its_env_closes_is_forgotten(start_server: StartServer) -> None:
    server: Server = await start_server(
        envs=["test-slow-close"], env_settings={"test-slow-close": {"close_s": "1"}}, prewarm=0
    )
    streams_before = REGISTRY.get_sample_value("agentgym_open_streams")
    async with EnvClient(f"127.0.0.1:{server.port}") as client:
        ep = await client.open_episode("test-slow-close", 0)
        await ep.step("hello")
        closing = asyncio.create_task(ep.close())  # half-close: the server closes the env (1 s)
        session = next(iter(server.service.sessions))
        assert await wait_for(lambda: session.runner is None, 5.0), "the server never began closing the env"
        assert ep.call is not None
        ep.call.cancel()  # the client goes away while the worker is still closing its env
        await asyncio.gather(closing, return_exceptions=True)
    assert await wait_for(lambda: not server.service.sessions, 5.0), (
        f"{len(server.service.sessions)} stream(s) the client had left are still held by the server"
    )
    # The gauge that makes such a leak visible from outside is back where it was.
    assert REGISTRY.get_sample_value("agentgym_open_streams") == streams_before
    # The env was still closed to the end: its worker process exited rather than being left behind.
    assert await wait_for(lambda: not _workers("test-slow-close"), 5.0)
