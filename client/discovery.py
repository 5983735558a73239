"""Fleet discovery: a `ray://HOST:PORT/FLEET` address -> the fleet's live env servers, kept fresh.

    discovery = Discovery("ray://127.0.0.1:10001/agentgym")
    table = await discovery.start()        # joins the Ray cluster (once per process), reads the table
    ...                                      # a background task re-reads it every `refresh_s` (1 s)
    await discovery.close()

`EnvClient("ray://...")` does this itself; use `Discovery` directly only to watch a fleet.

The fleet's controller (server/fleet/controller.py) keeps the routing table in memory and serves it
without I/O, so polling it each second costs one small Ray call. Discovery never sits on the step
path: clients stream straight to the servers it lists. Which server a new episode may go to is
core/fleet.py's `accepts_new_episodes` (healthy, not draining, hosting the env); among those the
least loaded by `load` below.

Ray is imported here only, and only when a fleet is used: without Ray installed, plain addresses
work as ever and a `ray://` address says `pip install 'agentgym[ray]'`. Every Ray call blocks, so
each runs in a thread (asyncio.to_thread), never on the event loop. Inside a Ray actor, or in a
process that already called `ray.init` (a test's driver), the existing connection is used;
otherwise `ray.init(address="ray://HOST:PORT", namespace="agentgym")` (Ray client) joins the
cluster, once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from agentgym.client.errors import FailedPrecondition, NotFound, Unavailable
from agentgym.core.fleet import (
    NAMESPACE,
    RAY_MISSING,
    FleetAddress,
    RoutingTable,
    ServerEntry,
    accepts_new_episodes,
    parse_fleet_address,
)

log = logging.getLogger(__name__)

__all__ = ["Discovery", "accepts_new_episodes", "connect_ray", "import_ray", "load"]

TableSource = Callable[[], Awaitable[RoutingTable]]

_connect_lock = threading.Lock()


def import_ray() -> ModuleType:
    """Ray, or FailedPrecondition naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise FailedPrecondition(RAY_MISSING) from None
    return ray


# What Ray client says when its per-client server process failed to start (worth another try).
_CLIENT_START_FAILED = ("client server failed", "Initialization failure from server")


def connect_ray(address: str) -> ModuleType:
    """Join the Ray cluster at `address` ("ray://HOST:PORT", "auto", a GCS address) unless this
    process is already connected (inside an actor, or a driver that called ray.init): then that
    connection serves, whatever `address` says. Blocking: call it from a thread."""
    ray = import_ray()
    with _connect_lock:
        if ray.is_initialized():
            return ray
        # Ray client's server starts one process per client on a port of its own range; when two
        # clusters share a host, or the host is busy, that start can fail at once ("Starting Ray
        # client server failed", "Initialization failure from server"). Another try, after a pause,
        # gets a new server process.
        attempts = 3 if address.startswith("ray://") else 1
        for attempt in range(attempts):
            try:
                ray.init(
                    address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False
                )
                break
            except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
                transient = any(s in str(exc) for s in _CLIENT_START_FAILED)
                if attempt + 1 < attempts and transient:
                    log.warning("Ray client connection refused; trying again", extra={"address": address})
                    time.sleep(1.0 + attempt)
                    continue
                raise Unavailable(
                    f"cannot join the Ray cluster at {address}: {exc}. Is the cluster up, and its Ray client server "
                    "listening there (`ray start --head --ray-client-server-port PORT`, or `agentgym fleet up`)?"
                ) from None
    return ray


def load(entry: ServerEntry, env: str, opened_since: int = 0) -> float:
    """Fraction of a server's capacity for `env` in use: the controller's last count plus the
    episodes this client opened there since (minus those it closed), so that a burst of creates
    between two tables spreads instead of piling onto the server that looked emptiest."""
    e = entry["envs"].get(env)
    if e is None:
        return float("inf")
    return (e["live"] + opened_since) / max(1, e["capacity"])


class Discovery:
    """The routing table of one fleet, re-read every `refresh_s` by a background task.

    `on_table(table)` is called (on the event loop) with every table read, changed or not: loads
    move without a version bump. When the controller cannot be reached the last table stands
    (servers already known keep serving; a dead one fails at create and is skipped) and a warning
    is logged once per outage. `source` replaces the controller (tests, benchmarks): an async
    callable returning a RoutingTable.
    """

    def __init__(
        self,
        address: str,
        *,
        refresh_s: float = 1.0,
        timeout_s: float = 10.0,
        on_table: Callable[[RoutingTable], None] | None = None,
        source: TableSource | None = None,
    ) -> None:
        self.address: FleetAddress = parse_fleet_address(address)
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.on_table = on_table
        self.source = source
        self.table: RoutingTable | None = None
        self.fetched_at = 0.0  # time.monotonic() of the last table read
        self.reads = 0
        self.last_error = ""
        self._controller: Any = None  # the controller's actor handle
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    def __str__(self) -> str:
        return str(self.address)

    async def start(self) -> RoutingTable:
        """The first table (joining the cluster if need be); starts the background refresh. Raises
        FailedPrecondition (no Ray), Unavailable (no cluster there) or NotFound (no such fleet)."""
        async with self._start_lock:
            if self.table is None:
                await self.refresh()
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._poll(), name=f"discovery {self}")
        assert self.table is not None
        return self.table

    async def refresh(self) -> RoutingTable:
        """Read the table now (and hand it to on_table)."""
        if self.source is not None:
            table = await self.source()
        else:
            table = await asyncio.to_thread(self._read_blocking)
        self.table = table
        self.fetched_at = time.monotonic()
        self.reads += 1
        if self.on_table is not None:
            self.on_table(table)
        return table

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        outage = False
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # keep the last table; a dead controller must not stop the clients
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._controller = None  # look it up again: it may have been restarted
                if not outage:
                    log.warning(
                        "fleet routing table not refreshed; using the last one",
                        extra={"fleet": str(self), "error": self.last_error},
                    )
                outage = True
            else:
                if outage:
                    log.info("fleet routing table refreshed again", extra={"fleet": str(self)})
                outage = False

    # --- blocking Ray calls (run in a thread) ---------------------------------------------------------
    def _read_blocking(self) -> RoutingTable:
        ray = connect_ray(self.address.ray_address)
        if self._controller is None:
            try:
                self._controller = ray.get_actor(self.address.fleet, namespace=NAMESPACE)
            except ValueError:
                raise NotFound(
                    f"no fleet named {self.address.fleet!r} on the Ray cluster at {self.address.ray_address} "
                    f"(namespace {NAMESPACE!r}): start one with `agentgym fleet up --name {self.address.fleet}`, "
                    "or see `agentgym fleet status`"
                ) from None
        try:
            table: RoutingTable = ray.get(self._controller.routing.remote(), timeout=self.timeout_s)
        except Exception as exc:
            raise Unavailable(
                f"the controller of fleet {self.address.fleet!r} did not answer: {type(exc).__name__}: {exc}"
            ) from None
        return table
