"""Where an episode's env code runs: on the event loop, in a thread, or in a worker process.

Every runner offers the same async methods. Failures surface as two exceptions the session maps
to statuses: `EnvCrashed` (the env raised, or its process died: INTERNAL) and `EnvTimeout` (a
call exceeded the step timeout: DEADLINE_EXCEEDED). Either one ends the episode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import sys
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from agentgym.envs.base import Env, EnvError, Outcome

log = logging.getLogger(__name__)


class EnvCrashed(Exception):
    """The env's code raised, or its worker process died."""


class EnvTimeout(Exception):
    """An env call took longer than the step timeout."""


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
    ) -> None:
        self.env_name = cls.name
        self.inline = inline
        self.executor = executor
        self.timeout_s = timeout_s
        self.expert_timeout_s = expert_timeout_s or timeout_s
        self.env = cls()
        self._running: asyncio.Future[Any] | None = None

    async def _call(self, fn: Any, *args: Any, inline: bool, timeout_s: float | None = None) -> Any:
        if inline:
            try:
                return fn(*args)
            except EnvError:
                raise
            except Exception as exc:
                raise EnvCrashed(_describe(exc)) from exc
        fut = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        self._running = fut
        limit = timeout_s or self.timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(fut), limit)
        except TimeoutError:
            what = "expert timeout" if timeout_s else "step timeout"
            raise EnvTimeout(f"call took longer than the {limit:g}s {what}") from None
        except EnvError:
            raise
        except Exception as exc:
            raise EnvCrashed(_describe(exc)) from exc
        finally:
            if fut.done():
                self._running = None

    async def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> tuple[Outcome, str]:
        result: tuple[Outcome, str] = await self._call(
            _reset, self.env, task_id, seed, options, inline=self.inline
        )
        return result

    async def step(self, action: str) -> Outcome:
        result: Outcome = await self._call(self.env.step, action, inline=self.inline)
        return result

    async def expert(self) -> tuple[str, str]:
        result: tuple[str, str] = await self._call(
            _expert, self.env, inline=False, timeout_s=self.expert_timeout_s
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

    The step timeout kills the process; a crash (exception, segfault, OOM kill) ends only this
    episode, and the process's memory goes back to the system when the episode ends.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        env_name: str,
        timeout_s: float,
        expert_timeout_s: float | None = None,
    ) -> None:
        self.proc = proc
        self.env_name = env_name
        self.timeout_s = timeout_s
        self.expert_timeout_s = expert_timeout_s or timeout_s
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
    ) -> ProcessRunner:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentgym.server.worker",
            env_name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        runner = cls(proc, env_name, timeout_s, expert_timeout_s)
        await runner._request(("configure", dict(settings)), timeout_s=start_timeout_s)
        return runner

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)
                log.debug("worker stderr", extra={"env": self.env_name, "pid": self.proc.pid, "line": text})

    async def _request(self, msg: tuple[Any, ...], timeout_s: float | None = None) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_LEN.pack(len(data)) + data)
            await self.proc.stdin.drain()
            head = await asyncio.wait_for(
                self.proc.stdout.readexactly(_LEN.size), timeout_s or self.timeout_s
            )
            (n,) = _LEN.unpack(head)
            reply = pickle.loads(await self.proc.stdout.readexactly(n))
        except TimeoutError:
            await self.kill()
            raise EnvTimeout(
                f"call took longer than the {timeout_s or self.timeout_s:g}s {'limit' if timeout_s else 'step timeout'}; worker killed"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
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
        raise EnvCrashed(value)

    async def _exit_code(self) -> int | None:
        try:
            return await asyncio.wait_for(self.proc.wait(), 1.0)
        except TimeoutError:
            return None

    async def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> tuple[Outcome, str]:
        result: tuple[Outcome, str] = await self._request(("reset", task_id, seed, dict(options)))
        return result

    async def step(self, action: str) -> Outcome:
        result: Outcome = await self._request(("step", action))
        return result

    async def expert(self) -> tuple[str, str]:
        result: tuple[str, str] = await self._request(("expert",), timeout_s=self.expert_timeout_s)
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

    async def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            await self.proc.wait()
