"""The EnvService implementation: hosted envs, capacity, live sessions, idle sweeping, draining."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import grpc

from agentgym.envs import registry
from agentgym.envs.base import Env
from agentgym.server.config import ServerConfig
from agentgym.server.runners import LocalRunner, ProcessRunner, Runner
from agentgym.server.session import Session
from agentgym.v1 import env_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAME = "agentgym.v1.EnvService"


def implementation() -> str:
    try:
        return f"agentgym-python {metadata.version('agentgym')}"
    except metadata.PackageNotFoundError:
        return "agentgym-python"


class Capacity:
    """Counts live episodes; refuses at once beyond the global or per-env limit."""

    def __init__(self, total: int, per_env: dict[str, int]) -> None:
        self.total = total
        self.per_env = per_env
        self.live = 0
        self.live_per_env: Counter[str] = Counter()

    def acquire(self, env: str) -> str | None:
        """Take a slot, or return why not."""
        if self.live >= self.total:
            return (
                f"server at capacity: {self.live} of {self.total} episodes live (max_episodes); "
                "close finished episodes, retry later, or add a server"
            )
        if self.live_per_env[env] >= self.per_env[env]:
            return (
                f"env {env!r} at capacity: {self.live_per_env[env]} of {self.per_env[env]} episodes live; "
                "close finished episodes, retry later, or add a server"
            )
        self.live += 1
        self.live_per_env[env] += 1
        return None

    def release(self, env: str) -> None:
        self.live -= 1
        self.live_per_env[env] -= 1


class HostedEnv:
    """An env class as this server hosts it: its spec and how its episodes are started."""

    def __init__(self, cls: type[Env], service: EnvService) -> None:
        self.cls = cls
        self.service = service
        self.execution = service.config.execution.get(cls.name, cls.execution)
        self.idle_workers: list[ProcessRunner] = []
        self._warming = 0

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
            )
        runner = None
        while self.idle_workers and runner is None:
            candidate = self.idle_workers.pop()
            if candidate.proc.returncode is None:
                runner = candidate
        self.prewarm()
        if runner is None:
            runner = await self._spawn()
        return runner

    async def _spawn(self) -> ProcessRunner:
        cfg = self.service.config
        return await ProcessRunner.spawn(
            self.cls.name,
            cfg.env_settings.get(self.cls.name, {}),
            cfg.step_timeout_s,
            cfg.worker_start_timeout_s,
            cfg.expert_timeout_s,
        )

    def prewarm(self) -> None:
        """Start worker processes in the background until `prewarm` are idle or starting."""
        if self.execution != "process" or self.service.draining:
            return
        while len(self.idle_workers) + self._warming < self.service.config.prewarm:
            self._warming += 1
            self.service.background(self._warm_one())

    async def _warm_one(self) -> None:
        try:
            runner = await self._spawn()
            if self.service.draining:
                await runner.kill()
            else:
                self.idle_workers.append(runner)
        except Exception:
            log.warning("could not prewarm a worker", exc_info=True, extra={"env": self.cls.name})
        finally:
            self._warming -= 1

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
        for name in names:
            cls = registry.configure(name, config.env_settings.get(name, {}))
            self.hosted[name] = HostedEnv(cls, self)
            limits = [config.max_episodes, config.max_episodes_per_env, cls.max_episodes]
            per_env[name] = min(v for v in limits if v is not None)
        self.capacity = Capacity(config.max_episodes, per_env)
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
                if not session.busy and session.runner is not None and session.last_activity < cutoff:
                    await session.expire(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"episode {session.episode_id} idle for more than {timeout:g}s (idle_timeout); its env was freed",
                    )

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
        self.sessions.add(session)
        self._no_sessions.clear()
        try:
            async for raw in requests:
                response, fatal = await session.handle(raw)
                yield response
                if fatal is not None:
                    context.set_code(fatal.code)
                    context.set_details(fatal.message)
                    return
                if session.closed:
                    return
        finally:
            await session.release("stream ended")
            self.sessions.discard(session)
            if not self.sessions:
                self._no_sessions.set()
