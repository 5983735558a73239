"""Envs that misbehave on purpose, for test_failure_cases.py.

A module of its own, free of pytest, because `process` envs run in worker processes and a worker
imports the module that registered its env class: these run there as the built-in envs do.
Timings come from env settings (`env_settings={"test-slow-start": {"start_s": "3"}}`), which the
server passes to `configure` in its own process and in every worker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

from agentgym.envs.base import Env, Outcome
from agentgym.envs.registry import register


class _Fixture(Env):
    instruction = "test"
    action_format = "anything"
    max_rounds = 10
    task_count = 4
    hidden = True

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        return Outcome(f"task {task_id}")

    def step(self, action: str) -> Outcome:
        return Outcome(f"echo {action}")


@register
class SlowStart(_Fixture):
    """A worker that takes `start_s` seconds to build its env (a cold start)."""

    name = "test-slow-start"
    execution = "process"
    start_s: ClassVar[float] = 0.0

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        cls.start_s = float(settings.get("start_s", 0))

    def __init__(self) -> None:
        super().__init__()
        time.sleep(self.start_s)


@register
class BrokenStart(_Fixture):
    """A worker whose env cannot be built."""

    name = "test-broken-start"
    execution = "process"

    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("this env cannot start")


@register
class SlowReset(_Fixture):
    """A reset that takes `reset_s` seconds of the env's own time (a heavy game start)."""

    name = "test-slow-reset"
    execution = "thread"
    reset_s: ClassVar[float] = 0.0

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        cls.reset_s = float(settings.get("reset_s", 0))

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        time.sleep(self.reset_s)
        return Outcome(f"task {task_id}")


@register
class MemoryHungry(_Fixture):
    """A process env whose episodes each need `episode_memory_mb` (declared, never allocated)."""

    name = "test-memory-hungry"
    execution = "process"
    episode_memory_mb = 3000

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        cls.episode_memory_mb = int(settings.get("episode_memory_mb", 3000))


@register
class Stuck(_Fixture):
    """An env whose expert cannot act ("stuck" as the action before asking makes it raise)."""

    name = "test-stuck-expert"
    execution = "thread"

    def reset(self, task_id: int, seed: int, options: Mapping[str, str]) -> Outcome:
        self.stuck = False
        return Outcome(f"task {task_id}")

    def step(self, action: str) -> Outcome:
        self.stuck = action == "stuck"
        return Outcome(f"echo {action}")

    def expert_action(self) -> str:
        if self.stuck:
            raise RuntimeError("no plan from this state")
        return "unstick"


@register
class SlowClose(_Fixture):
    """A process env whose close takes `close_s` seconds (its worker exits that much later)."""

    name = "test-slow-close"
    execution = "process"
    close_s: ClassVar[float] = 0.0

    @classmethod
    def configure(cls, settings: Mapping[str, str]) -> None:
        cls.close_s = float(settings.get("close_s", 0))

    def close(self) -> None:
        time.sleep(self.close_s)
