"""The env-server actor: one fleet replica, the ordinary grpc.aio server (server/app.py) inside an
async Ray actor, listening on its node's address on a free port.

Ray restarts it (max_restarts=-1) when its process or node dies; each start is a new server on a new
port, which `info()` reports and the controller routes to.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import ray

from agentgym.server.app import Server
from agentgym.server.fleet.config import FleetConfig


class EnvServerActor:
    """Not decorated: the controller sets its options (resources, restarts, name) per replica."""

    async def __init__(self, config: FleetConfig, env: str, replica: str) -> None:
        # The server starts here rather than in a later call so that a restart by Ray (which only
        # runs __init__ again) brings it back by itself; a failure here (a bad setting, a refused
        # bind) makes the actor's creation fail, which the controller reports.
        self.replica = replica
        self.env = env
        self.node_id = ray.get_runtime_context().get_node_id()
        host = ray.util.get_node_ip_address()
        self.server = await Server.start(config.server_config(env, host))
        self.started_at = time.time()
        self._stopped = asyncio.Event()

    async def info(self) -> dict[str, Any]:
        """Where this replica listens and how loaded it is: in-process counters, no I/O."""
        cap = self.server.service.capacity
        return {
            "replica": self.replica,
            "address": self.server.address,
            "node_id": self.node_id,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "envs": {
                env: {"live": cap.live_per_env[env], "capacity": cap.per_env[env]} for env in cap.per_env
            },
            "draining": self.server.service.draining or self._stopped.is_set(),
            "episodes_started": self.server.service.episodes_started,
        }

    async def drain(self, timeout_s: float) -> int:
        """The server's graceful stop: health NOT_SERVING, creates refused (UNAVAILABLE), live
        episodes get up to `timeout_s` to finish, then the rest end and the port closes. Returns the
        episodes still live when the time ran out (0 when all finished)."""
        if self._stopped.is_set():
            return 0
        self._stopped.set()
        service = self.server.service
        deadline = time.monotonic() + timeout_s
        # Like Server.stop's own wait, but reporting what was cut short.
        await self.server.health.enter_graceful_shutdown()
        service.draining = True
        while service.capacity.live and time.monotonic() < deadline:  # noqa: ASYNC110 - a count, no event to wait on
            await asyncio.sleep(0.05)
        cut = service.capacity.live
        await self.server.stop(grace_s=0)
        return cut

    async def watch(self) -> None:
        """Returns once the server is stopped; fails (RayActorError) the moment the actor dies: the
        controller keeps one such call open per replica to learn of a death at once."""
        await self._stopped.wait()
