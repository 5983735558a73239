"""Where an episode's env code runs: on the event loop, in a thread, or in a worker process.

Every runner offers the same async methods. Failures surface as exceptions the session maps to
statuses: `EnvCrashed` (its process died: INTERNAL), `EnvRaised` (an `EnvCrashed`: the env's own
code raised, its process, if any, lives on) and `EnvTimeout` (a call exceeded its limit:
DEADLINE_EXCEEDED). Each limit (step, reset, expert) counts the env's own time only: a call that
waits for a free thread has that wait reported beside the limit, never counted against it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import sys
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from agentgym.core import metrics
from agentgym.envs.base import Env, EnvError, Outcome

log = logging.getLogger(__name__)


class EnvCrashed(Exception):
    """The env's code raised, or its worker process died."""


class EnvRaised(EnvCrashed):
    """The env's code raised; the env (and its worker process) is still there."""


class EnvTimeout(Exception):
    """An env call took longer than its limit. `queued_s`: how long it first waited for a thread."""

    def __init__(self, message: str, queued_s: float = 0.0) -> None:
        super().__init__(message)
        self.queued_s = queued_s


# While a call waits for a free thread, how often to look whether it has started (its limit runs
# from then). Only calls that outlast their limit look at all.
_QUEUE_POLL_S = 0.05


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Runner:
    """Runs one env instance for one episode."""

    env_name: str

    async def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> tuple[Outcome, str]:
        """Returns the first outcome and the episode's instruction."""
        raise NotImplementedError

    async def step(self, action: str) -> Outcome:
        raise NotImplementedError

    async def expert(self) -> tuple[str, str]:
        """(action, thought); the thought is "" when the env gives none."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def _expert(env: Env) -> tuple[str, str]:
    action = env.expert_action()
    return action, env.expert_thought(action) or ""


def _reset(env: Env, task_id: int, seed: int, options: Mapping[str, str]) -> tuple[Outcome, str]:
    env.rng.seed(seed)
    outcome = env.reset(task_id, seed, options)
    return outcome, env.episode_instruction()


class LocalRunner(Runner):
    """Runs the env in this process: inline on the loop, or in `executor` threads with a timeout.

    Inline envs still send `expert` calls to the executor: a planner may take milliseconds.
    """

    def __init__(
        self,
        cls: type[Env],
        executor: Executor,
        timeout_s: float,
        inline: bool,
        expert_timeout_s: float | None = None,
        reset_timeout_s: float | None = None,
    ) -> None:
        self.env_name = cls.name
        self.inline = inline
        self.executor = executor
        self.timeout_s = timeout_s
        self.expert_timeout_s = expert_timeout_s or timeout_s
        self.reset_timeout_s = reset_timeout_s or timeout_s
        self.env = cls()
        self._running: asyncio.Future[Any] | None = None

    async def _call(self, fn: Any, *args: Any, inline: bool, limit: float, what: str) -> Any:
        if inline:
            try:
                return fn(*args)
            except EnvError:
                raise
            except Exception as exc:
                raise EnvRaised(_describe(exc)) from exc
        started: list[float] = []  # when a thread picked the call up

        def run(*a: Any) -> Any:
            started.append(time.monotonic())
            return fn(*a)

        submitted = time.monotonic()
        # Wrapped to record how long the call waits for a free thread (THREAD_QUEUE_SECONDS).
        fut = asyncio.get_running_loop().run_in_executor(
            self.executor, metrics.queued(run, self.env_name), *args
        )
        self._running = fut
        try:
            return await _own_time(fut, started, submitted, limit, what)
        except (EnvError, EnvTimeout):
            raise
        except Exception as exc:
            raise EnvRaised(_describe(exc)) from exc
        finally:
            if fut.done():
                self._running = None

    async def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> tuple[Outcome, str]:
        result: tuple[Outcome, str] = await self._call(
            _reset,
            self.env,
            task_id,
            seed,
            options,
            inline=self.inline,
            limit=self.reset_timeout_s,
            what="reset",
        )
        return result

    async def step(self, action: str) -> Outcome:
        result: Outcome = await self._call(
            self.env.step, action, inline=self.inline, limit=self.timeout_s, what="step"
        )
        return result

    async def expert(self) -> tuple[str, str]:
        result: tuple[str, str] = await self._call(
            _expert, self.env, inline=False, limit=self.expert_timeout_s, what="expert"
        )
        return result

    async def close(self) -> None:
        env, running = self.env, self._running
        if running is not None and not running.done():
            # A timed-out call still owns the env: close it once that call returns.
            running.add_done_callback(lambda _: self.executor.submit(_close_quietly, env))
            return
        if self.inline:
            _close_quietly(env)
        else:
            self.executor.submit(_close_quietly, env)


async def _own_time(
    fut: asyncio.Future[Any], started: list[float], submitted: float, limit: float, what: str
) -> Any:
    """Await a call handed to a thread pool, allowing it `limit` seconds from when a thread starts
    it: on a busy server, time queued for a thread is the server's, not the env's."""
    wait = limit
    while True:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), wait)
        except TimeoutError:
            if not started:  # still queued
                wait = min(limit, _QUEUE_POLL_S)
                continue
            own = time.monotonic() - started[0]
            if own < limit:
                wait = limit - own
                continue
            queued = started[0] - submitted
            note = (
                f"; before that it waited {queued:.2f}s queued for a thread, which is not counted "
                "(every thread was busy)"
                if queued >= 0.01
                else ""
            )
            raise EnvTimeout(f"call took longer than the {limit:g}s {what} timeout{note}", queued) from None


def _close_quietly(env: Env) -> None:
    try:
        env.close()
    except Exception:
        log.warning("env close raised", exc_info=True, extra={"env": env.name})


# ---------------------------------------------------------------------------------------------
# worker processes

_LEN = struct.Struct("!I")


class ProcessRunner(Runner):
    """Runs the env in a worker process of its own (`python -m agentgym.server.worker`).

    A timeout kills the process; a crash (exception, segfault, OOM kill) ends only this episode,
    and the process's memory goes back to the system when the episode ends.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        env_name: str,
        timeout_s: float,
        expert_timeout_s: float | None = None,
        reset_timeout_s: float | None = None,
    ) -> None:
        self.proc = proc
        self.env_name = env_name
        self.timeout_s = timeout_s
        self.expert_timeout_s = expert_timeout_s or timeout_s
        self.reset_timeout_s = reset_timeout_s or timeout_s
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    @classmethod
    async def spawn(
        cls,
        env_name: str,
        settings: Mapping[str, str],
        timeout_s: float,
        start_timeout_s: float,
        expert_timeout_s: float | None = None,
        reset_timeout_s: float | None = None,
        module: str | None = None,
    ) -> ProcessRunner:
        """Start a worker for `env_name` and configure its env. `module`, the module that registers
        the env class, is imported by the worker first (envs registered outside agentgym.envs)."""
        extra = [module] if module and module != "__main__" else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentgym.server.worker",
            env_name,
            *extra,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        runner = cls(proc, env_name, timeout_s, expert_timeout_s, reset_timeout_s)
        try:
            await runner._request(
                ("configure", dict(settings)), start_timeout_s, "start (worker_start_timeout_s)"
            )
        except BaseException:
            # Failed, or cancelled (the client went away while it started): nothing else holds this
            # worker, so it goes now. No await here: the task may be cancelled.
            runner.kill_now()
            raise
        return runner

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)
                log.debug("worker stderr", extra={"env": self.env_name, "pid": self.proc.pid, "line": text})

    async def _request(self, msg: tuple[Any, ...], limit: float, what: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_LEN.pack(len(data)) + data)
            await self.proc.stdin.drain()
            head = await asyncio.wait_for(self.proc.stdout.readexactly(_LEN.size), limit)
            (n,) = _LEN.unpack(head)
            reply = pickle.loads(await self.proc.stdout.readexactly(n))
        except TimeoutError:
            await self.kill()
            metrics.WORKER_RESTARTS.labels(self.env_name).inc()
            raise EnvTimeout(f"call took longer than the {limit:g}s {what} timeout; worker killed") from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            metrics.WORKER_RESTARTS.labels(self.env_name).inc()
            code = await self._exit_code()
            tail = " | ".join(list(self.stderr_tail)[-3:])
            raise EnvCrashed(
                f"worker process {self.proc.pid} died (exit code {code}){'; stderr: ' + tail if tail else ''}"
            ) from exc
        status, value = reply
        if status == "ok":
            return value
        if status == "env_error":
            raise EnvError(value)
        raise EnvRaised(value)

    async def _exit_code(self) -> int | None:
        try:
            return await asyncio.wait_for(self.proc.wait(), 1.0)
        except TimeoutError:
            return None

    async def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> tuple[Outcome, str]:
        result: tuple[Outcome, str] = await self._request(
            ("reset", task_id, seed, dict(options)), self.reset_timeout_s, "reset"
        )
        return result

    async def step(self, action: str) -> Outcome:
        result: Outcome = await self._request(("step", action), self.timeout_s, "step")
        return result

    async def expert(self) -> tuple[str, str]:
        result: tuple[str, str] = await self._request(("expert",), self.expert_timeout_s, "expert")
        return result

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the worker closes its env and exits on EOF
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except (TimeoutError, ConnectionError, BrokenPipeError):
                await self.kill()
        self._stderr_task.cancel()

    def kill_now(self) -> None:
        """SIGKILL without waiting for the exit (asyncio's child watcher reaps the process)."""
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        self._stderr_task.cancel()
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # on the running loop, not at garbage collection

    async def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            await self.proc.wait()
        # Let go of the pipe now, on the running loop (asyncio would close it at garbage collection,
        # which can come after the loop is closed).
        if self.proc.stdin is not None:
            self.proc.stdin.close()
