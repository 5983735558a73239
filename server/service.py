"""The EnvService implementation: hosted envs, capacity, live sessions, idle sweeping, draining."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import grpc

from agentgym.core import metrics
from agentgym.envs import registry
from agentgym.envs.base import Env
from agentgym.server.config import ServerConfig
from agentgym.server.runners import LocalRunner, ProcessRunner, Runner
from agentgym.server.session import Session
from agentgym.v1 import env_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAME = "agentgym.v1.EnvService"

# Memory budgeted per episode of a `process` env that declares none (`Env.episode_memory_mb`): its
# worker process, ~30 MB resident with the env modules imported (measured), and room for its game.
DEFAULT_PROCESS_EPISODE_MB = 50


def implementation() -> str:
    try:
        return f"agentgym-python {metadata.version('agentgym')}"
    except metadata.PackageNotFoundError:
        return "agentgym-python"


def available_memory_mb() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(cls: type[Env], execution: str, processes: int) -> tuple[int, str] | None:
    """Most live episodes of `cls` that this process's share of the host's memory holds, and how
    that was reckoned; None when the env runs in this process and declares no memory per episode,
    or the memory is unknown. Every process env has one: each episode is a worker process."""
    per_episode = cls.episode_memory_mb or (DEFAULT_PROCESS_EPISODE_MB if execution == "process" else None)
    available = available_memory_mb() if per_episode else None
    if not per_episode or available is None:
        return None
    shared = f" / {processes} server processes" if processes > 1 else ""
    basis = f"memory: {available} MB available{shared}, {per_episode} MB per episode"
    return max(1, available // processes // per_episode), basis


class Capacity:
    """Counts live episodes; refuses at once beyond the global or per-env limit."""

    def __init__(self, total: int, per_env: dict[str, int], basis: Mapping[str, str] | None = None) -> None:
        self.total = total
        self.per_env = per_env
        self.basis = dict(basis or {})  # env -> how its limit was derived, when not configured
        self.live = 0
        self.live_per_env: Counter[str] = Counter()
        for env, limit in per_env.items():
            metrics.CAPACITY.labels(env).set(limit)

    def acquire(self, env: str) -> str | None:
        """Take a slot, or return why not."""
        if self.live >= self.total:
            metrics.REFUSALS.labels(env, "max_episodes").inc()
            return (
                f"server at capacity: {self.live} of {self.total} episodes live (max_episodes); "
                "close finished episodes, retry later, or add a server"
            )
        if self.live_per_env[env] >= self.per_env[env]:
            metrics.REFUSALS.labels(env, "max_episodes_per_env").inc()
            why = f" ({self.basis[env]})" if env in self.basis else ""
            return (
                f"env {env!r} at capacity: {self.live_per_env[env]} of {self.per_env[env]} episodes live{why}; "
                "close finished episodes, retry later, or add a server"
            )
        self.live += 1
        self.live_per_env[env] += 1
        metrics.child(metrics.LIVE_EPISODES, env).inc()
        return None

    def release(self, env: str) -> None:
        self.live -= 1
        self.live_per_env[env] -= 1
        metrics.child(metrics.LIVE_EPISODES, env).dec()


class HostedEnv:
    """An env class as this server hosts it: its spec and how its episodes are started."""

    def __init__(self, cls: type[Env], service: EnvService) -> None:
        self.cls = cls
        self.service = service
        self.execution = service.config.execution.get(cls.name, cls.execution)
        self.idle_workers: list[ProcessRunner] = []
        self._warming = 0
        # Creates waiting for a worker that is starting (one each): see new_runner.
        self._waiting: deque[asyncio.Future[ProcessRunner | None]] = deque()

    def spec(self, live: int, max_episodes: int) -> pb.EnvSpec:
        c = self.cls
        return pb.EnvSpec(
            name=c.name,
            description=c.description,
            task_count=c.task_count,
            splits=[
                pb.Split(name=n, ranges=[pb.TaskRange(start=r.start, end=r.stop) for r in rs])
                for n, rs in c.splits.items()
            ],
            instruction=c.instruction,
            action_format=c.action_format,
            max_rounds=c.max_rounds,
            has_expert=c.has_expert(),
            max_episodes=max_episodes,
            live_episodes=live,
            success_threshold=c.success_threshold,
            acknowledgement=c.acknowledgement,
            task_set=c.task_set,
            profile=c.profile,
        )

    async def new_runner(self) -> Runner:
        cfg = self.service.config
        if self.execution != "process":
            return LocalRunner(
                self.cls,
                self.service.executor,
                cfg.step_timeout_s,
                inline=self.execution == "inline",
                expert_timeout_s=cfg.expert_timeout_s,
                reset_timeout_s=cfg.reset_timeout_s,
            )
        runner = None
        while self.idle_workers and runner is None:
            candidate = self.idle_workers.pop()
            if candidate.proc.returncode is None:
                runner = candidate
        if runner is None and self._warming > len(self._waiting):
            # A worker is already starting (the replacement of the last one taken): take it rather
            # than cold-start another, which on a loaded host would take as long again.
            runner = await self._take_warming()
        self.prewarm()
        if runner is None:
            runner = await self._spawn()
        return runner

    async def _take_warming(self) -> ProcessRunner | None:
        """The next worker to finish starting, or None if its start failed."""
        waiter: asyncio.Future[ProcessRunner | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self.prewarm()  # the starting worker is spoken for: start one for the next create
        try:
            return await waiter
        except BaseException:  # cancelled: the client went away
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and (runner := waiter.result()) is not None:
                self._offer(runner)  # handed over just as the create was cancelled: pass it on
            raise

    def _offer(self, runner: ProcessRunner) -> None:
        """A started worker goes to the first create waiting for one, else to the idle pool."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(runner)
                return
        if len(self.idle_workers) >= self.service.config.prewarm:
            # Started for a create that was cancelled, and the pool is full: not kept.
            self.service.background(runner.kill())
            return
        self.idle_workers.append(runner)
        self.service.background(self._watch_idle(runner))

    async def _watch_idle(self, runner: ProcessRunner) -> None:
        """A prewarmed worker that dies while idle (OOM killer, an operator's kill) leaves the pool
        at once and another starts, so that the next create does not start cold."""
        await runner.proc.wait()
        if runner in self.idle_workers:
            self.idle_workers.remove(runner)
            await runner.kill()  # already reaped: this lets go of its pipe
            metrics.WORKER_RESTARTS.labels(self.cls.name).inc()
            log.warning(
                "an idle worker exited; starting another",
                extra={"env": self.cls.name, "pid": runner.proc.pid, "exit_code": runner.proc.returncode},
            )
            self.prewarm()

    async def _spawn(self) -> ProcessRunner:
        cfg = self.service.config
        return await ProcessRunner.spawn(
            self.cls.name,
            cfg.env_settings.get(self.cls.name, {}),
            cfg.step_timeout_s,
            cfg.worker_start_timeout_s,
            cfg.expert_timeout_s,
            cfg.reset_timeout_s,
            module=self.cls.__module__,
        )

    def prewarm(self) -> None:
        """Start worker processes in the background until `prewarm` are idle or starting and not
        yet spoken for by a waiting create, so that the next create finds one ready."""
        if self.execution != "process" or self.service.draining:
            return
        while len(self.idle_workers) + self._warming - len(self._waiting) < self.service.config.prewarm:
            self._warming += 1
            self.service.background(self._warm_one())

    async def _warm_one(self) -> None:
        try:
            runner = await self._spawn()
        except BaseException as exc:
            self._warming -= 1
            if self._waiting:  # the create counting on this worker starts one of its own
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(None)
            if not isinstance(exc, Exception):
                raise  # cancelled: the server is closing
            log.warning("could not prewarm a worker", exc_info=True, extra={"env": self.cls.name})
            return
        self._warming -= 1
        if self.service.draining and not self._waiting:
            await runner.kill()
        else:
            self._offer(runner)

    async def shutdown(self) -> None:
        workers, self.idle_workers = self.idle_workers, []
        await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)


class EnvService:
    def __init__(self, config: ServerConfig) -> None:
        config.validate()
        self.config = config
        self.executor = ThreadPoolExecutor(config.threads, thread_name_prefix="env")
        names = config.envs if config.envs is not None else registry.names()
        self.hosted: dict[str, HostedEnv] = {}
        per_env: dict[str, int] = {}
        basis: dict[str, str] = {}
        for name in names:
            cls = registry.configure(name, config.env_settings.get(name, {}))
            hosted = self.hosted[name] = HostedEnv(cls, self)
            # A limit the env states stands; otherwise the memory its episodes need sets one, so
            # that enough creates cannot exhaust the host.
            own, why = cls.max_episodes, None
            if own is None and (by_memory := memory_limit(cls, hosted.execution, config.processes_per_host)):
                own, why = by_memory
            limits = [config.max_episodes, config.max_episodes_per_env, own]
            per_env[name] = min(v for v in limits if v is not None)
            if why is not None and per_env[name] == own:
                basis[name] = why
                log.info("env capacity", extra={"env": name, "max_episodes": own, "basis": why})
        self.capacity = Capacity(config.max_episodes, per_env, basis)
        self.sessions: set[Session] = set()
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()
        self.draining = False
        self.steps = 0
        self.episodes_started = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------------
    def start_background(self) -> None:
        for hosted in self.hosted.values():
            hosted.prewarm()
        if self.config.idle_timeout_s > 0:
            self.background(self._sweep_idle())

    def background(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_episode_start(self, session: Session) -> None:
        self.episodes_started += 1

    def on_episode_end(self, session: Session) -> None:
        pass

    async def _sweep_idle(self) -> None:
        timeout = self.config.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            cutoff = time.monotonic() - timeout
            for session in list(self.sessions):
                if session.busy or session.end_status is not None or session.last_activity >= cutoff:
                    continue
                # Streams without an episode go too: each holds a connection's resources.
                message = (
                    f"episode {session.episode_id} idle for more than {timeout:g}s (idle_timeout); its env was freed"
                    if session.runner is not None
                    else f"stream idle for more than {timeout:g}s with no episode (idle_timeout); it was closed"
                )
                await session.expire(grpc.StatusCode.DEADLINE_EXCEEDED, message)

    async def drain(self) -> None:
        """Refuse new episodes; give live ones `grace_s` to finish; then free the rest (their streams
        answer UNAVAILABLE to any further request until the server stops)."""
        self.draining = True
        if self.sessions:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_sessions.wait(), self.config.grace_s)
        message = "the server is shutting down; the episode was ended"
        deadline = time.monotonic() + self.config.step_timeout_s
        while any(s.runner is not None for s in self.sessions) and time.monotonic() < deadline:
            for session in list(self.sessions):
                if not session.busy:  # a step in flight finishes first
                    await session.expire(grpc.StatusCode.UNAVAILABLE, message)
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(h.shutdown() for h in self.hosted.values()), return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- RPCs ------------------------------------------------------------------------------------
    async def list_envs(
        self, request: pb.ListEnvsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEnvsResponse:
        cap = self.capacity
        return pb.ListEnvsResponse(
            envs=[h.spec(cap.live_per_env[n], cap.per_env[n]) for n, h in sorted(self.hosted.items())],
            server=pb.ServerInfo(
                implementation=implementation(),
                max_episodes=cap.total,
                live_episodes=cap.live,
                max_action_bytes=self.config.max_action_bytes,
                step_timeout_s=self.config.step_timeout_s,
                idle_timeout_s=self.config.idle_timeout_s,
                draining=self.draining,
            ),
        )

    async def session(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        session = Session(self, context.peer())
        session.task = asyncio.current_task()
        self.sessions.add(session)
        metrics.OPEN_STREAMS.inc()
        self._no_sessions.clear()
        reader = aiter(requests)
        try:
            while session.end_status is None:
                session.reading = True
                try:
                    raw = await anext(reader)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    # Session.expire wakes a stream waiting here to end it at once; any other
                    # cancellation (the client went away) goes on.
                    if not session.interrupted or session.task is None:
                        raise
                    session.task.uncancel()
                    break
                finally:
                    session.reading = False
                response, fatal = await session.handle(raw)
                yield response
                if fatal is not None:
                    context.set_code(fatal.code)
                    context.set_details(fatal.message)
                    return
                if session.closed:
                    return
            # Ended from outside (idle timeout, shutdown): the status says why. No in-band error, as
            # no request is being answered: a client sees the status at its next read or write
            # (gRPC holds a status back until the messages before it are read).
            assert session.end_status is not None
            context.set_code(session.end_status[0])
            context.set_details(session.end_status[1])
        finally:
            # A client that goes away while its env closes (a worker takes a moment to exit) cancels
            # this task mid-release: the release still runs to its end, in a task of its own, and
            # the session is forgotten either way (it was kept for good: found by bench/soak.py).
            release = asyncio.ensure_future(session.release("stream ended"))
            self._tasks.add(release)
            release.add_done_callback(self._tasks.discard)
            try:
                await asyncio.shield(release)
            finally:
                self.sessions.discard(session)
                metrics.OPEN_STREAMS.dec()
                if not self.sessions:
                    self._no_sessions.set()
