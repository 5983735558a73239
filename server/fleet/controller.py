"""The fleet controller: a named, detached async Ray actor that starts the env-server replicas, keeps
the routing table clients read, health-checks every replica, and scales each env's replicas.

    controller = ray.get_actor("agentgym", namespace="agentgym")
    table = ray.get(controller.routing.remote())      # agentgym.core.fleet.RoutingTable

Routing. `routing()` serves the table the health loop keeps: no I/O per call. A replica is in the
table once its server has answered; `healthy` is its last gRPC health check (or, when the servers use
TLS, its last answer over Ray); `draining` is set the moment the controller decides to remove it.

Failures. Each replica has one `watch()` call open on it, which fails the moment its actor dies, and
a health check every `health_interval_s`: either failing takes it out of the table at once. Ray
restarts the actor (max_restarts=-1) on a node with room; its new server (a new port) rejoins the
table when it answers.

Autoscaling, per env, every half second: desired = ceil(live / (episodes_per_replica *
target_utilisation)) within [min, max]. Replicas are added at once; removed only when desired has
stayed below the actual count for `cooldown_s` (and `cooldown_s` after the last change), least loaded
first, each drained (no new episodes, live ones finish, up to `drain_timeout_s`) before it is killed.
Nodes are Ray's business: a replica that finds no room waits for Ray's autoscaler to add one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import grpc
import ray
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ray.exceptions import RayActorError

from agentgym.core.fleet import NAMESPACE, EnvLoad, RoutingTable, ServerEntry
from agentgym.server.fleet.actor import EnvServerActor
from agentgym.server.fleet.config import FleetConfig

log = logging.getLogger(__name__)

ServerActor = ray.remote(EnvServerActor)

SCALE_INTERVAL_S = 0.5
# A replica that Ray cannot place (no node with its resources free) keeps waiting; its status says
# so after this long.
PLACEMENT_NOTICE_S = 10.0
# After a replica fails to start (its actor's creation raised), the next try for that env waits this
# long, doubling up to the cap, so that a bad setting does not spin.
START_BACKOFF_S = (2.0, 60.0)


@dataclass(eq=False)
class Replica:
    id: str
    env: str
    handle: Any  # ray.actor.ActorHandle of an EnvServerActor
    created_at: float = field(default_factory=time.monotonic)
    address: str | None = None  # known once the server answered; None while (re)starting
    node_id: str = ""
    pid: int = 0
    healthy: bool = False
    draining: bool = False
    live: int = 0
    capacity: int = 0
    restarts: int = 0
    note: str = "starting"  # what the status shows about it
    channel: grpc.aio.Channel | None = None

    def entry(self) -> ServerEntry:
        assert self.address is not None
        load = EnvLoad(live=self.live, capacity=self.capacity)
        return ServerEntry(
            address=self.address,
            node_id=self.node_id,
            envs={self.env: load},
            healthy=self.healthy,
            draining=self.draining,
        )


class FleetController:
    async def __init__(self, config: FleetConfig) -> None:
        config.validate()
        self.config = config
        self.plans = config.plans()
        # Replica actor names carry this, so that a restarted controller never collides with the
        # names of the replicas of its previous life while those are being cleaned up.
        self.incarnation = uuid.uuid4().hex[:6]
        self.replicas: dict[str, Replica] = {}
        self._seq = itertools.count()
        self.version = 0
        self._membership: tuple[tuple[str, str, bool, bool], ...] = ()
        self._table = RoutingTable(fleet=config.name, version=0, servers=[])
        self.desired = {env: plan.min_replicas for env, plan in self.plans.items()}
        self._low_since: dict[str, float | None] = dict.fromkeys(self.plans)
        self._last_change: dict[str, float] = dict.fromkeys(self.plans, time.monotonic())
        self._backoff: dict[str, tuple[float, float]] = {}  # env -> (retry at, current delay)
        self.start_errors: dict[str, str] = {}  # env -> why its last replica failed to start
        self.events: deque[tuple[float, str]] = deque(maxlen=50)
        self.stopping = False
        self._grpc_health = not config.server.get("tls_cert")
        self._tasks: set[asyncio.Task[Any]] = set()
        for env, plan in self.plans.items():
            for _ in range(plan.min_replicas):
                self._add(env)
        self._spawn(self._health_loop())
        self._spawn(self._scale_loop())
        self._event(
            f"fleet {config.name} up: {', '.join(f'{e} x{p.min_replicas}' for e, p in self.plans.items())}"
        )

    # --- what clients and the CLI call ---------------------------------------------------------
    async def routing(self) -> RoutingTable:
        return self._table

    async def status(self) -> dict[str, Any]:
        now = time.monotonic()
        envs = {}
        for env, plan in self.plans.items():
            mine = [r for r in self.replicas.values() if r.env == env]
            active = [r for r in mine if not r.draining]
            envs[env] = {
                "desired": self.desired[env],
                "actual": len(active),
                "healthy": sum(r.healthy for r in active),
                "draining": len(mine) - len(active),
                "live": sum(r.live for r in mine),
                "capacity": sum(r.capacity for r in active if r.healthy),
                "min": plan.min_replicas,
                "max": plan.max_replicas,
                "episodes_per_replica": plan.episodes_per_replica,
                "cpus": plan.cpus,
                "memory_mb": plan.memory_mb,
                "error": self.start_errors.get(env, ""),
            }
        replicas = [
            {
                "id": r.id,
                "env": r.env,
                "node_id": r.node_id,
                "address": r.address or "",
                "pid": r.pid,
                "healthy": r.healthy,
                "draining": r.draining,
                "live": r.live,
                "capacity": r.capacity,
                "restarts": r.restarts,
                "age_s": round(now - r.created_at, 1),
                "note": r.note,
            }
            for r in sorted(self.replicas.values(), key=lambda r: (r.env, r.id))
        ]
        events = [{"age_s": round(now - t, 1), "event": e} for t, e in self.events]
        return {
            "fleet": self.config.name,
            "version": self.version,
            "envs": envs,
            "replicas": replicas,
            "events": events,
            "config": self.config.to_dict(),
        }

    async def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """Wait until every env has its minimum of healthy replicas. {"ready": bool, "error": str}:
        a replica that failed to start ends the wait at once with its reason."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.start_errors:
                env, why = next(iter(self.start_errors.items()))
                return {"ready": False, "error": f"a replica of {env} failed to start: {why}"}
            short = {
                env: (
                    sum(r.healthy and not r.draining for r in self.replicas.values() if r.env == env),
                    p.min_replicas,
                )
                for env, p in self.plans.items()
            }
            if all(have >= need for have, need in short.values()):
                return {"ready": True, "error": ""}
            if time.monotonic() > deadline:
                waiting = ", ".join(
                    f"{env} {have}/{need}" for env, (have, need) in short.items() if have < need
                )
                notes = sorted({r.note for r in self.replicas.values() if not r.healthy})
                return {
                    "ready": False,
                    "error": f"replicas not serving after {timeout_s:g}s ({waiting}): {'; '.join(notes)}",
                }
            await asyncio.sleep(0.1)

    async def shutdown(self, grace_s: float) -> dict[str, int]:
        """Drain every replica (live episodes get `grace_s`) and kill it. The caller kills this actor."""
        self.stopping = True
        for task in list(self._tasks):
            task.cancel()
        replicas = list(self.replicas.values())
        cut = await asyncio.gather(*(self._remove(r, grace_s) for r in replicas), return_exceptions=True)
        return {"replicas": len(replicas), "episodes_cut": sum(c for c in cut if isinstance(c, int))}

    # --- replicas -------------------------------------------------------------------------------
    def _add(self, env: str) -> Replica:
        plan = self.plans[env]
        rid = f"{env}-{next(self._seq)}"
        handle = ServerActor.options(
            name=f"{self.config.name}:{rid}:{self.incarnation}",
            namespace=NAMESPACE,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=1000,
            scheduling_strategy="SPREAD",  # replicas of one env on different nodes where they fit
            **plan.ray_options(),
        ).remote(self.config, env, rid)
        replica = Replica(rid, env, handle)
        self.replicas[rid] = replica
        self._spawn(self._run(replica))
        self._event(f"{rid}: added")
        return replica

    async def _run(self, r: Replica) -> None:
        """One replica's life as seen from here: wait for its server, then watch the actor; after a
        death, wait for Ray's restart (a new server, a new address) and go on."""
        while not (self.stopping or r.draining):
            try:
                info = await asyncio.wait_for(_await(r.handle.info.remote()), PLACEMENT_NOTICE_S)
            except TimeoutError:
                plan = self.plans[r.env]
                r.note = (
                    f"not serving after {time.monotonic() - r.created_at:.0f}s: still starting, or waiting "
                    f"for a node with {_resources(plan.ray_options())} free"
                )
                continue
            except RayActorError as exc:
                if r.draining:
                    return
                if await _dead_for_good(r.handle):
                    self._failed(r, exc)
                    return
                await asyncio.sleep(0.2)  # dead, and Ray is restarting it: its next start answers
                continue
            self._take_info(r, info)
            await self._probe(r)
            self._publish()
            try:
                await _await(r.handle.watch.remote())
                return  # its server stopped: drained by _remove
            except RayActorError as exc:
                if r.draining:
                    return
                r.restarts += 1
                self._down(r, f"actor died ({type(exc).__name__}); Ray is restarting it")

    def _failed(self, r: Replica, exc: BaseException) -> None:
        why = _reason(exc)
        self.start_errors[r.env] = why
        _, delay = self._backoff.get(r.env, (0.0, START_BACKOFF_S[0] / 2))
        delay = min(delay * 2, START_BACKOFF_S[1])
        self._backoff[r.env] = (time.monotonic() + delay, delay)
        self.replicas.pop(r.id, None)
        self._close_channel(r)
        self._event(f"{r.id}: failed to start, next try in {delay:g}s: {why}")
        log.error("replica failed to start", extra={"replica": r.id, "error": why})
        self._publish()

    def _take_info(self, r: Replica, info: dict[str, Any]) -> None:
        if info["address"] != r.address:
            self._close_channel(r)
            r.address = info["address"]
            if self._grpc_health:
                r.channel = grpc.aio.insecure_channel(r.address)
            self._event(f"{r.id}: serving at {r.address} on node {info['node_id'][:8]}")
        r.node_id, r.pid = info["node_id"], info["pid"]
        load = info["envs"][r.env]
        r.live, r.capacity = load["live"], load["capacity"]
        r.draining = r.draining or info["draining"]
        self.start_errors.pop(r.env, None)
        self._backoff.pop(r.env, None)

    def _down(self, r: Replica, why: str) -> None:
        """Out of routing at once: its address is gone until its actor answers again."""
        if r.address is None and not r.healthy:
            return
        r.healthy = False
        r.address = None
        r.live = 0
        r.note = why
        self._close_channel(r)
        self._event(f"{r.id}: down: {why}")
        log.warning("replica down", extra={"replica": r.id, "reason": why})
        self._publish()

    async def _remove(self, r: Replica, grace_s: float) -> int:
        """Drain, then kill: its live episodes finish (up to grace_s) before its server stops."""
        r.draining = True
        r.note = "draining"
        self._publish()
        self._event(f"{r.id}: draining ({r.live} live episodes)")
        cut = 0
        if r.address is not None:
            try:
                cut = await asyncio.wait_for(_await(r.handle.drain.remote(grace_s)), grace_s + 30)
            except (RayActorError, TimeoutError) as exc:
                log.warning("drain failed; killing", extra={"replica": r.id, "error": _reason(exc)})
        ray.kill(r.handle, no_restart=True)
        self.replicas.pop(r.id, None)
        self._close_channel(r)
        self._event(f"{r.id}: removed" + (f" ({cut} episodes cut short)" if cut else ""))
        self._publish()
        return cut

    def _close_channel(self, r: Replica) -> None:
        if r.channel is not None:
            self._spawn(r.channel.close())
            r.channel = None

    # --- health ---------------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            await asyncio.gather(*(self._probe(r) for r in list(self.replicas.values()) if r.address))
            self._publish()

    async def _probe(self, r: Replica) -> None:
        """One health check: the gRPC health service on its address (what clients will reach) and its
        load over Ray, both within health_timeout_s."""
        timeout = self.config.health_timeout_s
        address = r.address

        async def grpc_check() -> str | None:
            if r.channel is None:
                return None
            stub = health_pb2_grpc.HealthStub(r.channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return f"health check failed: {exc.code().name}"
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return f"health check: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
            return None

        async def load() -> dict[str, Any] | str:
            try:
                return await asyncio.wait_for(_await(r.handle.info.remote()), timeout)  # type: ignore[no-any-return]
            except TimeoutError:
                return f"no answer over Ray within {timeout:g}s"
            except RayActorError as exc:
                return f"actor unreachable ({type(exc).__name__})"

        problem, info = await asyncio.gather(grpc_check(), load())
        if r.address != address or r.address is None:
            return  # went down (or restarted) meanwhile: _run has it
        if isinstance(info, dict):
            self._take_info(r, info)
        elif problem is None:
            problem = info
        if problem is None:
            if not r.healthy:
                self._event(f"{r.id}: healthy")
            r.healthy = True
            r.note = "draining" if r.draining else "serving"
        elif r.healthy or r.note != problem:
            if r.healthy:
                self._event(f"{r.id}: unhealthy: {problem}")
            r.healthy = False
            r.note = problem

    def _publish(self) -> None:
        servers = [r.entry() for r in sorted(self.replicas.values(), key=lambda r: r.id) if r.address]
        membership = tuple((s["address"], s["node_id"], s["healthy"], s["draining"]) for s in servers)
        if membership != self._membership:
            self._membership = membership
            self.version += 1
        self._table = RoutingTable(fleet=self.config.name, version=self.version, servers=servers)

    # --- autoscaling ----------------------------------------------------------------------------
    async def _scale_loop(self) -> None:
        while True:
            await asyncio.sleep(SCALE_INTERVAL_S)
            for env in self.plans:
                self._scale(env, time.monotonic())

    def _scale(self, env: str, now: float) -> None:
        plan, cfg = self.plans[env], self.config
        active = [r for r in self.replicas.values() if r.env == env and not r.draining]
        live = sum(r.live for r in active if r.healthy)
        desired = self.desired[env] = plan.desired(live, cfg.target_utilisation)
        if len(active) < desired:
            self._low_since[env] = None
            retry_at, _ = self._backoff.get(env, (0.0, 0.0))
            if now < retry_at:
                return
            for _ in range(desired - len(active)):
                self._add(env)
            self._last_change[env] = now
            self._event(f"{env}: scaled up to {desired} ({live} live episodes)")
            return
        if len(active) == desired:
            self._low_since[env] = None
            return
        low_since = self._low_since[env]
        if low_since is None:
            self._low_since[env] = now
            return
        if now - low_since < cfg.cooldown_s or now - self._last_change[env] < cfg.cooldown_s:
            return
        # Not-yet-serving and unhealthy replicas go first, then the least loaded.
        victims = sorted(active, key=lambda r: (r.healthy, r.live, -r.created_at))[: len(active) - desired]
        for r in victims:
            self._spawn(self._remove(r, cfg.drain_timeout_s))
        self._low_since[env] = None
        self._last_change[env] = now
        self._event(f"{env}: scaling down to {desired} ({live} live episodes)")

    # --- plumbing -------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("controller task failed", exc_info=exc)
            self._event(f"internal error: {_reason(exc)}")

    def _event(self, text: str) -> None:
        self.events.append((time.monotonic(), text))
        log.info(text, extra={"fleet": self.config.name})


async def _await(ref: Any) -> Any:
    return await ref


async def _dead_for_good(handle: Any) -> bool:
    """Whether Ray has given up on the actor (its creation failed, or it was killed), as opposed to
    restarting it: the GCS's actor table says DEAD."""
    actor_id = handle._actor_id.hex()

    def state() -> str:
        from ray._private import state as ray_state

        return str(ray_state.actors(actor_id=actor_id).get("State", ""))

    try:
        return await asyncio.to_thread(state) == "DEAD"
    except Exception:  # the private table API changed: treat as restarting, and keep waiting
        log.warning("could not read the actor table", exc_info=True)
        return False


def _reason(exc: BaseException) -> str:
    """The first lines that say why, not Ray's whole traceback."""
    text = str(exc).strip()
    cause = getattr(exc, "cause", None) or getattr(exc, "__cause__", None)
    if cause is not None and str(cause).strip():
        text = f"{type(cause).__name__}: {str(cause).strip()}"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # Ray puts the creation task's traceback in the message: its last line is the exception itself.
    for line in reversed(lines):
        if ":" in line and not line.startswith(" "):
            return line.strip()[:500]
    return (lines[-1] if lines else type(exc).__name__)[:500]


def _resources(options: dict[str, Any]) -> str:
    parts = [f"cpus={options['num_cpus']:g}"]
    if "memory" in options:
        parts.append(f"memory={options['memory'] // (1024 * 1024)}MB")
    return " ".join(parts)


def controller_options(name: str) -> dict[str, Any]:
    """How `fleet up` starts the controller: named in the fleet namespace, outliving the CLI
    (detached), taking no CPU, restarted if its process dies, on the head node (which outlives the
    others: a cluster without its head is gone anyway)."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "num_cpus": 0,
        "max_restarts": -1,
        "max_concurrency": 1000,
        "resources": {"node:__internal_head__": 0.001},
    }


ControllerActor = ray.remote(FleetController)


def connected_controller(name: str) -> Any:
    """The named controller of fleet `name` on the connected cluster; ValueError if none."""
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        raise ValueError(
            f"no fleet named {name!r} on this Ray cluster (start one: agentgym fleet up --name {name})"
        ) from None
